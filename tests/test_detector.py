"""The diffusion symbol detector and its baselines (core, no GNU Radio): BER properties on simulated links."""

from __future__ import annotations

import numpy as np
import pytest

from diffwireless.bench.results import wilson_interval
from diffwireless.channel import DEFAULT_PROFILE, IDEAL, HardwareProfile, Impairments, add_noise, simulate
from diffwireless.constellations import exact_awgn_ber, get_constellation
from diffwireless.detector import DiffusionDetector, DNNDetector, euclidean, genie_bits, genie_ml
from diffwireless.diffusion.samplers import DDIMSampler, DDPMSampler
from diffwireless.engine import DenoiseEngine
from diffwireless.errors import ModelError


@pytest.fixture(scope="module")
def engine():
    e = DenoiseEngine("cpu").start()
    yield e
    e.stop()


def bit_errors(c, decided, sent) -> tuple[int, int]:
    a, b = c.indices_to_bits(decided), c.indices_to_bits(sent)
    return int(np.count_nonzero(a != b)), a.size


def test_impaired_16qam_diffusion_beats_euclidean_and_stays_near_genie(engine):
    c, imp = get_constellation("16qam"), DEFAULT_PROFILE.nominal
    run = simulate(c.points, 60_000, 17.0, imp, np.random.default_rng(21))
    det = DiffusionDetector("detector_16qam", num_steps=4)
    e_diff, n = bit_errors(c, det.detect(run.received, 17.0, engine).indices, run.indices)
    e_euc, _ = bit_errors(c, euclidean(c, run.received), run.indices)
    e_gen, _ = bit_errors(c, genie_ml(c, run.received, imp, 17.0), run.indices)
    # The Euclidean decision suffers the impairment; the detector learned it (upper bound of one interval below
    # 0.7 times the lower bound of the other).
    assert wilson_interval(e_diff, n)[1] < 0.7 * wilson_interval(e_euc, n)[0], (e_diff, e_euc)
    assert e_gen <= e_euc
    assert e_diff <= 2.0 * e_gen + 20, (e_diff, e_gen)


def test_awgn_16qam_diffusion_is_within_the_interval_of_the_exact_ber(engine):
    c = get_constellation("16qam")
    det = DiffusionDetector("detector_16qam_awgn", num_steps=4)
    for snr in (6.0, 12.0):
        run = simulate(c.points, 50_000, snr, IDEAL, np.random.default_rng(int(snr)))
        e, n = bit_errors(c, det.detect(run.received, snr, engine).indices, run.indices)
        lo, hi = wilson_interval(e, n, z=3.29)
        assert lo <= exact_awgn_ber(c, snr) <= hi, (snr, e / n, exact_awgn_ber(c, snr))


def test_genie_ml_on_an_ideal_gaussian_link_is_the_minimum_distance_rule():
    c = get_constellation("64qam")
    rng = np.random.default_rng(3)
    y = c.modulate(rng.integers(0, 64, 5000)) + add_noise(5000, 15.0, rng)
    np.testing.assert_array_equal(genie_ml(c, y, IDEAL, 15.0), euclidean(c, y))


def test_bitwise_map_has_the_lowest_ber_at_low_snr():
    c = get_constellation("16qam")
    run = simulate(c.points, 100_000, 0.0, IDEAL, np.random.default_rng(6))
    sent = c.indices_to_bits(run.indices)
    e_bits = int(np.count_nonzero(genie_bits(c, run.received, IDEAL, 0.0) != sent))
    e_sym = int(np.count_nonzero(c.indices_to_bits(genie_ml(c, run.received, IDEAL, 0.0)) != sent))
    assert e_bits < e_sym  # at 0 dB the symbol ML rule is not BER-optimal (about 1% more bit errors here)
    lo, hi = wilson_interval(e_sym, sent.size, z=3.29)
    assert lo <= exact_awgn_ber(c, 0.0) <= hi


@pytest.mark.parametrize("noise", ["laplacian", "impulsive"])
def test_genie_ml_uses_the_true_noise_law(noise):
    c, imp = get_constellation("16qam"), DEFAULT_PROFILE.nominal
    run = simulate(c.points, 40_000, 14.0, imp, np.random.default_rng(4), noise)
    e_true, _ = bit_errors(c, genie_ml(c, run.received, imp, 14.0, noise), run.indices)
    e_gauss, _ = bit_errors(c, genie_ml(c, run.received, imp, 14.0, "gaussian"), run.indices)
    assert e_true <= e_gauss * 1.05 + 5


