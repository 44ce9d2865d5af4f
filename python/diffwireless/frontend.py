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
5. :func:`fine_carrier`: the residual carrier of each frame from the spectral line of its 2nd, 4th or 8th power.
6. :func:`burst_frames`: all of it for one burst, cut into the frames a network sees (the same path for the
   training frames of the networks trained on fitted bursts and for a capture classified).
7. :func:`cyclic_prefix_contrast`: the OFDM cyclic-prefix signature of a burst, as recorded (a test of structure
   the resampled frames no longer show at a whole-sample lag).
8. :func:`keyed_share`: how much of a burst its carrier spends switched off (on-off keying, as recorded: the
   frames a network sees are cut from the burst and no longer show its gaps at the noise floor).

All frequencies are normalised (cycles per sample, in ``[-0.5, 0.5)``); sample indices are the capture's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import signal as sps_signal
from scipy import stats as sps_stats


@dataclass(frozen=True)
class Burst:
    """Samples ``[start, end)`` of a capture that hold signal, and the gate's view of them.

    Attributes:
        start, end: first sample and one past the last.
        snr_db: mean power of the burst over the noise floor, dB.
        noise_power: the capture's noise floor (mean power per sample).
    """

    start: int
    end: int
    snr_db: float
    noise_power: float = 0.0

    @property
    def length(self) -> int:
        return self.end - self.start


def remove_dc(iq: np.ndarray) -> np.ndarray:
    """``iq`` less its mean (the DC spike of a zero-IF front end such as an RTL-SDR)."""
    iq = np.asarray(iq)
    return iq - iq.mean() if len(iq) else iq


def noise_floor(power: np.ndarray, quantile: float = 0.05, smooth: int = 64) -> float:
    """The mean noise power of a capture from its power averaged over ``smooth`` samples: a low quantile (bursts
    take less than most of the time in the recordings this is for; a capture that is all signal gets its weakest
    stretch), divided by where that quantile lies for complex Gaussian noise (a Gamma(smooth) average), so that it
    estimates the mean."""
    p = np.asarray(power, dtype=np.float64)
    if p.size == 0:
        raise ValueError("noise_floor needs samples")
    bias = float(sps_stats.gamma.ppf(quantile, smooth) / smooth)
    return float(max(np.quantile(p, quantile) / bias, np.finfo(np.float64).tiny))


def smoothed_power(iq: np.ndarray, smooth: int = 64) -> np.ndarray:
    """``|iq|^2`` averaged over ``smooth`` samples, centred as ``np.convolve(..., mode="same")`` (float64, same
    length; a running sum, so its cost does not grow with ``smooth``)."""
    x = np.asarray(iq)
    p = x.real.astype(np.float64) ** 2 + x.imag.astype(np.float64) ** 2
    if len(p) == 0 or smooth <= 1:
        return p
    lead, trail = smooth // 2, (smooth - 1) // 2  # out[i] averages p[i - lead .. i + trail], as np.convolve's
    pad = lead + 1
    c = np.cumsum(np.concatenate([np.zeros(pad), p, np.zeros(trail + 1)]))
    i = np.arange(len(p))
    hi, lo = c[i + trail + pad], c[i - lead - 1 + pad]
    return (hi - lo) / smooth


