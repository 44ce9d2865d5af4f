"""The classifier front end: bursts found where they are, carriers centred, bandwidth measured and fitted."""

from __future__ import annotations

import numpy as np
import pytest

from diffwireless.frontend import (Burst, carrier_offset, centre_carrier, fit_band, gate_bursts, occupied_bandwidth,
                                   remove_dc)
from diffwireless.spectrum_scenes import linear_modulation
from diffwireless.constellations import get_constellation


def qpsk(n: int, sps: int, rng, rolloff: float = 0.35) -> np.ndarray:
    frames = linear_modulation(1, n, get_constellation("qpsk").points, sps, rolloff, rng)
    return frames[0] / np.sqrt(np.mean(np.abs(frames[0]) ** 2))


def test_bursts_are_found_where_they_are_and_ook_gaps_stay_inside_one():
    rng = np.random.default_rng(0)
    x = 0.05 * (rng.standard_normal(60_000) + 1j * rng.standard_normal(60_000))
    x[10_000:14_000] += qpsk(4000, 8, rng)
    # An OOK telegram: 8 pulses of 300 samples, 200 off between them; then a blip too short to count.
    for k in range(8):
        x[30_000 + 500 * k: 30_300 + 500 * k] += np.exp(2j * np.pi * 0.1 * np.arange(300))
    x[50_000:50_100] += 1.0
    bursts = gate_bursts(x, threshold_db=6.0, smooth=64, hold=400, min_length=256)
    assert [(b.start // 100, b.end // 100) for b in bursts] == [(99, 140), (299, 338)]
    assert all(b.snr_db > 15 for b in bursts) and isinstance(bursts[0], Burst) and bursts[0].length > 3900
    assert gate_bursts(np.zeros(0, np.complex64)) == []
    with pytest.raises(ValueError, match="smooth"):
        gate_bursts(x, smooth=0)


def test_carrier_is_centred_and_dc_removed():
    rng = np.random.default_rng(1)
    x = qpsk(16_384, 8, rng) * np.exp(2j * np.pi * 0.12 * np.arange(16_384))
    assert carrier_offset(x) == pytest.approx(0.12, abs=0.005)
    centred, offset = centre_carrier(x)
    assert offset == pytest.approx(0.12, abs=0.005) and abs(carrier_offset(centred)) < 0.005
    assert abs(np.mean(remove_dc(x + 0.3 - 0.2j))) < 1e-6


@pytest.mark.parametrize("sps", [4, 8, 16])
def test_occupied_bandwidth_of_rrc_qpsk_and_fitting_it_to_a_share(sps):
    rng = np.random.default_rng(2)
    x = qpsk(32_768, sps, rng)
    bw = occupied_bandwidth(x, 0.99)
    assert bw == pytest.approx(1.35 / sps, rel=0.2)  # the RRC's (1 + rolloff) / sps
    fitted, factor = fit_band(x, bw, target_share=0.25)
    assert factor == pytest.approx(bw / 0.25, rel=0.05)
    assert occupied_bandwidth(fitted, 0.99) == pytest.approx(0.25, rel=0.2)
    assert len(fitted) == pytest.approx(len(x) * factor, rel=0.01)
    with pytest.raises(ValueError, match="target_share"):
        fit_band(x, bw, 0.0)
