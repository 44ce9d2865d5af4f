"""OFDM channel models and estimators (core, no GNU Radio): covariances, LS, LMMSE, the diffusion estimator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffwireless.chanest import (DiffusionChannelEstimator, GuidedDDIMSampler, Interpolator, lmmse,
                                  lmmse_nmse_db, nmse_db, observe, robust_covariance, robust_max_delay,
                                  snr_noise_var)
from diffwireless.diffusion.schedule import NoiseSchedule
from diffwireless.engine import DenoiseEngine, Job
from diffwireless.errors import ModelError
from diffwireless.fading import (TDL, ExpCorrelated, ExponentialPDP, OFDMGrid, SparseClustered, covariance_matrix,
                                 lattice_pilots)
from diffwireless.models import build_model

GRID = OFDMGrid()  # 52 carriers, 14 symbols


@pytest.fixture(scope="module")
def engine():
    e = DenoiseEngine("cpu").start()
    yield e
    e.stop()


@pytest.mark.parametrize("model", [TDL("A", 30e-9), TDL("C", 100e-9, 500.0), ExponentialPDP(50e-9),
                                   SparseClustered(covariance_draws=40_000)])
def test_models_have_unit_power_and_their_stated_covariance(model):
    rng = np.random.default_rng(1)
    h = model.sample(GRID, 6000, rng).reshape(6000, -1)
    assert abs(np.mean(np.abs(h) ** 2) - 1.0) < 0.05
    empirical = h.T @ h.conj() / len(h)
    stated = covariance_matrix(model, GRID)
    rel = np.linalg.norm(empirical - stated) / np.linalg.norm(stated)
    assert rel < 0.1, rel


def test_sparse_model_is_not_gaussian():
    # A complex Gaussian vector of covariance R has Var(|h|^2) = tr(R^2); the TDL channel obeys it, the sparse
    # clustered one (few specular paths) does not, which is what a nonlinear estimator can exploit and LMMSE cannot.
    grid = GRID.with_symbols(1)
    for model, gaussian in ((TDL("A", 30e-9), True), (SparseClustered(covariance_draws=40_000), False)):
        h = model.sample(grid, 20_000, np.random.default_rng(2))[:, :, 0]
        r_f, _ = model.covariance(grid)
        ratio = np.var(np.sum(np.abs(h) ** 2, axis=1)) / np.trace(r_f @ r_f).real
        assert (abs(ratio - 1) < 0.1) if gaussian else (ratio > 1.5), (model, ratio)


def test_closed_form_lmmse_of_the_sanity_case_matches_its_stated_numbers():
    grid = OFDMGrid(n_fft=64, carriers=tuple(range(-32, 32)), n_symbols=1)
    r, _ = ExpCorrelated(0.9).covariance(grid)
    mask = np.ones(grid.shape, dtype=bool)
    got = [lmmse_nmse_db(r, mask, float(snr_noise_var(s))) for s in (0.0, 10.0, 20.0)]
    np.testing.assert_allclose(got, [-6.53, -12.29, -20.37], atol=0.01)


def test_lmmse_error_matches_its_formula_and_beats_ls():
    rng = np.random.default_rng(3)
    model = TDL("A", 30e-9)
    mask = lattice_pilots(GRID, 3, 4)
    h = model.sample(GRID, 3000, rng)
    ls = observe(h, mask, 10.0, rng)
    cov = covariance_matrix(model, GRID)
    got = nmse_db(lmmse(ls, cov, mask, 0.1), h)
    assert abs(got - lmmse_nmse_db(cov, mask, 0.1)) < 0.15
    assert got < nmse_db(Interpolator(GRID, mask)(ls), h) - 3.0


def test_interpolator_is_exact_on_a_linear_channel_and_needs_a_lattice():
    mask = lattice_pilots(GRID, 4, 5)
    f = np.asarray(GRID.carriers, dtype=float)
    h = ((0.3 + 0.1j) * f[:, None] + 2.0 - 0.5j + 0.05 * np.arange(GRID.n_symbols)[None, :])[None]
    est = Interpolator(GRID, mask)(h[:, mask])
    np.testing.assert_allclose(est, h, atol=1e-9)
    bad = mask.copy()
    bad[1, 0] = True
    with pytest.raises(ValueError, match="lattice"):
        Interpolator(GRID, bad)


def test_robust_design_needs_the_pilot_spacing_it_is_given():
    mask = lattice_pilots(GRID, 6, 7)
    tau = robust_max_delay(GRID, mask)
    assert tau < GRID.cp_len / GRID.sample_rate_hz  # 6 carriers apart cannot resolve the whole cyclic prefix
    rng = np.random.default_rng(4)
    h = TDL("A", 30e-9).sample(GRID, 500, rng)
    ls = observe(h, mask, 20.0, rng)
    good = nmse_db(lmmse(ls, robust_covariance(GRID, 500.0, tau), mask, 0.01), h)
    assert good < nmse_db(Interpolator(GRID, mask)(ls), h)


def _tiny_prior(grid: OFDMGrid):
    torch.manual_seed(0)
    return build_model("tiny", "grid_mixer", {"item_shape": [2, *grid.shape], "channels": 4, "blocks": 1},
                       NoiseSchedule(1000))


def test_diffusion_estimator_shapes_steps_and_guidance(engine):
    model = _tiny_prior(GRID)
    mask = lattice_pilots(GRID, 3, 4)
    rng = np.random.default_rng(5)
    h = TDL("A", 30e-9).sample(GRID, 7, rng)
    ls = observe(h, mask, 10.0, rng)
    plain = DiffusionChannelEstimator(model, GRID, mask, num_steps=1)
    assert plain.estimate(ls, 10.0, engine).shape == (7, *GRID.shape)
    assert plain.nfe(10.0) == 1
    guided = DiffusionChannelEstimator(model, GRID, mask, num_steps=5, mode="guided")
    out = guided.estimate(ls, 10.0, engine)
    assert out.shape == (7, *GRID.shape) and np.isfinite(out).all()
    assert guided.nfe(10.0) == 5
    # The guided sampler's conditioning carries the pilots; the engine checks its width.
    job = guided.job(ls, 10.0)
    assert isinstance(job.sampler, GuidedDDIMSampler)
    with pytest.raises(ValueError, match="conditioning"):
        engine.submit(Job(model, job.x, job.sampler, job.cond[:, :-1]))


def test_estimator_refuses_a_model_of_another_grid():
    with pytest.raises(ModelError, match="not a channel-grid denoiser"):
        DiffusionChannelEstimator(_tiny_prior(GRID.with_symbols(1)), GRID, np.ones(GRID.shape, bool))


def test_shipped_sanity_prior_is_within_0_3_db_of_closed_form_lmmse(engine):
    """The sanity test: y = h + n, exponentially correlated Rayleigh (rho 0.9, N 64)."""
    grid = OFDMGrid(n_fft=64, carriers=tuple(range(-32, 32)), n_symbols=1)
    mask = np.ones(grid.shape, dtype=bool)
    r, _ = ExpCorrelated(0.9).covariance(grid)
    est = DiffusionChannelEstimator("chanest_expcorr", grid, mask)
    rng = np.random.default_rng(6)
    h = ExpCorrelated(0.9).sample(grid, 3000, rng)
    for snr in (0.0, 10.0, 20.0):
        got = nmse_db(est.estimate(observe(h, mask, snr, rng), snr, engine), h)
        exact = lmmse_nmse_db(r, mask, float(snr_noise_var(snr)))
        assert exact - 0.05 < got < exact + 0.3, (snr, got, exact)


def separable_covariance(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(R_f, R_t)`` of grids ``h [n, F, T]``: the carrier covariance averaged over symbols and the symbol
    correlation averaged over carriers (unit diagonal), so that ``R_f kron R_t`` is the separable covariance."""
    n, f, t = h.shape
    r_f = np.einsum("nft,ngt->fg", h, h.conj()) / (n * t)
    r_t = np.einsum("nft,nfs->ts", h, h.conj()) / (n * f)
    return r_f, r_t / np.real(np.mean(np.diag(r_t)))


