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


@pytest.mark.parametrize("factor", [0.0021, 0.013, 0.37, 1.0, 1.7, 6.3])
def test_rate_ratio_is_close_with_small_terms_however_far_from_one(factor):
    from diffwireless.frontend import rate_ratio

    r = rate_ratio(factor)
    assert abs(float(r) / factor - 1) < 0.035 and min(r.numerator, r.denominator) <= 16
    with pytest.raises(ValueError, match="rate factor"):
        rate_ratio(0.0)


def test_noise_is_taken_off_before_the_occupied_band_is_measured():
    rng = np.random.default_rng(3)
    sig = qpsk(65_536, 32, rng)  # occupies 1.35 / 32 = 0.042 of the band
    noise_power = 0.1  # 10 dB under the signal, spread over the whole band
    x = sig + np.sqrt(noise_power / 2) * (rng.standard_normal(len(sig)) + 1j * rng.standard_normal(len(sig)))
    assert occupied_bandwidth(x) > 0.5  # the noise's 10% of the power: the band looks ten times too wide
    assert occupied_bandwidth(x, noise_power=noise_power) == pytest.approx(1.35 / 32, rel=0.3)
    with pytest.raises(ValueError, match="noise_power"):
        occupied_bandwidth(x, noise_power=float("nan"))


def test_burst_frames_fit_the_band_and_cover_short_and_long_bursts():
    from diffwireless.frontend import burst_frames

    rng = np.random.default_rng(4)
    x = qpsk(200_000, 40, rng) * np.exp(2j * np.pi * 0.2 * np.arange(200_000))  # narrow, off centre
    frames = burst_frames(x, 1024, 4, share=0.5)
    assert frames.shape == (4, 1024) and frames.dtype == np.complex64
    assert occupied_bandwidth(frames.ravel()) == pytest.approx(0.5, rel=0.25)  # fitted, and centred
    assert abs(carrier_offset(frames.ravel())) < 0.03
    short = burst_frames(qpsk(300, 2, rng), 1024, 4)  # shorter than a frame: one, zero-padded
    assert short.shape == (1, 1024) and np.all(short[0, 800:] == 0)
    with pytest.raises(ValueError, match="max_frames"):
        burst_frames(x, 1024, 0)


def test_stream_front_end_tracks_the_floor_over_stretches():
    from diffwireless.frontend import StreamFrontEnd

    rng = np.random.default_rng(5)
    fe = StreamFrontEnd(1024, max_frames=2, memory=4)

    def noise(n):
        return (0.05 * (rng.standard_normal(n) + 1j * rng.standard_normal(n))).astype(np.complex64)

    quiet = noise(16_384)
    assert fe.segment(quiet).bursts == []  # noise alone: nothing to decide
    busy = noise(16_384)
    busy += qpsk(16_384, 8, rng)  # all signal: its own floor would hide it; the tracked one does not
    seg = fe.segment(busy)
    assert len(seg.bursts) == 1 and seg.bursts[0].length > 15_000 and seg.bursts[0].snr_db > 15
    assert seg.frames.shape == (2, 1024) and list(seg.owner) == [0, 0]
    fresh = StreamFrontEnd(1024, max_frames=2)
    assert fresh.segment(busy).bursts == []  # without a quiet stretch seen, a band that is all signal is the floor
    tail = np.concatenate([noise(500), np.zeros(524, np.complex64)])  # a stream's zero-padded last window
    assert fe.segment(tail).bursts == []  # the padding is not taken for a floor that would gate the noise
    continuous = StreamFrontEnd(1024, max_frames=2, gate=False)
    assert len(continuous.segment(quiet).bursts) == 1  # no gate: every stretch one burst


def test_fine_carrier_finds_the_residual_offset_from_a_power_line():
    from diffwireless.frontend import fine_carrier

    rng = np.random.default_rng(6)
    t = np.arange(1024)
    frames = np.stack([qpsk(1024, 4, rng) * np.exp(2j * np.pi * 0.0031 * t),
                       qpsk(1024, 4, rng) * np.exp(-2j * np.pi * 0.012 * t),
                       rng.standard_normal(1024) + 1j * rng.standard_normal(1024)])  # noise: no line
    fixed, offsets = fine_carrier(frames)
    assert offsets[0] == pytest.approx(0.0031, abs=2e-4) and offsets[1] == pytest.approx(-0.012, abs=2e-4)
    assert offsets[2] == 0.0 and np.allclose(fixed[2], frames[2].astype(np.complex64))
    _, left = fine_carrier(fixed[:2])
    assert np.all(np.abs(left) < 2e-4)  # once removed, nothing left to find
    # Each frame is its own: a BPSK frame (line at the 2nd power) beside them changes none of the others.
    bpsk = np.repeat(rng.choice([-1.0, 1.0], 256), 4) * np.exp(2j * np.pi * 0.02 * t)
    both, both_offsets = fine_carrier(np.concatenate([frames, bpsk[None]]))
    assert np.array_equal(both_offsets[:3], offsets) and np.array_equal(both[:3], fixed)
    assert both_offsets[3] == pytest.approx(0.02, abs=2e-4)
    with pytest.raises(ValueError, match="frames"):
        fine_carrier(np.zeros(8, np.complex64))


