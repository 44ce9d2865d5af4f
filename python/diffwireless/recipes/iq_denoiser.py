"""``iq_denoiser_qpsk_sps4``: the window denoiser shipped for ``diffusion_denoiser`` and its example flowgraph.

Data: RRC-shaped QPSK (roll-off 0.35, 4 samples/symbol, as the bundled demo recording), unit power, cut into windows
of 16 samples at random offsets, each rotated by a uniform random phase and a random frequency offset of up to
+-0.02 cycles/sample. Training: the DDPM noise-prediction loss on a linear 1000-step schedule, with steps drawn
uniformly from those whose noise is at most that of a -10 dB SNR input (the range the block is used in).

Baseline, measured in the same run: the linear MMSE (Wiener) estimator over the same 16-sample window, built from
the covariance of the clean windows (the best any linear filter of the window can do).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffwireless.denoiser import IQDenoiser, iq_pairs, noise_var_per_dim, output_snr_db, window_lmmse
from diffwireless.diffusion.schedule import NoiseSchedule
from diffwireless.diffusion.training import noise_prediction_step
from diffwireless.distributed import record as distributed_record
from diffwireless.distributed import wrap
from diffwireless.engine import DenoiseEngine
from diffwireless.models import DiffusionModel, build_model, save_model
from diffwireless.signals import psk_rrc
from diffwireless.progress import track

NAME = "iq_denoiser_qpsk_sps4"
WINDOW = 16
SPS, BETA = 4, 0.35
MAX_CFO = 0.02  # cycles/sample
MIN_TRAIN_SNR_DB = -10.0
CONFIG = {"item_shape": [WINDOW, 2], "hidden": 256, "hidden_layers": 3, "time_dim": 32}
SEED = 0
ITERATIONS = 6000
BATCH = 1024
LR = 2e-3
EVAL_SNRS_DB = (0.0, 5.0, 10.0, 15.0, 20.0)
EVAL_STEPS = (1, 10)


class WindowSource:
    """Random training/evaluation windows ``[n, WINDOW]`` complex64 cut from one long seeded signal."""

    def __init__(self, seed: int, length: int = 1 << 21) -> None:
        self.rng = np.random.default_rng(seed)
        self.signal = psk_rrc(length, SPS, BETA, self.rng)

    def windows(self, n: int) -> np.ndarray:
        starts = self.rng.integers(0, len(self.signal) - WINDOW, n)
        w = self.signal[starts[:, None] + np.arange(WINDOW)[None, :]]
        phase = self.rng.uniform(0, 2 * np.pi, (n, 1))
        cfo = self.rng.uniform(-MAX_CFO, MAX_CFO, (n, 1))
        rot = np.exp(1j * (phase + 2 * np.pi * cfo * np.arange(WINDOW)[None, :]))
        return (w * rot).astype(np.complex64)


def train(out_dir: str | Path, seed: int = SEED, iterations: int = ITERATIONS) -> DiffusionModel:
    """Train from ``seed`` and write ``NAME.safetensors`` + ``NAME.json`` (with the evaluation) to ``out_dir``."""
    torch.manual_seed(seed)
    schedule = NoiseSchedule(1000, "linear")
    t_max = schedule.step_for_noise_var(noise_var_per_dim(MIN_TRAIN_SNR_DB))
    model = build_model(NAME, "mlp_denoiser", CONFIG, schedule)
    net = model.network.train()
    abar = torch.tensor(schedule.alphas_cumprod, dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched_lr = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    data = WindowSource(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    losses = []
    trained = wrap(net)
    for _ in track(range(iterations), "IQ denoiser"):
        x0 = torch.from_numpy(iq_pairs(data.windows(BATCH)))
        t = torch.randint(0, t_max + 1, (BATCH,), generator=gen)
        losses.append(noise_prediction_step(trained, opt, sched_lr, abar, x0, t, gen))
    net.eval()
    train_s = time.time() - t0
    evaluation = evaluate(model, seed=seed + 1)
    card = {
        "description": "Window denoiser for RRC-shaped QPSK at 4 samples/symbol (roll-off 0.35), 16-sample "
                       "windows, unit signal power; for diffusion_denoiser (SNR-matched DDIM).",
        "data": {"signal": f"QPSK, RRC roll-off {BETA}, {SPS} samples/symbol, unit power",
                 "window": WINDOW, "impairments": f"uniform phase; frequency offset uniform in +-{MAX_CFO} "
                                                   "cycles/sample", "noise": "AWGN, added by the diffusion process",
                 "train_snr_db_min": MIN_TRAIN_SNR_DB, "train_steps_max": t_max},
        "training": {"seed": seed, "iterations": iterations, "batch": BATCH, "optimizer": f"Adam lr {LR}, cosine",
                     "loss": "DDPM noise prediction (MSE)", "final_loss_mean_last_100": float(np.mean(losses[-100:])),
                     "seconds_on_cpu": round(train_s, 1), **distributed_record()},
        "schedule": schedule.to_dict(),
        "input_convention": "complex64 windows, signal power 1 (set signal_power otherwise); (re, im) pairs",
        "evaluation": evaluation,
        "reproduce": f"dw-train {NAME}",
    }
    save_model(model, Path(out_dir) / NAME, card)
    return model


def window_lmmse_cov(data: WindowSource, n: int = 200_000) -> np.ndarray:
    """Covariance ``[2W, 2W]`` of clean windows as real vectors (zero mean by the random phase)."""
    x = iq_pairs(data.windows(n)).reshape(n, -1).astype(np.float64)
    return x.T @ x / n


def evaluate(model: DiffusionModel, seed: int, n: int = 20_000, snrs_db=EVAL_SNRS_DB,
             steps=EVAL_STEPS) -> dict[str, Any]:
    """Output SNR (dB) of the diffusion denoiser (per step count) and of the window LMMSE, same windows and noise.

    Output SNR = signal power / mean squared error per complex sample; 95% intervals from the spread of the
    per-window errors (normal approximation of the mean).
    """
    data = WindowSource(seed)
    cov = window_lmmse_cov(data)
    rng = np.random.default_rng(seed + 7)
    clean = data.windows(n).ravel()
    engine = DenoiseEngine("cpu").start()
    rows = []
    try:
        for snr_db in snrs_db:
            nv = noise_var_per_dim(snr_db)
            noise = (rng.standard_normal(clean.size) + 1j * rng.standard_normal(clean.size)) * math.sqrt(nv)
            noisy = (clean + noise).astype(np.complex64)
            rows.append(_snr_row("noisy input", snr_db, 0, noisy, clean))
            rows.append(_snr_row("window LMMSE", snr_db, 0, window_lmmse(noisy, cov, snr_db), clean))
            for k in steps:
                den = IQDenoiser(model, num_steps=k)
                rows.append(_snr_row("diffusion DDIM", snr_db, den.nfe(snr_db), den.denoise(noisy, snr_db, engine),
                                     clean))
    finally:
        engine.stop()
    return {"metric": "output SNR in dB (signal power / MSE per sample), 95% interval", "windows": n,
            "seed": seed, "rows": rows}


def _snr_row(method: str, snr_db: float, nfe: int, est: np.ndarray, clean: np.ndarray) -> dict[str, Any]:
    value, low, high = output_snr_db(est, clean, block=WINDOW)
    return {"method": method, "snr_db": snr_db, "nfe": nfe, "output_snr_db": round(value, 3),
            "ci_low": round(low, 3), "ci_high": round(high, 3)}
