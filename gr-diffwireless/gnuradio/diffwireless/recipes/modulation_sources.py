"""Labelled modulation frames made by GNU Radio's own modulators and channel blocks (for ``dw-dataset``).

Each class is a small flowgraph from random bytes (or random audio) to complex baseband at 8 samples per symbol
(digital classes) or the analog modulator's own rate: ``digital.generic_mod`` with the constellations of
:mod:`gnuradio.diffwireless.constellations` (BPSK, QPSK, 8PSK, 16QAM, 64QAM; RRC roll-off 0.35) and with on-off
points (OOK), ``digital.gfsk_mod`` (h = 0.32, BT 0.5, as Bluetooth), ``digital.gmsk_mod`` (BT 0.35),
``digital.ofdm_tx`` (GNU
Radio's default 64-carrier layout, 96-byte packets), ``analog.wfm_tx`` (wideband FM of band-limited noise audio) and
AM-DSB with carrier (``1 + 0.5 audio`` by GNU Radio's arithmetic blocks). The signal is scaled to unit power, cut
into frames at random offsets, and every run of frames goes through ``channels.fading_model`` (flat Rayleigh or
Rician fading, K 0-10, normalised Doppler up to 1e-3), ``blocks.rotator_cc`` (carrier offset up to +-0.01
cycles/sample) and ``analog.noise_source_c`` (AWGN at the frame's SNR).
"""

from __future__ import annotations

import numpy as np
from gnuradio import analog, blocks, channels, digital, gr

from diffwireless.modulation_data import CLASSES, FRAME_LEN, ModulationDataset
from diffwireless.progress import track

from gnuradio.diffwireless.constellations import gr_constellation

SPS = 8
EXCESS_BW = 0.35
MAX_CFO = 0.01  # cycles/sample
MAX_DOPPLER = 1e-3  # fD * Ts
FRAMES_PER_RUN = 16  # frames that share one channel run (carrier offset, fading seed)
GFSK_H = 0.32


def _run(source_blocks: list, n: int, out_type: str = "c") -> np.ndarray:
    tb = gr.top_block("dw_dataset")
    sink = blocks.vector_sink_c() if out_type == "c" else blocks.vector_sink_f()
    head = blocks.head(gr.sizeof_gr_complex if out_type == "c" else gr.sizeof_float, n)
    tb.connect(*source_blocks, head, sink)
    tb.run()
    return np.asarray(sink.data())


def band_limited_audio(n: int, rng: np.random.Generator, bandwidth: float) -> np.ndarray:
    """Band-limited Gaussian 'audio' (cycles/sample bandwidth, at least one bin), peak-normalised to 1."""
    spec = np.fft.rfft(rng.standard_normal(n))
    spec[max(1, int(bandwidth * n)):] = 0
    a = np.fft.irfft(spec, n)
    return (a / np.max(np.abs(a))).astype(np.float32)