@pytest.mark.parametrize("up,down", [(1, 3), (3, 1), (5, 7), (4, 6), (1, 250)])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_resampling_with_a_kept_filter_is_what_resample_poly_gives(up, down, dtype):
    from scipy import signal

    from diffwireless.frontend import resample

    rng = np.random.default_rng(up * 100 + down)
    x = (rng.standard_normal(3000) + 1j * rng.standard_normal(3000)).astype(dtype)
    for _ in range(2):  # designed once, then kept: the kept filter must not change
        y = resample(x, up, down)
        assert y.dtype == dtype and np.array_equal(y, signal.resample_poly(x, up, down))


def test_smoothed_power_is_the_moving_average_np_convolve_gives():
    from diffwireless.frontend import smoothed_power

    rng = np.random.default_rng(7)
    x = rng.standard_normal(1000) + 1j * rng.standard_normal(1000)
    for smooth in (1, 2, 63, 64):
        np.testing.assert_allclose(smoothed_power(x, smooth),
                                   np.convolve(np.abs(x) ** 2, np.ones(smooth) / smooth, mode="same"), rtol=1e-9)


def test_a_long_burst_is_framed_from_the_stretches_its_frames_need():
    from diffwireless.frontend import burst_frames

    rng = np.random.default_rng(8)
    x = qpsk(2_000_000, 40, rng) * np.exp(2j * np.pi * 0.13 * np.arange(2_000_000))  # a narrow carrier, 2 M samples
    frames = burst_frames(x, 1024, 4, share=0.5)
    assert frames.shape == (4, 1024) and np.all(np.abs(frames) > 0).mean() > 0.99  # no padding, no filter edge
    for f in frames:
        assert occupied_bandwidth(f) == pytest.approx(0.5, rel=0.3) and abs(carrier_offset(f)) < 0.03


