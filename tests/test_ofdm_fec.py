"""The loopback's payload code: gr-fec's rate-1/2 K=7 convolutional code with the interleaver, end to end."""

from __future__ import annotations

import numpy as np

from gnuradio.diffwireless.recipes.ofdm_loopback import (CODED_BITS, CODED_LEN, PACKET_LEN, fec_decode, fec_encode,
                                                         interleaver, receive, transmit)


def test_the_code_corrects_scattered_and_burst_errors_that_the_interleaver_spreads():
    rng = np.random.default_rng(0)
    payloads = [rng.integers(0, 256, PACKET_LEN, dtype=np.uint8).tobytes() for _ in range(6)]
    coded = fec_encode(payloads)
    assert all(len(c) == CODED_LEN for c in coded) and CODED_BITS == 2 * (8 * PACKET_LEN + 6)
    assert sorted(interleaver()) == list(range(CODED_BITS))
    bits = np.unpackbits(np.frombuffer(b"".join(coded), dtype=np.uint8)).reshape(6, -1)
    bits[0, rng.choice(CODED_BITS, 40, replace=False)] ^= 1  # 2.6% scattered errors
    bits[1, 300:340] ^= 1  # 40 consecutive sent bits: a faded stretch of carriers
    decoded = fec_decode(np.packbits(bits, axis=1))
    sent = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(6, PACKET_LEN)
    np.testing.assert_array_equal(decoded, sent)
    bits[2, :CODED_BITS // 2] ^= 1  # half the packet wrong: beyond any code, the decoder must not hide it
    assert np.any(fec_decode(np.packbits(bits, axis=1))[2] != sent[2])


def test_a_coded_loopback_delivers_every_payload_of_a_clean_link():
    tx = transmit(6, seed=5, coded=True)
    for r in receive(tx, 30.0, profile=None, seed=5, device="cpu"):
        assert r.packets_ok == 6 and r.packets_detected == 6 and r.bit_errors == 0, r