def clean_signal(label: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of class ``label`` from its GNU Radio modulator, unit mean power, complex64."""
    n_bytes = n // SPS + 256
    data = rng.integers(0, 256, n_bytes).astype(np.uint8).tolist()
    if label in ("bpsk", "qpsk", "8psk", "16qam", "64qam", "ook"):
        const = (digital.constellation_calcdist([0j, 1 + 0j], [0, 1], 2, 1) if label == "ook"
                 else gr_constellation(label))
        mod = digital.generic_mod(const, differential=False, samples_per_symbol=SPS, pre_diff_code=False,
                                  excess_bw=EXCESS_BW)
        x = _run([blocks.vector_source_b(data), mod], n)
    elif label == "gfsk":
        # Bluetooth-like (h = 0.32, BT 0.5): with h = 0.5 and GMSK's BT it would be GMSK.
        x = _run([blocks.vector_source_b(data), digital.gfsk_mod(SPS, np.pi * GFSK_H / SPS, 0.5)], n)
    elif label == "gmsk":
        x = _run([blocks.vector_source_b(data), digital.gmsk_mod(SPS, 0.35)], n)
    elif label == "ofdm":
        src = blocks.vector_source_b(data * 4)
        tagger = blocks.stream_to_tagged_stream(gr.sizeof_char, 1, 96, "packet_len")
        x = _run([src, tagger, digital.ofdm_tx(fft_len=64, packet_length_tag_key="packet_len")], n)
    elif label == "wbfm":
        audio = band_limited_audio(n // 4 + 64, rng, 0.1)  # wfm_tx interpolates by quad_rate / audio_rate = 4
        x = _run([blocks.vector_source_f(audio.tolist()), analog.wfm_tx(audio_rate=64000, quad_rate=256000)], n)
    elif label == "am-dsb":
        audio = band_limited_audio(n + 64, rng, 0.02)
        x = _run([blocks.vector_source_f(audio.tolist()), blocks.multiply_const_ff(0.5), blocks.add_const_ff(1.0),
                  blocks.float_to_complex()], n)
    else:
        raise ValueError(f"unknown class {label!r}; known: {', '.join(CLASSES)}")
    if len(x) < n:
        raise RuntimeError(f"the {label} modulator gave {len(x)} of {n} samples")
    x = x[:n]
    return (x / np.sqrt(np.mean(np.abs(x) ** 2))).astype(np.complex64)


def through_channel(frames: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Frames ``[k, L]`` (unit power) through GNU Radio's fading model, a carrier offset (``blocks.rotator_cc``)
    and AWGN (``analog.noise_source_c``), back to back; ``[k, L]``."""
    k, length = frames.shape
    seed = int(rng.integers(1, 2**31 - 1))
    rician = bool(rng.uniform() < 0.5)
    fading = channels.fading_model(8, float(rng.uniform(0, MAX_DOPPLER)), rician, float(rng.uniform(0, 10)), seed)
    rotator = blocks.rotator_cc(2 * np.pi * float(rng.uniform(-MAX_CFO, MAX_CFO)))
    noise = analog.noise_source_c(analog.GR_GAUSSIAN, float(np.sqrt(10 ** (-snr_db / 10))), seed)
    add = blocks.add_cc()
    tb = gr.top_block("dw_dataset_channel")
    sink = blocks.vector_sink_c()
    tb.connect(blocks.vector_source_c(frames.ravel().tolist()), fading, rotator, (add, 0))
    tb.connect(noise, blocks.head(gr.sizeof_gr_complex, k * length), (add, 1))
    tb.connect(add, sink)
    tb.run()
    y = np.asarray(sink.data(), dtype=np.complex64)
    if len(y) != k * length:
        raise RuntimeError(f"the channel gave {len(y)} of {k * length} samples")
    return y.reshape(k, length)


def synthesize(frames_per_point: int, snrs_db: tuple[float, ...], seed: int = 0,
               classes: tuple[str, ...] = CLASSES, frame_len: int = FRAME_LEN) -> ModulationDataset:
    """``frames_per_point`` frames of every class at every SNR; frames in class, SNR order."""
    if frames_per_point < 1 or not snrs_db:
        raise ValueError(f"need at least one frame per point and one SNR, got {frames_per_point}, {snrs_db}")
    rng = np.random.default_rng(seed)
    frames, labels, snrs = [], [], []
    for label in track(classes, "synthesis (classes)"):
        total = frames_per_point * len(snrs_db)
        stride = frame_len + int(rng.integers(1, frame_len))
        clean = clean_signal(label, total * stride + frame_len, rng)
        starts = np.arange(total) * stride + rng.integers(0, stride - frame_len + 1, total)
        cut = clean[starts[:, None] + np.arange(frame_len)[None, :]]
        for j, snr in enumerate(snrs_db):
            part = cut[j * frames_per_point:(j + 1) * frames_per_point]
            for r in range(0, len(part), FRAMES_PER_RUN):
                frames.append(through_channel(part[r:r + FRAMES_PER_RUN], float(snr), rng))
            labels += [label] * len(part)
            snrs += [float(snr)] * len(part)
    return ModulationDataset(np.concatenate(frames), np.array(labels), np.array(snrs))
