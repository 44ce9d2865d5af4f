"""Spectrum scenes for anomaly detection: a band of normal traffic, and anomalies added at a chosen JNR.

All signals are complex baseband at a normalised sample rate (frequencies in cycles/sample, the band is
[-0.5, 0.5)), cut into windows of ``window`` samples; every window draws its own parameters from a seeded
``numpy.random.Generator``, so a scene is reproducible from its seed.

Power convention: the receiver noise is complex white Gaussian of unit power over the whole band. A normal
signal's SNR and an anomaly's JNR are its mean power (while it is on) over that noise power, in dB, so an
``snr_db`` of 0 on a signal that fills 1/8 of the band is 9 dB in its own bandwidth.

The normal band (:class:`BandPlan`) has four channels, each on with probability ``p_active`` in a window, at an
SNR uniform in ``snr_range_db``, with a carrier offset of up to ``max_cfo`` and flat Rician fading (K uniform in
``rician_k``): QPSK and 16QAM single carriers (RRC, 8 samples/symbol), an OFDM signal (128-point FFT, 28 used
carriers, 1/4 cyclic prefix) and GFSK bursts (h = 0.5, BT = 0.5) that cover part of the window.

Anomalies (:data:`ANOMALIES`): ``tone`` (CW at a random frequency), ``chirp`` (a sawtooth linear sweep jammer over
90% of the band, 256-1024 samples per sweep), ``noise`` (a wideband noise jammer, 30-90% of the band), ``pulsed``
(full-band noise pulses, 16-64 samples every 128-512), ``burst`` (an 8PSK burst at 4 samples/symbol, a modulation
and bandwidth the band never carries, at a random frequency, 256 samples to the whole window) and ``spoof`` (the
QPSK channel's signal replaced by QPSK at the wrong symbol rate, 6 or 11 samples/symbol instead of 8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal as sps_signal

from diffwireless.constellations import get_constellation
from diffwireless.signals import rrc_taps

ANOMALIES = ("tone", "chirp", "noise", "pulsed", "burst", "spoof")
DEFAULT_WINDOW = 1024


@dataclass(frozen=True)
class BandPlan:
    """The normal traffic of the band: four channels at fixed centre frequencies (cycles/sample)."""

    qpsk_freq: float = -0.34
    qam16_freq: float = -0.14
    ofdm_freq: float = 0.12
    gfsk_freq: float = 0.36
    sps: int = 8
    rolloff: float = 0.35
    p_active: float = 0.8
    snr_range_db: tuple[float, float] = (0.0, 20.0)
    max_cfo: float = 0.004
    rician_k: tuple[float, float] = (0.0, 10.0)


def _shift(x: np.ndarray, freq: np.ndarray) -> np.ndarray:
    """Each row of ``x [n, L]`` moved by its own frequency ``freq [n]`` (cycles/sample), random start phase."""
    n, length = x.shape
    return x * np.exp(2j * np.pi * freq[:, None] * np.arange(length)[None, :])


def _unit_power(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.mean(np.abs(x) ** 2, axis=1, keepdims=True) + 1e-30)


def linear_modulation(n: int, length: int, points: np.ndarray, sps: int, rolloff: float,
                      rng: np.random.Generator) -> np.ndarray:
    """``[n, length]`` RRC-shaped random symbols of ``points`` at ``sps`` samples/symbol, unit power per row."""
    taps = rrc_taps(sps, rolloff)
    n_sym = length // sps + len(taps) // sps + 2
    up = np.zeros((n, n_sym * sps), dtype=np.complex128)
    up[:, ::sps] = points[rng.integers(0, len(points), (n, n_sym))]
    shaped = sps_signal.lfilter(taps, 1.0, up, axis=1)
    # Each row starts at its own symbol phase (past the filter's transient).
    start = len(taps) // 2 + sps + rng.integers(0, sps, n)
    return _unit_power(_rows_from(shaped, start, length))


def _rows_from(x: np.ndarray, start: np.ndarray, length: int) -> np.ndarray:
    """``x[i, start[i]:start[i] + length]`` for every row."""
    return np.take_along_axis(x, start[:, None] + np.arange(length)[None, :], axis=1)


def ofdm(n: int, length: int, rng: np.random.Generator, n_fft: int = 128, used: int = 28,
         cp: int = 32) -> np.ndarray:
    """``[n, length]`` CP-OFDM with QPSK on ``used`` carriers around DC (DC empty), unit power per row."""
    half = used // 2
    carriers = np.r_[np.arange(-half, 0), np.arange(1, half + 1)] % n_fft
    n_sym = length // (n_fft + cp) + 2
    grid = np.zeros((n, n_sym, n_fft), dtype=np.complex128)
    grid[:, :, carriers] = np.exp(1j * (np.pi / 2 * rng.integers(0, 4, (n, n_sym, used)) + np.pi / 4))
    body = np.fft.ifft(grid, axis=2)
    symbols = np.concatenate([body[:, :, -cp:], body], axis=2).reshape(n, -1)
    return _unit_power(_rows_from(symbols, rng.integers(0, n_fft + cp, n), length))


def gfsk(n: int, length: int, sps: int, rng: np.random.Generator, h: float = 0.5, bt: float = 0.5) -> np.ndarray:
    """``[n, length]`` GFSK (modulation index ``h``, Gaussian filter ``bt``), constant envelope 1."""
    n_sym = length // sps + 8
    nrz = np.repeat(2.0 * rng.integers(0, 2, (n, n_sym)) - 1.0, sps, axis=1)
    t = np.arange(-2 * sps, 2 * sps + 1) / sps
    sigma = np.sqrt(np.log(2)) / (2 * np.pi * bt)
    g = np.exp(-t ** 2 / (2 * sigma ** 2))
    freq = sps_signal.lfilter(g / g.sum(), 1.0, nrz, axis=1)[:, 4 * sps:4 * sps + length]
    phase = np.cumsum(np.pi * h / sps * freq, axis=1) + rng.uniform(0, 2 * np.pi, (n, 1))
    return np.exp(1j * phase)


def _bursts(n: int, length: int, min_len: int, rng: np.random.Generator) -> np.ndarray:
    """``[n, length]`` 0/1 masks of one contiguous burst per row, ``min_len`` samples to the whole window."""
    lengths = rng.integers(min_len, length + 1, n)
    starts = (rng.uniform(0, 1, n) * (length - lengths + 1)).astype(np.int64)
    idx = np.arange(length)[None, :]
    return ((idx >= starts[:, None]) & (idx < (starts + lengths)[:, None])).astype(np.float64)


def _fade(n: int, k_range: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """Flat Rician gains ``[n, 1]`` of unit mean power, K uniform in ``k_range`` (linear)."""
    k = rng.uniform(*k_range, (n, 1))
    los = np.sqrt(k / (k + 1)) * np.exp(2j * np.pi * rng.uniform(0, 1, (n, 1)))
    diffuse = np.sqrt(1 / (2 * (k + 1))) * (rng.standard_normal((n, 1)) + 1j * rng.standard_normal((n, 1)))
    return los + diffuse


def awgn(n: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power complex white Gaussian noise ``[n, length]``."""
    return (rng.standard_normal((n, length)) + 1j * rng.standard_normal((n, length))) / np.sqrt(2)


