"""OFDM channel estimation from pilots: LS + interpolation, LMMSE, and the diffusion estimators.

Observation model (one frame on an :class:`~diffwireless.fading.OFDMGrid`): at the pilot positions of a mask
``[F, T]`` the receiver sees ``y = h x + n`` with known unit-modulus pilots ``x`` and ``n ~ CN(0, noise_var)``;
``E|h|^2 = 1``, so ``snr_db = -10 log10(noise_var)`` per resource element. The LS estimate at a pilot is ``y / x =
h + n'`` with the same noise law, so every estimator here takes ``ls [n, P]`` (the LS values at the ``P`` pilots in
row-major order of the mask) and returns a full grid ``[n, F, T]``.

- :class:`Interpolator`: LS at the pilots, then linear interpolation along frequency in each pilot symbol and along
  time in each carrier (constant beyond the outermost pilots): a fixed linear map, as GNU Radio's and gr-ieee802-11's
  estimators do it.
- :func:`lmmse_matrix`: ``R_hp (R_pp + noise_var I)^-1``; with the model's true covariance it is the genie LMMSE
  (the MMSE estimator of a Gaussian channel); :func:`robust_covariance` gives the mismatched one a receiver can use
  without knowing the channel (Li, Cimini and Sollenberger's robust design: uniform power-delay profile over the
  cyclic prefix and a Jakes spectrum at a design Doppler).
- :class:`DiffusionChannelEstimator` (Fesl et al.): a denoiser trained on channel grids only (the prior),
  run from the step whose noise matches the observation: (a) ``denoise``: deterministic DDIM of the interpolated LS
  grid (for a network with a linear prior, one step: that prior's LMMSE estimate from the pilots plus the network's
  learned correction, :class:`LearnedCorrectionSampler`); (b) ``guided``: the same reverse process with a
  measurement-consistency step at the pilots after every network call (posterior sampling with the pilot
  likelihood), for sparse pilots.

Grids enter networks as ``sqrt(2) [Re h, Im h]``, unit variance per real dimension, so a complex noise of variance
``v`` is the schedule's noise variance ``v`` per dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diffwireless.diffusion.schedule import NoiseSchedule
from diffwireless.diffusion.samplers import Denoiser, StopRequested, ddim_timesteps
from diffwireless.engine import DenoiseEngine, Job
from diffwireless.errors import ModelError
from diffwireless.fading import ChannelModel, OFDMGrid, jakes_correlation
from diffwireless.gmm_chanest import GMMChannelEstimator, KroneckerGMM
from diffwireless.models import DiffusionModel, shared_model


def snr_noise_var(snr_db: float | np.ndarray) -> np.ndarray | float:
    """Complex noise variance per resource element at ``snr_db`` (unit channel power)."""
    return 10.0 ** (-np.asarray(snr_db, dtype=np.float64) / 10.0)


def observe(h: np.ndarray, mask: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """LS values at the pilots of frames ``h [n, F, T]``: ``h[mask] + CN(0, noise_var)``, ``[n, P]`` complex128."""
    hp = h[:, mask]
    nv = float(snr_noise_var(snr_db))
    return hp + math.sqrt(nv / 2) * (rng.standard_normal(hp.shape) + 1j * rng.standard_normal(hp.shape))


def nmse_db(estimate: np.ndarray, truth: np.ndarray) -> float:
    """``10 log10(sum |est - h|^2 / sum |h|^2)`` over everything given."""
    return float(10 * np.log10(np.sum(np.abs(estimate - truth) ** 2) / np.sum(np.abs(truth) ** 2)))


def _interp_matrix(x_known: np.ndarray, x_all: np.ndarray) -> np.ndarray:
    """Weights ``[len(x_all), len(x_known)]`` of 1-D linear interpolation, constant beyond the ends."""
    eye = np.eye(len(x_known))
    return np.stack([np.interp(x_all, x_known, eye[j]) for j in range(len(x_known))], axis=1)


class Interpolator:
    """LS + linear interpolation as one matrix: ``grid = ls @ W.T``, ``W [F*T, P]``.

    Pilots must form a lattice (the same pilot carriers in every symbol that has pilots), as
    :func:`~diffwireless.fading.lattice_pilots` makes them. Frequency uses the carriers' numbers (so the DC gap
    counts), time the symbol index.
    """

    def __init__(self, grid: OFDMGrid, mask: np.ndarray) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != grid.shape:
            raise ValueError(f"pilot mask {mask.shape} does not match the grid {grid.shape}")
        cols = np.flatnonzero(mask.any(axis=0))
        if cols.size == 0:
            raise ValueError("the pilot mask holds no pilot")
        rows = np.flatnonzero(mask[:, cols[0]])
        if not all(np.array_equal(np.flatnonzero(mask[:, c]), rows) for c in cols):
            raise ValueError("pilots must form a lattice (the same carriers in every pilot symbol)")
        w_f = _interp_matrix(np.asarray(grid.carriers, dtype=float)[rows], np.asarray(grid.carriers, dtype=float))
        w_t = _interp_matrix(cols.astype(float), np.arange(grid.n_symbols, dtype=float))
        # Pilots in row-major order of the mask are (row, col) pairs sorted by row then col: kron(w_f, w_t).
        self.matrix = np.kron(w_f, w_t)
        self.grid = grid
        self.mask = mask

    @property
    def n_pilots(self) -> int:
        return int(self.mask.sum())

    def __call__(self, ls: np.ndarray) -> np.ndarray:
        """``ls [n, P]`` -> grids ``[n, F, T]``."""
        return (np.asarray(ls) @ self.matrix.T).reshape(-1, *self.grid.shape)

    def noise_gain(self) -> float:
        """Mean over the grid of the white pilot noise's variance after interpolation, relative to its input."""
        return float(np.mean(np.sum(self.matrix ** 2, axis=1)))


