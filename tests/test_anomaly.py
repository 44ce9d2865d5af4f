"""Spectrum anomaly detection (core, no GNU Radio): scenes, features, baselines, calibration, events, the model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffwireless import spectrum_scenes as scenes
from diffwireless.anomaly import (AnomalyDetector, EventTracker, calibrate, detection_rate, energy_score,
                                  log_spectrogram, roc_auc, spectral_kurtosis_score, threshold_for)
from diffwireless.engine import DenoiseEngine
from diffwireless.errors import ModelError
from conftest import SHARED_CAPTURES


@pytest.fixture(scope="module")
def engine():
    e = DenoiseEngine("cpu", seed=3).start()
    yield e
    e.stop()


def test_scenes_are_seeded_and_anomalies_have_unit_power_while_on():
    a = scenes.normal_windows(8, np.random.default_rng(5))
    b = scenes.normal_windows(8, np.random.default_rng(5))
    assert a.shape == (8, scenes.DEFAULT_WINDOW) and a.dtype == np.complex64
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(1)
    for kind in scenes.ANOMALIES:
        x = scenes.anomaly_signal(kind, 200, rng)
        on = np.abs(x) > 0
        assert abs(np.sum(np.abs(x) ** 2) / on.sum() - 1) < 0.05, kind
    with pytest.raises(ValueError, match="unknown anomaly"):
        scenes.anomaly_signal("alien", 1, rng)


def test_jnr_sets_the_added_power():
    rng = np.random.default_rng(2)
    # A jammer 30 dB over the noise dominates the window: its power sets the window power (within the spread of
    # the normal traffic, at most a few percent of 1000).
    x = scenes.anomalous_windows("noise", 50, 30.0, rng)
    normal = scenes.normal_windows(50, np.random.default_rng(2))
    extra = np.mean(np.abs(x) ** 2) - np.mean(np.abs(normal) ** 2)
    assert 900 < extra < 1100, extra


def test_log_spectrogram_of_reference_noise_has_unit_mean_cell_power():
    rng = np.random.default_rng(0)
    x = scenes.awgn(400, 1024, rng) * np.sqrt(4.0)
    f = log_spectrogram(x, 32, ref_power=4.0)
    assert f.shape == (400, 32, 32) and f.dtype == np.float32
    assert abs(np.mean(10.0 ** f) - 1.0) < 0.02
    with pytest.raises(ValueError, match="multiple"):
        log_spectrogram(x[:, :1000], 32)


def test_energy_and_spectral_kurtosis_baselines():
    rng = np.random.default_rng(4)
    noise = scenes.awgn(300, 1024, rng)
    assert abs(np.mean(energy_score(noise)) - 0.0) < 0.1  # dB over the unit reference
    # Noise on 10% of the frames: each bin's SK is about 1 / 0.1 = 10, far outside what stationary noise gives.
    pulses = noise * 3.0 * (np.arange(1024) % 320 < 32)[None, :]
    sk_noise, sk_pulse = spectral_kurtosis_score(noise, 32), spectral_kurtosis_score(pulses + noise * 0.1, 32)
    assert np.median(sk_pulse) > 5.0 > 3.0 > np.quantile(sk_noise, 0.99)


def test_roc_auc_is_the_pairwise_win_rate():
    rng = np.random.default_rng(9)
    neg = rng.integers(0, 20, 300).astype(float)
    pos = rng.integers(5, 25, 200).astype(float)
    brute = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    assert roc_auc(neg, pos) == pytest.approx(brute, abs=1e-12)
    pd, thr = detection_rate(np.arange(1000.0), np.array([950.0, 995.0, 2000.0]), 0.01)
    assert pd == pytest.approx(2 / 3) and 989 < thr < 990


def test_calibration_thresholds_hold_their_false_alarm_rate():
    scores = np.random.default_rng(3).standard_normal(100_000)
    table = calibrate(scores)
    for pfa in (0.1, 0.01, 0.001):
        assert np.mean(scores > threshold_for(table, pfa)) == pytest.approx(pfa, rel=0.1)
    assert threshold_for(table, 0.03) < threshold_for(table, 0.02)  # interpolated, monotone
    with pytest.raises(ValueError, match="pfa"):
        threshold_for(table, 1.5)
    with pytest.raises(ValueError, match="at least 10"):
        calibrate([1.0, np.nan])


def test_event_tracker_merges_short_dips_and_reports_bounds():
    tr = EventTracker(threshold=1.0, window=100, hold=2)
    onsets, closed = tr.update([0, 2, 3, 0, 5, 0, 0, 0], first_window=10)
    assert onsets == [11]
    assert len(closed) == 1 and (closed[0].start, closed[0].end, closed[0].peak) == (1100, 1500, 5.0)
    onsets, closed = tr.update([4], first_window=30)
    assert onsets == [30] and not closed
    ev = tr.flush()
    assert [(e.start, e.end) for e in ev] == [(3000, 3100)] and tr.flush() == []
    d = ev[0].as_dict("ae_ddpm", sample_rate=1000.0, time_ref=(0, 100.25))
    assert d["duration_s"] == pytest.approx(0.1) and d["rx_time"] == (103, pytest.approx(0.25))


def test_shipped_model_scores_through_the_engine_and_flags_strong_anomalies(engine):
    det = AnomalyDetector("anomaly_band")
    assert (det.window, det.n_fft, det.kurtosis_n_fft) == (1024, 128, 32)
    rng = np.random.default_rng(11)
    normal = scenes.normal_windows(400, rng)
    s_normal = det.scores(normal, engine)
    assert s_normal.shape == (400, 2) and np.isfinite(s_normal).all()
    # The calibrated threshold keeps roughly its false-alarm rate on fresh normal traffic.
    fa = np.mean(s_normal[:, 0] > det.threshold(0.05))
    assert fa < 0.12, fa
    # At 15 dB JNR every anomaly stands out (measured AUC 0.98-1.00).
    for kind in scenes.ANOMALIES:
        s_anom = det.scores(scenes.anomalous_windows(kind, 400, 15.0, rng), engine)
        assert roc_auc(s_normal[:, 0], s_anom[:, 0]) > 0.93, kind


def test_wrong_models_and_windows_are_refused():
    with pytest.raises(ModelError, match="not an anomaly model"):
        AnomalyDetector("detector_qpsk")
    det = AnomalyDetector("anomaly_band")
    with pytest.raises(ValueError, match="1024 samples"):
        det.features(np.zeros((2, 512), np.complex64))
    with pytest.raises(ModelError, match="no calibration"):
        det.threshold(0.01, "nonsense")


def test_dw_train_anomaly_on_a_recording(make_recording, tmp_path):
    from gnuradio.diffwireless.apps.train import main

    rng = np.random.default_rng(6)
    iq = (scenes.awgn(1, 1024 * 48, rng)[0] * 0.1).astype(np.complex64)
    meta = make_recording("band", iq, "cf32_le", sample_rate=1e6)
    assert main(["anomaly", "--normal", str(meta), "--out", str(tmp_path), "--name", "mine",
                 "--iterations", "30"]) == 0
    det = AnomalyDetector(tmp_path / "mine.safetensors")
    assert det.ref_power == pytest.approx(0.01, rel=0.1)
    assert det.model.card["training"]["train_windows"] == 36
    assert main(["anomaly", "--normal", str(meta), "--out", str(tmp_path), "--seconds", "0.001"]) == 2
    assert main(["anomaly", "--normal", str(tmp_path / "missing.sigmf-meta"), "--out", str(tmp_path)]) == 2


def test_dw_anomaly_finds_the_synthesized_bursts(tmp_path):
    from gnuradio.diffwireless.apps.anomaly import main

    assert main(["--iterations", "200", "--json", str(tmp_path / "a.json")]) == 0
    report = json.loads((tmp_path / "a.json").read_text())
    rec = report["recordings"][0]
    assert rec["synthetic"] and rec["samples"] == 150_000
    # Every window scored by both detectors (lossless replay), and the five bursts, 10-20 dB over the noise, found.
    assert rec["ae_ddpm"]["windows"] == rec["energy"]["windows"] == -(-150_000 // 256)
    assert rec["ae_ddpm"]["truth"]["detected"] == 5 and rec["energy"]["truth"]["detected"] == 5


def test_dw_anomaly_on_a_real_ism_recording(tmp_path):
    if not SHARED_CAPTURES.is_dir():
        pytest.skip("../shared/captures is absent")
    from gnuradio.diffwireless.apps.anomaly import main

    meta = SHARED_CAPTURES / "ism-433" / "danfoss_dfile001.sigmf-meta"
    assert main([str(meta), "--iterations", "200", "--json", str(tmp_path / "a.json")]) == 0
    rec = json.loads((tmp_path / "a.json").read_text())["recordings"][0]
    # The thermostat's FSK telegram sits at about 196-222 ms (its power is 17 dB over the background there).
    hits = [e for e in rec["ae_ddpm"]["events"] if e["start"] < 0.215 * 250e3 and e["end"] > 0.2 * 250e3]
    assert hits and max(e["peak"] for e in hits) > 3 * rec["ae_ddpm"]["threshold"]
    assert main([str(tmp_path / "missing.sigmf-meta")]) == 2


def test_supervised_reference_views_and_learns_an_easy_anomaly():
    from diffwireless.anomaly_reference import MultiResolutionCNN, evaluate_reference, train_reference, views

    iq = scenes.normal_windows(3, np.random.default_rng(0))
    short, mid, full = views(iq)
    assert short.shape == (3, 16, 64) and mid.shape == (3, 128, 8) and full.shape == (3, 1024)
    assert MultiResolutionCNN(4)(short, mid, full).shape == (3, 4)
    # A wideband noise jammer 10 dB over the noise floor: told what it is, even a short training must find it.
    net = train_reference(10.0, kinds=("noise",), n_per_type=100, steps=60, seed=1)
    auc = evaluate_reference(net, 10.0, kinds=("noise",), n_normal=200, n_anomalous=100, seed=2)
    assert set(auc) == {"noise"} and auc["noise"] > 0.9
    with pytest.raises(ValueError, match="n_per_type"):
        train_reference(0.0, n_per_type=0)


def test_dw_anomaly_says_which_detector_earns_its_place_on_the_synthesized_recording():
    from gnuradio.diffwireless.apps.anomaly import verdict

    truth = [(10_000, 16_000), (40_000, 46_000)]
    res = {"samples": 100_000, "window": 256,
           "ae_ddpm": {"truth": {"bursts": 2, "detected": 2, "false_events": 3}},
           "energy": {"truth": {"bursts": 2, "detected": 2, "false_events": 3}}}
    text = verdict(res, truth, 0.01)
    quiet = -(-100_000 // 256) - 2 * (-(-6_000 // 256) + 1)
    assert text.startswith("AE-DDPM does not earn its place") and f"over {quiet} quiet windows" in text
    assert f"expects {0.01 * quiet:.1f}" in text and "3 and 3 false events" in text
    res["ae_ddpm"]["truth"]["false_events"] = 1
    assert verdict(res, truth, 0.01).startswith("AE-DDPM earns its place here")
    res["energy"]["truth"]["detected"] = 1
    res["ae_ddpm"]["truth"]["false_events"] = 9
    assert verdict(res, truth, 0.01).startswith("AE-DDPM earns its place here")  # more bursts found


def test_a_spoof_run_whose_windows_all_draw_one_rate_is_made():
    from diffwireless import spectrum_scenes as scenes

    for seed in range(40):  # some of these draw a single rate for both windows
        x = scenes.anomalous_windows("spoof", 2, 10.0, np.random.default_rng(seed))
        assert x.shape == (2, 1024) and np.isfinite(x).all()
