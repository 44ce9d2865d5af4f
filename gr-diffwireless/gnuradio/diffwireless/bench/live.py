"""``dw-bench live``: which diffusion block keeps up with which radio, and a real-time soak of the live chain.

Three parts, measured in one run on the machine it runs on:

1. **Real-time budget.** Each diffusion block at its defaults runs a recording unpaced under the lossless ``block``
   policy (3 repeats): its sustained input rate, set against an RTL-SDR (2.4 Msamples/s), a HackRF (8 and 20) and a
   B210 (56). Then a paced check at 90% of that rate under the live ``drop`` policy counts drops.
2. **Soak.** A virtual radio (the benchmark's synthetic band with a run of anomalies every 40 windows, a recording
   paced at 2.4 Msamples/s, looped) through Anomaly Detector + Modulation Classifier + Diffusion Waterfall under
   ``drop``: first with the waterfall computing its rows but not drawn (the long run: samples in against windows
   scored plus counted drops, drops, resident memory growth after warm-up, the events of the first pass against an
   offline ``block`` run of the same recording), then with the view drawn (offscreen Qt) at 2.4 and at 1.2
   Msamples/s (drops, and the frames it draws per second).
3. **Overload and recovery.** The same chain at twice the rate it sustains: drops are counted and tagged (``dw_drop``
   tags add up to the count); then the rate comes back down and the drops stop; ``tb.stop(); tb.wait()`` is timed.

``--quick``: 12 s soaks and short budget runs (about 3 minutes); full: a 6-minute soak and two of 90 s (about 13
minutes).
"""

from __future__ import annotations

import gc
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pmt
from gnuradio import blocks, gr

from diffwireless.bench.results import BenchRow, headless_pyplot, log_t_interval
from diffwireless.engine import EngineOptions, device_name, resolve_device
from diffwireless.progress import track
from diffwireless.recording import SigMFWriter

LIVE_CLASSIFIER = "modclass_resnet"  # the classifier of the published live figures (frame by frame)

RADIOS = (("RTL-SDR", 2.4e6), ("HackRF 8 MS/s", 8e6), ("HackRF 20 MS/s", 20e6), ("B210", 56e6))
SOAK_RATE = 2.4e6
WINDOW = 1024
DROP_TAG = pmt.intern("dw_drop")


def _rss_bytes() -> int:
    with open("/proc/self/status") as fp:
        for line in fp:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def scene_recording(folder: Path, windows: int, rate: float = SOAK_RATE) -> Path:
    """The synthetic band (normal traffic with a run of 5 anomalous windows every 40) as a SigMF recording."""
    from diffwireless import spectrum_scenes

    samples, _ = spectrum_scenes.demo_stream(windows, seed=1)
    with SigMFWriter(folder / "band", "cf32_le", rate) as writer:
        writer.write(samples)
    return writer.meta_path


def ofdm_recording(folder: Path, packets: int) -> Path:
    """GNU Radio's OFDM transmitter's packets through a 3-tap channel at 20 dB, as a SigMF recording."""
    from gnuradio.diffwireless.recipes.ofdm_loopback import transmit

    tx = transmit(packets, seed=3)
    rng = np.random.default_rng(0)
    x = np.convolve(np.asarray(tx.samples), [1.0, 0.0, 0.45j, 0.0, -0.2])[: len(tx.samples)]
    x = x + math.sqrt(tx.signal_power / 100 / 2) * (rng.standard_normal(len(x)) + 1j * rng.standard_normal(len(x)))
    with SigMFWriter(folder / "ofdm", "cf32_le", 20e6) as writer:
        writer.write((0.7 * x / np.abs(x).max()).astype(np.complex64))
    return writer.meta_path


class _DropTags(gr.sync_block):
    """Sums the ``dw_drop`` tags of a stream (the drops a block reported downstream) and counts its items."""

    def __init__(self, itemsize_dtype) -> None:
        gr.sync_block.__init__(self, name="bench_drop_tags", in_sig=[itemsize_dtype], out_sig=None)
        self.tagged = 0

    def work(self, input_items, output_items):
        n = len(input_items[0])
        for tag in self.get_tags_in_window(0, 0, n, DROP_TAG):
            self.tagged += int(pmt.to_uint64(tag.value))
        return n


