"""Test and training signals: pulse-shaped PSK/QAM baseband, vectorised, seeded."""

from __future__ import annotations

import numpy as np
from scipy import signal as sps_signal


def rrc_taps(sps: int, beta: float, span_symbols: int = 11) -> np.ndarray:
    """Root-raised-cosine taps (unit energy), ``span_symbols * sps + 1`` of them, float64."""
    if sps < 1 or not 0 < beta <= 1:
        raise ValueError(f"need sps >= 1 and 0 < beta <= 1, got sps={sps}, beta={beta}")
    t = (np.arange(span_symbols * sps + 1) - span_symbols * sps / 2) / sps
    taps = np.empty_like(t)
    for i, ti in enumerate(t):
        if abs(ti) < 1e-12:
            taps[i] = 1 + beta * (4 / np.pi - 1)
        elif abs(abs(ti) - 1 / (4 * beta)) < 1e-12:
            taps[i] = beta / np.sqrt(2) * ((1 + 2 / np.pi) * np.sin(np.pi / (4 * beta))
                                           + (1 - 2 / np.pi) * np.cos(np.pi / (4 * beta)))
        else:
            taps[i] = (np.sin(np.pi * ti * (1 - beta)) + 4 * beta * ti * np.cos(np.pi * ti * (1 + beta))) / (
                np.pi * ti * (1 - (4 * beta * ti) ** 2))
    return taps / np.sqrt(np.sum(taps ** 2))


def psk_rrc(n_samples: int, sps: int, beta: float, rng: np.random.Generator, order: int = 4) -> np.ndarray:
    """Unit-power RRC-shaped M-PSK (QPSK by default) at ``sps`` samples/symbol; complex64, ``n_samples`` long."""
    taps = rrc_taps(sps, beta)
    n_sym = n_samples // sps + len(taps) // sps + 2
    symbols = np.exp(1j * (2 * np.pi * rng.integers(0, order, n_sym) / order + np.pi / order))
    up = np.zeros(n_sym * sps, dtype=np.complex128)
    up[::sps] = symbols
    x = sps_signal.lfilter(taps, 1.0, up)[len(taps):len(taps) + n_samples]
    return (x / np.sqrt(np.mean(np.abs(x) ** 2))).astype(np.complex64)
