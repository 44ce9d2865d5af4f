"""OFDM time-frequency grids and the fading channels that fill them (vectorised, numpy).

A channel realisation is the frequency response ``H [n_carriers, n_symbols]`` of one frame on an :class:`OFDMGrid`:
rows are the grid's active carriers (in GNU Radio's centred numbering, DC = 0), columns its OFDM symbols. Every model
is normalised so that ``E|H[k, l]|^2 = 1``.

Models (all WSSUS, Rayleigh paths):

- :class:`TDL`: the tapped delay lines TDL-A, TDL-B and TDL-C of 3GPP TR 38.901 (Table 7.7.2-1 to 7.7.2-3,
  normalised delays scaled by the RMS delay spread as in its section 7.7.3), Jakes Doppler spectrum. Gaussian, so the
  LMMSE estimator with the true covariance is the MMSE estimator.
- :class:`ExponentialPDP`: taps at the sample period with an exponential power-delay profile. Gaussian as well.
- :class:`SparseClustered`: one to a few clusters of one to a few paths at continuous random delays, each path one
  Doppler shift. Not Gaussian: the channel lies on a union of low-dimensional sets, where LMMSE is not optimal.

The Gaussian models draw each tap's time series exactly (Cholesky factor of the Jakes autocorrelation
``J0(2 pi f_D dt)``), not by a sum of sinusoids, so their covariance is exactly :meth:`covariance`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from scipy.special import j0

# 3GPP TR 38.901 V17, Table 7.7.2-1 (TDL-A), 7.7.2-2 (TDL-B), 7.7.2-3 (TDL-C): (normalised delay, power in dB).
TDL_TABLES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "A": ((0.0, 0.3819, 0.4025, 0.5868, 0.4610, 0.5375, 0.6708, 0.5750, 0.7618, 1.5375, 1.8978, 2.2242, 2.1718,
           2.4942, 2.5119, 3.0582, 4.0810, 4.4579, 4.5695, 4.7966, 5.0066, 5.3043, 9.6586),
          (-13.4, 0.0, -2.2, -4.0, -6.0, -8.2, -9.9, -10.5, -7.5, -15.9, -6.6, -16.7, -12.4, -15.2, -10.8, -11.3,
           -12.7, -16.2, -18.3, -18.9, -16.6, -19.9, -29.7)),
    "B": ((0.0, 0.1072, 0.2155, 0.2095, 0.2870, 0.2986, 0.3752, 0.5055, 0.3681, 0.3697, 0.5700, 0.5283, 1.1021,
           1.2756, 1.5474, 1.7842, 2.0169, 2.8294, 3.0219, 3.6187, 4.1067, 4.2790, 4.7834),
          (0.0, -2.2, -4.0, -3.2, -9.8, -1.2, -3.4, -5.2, -7.6, -3.0, -8.9, -9.0, -4.8, -5.7, -7.5, -1.9, -7.6, -12.2,
           -9.8, -11.4, -14.9, -9.2, -11.3)),
    "C": ((0.0, 0.2099, 0.2219, 0.2329, 0.2176, 0.6366, 0.6448, 0.6560, 0.6584, 0.7935, 0.8213, 0.9336, 1.2285,
           1.3083, 2.1704, 2.7105, 4.2589, 4.6003, 5.4902, 5.6077, 6.3065, 6.6374, 7.0427, 8.6523),
          (-4.4, -1.2, -3.5, -5.2, -2.5, 0.0, -2.2, -3.9, -7.4, -7.1, -10.7, -11.1, -5.1, -6.8, -8.7, -13.2, -13.9,
           -13.9, -15.8, -17.1, -16.0, -15.7, -21.6, -22.8)),
}


@dataclass(frozen=True)
class OFDMGrid:
    """The resource grid of one frame.

    Attributes:
        n_fft: FFT size.
        carriers: active carriers (rows of the grid), centred numbering ``-n_fft/2 .. n_fft/2 - 1``, ascending.
        n_symbols: OFDM symbols per frame (columns).
        cp_len: cyclic prefix in samples.
        sample_rate_hz: sample rate; sets the carrier spacing ``sample_rate_hz / n_fft``.
    """

    n_fft: int = 64
    carriers: tuple[int, ...] = tuple(k for k in range(-26, 27) if k != 0)
    n_symbols: int = 14
    cp_len: int = 16
    sample_rate_hz: float = 20e6

    def __post_init__(self) -> None:
        c = np.asarray(self.carriers)
        if c.size == 0 or np.any(np.diff(c) <= 0):
            raise ValueError("carriers must be a non-empty ascending list")
        if c[0] < -self.n_fft // 2 or c[-1] >= self.n_fft // 2:
            raise ValueError(f"carriers must lie in {-self.n_fft // 2}..{self.n_fft // 2 - 1} for n_fft={self.n_fft}")
        if self.n_symbols < 1 or not 0 <= self.cp_len < self.n_fft:
            raise ValueError(f"need n_symbols >= 1 and 0 <= cp_len < n_fft, got {self.n_symbols}, {self.cp_len}")

    @property
    def n_carriers(self) -> int:
        return len(self.carriers)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_carriers, n_symbols)``."""
        return self.n_carriers, self.n_symbols

    @property
    def carrier_spacing_hz(self) -> float:
        return self.sample_rate_hz / self.n_fft

    @property
    def symbol_duration_s(self) -> float:
        """One OFDM symbol with its cyclic prefix."""
        return (self.n_fft + self.cp_len) / self.sample_rate_hz

    @property
    def freqs_hz(self) -> np.ndarray:
        """Baseband frequency of each row, ``[n_carriers]``."""
        return np.asarray(self.carriers, dtype=np.float64) * self.carrier_spacing_hz

    @property
    def times_s(self) -> np.ndarray:
        """Start time of each column, ``[n_symbols]``."""
        return np.arange(self.n_symbols, dtype=np.float64) * self.symbol_duration_s

    def with_symbols(self, n_symbols: int) -> "OFDMGrid":
        return OFDMGrid(self.n_fft, self.carriers, n_symbols, self.cp_len, self.sample_rate_hz)


