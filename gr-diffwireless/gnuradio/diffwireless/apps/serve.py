"""``dw-serve``: one host runs a diffusion block for many front ends (``dw-frontend``), all on one engine.

    dw-serve anomaly|classify --listen tcp://*:5555 --streams 4 [--publish tcp://*:5600] [--record DIR]
    dw-serve MODE ... --until-ended --json report.json

Stream ``k`` listens on the port of ``--listen`` plus ``k`` (front end ``k``: ``dw-frontend ... --connect
tcp://SERVER:5555+k``). Each stream is GNU Radio's ZeroMQ PULL source (tags passed: ``rx_rate``, ``rx_freq``,
``rx_time``, a replay's ``dw_eos``) into its own block (Anomaly Detector or Modulation Classifier); every block submits
to the same engine, whose batches then mix streams (the report's ``mixed_batches``). Each stream's events or decisions
go out, with the stream's index, on a ZeroMQ PUB socket (``--publish``, GNU Radio's PUB message sink: PMT dicts), are
recorded as SigMF with the samples (``--record DIR``: ``DIR/streamK.sigmf-meta``) and are in the JSON report.

A front end that starts late joins its stream; one that dies ends its own stream only (the others and the server run
on). The server says which streams are live: a line when a stream starts, ends (a replay's last sample) or falls
silent for ``--idle`` seconds, and a status line every ``--status`` seconds. Policy ``block`` (default): nothing is
dropped; a slow server makes the front ends wait (replay). ``drop`` (radios): work the server cannot keep up with is
dropped, counted and tagged. It runs for ``--seconds``, until Ctrl-C, or with ``--until-ended`` until every stream
that started has ended or fallen silent.
"""

from __future__ import annotations

import argparse
import math
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pmt
from gnuradio import blocks, gr, zeromq

from diffwireless.engine import EngineOptions
from diffwireless.errors import DiffWirelessError
from diffwireless.tags import EOS, RX_RATE

from gnuradio.diffwireless.anomaly_detector import anomaly_detector
from gnuradio.diffwireless.apps._report import jsonable, write_json
from gnuradio.diffwireless.apps._zmq import Relay, check_address, local_address, stop_on_signals, tcp_port
from gnuradio.diffwireless.modulation_classifier import modulation_classifier
from gnuradio.diffwireless.sigmf_sink import sigmf_sink

MODES = {"anomaly": "events", "classify": "classification"}


class StreamTap(gr.sync_block):
    """Watches one stream beside its block (a second reader of the source's buffer, so the samples are not
    copied): samples, when the last arrived, its rate, and its end (``dw_eos``)."""

    def __init__(self, index: int) -> None:
        gr.sync_block.__init__(self, name=f"dw_serve_stream{index}", in_sig=[np.complex64], out_sig=None)
        self.index = index
        self.samples = 0
        self.first_at = self.last_at = 0.0  # time.monotonic() of the first and last samples (0: none yet)
        self.ended = False
        self.sample_rate = 0.0

    def work(self, input_items, output_items):
        n = len(input_items[0])
        for tag in self.get_tags_in_window(0, 0, n):
            key = pmt.symbol_to_string(tag.key)
            if key == EOS:
                self.ended = True
            elif key == RX_RATE and pmt.is_number(tag.value):
                self.sample_rate = pmt.to_double(tag.value)
        now = time.monotonic()
        if n:
            self.first_at = self.first_at or now
            self.last_at = now
        self.samples += n
        return n


class StreamMessages(gr.basic_block):
    """A block's findings of one stream: kept for the report and passed on with ``stream`` added (PUB, SigMF)."""

    def __init__(self, index: int) -> None:
        gr.basic_block.__init__(self, name=f"dw_serve_messages{index}", in_sig=None, out_sig=None)
        self.index = index
        self.items: list[Any] = []
        self.message_port_register_in(pmt.intern("in"))
        self.message_port_register_out(pmt.intern("out"))
        self.set_msg_handler(pmt.intern("in"), self._handle)

    def _handle(self, msg) -> None:
        value = pmt.to_python(msg)
        self.items.append(value)
        if pmt.is_dict(msg):
            msg = pmt.dict_add(msg, pmt.intern("stream"), pmt.from_long(self.index))
        self.message_port_pub(pmt.intern("out"), msg)


