"""Frame equalization for GNU Radio's OFDM chain (core maths, no GNU Radio; GNU Radio's default layout by value)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffwireless.diffusion.schedule import NoiseSchedule
from diffwireless.errors import ModelError
from diffwireless.models import build_model
from diffwireless.ofdm_equalizer import FrameEqualizer, OFDMLayout, apply_carrier_offset, noise_var_from_nulls

OCCUPIED = (tuple(range(-26, -21)) + tuple(range(-20, -7)) + tuple(range(-6, 0)) + tuple(range(1, 7))
            + tuple(range(8, 21)) + tuple(range(22, 27)),)
PILOTS = ((-21, -7, 7, 21),)
PILOT_SYMBOLS = ((1, 1, 1, -1), (-1, -1, -1, 1))
LAYOUT = OFDMLayout.make(64, OCCUPIED, PILOTS * 2, PILOT_SYMBOLS)


def prior(carriers=tuple(k for k in range(-26, 27) if k)):
    torch.manual_seed(0)
    m = build_model("tiny", "grid_mixer", {"item_shape": [2, len(carriers), 1], "channels": 4, "blocks": 1},
                    NoiseSchedule(1000))
    m.card = {"grid": {"carriers": list(carriers)}}
    return m


def test_layout_of_gnu_radio_defaults():
    assert len(LAYOUT.active_carriers) == 52 and 0 not in LAYOUT.active_carriers
    assert len(LAYOUT.null_bins) == 64 - 52 - 1 and 32 not in LAYOUT.null_bins
    occ, pil, val = LAYOUT.symbol_sets(1)
    assert pil == PILOTS[0] and val == PILOT_SYMBOLS[1]


def test_noise_variance_from_the_empty_carriers():
    rng = np.random.default_rng(1)
    frame = np.zeros((400, 64), dtype=np.complex128)
    frame[:, LAYOUT.index(LAYOUT.active_carriers)] = 10.0  # strong signal where carriers are used
    frame += np.sqrt(0.02 / 2) * (rng.standard_normal(frame.shape) + 1j * rng.standard_normal(frame.shape))
    assert abs(noise_var_from_nulls(frame, LAYOUT) / 0.02 - 1) < 0.05


def test_carrier_offset_shifts_bins_and_removes_the_cp_phase():
    frame = np.zeros((2, 64), dtype=np.complex128)
    frame[0, 10] = 1.0
    frame[1, 20] = 1.0
    out = apply_carrier_offset(frame, 2, 16)
    assert out[0, 8] == pytest.approx(np.exp(-2j * np.pi * 2 * 16 / 64))
    assert out[1, 18] == pytest.approx(np.exp(-2j * np.pi * 2 * 16 / 64 * 2))
    np.testing.assert_array_equal(apply_carrier_offset(frame, 0, 16), frame)


def test_equalizing_with_the_true_taps_returns_the_sent_symbols():
    rng = np.random.default_rng(2)
    n_sym = 6
    taps = np.zeros(64, dtype=np.complex128)
    bins = LAYOUT.index(LAYOUT.active_carriers)
    taps[bins] = rng.standard_normal(52) + 1j * rng.standard_normal(52)
    sent = np.zeros((n_sym, 64), dtype=np.complex128)
    for i in range(n_sym):
        occ, pil, val = LAYOUT.symbol_sets(i)
        sent[i, LAYOUT.index(occ)] = rng.choice([-1.0, 1.0], len(occ))
        sent[i, LAYOUT.index(pil)] = val
    eq = FrameEqualizer(prior(), LAYOUT, tracking=0.5, points=np.array([-1.0, 1.0]))
    out, used = eq.equalize(sent * taps, taps)
    np.testing.assert_allclose(out, sent, atol=1e-5)  # pilots agree, so the tracked gain stays 1
    np.testing.assert_allclose(used, np.broadcast_to(taps, used.shape), atol=1e-5)


def test_prepare_scales_to_unit_power_and_reads_the_snr():
    eq = FrameEqualizer(prior(), LAYOUT)
    taps = np.zeros(64, dtype=np.complex128)
    taps[eq.active_bins] = 3.0
    items, scale, snr_db = eq.prepare(taps, noise_var=0.09)
    assert items.shape == (1, 2, 52, 1)
    assert scale == pytest.approx(np.sqrt(9 - 0.09))
    assert snr_db == pytest.approx(10 * np.log10((9 - 0.09) / 0.09))
    np.testing.assert_allclose(eq.taps_from_result(items, scale)[eq.active_bins], 3.0)


def test_model_for_other_carriers_is_refused_with_what_it_needs():
    with pytest.raises(ModelError, match="retrain"):
        FrameEqualizer(prior(tuple(range(-26, 26))), LAYOUT)
    with pytest.raises(ModelError, match="one-symbol.*retrain"):
        FrameEqualizer(build_model("g", "grid_mixer", {"item_shape": [2, 52, 14], "channels": 4, "blocks": 1},
                                   NoiseSchedule(1000)), LAYOUT)


def _ls_of(h: np.ndarray, noise_var: float, rng: np.random.Generator) -> np.ndarray:
    ls = np.zeros(64, dtype=np.complex128)
    ls[LAYOUT.index(LAYOUT.active_carriers)] = h + np.sqrt(noise_var / 2) * (
        rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape))
    return ls


def test_robust_lmmse_taps_smooth_a_channel_within_the_cyclic_prefix():
    from diffwireless.ofdm_equalizer import robust_lmmse_taps

    rng = np.random.default_rng(5)
    k = np.asarray(LAYOUT.active_carriers)
    bins = LAYOUT.index(LAYOUT.active_carriers)
    errs_ls, errs_lmmse = [], []
    for _ in range(200):  # two paths inside the cyclic prefix (16 samples)
        d = rng.uniform(0, 12, 2)
        g = (rng.standard_normal(2) + 1j * rng.standard_normal(2)) / 2
        h = (g[None, :] * np.exp(-2j * np.pi * np.outer(k, d) / 64)).sum(axis=1)
        ls = _ls_of(h, 0.1, rng)
        errs_ls.append(np.mean(np.abs(ls[bins] - h) ** 2))
        errs_lmmse.append(np.mean(np.abs(robust_lmmse_taps(ls, 0.1, LAYOUT, 16)[bins] - h) ** 2))
    # 52 carriers over a 16-of-64 delay span: about a quarter of the noise survives the smoother
    assert np.mean(errs_lmmse) < 0.5 * np.mean(errs_ls)


def test_an_estimate_that_misses_the_channel_falls_back_and_one_that_fits_does_not():
    rng = np.random.default_rng(6)
    eq = FrameEqualizer(prior(), LAYOUT)
    bins = eq.active_bins
    k = np.asarray(LAYOUT.active_carriers)
    short = np.exp(-2j * np.pi * k * 3 / 64) * (0.8 + 0.6j)  # one path at 3 samples: a smoother's channel
    ls = _ls_of(short, 1e-3, rng)
    good = np.zeros(64, complex)
    good[bins] = short
    taps, which = eq.checked(good, ls, 1e-3)
    assert which == "diffusion" and taps is good
    # an estimate that is flat where the channel turns: the robust LMMSE fits the one-path channel
    flat = np.zeros(64, complex)
    flat[bins] = 0.8 + 0.6j
    taps, which = eq.checked(flat, ls, 1e-3)
    assert which == "lmmse_robust" and np.mean(np.abs(taps[bins] - short) ** 2) < 1e-3
    # a path far beyond the cyclic prefix at high SNR: no smoother fits, the LS taps are used
    long = short + 0.7 * np.exp(-2j * np.pi * k * 28 / 64)
    ls = _ls_of(long, 1e-3, rng)
    taps, which = eq.checked(flat, ls, 1e-3)
    assert which == "ls" and np.array_equal(taps[bins], ls[bins])
    # with the check off the estimate is kept whatever it is
    assert FrameEqualizer(prior(), LAYOUT, fallback=False).checked(flat, ls, 1e-3)[1] == "diffusion"