def lattice_pilots(grid: OFDMGrid, carrier_step: int, symbol_step: int, carrier_offset: int = 0,
                   symbol_offset: int = 0) -> np.ndarray:
    """Pilot mask ``[n_carriers, n_symbols]`` (bool): every ``carrier_step``-th row of every ``symbol_step``-th
    column. The last row and column are added when the step skips them, so interpolation never extrapolates far."""
    if carrier_step < 1 or symbol_step < 1:
        raise ValueError("pilot steps must be >= 1")
    rows = set(range(carrier_offset, grid.n_carriers, carrier_step)) | {grid.n_carriers - 1}
    cols = set(range(symbol_offset, grid.n_symbols, symbol_step)) | {grid.n_symbols - 1}
    mask = np.zeros(grid.shape, dtype=bool)
    mask[np.ix_(sorted(rows), sorted(cols))] = True
    return mask


def jakes_correlation(max_doppler_hz: float, dt_s: np.ndarray) -> np.ndarray:
    """Clarke/Jakes time autocorrelation ``J0(2 pi f_D dt)`` of a Rayleigh path."""
    return j0(2.0 * np.pi * max_doppler_hz * np.asarray(dt_s, dtype=np.float64))


class ChannelModel(Protocol):
    name: str

    def sample(self, grid: OFDMGrid, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` frames, ``[n, n_carriers, n_symbols]`` complex128."""
        ...

    def covariance(self, grid: OFDMGrid) -> tuple[np.ndarray, np.ndarray]:
        """``(R_f [F, F], R_t [T, T])``: the grid's covariance is ``kron(R_f, R_t)`` over row-major ``[F, T]``."""
        ...


@dataclass(frozen=True)
class _GaussianPaths:
    """Rayleigh paths at fixed delays with powers summing to 1, each with Jakes Doppler."""

    delays_s: np.ndarray = field(repr=False)
    powers: np.ndarray = field(repr=False)
    max_doppler_hz: float = 0.0

    def steering(self, grid: OFDMGrid) -> np.ndarray:
        """``exp(-2j pi f tau)``, ``[F, P]``."""
        return np.exp(-2j * np.pi * np.outer(grid.freqs_hz, self.delays_s))

    def covariance(self, grid: OFDMGrid) -> tuple[np.ndarray, np.ndarray]:
        e = self.steering(grid)
        r_f = (e * self.powers) @ e.conj().T
        t = grid.times_s
        r_t = jakes_correlation(self.max_doppler_hz, np.subtract.outer(t, t))
        return r_f, r_t

    def sample(self, grid: OFDMGrid, n: int, rng: np.random.Generator) -> np.ndarray:
        n_paths = len(self.delays_s)
        t = grid.times_s
        r_t = jakes_correlation(self.max_doppler_hz, np.subtract.outer(t, t))
        # Jitter keeps the factor defined when the path is static (r_t all ones, rank 1).
        l_t = np.linalg.cholesky(r_t + 1e-9 * np.eye(len(t)))
        w = (rng.standard_normal((n, n_paths, len(t))) + 1j * rng.standard_normal((n, n_paths, len(t)))) / np.sqrt(2)
        gains = np.sqrt(self.powers)[None, :, None] * (w @ l_t.T)  # [n, P, T]
        return np.einsum("fp,npt->nft", self.steering(grid), gains)


@dataclass(frozen=True)
class TDL:
    """3GPP TR 38.901 TDL-A/B/C (NLOS, Rayleigh taps) at RMS delay spread ``delay_spread_s``, Jakes Doppler."""

    profile: str = "A"
    delay_spread_s: float = 50e-9
    max_doppler_hz: float = 0.0

    def __post_init__(self) -> None:
        if self.profile not in TDL_TABLES:
            raise ValueError(f"unknown TDL profile {self.profile!r}; use one of {', '.join(TDL_TABLES)}")
        if self.delay_spread_s <= 0 or self.max_doppler_hz < 0:
            raise ValueError("delay_spread_s must be > 0 and max_doppler_hz >= 0")

    @property
    def name(self) -> str:
        return f"TDL-{self.profile} {self.delay_spread_s * 1e9:g} ns {self.max_doppler_hz:g} Hz"

    def paths(self) -> _GaussianPaths:
        delays, powers_db = (np.asarray(v, dtype=np.float64) for v in TDL_TABLES[self.profile])
        powers = 10.0 ** (powers_db / 10.0)
        return _GaussianPaths(delays * self.delay_spread_s, powers / powers.sum(), self.max_doppler_hz)

    def sample(self, grid: OFDMGrid, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.paths().sample(grid, n, rng)

    def covariance(self, grid: OFDMGrid) -> tuple[np.ndarray, np.ndarray]:
        return self.paths().covariance(grid)


@dataclass(frozen=True)
class ExponentialPDP:
    """Taps at the sample period ``1/sample_rate_hz`` with power ``exp(-tau / rms_delay_s)``, truncated where the
    power falls below -30 dB (then renormalised); Jakes Doppler."""

    rms_delay_s: float = 50e-9
    max_doppler_hz: float = 0.0

    @property
    def name(self) -> str:
        return f"exp {self.rms_delay_s * 1e9:g} ns {self.max_doppler_hz:g} Hz"

    def paths(self, grid: OFDMGrid) -> _GaussianPaths:
        if self.rms_delay_s <= 0:
            raise ValueError("rms_delay_s must be > 0")
        ts = 1.0 / grid.sample_rate_hz
        n_taps = max(1, int(np.ceil(np.log(1000.0) * self.rms_delay_s / ts)) + 1)
        delays = np.arange(n_taps) * ts
        powers = np.exp(-delays / self.rms_delay_s)
        return _GaussianPaths(delays, powers / powers.sum(), self.max_doppler_hz)

    def sample(self, grid: OFDMGrid, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.paths(grid).sample(grid, n, rng)

    def covariance(self, grid: OFDMGrid) -> tuple[np.ndarray, np.ndarray]:
        return self.paths(grid).covariance(grid)


@dataclass(frozen=True)
class SparseClustered:
    """A few clusters of a few specular paths (non-Gaussian).

    Per frame: ``1..max_clusters`` clusters (uniform), cluster delays uniform in ``[0, max_delay_s]``; each cluster
    ``1..paths_per_cluster`` paths (uniform) at the cluster delay plus ``U(0, cluster_spread_s)``; path power
    ``exp(-tau / max_delay_s) * Exp(1)`` renormalised to sum 1 over the frame's paths, uniform phase; each path one
    Doppler shift ``f_D cos(theta)``, ``theta`` uniform. Hence ``E|H|^2 = 1``.
    """

    max_clusters: int = 3
    paths_per_cluster: int = 2
    max_delay_s: float = 0.8e-6
    cluster_spread_s: float = 20e-9
    max_doppler_hz: float = 0.0
    covariance_draws: int = 200_000

    @property
    def name(self) -> str:
        return f"sparse {self.max_clusters}x{self.paths_per_cluster} paths {self.max_delay_s * 1e9:g} ns"

    def _paths(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(delays [n, P], complex gains [n, P], doppler_hz [n, P])``, P = max paths, absent paths of gain 0."""
        p_max = self.max_clusters * self.paths_per_cluster
        n_clusters = rng.integers(1, self.max_clusters + 1, size=n)
        n_in_cluster = rng.integers(1, self.paths_per_cluster + 1, size=(n, self.max_clusters))
        cluster_delay = rng.uniform(0.0, self.max_delay_s, size=(n, self.max_clusters))
        present = (np.arange(self.max_clusters)[None, :, None] < n_clusters[:, None, None]) & \
                  (np.arange(self.paths_per_cluster)[None, None, :] < n_in_cluster[:, :, None])
        delays = cluster_delay[:, :, None] + rng.uniform(0.0, self.cluster_spread_s,
                                                         size=(n, self.max_clusters, self.paths_per_cluster))
        power = np.exp(-delays / self.max_delay_s) * rng.exponential(size=delays.shape) * present
        power = power.reshape(n, p_max)
        power /= power.sum(axis=1, keepdims=True)
        phase = rng.uniform(0.0, 2 * np.pi, size=(n, p_max))
        doppler = self.max_doppler_hz * np.cos(rng.uniform(0.0, 2 * np.pi, size=(n, p_max)))
        return delays.reshape(n, p_max), np.sqrt(power) * np.exp(1j * phase), doppler

    def sample(self, grid: OFDMGrid, n: int, rng: np.random.Generator) -> np.ndarray:
        delays, gains, doppler = self._paths(n, rng)
        steer = np.exp(-2j * np.pi * grid.freqs_hz[None, :, None] * delays[:, None, :])  # [n, F, P]
        rot = np.exp(2j * np.pi * doppler[:, :, None] * grid.times_s[None, None, :])  # [n, P, T]
        return np.einsum("nfp,npt->nft", steer, gains[:, :, None] * rot)

    def cluster_mixture(self, grid: OFDMGrid, delay_bins: int) -> tuple[list[tuple[np.ndarray, np.ndarray]],
                                                                           np.ndarray]:
        """The model as a mixture of Gaussians, one per set of occupied delay bins: ``(covariances, weights)``,
        each covariance ``(R_f [F, F], R_t [T, T])``.

        The span ``[0, max_delay_s]`` is cut into ``delay_bins`` bins; a cluster whose delay falls in bin ``b`` has
        its paths uniform over the bin widened by ``cluster_spread_s``, so given the bins the grid is (to second
        order) a sum of independent clusters, each ``E exp(-2j pi (f - f') tau)`` over its window (a phase times a
        sinc) weighted by its expected power share (``exp(-tau / max_delay_s)`` at the bin centre, normalised over
        the set). Every set of 1..``max_clusters`` distinct bins is a component, weighted as the model draws the
        number of clusters (uniform) and their delays (uniform: every set of that size alike); two clusters in one
        bin are the one-bin component. ``R_t``: Jakes at ``max_doppler_hz``, as in :meth:`covariance`."""
        if delay_bins < 1:
            raise ValueError(f"delay_bins must be >= 1, got {delay_bins}")
        width = self.max_delay_s / delay_bins
        lag_hz = np.subtract.outer(grid.freqs_hz, grid.freqs_hz)
        windows = []
        for b in range(delay_bins):
            lo, hi = b * width, (b + 1) * width + self.cluster_spread_s
            windows.append(np.exp(-1j * np.pi * lag_hz * (lo + hi)) * np.sinc(lag_hz * (hi - lo)))
        share = np.exp(-(np.arange(delay_bins) + 0.5) * width / self.max_delay_s)
        t = grid.times_s
        r_t = jakes_correlation(self.max_doppler_hz, np.subtract.outer(t, t)).astype(np.complex128)
        covariances, weights = [], []
        for n_clusters in range(1, self.max_clusters + 1):
            sets = list(itertools.combinations(range(delay_bins), n_clusters))
            for bins in sets:
                p = share[list(bins)] / share[list(bins)].sum()
                covariances.append((sum(pk * windows[b] for pk, b in zip(p, bins)), r_t))
                weights.append(1.0 / (self.max_clusters * len(sets)))
        return covariances, np.asarray(weights)

    def covariance(self, grid: OFDMGrid) -> tuple[np.ndarray, np.ndarray]:
        """Second-order statistics; delays and Doppler are independent, so the covariance is separable. ``R_f`` is
        the mean of ``h h^H`` over ``covariance_draws`` frames (seeded), ``R_t = J0`` (uniform arrival angle)."""
        rng = np.random.default_rng(12345)
        r_f = np.zeros((grid.n_carriers, grid.n_carriers), dtype=np.complex128)
        chunk = 20_000
        for start in range(0, self.covariance_draws, chunk):
            delays, gains, _ = self._paths(min(chunk, self.covariance_draws - start), rng)
            h = np.einsum("nfp,np->nf", np.exp(-2j * np.pi * grid.freqs_hz[None, :, None] * delays[:, None, :]),
                          gains)
            r_f += h.T @ h.conj()
        r_f /= self.covariance_draws
        t = grid.times_s
        return r_f, jakes_correlation(self.max_doppler_hz, np.subtract.outer(t, t))


@dataclass(frozen=True)
class ExpCorrelated:
    """The sanity case: ``h ~ CN(0, R)``, ``R_ij = rho^|i-j|`` over the grid's carriers, one symbol."""

    rho: float = 0.9

    @property
    def name(self) -> str:
        return f"exp-correlated rho={self.rho:g}"

    def covariance(self, grid: OFDMGrid) -> tuple[np.ndarray, np.ndarray]:
        k = np.arange(grid.n_carriers)
        return self.rho ** np.abs(np.subtract.outer(k, k)).astype(np.complex128), np.ones((grid.n_symbols,) * 2)

    def sample(self, grid: OFDMGrid, n: int, rng: np.random.Generator) -> np.ndarray:
        r_f, _ = self.covariance(grid)
        l_f = np.linalg.cholesky(r_f.real)
        w = (rng.standard_normal((n, grid.n_carriers)) + 1j * rng.standard_normal((n, grid.n_carriers))) / np.sqrt(2)
        return np.repeat((w @ l_f.T)[:, :, None], grid.n_symbols, axis=2)


def covariance_matrix(model: ChannelModel, grid: OFDMGrid) -> np.ndarray:
    """The full ``[F*T, F*T]`` covariance of row-major flattened grids."""
    r_f, r_t = model.covariance(grid)
    return np.kron(r_f, r_t)