def lmmse_matrix(cov: np.ndarray, mask: np.ndarray, noise_var: float) -> np.ndarray:
    """``A [F*T, P]`` with ``h_hat = A ls``: ``R_hp (R_pp + noise_var I)^-1`` for covariance ``cov [F*T, F*T]``."""
    p = np.flatnonzero(np.asarray(mask).reshape(-1))
    r_hp = cov[:, p]
    r_pp = cov[np.ix_(p, p)] + noise_var * np.eye(len(p))
    return np.linalg.solve(r_pp.T, r_hp.T).T


def lmmse(ls: np.ndarray, cov: np.ndarray, mask: np.ndarray, noise_var: float) -> np.ndarray:
    """LMMSE grids ``[n, F, T]`` from ``ls [n, P]``."""
    a = lmmse_matrix(cov, mask, noise_var)
    return (np.asarray(ls) @ a.T).reshape(-1, *np.asarray(mask).shape)


def lmmse_nmse_db(cov: np.ndarray, mask: np.ndarray, noise_var: float) -> float:
    """The exact NMSE of :func:`lmmse` when ``cov`` is the channel's true covariance (Gaussian or not)."""
    a = lmmse_matrix(cov, mask, noise_var)
    p = np.flatnonzero(np.asarray(mask).reshape(-1))
    err = np.trace(cov).real - np.trace(a @ cov[p, :]).real
    return float(10 * np.log10(err / np.trace(cov).real))


def robust_covariance(grid: OFDMGrid, design_doppler_hz: float, max_delay_s: float | None = None) -> np.ndarray:
    """The mismatched covariance ``[F*T, F*T]``: a uniform power-delay profile over ``[0, max_delay_s]`` (default:
    the cyclic prefix) and a Jakes spectrum at ``design_doppler_hz``.

    The design needs pilots closer than ``1 / max_delay_s`` in frequency (at that spacing it is singular);
    :func:`robust_max_delay` picks the delay span a given pilot spacing supports.
    """
    tau_max = grid.cp_len / grid.sample_rate_hz if max_delay_s is None else max_delay_s
    df = np.subtract.outer(grid.freqs_hz, grid.freqs_hz)
    r_f = np.exp(-1j * np.pi * df * tau_max) * np.sinc(df * tau_max)  # E exp(-2j pi df tau), tau ~ U(0, tau_max)
    t = grid.times_s
    return np.kron(r_f, jakes_correlation(design_doppler_hz, np.subtract.outer(t, t)))


def robust_max_delay(grid: OFDMGrid, mask: np.ndarray, margin: float = 0.75) -> float:
    """The cyclic prefix, or ``margin`` over the pilots' largest carrier spacing where that is shorter."""
    rows = np.flatnonzero(np.asarray(mask).any(axis=1))
    spacing_hz = np.max(np.diff(np.asarray(grid.carriers)[rows])) * grid.carrier_spacing_hz if rows.size > 1 else 0
    cp = grid.cp_len / grid.sample_rate_hz
    return float(min(cp, margin / spacing_hz)) if spacing_hz else cp


def grid_items(h: np.ndarray) -> np.ndarray:
    """Complex grids ``[n, F, T]`` -> network items ``[n, 2, F, T]`` float32 (``sqrt(2)`` re, im)."""
    h = np.asarray(h)
    return (math.sqrt(2.0) * np.stack([h.real, h.imag], axis=1)).astype(np.float32)


