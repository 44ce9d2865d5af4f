"""A classifier's front end for real captures: find the bursts, centre each one's carrier, and resample it so that
its occupied bandwidth fills the share of the band a network was trained on.

Real recordings come at any sample rate, bandwidth, burst length and carrier offset; a network trained on frames
that fill a fixed share of the band, centred, sees something else in them. This module turns a capture into frames
that look like the training frames:

1. :func:`gate_bursts`: energy detection over the noise floor with a hold time, so that only samples with signal are
   classified, each burst with its start sample.
2. :func:`centre_carrier`: the burst's power-weighted mean frequency mixed to 0 Hz (and the DC of a front end
   removed first, :func:`remove_dc`).
3. :func:`occupied_bandwidth`: the narrowest band holding a given share of the burst's power.
4. :func:`fit_band`: resampling so that band fills ``target_share`` of the output rate.

All frequencies are normalised (cycles per sample, in ``[-0.5, 0.5)``); sample indices are the capture's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import signal as sps_signal


@dataclass(frozen=True)
class Burst:
    """Samples ``[start, end)`` of a capture that hold signal, and the gate's view of them.

    Attributes:
        start, end: first sample and one past the last.
        snr_db: mean power of the burst over the noise floor, dB.
    """

    start: int
    end: int
    snr_db: float

    @property
    def length(self) -> int:
        return self.end - self.start


def remove_dc(iq: np.ndarray) -> np.ndarray:
    """``iq`` less its mean (the DC spike of a zero-IF front end such as an RTL-SDR)."""
    iq = np.asarray(iq)
    return iq - iq.mean() if len(iq) else iq


def noise_floor(power: np.ndarray, quantile: float = 0.05) -> float:
    """The noise power of a capture from its smoothed power: a low quantile (bursts take less than most of the
    time in the recordings this is for; a capture that is all signal gets its weakest stretch)."""
    p = np.asarray(power, dtype=np.float64)
    if p.size == 0:
        raise ValueError("noise_floor needs samples")
    return float(max(np.quantile(p, quantile), np.finfo(np.float64).tiny))


def gate_bursts(iq: np.ndarray, threshold_db: float = 6.0, smooth: int = 64, hold: int = 1024,
                min_length: int = 256) -> list[Burst]:
    """Bursts of ``iq``: runs where the power, averaged over ``smooth`` samples, is over the noise floor by
    ``threshold_db``, merged across gaps shorter than ``hold`` samples (the off-times inside an OOK telegram) and
    kept when at least ``min_length`` samples long.

    Raises:
        ValueError: a parameter out of range.
    """
    if smooth < 1 or hold < 0 or min_length < 1 or not math.isfinite(threshold_db):
        raise ValueError(f"need smooth >= 1, hold >= 0, min_length >= 1 and a finite threshold; got {smooth}, {hold}, "
                         f"{min_length}, {threshold_db}")
    iq = np.asarray(iq)
    if len(iq) == 0:
        return []
    power = np.convolve(np.abs(iq) ** 2, np.ones(smooth) / smooth, mode="same")
    floor = noise_floor(power)
    above = power > floor * 10 ** (threshold_db / 10)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
    runs = list(zip(edges[::2], edges[1::2]))
    merged: list[list[int]] = []
    for start, end in runs:
        if merged and start - merged[-1][1] < hold:
            merged[-1][1] = int(end)
        else:
            merged.append([int(start), int(end)])
    bursts = []
    for start, end in merged:
        if end - start >= min_length:
            snr = float(np.mean(power[start:end]) / floor)
            bursts.append(Burst(start, end, 10 * math.log10(max(snr - 1.0, 1e-12))))
    return bursts


def _spectrum(x: np.ndarray, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectrum of ``x``: (frequencies in [-0.5, 0.5), ascending; power)."""
    nper = min(n_fft, len(x))
    f, p = sps_signal.welch(x, fs=1.0, nperseg=nper, return_onesided=False, detrend=False, scaling="spectrum")
    order = np.argsort(f)
    return f[order], p[order]


def carrier_offset(x: np.ndarray, n_fft: int = 1024) -> float:
    """The power-weighted mean frequency of ``x`` (cycles per sample)."""
    f, p = _spectrum(np.asarray(x), n_fft)
    return float(np.sum(f * p) / np.sum(p)) if np.sum(p) > 0 else 0.0


def centre_carrier(x: np.ndarray, n_fft: int = 1024) -> tuple[np.ndarray, float]:
    """``x`` mixed so that its power-weighted mean frequency is at 0; returns (centred, the offset removed)."""
    x = np.asarray(x)
    offset = carrier_offset(x, n_fft)
    return (x * np.exp(-2j * np.pi * offset * np.arange(len(x)))).astype(np.complex64), offset


def occupied_bandwidth(x: np.ndarray, share: float = 0.99, n_fft: int = 1024) -> float:
    """The narrowest band, around the power-weighted centre, that holds ``share`` of the power of ``x``
    (cycles per sample, at most 1)."""
    if not 0 < share < 1:
        raise ValueError(f"share must lie in (0, 1), got {share}")
    f, p = _spectrum(np.asarray(x), n_fft)
    total = float(np.sum(p))
    if total <= 0:
        return 0.0
    centre = float(np.sum(f * p) / total)
    dist = np.abs(f - centre)
    order = np.argsort(dist)
    cum = np.cumsum(p[order]) / total
    k = int(np.searchsorted(cum, share))
    return float(min(1.0, 2 * dist[order][min(k, len(order) - 1)] + 1.0 / len(f)))


def fit_band(x: np.ndarray, bandwidth: float, target_share: float, max_denominator: int = 64) -> tuple[np.ndarray,
                                                                                                        float]:
    """Resample centred ``x`` (occupied bandwidth ``bandwidth``, cycles per sample) so that it fills
    ``target_share`` of the output band; returns (resampled, the rate factor applied: output / input samples).

    The factor is a ratio of small integers (polyphase resampling); a signal already at the share is returned as is.
    """
    if not (0 < target_share <= 1) or not (0 < bandwidth <= 1):
        raise ValueError(f"need bandwidth and target_share in (0, 1], got {bandwidth}, {target_share}")
    factor = bandwidth / target_share
    ratio = Fraction(factor).limit_denominator(max_denominator)
    if ratio.numerator == 0:
        ratio = Fraction(1, max_denominator)
    if ratio == 1:
        return np.asarray(x, dtype=np.complex64), 1.0
    y = sps_signal.resample_poly(np.asarray(x), ratio.numerator, ratio.denominator)
    return y.astype(np.complex64), float(ratio)
