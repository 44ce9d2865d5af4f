"""The classifier's front end on captures: bursts of GNU Radio's modulators, resampled by 3/2 and offset in
frequency (not as the network was trained), are found and decided; dw-classify reports them per recording."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import signal as sps_signal

from diffwireless.classifier import FAMILIES, ModulationClassifier, classify_capture, majority_family
from diffwireless.engine import acquire_engine, release_engine

from gnuradio.diffwireless.apps import classify as dw_classify
from gnuradio.diffwireless.recipes.modulation_sources import synthesize

LABELS = ("qpsk", "ofdm", "gfsk", "ook")


@pytest.fixture(scope="module")
def capture():
    rng = np.random.default_rng(0)
    ds = synthesize(4, (20.0,), seed=5, classes=LABELS)
    x = 0.01 * (rng.standard_normal(120_000) + 1j * rng.standard_normal(120_000))
    truth, pos = [], 5000
    for label in LABELS:
        burst = sps_signal.resample_poly(np.concatenate(ds.frames[ds.labels == label]), 3, 2)
        x[pos:pos + len(burst)] += burst * np.exp(2j * np.pi * 0.07 * np.arange(len(burst)))
        truth.append((pos, pos + len(burst), label))
        pos += len(burst) + 20_000
    return x.astype(np.complex64), truth


def test_bursts_are_found_and_decided_through_the_front_end(capture):
    x, truth = capture
    engine = acquire_engine("cpu", holder="test_classify")
    try:
        decisions = classify_capture(x, ModulationClassifier("modclass_resnet"), engine)
    finally:
        release_engine(engine, "test_classify")
    assert len(decisions) == len(truth)
    for d, (start, end, label) in zip(decisions, truth):
        assert abs(d.start - start) < 100 and abs(d.end - end) < 100
        assert d.label == label and d.family == FAMILIES[label] and d.frames >= 2
    assert majority_family(decisions)[1] == 0.25 and majority_family([]) == ("none", 0.0)


def test_dw_classify_reports_each_recording(capture, make_recording, tmp_path, capsys):
    meta = make_recording("four", capture[0], sample_rate=1e6)
    out = tmp_path / "c.json"
    assert dw_classify.main([str(meta), "--model", "modclass_resnet", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())["recordings"][0]
    assert rec["recording"] == "four" and [b["label"] for b in rec["bursts"]] == list(LABELS)
    assert "4 bursts" in capsys.readouterr().out
    assert dw_classify.main([str(tmp_path / "missing.sigmf-meta")]) == 2
    # a novelty threshold for a model without a novelty score: one clear error
    assert dw_classify.main([str(meta), "--model", "modclass_resnet", "--novelty-threshold", "5"]) == 2


def test_radio_model_decides_fitted_bursts_and_a_capture_that_is_all_signal():
    from gnuradio.diffwireless.recipes.radio_sources import clean_burst

    rng = np.random.default_rng(8)
    clf = ModulationClassifier("modclass_radio")
    assert clf.band_share == 0.5 and clf.novelty_threshold is not None and "2fsk" in clf.classes
    packet = clean_burst("ofdm", 1024, rng)  # one packet, no quiet stretch: the time gate has no floor
    x = packet + 0.01 * (rng.standard_normal(len(packet)) + 1j * rng.standard_normal(len(packet)))
    engine = acquire_engine("cpu", holder="test_classify")
    try:
        decisions = classify_capture(x.astype(np.complex64), clf, engine)
    finally:
        release_engine(engine, "test_classify")
    assert len(decisions) == 1
    d = decisions[0]
    assert d.end - d.start > 0.9 * len(x) and d.share == 0.5 and np.isfinite(d.novelty)
    assert d.family in ("OFDM", "unknown")  # never a confident wrong family on a clean packet


def known_statistics(clf: ModulationClassifier, *labels: str) -> np.ndarray:
    """Signal statistics ``[len(labels), d]`` of a known burst of each class from the model's own bank (so that
    the statistics add nothing to a burst's novelty)."""
    bank = clf.burst_novelty.bank
    return np.array([bank.values[bank.classes == clf.classes.index(label)][0] for label in labels])


def test_decisions_per_burst_pool_the_frames_of_each_burst():
    from diffwireless.classifier import decide_frames, decide_groups

    clf = ModulationClassifier("modclass_radio")
    n = len(clf.classes)
    logits = np.full((5, n + 1), -5.0)
    logits[:, -1] = 0.0  # novelty under any threshold
    logits[0, 0] = logits[1, 0] = 5.0  # burst 0: two frames of class 0
    logits[2, 1], logits[3, 2], logits[4, 2] = 5.0, 5.0, 4.0  # burst 1: one frame of class 1, two of class 2
    statistics = known_statistics(clf, clf.classes[0], clf.classes[2])
    out = decide_groups(logits, clf, np.array([0, 0, 3, 3, 3]), statistics=statistics)
    assert [d[3] for d in out] == [clf.classes[0], clf.classes[2]]  # the mean softmax, not the first frame
    assert out[1] == decide_frames(logits[2:], clf, statistics=statistics[1])
    with pytest.raises(ValueError, match="statistics"):  # this model decides bursts by their statistics too
        decide_groups(logits, clf, np.array([0, 0, 3, 3, 3]))
    with pytest.raises(ValueError, match="each of the 2 groups"):
        decide_groups(logits, clf, np.array([0, 0, 3, 3, 3]), statistics=statistics[:1])
    assert decide_groups(logits[:0], clf, np.zeros(0, np.int64)) == []
    with pytest.raises(ValueError, match="ascending"):
        decide_groups(logits, clf, np.array([0, 1, 0, 1, 1]))


