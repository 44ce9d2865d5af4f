"""Bursts that look like real bands: pulse codes, the classes' spans, the receiver model, the frames kept."""

from __future__ import annotations

import numpy as np
import pytest

from diffwireless.frontend import occupied_bandwidth

from gnuradio.diffwireless.recipes.radio_sources import (PULSE_CODES, RADIO_CLASSES, clean_burst, pulse_chips,
                                                         quantized_8bit, received, synthesize_radio, with_edges)


def test_pulse_codes_carry_the_bits():
    bits = np.array([1, 0, 1, 1])
    assert pulse_chips(bits, "nrz").tolist() == [1, 0, 1, 1]
    assert pulse_chips(bits, "manchester").tolist() == [1, 0, 0, 1, 1, 0, 1, 0]
    assert pulse_chips(bits, "pwm").tolist() == [1, 1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0]  # long pulse: 1
    assert pulse_chips(bits, "ppm").tolist() == [1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0]  # long gap: 1
    assert set(PULSE_CODES) == {"nrz", "manchester", "pwm", "ppm"}
    with pytest.raises(ValueError, match="pulse code"):
        pulse_chips(bits, "morse")


@pytest.mark.parametrize("label", RADIO_CLASSES)
def test_every_class_makes_unit_power_bursts_that_differ_per_draw(label):
    rng = np.random.default_rng(0)
    a, b = clean_burst(label, 200, rng), clean_burst(label, 200, rng)
    for x in (a, b):
        assert x.dtype == np.complex64 and len(x) > 500 and np.all(np.isfinite(x))
        assert np.mean(np.abs(x) ** 2) == pytest.approx(1.0, rel=1e-3)
    assert len(a) != len(b) or not np.allclose(a, b)  # the span is drawn: rates, indices, sizes


def test_class_spans_are_as_documented():
    rng = np.random.default_rng(1)
    ook = np.concatenate([clean_burst("ook", 300, rng) for _ in range(8)])
    assert np.min(np.abs(ook)) < 0.05 * np.max(np.abs(ook))  # off-times
    fsk = [clean_burst("2fsk", 400, rng) for _ in range(6)]
    assert all(np.std(np.abs(x)) < 0.05 for x in fsk)  # constant envelope
    widths = [occupied_bandwidth(clean_burst("ofdm", 1024, rng)) for _ in range(8)]
    assert 0.4 < min(widths) and max(widths) < 1.0


def test_receiver_model_and_the_8bit_converter():
    rng = np.random.default_rng(2)
    burst = with_edges(clean_burst("qpsk", 400, rng), rng)
    assert abs(burst[0]) < abs(burst[len(burst) // 2]) + 1e-6
    capture, start = received(burst, 10.0, rng)
    assert 256 <= start and len(capture) >= start + len(burst) + 256
    off = capture[:start - 10]
    assert np.var(off) == pytest.approx(0.1, rel=0.25)  # noise 10 dB under the unit-power burst (fading aside)
    y = quantized_8bit(capture, 2.0)
    levels = np.unique(np.round(y.real / 2.0 * 128))
    assert np.allclose(y.real / 2.0 * 128, np.round(y.real / 2.0 * 128), atol=1e-3) and len(levels) <= 256


def test_synthesized_frames_are_labelled_and_seeded():
    a = synthesize_radio(1, (20.0,), seed=3, classes=("ook", "ofdm"), frames_per_burst=2)
    b = synthesize_radio(1, (20.0,), seed=3, classes=("ook", "ofdm"), frames_per_burst=2)
    assert a.frames.shape[1] == 1024 and set(a.labels) == {"ook", "ofdm"} and np.all(a.snr_db == 20.0)
    np.testing.assert_array_equal(a.frames, b.frames)  # the same data for the same seed, however GR cuts streams
    assert a.burst.tolist() == sorted(a.burst.tolist()) and len(set(a.burst.tolist())) == 2  # a burst per class
    with pytest.raises(ValueError, match="unknown classes"):
        synthesize_radio(1, (0.0,), classes=("fm-stereo",))


def test_front_end_figure_is_drawn(tmp_path):
    from PIL import Image

    from gnuradio.diffwireless.recipes.frontend_figure import capture, draw

    x, truth = capture()
    assert [t[2] for t in truth] == ["ook", "2fsk", "ofdm"] and all(0 <= s < e <= len(x) for s, e, _ in truth)
    path = draw(tmp_path)
    assert Image.open(path).size[0] > 800

