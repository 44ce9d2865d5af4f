"""``dw-bench scaleout``: front ends into one server, and training over processes, on the machine it runs on.

1. **Serving.** 1, 2 and 4 ``dw-frontend`` processes replay a recording (the benchmark band of ``dw-bench live``:
   normal traffic with runs of anomalies, 1 Msamples/s) over ZeroMQ on 127.0.0.1 into one ``dw-serve`` (``anomaly``
   and ``classify``, the lossless ``block`` policy). The front ends start first and wait, so that every stream
   arrives at once: the server's aggregate input rate (all samples over the time from the first sample to the
   last), the engine's latency (submit to result, p50 and p99 of the run), its mean batch and the share of batches
   that mix streams. Every sample is checked to arrive.
2. **Training.** ``iq_denoiser_qpsk_sps4``'s recipe, shortened, under ``torchrun`` with 1 and 2 processes (gloo,
   one thread each; the global batch kept): training items per second of the loop. On a 2-core CPU expect about 1x:
   the point here is that the path is right; the speed-up is a GPU cluster's.

Each figure is the geometric mean of the repeats (3; ``--quick``: 2) with its t interval. ``--quick`` takes about 3
minutes here; the full run about 10.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from diffwireless.bench.results import BenchRow, headless_pyplot, log_t_interval
from diffwireless.engine import device_name, resolve_device
from diffwireless.progress import track

from gnuradio.diffwireless.apps._zmq import free_tcp_ports

FRONT_ENDS = (1, 2, 4)
MODES = ("anomaly", "classify")
RATE = 1e6
TRAIN_RECIPE = "iq_denoiser_qpsk_sps4"
TRAIN_SPEC = "diffwireless.recipes.iq_denoiser:train"  # its recipe, run shortened by python -m diffwireless.distributed
TRAIN_BATCH = 1024  # the recipe's global batch



def _tool(name: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"gnuradio.diffwireless.apps.{name}", *args]


def serve_once(mode: str, recording: Path, n: int, folder: Path, samples: int) -> dict:
    """One server with ``n`` front ends replaying ``recording``; returns the server's report with ``rate`` (samples
    per second, aggregate) added. Raises RuntimeError when a process fails or a sample is missing."""
    port = free_tcp_ports(n)
    report = folder / f"{mode}-{n}.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = []
    try:
        for k in range(n):
            procs.append(subprocess.Popen(_tool("frontend", "--recording", str(recording), "--connect",
                                                f"tcp://127.0.0.1:{port + k}"), env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True))
        time.sleep(1.0)
        server = subprocess.Popen(_tool("serve", mode, "--listen", f"tcp://127.0.0.1:{port}", "--streams", str(n),
                                        "--until-ended", "--idle", "30", "--status", "0", "--json", str(report)),
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        procs.append(server)
        if server.wait(timeout=600) != 0:
            raise RuntimeError(f"dw-serve {mode} with {n} front ends failed: {server.stderr.read()[-2000:]}")
        for p in procs[:-1]:
            if p.wait(timeout=60) != 0:
                raise RuntimeError(f"a front end failed: {p.stderr.read()[-2000:]}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    out = json.loads(report.read_text())
    streams = out["streams"]
    if any(s["samples"] != samples or s["state"] != "ended" for s in streams):
        raise RuntimeError(f"dw-serve {mode}: streams incomplete: {[(s['samples'], s['state']) for s in streams]}")
    span = max(s["last_sample_s"] for s in streams) - min(s["first_sample_s"] for s in streams)
    out["rate"] = sum(s["samples"] for s in streams) / span
    return out


def train_once(processes: int, iterations: int, folder: Path) -> float:
    """Training items per second of the recipe's loop under ``torchrun`` with ``processes`` processes."""
    out = folder / f"train-{processes}-{time.monotonic_ns()}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
           "-m", "diffwireless.distributed", TRAIN_SPEC, str(out),
           "--iterations", str(iterations)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        raise RuntimeError(f"torchrun with {processes} processes failed: {run.stderr[-2000:]}")
    record = json.loads((out / f"{TRAIN_RECIPE}.json").read_text())["training"]
    return iterations * TRAIN_BATCH / record["seconds_on_cpu"]


