"""Labelled bursts that look like what real bands carry, made by GNU Radio's blocks (``dw-dataset --radio``).

Where :mod:`gnuradio.diffwireless.recipes.modulation_sources` makes frames of GNU Radio's modulators at one rate,
this makes *bursts* as a receiver records them, each class drawn over the span real transmitters use:

- linear (BPSK, QPSK, 8PSK, 16QAM, 64QAM): ``digital.generic_mod``, 2-24 samples per symbol, RRC roll-off 0.2-0.5;
- ``2fsk``: NRZ bits (``blocks.repeat``), rectangular or Gaussian-shaped (``filter.fir_filter_fff``, BT 0.5-1.5),
  into ``analog.frequency_modulator_fc``, modulation index 0.8-5 (log-uniform), 4-40 samples per symbol;
- ``gfsk``: ``digital.gfsk_mod``, index 0.3-0.8, BT 0.3-1.0; ``gmsk``: ``digital.gmsk_mod``, BT 0.25-0.5;
- ``ook``: on-off or two-level ASK telegrams (preamble, then data) in a pulse code: NRZ, Manchester, PWM (a short or
  long pulse per bit) or PPM (a pulse, then a short or long gap), 4-60 samples per chip, edges softened by a low-pass
  (``filter.fir_filter_fff``), as 433 MHz sensors, remotes and Mode S send;
- ``ofdm``: FFT sizes 64-2048 (``fft.fft_vcc``), cyclic prefixes of 1/4, 1/8 or 1/16
  (``digital.ofdm_cyclic_prefixer``), 50-92% of the carriers used (DC empty), QPSK/16QAM/64QAM on them
  (802.11-like to LTE-like);
- ``am-dsb`` (carrier, index 0.3-0.9) and ``wbfm`` (``analog.wfm_tx``, deviation 15-75 kHz) of band-limited noise.

Every burst gets raised-cosine on/off edges and lies in noise; then the channel and a receiver's front end:
``channels.fading_model`` (flat, Rayleigh or Rician), a carrier offset anywhere within +-0.3 of the band,
``channels.iqbal_gen`` (IQ imbalance up to 1.5 dB and 6 degrees), a DC offset, AWGN (``analog.noise_source_c``) at the
burst's SNR (mean power per sample over the whole band), and for half of the bursts an 8-bit converter
(``channels.quantizer``; full scale 1-4x the peak) as an RTL-SDR's. The frames kept are what
:func:`diffwireless.frontend.burst_frames` makes of each burst (carrier centred, band fitted to
:data:`~diffwireless.frontend.BAND_SHARE`): the same path a recording takes through ``dw-classify`` and the Modulation
Classifier block. Everything is seeded.
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
from gnuradio import analog, blocks, channels, digital, fft, filter as gr_filter, gr

from diffwireless.frontend import BAND_SHARE, CP_CONTRAST, burst_frames, cyclic_prefix_contrast, keyed_share
from diffwireless.modulation_data import FRAME_LEN, ModulationDataset
from diffwireless.progress import track

from gnuradio.diffwireless.constellations import gr_constellation
from gnuradio.diffwireless.recipes.modulation_sources import band_limited_audio

RADIO_CLASSES = ("bpsk", "qpsk", "8psk", "16qam", "64qam", "2fsk", "gfsk", "gmsk", "ook", "am-dsb", "wbfm", "ofdm")
LINEAR = ("bpsk", "qpsk", "8psk", "16qam", "64qam")
OFDM_SIZES = (64, 128, 256, 512, 1024, 2048)
MAX_CFO = 0.3  # cycles/sample: a burst anywhere in the captured band
FRAMES_PER_BURST = 4
PULSE_CODES = ("nrz", "manchester", "pwm", "ppm")


def _run(blocks_chain: list, out: str = "c") -> np.ndarray:
    tb = gr.top_block("dw_radio_sources")
    sink = blocks.vector_sink_c() if out == "c" else blocks.vector_sink_f()
    tb.connect(*blocks_chain, sink)
    tb.run()
    return np.asarray(sink.data())


def _loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _linear(label: str, n_symbols: int, rng: np.random.Generator) -> np.ndarray:
    sps = int(rng.integers(2, 25))
    bits = int(round(math.log2(len(gr_constellation(label).points()))))
    data = rng.integers(0, 256, n_symbols * bits // 8 + 64).astype(np.uint8).tolist()
    mod = digital.generic_mod(gr_constellation(label), differential=False, samples_per_symbol=sps,
                              pre_diff_code=False, excess_bw=float(rng.uniform(0.2, 0.5)))
    return _run([blocks.vector_source_b(data), mod])[:n_symbols * sps]


def _shaped_nrz(bits: np.ndarray, sps: int, bt: float | None) -> list:
    """Blocks from bits to an NRZ (+-1) stream at ``sps`` samples per bit, Gaussian-shaped when ``bt`` is given."""
    chain = [blocks.vector_source_f((2.0 * bits - 1.0).astype(np.float32).tolist()), blocks.repeat(4, sps)]
    if bt is not None:
        taps = gr_filter.firdes.gaussian(1.0, sps, bt, 4)
        chain.append(gr_filter.fir_filter_fff(1, [t / sum(taps) for t in taps]))
    return chain


def _fsk(label: str, n_symbols: int, rng: np.random.Generator) -> np.ndarray:
    sps = int(rng.integers(4, 41))
    if label == "2fsk":
        h = _loguniform(rng, 0.8, 5.0)
        bt = None if rng.uniform() < 0.5 else float(rng.uniform(0.5, 1.5))
        bits = rng.integers(0, 2, n_symbols).astype(np.float32)
        return _run([*_shaped_nrz(bits, sps, bt), analog.frequency_modulator_fc(math.pi * h / sps)])
    data = rng.integers(0, 256, n_symbols // 8 + 64).astype(np.uint8).tolist()
    if label == "gfsk":
        mod = digital.gfsk_mod(sps, math.pi * float(rng.uniform(0.3, 0.8)) / sps, float(rng.uniform(0.3, 1.0)))
    else:
        mod = digital.gmsk_mod(sps, float(rng.uniform(0.25, 0.5)))
    return _run([blocks.vector_source_b(data), mod])[:n_symbols * sps]


def pulse_chips(bits: np.ndarray, code: str) -> np.ndarray:
    """On/off chips (0/1 floats) of ``bits`` in a pulse code: ``nrz`` (a chip per bit), ``manchester`` (10 or 01),
    ``pwm`` (110 or 100: a long or short pulse), ``ppm`` (a pulse, then 1 or 3 chips off)."""
    if code == "nrz":
        return bits.astype(np.float32)
    if code == "manchester":
        return np.stack([bits, 1 - bits], axis=1).ravel().astype(np.float32)
    if code == "pwm":
        return np.stack([np.ones_like(bits), bits, np.zeros_like(bits)], axis=1).ravel().astype(np.float32)
    if code == "ppm":
        return np.concatenate([[1.0] + [0.0] * (1 + 2 * int(b)) for b in bits]).astype(np.float32)
    raise ValueError(f"unknown pulse code {code!r}; known: {', '.join(PULSE_CODES)}")


def _ook(n_symbols: int, rng: np.random.Generator) -> np.ndarray:
    code = PULSE_CODES[int(rng.integers(len(PULSE_CODES)))]
    sps = int(rng.integers(4, 61))
    preamble = np.tile([1, 0], int(rng.integers(4, 13)))
    packet = np.concatenate([preamble, rng.integers(0, 2, max(8, n_symbols))]).astype(np.float32)
    chips = pulse_chips(packet, code)
    repeats = int(rng.integers(1, 4))  # sensors send a telegram two or three times, a few chips apart
    gap = np.zeros(int(rng.integers(4, 24)), np.float32)
    chips = np.concatenate([np.concatenate([chips, gap])] * repeats)
    low = 0.0 if rng.uniform() < 0.7 else float(rng.uniform(0.05, 0.4))  # ASK keeps some carrier when "off"
    levels = (low + (1 - low) * chips).astype(np.float32)
    cutoff = min(0.45, float(rng.uniform(0.6, 4.0)) / sps)
    taps = gr_filter.firdes.low_pass(1.0, 1.0, cutoff, cutoff / 2)
    return _run([blocks.vector_source_f(levels.tolist()), blocks.repeat(4, sps), gr_filter.fir_filter_fff(1, taps),
                 blocks.float_to_complex()])


def _ofdm(n_symbols: int, rng: np.random.Generator) -> np.ndarray:
    n_fft = int(OFDM_SIZES[int(rng.integers(len(OFDM_SIZES)))])
    cp = n_fft // int(rng.choice([4, 8, 16]))
    used = int(round(rng.uniform(0.5, 0.92) * n_fft / 2))
    carriers = np.r_[-used:0, 1:used + 1] + n_fft // 2  # centred numbering, DC empty
    points = np.asarray(gr_constellation(str(rng.choice(["qpsk", "16qam", "64qam"]))).points())
    n_sym = max(2, n_symbols * 64 // n_fft)
    grid = np.zeros((n_sym, n_fft), np.complex64)
    grid[:, carriers] = points[rng.integers(0, len(points), (n_sym, len(carriers)))]
    return _run([blocks.vector_source_c(grid.ravel().tolist(), False, n_fft), fft.fft_vcc(n_fft, False, [], True),
                 digital.ofdm_cyclic_prefixer(n_fft, n_fft + cp, 0, "")])


def _analog(label: str, n_symbols: int, rng: np.random.Generator) -> np.ndarray:
    n = n_symbols * 16
    if label == "am-dsb":
        audio = band_limited_audio(n, rng, _loguniform(rng, 0.003, 0.05))
        return _run([blocks.vector_source_f(audio.tolist()), blocks.multiply_const_ff(float(rng.uniform(0.3, 0.9))),
                     blocks.add_const_ff(1.0), blocks.float_to_complex()])
    audio = band_limited_audio(n // 4 + 64, rng, _loguniform(rng, 0.02, 0.2))
    with contextlib.redirect_stdout(io.StringIO()):  # wfm_tx prints its filter's length
        wfm = analog.wfm_tx(audio_rate=64000, quad_rate=256000, max_dev=float(rng.uniform(15e3, 75e3)))
    return _run([blocks.vector_source_f(audio.tolist()), wfm])


def clean_burst(label: str, n_symbols: int, rng: np.random.Generator) -> np.ndarray:
    """One burst of class ``label`` of about ``n_symbols`` symbols (OFDM: ``n_symbols * 64`` samples' worth of
    OFDM symbols; analog: ``16 n_symbols`` samples), drawn over the class's span, unit mean power, complex64."""
    if label in LINEAR:
        x = _linear(label, n_symbols, rng)
    elif label in ("2fsk", "gfsk", "gmsk"):
        x = _fsk(label, n_symbols, rng)
    elif label == "ook":
        x = _ook(n_symbols, rng)
    elif label == "ofdm":
        x = _ofdm(n_symbols, rng)
    elif label in ("am-dsb", "wbfm"):
        x = _analog(label, n_symbols, rng)
    else:
        raise ValueError(f"unknown class {label!r}; known: {', '.join(RADIO_CLASSES)}")
    if len(x) < 16:
        raise RuntimeError(f"the {label} modulator gave {len(x)} samples")
    x = np.asarray(x, dtype=np.complex64)
    return (x / np.sqrt(np.mean(np.abs(x) ** 2))).astype(np.complex64)


