"""IEEE 802.11a/g (and the legacy part of 802.11n) OFDM frames: channel estimation from the legacy long training
field by LS and by the diffusion prior, equalization of the SIGNAL and data symbols, and their EVM.

The receiver follows the standard's legacy preamble (IEEE Std 802.11, clause 17: 64-point FFT at 20 MHz,
carriers -26..26 without DC, pilots at -21, -7, 7, 21, cyclic prefix 16):

1. detection on the short training field's 16-sample periodicity (normalized autocorrelation plateau) and the
   coarse frequency offset from its phase;
2. timing on the long training field (cross-correlation with its 64-sample symbol, two peaks 64 apart) and the fine
   frequency offset from the phase between its two symbols;
3. the channel on the 52 carriers: LS from the two long-training symbols averaged (the baseline, what gr-ieee802-11
   and GNU Radio's OFDM receiver start from), the robust LMMSE smoother (uniform delay profile over the cyclic
   prefix), and the diffusion estimate (``chanest_tdl_sym``: one DDIM step from the SNR-matched step; the noise
   variance from the difference of the two training symbols);
4. every following symbol equalized with the estimate times a common gain fitted on its four pilots (residual
   frequency offset), as :meth:`diffwireless.ofdm_equalizer.FrameEqualizer.equalize` does;
5. the SIGNAL field decoded (maximum likelihood over every 18-bit content with a zero tail, so its parity bit and
   rate code are real checks), and EVM over the data carriers of SIGNAL (BPSK) and the data symbols (the rate's
   constellation; decisions to the nearest point). In an 802.11n HT-mixed frame the legacy-format symbols are
   L-SIG and the two HT-SIG symbols (BPSK on the quadrature axis); the HT data use 56 carriers and their own
   training field, which the 52-carrier prior does not cover, so they are not evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from diffwireless.constellations import get_constellation
from diffwireless.fading import OFDMGrid
from diffwireless.ofdm_equalizer import OFDMLayout, equalize_frame
from diffwireless.ofdm_equalizer import robust_lmmse_taps as _robust_lmmse_taps

N_FFT = 64
CP_LEN = 16
SAMPLE_RATE_HZ = 20e6
CARRIERS = tuple(k for k in range(-26, 27) if k != 0)
PILOT_CARRIERS = (-21, -7, 7, 21)
PILOT_BASE = np.array([1.0, 1.0, 1.0, -1.0])
DATA_CARRIERS = tuple(k for k in CARRIERS if k not in PILOT_CARRIERS)
GRID = OFDMGrid(n_fft=N_FFT, carriers=CARRIERS, n_symbols=1, cp_len=CP_LEN, sample_rate_hz=SAMPLE_RATE_HZ)

# Long training symbol L_-26..L_26 (DC = 0) of the OFDM PHY (IEEE Std 802.11, clause 17).
LTF = np.array([1, 1, -1, -1, 1, 1, -1, 1, -1, 1, 1, 1, 1, 1, 1, -1, -1, 1, 1, -1, 1, -1, 1, 1, 1, 1, 0,
                1, -1, -1, 1, 1, -1, 1, -1, 1, -1, -1, -1, -1, -1, 1, 1, -1, -1, 1, -1, 1, -1, 1, 1, 1, 1], float)
# Short training symbol: sqrt(13/6) (+-1 +-j) on every 4th carrier (the sign of both parts given here).
_STF_SIGNS = {-24: 1, -20: -1, -16: 1, -12: -1, -8: -1, -4: 1, 4: -1, 8: -1, 12: 1, 16: 1, 20: 1, 24: 1}

# RATE bits R1..R4 -> (Mb/s, constellation, data bits per OFDM symbol), from clause 17's rate table.
RATES = {(1, 1, 0, 1): (6, "bpsk", 24), (1, 1, 1, 1): (9, "bpsk", 36), (0, 1, 0, 1): (12, "qpsk", 48),
         (0, 1, 1, 1): (18, "qpsk", 72), (1, 0, 0, 1): (24, "16qam", 96), (1, 0, 1, 1): (36, "16qam", 144),
         (0, 0, 0, 1): (48, "64qam", 192), (0, 0, 1, 1): (54, "64qam", 216)}
RATE_BITS = {v[0]: k for k, v in RATES.items()}
_CODE_TAPS = ((0, 2, 3, 5, 6), (0, 1, 2, 3, 6))  # generators 133 and 171 (octal) as delays
BACKOFF = 3  # samples the FFT windows open into the cyclic prefix
DETECT_THRESHOLD = 0.7  # noise alone gives about 1/sqrt(48) = 0.14; a frame at 10 dB SNR 0.91, at 5 dB 0.76


def _bins(carriers) -> np.ndarray:
    return np.asarray(carriers, dtype=np.int64) + N_FFT // 2


@lru_cache(maxsize=1)
def pilot_polarity() -> np.ndarray:
    """The 127 pilot polarities p_0..p_126: the data scrambler (x^7 + x^4 + 1) from the all-ones state, 0 -> +1."""
    state = [1] * 7
    out = []
    for _ in range(127):
        bit = state[3] ^ state[6]  # x^4 and x^7 taps
        out.append(1.0 - 2.0 * bit)
        state = [bit] + state[:6]
    return np.array(out)


def layout() -> OFDMLayout:
    """SIGNAL and the data symbols as an :class:`OFDMLayout`: symbol ``i`` has pilots ``p_i * (1, 1, 1, -1)``."""
    return OFDMLayout.make(N_FFT, [DATA_CARRIERS], [PILOT_CARRIERS], [p * PILOT_BASE for p in pilot_polarity()])


def ltf_symbol() -> np.ndarray:
    """One 64-sample long training symbol (time domain, unit mean power over the active carriers)."""
    spec = np.zeros(N_FFT, dtype=np.complex128)
    spec[_bins(range(-26, 27))] = LTF
    return np.fft.ifft(np.fft.ifftshift(spec)) * np.sqrt(N_FFT)


def _stf_period() -> np.ndarray:
    spec = np.zeros(N_FFT, dtype=np.complex128)
    for k, s in _STF_SIGNS.items():
        spec[k + N_FFT // 2] = np.sqrt(13 / 6) * s * (1 + 1j)
    return np.fft.ifft(np.fft.ifftshift(spec)) * np.sqrt(N_FFT)


def conv_encode(bits: np.ndarray) -> np.ndarray:
    """Rate-1/2 K=7 convolutional code of ``bits [..., n]`` from the zero state -> ``[..., 2n]`` (A, B, A, B...)."""
    bits = np.asarray(bits, dtype=np.uint8)
    n = bits.shape[-1]
    out = np.zeros(bits.shape[:-1] + (2 * n,), dtype=np.uint8)
    for j, taps in enumerate(_CODE_TAPS):
        acc = np.zeros(bits.shape, dtype=np.uint8)
        for d in taps:
            acc[..., d:] ^= bits[..., : n - d]
        out[..., j::2] = acc
    return out


def signal_interleave_index() -> np.ndarray:
    """Where coded bit ``k`` of SIGNAL (48 bits, BPSK) sits among the 48 data carriers: ``3 (k mod 16) + k // 16``."""
    k = np.arange(48)
    return 3 * (k % 16) + k // 16


