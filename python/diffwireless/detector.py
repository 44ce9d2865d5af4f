"""Symbol detection for hardware-impaired links: the diffusion detector and its baselines.

- :class:`DiffusionDetector` (after Letafati, Ali and Latva-aho): the received symbol is the diffusion state at the
  step whose noise matches the channel SNR (CDDM / Fesl et al.); a conditional denoiser (conditioned on the SNR)
  runs the reverse process back to the transmitted constellation point, by few-step DDIM or the full DDPM chain,
  through the engine. Outputs: denoised symbols, symbol indices, hard bits, and max-log LLRs.
- :class:`DNNDetector`: an MLP classifier with the same inputs, data and parameter count (one network call).
- :func:`euclidean` (minimum distance on the ideal points: what ``digital.constellation_decoder_cb`` does),
  :func:`genie_ml` / :func:`genie_bits` (symbol ML / bitwise MAP knowing the exact impairment) and
  :func:`~diffwireless.constellations.exact_awgn_ber` (theory).

Symbols are complex, unit mean power; ``snr_db`` is Es/N0 (see :mod:`diffwireless.constellations`). A detector
model's items are ``(re, im)`` pairs and its conditioning is ``snr_db / SNR_SCALE_DB``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from diffwireless.channel import IMPULSE_PROB, IMPULSE_RATIO, Impairments
from diffwireless.constellations import Constellation, check_snr_db, get_constellation, noise_var
from diffwireless.denoiser import iq_pairs, noise_var_per_dim
from diffwireless.diffusion.samplers import DDIMSampler, DDPMSampler, ForwardPass
from diffwireless.engine import DenoiseEngine, Job
from diffwireless.errors import ModelError
from diffwireless.models import DiffusionModel, shared_model

SNR_SCALE_DB = 20.0  # conditioning = snr_db / SNR_SCALE_DB
SAMPLERS = ("ddim", "ddpm")
# DDIM steps are spaced "trailing" (from the matched step, stopping short of step 0: with 2 steps [s, s/2], not
# [s, 0], whose call at step 0 only repeats the estimate). num_steps=0 (auto): AUTO_STEPS steps below
# AUTO_ONE_STEP_DB, one from there up. Measured (README): below ~10 dB Es/N0 the one-step estimate (the posterior
# mean) is shrunk towards the origin and its nearest point loses up to 3.6% of BER against bitwise MAP; 2 trailing
# steps decide as 4 linspace steps did (within 0.4%, 16QAM and 64QAM, -5..10 dB); from 10 dB 1 step decides alike.
SPACING = "trailing"
AUTO_STEPS = 2
AUTO_ONE_STEP_DB = 10.0


def symbol_pairs(symbols: np.ndarray) -> np.ndarray:
    """Complex symbols ``[n]`` -> float32 items ``[n, 2]``: one-symbol windows of :func:`iq_pairs`."""
    return iq_pairs(np.asarray(symbols).reshape(-1, 1)).reshape(-1, 2)


def snr_condition(snr_db: float | np.ndarray, n: int) -> np.ndarray:
    """The conditioning ``[n, 1]`` float32 of ``n`` symbols at ``snr_db`` (a scalar or ``[n]``)."""
    snr = np.broadcast_to(np.asarray(snr_db, dtype=np.float32), (n,))
    if not np.isfinite(snr).all():
        raise ValueError("snr_db must be finite")
    return (snr / np.float32(SNR_SCALE_DB)).reshape(n, 1)


def _model_constellation(model: DiffusionModel) -> Constellation:
    name = model.card.get("constellation")
    if not name:
        raise ModelError(f"model '{model.name}' is not a symbol-detector model (its card names no constellation)")
    return get_constellation(name)


@dataclass
class Detection:
    """What a detector decided for ``n`` symbols."""

    denoised: np.ndarray  # complex64 [n] (the detector's estimate of the sent point; DNN: the decided point)
    indices: np.ndarray  # int64 [n]
    bits: np.ndarray  # uint8 [n * k], MSB first
    llrs: np.ndarray  # float32 [n, k]; positive means 1 (GNU Radio's convention)
    nfe: int


class DiffusionDetector:
    """SNR-matched conditional diffusion detection of constellation symbols.

    Args:
        model: a detector model (items ``(2,)``, conditioning 1, a schedule, a card naming its constellation), or
            the path/shipped name of one (loaded once per process and shared).
        num_steps: DDIM steps (network evaluations per symbol, at most; trailing spacing); 0: auto (2 below
            10 dB Es/N0, else 1).
            Ignored by ``sampler="ddpm"``.
        sampler: ``ddim`` (deterministic for ``eta=0``) or ``ddpm`` (the full ancestral chain from the matched step).
        eta: DDIM eta.
    """

    def __init__(self, model: DiffusionModel | str | Path, num_steps: int = 0, sampler: str = "ddim",
                 eta: float = 0.0) -> None:
        self.model = model if isinstance(model, DiffusionModel) else shared_model(model)
        if self.model.item_shape != (2,) or self.model.schedule is None or self.model.cond_dim != 1:
            raise ModelError(f"model '{self.model.name}' is not a symbol-detector denoiser: items "
                             f"{self.model.item_shape} (needs (2,)), conditioning {self.model.cond_dim} (needs 1), "
                             f"{'a' if self.model.schedule else 'no'} schedule")
        self.constellation = _model_constellation(self.model)
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        if num_steps < 0:
            raise ValueError(f"num_steps must be >= 1, or 0 for auto; got {num_steps}")
        DDIMSampler(num_steps=max(num_steps, 1), eta=eta, spacing=SPACING)  # validates eta
        self.num_steps, self.kind, self.eta = int(num_steps), sampler, float(eta)
        table = self.model.card.get("residual_var", {})
        self._resid_snr = np.asarray(table.get("snr_db", []), dtype=np.float64)
        self._resid_var = np.asarray(table.get("var", []), dtype=np.float64)
        self._sampler = lru_cache(maxsize=512)(self._make_sampler)

    def start_step(self, snr_db: float) -> int:
        """The step matched to ``snr_db``: its noise equals the channel noise per real dimension."""
        return self.model.schedule.step_for_noise_var(noise_var_per_dim(check_snr_db(snr_db)))

    def _make_sampler(self, start: int, steps: int) -> DDIMSampler | DDPMSampler:
        if self.kind == "ddpm":
            return DDPMSampler(start_step=start)
        return DDIMSampler(num_steps=steps, start_step=start, eta=self.eta, spacing=SPACING)

    def steps(self, snr_db: float) -> int:
        """DDIM steps asked for at ``snr_db`` (``num_steps``, or the auto rule when it is 0)."""
        if self.num_steps:
            return self.num_steps
        return AUTO_STEPS if snr_db < AUTO_ONE_STEP_DB else 1

    def sampler(self, snr_db: float) -> DDIMSampler | DDPMSampler:
        return self._sampler(self.start_step(snr_db), self.steps(snr_db))

    def nfe(self, snr_db: float) -> int:
        """Network evaluations per symbol at ``snr_db``."""
        return self.sampler(snr_db).nfe(self.model.schedule)

    def job(self, symbols: np.ndarray, snr_db: float) -> Job:
        """An engine job for complex symbols ``[n]`` at ``snr_db`` (one SNR per job, so one sampler spec)."""
        x = symbol_pairs(symbols)
        return Job(self.model, x, self.sampler(snr_db), snr_condition(snr_db, len(x)))

    def result(self, out: np.ndarray) -> np.ndarray:
        """Engine output ``[n, 2]`` -> denoised symbols ``[n]`` complex64."""
        return np.ascontiguousarray(out, dtype=np.float32).reshape(-1, 2).view(np.complex64).ravel()

    def residual_var(self, snr_db: float) -> float:
        """Variance of the denoised symbol around the sent point at ``snr_db``, from the model card (measured at
        training with the default DDIM steps); the channel's noise variance when the card has no table."""
        if not len(self._resid_snr):
            return float(noise_var(snr_db))
        return float(np.exp(np.interp(snr_db, self._resid_snr, np.log(self._resid_var))))

    def decide(self, denoised: np.ndarray, snr_db: float, nfe: int = 0) -> Detection:
        """Decisions from denoised symbols: nearest ideal point, its bits, and max-log LLRs with the residual
        variance of the denoised symbol (so the LLR scale reflects what is left after denoising)."""
        c = self.constellation
        idx = c.nearest(denoised)
        llrs = c.max_log_llr(denoised, self.residual_var(snr_db))
        return Detection(np.asarray(denoised, dtype=np.complex64), idx, c.indices_to_bits(idx), llrs, nfe)

    def detect(self, symbols: np.ndarray, snr_db: float, engine: DenoiseEngine) -> Detection:
        """Denoise and decide ``symbols [n]`` at ``snr_db`` through ``engine``."""
        out = engine.submit(self.job(symbols, snr_db)).result()
        return self.decide(self.result(out), snr_db, self.nfe(snr_db))