def items_grid(x: np.ndarray) -> np.ndarray:
    """Inverse of :func:`grid_items`: ``[n, 2, F, T]`` -> complex128 ``[n, F, T]``."""
    x = np.asarray(x, dtype=np.float64)
    return (x[:, 0] + 1j * x[:, 1]) / math.sqrt(2.0)


@dataclass(frozen=True)
class GuidedDDIMSampler:
    """Deterministic DDIM from ``start_step`` with a pilot-consistency step after every network call.

    The job's items are the starting grids (interpolated LS, network units); its ``cond [B, 2*F*T + F*T + 1]``
    packs, per item, the LS values spread on the grid (network units, zero off the pilots), the pilot mask, and the
    pilot noise variance (per real dimension, network units). After each denoised estimate ``x0`` the pilot residual
    ``ls - x0`` is weighted by ``r / (r + v)`` (``r``: the estimate's own error variance, taken as the step's
    noise-to-signal ratio scaled by ``trust``; ``v``: the pilot noise) and spread over the grid by the interpolation
    matrix, so the estimate moves towards the pilots where they are more reliable than the prior.

    Attributes:
        num_steps: network evaluations.
        start_step: first reverse step.
        trust: multiplies the assumed error variance of the denoised estimate (1: the step's noise level).
    """

    num_steps: int = 10
    start_step: int = 0
    trust: float = 1.0
    interp_key: int = 0  # identifies the interpolation matrix registered for the job (jobs merge by spec)

    def timesteps(self, schedule: NoiseSchedule) -> np.ndarray:
        return ddim_timesteps(self.start_step, self.num_steps)

    def cond_width(self, model: DiffusionModel) -> int:
        """The engine checks jobs' conditioning against this (the network itself takes none)."""
        return 3 * math.prod(model.item_shape) // 2 + 1

    def nfe(self, schedule: NoiseSchedule) -> int:
        return len(self.timesteps(schedule))

    def run(self, network: Denoiser, schedule: NoiseSchedule, x: torch.Tensor, cond: torch.Tensor | None = None,
            generator: torch.Generator | None = None, should_stop=None) -> torch.Tensor:
        if cond is None:
            raise ValueError("the guided sampler needs the pilots as conditioning")
        shape = x.shape
        n_grid = math.prod(shape[1:]) // 2
        ls = cond[:, : 2 * n_grid].reshape(shape)
        mask = cond[:, 2 * n_grid: 3 * n_grid].reshape(shape[0], 1, *shape[2:])
        pilot_var = cond[:, 3 * n_grid:].reshape(-1, 1, 1, 1)
        spread = _SPREADERS[self.interp_key]
        abar = schedule.alphas_cumprod
        steps = self.timesteps(schedule)
        x = x * math.sqrt(abar[steps[0]])
        t_vec = torch.empty(1, dtype=torch.int64, device=x.device)
        for i, t in enumerate(steps):
            if should_stop is not None and should_stop():
                raise StopRequested()
            a_t = float(abar[t])
            eps = network(x, t_vec.fill_(int(t)), None)
            x0 = (x - math.sqrt(1.0 - a_t) * eps) / math.sqrt(a_t)
            r = self.trust * (1.0 - a_t) / a_t
            gain = r / (r + pilot_var)
            x0 = x0 + spread(gain * mask * (ls - x0))
            if i + 1 == len(steps):
                return x0
            a_prev = float(abar[steps[i + 1]])
            eps = (x - math.sqrt(a_t) * x0) / math.sqrt(1.0 - a_t)
            x = math.sqrt(a_prev) * x0 + math.sqrt(1.0 - a_prev) * eps
        return x


@dataclass(frozen=True)
class LearnedCorrectionSampler:
    """One network call at ``start_step`` that returns only what a network with a linear prior
    (:class:`~diffwireless.nn.GridMixer`) adds to its linear estimate: the Tweedie estimate of ``x0`` from
    ``x_t = sqrt(abar) x`` is the linear prior's LMMSE estimate plus ``-sqrt((1 - abar) / abar)`` times the learned
    noise, and this sampler gives that second term (network units, ``[B, 2, F, T]``). The estimator adds the linear
    part computed exactly from the pilots instead of from the interpolated grid."""

    start_step: int = 0

    def cond_width(self, model: DiffusionModel) -> int:
        return 0

    def nfe(self, schedule: NoiseSchedule) -> int:
        return 1

    def run(self, network: Denoiser, schedule: NoiseSchedule, x: torch.Tensor, cond: torch.Tensor | None = None,
            generator: torch.Generator | None = None, should_stop=None) -> torch.Tensor:
        learned = getattr(network, "learned_eps", None)
        if learned is None:
            raise ModelError(f"{type(network).__name__} has no learned part apart from a linear prior")
        a = float(schedule.alphas_cumprod[self.start_step])
        t = torch.full((1,), self.start_step, dtype=torch.int64, device=x.device)
        return -math.sqrt((1.0 - a) / a) * learned(x * math.sqrt(a), t, None)