def _blocks(engine: EngineOptions):
    """The diffusion blocks at their defaults: (name, factory, output dtype, input unit)."""
    from gnuradio.diffwireless.anomaly_detector import anomaly_detector
    from gnuradio.diffwireless.diffusion_denoiser import diffusion_denoiser
    from gnuradio.diffwireless.diffusion_detector import diffusion_detector
    from gnuradio.diffwireless.diffusion_ofdm_rx import diffusion_ofdm_rx
    from gnuradio.diffwireless.modulation_classifier import modulation_classifier

    return (
        ("Anomaly Detector", lambda: anomaly_detector(engine=engine), np.float32, "samples/s"),
        # Fixed frames (modclass_resnet), as docs/live.md measured it; with the front end: dw-bench classify.
        ("Modulation Classifier", lambda: modulation_classifier(LIVE_CLASSIFIER, engine=engine), np.int32,
         "samples/s"),
        ("Diffusion Denoiser", lambda: diffusion_denoiser("iq_denoiser_qpsk_sps4", engine=engine), np.complex64,
         "samples/s"),
        ("Diffusion Detector (16QAM)", lambda: diffusion_detector(engine=engine), np.uint8, "symbols/s"),
        ("OFDM Receiver (diffusion equalizer)", lambda: diffusion_ofdm_rx(engine=engine), np.uint8, "samples/s"),
    )


def _throughput(make, out_dtype, recording: Path, samples: int, rate: float = 0.0, seconds: float = 0.0) -> dict:
    """Run ``recording`` (looped up to ``samples``, or paced at ``rate`` for ``seconds``) through one block."""
    from gnuradio.diffwireless.sigmf_source import sigmf_source

    paced = rate > 0
    src = sigmf_source(str(recording), repeat=True, realtime=paced, sample_rate=rate if paced else 0.0)
    blk = make()
    sink = _DropTags(out_dtype)
    tb = gr.top_block()
    head = blocks.head(gr.sizeof_gr_complex, samples if not paced else 1 << 62)
    tb.connect(src, head, blk, sink)
    t0 = time.perf_counter()
    tb.start()
    if paced:
        time.sleep(seconds)
        tb.stop()
    tb.wait()
    elapsed = time.perf_counter() - t0
    stats = blk.stats() if hasattr(blk, "stats") else {}
    return {"rate": head.nitems_written(0) / elapsed, "items_in": head.nitems_written(0),
            "dropped": int(stats.get("dropped_items", 0)), "tagged": sink.tagged}


def budget(folder: Path, quick: bool, dev: str) -> tuple[list[BenchRow], dict[str, float]]:
    band = scene_recording(folder, 1200 if quick else 2400)
    ofdm = ofdm_recording(folder, 60)
    rows, sustained = [], {}
    lossless = EngineOptions(device="auto", policy="block")
    live = EngineOptions(device="auto", policy="drop")
    repeats, samples = 3, (1 << 20 if quick else 1 << 22)
    for name, make, out_dtype, unit in track(_blocks(lossless), "live: budget"):
        rec = ofdm if name.startswith("OFDM") else band
        rates = [_throughput(make, out_dtype, rec, samples)["rate"] for _ in range(repeats)]
        mean, lo, hi = log_t_interval(rates)
        sustained[name] = mean
        rows.append(BenchRow(name, "unpaced, policy block", f"sustained_{unit.replace('/', '_per_')}", mean, lo, hi,
                             device=dev, extra={"repeats": rates}))
        for radio, radio_rate in RADIOS:
            rows.append(BenchRow(name, f"vs {radio} ({radio_rate / 1e6:g} MS/s)", "headroom_ratio", mean / radio_rate,
                                 lo / radio_rate, hi / radio_rate, device=dev))
        live_make = dict((n, m) for n, m, _, _ in _blocks(live))[name]
        check = _throughput(live_make, out_dtype, rec, 0, rate=0.9 * mean, seconds=3.0 if quick else 8.0)
        frac = check["dropped"] / max(check["items_in"], 1)
        rows.append(BenchRow(name, f"paced at 90% of sustained ({0.9 * mean / 1e6:.3g} M{unit}), policy drop",
                             "dropped_fraction", frac, frac, frac, device=dev,
                             extra={"items_in": check["items_in"], "dropped": check["dropped"],
                                    "achieved_rate": check["rate"]}))
    return rows, sustained