class DNNDetector:
    """The DNN receiver baseline: an MLP classifier of ``(re, im, snr_db / 20)`` over the constellation's points."""

    def __init__(self, model: DiffusionModel | str | Path) -> None:
        self.model = model if isinstance(model, DiffusionModel) else shared_model(model)
        if self.model.item_shape != (2,) or self.model.cond_dim != 1 or self.model.schedule is not None:
            raise ModelError(f"model '{self.model.name}' is not a symbol classifier")
        self.constellation = _model_constellation(self.model)

    def job(self, symbols: np.ndarray, snr_db: float) -> Job:
        x = symbol_pairs(symbols)
        return Job(self.model, x, ForwardPass(), snr_condition(snr_db, len(x)))

    def decide(self, logits: np.ndarray) -> Detection:
        c = self.constellation
        logits = np.asarray(logits, dtype=np.float64)
        idx = np.argmax(logits, axis=1)
        # Bit LLRs from the class posteriors (log-sum-exp over the points with bit 1 minus those with bit 0).
        logp = logits - logits.max(axis=1, keepdims=True)
        ones = c.labels.astype(bool)
        llrs = np.empty((len(logits), c.bits_per_symbol), dtype=np.float32)
        for b in range(c.bits_per_symbol):
            l1 = np.log(np.exp(logp[:, ones[:, b]]).sum(axis=1))
            l0 = np.log(np.exp(logp[:, ~ones[:, b]]).sum(axis=1))
            llrs[:, b] = l1 - l0
        return Detection(c.points[idx].astype(np.complex64), idx, c.indices_to_bits(idx), llrs, 1)

    def detect(self, symbols: np.ndarray, snr_db: float, engine: DenoiseEngine) -> Detection:
        return self.decide(engine.submit(self.job(symbols, snr_db)).result())


