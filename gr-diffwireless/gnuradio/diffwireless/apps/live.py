"""``dw-live``: the diffusion blocks on a live radio, or on a recording replayed as one, with their live views.

    dw-live anomaly|classify|detect[,...] --device driver=rtlsdr --freq 433.92e6 --rate 1e6 [--gain 30] [--record OUT]
    dw-live MODE --recording X.sigmf-meta [--realtime] [--loop] ...
    dw-live MODE ... --headless --seconds 10 --json out.json

Chains (several at once: ``anomaly,classify``), each on the same source:

- ``anomaly``: Anomaly Detector (its events and scores on the Diffusion Waterfall);
- ``classify``: Modulation Classifier (its decisions on the Diffusion Waterfall);
- ``detect``: RRC matched filter -> symbol sync -> Costas loop -> Diffusion Detector (denoised symbols), shown on
  Constellation Before/After;
- ``ofdm``: the OFDM receiver with the diffusion equalizer (GNU Radio's ``ofdm_tx`` waveform: 64-FFT, 802.11-like
  carriers), its packets counted and each frame's channel estimate on the Channel View;
- every chain's engine statistics on the Engine Monitor.

A radio (``--device``) or a recording paced at its sample rate (``--realtime``: a virtual radio) runs the engine
under the live ``drop`` policy: work the CPU cannot keep up with is dropped, counted and tagged, never queued without
end. A recording without ``--realtime`` runs as fast as it can under ``block`` (lossless). ``--record OUT`` keeps the
IQ as SigMF with the events and decisions as annotations. ``--headless`` runs without windows (scripts, tests,
benchmarks) for ``--seconds`` or to the end of the recording, and ``--json`` writes what happened.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from gnuradio import analog, blocks, digital, filter, gr

from diffwireless.engine import EngineOptions
from diffwireless.errors import DiffWirelessError
from diffwireless.recording import append_annotations
from diffwireless.tags import ANNOTATION, annotation_from_tag

from gnuradio.diffwireless.anomaly_detector import anomaly_detector
from gnuradio.diffwireless.constellation_view import constellation_view
from gnuradio.diffwireless.diffusion_detector import diffusion_detector
from gnuradio.diffwireless.diffusion_waterfall import diffusion_waterfall
from gnuradio.diffwireless.engine_monitor import engine_monitor
from gnuradio.diffwireless.modulation_classifier import modulation_classifier
from gnuradio.diffwireless.sdr_source import SDRNotFoundError
from gnuradio.diffwireless.sigmf_sink import sigmf_sink
from gnuradio.diffwireless.apps._report import jsonable, write_json
from gnuradio.diffwireless.apps._source import add_source_arguments, source_block

CHAINS = ("anomaly", "classify", "detect", "ofdm")


class _Collector(gr.basic_block):
    """Keeps the messages of one port (events, decisions) for the JSON report."""

    def __init__(self, name: str) -> None:
        import pmt

        gr.basic_block.__init__(self, name=f"dw_live_{name}", in_sig=None, out_sig=None)
        self.items: list[Any] = []
        self.message_port_register_in(pmt.intern("in"))
        self.set_msg_handler(pmt.intern("in"), self._keep)

    def _keep(self, msg) -> None:
        import pmt

        self.items.append(pmt.to_python(msg))


class _PacketCounter(gr.sync_block):
    """Counts the bytes and the packets (``packet_length`` tags) of a tagged byte stream."""

    def __init__(self) -> None:
        gr.sync_block.__init__(self, name="dw_live_packets", in_sig=[np.uint8], out_sig=None)
        self.packets = 0

    def work(self, input_items, output_items):
        import pmt

        n = len(input_items[0])
        self.packets += len(self.get_tags_in_window(0, 0, n, pmt.intern("packet_length")))
        return n


class LiveFlowgraph(gr.top_block):
    """The flowgraph of ``dw-live``: one source, the chains asked for, the views (unless headless), a recorder.

    Args:
        chains: some of :data:`CHAINS`.
        source: a built source block (``sdr_source`` or ``sigmf_source``) and its sample rate and frequency.
        live: run the engine under the ``drop`` policy (a radio or a paced recording).
        views: build the live views (needs a Qt application).
        record: SigMF recording to write (None: none).
        options: model and parameter choices (see ``main``).
    """

    def __init__(self, chains: tuple[str, ...], source: gr.basic_block, sample_rate: float, frequency: float,
                 live: bool, views: bool, record: str | None, options: argparse.Namespace) -> None:
        gr.top_block.__init__(self, "dw_live")
        self.source, self.sample_rate, self.chains = source, float(sample_rate), chains
        self.engine = EngineOptions(device=options.engine_device, policy="drop" if live else "block")
        self.blocks: dict[str, gr.basic_block] = {}
        self.collectors: dict[str, _Collector] = {}
        self.waterfall = self.monitor = self.constellation = None
        if (views and {"anomaly", "classify"} & set(chains)) or options.waterfall:
            self.waterfall = diffusion_waterfall(sample_rate=self.sample_rate, samples_per_row=options.samples_per_row)
            self.connect(source, self.waterfall)
        if views and {"anomaly", "classify", "detect"} & set(chains):
            self.monitor = engine_monitor()
        if "anomaly" in chains:
            det = anomaly_detector(options.anomaly_model, pfa=options.pfa, hold=options.hold,
                                   sample_rate=self.sample_rate, engine=self.engine)
            self._add("anomaly", det, gr.sizeof_float, {"events": "events", "scores": None})
        if "classify" in chains:
            cls = modulation_classifier(options.classifier_model, min_confidence=options.min_confidence,
                                        engine=self.engine)
            self._add("classify", cls, gr.sizeof_int, {"classification": "classification"})
        if "detect" in chains:
            self._detect_chain(options, views)
        if "ofdm" in chains:
            self._ofdm_chain(views)
        if record:
            self.recorder = sigmf_sink(record, sample_rate=self.sample_rate, frequency=frequency,
                                       description=f"dw-live {'+'.join(chains)}", overwrite=options.overwrite)
            self.connect(source, self.recorder)
            for name, port in (("anomaly", "events"), ("classify", "classification")):
                if name in self.blocks:
                    self.msg_connect(self.blocks[name], port, self.recorder, "annotations")

    def _add(self, name: str, block: gr.basic_block, out_size: int, ports: dict[str, str | None]) -> None:
        self.blocks[name] = block
        self.connect(self.source, block, blocks.null_sink(out_size))
        for port, collect in ports.items():
            if self.waterfall is not None:
                self.msg_connect(block, port, self.waterfall, port)
            if collect:
                self.collectors[collect] = _Collector(collect)
                self.msg_connect(block, port, self.collectors[collect], "in")
        if self.monitor is not None:
            self.msg_connect(block, "stats", self.monitor, "stats")

    def _detect_chain(self, options: argparse.Namespace, views: bool) -> None:
        sps = options.sps
        taps = filter.firdes.root_raised_cosine(1.0, sps, 1.0, options.rolloff, 11 * sps)
        matched = filter.fir_filter_ccf(1, taps)
        agc = analog.agc2_cc(1e-2, 1e-3, 1.0, 1.0)  # the detector takes symbols at unit mean power
        sync = digital.symbol_sync_cc(digital.TED_MUELLER_AND_MULLER, sps, 0.045, 1.0, 1.0, 1.5, 1,
                                      digital.constellation_qpsk().base(), digital.IR_MMSE_8TAP, 128, [])
        costas = digital.costas_loop_cc(0.02, 4, False)
        det = diffusion_detector(options.constellation, snr_db=options.snr_db, output="symbols", engine=self.engine)
        self.connect(self.source, matched, agc, sync, costas, det, blocks.null_sink(gr.sizeof_gr_complex))
        self.blocks["detect"] = det
        self.symbols_in = costas
        if views:
            self.constellation = constellation_view(options.constellation)
            self.connect(costas, (self.constellation, 0))
            self.connect(det, (self.constellation, 1))
            self.msg_connect(det, "stats", self.monitor, "stats")

    def _ofdm_chain(self, views: bool) -> None:
        from gnuradio.diffwireless.channel_view import channel_view
        from gnuradio.diffwireless.diffusion_ofdm_rx import diffusion_ofdm_rx

        rx = diffusion_ofdm_rx(engine=self.engine, channel_output=True)
        self.ofdm_rx, self.packets = rx, _PacketCounter()
        self.connect(self.source, rx)
        self.connect((rx, 0), self.packets)
        fft_len = rx.header_equalizer.layout.fft_len
        self.channel = channel_view(fft_len) if views else blocks.null_sink(gr.sizeof_gr_complex * fft_len)
        self.connect((rx, 1), self.channel)

    def report(self, seconds: float) -> dict[str, Any]:
        """What happened: samples, items, drops and engine figures per chain, events and decisions."""
        out: dict[str, Any] = {"chains": list(self.chains), "seconds": seconds, "sample_rate": self.sample_rate,
                               "policy": self.engine.policy, "samples": int(self.source.nitems_written(0))
                               if hasattr(self.source, "nitems_written") else None}
        for name, block in self.blocks.items():
            st = block.stats()
            out[name] = {k: st.get(k) for k in ("items_in", "items_out", "dropped_items", "batch_mean",
                                                 "latency_p50_ms", "latency_p99_ms", "drops", "device")}
            out[name]["error"] = None if block.error is None else str(block.error)
        if "anomaly" in self.blocks:
            out["anomaly"]["window"] = self.blocks["anomaly"].detector.window
            out["anomaly"]["threshold"] = self.blocks["anomaly"].threshold
            out["events"] = list(self.blocks["anomaly"].events)
        if "classification" in self.collectors:
            decisions = self.collectors["classification"].items
            labels = [d.get("label") for d in decisions if isinstance(d, dict)]
            out["decisions"] = {"count": len(labels), "labels": {k: labels.count(k) for k in sorted(set(labels))}}
        if "ofdm" in self.chains:
            eqs = (self.ofdm_rx.header_equalizer, self.ofdm_rx.payload_equalizer)
            out["ofdm"] = {"frames": self.ofdm_rx.header_equalizer.frames, "packets": self.packets.packets,
                           "error": next((str(e.error) for e in eqs if e.error is not None), None)}
        if self.waterfall is not None:
            feed = self.waterfall.model.rows_in
            out["waterfall"] = {"rows": feed.put_count, "thinned": feed.thinned}
        return out


def _source(args: argparse.Namespace) -> tuple[gr.basic_block, float, float]:
    src = source_block(args)
    if args.recording:
        rate = src.recording.sample_rate or args.rate
        freqs = [c.frequency_hz for c in src.recording.captures if c.frequency_hz]
        return src, float(rate or 0.0), float(freqs[0] if freqs else 0.0)
    return src, float(args.rate), float(args.freq)


def run(tb: LiveFlowgraph, seconds: float | None, views: bool, screenshots: str | None = None) -> float:
    """Run ``tb`` until it ends (a recording without --loop), ``seconds`` pass or the window closes; returns the
    seconds it ran. With ``screenshots`` (a folder) each view and the window are saved as PNG at the end."""
    t0 = time.monotonic()
    ended = threading.Event()
    tb.start()
    threading.Thread(target=lambda: (tb.wait(), ended.set()), name="dw-live-wait", daemon=True).start()

    def over() -> bool:
        return ended.is_set() or bool(seconds and time.monotonic() - t0 >= seconds)

    if views:
        from PyQt5 import QtCore, QtWidgets

        app = QtWidgets.QApplication.instance()
        window = QtWidgets.QWidget()
        window.setWindowTitle(f"dw-live: {'+'.join(tb.chains)}")
        layout = QtWidgets.QGridLayout(window)
        shown = [v for v in (tb.waterfall, tb.constellation, getattr(tb, "channel", None), tb.monitor)
                 if v is not None and hasattr(v, "qwidget")]
        for i, view in enumerate(shown):
            layout.addWidget(view.qwidget(), 0 if i == 0 else 1, 0 if i < 2 else 1, 1, 2 if i == 0 else 1)
        window.resize(1200, 800)
        window.show()
        tb.window = window

        def check() -> None:
            if over():
                if screenshots:
                    save_screenshots(tb, shown, window, Path(screenshots))
                app.quit()

        timer = QtCore.QTimer()
        timer.timeout.connect(check)
        timer.start(100)
        app.exec_()
    else:
        while not over():
            time.sleep(0.05)
    tb.stop()
    ended.wait()
    return time.monotonic() - t0


def save_screenshots(tb: LiveFlowgraph, shown: list, window, folder: Path) -> list[Path]:
    """Each view as ``live-<view>.png`` and the whole window as ``live-<chains>.png`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for view in shown:
        view.view.refresh()
        name = type(view).__name__.replace("diffusion_", "").replace("_", "-")
        paths.append(folder / f"live-{name}.png")
        view.qwidget().grab().save(str(paths[-1]))
    paths.append(folder / f"live-{'-'.join(tb.chains)}.png")
    window.grab().save(str(paths[-1]))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dw-live", description=__doc__.split("\n\n")[0])
    parser.add_argument("chains", help=f"comma-separated: {', '.join(CHAINS)}")
    add_source_arguments(parser, realtime_help="pace the recording at its sample rate (live policy)")
    parser.add_argument("--record", help="write the IQ (and events/decisions as annotations) to this SigMF recording")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --record recording")
    parser.add_argument("--headless", action="store_true", help="no windows")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: the recording's end, or never)")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--screenshot", metavar="DIR", help="save each view and the window as PNG here at the end")
    parser.add_argument("--engine-device", default="auto", help="the engine's device (auto, cpu, cuda)")
    blocks_group = parser.add_argument_group("blocks")
    blocks_group.add_argument("--anomaly-model", default="anomaly_band")
    blocks_group.add_argument("--pfa", type=float, default=0.01)
    blocks_group.add_argument("--hold", type=int, default=8)
    blocks_group.add_argument("--classifier-model", default="modclass_radio")
    blocks_group.add_argument("--min-confidence", type=float, default=0.5)
    blocks_group.add_argument("--constellation", default="qpsk")
    blocks_group.add_argument("--snr-db", type=float, default=15.0)
    blocks_group.add_argument("--sps", type=int, default=4, help="samples per symbol (detect)")
    blocks_group.add_argument("--rolloff", type=float, default=0.35, help="RRC roll-off (detect)")
    blocks_group.add_argument("--samples-per-row", type=int, default=16384, help="waterfall time resolution")
    blocks_group.add_argument("--waterfall", action="store_true", help="run the waterfall's work even headless")
    args = parser.parse_args(argv)
    chains = tuple(c.strip() for c in args.chains.split(",") if c.strip())
    unknown = sorted(set(chains) - set(CHAINS))
    if unknown or not chains:
        parser.error(f"unknown chain(s) {unknown or args.chains!r}; choose from {', '.join(CHAINS)}")
    if args.seconds is not None and not (math.isfinite(args.seconds) and args.seconds > 0):
        parser.error(f"--seconds must be finite and > 0, got {args.seconds}")
    views = not args.headless
    if views:
        from PyQt5 import QtWidgets

        app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["dw-live"])  # before any widget
        app.setQuitOnLastWindowClosed(True)
    try:
        source, rate, freq = _source(args)
        if not rate:
            raise DiffWirelessError("the recording has no sample rate; give --rate")
        live = not args.recording or args.realtime
        tb = LiveFlowgraph(chains, source, rate, freq, live, views, args.record, args)
    except (SDRNotFoundError, DiffWirelessError, ValueError, RuntimeError) as exc:
        print(f"dw-live: error: {exc}", file=sys.stderr)
        return 2
    seconds = run(tb, args.seconds, views, args.screenshot)
    report = tb.report(seconds)
    if args.record and tb.recorder.error is None:
        # Findings that closed as the source ended reach no finished block: add them to the closed recording.
        late = [{**_event_annotation(e), "sample_start": e["start"], "sample_count": e["end"] - e["start"]}
                for e in report.get("events", [])]
        report["record"] = {"path": str(tb.recorder.meta_path), "added_after_stop": append_annotations(
            tb.recorder.meta_path, late) if late else 0}
    errors = [f"{name}: {r['error']}" for name, r in report.items() if isinstance(r, dict) and r.get("error")]
    lines = [f"dw-live {'+'.join(chains)}: {seconds:.1f} s, {report['samples']} samples, policy {report['policy']}"]
    for name in tb.blocks:
        r = report[name]
        lines.append(f"  {name}: {r['items_in']} items in, {r['items_out']} out, {r['dropped_items']} dropped; "
                     f"batch {r['batch_mean'] or 0:.1f}, latency p99 {r['latency_p99_ms'] or 0:.0f} ms")
    if "events" in report:
        lines.append(f"  {len(report['events'])} anomaly events")
    if "ofdm" in report:
        lines.append(f"  ofdm: {report['ofdm']['frames']} frames, {report['ofdm']['packets']} packets passed their CRC")
    if "decisions" in report:
        lines.append(f"  {report['decisions']['count']} classifier decisions: {report['decisions']['labels']}")
    print("\n".join(lines))
    if args.json:
        write_json(args.json, report, default=jsonable)
    code = 0
    if errors:
        print("dw-live: error: " + "; ".join(errors), file=sys.stderr)
        code = 1
    if views:
        # Qt's widgets and GNU Radio's Python blocks torn down together at interpreter exit crash it now and then
        # (seen: SIGSEGV after the report was written): everything is written, so leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _event_annotation(event: dict) -> dict:
    """An anomaly event's fields as SigMF Sink's message port records them."""
    return annotation_from_tag(ANNOTATION, event)[1]


if __name__ == "__main__":
    sys.exit(main())