class _Spreader:
    """Spreads pilot values (zero elsewhere) ``[B, 2, F, T]`` over the grid by an interpolation matrix."""

    def __init__(self, interp: Interpolator) -> None:
        self.flat_pilots = torch.from_numpy(np.flatnonzero(interp.mask.reshape(-1)))
        self.w = torch.from_numpy(interp.matrix.astype(np.float32))  # [F*T, P]

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        flat = r.reshape(r.shape[0] * 2, -1)[:, self.flat_pilots.to(r.device)]
        return (flat @ self.w.to(r.device).T).reshape(r.shape)


_SPREADERS: dict[int, _Spreader] = {}


def _register_spreader(interp: Interpolator) -> int:
    key = hash((interp.mask.tobytes(), interp.mask.shape))
    if key not in _SPREADERS:
        _SPREADERS[key] = _Spreader(interp)
    return key


class DiffusionChannelEstimator:
    """SNR-matched diffusion estimation of OFDM channel grids with a trained prior denoiser.

    Args:
        model: a ``grid_mixer`` model (items ``[2, F, T]``, no conditioning, a schedule) or its path/shipped name.
        grid: the grid the model was trained on (its shape must match the model's items).
        mask: pilot mask ``[F, T]`` (a lattice).
        num_steps: DDIM steps (network evaluations per estimate). For ``denoise`` one step is the network's
            posterior-mean (Tweedie) estimate, the MMSE target; more deterministic steps move the result towards a
            draw from the prior and raise the MSE (measured in ``dw-bench chanest``: 0.3 dB at 0 dB SNR with 4).
        mode: ``"denoise"`` (a) or ``"guided"`` (b).

    A network with a linear prior (the 14-symbol priors) splits its one-step ``denoise`` estimate: the linear
    prior's part is the LMMSE estimate from the pilots themselves (exact for any pilot lattice, where the network
    would see the interpolated grid as if its noise were white), and the network's learned part is added from the
    SNR-matched interpolated grid (:class:`LearnedCorrectionSampler`). With every element a pilot the two are the
    same estimate.
    """

    MODES = ("denoise", "guided")

    def __init__(self, model: DiffusionModel | str | Path, grid: OFDMGrid, mask: np.ndarray, num_steps: int = 1,
                 mode: str = "denoise", trust: float = 1.0) -> None:
        self.model = model if isinstance(model, DiffusionModel) else shared_model(model)
        if self.model.schedule is None or self.model.item_shape != (2, *grid.shape):
            raise ModelError(f"model '{self.model.name}' (items {self.model.item_shape}) is not a channel-grid "
                             f"denoiser for a {grid.shape} grid")
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        self.grid, self.num_steps, self.mode, self.trust = grid, num_steps, mode, trust
        self.interp = Interpolator(grid, mask)
        self.mask = self.interp.mask
        mixture = getattr(self.model.network, "linear_prior_mixture", lambda: None)()
        self.split = mode == "denoise" and num_steps == 1 and mixture is not None
        self._linear = None if mixture is None else KroneckerGMM(*mixture)
        self._linear_filters: dict[float, GMMChannelEstimator] = {}

    def linear_estimate(self, ls: np.ndarray, snr_db: float) -> np.ndarray:
        """The linear prior's estimate from the pilots ``ls [n, P]`` (LMMSE; the posterior mean for a mixture):
        grids ``[n, F, T]`` (needs a network with a linear prior)."""
        if self._linear is None:
            raise ModelError(f"model '{self.model.name}' has no linear prior")
        nv = float(snr_noise_var(snr_db))
        if nv not in self._linear_filters:
            self._linear_filters[nv] = GMMChannelEstimator(self._linear, self.mask, nv)
        return self._linear_filters[nv].estimate(ls)

    def start_step(self, snr_db: float) -> int:
        """The step matched to the interpolated grid's noise (pilot noise times the interpolation's noise gain)."""
        v = float(snr_noise_var(snr_db))
        if self.mode == "denoise":
            v *= self.interp.noise_gain()
        return self.model.schedule.step_for_noise_var(v)

    def nfe(self, snr_db: float) -> int:
        return len(ddim_timesteps(self.start_step(snr_db), self.num_steps))

    def job(self, ls: np.ndarray, snr_db: float) -> Job:
        """The engine's work for pilots ``ls [n, P]``; :meth:`finish` turns its output into grids."""
        from diffwireless.diffusion.samplers import DDIMSampler

        start = grid_items(self.interp(ls))
        t0 = self.start_step(snr_db)
        if self.split:
            return Job(self.model, start, LearnedCorrectionSampler(t0))
        if self.mode == "denoise":
            return Job(self.model, start, DDIMSampler(num_steps=self.num_steps, start_step=t0))
        n = len(start)
        on_grid = np.zeros((n, *self.grid.shape), dtype=np.complex128)
        on_grid[:, self.mask] = ls
        pilot_var = np.full((n, 1), float(snr_noise_var(snr_db)), dtype=np.float32)
        cond = np.concatenate([grid_items(on_grid).reshape(n, -1),
                               np.broadcast_to(self.mask.reshape(1, -1), (n, self.mask.size)).astype(np.float32),
                               pilot_var], axis=1)
        key = _register_spreader(self.interp)
        return Job(self.model, start, GuidedDDIMSampler(self.num_steps, t0, self.trust, key), cond)

    def finish(self, ls: np.ndarray, snr_db: float, output: np.ndarray) -> np.ndarray:
        """The channel grids ``[n, F, T]`` complex128 from the engine's output for :meth:`job` ``(ls, snr_db)``."""
        grids = items_grid(output)
        return grids + self.linear_estimate(ls, snr_db) if self.split else grids

    def estimate(self, ls: np.ndarray, snr_db: float, engine: DenoiseEngine) -> np.ndarray:
        """``ls [n, P]`` -> channel grids ``[n, F, T]`` complex128."""
        return self.finish(ls, snr_db, engine.submit(self.job(ls, snr_db)).result())