def with_edges(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` with raised-cosine on and off edges of up to 5% of its length each (a transmitter's ramp)."""
    ramp = int(rng.uniform(0, 0.05) * len(x))
    if ramp < 2:
        return x
    edge = (0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)).astype(np.float32)
    y = x.copy()
    y[:ramp] *= edge
    y[-ramp:] *= edge[::-1]
    return y


def received(burst: np.ndarray, snr_db: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``burst`` in noise as a receiver records it (see the module's text); returns (the capture, the burst's first
    sample in it)."""
    lead, tail = int(rng.integers(256, 4096)), int(rng.integers(256, 4096))
    n = lead + len(burst) + tail
    x = np.zeros(n, np.complex64)
    x[lead:lead + len(burst)] = burst
    seed = int(rng.integers(1, 2**31 - 1))
    fading = channels.fading_model(8, float(rng.uniform(0, 1e-4)), bool(rng.uniform() < 0.5),
                                   float(rng.uniform(0, 10)), seed)
    # The carrier offset is mixed in here in float64, not by blocks.rotator_cc: the rotator's SIMD kernel
    # renormalises its phase per call, so its output moves with how the scheduler cuts the stream.
    cfo = float(rng.uniform(-MAX_CFO, MAX_CFO))
    iqbal = channels.iqbal_gen(float(rng.uniform(0, 1.5)), float(rng.uniform(0, 6)), 1)
    noise_amplitude = math.sqrt(10 ** (-snr_db / 10))
    dc = complex(*rng.uniform(-1, 1, 2)) * noise_amplitude * float(rng.uniform(0, 3))
    tb = gr.top_block("dw_radio_channel")
    add = blocks.add_cc()
    sink = blocks.vector_sink_c()
    faded = _run([blocks.vector_source_c(x.tolist()), fading])
    x = (faded * np.exp(2j * np.pi * cfo * np.arange(len(faded)))).astype(np.complex64)
    tb.connect(blocks.vector_source_c(x.tolist()), iqbal, blocks.add_const_cc(dc), (add, 0))
    tb.connect(analog.noise_source_c(analog.GR_GAUSSIAN, noise_amplitude, seed), blocks.head(gr.sizeof_gr_complex, n),
               (add, 1))
    tb.connect(add, sink)
    tb.run()
    y = np.asarray(sink.data(), dtype=np.complex64)
    if rng.uniform() < 0.5:
        y = quantized_8bit(y, float(np.max(np.abs(y))) * float(rng.uniform(1.0, 4.0)))
    return y, lead


def quantized_8bit(y: np.ndarray, full_scale: float) -> np.ndarray:
    """``y`` through an 8-bit converter of ``full_scale`` (I and Q apart, clipped): ``channels.quantizer``."""
    parts = np.clip(np.stack([y.real, y.imag]) / full_scale, -1.0, 127 / 128)
    out = []
    for part in parts:
        out.append(_run([blocks.vector_source_f(part.astype(np.float32).tolist()), channels.quantizer(8)], "f"))
    return ((out[0] + 1j * out[1]) * full_scale).astype(np.complex64)


def synthesize_radio(bursts_per_point: int, snrs_db: tuple[float, ...], seed: int = 0,
                     classes: tuple[str, ...] = RADIO_CLASSES, frame_len: int = FRAME_LEN,
                     frames_per_burst: int = FRAMES_PER_BURST) -> ModulationDataset:
    """``bursts_per_point`` bursts of every class at every SNR, each through the channel, the receiver model and
    the front end (:func:`diffwireless.frontend.burst_frames`, fitted to ``BAND_SHARE``), up to
    ``frames_per_burst`` frames each; frames in class, SNR order, each with its burst's index (``burst``). The
    front end is given where the burst lies (its SNR may be under what an energy gate finds) and the noise power
    (what the gate measures between bursts)."""
    if bursts_per_point < 1 or not snrs_db:
        raise ValueError(f"need at least one burst per point and one SNR, got {bursts_per_point}, {snrs_db}")
    unknown = sorted(set(classes) - set(RADIO_CLASSES))
    if unknown:
        raise ValueError(f"unknown classes {unknown}; known: {', '.join(RADIO_CLASSES)}")
    rng = np.random.default_rng(seed)
    frames, labels, snrs, owner, contrast, keyed = [], [], [], [], [], []
    for label in track(classes, "radio bursts (classes)"):
        for snr in snrs_db:
            for _ in range(bursts_per_point):
                burst = with_edges(clean_burst(label, int(_loguniform(rng, 96, 2048)), rng), rng)
                capture, start = received(burst, float(snr), rng)
                samples = capture[start:start + len(burst)] - capture.mean()
                cut = burst_frames(samples, frame_len, frames_per_burst, BAND_SHARE, 10 ** (-snr / 10))
                owner += [len(frames)] * len(cut)
                contrast += [cyclic_prefix_contrast(samples, CP_CONTRAST)[0]] * len(cut)
                keyed += [keyed_share(samples, 10 ** (-snr / 10))] * len(cut)
                frames.append(cut)
                labels += [label] * len(cut)
                snrs += [float(snr)] * len(cut)
    return ModulationDataset(np.concatenate(frames), np.array(labels), np.array(snrs), burst=np.array(owner),
                             cyclic_prefix=np.array(contrast), keyed=np.array(keyed))
