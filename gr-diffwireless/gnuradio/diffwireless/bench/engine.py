"""``dw-bench engine``: what the shared engine buys over running the network inside ``work()``.

Three ways to run one denoiser over N concurrent complex streams (N = 1, 4, 16), all measured in one run:

- ``per-call in work()``: today's pattern (gr-wavelearner, gr-torchdsp style): each stream's block runs the sampler
  on the chunk GNU Radio hands its ``work()``, in its own thread, nothing shared. Measured twice: with GNU Radio's
  default chunks (thousands of samples once the block is the bottleneck) and with ``max_noutput_items = 256``, the
  small chunks of a flowgraph tuned for low latency.
- ``engine (flowgraph)``: ``vector source (repeat) -> diffusion_denoiser -> null sink`` per stream, one engine.
- ``engine alone``: N Python threads submit the same chunks straight to the engine (no GNU Radio).

Throughput is counted at the sinks after a warm-up. The four methods run back to back in each of several rounds
(the host's speed drifts between minutes), and every number is the geometric mean over rounds with its 95%
t-interval; ratios are taken within a round. Latency is the time a chunk spends in the network call (per-call) or from
submission to result (engine). The flowgraph's ``tb.stop(); tb.wait()`` time with work in flight is recorded too.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch
from gnuradio import blocks, gr

from diffwireless.bench.results import BenchRow, headless_pyplot, log_t_interval
from diffwireless.denoiser import iq_pairs
from diffwireless.diffusion import DDIMSampler, NoiseSchedule
from diffwireless.engine import DenoiseEngine, Job, acquire_engine, device_name, release_engine, resolve_device
from diffwireless.models import DiffusionModel, build_model, save_model

from gnuradio.diffwireless.diffusion_denoiser import diffusion_denoiser

WINDOW = 16
NUM_STEPS = 10
START_STEP = 400  # an input around 0 dB SNR: all 10 steps are taken
STREAMS = (1, 4, 16)
SMALL_CHUNK = 256
PERCALL = "per-call in work()"
PERCALL_SMALL = f"per-call in work(), {SMALL_CHUNK}-sample chunks"
FLOW = "engine (flowgraph)"
ALONE = "engine alone"
METHODS = (PERCALL, PERCALL_SMALL, FLOW, ALONE)
CHUNK = 4096  # samples per engine-alone submission, about what GNU Radio hands a block per work() call
DENOISER_CONFIG = {"item_shape": [WINDOW, 2], "hidden": 256, "hidden_layers": 3, "time_dim": 32}
DETECTOR_CONFIG = {"item_shape": [1, 2], "hidden": 128, "hidden_layers": 3, "time_dim": 32}  # Letafati et al.


class percall_denoiser(gr.sync_block):
    """The baseline: the sampler runs inside ``work()`` on whatever chunk arrives (whole windows)."""

    def __init__(self, model: DiffusionModel, sampler: DDIMSampler, device: torch.device, max_chunk: int = 0) -> None:
        gr.sync_block.__init__(self, name="percall_denoiser", in_sig=[np.complex64], out_sig=[np.complex64])
        self.set_output_multiple(WINDOW)
        if max_chunk:
            self.set_max_noutput_items(max_chunk)
        self.model, self.sampler, self.device = model, sampler, device
        self.net = model.network.to(device)
        self.latencies: list[float] = []

    def work(self, input_items, output_items):
        x = input_items[0]
        n = (len(x) // WINDOW) * WINDOW
        t0 = time.perf_counter()
        windows = torch.from_numpy(iq_pairs(x[:n].reshape(-1, WINDOW)))
        with torch.inference_mode():
            y = self.sampler.run(self.net, self.model.schedule, windows.to(self.device))
        output_items[0][:n] = y.cpu().numpy().reshape(-1).view(np.complex64)
        self.latencies.append(time.perf_counter() - t0)
        return n


def _measure_flowgraph(make_block, n_streams: int, warmup_s: float, intervals: int, interval_s: float):
    """Run N chains ``source -> block -> null sink``; returns (samples/s per interval, stop+wait seconds, blocks)."""
    rng = np.random.default_rng(0)
    tb = gr.top_block()
    sinks, blks, srcs = [], [], []
    for _ in range(n_streams):
        x = (rng.standard_normal(1 << 14) + 1j * rng.standard_normal(1 << 14)).astype(np.complex64) / np.sqrt(2)
        src = blocks.vector_source_c(x.tolist(), True)
        blk = make_block()
        sink = blocks.null_sink(gr.sizeof_gr_complex)
        tb.connect(src, blk, sink)
        srcs.append(src)
        blks.append(blk)
        sinks.append(sink)

    def count() -> int:
        return sum(s.nitems_read(0) for s in sinks)

    tb.start()
    time.sleep(warmup_s)
    rates = []
    c0, t0 = count(), time.perf_counter()
    for _ in range(intervals):
        time.sleep(interval_s)
        c1, t1 = count(), time.perf_counter()
        rates.append((c1 - c0) / (t1 - t0))
        c0, t0 = c1, t1
    s0 = time.perf_counter()
    tb.stop()
    tb.wait()
    return rates, time.perf_counter() - s0, blks


def _measure_engine_alone(engine: DenoiseEngine, model: DiffusionModel, sampler: DDIMSampler, n_streams: int,
                          chunk: int, warmup_s: float, intervals: int, interval_s: float, depth: int = 4):
    """N threads each keep ``depth`` chunks in flight; returns samples/s per interval."""
    per_window = model.item_shape[0]
    x = np.random.default_rng(1).standard_normal((chunk // per_window, *model.item_shape)).astype(np.float32)
    done = [0] * n_streams
    stop = threading.Event()

    def stream(i: int) -> None:
        inflight: deque = deque()
        while not stop.is_set():
            while len(inflight) < depth:
                inflight.append(engine.submit(Job(model, x, sampler)))
            inflight.popleft().result()
            done[i] += chunk
        for f in inflight:
            f.result()

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(n_streams)]
    for th in threads:
        th.start()
    time.sleep(warmup_s)
    rates = []
    c0, t0 = sum(done), time.perf_counter()
    for _ in range(intervals):
        time.sleep(interval_s)
        c1, t1 = sum(done), time.perf_counter()
        rates.append((c1 - c0) / (t1 - t0))
        c0, t0 = c1, t1
    stop.set()
    for th in threads:
        th.join()
    return rates


def run(quick: bool = False) -> list[BenchRow]:
    device = resolve_device("auto")
    dev = device_name(device)
    warmup, intervals, interval_s, rounds = (1.0, 2, 0.75, 3) if quick else (2.0, 3, 1.5, 4)
    torch.manual_seed(0)
    schedule = NoiseSchedule(1000)
    model = build_model("bench_denoiser", "mlp_denoiser", DENOISER_CONFIG, schedule)
    sampler = DDIMSampler(num_steps=NUM_STEPS, start_step=START_STEP)
    nfe = sampler.nfe(schedule)
    snr_db = -10 * math.log10(2 * schedule.noise_to_signal(START_STEP))  # the block's SNR for that start step
    rows: list[BenchRow] = []
    tmp = tempfile.mkdtemp(prefix="dw-bench-engine-")
    model_file = str(save_model(model, Path(tmp) / "bench_denoiser")[0])

    def row(method, setting, metric, values, extra=None):
        mean, lo, hi = log_t_interval(values) if isinstance(values, list) else (values, values, values)
        rows.append(BenchRow(method, setting, metric, mean, lo, hi, nfe, dev, extra or {}))
        return mean

    for n in STREAMS:
        setting = f"streams={n} window={WINDOW} ddim_steps={NUM_STEPS}"
        rate: dict[str, list[float]] = {m: [] for m in METHODS}
        p50: dict[str, list[float]] = {m: [] for m in METHODS}
        p99: dict[str, list[float]] = {m: [] for m in METHODS}
        stop_s: list[float] = []
        extra: dict[str, dict] = {m: {} for m in METHODS}
        # Rounds of all four methods back to back: the machine's speed drifts, so ratios are taken within a round.
        for _ in range(rounds):
            # 1. per-call inside work(), GNU Radio's default chunks and 256-sample chunks
            for name, max_chunk in ((PERCALL, 0), (PERCALL_SMALL, SMALL_CHUNK)):
                rates, _, blks = _measure_flowgraph(lambda: percall_denoiser(model, sampler, device, max_chunk), n,
                                                    warmup, intervals, interval_s)
                lat = np.concatenate([np.asarray(b.latencies) for b in blks]) * 1e3
                rate[name].append(float(np.mean(rates)))
                p50[name].append(float(np.percentile(lat, 50)))
                p99[name].append(float(np.percentile(lat, 99)))
            # 2. engine in a flowgraph; one engine held for the measurement, so its stats cover all N blocks
            holder = acquire_engine("auto")
            try:
                rates, stopped, _ = _measure_flowgraph(
                    lambda: diffusion_denoiser(model_file, snr_db=snr_db, num_steps=NUM_STEPS, engine="auto"), n,
                    warmup, intervals, interval_s)
                st = holder.stats()
            finally:
                release_engine(holder)
            rate[FLOW].append(float(np.mean(rates)))
            p50[FLOW].append(st["latency_p50_ms"])
            p99[FLOW].append(st["latency_p99_ms"])
            stop_s.append(stopped)
            extra[FLOW] = {"batch_mean_windows": round(st["batch_mean"], 1), "batch_max_windows": st["batch_max"]}
            # 3. the engine alone
            engine = DenoiseEngine("auto").start()
            try:
                rates = _measure_engine_alone(engine, model, sampler, n, CHUNK, warmup, intervals, interval_s)
                st = engine.stats()
            finally:
                engine.stop()
            rate[ALONE].append(float(np.mean(rates)))
            p50[ALONE].append(st["latency_p50_ms"])
            p99[ALONE].append(st["latency_p99_ms"])
            extra[ALONE] = {"batch_mean_windows": round(st["batch_mean"], 1), "chunk_samples": CHUNK}
        for m in METHODS:
            row(m, setting, "samples_per_s", rate[m], dict(extra[m], rounds=[round(v) for v in rate[m]]))
            row(m, setting, "latency_p50_ms", p50[m])
            row(m, setting, "latency_p99_ms", p99[m])
        row(FLOW, setting, "stop_wait_s", stop_s, {"rounds": [round(v, 4) for v in stop_s]})
        for num, den in ((FLOW, PERCALL), (FLOW, PERCALL_SMALL), (FLOW, ALONE)):
            row(f"{num} / {den}", setting, "throughput_ratio", [a / b for a, b in zip(rate[num], rate[den])])

    # The detector-sized network (Letafati et al.: 3 x 128 Softplus, one complex symbol per item), engine alone.
    torch.manual_seed(0)
    detector = build_model("bench_detector", "mlp_denoiser", DETECTOR_CONFIG, schedule)
    engine = DenoiseEngine("auto").start()
    try:
        rates = _measure_engine_alone(engine, detector, sampler, 16, CHUNK, warmup, intervals, interval_s)
        st = engine.stats()
    finally:
        engine.stop()
    rows.append(BenchRow("engine alone", f"detector-sized MLP streams=16 ddim_steps={NUM_STEPS}", "samples_per_s",
                         *log_t_interval(rates), nfe, dev, {"batch_mean_items": round(st["batch_mean"], 1)}))
    return rows


def plot(rows: list[BenchRow], path: Path) -> None:
    plt = headless_pyplot()

    methods = [PERCALL_SMALL, PERCALL, FLOW, ALONE]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.2
    for i, m in enumerate(methods):
        pts = [r for r in rows if r.method == m and r.metric == "samples_per_s" and r.setting.startswith("streams")]
        xs = np.arange(len(pts)) + (i - 1.5) * width
        vals = np.array([r.value for r in pts])
        err = np.array([[r.value - r.ci_low for r in pts], [r.ci_high - r.value for r in pts]])
        ax.bar(xs, vals / 1e6, width, yerr=err / 1e6, label=m, capsize=3)
        lat = [r for r in rows if r.method == m and r.metric == "latency_p99_ms"]
        ax2.bar(xs, [r.value for r in lat], width, label=m)
    labels = [r.setting.split()[0] for r in rows if r.method == methods[0] and r.metric == "samples_per_s"]
    for a in (ax, ax2):
        a.set_xticks(np.arange(len(labels)), labels)
        a.grid(axis="y", alpha=0.3)
    ax.set_ylabel("Msamples/s (95% CI)")
    ax2.set_ylabel("latency p99 (ms)")
    ax2.set_yscale("log")
    handles, labels_ = ax.get_legend_handles_labels()
    fig.legend(handles, labels_, loc="lower center", ncol=4, fontsize=8)
    device = rows[0].device if rows else ""
    fig.suptitle(f"dw-bench engine: window denoiser, {WINDOW}-sample windows, DDIM {NUM_STEPS} steps, {device}")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
