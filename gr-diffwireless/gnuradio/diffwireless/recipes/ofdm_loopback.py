"""GNU Radio's OFDM loopback over a fading channel, received by the stock and the diffusion equalizer at once.

``digital.ofdm_tx`` (GNU Radio's 802.11-like defaults: 64-FFT, 48 data + 4 pilot carriers, BPSK header) sends
``n_packets`` random packets; between packets the line is idle for ``gap`` samples. The waveform goes through
``channels.selective_fading_model`` (Rayleigh taps at the delays and powers of a 3GPP TDL profile, in samples of
20 MHz) and additive white Gaussian noise, then into two :class:`diffusion_ofdm_rx` receivers, identical but for
their frame equalizers (``stock``: ``ofdm_equalizer_simpledfe``, as ``digital.ofdm_rx``; ``diffusion``), which
see the very same samples. Counted per receiver: packets that pass their CRC (packet success rate) and, over the
packets whose header was decoded, payload bit errors (BER).

SNR: per active carrier, ``P_tx * fft_len / n_active / noise_power`` with ``P_tx`` the mean power of the sent
samples (gaps excluded): the Es/N0 of a data carrier through a channel of unit mean gain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pmt
from gnuradio import analog, blocks, channels, digital, gr

from diffwireless.fading import TDL_TABLES

from gnuradio.diffwireless.diffusion_ofdm_rx import diffusion_ofdm_rx

PACKET_LEN = 96  # bytes, as GNU Radio's ofdm_loopback example
SAMPLE_RATE_HZ = 20e6


@dataclass
class Transmission:
    """The sent waveform (with idle gaps) and the payload of each packet."""

    samples: np.ndarray
    payloads: list[bytes]
    signal_power: float
    bps_payload: int


@dataclass
class Reception:
    equalizer: str
    packets_sent: int
    packets_ok: int
    packets_detected: int
    bit_errors: int
    bits: int
    extra: dict = field(default_factory=dict)


def transmit(n_packets: int, seed: int, bps_payload: int = 1, gap: int = 400) -> Transmission:
    """Run ``digital.ofdm_tx`` on random packets and space its bursts by ``gap`` zero samples."""
    rng = np.random.default_rng(seed)
    payloads = [rng.integers(0, 256, PACKET_LEN, dtype=np.uint8).tobytes() for _ in range(n_packets)]
    tb = gr.top_block("dw_ofdm_tx")
    src = blocks.vector_source_b(list(b"".join(payloads)), False)
    to_tsb = blocks.stream_to_tagged_stream(gr.sizeof_char, 1, PACKET_LEN, "packet_length")
    tx = digital.ofdm_tx(packet_length_tag_key="packet_length", bps_payload=bps_payload)
    sink = blocks.vector_sink_c()
    tb.connect(src, to_tsb, tx, sink)
    tb.run()
    data = np.asarray(sink.data(), dtype=np.complex64)
    starts = sorted(t.offset for t in sink.tags() if pmt.symbol_to_string(t.key) == "packet_length")
    bursts = np.split(data, starts[1:])
    if len(bursts) != n_packets:
        raise RuntimeError(f"ofdm_tx made {len(bursts)} bursts from {n_packets} packets")
    idle = np.zeros(gap, dtype=np.complex64)
    samples = np.concatenate([np.concatenate([idle, b]) for b in bursts] + [np.zeros(4 * gap, np.complex64)])
    return Transmission(samples, payloads, float(np.mean(np.abs(data) ** 2)), bps_payload)


def tdl_taps(profile: str = "A", delay_spread_s: float = 50e-9) -> tuple[list[float], list[float]]:
    """Delays (samples at 20 MHz) and amplitudes (unit total power) of a TDL profile for selective_fading_model."""
    delays, powers_db = (np.asarray(v, dtype=np.float64) for v in TDL_TABLES[profile])
    powers = 10.0 ** (powers_db / 10.0)
    return (delays * delay_spread_s * SAMPLE_RATE_HZ).tolist(), np.sqrt(powers / powers.sum()).tolist()


def receive(tx: Transmission, snr_db: float, equalizers=("stock", "diffusion"), profile: str | None = "A",
            delay_spread_s: float = 50e-9, fdts: float = 2e-5, seed: int = 0, model: str = "",
            device: str = "auto", **rx_kwargs) -> list[Reception]:
    """One pass of ``tx`` through fading (``profile`` None: none) and noise at ``snr_db`` into a receiver per
    equalizer (all on the same samples)."""
    n_active = 52
    noise_power = tx.signal_power * 64 / n_active / 10 ** (snr_db / 10)
    tb = gr.top_block("dw_ofdm_loopback")
    src = blocks.vector_source_c(tx.samples.tolist(), False)
    noise = analog.noise_source_c(analog.GR_GAUSSIAN, math.sqrt(noise_power), seed + 1000)
    add = blocks.add_cc()
    if profile is None:  # no fading: AWGN only
        tb.connect(src, (add, 0))
    else:
        delays, mags = tdl_taps(profile, delay_spread_s)
        # 8 sinusoids per tap; 64 filter taps give the fractional delays room
        fading = channels.selective_fading_model(8, fdts, False, 4.0, seed, delays, mags, 64)
        tb.connect(src, fading, (add, 0))
    tb.connect(noise, blocks.head(gr.sizeof_gr_complex, len(tx.samples)), (add, 1))
    sinks = {}
    for eq in equalizers:
        rx = diffusion_ofdm_rx(equalizer=eq, bps_payload=tx.bps_payload, model=model, engine=device,
                               raw_output=True, **rx_kwargs)
        ok, raw = blocks.vector_sink_b(), blocks.vector_sink_b()
        tb.connect(add, rx)
        tb.connect((rx, 0), ok)
        tb.connect((rx, 1), raw)
        sinks[eq] = (ok, raw)
    tb.run()
    results = []
    for eq, (ok, raw) in sinks.items():
        n_ok = len(ok.data()) // PACKET_LEN
        errors, bits, detected = _bit_errors(raw, tx.payloads)
        results.append(Reception(eq, len(tx.payloads), n_ok, detected, errors, bits))
    return results


def _bit_errors(raw, payloads: list[bytes]) -> tuple[int, int, int]:
    """Payload bit errors over the packets whose header was decoded (matched by their ``packet_num`` tag)."""
    data = np.asarray(raw.data(), dtype=np.uint8)
    starts = [(t.offset, pmt.to_python(t.value)) for t in raw.tags() if pmt.symbol_to_string(t.key) == "packet_num"]
    errors = bits = detected = 0
    for offset, num in starts:
        if not 0 <= int(num) < len(payloads):
            continue  # a header that decoded to a wrong number: lost
        got = data[offset: offset + PACKET_LEN]
        sent = np.frombuffer(payloads[int(num)], dtype=np.uint8)[: len(got)]
        errors += int(np.unpackbits(got ^ sent).sum()) + 8 * (PACKET_LEN - len(got))
        bits += 8 * PACKET_LEN
        detected += 1
    return errors, bits, detected