def ofdm_packets(n_fft: int, cp_len: int, symbols: int, rng) -> np.ndarray:
    """Back-to-back OFDM symbols (QPSK on 3/4 of the carriers) with a cyclic prefix."""
    used = np.r_[1:3 * n_fft // 8 + 1, n_fft - 3 * n_fft // 8:n_fft]
    grid = np.zeros((symbols, n_fft), complex)
    grid[:, used] = (rng.choice([-1, 1], (symbols, len(used))) + 1j * rng.choice([-1, 1], (symbols, len(used))))
    body = np.fft.ifft(grid, axis=1)
    return np.concatenate([body[:, -cp_len:], body], axis=1).ravel()


def noisy(x: np.ndarray, snr_db: float, rng) -> np.ndarray:
    x = x / np.sqrt(np.mean(np.abs(x) ** 2))
    s = np.sqrt(10 ** (-snr_db / 10) / 2)
    return (x + s * (rng.standard_normal(len(x)) + 1j * rng.standard_normal(len(x)))).astype(np.complex64)


def test_a_cyclic_prefix_is_found_at_its_size_and_single_carrier_bursts_show_none():
    from diffwireless.frontend import CP_CONTRAST, cyclic_prefix_contrast

    rng = np.random.default_rng(4)
    for n_fft, cp_len in ((64, 16), (256, 64)):
        contrast, got_fft, got_cp = cyclic_prefix_contrast(noisy(ofdm_packets(n_fft, cp_len, 60, rng), 5.0, rng))
        assert (got_fft, got_cp) == (n_fft, cp_len) and contrast > CP_CONTRAST
    # Single carrier at a symbol period that is an OFDM period of the scan (80 = 64 + 16 samples per symbol) and
    # at 8 samples per symbol: cyclostationary, but at every lag alike.
    for sps in (80, 8):
        assert cyclic_prefix_contrast(noisy(qpsk(20000 // sps, sps, rng), 20.0, rng))[0] < CP_CONTRAST / 2
    noise = (rng.standard_normal(30000) + 1j * rng.standard_normal(30000)).astype(np.complex64)
    assert cyclic_prefix_contrast(noise)[0] < CP_CONTRAST / 2
    assert cyclic_prefix_contrast(np.zeros(100, np.complex64)) == (0.0, 0, 0)  # too short for any size
    # With the decision's floor: the same decision for less work.
    ofdm = noisy(ofdm_packets(64, 16, 60, rng), 5.0, rng)
    assert cyclic_prefix_contrast(ofdm, CP_CONTRAST)[0] >= CP_CONTRAST
    assert cyclic_prefix_contrast(noise, CP_CONTRAST)[0] < CP_CONTRAST
    # A size tried first (a stream's earlier bursts) finds the same, and right or wrong leaves the decision alone.
    big = noisy(ofdm_packets(256, 64, 60, rng), 5.0, rng)
    for first in (256, 64, 0):
        contrast, got_fft, got_cp = cyclic_prefix_contrast(big, CP_CONTRAST, first)
        assert contrast >= CP_CONTRAST and (got_fft, got_cp) == (256, 64)
        assert cyclic_prefix_contrast(noise, CP_CONTRAST, first)[0] < CP_CONTRAST


def test_the_stream_front_end_tries_the_size_of_its_last_cyclic_prefix_first(monkeypatch):
    import diffwireless.frontend as fe

    rng = np.random.default_rng(5)
    tried = []
    measure = fe.cyclic_prefix_contrast
    monkeypatch.setattr(fe, "cyclic_prefix_contrast", lambda x, floor=0.0, first_fft=0: (
        tried.append(first_fft), measure(x, floor, first_fft))[1])
    stream = fe.StreamFrontEnd(1024)
    quiet = np.zeros(8192, np.complex64)
    for _ in range(3):  # a packet in the middle of each stretch
        stretch = noisy(np.concatenate([quiet, ofdm_packets(256, 64, 60, rng), quiet]), 20.0, rng)
        seg = stream.segment(stretch)
        assert len(seg.bursts) == 1 and seg.cyclic_prefix[0] >= fe.CP_CONTRAST
    assert tried == [0, 256, 256]


def test_a_burst_that_runs_on_into_the_next_stretch_is_tested_once(monkeypatch):
    import diffwireless.frontend as fe

    rng = np.random.default_rng(6)
    calls = []
    measure = fe.cyclic_prefix_contrast
    monkeypatch.setattr(fe, "cyclic_prefix_contrast", lambda *a, **k: (calls.append(1), measure(*a, **k))[1])
    stream = fe.StreamFrontEnd(1024, gate=False)
    ofdm = noisy(ofdm_packets(256, 64, 180, rng), 20.0, rng)
    for part in np.array_split(ofdm, 3):
        assert stream.segment(part).cyclic_prefix[0] >= fe.CP_CONTRAST
    assert len(calls) == 1
    # Gated: a burst that ends inside its stretch leaves the next stretch's first burst to its own test; one that
    # runs to the end passes its contrast on.
    calls.clear()
    gated = fe.StreamFrontEnd(1024)
    quiet, packet = np.zeros(8192, complex), ofdm_packets(256, 64, 60, rng)
    steps = (((quiet, packet, quiet), 1), ((packet, quiet), 2), ((quiet, packet), 3), ((packet, quiet), 3))
    for parts, tested in steps:
        seg = gated.segment(noisy(np.concatenate(parts), 20.0, rng))
        assert len(seg.bursts) == 1 and seg.cyclic_prefix[0] >= fe.CP_CONTRAST and len(calls) == tested


def ook_telegram(pulses: int, rng, on: int = 60, gap: tuple[int, int] = (40, 160)) -> np.ndarray:
    """A carrier keyed on for ``on`` samples and off for a random gap, ``pulses`` times (unit carrier power)."""
    parts = []
    for _ in range(pulses):
        parts += [np.ones(on, np.complex64), np.zeros(int(rng.integers(*gap)), np.complex64)]
    return np.concatenate(parts) * np.exp(2j * np.pi * 0.01 * np.arange(sum(len(p) for p in parts)))


def test_a_keyed_carrier_is_off_at_the_noise_for_its_gaps_and_other_bursts_never_are():
    from diffwireless.frontend import KEYED_SHARE, keyed_share

    rng = np.random.default_rng(8)
    noise_var = 10 ** (-25 / 10)  # 25 dB under the carrier
    s = np.sqrt(noise_var / 2)

    def with_noise(x):
        return (x + s * (rng.standard_normal(len(x)) + 1j * rng.standard_normal(len(x)))).astype(np.complex64)

    telegram = ook_telegram(20, rng)
    share = keyed_share(with_noise(telegram), noise_var)
    assert KEYED_SHARE <= share <= np.mean(np.abs(telegram) == 0) + 0.05  # no more than its gaps
    # Two gaps are not keying; nor is a constant envelope, a QPSK burst or noise.
    assert keyed_share(with_noise(ook_telegram(3, rng)[:-40]), noise_var) == 0.0
    assert keyed_share(with_noise(np.ones(4000, np.complex64)), noise_var) < 0.01
    q = qpsk(600, 8, rng)
    assert keyed_share(with_noise(q / np.sqrt(np.mean(np.abs(q) ** 2))), noise_var) < KEYED_SHARE / 4
    assert keyed_share(with_noise(np.zeros(4000, np.complex64)), noise_var) == 0.0
    # Under 16 dB the noise hides the gaps: not measured.
    assert keyed_share(with_noise(telegram * 10 ** (-12 / 20)), noise_var) == 0.0
    assert keyed_share(telegram[:10], noise_var) == keyed_share(telegram, 0.0) == 0.0