class _Soak:
    """The live chain on a paced, looped recording: Anomaly Detector + Modulation Classifier + Diffusion Waterfall."""

    def __init__(self, recording: Path, rate: float, policy: str, loop: bool = True, views: bool = True) -> None:
        from gnuradio.diffwireless.anomaly_detector import anomaly_detector
        from gnuradio.diffwireless.diffusion_waterfall import diffusion_waterfall
        from gnuradio.diffwireless.modulation_classifier import modulation_classifier
        from gnuradio.diffwireless.sigmf_source import sigmf_source

        engine = EngineOptions(device="auto", policy=policy)
        paced = policy == "drop"
        self.tb = gr.top_block("bench_live")
        self.src = sigmf_source(str(recording), repeat=loop, realtime=paced, sample_rate=rate)
        self.det = anomaly_detector(engine=engine, pfa=0.01, hold=2, sample_rate=rate)
        self.cls = modulation_classifier(LIVE_CLASSIFIER, engine=engine, min_confidence=0.5)
        self.waterfall = diffusion_waterfall(sample_rate=rate)
        self.det_tags, self.cls_tags = _DropTags(np.float32), _DropTags(np.int32)
        self.tb.connect(self.src, self.det, self.det_tags)
        self.tb.connect(self.src, self.cls, self.cls_tags)
        self.tb.connect(self.src, self.waterfall)
        for port in ("events", "scores"):
            self.tb.msg_connect(self.det, port, self.waterfall, port)
        self.tb.msg_connect(self.cls, "classification", self.waterfall, "classification")
        self.view = self.waterfall.qwidget() if views else None

    def counts(self) -> dict:
        out = {"samples": self.src.nitems_written(0)}
        for name, blk, tags in (("anomaly", self.det, self.det_tags), ("classify", self.cls, self.cls_tags)):
            st = blk.stats()
            out[name] = {"items_in": st["items_in"], "items_out": st["items_out"], "dropped": st["dropped_items"],
                         "in_flight": st["in_flight_windows"], "tagged": tags.tagged}
        return out


def _soak_once(app, recording: Path, rate: float, seconds: float, views: bool) -> dict:
    """One paced run of the live chain; counts, memory once a second, the view's frames, the events, stop time."""
    from PyQt5 import QtCore

    run = _Soak(recording, rate, "drop", views=views)
    if views:
        run.view.resize(1000, 500)
        run.view.show()
    rss: list[tuple[float, int]] = []
    fps_samples: list[float] = []
    frames_start = None
    t0 = time.monotonic()
    next_sample, end = t0, t0 + seconds
    run.tb.start()
    while time.monotonic() < end:
        if views:
            app.processEvents(QtCore.QEventLoop.AllEvents, 20)  # the view draws in this (the Qt) thread
        time.sleep(0.005)
        now = time.monotonic()
        if now >= next_sample:  # once a second: memory, and the view's frame rate after warm-up
            next_sample += 1.0
            rss.append((now - t0, _rss_bytes()))
            if views and now - t0 >= 0.1 * seconds:
                if frames_start is None:
                    frames_start = (now, run.waterfall.view.frames_drawn)
                fps_samples.append(run.waterfall.view.fps)
    frames = None
    if views and frames_start is not None:
        frames = (run.waterfall.view.frames_drawn - frames_start[1]) / (time.monotonic() - frames_start[0])
    t_stop = time.perf_counter()
    run.tb.stop()
    run.tb.wait()
    out = {"stop_s": time.perf_counter() - t_stop, "counts": run.counts(), "rss": rss, "fps": frames,
           "fps_samples": [f for f in fps_samples if f > 0], "events": list(run.det.events),
           "thinned": run.waterfall.model.rows_in.thinned, "rows": run.waterfall.model.rows_in.put_count}
    if views:
        run.waterfall.view.timer.stop()
        run.view.close()
    return out