def test_untrained_network_with_the_exact_linear_prior_is_the_genie_lmmse(engine, tmp_path):
    """With the channel's own covariance as its linear prior and the learned part at its zero start, one DDIM step
    from the matched step is the LMMSE estimate; the buffers survive a save and load."""
    from diffwireless.models import load_model, save_model

    schedule = NoiseSchedule(1000, "linear")
    channel = TDL("A", 30e-9, 100.0)
    model = build_model("lp", "grid_mixer", {"item_shape": [2, *GRID.shape], "channels": 4, "blocks": 1,
                                             "time_dim": 16, "linear_prior_steps": 1000}, schedule)
    model.network.set_linear_prior(*channel.covariance(GRID), schedule.alphas_cumprod)
    model.network.eval()
    save_model(model, tmp_path / "lp", {"description": "test"})
    model = load_model(tmp_path / "lp.safetensors")
    rng = np.random.default_rng(8)
    h = channel.sample(GRID, 100, rng)
    mask = np.ones(GRID.shape, bool)
    for snr in (0.0, 20.0):
        ls = observe(h, mask, snr, rng)
        genie = lmmse(ls, covariance_matrix(channel, GRID), mask, float(snr_noise_var(snr)))
        est = DiffusionChannelEstimator(model, GRID, mask).estimate(ls, snr, engine)
        assert abs(nmse_db(est, h) - nmse_db(genie, h)) < 0.05
    # The covariance measured from samples factors into the carrier and symbol parts.
    r_f, r_t = separable_covariance(channel.sample(GRID, 4000, rng))
    want_f, want_t = channel.covariance(GRID)
    assert np.abs(r_f - want_f).max() < 0.1 and np.abs(r_t - want_t).max() < 0.1


