"""GNU Radio's OFDM loopback over a fading channel, received by the stock and the diffusion equalizer at once.

``digital.ofdm_tx`` (GNU Radio's 802.11-like defaults: 64-FFT, 48 data + 4 pilot carriers, BPSK header) sends
``n_packets`` random packets; between packets the line is idle for ``gap`` samples. The waveform goes through
``channels.selective_fading_model`` (Rayleigh taps at the delays and powers of a 3GPP TDL profile, in samples of
20 MHz) and additive white Gaussian noise, then into two :class:`diffusion_ofdm_rx` receivers, identical but for
their frame equalizers (``stock``: ``ofdm_equalizer_simpledfe``, as ``digital.ofdm_rx``; ``diffusion``), which
see the very same samples. Counted per receiver: packets that pass their CRC (packet success rate) and, over the
packets whose header was decoded, payload bit errors (BER).

With ``coded`` each packet's 96 bytes are coded before ``ofdm_tx`` by gr-fec's convolutional code (rate 1/2,
constraint length 7, the 802.11 generators 133/171 octal, terminated) and spread by a fixed pseudo-random bit
interleaver (the deep fade of a few carriers becomes scattered errors the Viterbi decoder corrects); the receivers'
payload bits are de-interleaved and decoded by gr-fec's Viterbi decoder (hard decisions: ``ofdm_rx`` gives bits). A
packet then counts as received when its decoded 96 bytes are the ones sent (the CRC protects the coded bytes).

SNR: per active carrier, ``P_tx * fft_len / n_active / noise_power`` with ``P_tx`` the mean power of the sent
samples (gaps excluded): the Es/N0 of a data carrier through a channel of unit mean gain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pmt
from gnuradio import analog, blocks, channels, digital, fec, gr

from diffwireless.fading import TDL_TABLES

from gnuradio.diffwireless.diffusion_ofdm_rx import diffusion_ofdm_rx

PACKET_LEN = 96  # bytes, as GNU Radio's ofdm_loopback example
SAMPLE_RATE_HZ = 20e6
CC_K, CC_POLYS = 7, [109, 79]  # constraint length and generators (0o155, 0o117: 802.11's 133/171 bit-reversed)
INFO_BITS = 8 * PACKET_LEN
CODED_BITS = 2 * (INFO_BITS + CC_K - 1)  # terminated: the tail returns the encoder to state 0
CODED_LEN = -(-CODED_BITS // 8)  # bytes sent per packet with FEC (zero bits pad the last)
INTERLEAVER_SEED = 802


@dataclass
class Transmission:
    """The sent waveform (with idle gaps) and the payload of each packet."""

    samples: np.ndarray
    payloads: list[bytes]
    signal_power: float
    bps_payload: int
    coded: bool = False


@dataclass
class Reception:
    equalizer: str
    packets_sent: int
    packets_ok: int
    packets_detected: int
    bit_errors: int
    bits: int
    extra: dict = field(default_factory=dict)


def interleaver() -> np.ndarray:
    """The fixed bit permutation ``[CODED_BITS]`` of a coded packet: sent bit ``i`` is coded bit ``perm[i]``."""
    return np.random.default_rng(INTERLEAVER_SEED).permutation(CODED_BITS)


def _run_bits(source, chain, sink) -> None:
    tb = gr.top_block("dw_fec")
    tb.connect(source, chain, sink)
    tb.run()


def fec_encode(payloads: list[bytes]) -> list[bytes]:
    """Each payload of :data:`PACKET_LEN` bytes -> :data:`CODED_LEN` bytes: gr-fec's terminated rate-1/2 K=7
    convolutional code, interleaved, packed MSB first."""
    bits = np.unpackbits(np.frombuffer(b"".join(payloads), dtype=np.uint8))
    sink = blocks.vector_sink_b()
    enc = fec.cc_encoder_make(INFO_BITS, CC_K, 2, CC_POLYS, 0, fec.CC_TERMINATED, False)
    _run_bits(blocks.vector_source_b(bits.tolist(), False),
              fec.extended_encoder(encoder_obj_list=enc, threading=None, puncpat="11"), sink)
    coded = np.asarray(sink.data(), dtype=np.uint8).reshape(len(payloads), CODED_BITS)[:, interleaver()]
    padded = np.zeros((len(payloads), 8 * CODED_LEN), dtype=np.uint8)
    padded[:, :CODED_BITS] = coded
    return [np.packbits(row).tobytes() for row in padded]


def fec_decode(received: np.ndarray) -> np.ndarray:
    """Received coded packets ``[n, CODED_LEN]`` bytes (hard decisions) -> decoded payloads ``[n, PACKET_LEN]``
    bytes by gr-fec's Viterbi decoder."""
    received = np.asarray(received, dtype=np.uint8).reshape(-1, CODED_LEN)
    coded = np.empty((len(received), CODED_BITS), dtype=np.uint8)
    coded[:, interleaver()] = np.unpackbits(received, axis=1)[:, :CODED_BITS]
    soft = (2.0 * coded.reshape(-1) - 1.0).astype(np.float32)  # bit 1 -> +1, as gr-fec's decoder takes them
    sink = blocks.vector_sink_b()
    dec = fec.cc_decoder.make(INFO_BITS, CC_K, 2, CC_POLYS, 0, -1, fec.CC_TERMINATED, False)
    _run_bits(blocks.vector_source_f(soft.tolist(), False),
              fec.extended_decoder(decoder_obj_list=dec, threading=None, ann=None, puncpat="11",
                                   integration_period=10000), sink)
    bits = np.asarray(sink.data(), dtype=np.uint8)
    if len(bits) != len(received) * INFO_BITS:
        raise RuntimeError(f"the Viterbi decoder gave {len(bits)} bits for {len(received)} packets")
    return np.packbits(bits.reshape(len(received), INFO_BITS), axis=1)


