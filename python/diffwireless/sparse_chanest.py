"""Sparse recovery of OFDM channel grids: orthogonal matching pursuit (OMP) over an oversampled delay-Doppler
dictionary, the classical estimator for channels of a few specular paths.

An atom is one path: ``a(tau, nu)[f, t] = exp(-2j pi f_hz tau) exp(2j pi nu t_s)`` on the grid's carriers and
symbol times, for delays over ``[0, max_delay_s]`` at ``oversample`` points per delay resolution ``1 / (N df)``
and Doppler shifts over ``[-max_doppler_hz, max_doppler_hz]``. OMP adds the atom most correlated with the residual
at the pilots, refits every chosen atom by least squares, and stops when the residual's power falls to the noise's
(``|r|^2 <= P noise_var``: what is left is noise) or at ``max_paths``.
"""

from __future__ import annotations

import numpy as np

from diffwireless.fading import OFDMGrid


def delay_doppler_dictionary(grid: OFDMGrid, max_delay_s: float, max_doppler_hz: float = 0.0, oversample: int = 4,
                             doppler_bins: int = 5) -> np.ndarray:
    """Atoms ``[F * T, M]`` (row-major grids), unit power per element."""
    if max_delay_s <= 0 or oversample < 1:
        raise ValueError(f"need max_delay_s > 0 and oversample >= 1, got {max_delay_s}, {oversample}")
    resolution = 1.0 / grid.sample_rate_hz  # 1 / (N df): what the FFT's band resolves
    delays = np.arange(0.0, max_delay_s + 1e-15, resolution / oversample)
    dopplers = np.linspace(-max_doppler_hz, max_doppler_hz, doppler_bins) if max_doppler_hz > 0 else np.zeros(1)
    steer = np.exp(-2j * np.pi * np.outer(grid.freqs_hz, delays))  # [F, D]
    rot = np.exp(2j * np.pi * np.outer(grid.times_s, dopplers))  # [T, V]
    atoms = steer[:, None, :, None] * rot[None, :, None, :]  # [F, T, D, V]
    return atoms.reshape(len(grid.freqs_hz) * len(grid.times_s), -1)


class OMPChannelEstimator:
    """OMP estimates of grids ``[n, F, T]`` from pilot observations ``ls [n, P]`` for one pilot mask."""

    def __init__(self, dictionary: np.ndarray, mask: np.ndarray, noise_var: float, max_paths: int = 12) -> None:
        self.mask = np.asarray(mask, dtype=bool)
        p = np.flatnonzero(self.mask.reshape(-1))
        self.full = np.asarray(dictionary, dtype=np.complex128)
        self.pilots = self.full[p]
        self.norms = np.linalg.norm(self.pilots, axis=0)
        self.noise_var = float(noise_var)
        self.max_paths = int(min(max_paths, len(p)))

    def estimate_one(self, y: np.ndarray) -> np.ndarray:
        """One frame's grid ``[F * T]`` from its pilots ``y [P]``."""
        residual, support, coef = y.astype(np.complex128), [], np.zeros(0, complex)
        stop = len(y) * self.noise_var
        while len(support) < self.max_paths and np.vdot(residual, residual).real > stop:
            k = int(np.argmax(np.abs(self.pilots.conj().T @ residual) / self.norms))
            if k in support:
                break
            support.append(k)
            coef = np.linalg.lstsq(self.pilots[:, support], y, rcond=None)[0]
            residual = y - self.pilots[:, support] @ coef
        return self.full[:, support] @ coef if support else np.zeros(self.full.shape[0], complex)

    def estimate(self, ls: np.ndarray) -> np.ndarray:
        ls = np.asarray(ls)
        return np.stack([self.estimate_one(y) for y in ls]).reshape(len(ls), *self.mask.shape)