FALLBACK_RESIDUAL = 1.5  # as the OFDM equalizer's check (diffwireless.ofdm_equalizer.FALLBACK_RESIDUAL)


def residual_ratio(observed: np.ndarray, estimate: np.ndarray, noise_var: float) -> np.ndarray:
    """``mean |observed - estimate|^2`` over the last axis, over the observation's noise variance. An estimate of a
    channel its model knows leaves at most the noise (about 1 or less); structure it missed shows above."""
    r = np.mean(np.abs(np.asarray(observed) - np.asarray(estimate)) ** 2, axis=-1)
    return r / max(float(noise_var), 1e-30)


def pilot_residual_ratio(grids: np.ndarray, ls: np.ndarray, mask: np.ndarray, noise_var: float) -> np.ndarray:
    """Per frame, :func:`residual_ratio` of the grids ``[n, F, T]`` at the pilots against the LS values ``[n, P]``."""
    return residual_ratio(ls, np.asarray(grids)[:, np.asarray(mask, dtype=bool)], noise_var)


def checked_estimate(candidates: dict[str, np.ndarray], ls: np.ndarray, mask: np.ndarray, noise_var: float,
                     threshold: float = FALLBACK_RESIDUAL) -> tuple[np.ndarray, np.ndarray]:
    """Per frame the first of ``candidates`` (name -> grids ``[n, F, T]``, in order of preference: the diffusion
    estimate first, then the classical ones) whose pilot residual (:func:`pilot_residual_ratio`) is at most
    ``threshold``, else the one with the smallest residual: ``(grids [n, F, T], the name chosen per frame [n])``.
    The do-no-harm rule of the OFDM equalizer, on a grid: a frame the prior does not explain gets an estimator that
    does."""
    names = list(candidates)
    if not names:
        raise ValueError("checked_estimate needs at least one candidate")
    grids = np.stack([np.asarray(candidates[k]) for k in names])  # [C, n, F, T]
    r = np.stack([pilot_residual_ratio(g, ls, mask, noise_var) for g in grids])  # [C, n]
    passing = r <= threshold
    pick = np.where(passing.any(axis=0), passing.argmax(axis=0), r.argmin(axis=0))
    out = grids[pick, np.arange(grids.shape[1])]
    return out, np.asarray(names)[pick]


def estimate_all(model: ChannelModel, grid: OFDMGrid, mask: np.ndarray, snr_db: float, n: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` frames of ``model`` and their pilot observations: ``(h [n, F, T], ls [n, P])``."""
    h = model.sample(grid, n, rng)
    return h, observe(h, mask, snr_db, rng)
