"""QA of diffusion_ofdm_rx: GNU Radio's OFDM loopback (ofdm_tx -> channel -> receiver) with either equalizer."""

from __future__ import annotations

import pytest
from gnuradio import gr

from gnuradio.diffwireless import diffusion_ofdm_rx
from gnuradio.diffwireless.recipes.ofdm_loopback import receive, transmit


def test_loopback_receives_every_packet_of_a_clean_link_with_either_equalizer():
    tx = transmit(12, seed=3)
    results = receive(tx, 30.0, profile=None, seed=3, device="cpu")
    assert sorted(r.equalizer for r in results) == ["diffusion", "stock"]
    for r in results:
        assert r.packets_ok == 12, r
        assert r.bit_errors == 0 and r.bits == 12 * 8 * 96, r


def test_outputs_follow_raw_output_and_bad_parameters_are_refused():
    assert diffusion_ofdm_rx(equalizer="stock").output_signature().max_streams() == 1
    rx = diffusion_ofdm_rx(equalizer="diffusion", raw_output=True, engine="cpu")
    assert rx.output_signature().max_streams() == 2 and rx.output_signature().sizeof_stream_item(0) == gr.sizeof_char
    with pytest.raises(ValueError, match="equalizer must be one of diffusion, stock"):
        diffusion_ofdm_rx(equalizer="simpledfe")
