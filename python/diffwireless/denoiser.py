"""Denoising of complex baseband windows with a diffusion model, SNR-matched, as engine jobs.

A window model takes items of shape ``(W, 2)``: ``W`` complex samples as (real, imaginary) pairs, which is the
float32 view of a complex64 window, so no copy is made on the way in or out. It is trained on windows of
unit-power signal (``E|s|^2 = signal_power``); an input at ``snr_db`` then has noise variance
``signal_power / snr / 2`` per real dimension, and the reverse process starts at the step with that noise level.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from diffwireless.constellations import check_snr_db
from diffwireless.diffusion.noise import item_seeds
from diffwireless.diffusion.samplers import DDIMSampler
from diffwireless.engine import DenoiseEngine, Job
from diffwireless.errors import ModelError
from diffwireless.models import DiffusionModel, shared_model


def iq_pairs(windows: np.ndarray) -> np.ndarray:
    """Complex windows ``[k, W]`` as the float32 items ``[k, W, 2]`` of a window model: a view when the input is
    contiguous complex64, so nothing is copied."""
    windows = np.ascontiguousarray(windows, dtype=np.complex64)
    if windows.ndim != 2:
        raise ValueError(f"expected windows of shape [k, W], got {windows.shape}")
    return windows.view(np.float32).reshape(*windows.shape, 2)


def noise_var_per_dim(snr_db: float, signal_power: float = 1.0) -> float:
    """Noise variance per real dimension of a complex signal of power ``signal_power`` at ``snr_db``."""
    return signal_power * 10.0 ** (-snr_db / 10.0) / 2.0


class IQDenoiser:
    """SNR-matched DDIM denoising of complex windows.

    Args:
        model: a window model (item shape ``(W, 2)``, with a noise schedule) or the path/shipped name of one
            (loaded once per process and shared, so that every block using the file batches together).
        num_steps: DDIM steps (network evaluations per window, at most; fewer when the start step is small).
        eta: DDIM eta (0: deterministic).
        signal_power: power of the clean signal in the units of the input (the model card's convention is 1).
    """

    def __init__(self, model: DiffusionModel | str | Path, num_steps: int = 10, eta: float = 0.0,
                 signal_power: float = 1.0) -> None:
        self.model = model if isinstance(model, DiffusionModel) else shared_model(model)
        shape = self.model.item_shape
        if len(shape) != 2 or shape[1] != 2 or self.model.schedule is None:
            raise ModelError(f"model '{self.model.name}' is not a complex-window denoiser: its items are "
                             f"{shape} (needs (W, 2)) and it has {'a' if self.model.schedule else 'no'} schedule")
        if self.model.cond_dim:
            raise ModelError(f"model '{self.model.name}' needs conditioning; IQDenoiser runs unconditioned models")
        if not signal_power > 0:
            raise ValueError(f"signal_power must be > 0, got {signal_power}")
        DDIMSampler(num_steps=num_steps, eta=eta)  # validates
        self.num_steps = int(num_steps)
        self.eta = float(eta)
        self.signal_power = float(signal_power)
        self._sampler = lru_cache(maxsize=256)(self._make_sampler)

    @property
    def window(self) -> int:
        """Complex samples per window."""
        return self.model.item_shape[0]

    def start_step(self, snr_db: float) -> int:
        """The reverse process's first step for an input at ``snr_db``."""
        return self.model.schedule.step_for_noise_var(noise_var_per_dim(check_snr_db(snr_db)))

    def _make_sampler(self, start_step: int) -> DDIMSampler:
        return DDIMSampler(num_steps=self.num_steps, start_step=start_step, eta=self.eta)

    def sampler(self, snr_db: float) -> DDIMSampler:
        """The sampler spec for ``snr_db`` (equal specs for equal start steps, so the engine batches them)."""
        return self._sampler(self.start_step(snr_db))

    def nfe(self, snr_db: float) -> int:
        return self.sampler(snr_db).nfe(self.model.schedule)

    def job(self, windows: np.ndarray, snr_db: float, positions: np.ndarray | None = None) -> Job:
        """An engine job for complex windows ``[k, W]`` (complex64) at ``snr_db``; with the windows' stream
        ``positions [k]`` the output does not depend on the engine's batching (per-window noise when ``eta > 0``)."""
        x = iq_pairs(windows)
        if x.shape[1] != self.window:
            raise ValueError(f"expected windows of shape [k, {self.window}], got {x.shape[:2]}")
        if self.signal_power != 1.0:
            x = x / np.float32(np.sqrt(self.signal_power))
        seeds = None if positions is None else item_seeds(self.model.seed, positions)
        return Job(self.model, x, self.sampler(snr_db), seeds=seeds)

    def result(self, out: np.ndarray) -> np.ndarray:
        """Engine output ``[k, W, 2]`` float32 -> denoised windows ``[k, W]`` complex64."""
        out = np.ascontiguousarray(out, dtype=np.float32)
        if self.signal_power != 1.0:
            out = out * np.float32(np.sqrt(self.signal_power))
        return out.reshape(len(out), -1).view(np.complex64)

    def denoise(self, iq: np.ndarray, snr_db: float, engine: DenoiseEngine) -> np.ndarray:
        """Denoise a whole complex signal (any length: the last window is zero-padded, the padding dropped)."""
        iq = np.asarray(iq, dtype=np.complex64).ravel()
        n = len(iq)
        k = -(-n // self.window)
        padded = np.zeros(k * self.window, dtype=np.complex64)
        padded[:n] = iq
        out = engine.submit(self.job(padded.reshape(k, self.window), snr_db)).result()
        return self.result(out).ravel()[:n]


def window_lmmse(noisy: np.ndarray, cov: np.ndarray, snr_db: float, signal_power: float = 1.0) -> np.ndarray:
    """The linear MMSE (Wiener) estimate of a complex signal, window by window: the baseline of a window denoiser.

    Args:
        noisy: complex samples; the length is cut to whole windows of ``W = cov.shape[0] // 2``.
        cov: covariance ``[2W, 2W]`` of clean unit-power windows as (re, im) vectors, zero mean.
        snr_db: SNR of ``noisy``; signal_power: power of the clean signal in its units.
    Returns:
        complex64 estimate, ``len(noisy) // W * W`` samples.
    """
    width = cov.shape[0] // 2
    n = len(noisy) // width
    y = iq_pairs(np.reshape(noisy[: n * width], (n, width))).reshape(n, 2 * width).astype(np.float64)
    y /= np.sqrt(signal_power)
    gain = cov @ np.linalg.inv(cov + noise_var_per_dim(snr_db) * np.eye(2 * width))
    est = (y @ gain.T) * np.sqrt(signal_power)
    return np.ascontiguousarray(est, dtype=np.float32).view(np.complex64).ravel()


def output_snr_db(estimate: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None,
                  block: int = 16) -> tuple[float, float, float]:
    """SNR of an estimate against its reference, ``P(reference) / mean |estimate - reference|^2``, in dB, with a
    95% interval from the spread of the error over blocks of ``block`` samples (normal approximation)."""
    n = min(len(estimate), len(reference)) // block * block
    err = np.abs(np.asarray(estimate[:n]) - np.asarray(reference[:n])) ** 2
    power = np.abs(np.asarray(reference[:n])) ** 2
    keep = np.ones(n, dtype=bool) if mask is None else np.asarray(mask[:n], dtype=bool)
    # Blocks wholly inside the mask, so that every block's error is measured on signal.
    blocks = keep.reshape(-1, block).all(axis=1)
    if not blocks.any():
        raise ValueError("no block of samples lies inside the mask")
    e = err.reshape(-1, block)[blocks].mean(axis=1).astype(np.float64)
    p = float(power.reshape(-1, block)[blocks].mean())
    mse, half = float(e.mean()), float(1.96 * e.std(ddof=1) / np.sqrt(len(e))) if len(e) > 1 else 0.0
    db = lambda m: float(10 * np.log10(p / max(m, 1e-30)))  # noqa: E731
    return db(mse), db(mse + half), db(mse - half)
