"""Spectrum anomaly detection: the AE-DDPM detector, its baselines, threshold calibration and event tracking.

- :class:`AnomalyDetector` (after Zeng, Liu and Li, IEEE Commun. Lett. 27(8), 2023, "AE-DDPM"): each window of
  ``window`` IQ samples becomes a log spectrogram (``n_fft``-point frames, no overlap, power over the reference
  noise level); an autoencoder trained on normal traffic only compresses it to a latent vector; a DDPM trained on
  the normal latents noises that vector partly (several noise levels) and denoises it back onto what it learned is
  normal; the decoded spectrogram is compared with the input (:func:`residual_statistics`): what the model cannot
  bring back is what it has not seen. The autoencoder's own reconstruction error (no diffusion) comes out
  of the same network call as a baseline.
- Baselines in the same code path: :func:`energy_score` (the window's power over the reference level; a threshold
  set for a false-alarm rate on normal traffic makes it the CFAR energy detector) and
  :func:`spectral_kurtosis_score` (Antoni's spectral kurtosis per frequency bin, its largest deviation from the
  Gaussian value 1).
- :func:`calibrate` sets thresholds for false-alarm rates from scores of normal windows; :class:`EventTracker`
  turns per-window decisions into events (onset, end, peak).

Scores are per window; larger is more anomalous.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffwireless.diffusion.noise import draw_normal, item_seeds
from diffwireless.diffusion.samplers import Noise
from diffwireless.engine import DenoiseEngine, Job
from diffwireless.errors import ModelError
from diffwireless.models import DiffusionModel, shared_model

ARCH = "spectrogram_ae_ddpm"
LOG_FLOOR = 1e-3  # cell power floor (relative to the reference) before the log: -30 dB
# Noise variances (per standardised latent dimension) at which the latent is noised and denoised again; several
# levels, averaged, as Zeng et al. score over partial diffusion depths. Measured on anomaly_band (0 dB JNR): levels
# of 0.1-1.0 lower the mean AUC by about 0.1 (the posterior mean forgets what makes a normal window itself); at
# 0.003-0.03 the score equals the autoencoder's.
DEFAULT_NOISE_VARS = (0.01, 0.03, 0.1)
# Spectral kurtosis needs many frames per bin: on anomaly_band (0 dB JNR) 32-point frames (32 per window) gave it
# a chirp AUC of 0.83 against 0.75 at the model's 128 (its cards); the baseline keeps frames of at most this length.
KURTOSIS_MAX_N_FFT = 32
PFA_GRID = (0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001)
METHODS = ("ae_ddpm", "ae", "energy", "kurtosis")


def log_spectrogram(iq: np.ndarray, n_fft: int, ref_power: float = 1.0) -> np.ndarray:
    """Windows ``[n, window]`` complex -> ``[n, n_fft, window // n_fft]`` float32 log10 cell power over ``ref_power``.

    Frames of ``n_fft`` samples without overlap, a Hann taper normalised so that white noise of power ``ref_power``
    (per complex sample) has mean cell power 1 (log 0); frequency bins in ascending order (DC in the middle).
    """
    iq = np.asarray(iq)
    n, window = iq.shape
    if window % n_fft:
        raise ValueError(f"window {window} is not a multiple of n_fft {n_fft}")
    taper = np.hanning(n_fft + 1)[:-1]
    frames = iq.reshape(n, window // n_fft, n_fft) * taper
    spec = np.fft.fftshift(np.fft.fft(frames, axis=2), axes=2)
    power = (spec.real ** 2 + spec.imag ** 2) / (np.sum(taper ** 2) * ref_power)
    return np.log10(np.maximum(power, LOG_FLOOR)).transpose(0, 2, 1).astype(np.float32)


def energy_score(iq: np.ndarray, ref_power: float = 1.0) -> np.ndarray:
    """``[n]`` window power over ``ref_power``, in dB (the energy detector's statistic)."""
    iq = np.asarray(iq)
    return (10 * np.log10(np.mean(iq.real.astype(np.float64) ** 2 + iq.imag.astype(np.float64) ** 2, axis=1)
                          / ref_power + 1e-30)).astype(np.float32)


def spectral_kurtosis_score(iq: np.ndarray, n_fft: int) -> np.ndarray:
    """``[n]`` largest ``abs(SK - 1)`` over frequency bins, SK the unbiased spectral kurtosis of each bin's frames.

    For Gaussian noise SK is 1 in every bin; a constant envelope (tone, chirp) pulls it towards 0, intermittent
    energy (pulses, bursts) pushes it up (Antoni, Mech. Syst. Signal Process. 20, 2006; the unbiased estimator of
    Nita and Gary, MNRAS 406, 2010).
    """
    iq = np.asarray(iq)
    n, window = iq.shape
    m = window // n_fft
    spec = np.fft.fft(iq[:, :m * n_fft].reshape(n, m, n_fft) * np.hanning(n_fft + 1)[:-1], axis=2)
    p = spec.real ** 2 + spec.imag ** 2
    s1, s2 = p.sum(axis=1), (p ** 2).sum(axis=1)
    # Nita & Gary's unbiased estimator: expectation 1 for Gaussian noise, 0 for a constant envelope.
    sk = (m + 1) / (m - 1) * (m * s2 / np.maximum(s1 ** 2, 1e-30) - 1)
    return np.max(np.abs(sk - 1), axis=1).astype(np.float32)


def kurtosis_n_fft(n_fft: int) -> int:
    """Frame length of the spectral kurtosis baseline for a model of ``n_fft``-point frames: ``n_fft``, at most
    :data:`KURTOSIS_MAX_N_FFT` (:func:`spectral_kurtosis_score` uses the window's whole frames)."""
    return min(int(n_fft), KURTOSIS_MAX_N_FFT)


def roc_auc(normal: np.ndarray, anomalous: np.ndarray) -> float:
    """Area under the ROC curve: the probability that an anomalous window outscores a normal one (ties count
    half), which is the Mann-Whitney U statistic over the number of pairs."""
    from scipy.stats import mannwhitneyu

    neg, pos = np.asarray(normal, np.float64).ravel(), np.asarray(anomalous, np.float64).ravel()
    if not len(neg) or not len(pos):
        raise ValueError("roc_auc needs normal and anomalous scores")
    return float(mannwhitneyu(pos, neg, alternative="two-sided").statistic / (len(neg) * len(pos)))


def detection_rate(normal: np.ndarray, anomalous: np.ndarray, pfa: float) -> tuple[float, float]:
    """``(Pd, threshold)``: the share of anomalous windows over the ``1 - pfa`` quantile of the normal scores."""
    threshold = float(np.quantile(np.asarray(normal, np.float64), 1 - pfa))
    return float(np.mean(np.asarray(anomalous) > threshold)), threshold


def residual_statistics(x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Two statistics ``[B, 2]`` of the residual of log spectrograms ``[B, n_bins, n_frames]``:

    - *persistent*: the signed residual averaged over frames (per bin) and over bins (per frame), squared and
      averaged. Periodogram cells scatter by about 5.6 dB even for plain noise, and a mean squared error over cells
      is mostly that scatter; averaging first cancels it, while a lasting error (a tone, a raised floor, a pulse
      across the band) adds up.
    - *peak*: the largest residual of each frame, averaged over frames: what moves from bin to bin (a sweep) and
      so averages away in the first.

    (Measured on ``anomaly_band`` with 128-point frames, AE-DDPM mean AUC over anomaly types at 0 / 10 dB JNR, 3000
    normal and 1000 anomalous windows per type: cell-wise mean squared error 0.69 / 0.94, persistent 0.78 / 0.97,
    peak 0.85 / 0.97, the two standardised and added 0.86 / 0.98.)
    """
    r = x - reconstruction
    persistent = (r.mean(dim=2) ** 2).mean(dim=1) + (r.mean(dim=1) ** 2).mean(dim=1)
    peak = r.max(dim=1).values.mean(dim=1)
    return torch.stack([persistent, peak], dim=1)


@dataclass(frozen=True)
class AnomalyScoreSampler:
    """Engine spec: encode, noise the latent to each of ``start_steps`` and denoise it by ``num_steps`` DDIM steps,
    decode. Output ``[B, 2]``: the AE-DDPM score (the :func:`residual_statistics` of the levels' reconstructions,
    averaged over levels) and the autoencoder's own (its reconstruction without diffusion), each the sum of its two
    statistics standardised by their mean and deviation on normal traffic (the network's ``residual_mean`` and
    ``residual_std``). With ``raw`` the unstandardised statistics ``[B, 2 (ae_ddpm, ae), 2]``. The latent noise comes
    from the job's per-item seeds (a block's windows: the same noise for a window whatever the batching) or else the
    engine's seeded generator."""

    start_steps: tuple[int, ...]
    num_steps: int = 1
    raw: bool = False
    networks: bool = True  # False: zeros, no network call (a block scoring with a baseline keeps its job order)

    def nfe(self, schedule: Any = None) -> int:
        """Network evaluations per window: the encoder, one decoder pass per level plus the autoencoder's, and
        the latent denoiser's steps."""
        return 2 + len(self.start_steps) * (1 + self.num_steps)

    def cond_width(self, model: Any) -> int:
        return 0  # the windows alone

    def run(self, network: torch.nn.Module, schedule: Any, x: torch.Tensor, cond: torch.Tensor | None = None,
            generator: Noise = None, should_stop: Any = None) -> torch.Tensor:
        from diffwireless.diffusion.samplers import DDIMSampler

        if not self.networks:
            return x.new_zeros(len(x), 2)
        z = network.encode(x)
        abar = schedule.alphas_cumprod
        latents = [z]
        for t in self.start_steps:
            noise = draw_normal(generator, z.shape, z.device, z.dtype)
            z_t = math.sqrt(abar[t]) * z + math.sqrt(1 - abar[t]) * noise
            # DDIM from the partly noised latent: from_observation scales by sqrt(abar); undo it here.
            latents.append(DDIMSampler(num_steps=self.num_steps, start_step=int(t)).run(
                network, schedule, z_t / math.sqrt(abar[t]), None, generator, should_stop))
        # One decoder call for the autoencoder's own latent and every level's: larger batches run faster.
        recon = network.decode(torch.cat(latents)).reshape(len(latents), *x.shape)
        stats = torch.stack([residual_statistics(x, r) for r in recon])  # [levels + 1, B, 2]
        both = torch.stack([stats[1:].mean(dim=0), stats[0]], dim=1)  # [B, 2 (ae_ddpm, ae), 2]
        if self.raw:
            return both
        return ((both - network.residual_mean) / network.residual_std).sum(dim=2)


def calibrate(normal_scores: np.ndarray, pfas: tuple[float, ...] = PFA_GRID) -> dict[str, float]:
    """Thresholds for false-alarm rates: the ``1 - pfa`` quantile of scores of normal windows, ``{str(pfa): t}``."""
    s = np.asarray(normal_scores, dtype=np.float64)
    if s.size < 10 or not np.isfinite(s).all():
        raise ValueError(f"calibration needs at least 10 finite scores of normal windows, got {s.size}")
    return {repr(float(p)): float(np.quantile(s, 1 - p)) for p in pfas}


def threshold_for(calibration: dict[str, float], pfa: float) -> float:
    """The threshold for ``pfa`` from a calibration table (log-linear between its rates, clamped at its ends)."""
    if not 0 < pfa < 1:
        raise ValueError(f"pfa must lie in (0, 1), got {pfa}")
    rates = np.array([float(k) for k in calibration])
    values = np.array(list(calibration.values()))
    order = np.argsort(rates)
    return float(np.interp(np.log(pfa), np.log(rates[order]), values[order]))


class AnomalyDetector:
    """AE-DDPM scores of IQ windows through the engine.

    Args:
        model: an AE-DDPM model (architecture ``spectrogram_ae_ddpm``; its card holds ``window``, ``n_fft``,
            ``ref_power`` and the ``calibration`` thresholds) or its path / shipped name.
        noise_vars: latent noise variances to noise and denoise at (standardised latent units).
        num_steps: DDIM steps per level.
    """

    def __init__(self, model: DiffusionModel | str | Path, noise_vars: tuple[float, ...] = DEFAULT_NOISE_VARS,
                 num_steps: int = 1) -> None:
        self.model = model if isinstance(model, DiffusionModel) else shared_model(model)
        card = self.model.card
        if self.model.arch != ARCH or self.model.schedule is None or "window" not in card or "n_fft" not in card:
            raise ModelError(f"model '{self.model.name}' is not an anomaly model (architecture {ARCH!r} with "
                             f"'window' and 'n_fft' in its card); got architecture {self.model.arch!r}")
        self.window, self.n_fft = int(card["window"]), int(card["n_fft"])
        self.ref_power = float(card.get("ref_power", 1.0))
        self.kurtosis_n_fft = kurtosis_n_fft(self.n_fft)
        if num_steps < 1 or not noise_vars or min(noise_vars) <= 0:
            raise ValueError(f"need num_steps >= 1 and positive noise_vars, got {num_steps}, {noise_vars}")
        steps = tuple(sorted({self.model.schedule.step_for_noise_var(v) for v in noise_vars}))
        self.sampler = AnomalyScoreSampler(steps, int(num_steps))
        self.calibration: dict[str, dict[str, float]] = card.get("calibration", {})

    @property
    def nfe(self) -> int:
        return self.sampler.nfe()

    def features(self, iq: np.ndarray) -> np.ndarray:
        """IQ windows ``[n, window]`` -> the network's items ``[n, n_fft, window // n_fft]``."""
        iq = np.asarray(iq)
        if iq.ndim != 2 or iq.shape[1] != self.window:
            raise ValueError(f"model '{self.model.name}' scores windows of {self.window} samples; got shape "
                             f"{iq.shape}")
        return log_spectrogram(iq, self.n_fft, self.ref_power)

    def job(self, iq: np.ndarray, networks: bool = True, positions: np.ndarray | None = None) -> Job:
        """The engine job scoring windows ``iq [n, window]``; ``networks=False`` skips the networks (its result is
        zeros: for a caller that scores with a baseline but keeps its windows in the engine's order). With the
        windows' stream ``positions [n]`` (first samples) each window's latent noise is its own, so the scores do
        not depend on the engine's batching."""
        sampler = self.sampler if networks else dataclasses.replace(self.sampler, networks=False)
        seeds = None if positions is None else item_seeds(self.model.seed, positions)
        return Job(self.model, self.features(iq), sampler, seeds=seeds)

    def scores(self, iq: np.ndarray, engine: DenoiseEngine, positions: np.ndarray | None = None) -> np.ndarray:
        """``[n, 2]`` float32: column 0 the AE-DDPM score, column 1 the autoencoder-only score (``positions``: as
        :meth:`job`)."""
        return engine.submit(self.job(iq, positions=positions)).result()

    def method_scores(self, method: str, iq: np.ndarray, result: np.ndarray | None) -> np.ndarray:
        """``[n]`` scores of ``method`` for windows ``iq [n, window]``; ``result`` is the engine's ``[n, 2]``
        output (used by ``ae_ddpm`` and ``ae``; the baselines are computed from ``iq``)."""
        if method == "ae_ddpm":
            return np.asarray(result)[:, 0]
        if method == "ae":
            return np.asarray(result)[:, 1]
        if method == "energy":
            return energy_score(iq, self.ref_power)
        if method == "kurtosis":
            return spectral_kurtosis_score(iq, self.kurtosis_n_fft)
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")

    def threshold(self, pfa: float, method: str = "ae_ddpm") -> float:
        """The calibrated threshold of ``method`` (``ae_ddpm`` or ``ae``) for false-alarm rate ``pfa``."""
        if method not in self.calibration:
            raise ModelError(f"model '{self.model.name}' has no calibration for {method!r} in its card")
        return threshold_for(self.calibration[method], pfa)


@dataclass
class Event:
    """One anomaly: windows ``[start, end)`` in samples, the peak score and the threshold it was judged by."""

    start: int
    end: int
    peak: float
    threshold: float

    def as_dict(self, method: str, sample_rate: float = 0.0,
                time_ref: tuple[int, float] | None = None) -> dict[str, Any]:
        """The event as a message: ``start``/``end`` (samples), ``peak``, ``threshold``, ``method``, ``label``;
        with a sample rate, ``duration_s``; with ``time_ref`` (sample index, seconds at it: an ``rx_time`` tag)
        and a sample rate, ``rx_time`` of the start as (whole seconds, fraction)."""
        d: dict[str, Any] = {"start": int(self.start), "end": int(self.end), "peak": float(self.peak),
                             "threshold": float(self.threshold), "method": method, "label": "anomaly"}
        if sample_rate > 0:
            d["duration_s"] = (self.end - self.start) / sample_rate
            if time_ref is not None:
                t = time_ref[1] + (self.start - time_ref[0]) / sample_rate
                d["rx_time"] = (int(math.floor(t)), float(t - math.floor(t)))
        return d


@dataclass
class EventTracker:
    """Per-window decisions -> events. An event starts at the first window over ``threshold`` and ends after
    ``hold`` windows in a row under it (so one burst that dips briefly stays one event).

    Args:
        threshold: score threshold.
        window: samples per window (event bounds are in samples).
        hold: windows under the threshold that close an event.
    """

    threshold: float
    window: int
    hold: int = 1
    _open: Event | None = field(default=None, init=False)
    _quiet: int = field(default=0, init=False)

    def update(self, scores: np.ndarray, first_window: int) -> tuple[list[int], list[Event]]:
        """Feed the scores of consecutive windows starting at window index ``first_window``.

        Returns (onset window indices, events that closed).
        """
        onsets, closed = [], []
        for i, s in enumerate(np.asarray(scores, dtype=np.float64)):
            w = first_window + i
            if s > self.threshold:
                self._quiet = 0
                if self._open is None:
                    self._open = Event(w * self.window, (w + 1) * self.window, float(s), self.threshold)
                    onsets.append(w)
                else:
                    self._open.end = (w + 1) * self.window
                    self._open.peak = max(self._open.peak, float(s))
            elif self._open is not None:
                self._quiet += 1
                if self._quiet >= self.hold:
                    closed.append(self._open)
                    self._open, self._quiet = None, 0
        return onsets, closed

    def flush(self) -> list[Event]:
        """Close the open event (end of stream)."""
        ev, self._open, self._quiet = self._open, None, 0
        return [ev] if ev is not None else []