def normal_windows(n: int, rng: np.random.Generator, window: int = DEFAULT_WINDOW, plan: BandPlan = BandPlan(),
                   drop_qpsk: np.ndarray | None = None) -> np.ndarray:
    """``[n, window]`` complex64 windows of the normal band: noise plus the plan's channels.

    ``drop_qpsk`` (bool ``[n]``) turns the QPSK channel off in those windows (a spoof replaces it).
    """
    x = awgn(n, window, rng)
    qam16 = get_constellation("16qam").points
    qpsk = get_constellation("qpsk").points
    channels = (
        (plan.qpsk_freq, lambda: linear_modulation(n, window, qpsk, plan.sps, plan.rolloff, rng)),
        (plan.qam16_freq, lambda: linear_modulation(n, window, qam16, plan.sps, plan.rolloff, rng)),
        (plan.ofdm_freq, lambda: ofdm(n, window, rng)),
        (plan.gfsk_freq, lambda: gfsk(n, window, plan.sps, rng) * _bursts(n, window, window // 4, rng)),
    )
    for i, (freq, make) in enumerate(channels):
        on = rng.uniform(0, 1, n) < plan.p_active
        if i == 0 and drop_qpsk is not None:
            on &= ~np.asarray(drop_qpsk, dtype=bool)
        amp = np.sqrt(10 ** (rng.uniform(*plan.snr_range_db, n) / 10)) * on
        cfo = rng.uniform(-plan.max_cfo, plan.max_cfo, n)
        x = x + _shift(make(), freq + cfo) * (amp[:, None] * _fade(n, plan.rician_k, rng))
    return x.astype(np.complex64)


def anomaly_signal(kind: str, n: int, rng: np.random.Generator, window: int = DEFAULT_WINDOW,
                   plan: BandPlan = BandPlan()) -> np.ndarray:
    """``[n, window]`` complex128 anomaly of unit power while on (multiply by ``sqrt(10**(jnr_db/10))``)."""
    idx = np.arange(window)[None, :]
    if kind == "tone":
        return np.exp(2j * np.pi * (rng.uniform(-0.45, 0.45, (n, 1)) * idx + rng.uniform(0, 1, (n, 1))))
    if kind == "chirp":
        period = rng.integers(256, 1025, (n, 1))
        frac = ((idx + rng.integers(0, 1024, (n, 1))) % period) / period
        sign = rng.choice([-1.0, 1.0], (n, 1))
        # Instantaneous frequency sweeps -0.45 -> 0.45 (or back) once per period; phase is its running sum.
        inst = sign * 0.9 * (frac - 0.5)
        return np.exp(2j * np.pi * (np.cumsum(inst, axis=1) + rng.uniform(0, 1, (n, 1))))
    if kind == "noise":
        bw = rng.uniform(0.3, 0.9, n)
        centre = rng.uniform(-0.5 + bw / 2, 0.5 - bw / 2)
        spec = np.fft.fft(awgn(n, window, rng), axis=1)
        f = np.fft.fftfreq(window)[None, :]
        spec *= np.abs(f - centre[:, None]) <= bw[:, None] / 2
        return _unit_power(np.fft.ifft(spec, axis=1))
    if kind == "pulsed":
        period = rng.integers(128, 513, (n, 1))
        width = rng.integers(16, 65, (n, 1))
        on = ((idx + rng.integers(0, 512, (n, 1))) % period) < width
        return awgn(n, window, rng) * on
    if kind == "burst":
        sig = linear_modulation(n, window, get_constellation("8psk").points, 4, plan.rolloff, rng)
        return _shift(sig, rng.uniform(-0.35, 0.35, n)) * _bursts(n, window, window // 4, rng)
    if kind == "spoof":
        sps = rng.choice([6, 11], n)
        out = np.empty((n, window), dtype=np.complex128)
        for s in (6, 11):
            rows = sps == s
            if not rows.any():  # all n windows drew the other rate (n small): nothing to make at this one
                continue
            out[rows] = linear_modulation(int(rows.sum()), window, get_constellation("qpsk").points, s,
                                          plan.rolloff, rng)
        return _shift(out, plan.qpsk_freq + rng.uniform(-plan.max_cfo, plan.max_cfo, n))
    raise ValueError(f"unknown anomaly {kind!r}; known: {', '.join(ANOMALIES)}")


def anomalous_windows(kind: str, n: int, jnr_db: float, rng: np.random.Generator, window: int = DEFAULT_WINDOW,
                      plan: BandPlan = BandPlan()) -> np.ndarray:
    """``[n, window]`` complex64 normal windows with the anomaly ``kind`` at ``jnr_db`` added (a spoof replaces
    the QPSK channel)."""
    base = normal_windows(n, rng, window, plan, drop_qpsk=np.ones(n, bool) if kind == "spoof" else None)
    return (base + np.sqrt(10 ** (jnr_db / 10)) * anomaly_signal(kind, n, rng, window, plan)).astype(np.complex64)


def demo_stream(n_windows: int, seed: int = 0, jnr_db: float = 10.0, every: int = 40, length: int = 5,
                window: int = DEFAULT_WINDOW) -> tuple[np.ndarray, list[str]]:
    """A stream for examples: normal windows with a run of ``length`` anomalous windows every ``every`` windows,
    cycling through :data:`ANOMALIES` at ``jnr_db``. Returns the samples ``[n_windows * window]`` complex64 and
    each window's label (``normal`` or the anomaly)."""
    rng = np.random.default_rng(seed)
    x = normal_windows(n_windows, rng, window)
    labels = ["normal"] * n_windows
    for i, start in enumerate(range(every // 2, n_windows - length + 1, every)):
        kind = ANOMALIES[i % len(ANOMALIES)]
        x[start:start + length] = anomalous_windows(kind, length, jnr_db, rng, window)
        labels[start:start + length] = [kind] * length
    return x.ravel(), labels