def spectral_floor(iq: np.ndarray, quantile: float = 0.05, n_fft: int = 1024) -> float:
    """The mean noise power of a capture from its spectrum: a low quantile of its Welch density over the band,
    corrected like :func:`noise_floor` for the averaging of the estimate. For a capture with no quiet stretch in
    time (a recording that is one packet) whose signal leaves some of the band empty (guard bands)."""
    x = np.asarray(iq)
    if len(x) == 0:
        raise ValueError("spectral_floor needs samples")
    _, p = _spectrum(x, n_fft)
    segments = max(1, len(x) // min(n_fft, len(x)))
    bias = float(sps_stats.gamma.ppf(quantile, segments) / segments)
    return float(max(np.quantile(p, quantile) / bias, np.finfo(np.float64).tiny))


def gate_bursts(iq: np.ndarray, threshold_db: float = 6.0, smooth: int = 64, hold: int = 1024,
                min_length: int = 256, floor: float | None = None, power: np.ndarray | None = None) -> list[Burst]:
    """Bursts of ``iq``: runs where the power, averaged over ``smooth`` samples, is over the noise floor by
    ``threshold_db``, merged across gaps shorter than ``hold`` samples (the off-times inside an OOK telegram) and
    kept when at least ``min_length`` samples long. The floor is :func:`noise_floor` of ``iq`` unless given (a
    stream's floor tracked over more than this stretch); ``power`` is :func:`smoothed_power` of ``iq`` when the
    caller has it already.

    Raises:
        ValueError: a parameter out of range.
    """
    if smooth < 1 or hold < 0 or min_length < 1 or not math.isfinite(threshold_db):
        raise ValueError(f"need smooth >= 1, hold >= 0, min_length >= 1 and a finite threshold; got {smooth}, {hold}, "
                         f"{min_length}, {threshold_db}")
    iq = np.asarray(iq)
    if len(iq) == 0:
        return []
    power = smoothed_power(iq, smooth) if power is None else np.asarray(power)
    floor = noise_floor(power, smooth=smooth) if floor is None else float(floor)
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
            bursts.append(Burst(start, end, 10 * math.log10(max(snr - 1.0, 1e-12)), floor))
    return bursts


def _spectrum(x: np.ndarray, n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Welch power spectral density of ``x`` (sample rate 1: white noise of mean power ``P`` has density ``P``):
    (frequencies in [-0.5, 0.5), ascending; density)."""
    nper = min(n_fft, len(x))
    f, p = sps_signal.welch(x, fs=1.0, nperseg=nper, return_onesided=False, detrend=False, scaling="density")
    order = np.argsort(f)
    return f[order], p[order]


def carrier_offset(x: np.ndarray, n_fft: int = 1024, noise_power: float = 0.0) -> float:
    """The power-weighted mean frequency of ``x`` (cycles per sample), the noise density ``noise_power`` taken
    off every bin first (white noise weighs every frequency alike and pulls the estimate towards 0)."""
    f, p = _spectrum(np.asarray(x), n_fft)
    p = np.maximum(p - noise_power, 0.0)
    return float(np.sum(f * p) / np.sum(p)) if np.sum(p) > 0 else 0.0


def centre_carrier(x: np.ndarray, n_fft: int = 1024, noise_power: float = 0.0) -> tuple[np.ndarray, float]:
    """``x`` mixed so that its power-weighted mean frequency is at 0; returns (centred, the offset removed)."""
    x = np.asarray(x)
    offset = carrier_offset(x, n_fft, noise_power)
    return (x * np.exp(-2j * np.pi * offset * np.arange(len(x)))).astype(np.complex64), offset


def occupied_bandwidth(x: np.ndarray, share: float = 0.99, n_fft: int = 1024, noise_power: float = 0.0) -> float:
    """The narrowest band, around the power-weighted centre, that holds ``share`` of the power of ``x``
    (cycles per sample, at most 1).

    ``noise_power`` (mean power per sample of the noise under the signal, e.g. :attr:`Burst.noise_power`) is taken
    off every bin first: white noise fills the whole band, and at 10 dB SNR its 10% of the power would make any
    narrow signal look as wide as the capture.
    """
    if not 0 < share < 1:
        raise ValueError(f"share must lie in (0, 1), got {share}")
    if not (math.isfinite(noise_power) and noise_power >= 0):
        raise ValueError(f"noise_power must be finite and >= 0, got {noise_power}")
    f, p = _spectrum(np.asarray(x), n_fft)
    p = np.maximum(p - noise_power, 0.0)
    total = float(np.sum(p))
    if total <= 0:
        return 0.0
    centre = float(np.sum(f * p) / total)
    dist = np.abs(f - centre)
    order = np.argsort(dist)
    cum = np.cumsum(p[order]) / total
    k = int(np.searchsorted(cum, share))
    return float(min(1.0, 2 * dist[order][min(k, len(order) - 1)] + 1.0 / len(f)))


def rate_ratio(factor: float, max_term: int = 16) -> Fraction:
    """A ratio ``up / down`` of small integers near ``factor`` (output / input samples): the smaller of the two at
    most ``max_term``, so that the error is within about ``1 / (2 max_term)`` however far the factor is from 1
    (a 433 MHz sensor at 2.4 Msamples/s is decimated by hundreds)."""
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"the rate factor must be finite and > 0, got {factor}")
    best = Fraction(1)
    for small in range(1, max_term + 1):
        if factor < 1:
            ratio = Fraction(small, max(1, round(small / factor)))
        else:
            ratio = Fraction(max(1, round(small * factor)), small)
        if abs(float(ratio) / factor - 1) < abs(float(best) / factor - 1) - 1e-12:
            best = ratio
    return best


@lru_cache(maxsize=64)
def _lowpass(max_rate: int) -> np.ndarray:
    """The anti-aliasing filter :func:`scipy.signal.resample_poly` designs for ``max(up, down)`` (its default:
    Kaiser window, beta 5, 20 ``max_rate`` + 1 taps), kept: a stream's bursts repeat a few ratios, and the design
    costs more than the filtering of a short burst."""
    return sps_signal.firwin(20 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


def resample(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """``x`` resampled by ``up / down`` as :func:`scipy.signal.resample_poly` does by default, with the filter
    designed once per ratio."""
    x = np.asarray(x)
    g = math.gcd(up, down)
    up, down = up // g, down // g
    return sps_signal.resample_poly(x, up, down, window=_lowpass(max(up, down)).astype(x.dtype))


def fit_band(x: np.ndarray, bandwidth: float, target_share: float, max_term: int = 16) -> tuple[np.ndarray, float]:
    """Resample centred ``x`` (occupied bandwidth ``bandwidth``, cycles per sample) so that it fills
    ``target_share`` of the output band; returns (resampled, the rate factor applied: output / input samples).

    The factor is a ratio of integers (:func:`rate_ratio`, polyphase resampling); a signal already at the share is
    returned as is.
    """
    if not (0 < target_share <= 1) or not (0 < bandwidth <= 1):
        raise ValueError(f"need bandwidth and target_share in (0, 1], got {bandwidth}, {target_share}")
    ratio = rate_ratio(bandwidth / target_share, max_term)
    if ratio == 1:
        return np.asarray(x, dtype=np.complex64), 1.0
    y = resample(x, ratio.numerator, ratio.denominator)
    return y.astype(np.complex64), float(ratio)


# Powers whose spectral line gives a burst's residual carrier: BPSK shows one at 2, QPSK and QAM at 4, 8PSK at 8.
LINE_POWERS = (2, 4, 8)
LINE_RATIO = 30.0  # a line this far over the power's spectrum around it counts (noise alone: rarely over 10)


def fine_carrier(frames: np.ndarray, powers: tuple[int, ...] = LINE_POWERS, min_ratio: float = LINE_RATIO,
                 pad: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``[k, L]`` with the residual carrier of each removed where its ``m``-th power shows a spectral line
    (the lowest ``m`` of ``powers`` whose line is ``min_ratio`` over the spectrum around it): the power-weighted
    centring leaves
    an offset that, once a narrow burst is decimated to the band share, turns a PSK constellation tens of times
    over a frame. Returns (frames, offsets ``[k]`` in cycles per sample, 0 where no line was found)."""
    frames = np.asarray(frames, dtype=np.complex64)
    if frames.ndim != 2:
        raise ValueError(f"fine_carrier needs frames [k, L], got shape {frames.shape}")
    k, n = frames.shape
    scale = np.sqrt(np.mean(np.abs(frames) ** 2, axis=1, keepdims=True))
    z = frames.astype(np.complex128) / np.where(scale > 0, scale, 1.0)
    offsets, found = np.zeros(k), np.zeros(k, dtype=bool)
    freqs = np.fft.fftfreq(n * pad)
    near = np.r_[-16 * pad:-2 * pad, 2 * pad + 1:16 * pad + 1]  # around a peak, less the peak's own bins
    for m in powers:
        left = np.flatnonzero(~found)  # a frame whose line a lower power showed is done
        if not len(left):
            break
        spec = np.abs(np.fft.fft(z[left] ** m, n * pad, axis=1)) ** 2
        peak = np.argmax(spec, axis=1)
        # A line stands over the spectrum just around it (the powers of a band-limited signal are not white).
        local = np.median(np.take_along_axis(spec, (peak[:, None] + near[None, :]) % (n * pad), axis=1), axis=1)
        ratio = spec[np.arange(len(left)), peak] / np.maximum(local, np.finfo(np.float64).tiny)
        take = ratio > min_ratio
        offsets[left[take]] = freqs[peak[take]] / m
        found[left[take]] = True
    rotation = np.exp(-2j * np.pi * offsets[:, None] * np.arange(n)[None, :])
    return (frames * rotation).astype(np.complex64), offsets


# The share of the band a burst is fitted to before the networks trained on fitted bursts see it.
BAND_SHARE = 0.5
# A burst narrower than this (cycles per sample) is fitted as if it were this wide (a carrier alone has no width).
MIN_BANDWIDTH = 1e-3


# A burst longer than this is measured (carrier, band) on as many samples spread over it, and only the stretches
# its frames come from are resampled: a continuous signal costs the same per frame as a short burst.
SPECTRUM_SAMPLES = 65_536


def _probe(x: np.ndarray, n: int = SPECTRUM_SAMPLES, pieces: int = 8) -> np.ndarray:
    """``x`` itself, or ``pieces`` evenly spread runs of it ``n`` samples in all."""
    if len(x) <= n:
        return x
    run = n // pieces
    return np.concatenate([x[s:s + run] for s in np.linspace(0, len(x) - run, pieces).astype(int)])


def burst_frames(x: np.ndarray, frame_len: int, max_frames: int, share: float = BAND_SHARE,
                 noise_power: float = 0.0) -> np.ndarray:
    """The frames a network sees of one burst ``x``: carrier centred (power-weighted, over the noise), occupied
    band (99% of the power over the noise) fitted to ``share`` of the band, up to ``max_frames`` frames of
    ``frame_len`` samples spread evenly over it (a burst shorter than one frame is padded with zeros), each with
    its residual carrier removed where a power of it shows one (:func:`fine_carrier`). Returns
    ``[k, frame_len]`` complex64, k >= 1.
    """
    if frame_len < 1 or max_frames < 1:
        raise ValueError(f"need frame_len >= 1 and max_frames >= 1, got {frame_len}, {max_frames}")
    x = np.asarray(x, dtype=np.complex64)
    probe = _probe(x)
    offset = carrier_offset(probe, noise_power=noise_power)
    ramp = np.exp(-2j * np.pi * offset * np.arange(len(probe)))
    bandwidth = occupied_bandwidth(probe * ramp, noise_power=noise_power) if len(probe) >= 64 else 0.0
    ratio = rate_ratio(min(1.0, max(bandwidth, MIN_BANDWIDTH)) / share) if bandwidth > 0 else Fraction(1)
    up, down = ratio.numerator, ratio.denominator
    needed = -(-frame_len * down // up)  # input samples per frame
    margin = 10 * max(up, down) // up + 8  # resample_poly's filter reach, in input samples
    if len(x) > 2 * max_frames * (needed + 2 * margin):
        # Long: only the stretches the frames come from, each mixed and resampled with its filter's margin.
        frames = []
        for start in np.linspace(margin, len(x) - needed - margin, max_frames).astype(int):
            piece = x[start - margin:start + needed + margin]
            piece = piece * np.exp(-2j * np.pi * offset * np.arange(start - margin, start + needed + margin))
            y = resample(piece, up, down) if ratio != 1 else piece
            first = int(round(margin * up / down))
            frames.append(y[first:first + frame_len])
        return fine_carrier(np.stack(frames))[0]
    centred = (x * np.exp(-2j * np.pi * offset * np.arange(len(x)))).astype(np.complex64)
    fitted = resample(centred, up, down).astype(np.complex64) if ratio != 1 else centred
    return fine_carrier(spread_frames(fitted, frame_len, max_frames))[0]


def spread_frames(x: np.ndarray, frame_len: int, max_frames: int) -> np.ndarray:
    """Up to ``max_frames`` frames of ``frame_len`` samples spread evenly over ``x`` (one zero-padded frame when
    ``x`` is shorter): ``[k, frame_len]``, k >= 1."""
    x = np.asarray(x, dtype=np.complex64)
    if len(x) < frame_len:
        x = np.concatenate([x, np.zeros(frame_len - len(x), np.complex64)])
    k = min(max_frames, len(x) // frame_len)
    starts = np.linspace(0, len(x) - frame_len, k).astype(int)
    return np.stack([x[s:s + frame_len] for s in starts])


@dataclass
class SegmentFrames:
    """What :class:`StreamFrontEnd` makes of one stretch of a stream: its bursts (samples relative to the
    stretch), their frames ``[k, frame_len]``, the burst each frame belongs to (``owner [k]``) and each burst's
    :func:`cyclic_prefix_contrast` (``cyclic_prefix [len(bursts)]``) and :func:`keyed_share` (``keyed``)."""

    bursts: list[Burst]
    frames: np.ndarray
    owner: np.ndarray
    cyclic_prefix: np.ndarray
    keyed: np.ndarray


class StreamFrontEnd:
    """The front end over a stream taken a stretch at a time (a block's input): bursts gated over a noise floor
    tracked as the lowest of the last ``memory`` stretches' floors (so a stretch that is all signal is not its own
    floor), each burst through :func:`burst_frames` (``max_frames`` frames at most, fitted to ``share``).

    With ``gate`` False each stretch is one burst (for a band that is never quiet, e.g. a broadcast).
    A burst that crosses the end of a stretch is cut there; its parts are decided apart, the later ones with the
    cyclic-prefix contrast measured on the first (one transmission; the test is the front end's costliest step).
    """

    def __init__(self, frame_len: int, share: float = BAND_SHARE, max_frames: int = 4, threshold_db: float = 6.0,
                 hold: int = 1024, memory: int = 32, gate: bool = True) -> None:
        if memory < 1:
            raise ValueError(f"memory must be >= 1 stretch, got {memory}")
        self.frame_len, self.share, self.max_frames = int(frame_len), float(share), int(max_frames)
        self.threshold_db, self.hold, self.gate = float(threshold_db), int(hold), bool(gate)
        self._floors: list[float] = []
        self.memory = int(memory)
        self._cp_fft = 0  # the FFT size of the last burst with a cyclic prefix: tried first on the next
        self._open_contrast: float | None = None  # the contrast of a burst that ran to the end of the last stretch

    def floor(self, power: np.ndarray) -> float:
        """Take the floor of a stretch (its :func:`smoothed_power`) into the memory; returns the tracked floor. A
        stretch shorter than 4 frames (the zero-padded end of a stream) only reads the memory once there is one,
        and exact zeros (padding) never count."""
        live = power[power > 0]
        if len(live) and (len(power) >= 4 * self.frame_len or not self._floors):
            self._floors = (self._floors + [noise_floor(live)])[-self.memory:]
        return min(self._floors) if self._floors else float(np.finfo(np.float64).max)

    def segment(self, x: np.ndarray) -> SegmentFrames:
        x = np.asarray(x, dtype=np.complex64)
        if len(x) == 0:
            return SegmentFrames([], np.zeros((0, self.frame_len), np.complex64), np.zeros(0, np.int64),
                                 np.zeros(0), np.zeros(0))
        power = smoothed_power(x)
        floor = self.floor(power)
        if self.gate:
            bursts = gate_bursts(x, self.threshold_db, hold=self.hold, min_length=self.frame_len // 4, floor=floor,
                                 power=power)
        else:
            snr = float(np.mean(np.abs(x) ** 2)) / floor - 1.0
            bursts = [Burst(0, len(x), 10 * math.log10(max(snr, 1e-12)), floor)]
        parts, owner, contrast, keyed = [], [], [], []
        dc = x.mean()
        for i, b in enumerate(bursts):
            burst = x[b.start:b.end] - dc
            frames = burst_frames(burst, self.frame_len, self.max_frames, self.share, floor)
            parts.append(frames)
            owner += [i] * len(frames)
            if b.start == 0 and self._open_contrast is not None:
                value = self._open_contrast  # the same transmission as the last stretch's last burst: tested there
            else:
                value, n_fft, _ = cyclic_prefix_contrast(burst, CP_CONTRAST, self._cp_fft)
                self._cp_fft = n_fft if value >= CP_CONTRAST else self._cp_fft
            contrast.append(value)
            keyed.append(keyed_share(burst, floor))
        self._open_contrast = contrast[-1] if bursts and bursts[-1].end == len(x) else None
        frames = np.concatenate(parts) if parts else np.zeros((0, self.frame_len), np.complex64)
        return SegmentFrames(bursts, frames, np.asarray(owner, dtype=np.int64), np.asarray(contrast, dtype=float),
                             np.asarray(keyed, dtype=float))


# The on-off keying test: the power is averaged over KEYED_SMOOTH samples; a burst is measured when its carrier
# (the 90th percentile of that power) is KEYED_ON_OVER_NOISE times its noise or more (16 dB: below it the noise hides
# the gaps), over the span from its first to its last sample at a quarter of the carrier or more; the carrier is
# off where the power is under KEYED_OFF_OVER_NOISE times the noise.
KEYED_SMOOTH = 8
KEYED_ON_OVER_NOISE = 40.0
KEYED_OFF_OVER_NOISE = 4.0
KEYED_MIN_GAPS = 3
# A burst whose carrier is off for at least this share of its span is on-off keyed. Measured on synthetic bursts of
# the eleven other classes (30 each, 0-30 dB, through the training channel and front-end model, gated as a capture
# is): at most 0.13; on the recordings of OFDM packets (802.11, LTE), whose gaps between packets fall inside one
# burst, 0.03-0.31; on the keyed 433 MHz sensors and Mode S replies at 16 dB or more, 0.42-0.85.
KEYED_SHARE = 0.4


def keyed_share(x: np.ndarray, noise_power: float) -> float:
    """The share of a burst ``x`` (as recorded, DC removed) over which its carrier is off at the noise floor
    ``noise_power`` (mean power per sample), between its first and last sample with the carrier on; 0 where the
    burst is too weak to tell (its carrier under :data:`KEYED_ON_OVER_NOISE` times the noise) or where it switches
    off fewer than :data:`KEYED_MIN_GAPS` times. On-off keying (OOK/ASK telegrams, Mode S pulses) is the one class
    whose carrier sits at the noise for much of a burst: at :data:`KEYED_SHARE` or more the burst is keyed."""
    x = np.asarray(x)
    if len(x) < 4 * KEYED_SMOOTH or not noise_power > 0:
        return 0.0
    power = smoothed_power(x, KEYED_SMOOTH)
    carrier = float(np.quantile(power, 0.9))
    if carrier < KEYED_ON_OVER_NOISE * noise_power:
        return 0.0
    on = np.flatnonzero(power >= carrier / 4)
    off = power[on[0]:on[-1] + 1] < KEYED_OFF_OVER_NOISE * noise_power
    gaps = int(np.count_nonzero(np.diff(off.astype(np.int8)) == 1))
    return float(np.mean(off)) if gaps >= KEYED_MIN_GAPS else 0.0


# The cyclic-prefix test: FFT sizes (samples, as recorded) and cyclic prefixes (the FFT size over these) it looks
# for, the lags beside each FFT size that it compares with, and how much of a burst it reads.
CP_FFT_SIZES = (64, 128, 256, 512, 1024, 2048)
CP_FRACTIONS = (4, 8, 16, 32)
CP_NEIGHBOUR_LAGS = (-7, -3, 3, 7)
CP_MAX_SAMPLES = 32768
CP_WINDOW_SYMBOLS = 4
# A burst with a contrast at least this is OFDM. Measured on synthetic bursts of the other eleven classes (24 each,
# 0-30 dB, through the training channel and front-end model): at most 0.042; on the 802.11 recordings 0.10-0.16.
CP_CONTRAST = 0.08


def cyclic_prefix_contrast(x: np.ndarray, floor: float = 0.0, first_fft: int = 0) -> tuple[float, int, int]:
    """The strongest OFDM cyclic-prefix signature of a burst ``x`` (as recorded; DC removed):
    ``(contrast, n_fft, cp_len)`` (``(0, 0, 0)`` when the burst is too short for every size).

    An OFDM symbol repeats its last ``cp_len`` samples ``n_fft`` samples earlier, once every ``P = n_fft + cp_len``
    samples: the lag product ``x[k + n_fft] conj(x[k])`` has a mean that switches on for ``cp_len`` samples in every
    ``P``, i.e. a component at the cycle frequency ``1 / P``. Its magnitude, normalised by the lag product's
    magnitude, is taken over windows of :data:`CP_WINDOW_SYMBOLS` symbols (symbols of one packet keep the phase;
    packets need not) and averaged. Symbol-rate cyclostationarity of single-carrier signals (and noise) shows at
    every lag nearly alike, so the contrast is the value at ``n_fft`` less the largest at the lags beside it
    (:data:`CP_NEIGHBOUR_LAGS`); a cyclic prefix shows only at its own lag. Sizes: :data:`CP_FFT_SIZES` x
    :data:`CP_FRACTIONS`, over the first :data:`CP_MAX_SAMPLES` samples.

    ``floor``: a size whose value at its own lag stays under it (so its contrast must) is not compared with its
    neighbours, and the search stops at the first size whose contrast reaches it; pass :data:`CP_CONTRAST` where
    only the decision matters (4-5 times less work on a burst without a prefix; the contrast returned is then that
    of the sizes finished, 0 if none). ``first_fft``: an FFT size of :data:`CP_FFT_SIZES` to try before the others
    (where a stream's earlier bursts showed it): with ``floor`` the decision is the same, found sooner."""
    x = np.asarray(x, dtype=np.complex64)[:CP_MAX_SAMPLES]
    best = (0.0, 0, 0)
    for n_fft in sorted(CP_FFT_SIZES, key=lambda size: size != first_fft):
        if floor > 0 and best[0] >= floor:
            break
        periods = [n_fft + n_fft // g for g in CP_FRACTIONS
                   if len(x) - n_fft - max(CP_NEIGHBOUR_LAGS) >= CP_WINDOW_SYMBOLS * (n_fft + n_fft // g)]
        if not periods:
            continue
        values = _cyclic_values(x, (n_fft,), periods)[0]
        if values.max() < max(floor, best[0]):
            continue  # no contrast of this size can beat what is found or asked for
        beside = _cyclic_values(x, tuple(n_fft + d for d in CP_NEIGHBOUR_LAGS), periods).max(axis=0)
        for period, contrast in zip(periods, values - beside):
            if contrast > best[0]:
                best = (float(contrast), n_fft, period - n_fft)
    return best


@lru_cache(maxsize=64)
def _cycle_phases(period: int) -> np.ndarray:
    """``exp(-2j pi r / period)`` for ``r`` in ``[0, period)``: one DFT bin at the cycle frequency, complex64."""
    return np.exp(-2j * np.pi * np.arange(period) / period).astype(np.complex64)


def _cyclic_values(x: np.ndarray, lags: tuple[int, ...], periods: list[int]) -> np.ndarray:
    """The normalised component at the cycle frequency ``1 / period`` of the lag products ``x[k + lag]
    conj(x[k])``, over windows of :data:`CP_WINDOW_SYMBOLS` periods, averaged: ``[len(lags), len(periods)]``. The
    lags are taken together over the samples all of them reach."""
    n = len(x) - max(lags)
    product = np.stack([x[lag:lag + n] for lag in lags]) * np.conj(x[:n])
    magnitude = np.abs(product)
    out = np.empty((len(lags), len(periods)))
    for j, period in enumerate(periods):
        width = CP_WINDOW_SYMBOLS * period
        m = n // width
        # Window by window: fold each window's symbols onto one period, then one DFT bin over it (the sample
        # index k = i * period + r). A product and a sum, not ``@``: Debian's numpy hands even this small
        # matrix-vector product to OpenBLAS's threads, which wait on each other when the cores are busy (a
        # flowgraph's threads, the engine's): 160 us against 9 us on this 2-core machine under load.
        folded = product[:, :m * width].reshape(len(lags), m, CP_WINDOW_SYMBOLS, period).sum(axis=2)
        component = np.abs((folded * _cycle_phases(period)).sum(axis=2))
        norm = np.maximum(magnitude[:, :m * width].reshape(len(lags), m, width).sum(axis=2), 1e-30)
        out[:, j] = (component / norm).sum(axis=1) / m
    return out