def soak(folder: Path, quick: bool, dev: str, sustained_chain: float) -> list[BenchRow]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt5 import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["dw-bench-live"])
    windows = 2344  # one pass: 2.4 M samples, 1 s at 2.4 MS/s; whole windows so every pass lines up
    (folder / "soak").mkdir()
    recording = scene_recording(folder / "soak", windows)
    pass_samples = windows * WINDOW
    rows: list[BenchRow] = []
    # The offline reference: one pass, lossless.
    ref = _Soak(recording, SOAK_RATE, "block", loop=False, views=False)
    ref.tb.run()
    offline = [e for e in ref.det.events if e["end"] < pass_samples]
    del ref
    gc.collect()
    # The long soak at the radio's rate, then the view drawn at that rate and at half of it.
    long_s, short_s = (12.0, 12.0) if quick else (360.0, 90.0)
    settings = (("view not drawn", SOAK_RATE, long_s, False), ("view drawn", SOAK_RATE, short_s, True),
                ("view drawn", SOAK_RATE / 2, short_s, True))
    for label, rate, seconds, views in track(settings, "live: soak"):
        res = _soak_once(app, recording, rate, seconds, views)
        setting = f"{rate / 1e6:g} MS/s for {seconds:.0f} s, {label}, policy drop"
        for name in ("anomaly", "classify"):
            c = res["counts"][name]
            accounted = c["items_out"] * WINDOW + c["dropped"] + c["in_flight"] * WINDOW
            frac = c["dropped"] / max(c["items_in"], 1)
            rows.append(BenchRow(f"soak {name}", setting, "dropped_fraction", frac, frac, frac, device=dev,
                                 extra={"items_in": c["items_in"], "dropped": c["dropped"],
                                        "scored_samples": c["items_out"] * WINDOW, "tagged": c["tagged"],
                                        "in_flight_at_stop": c["in_flight"]}))
            # Samples in = scored + dropped + still in flight at stop (whole windows; the last partial one waits).
            gap = c["items_in"] - accounted
            rows.append(BenchRow(f"soak {name}", setting, "unaccounted_samples", gap, gap, gap, device=dev))
        if views and res["fps"] is not None:
            per_s = np.array(res["fps_samples"]) if res["fps_samples"] else np.array([res["fps"]])
            lo, hi = np.percentile(per_s, [2.5, 97.5])
            rows.append(BenchRow("Diffusion Waterfall", setting, "frames_per_s", res["fps"], min(lo, res["fps"]),
                                 max(hi, res["fps"]), device=dev,
                                 extra={"thinned_rows": res["thinned"], "rows": res["rows"]}))
        if not views:
            warm = [r for t, r in res["rss"] if t >= 0.2 * seconds]
            growth = (warm[-1] - warm[0]) / warm[0] if len(warm) >= 2 else float("nan")
            rows.append(BenchRow("soak", f"{setting}: resident memory from 20% of the run to its end",
                                 "rss_growth_fraction", growth, growth, growth, device=dev,
                                 extra={"rss_mb": [round(r / 2 ** 20, 1) for _, r in res["rss"][::10]]}))
            first = [e for e in res["events"] if e["end"] < pass_samples]
            same = float(first == offline)
            rows.append(BenchRow("soak anomaly", f"{setting}: events of the first pass vs an offline block-policy "
                                 "run", "identical", same, same, same, device=dev,
                                 extra={"live_events": len(first), "offline_events": len(offline)}))
        rows.append(BenchRow("soak", f"{setting}: tb.stop(); tb.wait() with work in flight", "stop_s",
                             res["stop_s"], res["stop_s"], res["stop_s"], device=dev))
    # Overload at twice the rate the chain sustains, then back down to half the radio's rate.
    over_rate, calm_rate = 2 * sustained_chain, SOAK_RATE / 2
    phase = 8.0 if quick else 20.0
    ovr = _Soak(recording, over_rate, "drop", views=False)
    ovr.tb.start()
    time.sleep(phase)
    at_over = ovr.counts()
    ovr.src.set_rate(calm_rate)
    time.sleep(phase / 2)  # the backlog drains
    settled = ovr.counts()
    time.sleep(phase / 2)
    after = ovr.counts()
    t_stop = time.perf_counter()
    ovr.tb.stop()
    ovr.tb.wait()
    stop_over = time.perf_counter() - t_stop
    final = {name: (blk.stats(), tags.tagged) for name, blk, tags in
             (("anomaly", ovr.det, ovr.det_tags), ("classify", ovr.cls, ovr.cls_tags))}
    for name in ("anomaly", "classify"):
        dropped = at_over[name]["dropped"]
        frac = dropped / max(at_over[name]["items_in"], 1)
        rows.append(BenchRow(f"overload {name}", f"{over_rate / 1e6:.3g} MS/s (2x sustained) for {phase:g} s",
                             "dropped_fraction", frac, frac, frac, device=dev,
                             extra={"dropped": dropped, "items_in": at_over[name]["items_in"]}))
        st, tagged = final[name]
        ok = float(tagged + st["untagged_drops"] == st["dropped_items"])
        rows.append(BenchRow(f"overload {name}", "dw_drop tags (plus drops not yet tagged at stop) add up to the "
                             "drops counted", "identical", ok, ok, ok, device=dev,
                             extra={"tagged": tagged, "untagged_at_stop": st["untagged_drops"],
                                    "dropped": st["dropped_items"]}))
        late = after[name]["dropped"] - settled[name]["dropped"]
        rows.append(BenchRow(f"recovery {name}", f"back at {calm_rate / 1e6:.3g} MS/s: drops in the last "
                             f"{phase / 2:g} s", "dropped_samples", late, late, late, device=dev))
    rows.append(BenchRow("overload", "tb.stop(); tb.wait() after overload", "stop_s", stop_over, stop_over,
                         stop_over, device=dev))
    return rows


