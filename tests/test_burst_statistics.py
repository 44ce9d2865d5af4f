"""Signal statistics of bursts (the open-set check beside the network): what each statistic measures on signals
whose value is known, their mean per burst, and the distance to the nearest known burst of a class."""

from __future__ import annotations

import numpy as np
import pytest

from diffwireless.burst_statistics import STATISTICS, StatisticsBank, frame_statistics, group_statistics

L = 1024


def psk(order: int, n: int, rng: np.random.Generator, sps: int = 1) -> np.ndarray:
    symbols = np.exp(2j * np.pi * (rng.integers(0, order, (n, L // sps)) / order + 1 / (2 * order)))
    return np.repeat(symbols, sps, axis=1).astype(np.complex64)


def column(name: str) -> int:
    return STATISTICS.index(name)


def test_power_lines_tell_the_psk_order():
    rng = np.random.default_rng(0)
    lines = {m: frame_statistics(psk(m, 8, rng)).mean(axis=0) for m in (2, 4, 8)}
    # ln(1) = 0: every sample's n-th power the same for n a multiple of the order; far below for the others.
    for m, stats in lines.items():
        for n in (2, 4, 8):
            value = stats[column(f"power_line_{n}")]
            if n % m == 0:
                assert value == pytest.approx(0.0, abs=1e-6)
            else:
                assert value < np.log(0.2)


def test_envelope_and_instantaneous_frequency_kurtosis_tell_fsk_from_fm_of_noise():
    rng = np.random.default_rng(1)
    # As many ones as zeros in each frame: a two-level distribution of equal weights has kurtosis 1.
    bits = np.repeat(rng.permuted(np.tile([1, -1], (8, L // 32)), axis=1), 16, axis=1)
    fsk = np.exp(1j * np.cumsum(0.3 * bits, axis=1))
    fm = np.exp(1j * np.cumsum(0.3 * rng.standard_normal((8, L)), axis=1))
    noise = rng.standard_normal((8, L)) + 1j * rng.standard_normal((8, L))
    s_fsk, s_fm, s_noise = (frame_statistics(x).mean(axis=0) for x in (fsk, fm, noise))
    k = column("if_kurtosis_1")
    assert s_fsk[k] == pytest.approx(0.0, abs=1e-3)  # two levels: kurtosis 1
    assert s_fm[k] == pytest.approx(np.log(3.0), abs=0.15)  # Gaussian: kurtosis 3
    e = column("envelope_kurtosis")
    assert s_fsk[e] == pytest.approx(0.0, abs=1e-6) and s_noise[e] == pytest.approx(np.log(2.0), abs=0.05)


def test_group_statistics_average_each_bursts_frames_and_refuse_bad_input():
    rng = np.random.default_rng(2)
    x = np.concatenate([psk(4, 3, rng, 4), psk(2, 2, rng, 4)])
    group = np.array([0, 0, 0, 5, 5])
    per_frame = frame_statistics(x)
    out = group_statistics(x, group)
    assert out.shape == (2, len(STATISTICS))
    np.testing.assert_allclose(out, [per_frame[:3].mean(axis=0), per_frame[3:].mean(axis=0)])
    assert group_statistics(x[:0], group[:0]).shape == (0, len(STATISTICS))
    with pytest.raises(ValueError, match="complex"):
        frame_statistics(x.real)
    with pytest.raises(ValueError, match="complex"):
        frame_statistics(x[:, :32])
    bad = x.copy()
    bad[1, 7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        frame_statistics(bad)
    with pytest.raises(ValueError, match="ascending"):
        group_statistics(x, group[::-1])


def test_bank_distance_is_to_the_nearest_known_burst_of_the_class_decided():
    rng = np.random.default_rng(3)
    values = rng.standard_normal((40, 3))
    classes = np.repeat([0, 1], 20)
    bank = StatisticsBank.fit(values, classes)
    np.testing.assert_allclose(bank.mean, values.mean(axis=0))
    query = rng.standard_normal((6, 3))
    decided = np.array([0, 1, 0, 1, 1, 2])
    out = bank.distance(query, decided)
    z, zb = (query - bank.mean) / bank.scale, (values - bank.mean) / bank.scale
    for q, c, d in zip(z, decided, out):
        mine = zb[classes == c]
        assert d == (np.inf if not len(mine) else pytest.approx(np.sqrt(((mine - q) ** 2).sum(axis=1)).min()))
    assert bank.distance(values[:1], np.array([0]))[0] == pytest.approx(0.0, abs=1e-6)  # a known burst itself
    with pytest.raises(ValueError, match="bank"):
        StatisticsBank(values, classes[:5], bank.mean, bank.scale)
    with pytest.raises(ValueError, match="finite"):
        StatisticsBank(values, classes, bank.mean, np.zeros(3))