def test_outputs_are_consistent(engine):
    c = get_constellation("16qam")
    det = DiffusionDetector("detector_16qam", num_steps=2)
    run = simulate(c.points, 3000, 12.0, DEFAULT_PROFILE.nominal, np.random.default_rng(5))
    out = det.detect(run.received, 12.0, engine)
    assert out.denoised.dtype == np.complex64 and out.denoised.shape == (3000,)
    np.testing.assert_array_equal(out.indices, c.nearest(out.denoised))
    np.testing.assert_array_equal(out.bits, c.indices_to_bits(out.indices))
    assert out.llrs.shape == (3000, 4)
    np.testing.assert_array_equal((out.llrs > 0).astype(np.uint8).ravel(), out.bits)
    assert out.nfe == det.nfe(12.0) == 2
    # LLRs grow more confident with SNR (the card's residual variance falls).
    assert det.residual_var(20.0) < det.residual_var(10.0) < det.residual_var(0.0)
    dnn = DNNDetector("detector_16qam_dnn").detect(run.received, 12.0, engine)
    # The DNN's bits come from its most likely point, its LLRs from the bit marginals: they rarely disagree.
    assert np.mean((dnn.llrs > 0).astype(np.uint8).ravel() == dnn.bits) > 0.99


def test_auto_steps_recover_the_low_snr_loss_of_one_step(engine):
    c = get_constellation("64qam")
    auto, one = DiffusionDetector("detector_64qam_awgn"), DiffusionDetector("detector_64qam_awgn", num_steps=1)
    assert auto.nfe(0.0) == 2 and auto.nfe(15.0) == 1
    start = auto.start_step(0.0)  # trailing spacing: the second call is half way, none is spent at step 0
    assert list(auto.sampler(0.0).timesteps(auto.model.schedule)) == [start, round(start / 2)]
    run = simulate(c.points, 40_000, 0.0, IDEAL, np.random.default_rng(8))
    sent = c.indices_to_bits(run.indices)
    e_auto = int(np.count_nonzero(auto.detect(run.received, 0.0, engine).bits != sent))
    e_one = int(np.count_nonzero(one.detect(run.received, 0.0, engine).bits != sent))
    e_map = int(np.count_nonzero(genie_bits(c, run.received, IDEAL, 0.0) != sent))
    assert e_auto < e_one  # the shrunk one-step estimate loses about 3% at 0 dB (README)
    assert e_map <= e_auto <= 1.02 * e_map


def test_samplers_follow_the_snr_matched_start():
    det = DiffusionDetector("detector_16qam", num_steps=4)
    low, high = det.start_step(-5.0), det.start_step(20.0)
    assert low > high > 0
    assert isinstance(det.sampler(10.0), DDIMSampler) and det.nfe(10.0) <= 4
    full = DiffusionDetector("detector_16qam", sampler="ddpm")
    assert isinstance(full.sampler(10.0), DDPMSampler) and full.nfe(10.0) == full.start_step(10.0) + 1


def test_bad_models_and_arguments_are_refused():
    with pytest.raises(ModelError, match="not a symbol-detector"):
        DiffusionDetector("iq_denoiser_qpsk_sps4")
    with pytest.raises(ModelError, match="not a symbol classifier"):
        DNNDetector("detector_16qam")
    with pytest.raises(ValueError, match="sampler must be one of"):
        DiffusionDetector("detector_16qam", sampler="euler")
    with pytest.raises(ValueError, match="finite"):
        DiffusionDetector("detector_16qam").start_step(float("nan"))
    with pytest.raises(ValueError, match="unknown constellation"):
        get_constellation("32apsk")
    from diffwireless.recipes.symbol_detector import remeasure

    with pytest.raises(ValueError, match="unknown model suffix '_x'"):
        remeasure("models", "qpsk", "_x")  # refused before anything is loaded or written


def test_profile_ranges_and_edges():
    p = HardwareProfile(Impairments(iq_magnitude_db=1.0, distortion3_beta=-0.04, adc_bits=6), spread=0.25)
    r = p.ranges()
    assert r["iq_magnitude_db"] == [0.75, 1.25] and r["distortion3_beta"] == pytest.approx([-0.05, -0.03])
    assert r["adc_bits"] == [5, 7]
    strong = p.edge(+1)
    assert strong.iq_magnitude_db == 1.25 and strong.distortion3_beta == pytest.approx(-0.05)
    assert strong.adc_bits == 5


def test_training_writes_a_loadable_pair_with_cards(tmp_path):
    from diffwireless.models import load_model
    from diffwireless.recipes import symbol_detector

    diff, dnn = symbol_detector.train(tmp_path, "qpsk", iterations=30, eval_symbols=2000)
    a, b = load_model(tmp_path / "detector_qpsk"), load_model(tmp_path / "detector_qpsk_dnn")
    assert a.card["constellation"] == b.card["constellation"] == "qpsk"
    assert abs(a.num_parameters - b.num_parameters) / a.num_parameters < 0.02  # same size, by construction
    assert len(a.card["residual_var"]["var"]) == len(a.card["residual_var"]["snr_db"])
    assert {r["method"] for r in a.card["evaluation"]["rows"]} >= {"diffusion", "dnn", "euclidean", "genie_ml"}