def run(quick: bool = False) -> list[BenchRow]:
    dev = device_name(resolve_device("auto"))
    with tempfile.TemporaryDirectory(prefix="dw-bench-live-") as tmp:
        folder = Path(tmp)
        rows, sustained = budget(folder, quick, dev)
        a, c = sustained["Anomaly Detector"], sustained["Modulation Classifier"]
        chain = 1.0 / (1.0 / a + 1.0 / c)  # both share the engine and the CPU
        rows.append(BenchRow("Anomaly Detector + Modulation Classifier", "estimated from the two, sharing the CPU",
                             "sustained_samples_per_s", chain, chain, chain, device=dev))
        rows += soak(folder, quick, dev, chain)
    return rows


def plot(rows: list[BenchRow], path: Path) -> None:
    plt = headless_pyplot()

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    rates = [r for r in rows if r.metric.startswith("sustained_") and r.setting.startswith("unpaced")]
    names = [r.method.replace(" (", "\n(") for r in rates]
    y = np.arange(len(rates))
    vals = np.array([r.value for r in rates]) / 1e6
    err = np.array([[r.value - r.ci_low, r.ci_high - r.value] for r in rates]).T / 1e6
    ax.barh(y, vals, xerr=err, color="tab:blue")
    for radio, rate in RADIOS:
        ax.axvline(rate / 1e6, color="gray", ls=":", lw=1)
        ax.text(rate / 1e6, len(rates) - 0.4, radio, rotation=90, fontsize=7, va="top", ha="right", color="gray")
    ax.set_yticks(y, names, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("sustained input rate (M items/s), lossless, this machine")
    ax.set_title("Real-time budget")
    soak_rows = [r for r in rows if r.method.startswith(("soak", "overload", "recovery", "Diffusion Waterfall"))]
    text = "\n".join(f"{r.method}: {r.setting}: {r.metric} = {r.value:.4g}" for r in soak_rows)
    ax2.axis("off")
    ax2.text(0, 1, text, va="top", fontsize=6.2, family="monospace", wrap=True)
    ax2.set_title("Soak, overload, recovery")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
