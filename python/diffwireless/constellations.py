"""Constellations with GNU Radio's point order and bit labels, decisions, and exact AWGN error rates.

Each :class:`Constellation` reproduces one ``gnuradio.digital`` constructor (named in ``gr_constructor``): the
point with index ``k`` is ``points()[k]`` of that object, and its bits are ``k`` written MSB first, which is how
``digital.constellation_encoder_bc`` / ``constellation_decoder_cb`` use them (no pre-differential code). Points
here are scaled to unit mean power; ``gr_scale`` is the factor back to the GNU Radio object's points. SNR is
``Es/N0``: the complex noise variance of a unit-power signal at ``snr_db`` is ``10 ** (-snr_db / 10)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.special import ndtr


@dataclass(frozen=True, eq=False)
class Constellation:
    """A constellation at unit mean power, in GNU Radio's point order.

    Attributes:
        name: ``bpsk``, ``qpsk``, ``8psk``, ``16qam``, ``64qam``.
        gr_constructor: the ``gnuradio.digital`` call whose ``points()`` (times ``1 / gr_scale``) these are.
        points: complex128 ``[M]``, unit mean power.
        gr_scale: ``points_gr = points * gr_scale``.
        kind: ``psk`` or ``qam`` (decides the exact-BER formula).
    """

    name: str
    gr_constructor: str
    points: np.ndarray
    gr_scale: float
    kind: str

    @property
    def order(self) -> int:
        return len(self.points)

    @property
    def bits_per_symbol(self) -> int:
        return int(round(math.log2(self.order)))

    @cached_property
    def labels(self) -> np.ndarray:
        """Bits of every point, ``[M, k]`` uint8, MSB first."""
        k = self.bits_per_symbol
        return ((np.arange(self.order)[:, None] >> np.arange(k - 1, -1, -1)[None, :]) & 1).astype(np.uint8)

    def bits_to_indices(self, bits: np.ndarray) -> np.ndarray:
        """Bits ``[n * k]`` (MSB first per symbol) -> symbol indices ``[n]`` (int64)."""
        k = self.bits_per_symbol
        bits = np.asarray(bits, dtype=np.int64).reshape(-1, k)
        return bits @ (1 << np.arange(k - 1, -1, -1))

    def indices_to_bits(self, indices: np.ndarray) -> np.ndarray:
        """Symbol indices ``[n]`` -> bits ``[n * k]`` uint8, MSB first."""
        return self.labels[np.asarray(indices, dtype=np.int64)].ravel()

    def modulate(self, indices: np.ndarray) -> np.ndarray:
        """Symbol indices ``[n]`` -> unit-power complex symbols ``[n]`` (complex128)."""
        return self.points[np.asarray(indices, dtype=np.int64)]

    def nearest(self, y: np.ndarray, points: np.ndarray | None = None, chunk: int = 1 << 16) -> np.ndarray:
        """Index of the nearest point (of ``points``, default this constellation's) for each ``y [n]``."""
        pts = self.points if points is None else np.asarray(points)
        y = np.asarray(y).ravel()
        out = np.empty(len(y), dtype=np.int64)
        for s in range(0, len(y), chunk):
            out[s:s + chunk] = np.argmin(_squared_distances(y[s:s + chunk], pts), axis=1)
        return out

    def max_log_llr(self, y: np.ndarray, noise_var: float | np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
        """Max-log bit LLRs ``[n, k]`` of symbols ``y [n]`` in complex noise of variance ``noise_var``.

        Sign convention of GNU Radio's ``calc_soft_dec``: positive means bit 1,
        ``LLR = (min_{b=0} |y-p|^2 - min_{b=1} |y-p|^2) / noise_var``.
        """
        y = np.asarray(y).ravel()
        nv = np.broadcast_to(np.asarray(noise_var, dtype=np.float64), y.shape)
        out = np.empty((len(y), self.bits_per_symbol), dtype=np.float32)
        ones = self.labels.astype(bool)
        for s in range(0, len(y), chunk):
            d = _squared_distances(y[s:s + chunk], self.points)
            d0 = np.where(~ones[None, :, :], d[:, :, None], np.inf).min(axis=1)
            d1 = np.where(ones[None, :, :], d[:, :, None], np.inf).min(axis=1)
            out[s:s + chunk] = (d0 - d1) / nv[s:s + chunk, None]
        return out


def _squared_distances(y: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``|y - p|^2`` for symbols ``y [n]`` and points ``[M]`` -> ``[n, M]``, in real arithmetic (several times
    faster than the complex ``abs``, which takes a square root) and in ``y``'s precision."""
    real = np.float32 if y.dtype == np.complex64 else np.float64
    d = np.square(y.real.astype(real, copy=False)[:, None] - points.real.astype(real)[None, :])
    d += np.square(y.imag.astype(real, copy=False)[:, None] - points.imag.astype(real)[None, :])
    return d


def _gray(n: int) -> list[int]:
    """Reflected binary Gray code of ``n`` (a power of two) values, in position order."""
    return [i ^ (i >> 1) for i in range(n)]


def _rect_qam_gray(m: int) -> np.ndarray:
    """``digital.qam_constellation(m, differential=False, mod_code=GRAY_CODE)`` points, before normalisation:
    the low ``k/2`` bits of the index pick the Gray-coded row (imaginary part), the high bits the column."""
    side = int(round(math.sqrt(m)))
    half = int(round(math.log2(m))) // 2
    inverse = np.argsort(_gray(side))  # Gray value -> position
    level = -1.0 + inverse * (2.0 / (side - 1))
    idx = np.arange(m)
    return level[idx >> half] + 1j * level[idx & (side - 1)]


def _unit_power(points: np.ndarray) -> tuple[np.ndarray, float]:
    scale = float(np.sqrt(np.mean(np.abs(points) ** 2)))
    return np.asarray(points, dtype=np.complex128) / scale, scale


def _make(name: str, constructor: str, points_gr: np.ndarray, kind: str) -> Constellation:
    points, scale = _unit_power(np.asarray(points_gr, dtype=np.complex128))
    return Constellation(name, constructor, points, scale, kind)


def _unit_amplitude(points: np.ndarray) -> np.ndarray:
    """GNU Radio's ``constellation_rect`` scales its points to unit mean amplitude."""
    return points / np.mean(np.abs(points))


_S2 = math.sqrt(2.0)
_8PSK_DEG = np.array([22.5, 157.5, -22.5, -157.5, 67.5, 112.5, -67.5, -112.5])

CONSTELLATIONS: dict[str, Constellation] = {
    c.name: c for c in (
        _make("bpsk", "digital.constellation_bpsk()", np.array([-1.0, 1.0]), "psk"),
        _make("qpsk", "digital.constellation_qpsk()", np.array([-1 - 1j, 1 - 1j, -1 + 1j, 1 + 1j]) * _S2, "qam"),
        _make("8psk", "digital.constellation_8psk()", np.exp(1j * np.deg2rad(_8PSK_DEG)), "psk"),
        # qam_constellation rather than constellation_16qam(): the latter's index bits are not a Gray code.
        _make("16qam", "digital.qam_constellation(16, differential=False, mod_code=digital.mod_codes.GRAY_CODE)",
              _unit_amplitude(_rect_qam_gray(16)), "qam"),
        _make("64qam", "digital.qam_constellation(64, differential=False, mod_code=digital.mod_codes.GRAY_CODE)",
              _unit_amplitude(_rect_qam_gray(64)), "qam"),
    )
}


def get_constellation(name: str) -> Constellation:
    """The constellation called ``name`` (case-insensitive), or a ValueError listing the known ones."""
    c = CONSTELLATIONS.get(str(name).lower())
    if c is None:
        raise ValueError(f"unknown constellation {name!r}; known: {', '.join(CONSTELLATIONS)}")
    return c


# SNRs a block takes: beyond these the noise variance over- or underflows a float64 and means nothing at a receiver.
SNR_DB_LIMIT = 300.0


def check_snr_db(snr_db: float, name: str = "snr_db") -> float:
    """``snr_db`` as a float; ValueError naming ``name`` unless it is finite and within +-:data:`SNR_DB_LIMIT`."""
    value = float(snr_db)
    if not (math.isfinite(value) and abs(value) <= SNR_DB_LIMIT):
        raise ValueError(f"{name} must be finite and within +-{SNR_DB_LIMIT:g} dB, got {snr_db}")
    return value


def noise_var(snr_db: float | np.ndarray) -> float | np.ndarray:
    """Complex noise variance of a unit-power signal at ``snr_db`` (Es/N0)."""
    return 10.0 ** (-np.asarray(snr_db, dtype=np.float64) / 10.0)


def exact_awgn_ber(constellation: Constellation, snr_db: float) -> float:
    """Exact bit error rate of minimum-distance detection of ``constellation`` in AWGN at ``snr_db`` (Es/N0).

    Rectangular constellations: every decision region is a rectangle, so the probability that point ``i`` is
    decided as ``j`` is a product of two Gaussian interval probabilities; the BER is the label-distance-weighted
    sum over all pairs (exact for any labelling). PSK: the decision regions are wedges; the probability of each
    wedge is the integral of the exact phase density of a point in complex Gaussian noise, evaluated by
    Gauss-Legendre quadrature to ~1e-12.
    """
    pts = constellation.points
    sigma = math.sqrt(float(noise_var(snr_db)) / 2.0)  # per real dimension
    ham = (constellation.labels[:, None, :] != constellation.labels[None, :, :]).sum(axis=2)
    k = constellation.bits_per_symbol
    if constellation.kind == "qam":
        p_i = _interval_probs(pts.real, sigma)
        p_q = _interval_probs(pts.imag, sigma)
        trans = p_i * p_q  # [i, j]: tx point i decided as j
    else:
        trans = _psk_transitions(pts, snr=float(1.0 / noise_var(snr_db)))
    return float((trans * ham).sum() / (len(pts) * k))


def _interval_probs(coords: np.ndarray, sigma: float) -> np.ndarray:
    """``[i, j]``: probability that coordinate ``coords[i]`` plus N(0, sigma^2) falls in the decision interval of
    ``coords[j]`` along this axis (midpoints between the distinct levels)."""
    levels = np.unique(np.round(coords, 12))
    edges = np.concatenate([[-np.inf], (levels[:-1] + levels[1:]) / 2, [np.inf]])
    which = np.searchsorted(levels, np.round(coords, 12))
    lo, hi = edges[which], edges[which + 1]
    return ndtr((hi[None, :] - coords[:, None]) / sigma) - ndtr((lo[None, :] - coords[:, None]) / sigma)


def _psk_transitions(points: np.ndarray, snr: float, nodes: int = 400) -> np.ndarray:
    """``[i, j]`` for M-PSK (equal amplitudes, equally spaced): the phase density of ``sqrt(snr) e^{j0}`` plus unit
    complex Gaussian noise, integrated over each wedge."""
    m = len(points)
    angles = np.angle(points)
    half = math.pi / m
    x, w = np.polynomial.legendre.leggauss(nodes)
    trans = np.zeros((m, m))
    for j in range(m):
        for i in range(m):
            # Wedge of j, seen from point i: centred on the angle difference, wrapped to (-pi, pi].
            centre = (angles[j] - angles[i] + math.pi) % (2 * math.pi) - math.pi
            trans[i, j] = _phase_mass(centre - half, centre + half, snr, x, w)
    return trans


def _phase_mass(a: float, b: float, snr: float, x: np.ndarray, w: np.ndarray) -> float:
    """Probability that the phase of ``sqrt(snr) + n`` (n complex Gaussian, unit variance) lies in ``[a, b]``."""
    if a < -math.pi:  # split a wedge that straddles +-pi
        return _phase_mass(a + 2 * math.pi, math.pi, snr, x, w) + _phase_mass(-math.pi, b, snr, x, w)
    if b > math.pi:
        return _phase_mass(a, math.pi, snr, x, w) + _phase_mass(-math.pi, b - 2 * math.pi, snr, x, w)
    theta = (b - a) / 2 * x + (a + b) / 2
    c = np.cos(theta)
    # p(theta) = e^{-g}/(2 pi) * (1 + sqrt(4 pi g) cos(theta) e^{g cos^2} Phi(sqrt(2 g) cos(theta))), g = snr;
    # written with e^{-g sin^2} to stay finite at high SNR.
    dens = (np.exp(-snr) + math.sqrt(4 * math.pi * snr) * c * np.exp(-snr * np.sin(theta) ** 2)
            * ndtr(math.sqrt(2 * snr) * c)) / (2 * math.pi)
    return float((b - a) / 2 * np.dot(w, dens))