def test_a_linear_prior_is_applied_at_the_pilots_and_the_learned_part_added(engine):
    """With every element a pilot the split estimate is the network's one-step Tweedie estimate; on a pilot lattice
    its linear part is the LMMSE estimate from the pilots, which the interpolated grid only approximates."""
    from diffwireless.chanest import LearnedCorrectionSampler, grid_items, items_grid
    from diffwireless.diffusion.samplers import DDIMSampler

    schedule = NoiseSchedule(1000, "linear")
    channel = TDL("B", 60e-9, 200.0)
    model = build_model("lp", "grid_mixer", {"item_shape": [2, *GRID.shape], "channels": 4, "blocks": 1,
                                             "time_dim": 16, "linear_prior_steps": 1000}, schedule)
    model.network.set_linear_prior(*channel.covariance(GRID), schedule.alphas_cumprod)
    rng = np.random.default_rng(9)
    h = channel.sample(GRID, 60, rng)
    comb = lattice_pilots(GRID, 3, 4)
    ls = observe(h, comb, 10.0, rng)
    nv = float(snr_noise_var(10.0))
    est = DiffusionChannelEstimator(model, GRID, comb)
    assert est.split and isinstance(est.job(ls, 10.0).sampler, LearnedCorrectionSampler)
    genie = lmmse(ls, covariance_matrix(channel, GRID), comb, nv)
    np.testing.assert_allclose(est.estimate(ls, 10.0, engine), genie, atol=1e-6)  # learned part still zero
    whole = engine.submit(Job(model, grid_items(est.interp(ls)), DDIMSampler(num_steps=1,
                                                                               start_step=est.start_step(10.0))))
    assert nmse_db(genie, h) < nmse_db(items_grid(whole.result()), h) - 0.5
    # A learned part that is not zero: with every element a pilot, the split is the whole network's estimate.
    with torch.no_grad():
        model.network.out.weight.normal_(0.0, 0.3)
        model.network.out.bias.normal_(0.0, 0.3)
    full = np.ones(GRID.shape, bool)
    ls = observe(h, full, 10.0, rng)
    est = DiffusionChannelEstimator(model, GRID, full)
    whole = engine.submit(Job(model, grid_items(ls.reshape(-1, *GRID.shape)),
                              DDIMSampler(num_steps=1, start_step=est.start_step(10.0)))).result()
    split = est.estimate(ls, 10.0, engine)
    assert np.abs(split - est.linear_estimate(ls, 10.0)).max() > 1e-2
    np.testing.assert_allclose(split, items_grid(whole), atol=1e-3)
    assert not DiffusionChannelEstimator(model, GRID, full, num_steps=2).split