def test_a_cyclic_prefix_decides_ofdm_whatever_the_softmax_and_novelty_say():
    from diffwireless.classifier import decide_frames, decide_groups
    from diffwireless.frontend import CP_CONTRAST

    clf = ModulationClassifier("modclass_radio")
    logits = np.full((3, len(clf.classes) + 1), -5.0)
    logits[:, clf.classes.index("16qam")] = 5.0
    logits[:, -1] = 1e9  # novelty over any threshold: unknown by the network
    statistics = known_statistics(clf, "16qam", "16qam")
    assert decide_frames(logits, clf, statistics=statistics[0])[0] == "unknown"
    label, confidence, _, closest = decide_frames(logits, clf, CP_CONTRAST + 0.01, statistics=statistics[0])
    assert label == closest == "ofdm" and confidence == 1.0
    assert decide_frames(logits, clf, CP_CONTRAST - 0.01, statistics=statistics[0])[0] == "unknown"
    out = decide_groups(logits, clf, np.array([0, 0, 1]), np.array([0.2, 0.2, np.nan]), statistics=statistics)
    assert [d[0] for d in out] == ["ofdm", "unknown"]


def test_a_keyed_carrier_decides_ook_unless_a_cyclic_prefix_decides_ofdm():
    from diffwireless.classifier import decide_frames, decide_groups
    from diffwireless.frontend import CP_CONTRAST, KEYED_SHARE

    clf = ModulationClassifier("modclass_radio")
    logits = np.full((3, len(clf.classes) + 1), -5.0)
    logits[:, clf.classes.index("64qam")] = 5.0
    logits[:, -1] = -1e9  # known to the network: 64QAM
    statistics = known_statistics(clf, "64qam", "64qam")
    assert decide_frames(logits, clf, 0.0, KEYED_SHARE - 0.01, statistics[0])[0] == "64qam"
    label, confidence, _, closest = decide_frames(logits, clf, 0.0, KEYED_SHARE + 0.01, statistics[0])
    assert label == closest == "ook" and confidence == 1.0
    assert decide_frames(logits, clf, CP_CONTRAST + 0.01, 0.9, statistics[0])[0] == "ofdm"  # the cyclic prefix first
    out = decide_groups(logits, clf, np.array([0, 1, 1]), None, np.array([0.6, np.nan, np.nan]), statistics)
    assert [d[0] for d in out] == ["ook", "64qam"]


def test_the_softmax_weight_puts_both_novelty_terms_on_one_scale():
    from diffwireless.classifier import softmax

    from gnuradio.diffwireless.bench.classify import softmax_weight

    rng = np.random.default_rng(9)
    known = np.concatenate([rng.normal(0, 3, (4000, 4)), rng.gamma(2.0, 0.05, (4000, 1))], axis=1)
    weight = softmax_weight(known, 0.9)
    distance, doubt = known[:, -1], 1 - softmax(known[:, :-1]).max(axis=1)
    assert weight * np.quantile(doubt, 0.9) == pytest.approx(np.quantile(distance, 0.9))
    assert np.mean(weight * doubt <= np.quantile(distance, 0.9)) == pytest.approx(0.9, abs=0.002)
    sure = known.copy()
    sure[:, 0] = 1e3  # no doubt at all: no weight
    assert softmax_weight(sure, 0.9) == 0.0


def test_denoising_errors_are_those_of_each_condition_and_none():
    import torch

    from diffwireless.augmentation import diffusion_items
    from diffwireless.recipes.modulation_augmenter import SCHEDULE

    from gnuradio.diffwireless.bench.classify import denoising_errors

    rng = np.random.default_rng(10)
    frames = (rng.standard_normal((6, 64)) + 1j * rng.standard_normal((6, 64))).astype(np.complex64)
    x0 = torch.from_numpy(diffusion_items(frames))
    abar = torch.as_tensor(SCHEDULE.alphas_cumprod, dtype=torch.float32)

    def oracle_for_class_1(x_t, t, cond):  # the true noise given class 1, nothing otherwise
        a = abar[t].view(-1, 1, 1)
        eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        return torch.where(cond[:, 1].view(-1, 1, 1) > 0, eps, torch.zeros_like(eps))

    error = denoising_errors(oracle_for_class_1, frames, np.full(6, 10.0), 3, seed=0, batch=6)
    assert error.shape == (4, 6)
    np.testing.assert_allclose(error[1], 0.0, atol=1e-6)
    assert np.all(np.abs(error[[0, 2, 3]] - 1.0) < 0.3)  # the mean square of unit Gaussian noise
