"""A supervised reference for the anomaly benchmark: what a detector that is *told* the anomalies reaches.

The AE-DDPM detector never sees an anomaly; this reference is trained on labelled windows of the normal band and
of every anomaly type at the JNR it is then tested at, so it knows what to look for and how strong it is. It is a
measuring stick for the scene, not a product and not a bound: an unsupervised detector that came near it would be
doing as well as one could reasonably hope, and a target above it is a target the scene probably does not allow.

The network (:class:`MultiResolutionCNN`) looks at three views of each window, so that no single time-frequency
trade-off limits it: a log spectrogram of 16-point frames (64 frames of 1024 samples: pulses), one of 128-point
frames (the AE-DDPM model's view) and the 1024-point log periodogram (tones and the gaps between channels). It
classifies normal against each anomaly type; a window's score is its probability of not being normal.

``dw-bench anomaly_reference`` trains it at 0 dB JNR and scores fresh windows beside the shipped AE-DDPM model
(about 6 minutes on a 2-core CPU; ``--quick`` a few).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from diffwireless import spectrum_scenes as scenes
from diffwireless.anomaly import log_spectrogram, roc_auc
from diffwireless.bench.results import BenchRow, hanley_mcneil, headless_pyplot
from diffwireless.diffusion.training import optimizer_step
from diffwireless.progress import track

VIEW_N_FFT = (16, 128)  # frame lengths of the two spectrogram views; the third view is one frame of the window
SEED = 0
BENCH_JNR_DB = 0.0  # the goal's point
BENCH_MODEL = "anomaly_band"


def views(iq: np.ndarray) -> list[torch.Tensor]:
    """IQ windows ``[n, window]`` -> the three views: log spectrograms ``[n, 16, window // 16]`` and
    ``[n, 128, window // 128]`` (bins, frames) and the log periodogram ``[n, window]`` (reference level 1)."""
    iq = np.asarray(iq)
    out = [torch.from_numpy(log_spectrogram(iq, n)) for n in VIEW_N_FFT]
    return out + [torch.from_numpy(log_spectrogram(iq, iq.shape[1])[:, :, 0])]


class MultiResolutionCNN(nn.Module):
    """Classifier over :func:`views`: ``forward(short, mid, full) -> logits [B, num_classes]``.

    ``short [B, 16, F16]``: 1-D convolutions over time (bins as channels), pooled (mean and max) over frames.
    ``mid [B, 128, F128]``: 2-D convolutions, pooled over the whole image and, as a per-bin profile, over frames.
    ``full [B, window]``: 1-D convolutions over frequency with two 2x poolings, averaged over channels (a profile).
    """

    def __init__(self, num_classes: int, window: int = scenes.DEFAULT_WINDOW, width: int = 64) -> None:
        super().__init__()
        w2 = width // 2
        self.short = nn.Sequential(nn.Conv1d(VIEW_N_FFT[0], width, 5, padding=2), nn.GELU(),
                                   nn.Conv1d(width, width, 5, padding=2), nn.GELU(),
                                   nn.Conv1d(width, width, 5, padding=2), nn.GELU())
        self.mid = nn.Sequential(nn.Conv2d(1, w2, 3, padding=1), nn.GELU(), nn.Conv2d(w2, w2, 3, padding=1),
                                 nn.GELU(), nn.Conv2d(w2, w2, 3, padding=1), nn.GELU())
        self.mid_profile = nn.Linear(VIEW_N_FFT[1], width)
        self.full = nn.Sequential(nn.Conv1d(1, w2, 9, padding=4), nn.GELU(), nn.MaxPool1d(2),
                                  nn.Conv1d(w2, w2, 9, padding=4), nn.GELU(), nn.MaxPool1d(2),
                                  nn.Conv1d(w2, w2, 9, padding=4), nn.GELU())
        self.full_profile = nn.Linear(window // 4, width)
        self.head = nn.Sequential(nn.Linear(2 * width + 2 * w2 + 2 * width, 4 * width), nn.GELU(),
                                  nn.Linear(4 * width, num_classes))

    def forward(self, short: torch.Tensor, mid: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
        a = self.short(short)
        b = self.mid(mid[:, None])
        c = self.full(full[:, None])
        return self.head(torch.cat([a.mean(2), a.amax(2), b.mean((2, 3)), b.amax((2, 3)),
                                    self.mid_profile(b.mean(dim=(1, 3))), self.full_profile(c.mean(1))], dim=1))


def labelled_windows(n_per_type: int, jnr_db: float, rng: np.random.Generator, kinds: tuple[str, ...],
                     window: int = scenes.DEFAULT_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """``2 n_per_type`` normal windows (label 0) and ``n_per_type`` of each of ``kinds`` (label ``1 + index``)
    at ``jnr_db``: IQ ``[N, window]`` complex64 and labels ``[N]`` int64."""
    parts = [scenes.normal_windows(2 * n_per_type, rng, window)]
    labels = [np.zeros(2 * n_per_type, np.int64)]
    for k, kind in enumerate(kinds):
        parts.append(scenes.anomalous_windows(kind, n_per_type, jnr_db, rng, window))
        labels.append(np.full(n_per_type, k + 1, np.int64))
    return np.concatenate(parts), np.concatenate(labels)


def train_reference(jnr_db: float, kinds: tuple[str, ...] = scenes.ANOMALIES, n_per_type: int = 4000,
                    steps: int = 3000, batch: int = 128, seed: int = SEED) -> MultiResolutionCNN:
    """Train :class:`MultiResolutionCNN` on labelled windows at ``jnr_db`` (data drawn in chunks of 1000 per type
    from ``seed``; AdamW, one-cycle learning rate, cross-entropy)."""
    if n_per_type < 1 or steps < 1:
        raise ValueError(f"need n_per_type >= 1 and steps >= 1, got {n_per_type}, {steps}")
    rng = np.random.default_rng(seed)
    feats: list[list[torch.Tensor]] = []
    labels = []
    for start in range(0, n_per_type, 1000):
        iq, y = labelled_windows(min(1000, n_per_type - start), jnr_db, rng, kinds)
        feats.append(views(iq))
        labels.append(torch.from_numpy(y))
    x = [torch.cat([f[i] for f in feats]) for i in range(3)]
    y = torch.cat(labels)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = MultiResolutionCNN(1 + len(kinds))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    for _ in track(range(steps), "anomaly reference CNN"):
        idx = torch.randint(0, len(y), (batch,), generator=gen)
        optimizer_step(opt, sched, nn.functional.cross_entropy(net(*[v[idx] for v in x]), y[idx]))
    return net.eval()


def reference_score(net: MultiResolutionCNN, iq: np.ndarray, chunk: int = 500) -> np.ndarray:
    """``[n]`` probability that each window ``iq [n, window]`` is not normal."""
    out = []
    with torch.no_grad():
        for i in range(0, len(iq), chunk):
            out.append(1 - net(*views(iq[i:i + chunk])).softmax(dim=1)[:, 0])
    return torch.cat(out).numpy()


def evaluate_reference(net: MultiResolutionCNN, jnr_db: float, kinds: tuple[str, ...] = scenes.ANOMALIES,
                       n_normal: int = 4000, n_anomalous: int = 1000, seed: int = SEED + 1) -> dict[str, float]:
    """ROC AUC per anomaly type at ``jnr_db`` on fresh windows (``seed``), all types against one normal set."""
    rng = np.random.default_rng(seed)
    normal = reference_score(net, scenes.normal_windows(n_normal, rng))
    return {kind: roc_auc(normal, reference_score(net, scenes.anomalous_windows(kind, n_anomalous, jnr_db, rng)))
            for kind in kinds}


def run(quick: bool = False) -> list[BenchRow]:
    """``dw-bench anomaly_reference``: the reference's ROC AUC per anomaly type at 0 dB JNR (the goal's target
    point), beside the shipped AE-DDPM model and its autoencoder alone on the same test windows."""
    from diffwireless.anomaly import AnomalyDetector
    from diffwireless.engine import acquire_engine, device_name, release_engine

    n_per_type, steps, n_normal, n_anom = (1000, 800, 1000, 300) if quick else (4000, 3000, 4000, 1000)
    t0 = time.perf_counter()
    net = train_reference(BENCH_JNR_DB, n_per_type=n_per_type, steps=steps)
    train_s = time.perf_counter() - t0
    det = AnomalyDetector(BENCH_MODEL)
    rng = np.random.default_rng(SEED + 1)
    engine = acquire_engine("auto", seed=SEED + 1)
    device = {"supervised_reference": "cpu", "ae_ddpm": device_name(engine.device)}
    device["ae"] = device["ae_ddpm"]
    rows: list[BenchRow] = []
    aucs: dict[str, list[float]] = {}
    try:
        normal_iq = scenes.normal_windows(n_normal, rng)
        normal = {"supervised_reference": reference_score(net, normal_iq), **_model_scores(det, normal_iq, engine)}
        for kind in scenes.ANOMALIES:
            iq = scenes.anomalous_windows(kind, n_anom, BENCH_JNR_DB, rng)
            anom = {"supervised_reference": reference_score(net, iq), **_model_scores(det, iq, engine)}
            for method in normal:
                auc = roc_auc(normal[method], anom[method])
                aucs.setdefault(method, []).append(auc)
                nfe = 1 if method == "supervised_reference" else det.nfe
                extra = {"anomaly": kind, "jnr_db": BENCH_JNR_DB, "normal_windows": n_normal,
                         "anomalous_windows": n_anom}
                rows.append(BenchRow(method, f"{kind} jnr_db={BENCH_JNR_DB:g}", "auc", auc,
                                     *hanley_mcneil(auc, n_normal, n_anom), nfe=nfe, device=device[method],
                                     extra=extra))
    finally:
        release_engine(engine)
    trained = {"supervised_reference": {"windows_per_type": n_per_type, "steps": steps,
                                        "seconds_on_cpu": round(train_s)}}
    for method, values in aucs.items():
        rows.append(BenchRow(method, f"mean over anomaly types, jnr_db={BENCH_JNR_DB:g}", "mean_auc",
                             float(np.mean(values)), min(values), max(values), device=device[method],
                             extra={"interval": "min..max over types", "model": trained.get(method, BENCH_MODEL)}))
    return rows


def _model_scores(det, iq: np.ndarray, engine) -> dict[str, np.ndarray]:
    out = det.scores(iq, engine)
    return {m: det.method_scores(m, iq, out) for m in ("ae_ddpm", "ae")}


def plot(rows: list[BenchRow], path) -> None:
    plt = headless_pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    kinds = list(scenes.ANOMALIES)
    methods = ["supervised_reference", "ae_ddpm", "ae"]
    for j, method in enumerate(methods):
        got = {r.extra["anomaly"]: r for r in rows if r.method == method and r.metric == "auc"}
        x = np.arange(len(kinds)) + (j - 1) * 0.27
        v = np.array([got[k].value for k in kinds])
        err = np.array([[got[k].value - got[k].ci_low, got[k].ci_high - got[k].value] for k in kinds]).T
        ax.bar(x, v, 0.27, yerr=err, label=method, capsize=2)
    ax.axhline(0.95, color="k", lw=0.8, ls="--", label="goal (mean)")
    ax.set_xticks(np.arange(len(kinds)), kinds)
    ax.set_ylim(0.4, 1.02)
    ax.set_ylabel(f"ROC AUC at {BENCH_JNR_DB:g} dB JNR")
    ax.legend(fontsize=7)
    ax.set_title("Anomaly detection: told the anomalies (supervised) vs never shown them", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