def transmit(n_packets: int, seed: int, bps_payload: int = 1, gap: int = 400, coded: bool = False
             ) -> Transmission:
    """Run ``digital.ofdm_tx`` on random packets (``coded``: by :func:`fec_encode`) and space its bursts by
    ``gap`` zero samples."""
    rng = np.random.default_rng(seed)
    payloads = [rng.integers(0, 256, PACKET_LEN, dtype=np.uint8).tobytes() for _ in range(n_packets)]
    sent = fec_encode(payloads) if coded else payloads
    tb = gr.top_block("dw_ofdm_tx")
    src = blocks.vector_source_b(list(b"".join(sent)), False)
    to_tsb = blocks.stream_to_tagged_stream(gr.sizeof_char, 1, len(sent[0]), "packet_length")
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
    return Transmission(samples, payloads, float(np.mean(np.abs(data) ** 2)), bps_payload, coded)


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
        packets = _received_packets(raw, len(tx.payloads), CODED_LEN if tx.coded else PACKET_LEN)
        if tx.coded and packets:
            decoded = fec_decode(np.stack([p for _, p in packets]))
            packets = [(num, row) for (num, _), row in zip(packets, decoded)]
        errors, bits, n_ok = _bit_errors(packets, tx.payloads)
        if not tx.coded:
            n_ok = len(ok.data()) // PACKET_LEN  # the CRC's verdict
        results.append(Reception(eq, len(tx.payloads), n_ok, len(packets), errors, bits))
    return results


def _received_packets(raw, n_sent: int, length: int) -> list[tuple[int, np.ndarray]]:
    """(packet number, ``length`` payload bytes, zero-filled where the stream ended) of every packet whose header
    was decoded (the ``packet_num`` tag of the receiver's raw output, numbers outside the sent ones dropped)."""
    data = np.asarray(raw.data(), dtype=np.uint8)
    out = []
    for t in raw.tags():
        if pmt.symbol_to_string(t.key) != "packet_num":
            continue
        num = int(pmt.to_python(t.value))
        if 0 <= num < n_sent:  # else a header that decoded to a wrong number: lost
            got = np.zeros(length, dtype=np.uint8)
            part = data[t.offset: t.offset + length]
            got[: len(part)] = part
            out.append((num, got))
    return out


def _bit_errors(packets: list[tuple[int, np.ndarray]], payloads: list[bytes]) -> tuple[int, int, int]:
    """(payload bit errors, bits, packets without error) over the received packets."""
    errors = bits = clean = 0
    for num, got in packets:
        wrong = int(np.unpackbits(got ^ np.frombuffer(payloads[num], dtype=np.uint8)).sum())
        errors += wrong
        bits += 8 * PACKET_LEN
        clean += wrong == 0
    return errors, bits, clean