def test_checked_estimate_keeps_what_explains_the_pilots_and_replaces_what_does_not():
    from diffwireless.chanest import checked_estimate, pilot_residual_ratio

    rng = np.random.default_rng(8)
    mask = np.zeros((8, 4), dtype=bool)
    mask[::2, ::2] = True
    h = rng.standard_normal((50, 8, 4)) + 1j * rng.standard_normal((50, 8, 4))
    nv = 0.01
    ls = h[:, mask] + np.sqrt(nv / 2) * (rng.standard_normal((50, 8)) + 1j * rng.standard_normal((50, 8)))
    good = h.copy()
    bad = h.copy()
    bad[:25] = 0.0  # half the frames missed entirely: their pilots are far more than the noise away
    assert np.all(pilot_residual_ratio(good, ls, mask, nv) < 2.0)
    out, chosen = checked_estimate({"diffusion": bad, "classical": good}, ls, mask, nv)
    assert list(chosen[:25]) == ["classical"] * 25 and list(chosen[25:]) == ["diffusion"] * 25
    np.testing.assert_array_equal(out, good)
    # nothing passes: the smallest residual wins
    worse = bad * 0.5 + 3.0
    out, chosen = checked_estimate({"diffusion": worse, "classical": bad}, ls, mask, nv)
    assert set(chosen[:25]) == {"classical"} and np.array_equal(out[25:], bad[25:])
    with pytest.raises(ValueError, match="candidate"):
        checked_estimate({}, ls, mask, nv)


@pytest.mark.parametrize("rank_t", [3, 7])  # 2 symbol factors of 3 (< 14 symbols: symbols first) or 7 vectors
def test_an_untrained_network_with_a_mixture_prior_is_the_mixture_mmse(engine, tmp_path, rank_t):
    """A linear part that is a Gaussian mixture (low-rank factors): the network's one-step estimate from a grid
    in white noise and the split estimate from a pilot lattice are the mixture's posterior mean, and a save and
    load keeps it."""
    from diffwireless.diffusion.samplers import DDIMSampler
    from diffwireless.chanest import grid_items, items_grid
    from diffwireless.gmm_chanest import GMMChannelEstimator, model_mixture
    from diffwireless.models import load_model, save_model
    from diffwireless.nn import distinct_factors

    schedule = NoiseSchedule(1000, "linear")
    members = [TDL(p, ds, fd) for p in "AC" for ds in (20e-9, 90e-9) for fd in (0.0, 400.0)]
    mixture = model_mixture([m.covariance(GRID) for m in members])
    n_f, n_t = len(distinct_factors(mixture.r_f)[0]), len(distinct_factors(mixture.r_t)[0])
    assert (n_f, n_t) == (4, 2)
    config = {"item_shape": [2, *GRID.shape], "channels": 4, "blocks": 1, "time_dim": 16,
              "linear_prior_steps": 1000, "linear_prior_mixture": [n_f, n_t, len(members), 16, rank_t]}
    model = build_model("mix", "grid_mixer", config, schedule)
    model.network.set_mixture_prior(mixture.weights, mixture.r_f, mixture.r_t, schedule.alphas_cumprod)
    save_model(model, tmp_path / "mix", {"description": "test"})
    model = load_model(tmp_path / "mix.safetensors")
    rng = np.random.default_rng(10)
    h = np.concatenate([m.sample(GRID, 10, rng) for m in members])
    for pattern, snr in (((1, 1), 5.0), ((1, 1), 25.0), ((3, 4), 15.0)):
        mask = lattice_pilots(GRID, *pattern)
        ls = observe(h, mask, snr, rng)
        want = GMMChannelEstimator(mixture, mask, float(snr_noise_var(snr))).estimate(ls)
        est = DiffusionChannelEstimator(model, GRID, mask)
        got = est.estimate(ls, snr, engine)
        assert nmse_db(got, want) < -40  # the split: the mixture from the pilots (low-rank factors kept)
        if pattern == (1, 1):  # the network's own forward pass: its linear part is the mixture's posterior mean
            whole = engine.submit(Job(model, grid_items(ls.reshape(-1, *GRID.shape)),
                                      DDIMSampler(num_steps=1, start_step=est.start_step(snr)))).result()
            assert nmse_db(items_grid(whole), want) < -30
    with pytest.raises(ValueError, match="holds"):
        model.network.set_mixture_prior(mixture.weights[:2] / mixture.weights[:2].sum(), mixture.r_f[:2],
                                        mixture.r_t[:2], schedule.alphas_cumprod)