def signal_bits(rate_mbps: int, length: int) -> np.ndarray:
    """The 24 SIGNAL bits: RATE, reserved 0, LENGTH (LSB first), even parity, six zero tail bits."""
    head = list(RATE_BITS[rate_mbps]) + [0] + [(length >> i) & 1 for i in range(12)]
    return np.array(head + [sum(head) % 2] + [0] * 6, dtype=np.uint8)


@lru_cache(maxsize=1)
def _signal_codebook() -> tuple[np.ndarray, np.ndarray]:
    """Every 18-bit SIGNAL content (zero tail) and its BPSK codeword on the data carriers, +-1."""
    contents = ((np.arange(2 ** 18)[:, None] >> np.arange(18)[None, :]) & 1).astype(np.uint8)
    bits = np.concatenate([contents, np.zeros((len(contents), 6), np.uint8)], axis=1)
    coded = conv_encode(bits)
    on_carriers = np.empty_like(coded)
    on_carriers[:, signal_interleave_index()] = coded
    return bits, 2.0 * on_carriers.astype(np.float32) - 1.0


@dataclass
class SignalField:
    """A decoded SIGNAL field."""

    bits: np.ndarray
    rate_mbps: int | None  # None: not a valid rate code
    constellation: str | None
    data_bits_per_symbol: int | None
    length_bytes: int
    parity_ok: bool
    reserved_ok: bool

    @property
    def valid(self) -> bool:
        return self.parity_ok and self.reserved_ok and self.rate_mbps is not None

    def n_data_symbols(self) -> int:
        """OFDM data symbols of the PSDU: ceil((16 + 8 LENGTH + 6) / N_DBPS); 0 when the field is invalid."""
        if not self.valid:
            return 0
        return -(-(16 + 8 * self.length_bytes + 6) // self.data_bits_per_symbol)


def decode_signal(soft: np.ndarray) -> SignalField:
    """Maximum-likelihood SIGNAL decoding from the equalized data carriers ``soft [48]`` (BPSK, real part)."""
    bits, codewords = _signal_codebook()
    best = int(np.argmax(codewords @ np.asarray(soft, dtype=np.float32).real))
    b = bits[best]
    rate = RATES.get(tuple(int(x) for x in b[:4]))
    return SignalField(b, rate[0] if rate else None, rate[1] if rate else None, rate[2] if rate else None,
                       int(sum(int(x) << i for i, x in enumerate(b[5:17]))), int(b[:18].sum()) % 2 == 0,
                       int(b[4]) == 0)


def synthesize_frame(rate_mbps: int, n_data_symbols: int, channel: np.ndarray, snr_db: float, cfo_hz: float,
                     rng: np.random.Generator, lead: int = 400) -> tuple[np.ndarray, SignalField]:
    """A legacy 802.11a frame (preamble, SIGNAL, random data symbols of the rate's constellation) through a
    block-fading channel ``channel [64]`` (frequency response on the shifted FFT bins), a frequency offset and AWGN
    at ``snr_db`` per active carrier; ``lead`` noise samples before and after. Returns ``(iq complex64, SIGNAL)``.
    """
    def through(spec: np.ndarray) -> np.ndarray:
        return np.fft.ifft(np.fft.ifftshift(spec * channel)) * np.sqrt(N_FFT)

    stf = np.tile(through(np.fft.fftshift(np.fft.fft(_stf_period())) / np.sqrt(N_FFT)), 3)[:160]
    ltf = through(np.fft.fftshift(np.fft.fft(ltf_symbol())) / np.sqrt(N_FFT))
    parts = [stf, ltf[-32:], ltf, ltf]
    _, name, n_dbps = RATES[RATE_BITS[rate_mbps]]
    length = max(0, (n_data_symbols * n_dbps - 22) // 8)  # the longest PSDU that fills n_data_symbols
    sig = SignalField(signal_bits(rate_mbps, length), rate_mbps, None, None, length, True, True)
    points = get_constellation(name).points
    coded = conv_encode(sig.bits)
    symbols = [np.empty(48)]
    symbols[0][signal_interleave_index()] = 2.0 * coded - 1.0
    symbols += [points[rng.integers(len(points), size=48)] for _ in range(n_data_symbols)]
    pol = pilot_polarity()
    for i, data in enumerate(symbols):
        spec = np.zeros(N_FFT, dtype=np.complex128)
        spec[_bins(DATA_CARRIERS)] = data
        spec[_bins(PILOT_CARRIERS)] = pol[i % 127] * PILOT_BASE
        x = through(spec)
        parts.append(np.concatenate([x[-CP_LEN:], x]))
    frame = np.concatenate([np.zeros(lead), *parts, np.zeros(lead)])
    frame = frame * np.exp(2j * np.pi * cfo_hz / SAMPLE_RATE_HZ * np.arange(len(frame)))
    # Active carriers carry unit power: the time-domain signal has 52/64 of it.
    noise_var = len(CARRIERS) / N_FFT * 10.0 ** (-snr_db / 10.0)
    noise = np.sqrt(noise_var / 2) * (rng.standard_normal(len(frame)) + 1j * rng.standard_normal(len(frame)))
    return (frame + noise).astype(np.complex64), decode_signal(symbols[0])


def _moving_sum(x: np.ndarray, n: int) -> np.ndarray:
    c = np.concatenate([[0], np.cumsum(x)])
    return c[n:] - c[:-n]


def detect(iq: np.ndarray, threshold: float = DETECT_THRESHOLD) -> list[tuple[int, float]]:
    """Starts of the short training fields in ``iq`` and their coarse frequency offsets (cycles per sample): runs
    of at least 64 samples where the 16-lag autocorrelation over 48 samples, normalized, exceeds ``threshold`` and
    the power is 6 dB over the quietest 48 samples of the recording."""
    x = np.asarray(iq, dtype=np.complex128)
    if len(x) < 400:
        return []
    corr = _moving_sum(np.conj(x[:-16]) * x[16:], 48)
    power = _moving_sum(np.abs(x[16:]) ** 2, 48)
    floor = float(np.min(power))  # the quietest 48 samples: the noise floor, even when frames fill most of it
    metric = np.abs(corr) / np.maximum(power, 1e-30)
    on = (metric > threshold) & (power > 4.0 * floor)
    found, i = [], 0
    while i < len(on):
        if on[i]:
            j = i
            while j < len(on) and on[j]:
                j += 1
            if j - i >= 64:  # the plateau is 160 - 16 - 48 = 96 samples long in the clear
                cfo = float(np.angle(np.sum(corr[i + 8: j - 8]))) / (2 * np.pi * 16)
                found.append((i, cfo))
                i = j + 320  # past this frame's long training field
                continue
            i = j
        i += 1
    return found


@dataclass
class FrameSamples:
    """A detected frame, frequency corrected, cut into FFT outputs (shifted bins)."""

    start: int  # sample index of the long training field's first symbol in the recording
    cfo_hz: float
    ltf: np.ndarray  # [2, 64]
    symbols: np.ndarray  # [n, 64]: SIGNAL, then every following 80-sample symbol in the recording


def cut_frame(iq: np.ndarray, stf_start: int, coarse_cfo: float, backoff: int = BACKOFF) -> FrameSamples | None:
    """Timing and fine frequency offset on the long training field; FFT windows ``backoff`` samples into the
    cyclic prefix (timing error then stays inside it). None when the long training field does not fit."""
    x = np.asarray(iq, dtype=np.complex128)
    seg_lo, seg_hi = stf_start + 100, stf_start + 360
    if seg_hi + 64 > len(x):
        return None
    n = np.arange(len(x))
    x = x * np.exp(-2j * np.pi * coarse_cfo * n)
    ref = ltf_symbol()
    seg = x[seg_lo: seg_hi + 128]
    xc = np.abs(np.correlate(seg, ref, mode="valid"))
    score = xc[:-64] + xc[64:]
    t1 = seg_lo + int(np.argmax(score))
    # GI2 (the last 32 samples of the symbol) and the first symbol repeat 64 samples later: 96 pairs.
    fine = float(np.angle(np.vdot(x[t1 - 32: t1 + 64], x[t1 + 32: t1 + 128]))) / (2 * np.pi * 64)
    x = x * np.exp(-2j * np.pi * fine * n)
    w = t1 - backoff
    ltf = np.stack([x[w: w + 64], x[w + 64: w + 128]])
    starts = np.arange(w + 128 + CP_LEN, len(x) - 63, 80)
    syms = np.stack([x[s: s + 64] for s in starts]) if len(starts) else np.zeros((0, 64), complex)
    spec = lambda a: np.fft.fftshift(np.fft.fft(a, axis=-1), axes=-1) / np.sqrt(N_FFT)  # noqa: E731
    return FrameSamples(t1, (coarse_cfo + fine) * SAMPLE_RATE_HZ, spec(ltf), spec(syms))


def ls_estimate(ltf: np.ndarray) -> tuple[np.ndarray, float]:
    """LS taps ``[64]`` (0 off the active carriers) from the two long training symbols averaged, and their noise
    variance per carrier (half that of one symbol, measured on their difference)."""
    b = _bins(CARRIERS)
    ref = LTF[np.asarray(CARRIERS) + 26]
    taps = np.zeros(N_FFT, dtype=np.complex128)
    taps[b] = (ltf[0, b] + ltf[1, b]) / 2 / ref
    symbol_var = float(np.mean(np.abs(ltf[0, b] - ltf[1, b]) ** 2) / 2)
    return taps, symbol_var / 2


def evm_db(equalized: np.ndarray, points: np.ndarray) -> tuple[float, np.ndarray]:
    """RMS EVM (dB, relative to the constellation's mean power) of ``equalized [n]`` against the nearest points;
    also the per-carrier squared errors."""
    points = np.asarray(points)
    nearest = points[np.argmin(np.abs(equalized[:, None] - points[None, :]), axis=1)]
    err = np.abs(equalized - nearest) ** 2
    return float(10 * np.log10(np.mean(err) / np.mean(np.abs(points) ** 2))), err


QBPSK = np.array([1j, -1j])


@dataclass
class FrameReport:
    """What one estimator made of one frame."""

    signal: SignalField
    ht: bool  # the symbol after SIGNAL is BPSK on the quadrature axis (HT-SIG of an 802.11n HT-mixed frame)
    n_symbols: int  # symbols evaluated (SIGNAL included)
    evm_db: float
    symbol_errors: np.ndarray = field(repr=False)  # [n_symbols] mean squared error per symbol
    symbol_power: np.ndarray = field(repr=False)  # [n_symbols] mean power of its constellation


def evaluate_frame(frame: FrameSamples, taps: np.ndarray) -> FrameReport:
    """Equalize SIGNAL and what follows with ``taps`` (common gain tracked on the pilots), decode SIGNAL, and
    measure EVM over SIGNAL and the data symbols (or L-SIG and HT-SIG in an HT-mixed frame)."""
    lay = layout()
    d = _bins(DATA_CARRIERS)
    first, _ = equalize_frame(frame.symbols[:3], taps, lay)
    sig = decode_signal(first[0, d].real)
    ht = len(first) > 1 and float(np.mean(np.abs(first[1, d].imag))) > 2.0 * float(np.mean(np.abs(first[1, d].real)))
    if ht:
        plan = [np.array([-1.0, 1.0]), QBPSK, QBPSK][: len(first)]
    else:
        n_data = min(sig.n_data_symbols(), len(frame.symbols) - 1)
        data_points = get_constellation(sig.constellation).points if n_data else None
        plan = [np.array([-1.0, 1.0])] + [data_points] * n_data
    out, _ = equalize_frame(frame.symbols[: len(plan)], taps, lay)
    errs, pw = [], []
    for i, pts in enumerate(plan):
        _, e = evm_db(out[i, d].astype(np.complex128), pts)
        errs.append(float(np.mean(e)))
        pw.append(float(np.mean(np.abs(pts) ** 2)))
    errs_a, pw_a = np.array(errs), np.array(pw)
    return FrameReport(sig, bool(ht), len(plan), float(10 * np.log10(np.sum(errs_a) / np.sum(pw_a))), errs_a, pw_a)


def robust_lmmse_taps(ls_taps: np.ndarray, noise_var: float) -> np.ndarray:
    """The classical smoother: LMMSE of the LS taps with the robust covariance (uniform delay profile over the
    cyclic prefix), at the measured noise level. The FFT window opens ``BACKOFF`` samples early, which delays every
    path by as much; the design spans ``[-BACKOFF, CP]`` samples, since a path between samples leaks (sinc tails)
    to both sides of its delay, and cutting that leakage off costs more than it smooths at high SNR."""
    return _robust_lmmse_taps(ls_taps, noise_var, layout(), CP_LEN, BACKOFF)


class DiffusionTaps:
    """The diffusion estimate of the 52 carriers from the LS taps through the engine (``chanest_tdl_sym``: its
    grid is the legacy 802.11 carriers; one DDIM step from the SNR-matched step), checked against the LS taps as
    :meth:`~diffwireless.ofdm_equalizer.FrameEqualizer.checked` does (``fallback``): a frame the prior does not
    explain gets the robust LMMSE (or its LS taps), counted in ``fallbacks`` of ``frames``."""

    def __init__(self, model="chanest_tdl_sym", num_steps: int = 1, fallback: bool = True) -> None:
        from diffwireless.ofdm_equalizer import FrameEqualizer

        self.equalizer = FrameEqualizer(model, layout(), num_steps=num_steps, fallback=fallback, backoff=BACKOFF)
        self.frames = self.fallbacks = 0

    def __call__(self, ls_taps: np.ndarray, noise_var: float, engine) -> np.ndarray:
        items, scale, snr_db = self.equalizer.prepare(ls_taps, noise_var)
        out = engine.submit(self.equalizer.job(items, snr_db)).result()
        taps, used = self.equalizer.checked(self.equalizer.taps_from_result(out, scale), ls_taps, noise_var)
        self.frames += 1
        self.fallbacks += used != "diffusion"
        return taps