class ServeFlowgraph(gr.top_block):
    """``streams`` ZeroMQ PULL sources, each into its own block of ``mode`` (watched by a :class:`StreamTap`), the
    blocks sharing one engine; relays turn the listening ports round onto gr-zeromq's connecting sources."""

    def __init__(self, mode: str, listen: str, streams: int, options: argparse.Namespace) -> None:
        gr.top_block.__init__(self, "dw_serve")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if streams < 1:
            raise ValueError(f"--streams must be >= 1, got {streams}")
        self.mode = mode
        self.started_at = 0.0  # time.monotonic() when run() started it
        self.engine = EngineOptions(device=options.engine_device, policy=options.policy)
        self.addresses = [tcp_port(check_address(listen, "--listen"), k) for k in range(streams)]
        # Python blocks are kept here: GNU Radio holds only their C++ side, and a collected one crashes the scheduler.
        self.relays, self.taps, self.blocks, self.messages, self.recorders = [], [], [], [], []
        self.publisher = zeromq.pub_msg_sink(check_address(options.publish, "--publish")) if options.publish else None
        for k, address in enumerate(self.addresses):
            local = local_address(f"stream{k}")
            self.relays.append(Relay(address, local, bind_pull=True, bind_push=True, name=f"dw-serve-relay{k}"))
            source = zeromq.pull_source(gr.sizeof_gr_complex, 1, local, 100, True, -1)
            tap = StreamTap(k)
            block = self._block(options)
            msgs = StreamMessages(k)
            self.connect(source, block, blocks.null_sink(gr.sizeof_float if mode == "anomaly" else gr.sizeof_int))
            self.connect(source, tap)
            self.msg_connect(block, MODES[mode], msgs, "in")
            if self.publisher is not None:
                self.msg_connect(msgs, "out", self.publisher, "in")
            if options.record:
                Path(options.record).mkdir(parents=True, exist_ok=True)
                recorder = sigmf_sink(str(Path(options.record) / f"stream{k}"), description=f"dw-serve {mode} "
                                      f"stream {k} ({address})", overwrite=options.overwrite)
                self.connect(source, recorder)
                self.msg_connect(msgs, "out", recorder, "annotations")
                self.recorders.append(recorder)
            self.taps.append(tap)
            self.blocks.append(block)
            self.messages.append(msgs)

    def _block(self, options: argparse.Namespace) -> gr.basic_block:
        if self.mode == "anomaly":
            return anomaly_detector(options.anomaly_model, pfa=options.pfa, hold=options.hold,
                                    sample_rate=options.rate, engine=self.engine)
        return modulation_classifier(options.classifier_model, min_confidence=options.min_confidence,
                                     engine=self.engine)

    def state(self, k: int, idle_s: float) -> str:
        """``waiting`` (nothing yet), ``live``, ``ended`` (a replay's last sample) or ``silent`` (nothing for
        ``idle_s`` seconds: a front end gone)."""
        tap = self.taps[k]
        if tap.ended:
            return "ended"
        if not tap.samples:
            return "waiting"
        return "live" if time.monotonic() - tap.last_at < idle_s else "silent"

    def settled(self) -> bool:
        """Every block has answered all it took in (the end of each ended stream is out)."""
        return all(b.stats()["in_flight_windows"] == 0 and b.items_in == t.samples
                   for b, t in zip(self.blocks, self.taps) if t.ended)

    def report(self, seconds: float, idle_s: float) -> dict[str, Any]:
        streams = []
        for k, (tap, block, msgs) in enumerate(zip(self.taps, self.blocks, self.messages)):
            st = block.stats()
            entry = {"stream": k, "address": self.addresses[k], "state": self.state(k, idle_s), "samples": tap.samples,
                     "sample_rate": tap.sample_rate, "first_sample_s": _since(tap.first_at, self.started_at),
                     "last_sample_s": _since(tap.last_at, self.started_at), "items_out": st["items_out"],
                     "dropped_items": st["dropped_items"], "error": None if block.error is None else str(block.error)}
            if self.mode == "anomaly":
                entry["events"] = list(block.events)
            else:
                entry["decisions"] = [d for d in msgs.items if isinstance(d, dict)]
            streams.append(entry)
        engine = {k: v for k, v in self.blocks[0].stats().items()
                  if k in ("jobs", "items", "batches", "batch_mean", "batch_max", "mixed_batches", "sources",
                           "latency_p50_ms", "latency_p99_ms", "drops", "device")}
        return {"mode": self.mode, "seconds": seconds, "policy": self.engine.policy, "engine": engine,
                "streams": streams}