def run(quick: bool = False) -> list[BenchRow]:
    from gnuradio.diffwireless.bench.live import scene_recording

    repeats = 2 if quick else 3
    windows = 1000 if quick else 4000  # of 1024 samples: 1 or 4 Msamples per front end
    iterations = 150 if quick else 600
    device = device_name(resolve_device("auto"))
    rows: list[BenchRow] = []
    with tempfile.TemporaryDirectory(prefix="dw-bench-scaleout-") as tmp:
        folder = Path(tmp)
        recording = scene_recording(folder, windows, rate=RATE)
        samples = windows * 1024
        runs = [(mode, n, r) for mode in MODES for n in FRONT_ENDS for r in range(repeats)]
        results: dict[tuple[str, int], list[dict]] = {}
        for mode, n, _ in track(runs, "scale-out: serving"):
            results.setdefault((mode, n), []).append(serve_once(mode, recording, n, folder, samples))
        for (mode, n), outs in results.items():
            setting = f"{n} front end{'s' if n > 1 else ''} over ZeroMQ (127.0.0.1), block policy"
            extra = {"repeats": repeats, "samples_per_front_end": samples, "recording": "dw-bench live's band, 1 MS/s",
                     "interval": "geometric mean of the repeats, t interval"}
            rate, lo, hi = log_t_interval([o["rate"] for o in outs])
            rows.append(BenchRow(f"dw-serve {mode}", setting, "samples_per_s", rate, lo, hi, nfe=1, device=device,
                                 extra={**extra, "per_repeat": [round(o["rate"]) for o in outs]}))
            for metric in ("latency_p50_ms", "latency_p99_ms", "batch_mean"):
                values = [max(o["engine"][metric], 1e-6) for o in outs]
                v, lo, hi = log_t_interval(values)
                rows.append(BenchRow(f"dw-serve {mode}", setting, metric, v, lo, hi, nfe=1, device=device,
                                     extra=extra))
            mixed = [o["engine"]["mixed_batches"] / max(1, o["engine"]["batches"]) for o in outs]
            rows.append(BenchRow(f"dw-serve {mode}", setting, "mixed_batch_share", sum(mixed) / len(mixed),
                                 min(mixed), max(mixed), nfe=1, device=device,
                                 extra={**extra, "interval": "min..max of the repeats"}))
        for processes in track((1, 2), "scale-out: training"):
            rates = [train_once(processes, iterations, folder) for _ in range(repeats)]
            v, lo, hi = log_t_interval(rates)
            rows.append(BenchRow(f"dw-train {TRAIN_RECIPE} (torchrun)", f"{processes} process"
                                 f"{'es' if processes > 1 else ''}, gloo, 1 thread each, global batch {TRAIN_BATCH}",
                                 "train_items_per_s", v, lo, hi, nfe=1, device="cpu",
                                 extra={"iterations": iterations, "repeats": repeats,
                                        "per_repeat": [round(r) for r in rates]}))
    return rows


def plot(rows: list[BenchRow], path: Path) -> None:
    plt = headless_pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for mode, colour in zip(MODES, ("tab:blue", "tab:orange")):
        pts = [r for r in rows if r.method == f"dw-serve {mode}" and r.metric == "samples_per_s"]
        n = [int(r.setting.split()[0]) for r in pts]
        axes[0].errorbar(n, [r.value / 1e6 for r in pts], yerr=[[(r.value - r.ci_low) / 1e6 for r in pts],
                         [(r.ci_high - r.value) / 1e6 for r in pts]], marker="o", capsize=3, color=colour, label=mode)
        lat = [r for r in rows if r.method == f"dw-serve {mode}" and r.metric == "latency_p99_ms"]
        axes[1].errorbar(n, [r.value for r in lat], yerr=[[r.value - r.ci_low for r in lat],
                         [r.ci_high - r.value for r in lat]], marker="o", capsize=3, color=colour, label=mode)
    axes[0].axhline(2.4, color="grey", ls=":", label="one RTL-SDR (2.4 MS/s)")
    axes[0].set(xlabel="front ends", ylabel="aggregate Msamples/s", title="one server, all front ends at once",
                xticks=list(FRONT_ENDS))
    axes[1].set(xlabel="front ends", ylabel="engine latency p99 (ms)", title="submit to result",
                xticks=list(FRONT_ENDS))
    tr = [r for r in rows if r.metric == "train_items_per_s"]
    axes[2].bar([r.setting.split(",")[0] for r in tr], [r.value for r in tr],
                yerr=[[r.value - r.ci_low for r in tr], [r.ci_high - r.value for r in tr]], capsize=4)
    axes[2].set(ylabel="training items/s", title=f"torchrun, {TRAIN_RECIPE}")
    for ax in axes[:2]:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