def euclidean(constellation: Constellation, symbols: np.ndarray) -> np.ndarray:
    """Minimum-distance decisions on the ideal points (``digital.constellation_decoder_cb``): indices ``[n]``."""
    return constellation.nearest(symbols)


def genie_ml(constellation: Constellation, symbols: np.ndarray, impairments: Impairments, snr_db: float,
             noise: str = "gaussian", nodes: int = 24) -> np.ndarray:
    """Maximum-likelihood symbol decisions knowing the link exactly: indices ``[n]`` (see :func:`genie_bits`)."""
    out = np.empty(np.size(symbols), dtype=np.int64)
    for part, like in _genie_likelihoods(constellation, symbols, impairments, snr_db, noise, nodes):
        out[part] = np.argmax(like, axis=1)
    return out


def genie_bits(constellation: Constellation, symbols: np.ndarray, impairments: Impairments, snr_db: float,
               noise: str = "gaussian", nodes: int = 24) -> np.ndarray:
    """Bitwise maximum a posteriori decisions knowing the link exactly: bits ``[n * k]``, MSB first.

    Each bit is decided by its marginal likelihood, the sum of the likelihoods of the points carrying it, which
    minimises the BER of symbol-by-symbol detection (the symbol ML rule of :func:`genie_ml` minimises the symbol
    error rate, and at low SNR has a slightly higher BER). The likelihood of point ``c`` is
    ``E_phi[p_noise(y - D(c) e^{j phi})]``: ``D`` the memoryless distortion (IQ imbalance, 2nd/3rd order), ``phi``
    the stationary phase noise, integrated numerically by Gauss-Hermite quadrature with ``nodes`` nodes, and
    ``p_noise`` the true noise density (Gaussian, Laplacian or Bernoulli-Gaussian). The ADC is treated as
    transparent (its step, 1/32 of the unit symbol amplitude at 6 bits, is small against the noise at the SNRs
    measured), and the phase-noise memory is not used, as by every detector here.
    """
    c = constellation
    ones = c.labels.astype(bool)
    out = np.empty((np.size(symbols), c.bits_per_symbol), dtype=np.uint8)
    for part, like in _genie_likelihoods(c, symbols, impairments, snr_db, noise, nodes):
        for b in range(c.bits_per_symbol):
            out[part, b] = like[:, ones[:, b]].sum(axis=1) > like[:, ~ones[:, b]].sum(axis=1)
    return out.ravel()


def _genie_likelihoods(c: Constellation, symbols: np.ndarray, impairments: Impairments, snr_db: float, noise: str,
                       nodes: int, chunk: int = 1 << 14):
    """Yields ``(slice, likelihoods [m, M])`` over chunks of ``symbols``, each row scaled by its maximum."""
    y = np.asarray(symbols, dtype=np.complex128).ravel()
    distorted = impairments.distort(c.points)
    std = impairments.phase_noise_std
    if std > 0:
        z, w = np.polynomial.hermite_e.hermegauss(nodes)
        phases, weights = z * std, w / w.sum()
    else:
        phases, weights = np.zeros(1), np.ones(1)
    means = distorted[:, None] * np.exp(1j * phases)[None, :]  # [M, Q]
    nv = float(noise_var(snr_db))
    for s in range(0, len(y), chunk):
        d = y[s:s + chunk, None, None] - means[None, :, :]  # [m, M, Q]
        loglik = _noise_loglik(d, nv, noise)
        peak = loglik.max(axis=(1, 2), keepdims=True)
        yield slice(s, s + chunk), (np.exp(loglik - peak) * weights[None, None, :]).sum(axis=2)


def _noise_loglik(d: np.ndarray, nv: float, noise: str) -> np.ndarray:
    """Log density (up to a constant shared by all points) of complex noise ``d`` of total variance ``nv``."""
    if noise == "gaussian":
        return -(d.real ** 2 + d.imag ** 2) / nv
    if noise == "laplacian":
        b = math.sqrt(nv / 4)
        return -(np.abs(d.real) + np.abs(d.imag)) / b
    if noise == "impulsive":
        background = nv / (1 - IMPULSE_PROB + IMPULSE_PROB * IMPULSE_RATIO)
        r2 = d.real ** 2 + d.imag ** 2
        a = math.log(1 - IMPULSE_PROB) - math.log(background) - r2 / background
        b = math.log(IMPULSE_PROB) - math.log(background * IMPULSE_RATIO) - r2 / (background * IMPULSE_RATIO)
        return np.logaddexp(a, b)
    raise ValueError(f"unknown noise {noise!r}")