def run(tb: ServeFlowgraph, seconds: float | None, until_ended: bool, idle_s: float, status_s: float,
        stop: threading.Event, say=print) -> float:
    """Run ``tb`` (relays first) until ``seconds``, ``stop``, or with ``until_ended`` every stream that started has
    ended or fallen silent; reports stream changes through ``say``. Returns the seconds it ran."""
    for relay in tb.relays:
        relay.start()
    t0 = tb.started_at = time.monotonic()
    tb.start()
    say(f"dw-serve {tb.mode}: {len(tb.taps)} streams on {', '.join(tb.addresses)}")
    states = ["waiting"] * len(tb.taps)
    next_status = t0 + status_s
    try:
        while not stop.is_set():
            now = time.monotonic()
            for k in range(len(tb.taps)):
                state = tb.state(k, idle_s)
                if state != states[k]:
                    note = {"live": "live", "ended": f"ended ({tb.taps[k].samples} samples)",
                            "silent": f"silent for {idle_s:g} s (front end gone?)"}.get(state, state)
                    say(f"stream {k}: {note}")
                    states[k] = state
            if status_s and now >= next_status:
                next_status = now + status_s
                say("live: " + (", ".join(str(k) for k, s in enumerate(states) if s == "live") or "none"))
            if seconds and now - t0 >= seconds:
                break
            started = [s for s in states if s != "waiting"]
            if until_ended and started and len(started) == len(states) and \
                    all(s in ("ended", "silent") for s in states) and tb.settled():
                break
            time.sleep(0.05)
    finally:
        tb.stop()
        tb.wait()
        for relay in tb.relays:
            relay.stop()
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dw-serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", help=f"one of: {', '.join(MODES)}")
    parser.add_argument("--listen", default="tcp://*:5555", help="first stream's address; stream k: port + k")
    parser.add_argument("--streams", type=int, default=1, help="front ends served (default 1)")
    parser.add_argument("--publish", help="publish each finding (PMT dict with 'stream') on this ZeroMQ PUB address")
    parser.add_argument("--record", metavar="DIR", help="record each stream and its findings as DIR/streamK SigMF")
    parser.add_argument("--overwrite", action="store_true", help="replace existing --record recordings")
    parser.add_argument("--policy", choices=("block", "drop"), default="block",
                        help="block: lossless, front ends wait (replay); drop: drop what the host cannot keep up with")
    parser.add_argument("--seconds", type=float, help="stop after this long")
    parser.add_argument("--until-ended", action="store_true",
                        help="stop when every stream has started and then ended or fallen silent")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds without samples that make a stream silent")
    parser.add_argument("--status", type=float, default=5.0, help="seconds between status lines (0: none)")
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--engine-device", default="auto", help="the engine's device (auto, cpu, cuda)")
    group = parser.add_argument_group("blocks")
    group.add_argument("--rate", type=float, default=0.0, help="the streams' sample rate (0: from rx_rate tags)")
    group.add_argument("--anomaly-model", default="anomaly_band")
    group.add_argument("--pfa", type=float, default=0.01)
    group.add_argument("--hold", type=int, default=8)
    group.add_argument("--classifier-model", default="modclass_radio")
    group.add_argument("--min-confidence", type=float, default=0.5)
    args = parser.parse_args(argv)
    if args.mode not in MODES:
        parser.error(f"unknown mode {args.mode!r}; choose from {', '.join(MODES)}")
    for name in ("seconds", "idle", "status"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value >= 0 and (value > 0 or name == "status")):
            parser.error(f"--{name} must be finite and > 0, got {value}")
    try:
        tb = ServeFlowgraph(args.mode, args.listen, args.streams, args)
    except (DiffWirelessError, ValueError, RuntimeError, OSError) as exc:
        print(f"dw-serve: error: {exc}", file=sys.stderr)
        return 2
    stop = stop_on_signals()
    seconds = run(tb, args.seconds, args.until_ended, args.idle, args.status, stop,
                  say=lambda line: print(line, flush=True))
    report = tb.report(seconds, args.idle)
    eng = report["engine"]
    print(f"dw-serve: {seconds:.1f} s; engine: {eng.get('items', 0)} items in {eng.get('batches', 0)} batches, "
          f"{eng.get('mixed_batches', 0)} mixing streams")
    for s in report["streams"]:
        found = len(s["events"]) if "events" in s else len(s["decisions"])
        print(f"  stream {s['stream']}: {s['state']}, {s['samples']} samples, {found} "
              f"{'events' if 'events' in s else 'decisions'}" + (f", error: {s['error']}" if s["error"] else ""))
    if args.json:
        write_json(args.json, report, default=jsonable)
    return 1 if any(s["error"] for s in report["streams"]) else 0


def _since(at: float, start: float) -> float | None:
    """Seconds from the server's start to ``at`` (None for a stream that sent nothing)."""
    return round(at - start, 4) if at else None


if __name__ == "__main__":
    sys.exit(main())
