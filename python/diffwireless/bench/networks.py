"""``dw-bench networks``: how fast each shipped network evaluates, on this machine's engine device and its CPU.

One network evaluation per item (a denoiser's ``eps(x_t, t, cond)`` at one step, a classifier's logits) in fp32
batches of 1024 items, after 3 warm-up calls; items per second, the median of :data:`RUNS` timed batches with
their min..max. It is the ceiling the engine works under (its queueing, batching and copies come on top), and the
figure that says what a GPU buys per model. A network not called as ``net(x, t, cond)`` (the anomaly detector's
autoencoder pair) is left out, with a row saying so.
"""

from __future__ import annotations

import time

import torch

from diffwireless.bench.results import BenchRow

BATCH = 1024
RUNS = 7


def _rate(net: torch.nn.Module, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None, runs: int) -> list[float]:
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)
    rates = []
    with torch.inference_mode():
        for _ in range(3):
            net(x, t, cond)
        sync()
        for _ in range(runs):
            t0 = time.perf_counter()
            net(x, t, cond)
            sync()
            rates.append(len(x) / (time.perf_counter() - t0))
    return rates


def run(quick: bool = False) -> list[BenchRow]:
    from diffwireless.engine import device_name, resolve_device
    from diffwireless.models import load_model
    from diffwireless.paths import model_dir

    devices = [torch.device("cpu")]
    if resolve_device("auto").type == "cuda":
        devices.append(resolve_device("auto"))
    runs = 3 if quick else RUNS
    rows = []
    weights = sorted(p for p in model_dir().glob("*.safetensors") if not p.stem.endswith(("_dnn", "_awgn")))
    for w in weights[:3] if quick else weights:
        model = load_model(w)
        for device in devices:
            net = model.network.to(device).eval()
            x = torch.randn(BATCH, *model.item_shape, device=device)
            t = torch.zeros(BATCH, dtype=torch.long, device=device)
            width = int(getattr(model, "cond_dim", 0) or 0)
            cond = torch.zeros(BATCH, width, device=device) if width else None
            name = device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
            try:
                rates = sorted(_rate(net, x, t, cond, runs))
            except (RuntimeError, TypeError) as exc:
                rows.append(BenchRow(w.stem, "not called as net(x, t, cond)", "items_per_s", float("nan"),
                                     float("nan"), float("nan"), nfe=1, device=name,
                                     extra={"why": f"{type(exc).__name__}: {exc}"[:200]}))
                break
            rows.append(BenchRow(w.stem, f"{model.arch} {list(model.item_shape)}, batch {BATCH}, fp32",
                                 "items_per_s", rates[len(rates) // 2], rates[0], rates[-1], nfe=1, device=name,
                                 extra={"runs": runs, "interval": "min..max of the timed batches"}))
        model.network.to("cpu")
    return rows
