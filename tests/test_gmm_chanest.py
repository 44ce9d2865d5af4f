"""The Gaussian-mixture channel estimator: EM recovers Kronecker components, one component is the LMMSE, and a
mixture beats the LMMSE of the pooled covariance on a two-family channel."""

from __future__ import annotations

import numpy as np
import pytest

from diffwireless.chanest import lmmse
from diffwireless.gmm_chanest import (GMMChannelEstimator, KroneckerGMM, fit_kronecker_gmm, lattice_axes,
                                      model_mixture)

F, T = 8, 3


def toeplitz_cov(n: int, rho: complex) -> np.ndarray:
    i = np.arange(n)
    d = i[:, None] - i[None, :]
    return np.where(d >= 0, rho ** np.abs(d), np.conj(rho) ** np.abs(d))


def sample(r_f: np.ndarray, r_t: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    lf, lt = np.linalg.cholesky(r_f), np.linalg.cholesky(r_t)
    w = (rng.standard_normal((n, F, T)) + 1j * rng.standard_normal((n, F, T))) / np.sqrt(2)
    return lf @ w @ lt.T


def test_one_component_recovers_its_covariance_and_is_the_lmmse():
    rng = np.random.default_rng(0)
    r_f, r_t = 2.0 * toeplitz_cov(F, 0.8 * np.exp(0.3j)), toeplitz_cov(T, 0.6)
    h = sample(r_f, r_t, 20000, rng)
    gmm = fit_kronecker_gmm(h, 1, 5, rng)
    np.testing.assert_allclose(gmm.covariance(0), np.kron(r_f, r_t), atol=0.08)
    mask = np.zeros((F, T), bool)
    mask[::2, ::2] = True
    y = h[:50].reshape(50, -1)[:, np.flatnonzero(mask)]
    y = y + 0.1 * (rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape))
    est = GMMChannelEstimator(gmm, mask, 0.02).estimate(y)
    np.testing.assert_allclose(est, lmmse(y, gmm.covariance(0), mask, 0.02), atol=1e-8)


def test_a_mixture_beats_the_pooled_lmmse_and_finds_each_frames_family():
    rng = np.random.default_rng(1)
    families = [(toeplitz_cov(F, 0.95), toeplitz_cov(T, 0.9)), (toeplitz_cov(F, 0.2j), toeplitz_cov(T, 0.1))]
    h = np.concatenate([sample(*fam, 6000, rng) for fam in families])
    gmm = fit_kronecker_gmm(h[rng.permutation(len(h))], 2, 15, rng)
    assert sorted(np.round(gmm.weights, 1)) == [0.5, 0.5]
    test = np.concatenate([sample(*fam, 500, rng) for fam in families])
    truth = np.repeat([0, 1], 500)
    mask = np.ones((F, T), bool)
    nv = 0.1
    y = test.reshape(len(test), -1) + np.sqrt(nv / 2) * (rng.standard_normal((len(test), F * T))
                                                        + 1j * rng.standard_normal((len(test), F * T)))
    est = GMMChannelEstimator(gmm, mask, nv)
    post = est.posterior(y)
    # The component that holds family 0's frames holds few of family 1's.
    first = int(np.argmax(post[truth == 0].mean(axis=0)))
    assert post[truth == 0, first].mean() > 0.95 and post[truth == 1, first].mean() < 0.05
    pooled = np.einsum("nf,ng->fg", h.reshape(len(h), -1), h.reshape(len(h), -1).conj()) / len(h)
    err_gmm = np.sum(np.abs(est.estimate(y) - test) ** 2)
    err_pooled = np.sum(np.abs(lmmse(y, pooled, mask, nv) - test) ** 2)
    assert 10 * np.log10(err_pooled / err_gmm) > 1.0  # dB better than one Gaussian of the pooled covariance


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="components"):
        fit_kronecker_gmm(np.zeros((3, F, T), complex), 4, 1, np.random.default_rng(0))
    assert KroneckerGMM(np.ones(1), np.eye(F)[None], np.eye(T)[None]).components == 1


def reference_estimate(gmm: KroneckerGMM, mask: np.ndarray, nv: float, y: np.ndarray) -> np.ndarray:
    """The posterior-weighted LMMSE estimate written out with full covariances."""
    p = np.flatnonzero(mask.reshape(-1))
    loglik, parts = [], []
    for k in range(gmm.components):
        c = gmm.covariance(k)[np.ix_(p, p)] + nv * np.eye(len(p))
        loglik.append(-np.real(np.einsum("np,pq,nq->n", y.conj(), np.linalg.inv(c), y)) - np.linalg.slogdet(c)[1])
        parts.append(lmmse(y, gmm.covariance(k), mask, nv).reshape(len(y), -1))
    z = np.stack(loglik, 1) + np.log(gmm.weights)
    w = np.exp(z - z.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    return sum(w[:, k:k + 1] * parts[k] for k in range(gmm.components)).reshape(len(y), *mask.shape)


@pytest.mark.parametrize("lattice", [True, False])
def test_the_kronecker_path_and_the_full_filters_give_the_reference_mix(lattice):
    rng = np.random.default_rng(2)
    gmm = model_mixture([(toeplitz_cov(F, 0.9), toeplitz_cov(T, 0.95)), (toeplitz_cov(F, 0.3j), toeplitz_cov(T, 0.5)),
                         (toeplitz_cov(F, 0.7), np.eye(T))], weights=np.array([0.5, 0.3, 0.2]))
    mask = np.zeros((F, T), bool)
    if lattice:
        mask[np.ix_([0, 3, 5, 7], [0, 2])] = True
    else:
        mask[::2, 0] = mask[1::2, 2] = True  # staggered: not a lattice
    assert (lattice_axes(mask) is not None) == lattice
    h = np.concatenate([sample(gmm.r_f[k], gmm.r_t[k], 20, rng) for k in range(3)])
    y = h.reshape(len(h), -1)[:, np.flatnonzero(mask)]
    y = y + 0.2 * (rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape))
    np.testing.assert_allclose(GMMChannelEstimator(gmm, mask, 0.08).estimate(y),
                               reference_estimate(gmm, mask, 0.08, y), atol=1e-9)


def test_low_rank_components_on_a_lattice_give_the_reference_mix():
    # Components of rank 2 over carriers and 1 over symbols (a static channel): the lattice path keeps only the
    # directions with signal, and must still give the full computation's mix.
    rng = np.random.default_rng(4)
    factors = []
    for _ in range(3):
        v = rng.standard_normal((F, 2)) + 1j * rng.standard_normal((F, 2))
        factors.append((v @ v.conj().T / 2, np.ones((T, T), complex)))
    gmm = model_mixture(factors, weights=np.array([0.2, 0.3, 0.5]))
    mask = np.zeros((F, T), bool)
    mask[np.ix_([0, 2, 3, 6], [0, 2])] = True
    h = np.concatenate([sample(gmm.r_f[k] + 1e-12 * np.eye(F), gmm.r_t[k] + 1e-12 * np.eye(T), 15, rng)
                        for k in range(3)])
    y = h.reshape(len(h), -1)[:, np.flatnonzero(mask)]
    y = y + 0.1 * (rng.standard_normal(y.shape) + 1j * rng.standard_normal(y.shape))
    est = GMMChannelEstimator(gmm, mask, 0.02)
    assert all(len(d.reshape(-1)) < mask.sum() for _, _, d, _, _ in est.bases)  # the low-rank path ran
    np.testing.assert_allclose(est.estimate(y), reference_estimate(gmm, mask, 0.02, y), atol=1e-9)
    np.testing.assert_allclose(est.posterior(y).sum(axis=1), 1.0)


def test_a_model_mixture_needs_covariances_and_valid_weights():
    with pytest.raises(ValueError, match="at least one"):
        model_mixture([])
    with pytest.raises(ValueError, match="weights"):
        model_mixture([(np.eye(F), np.eye(T))] * 2, weights=np.array([0.7, 0.7]))
    assert np.allclose(model_mixture([(np.eye(F), np.eye(T))] * 4).weights, 0.25)


def test_the_tdl_family_mixture_is_near_the_genie_on_a_member_it_was_not_told():
    from diffwireless.chanest import observe, snr_noise_var
    from diffwireless.fading import TDL, covariance_matrix, lattice_pilots
    from diffwireless.recipes.channel_estimator import GRID, family_mixture

    mixture = family_mixture("tdl")
    assert mixture.components == 3 * 20 * 6 and np.isclose(mixture.weights.sum(), 1.0)
    with pytest.raises(ValueError, match="tdl"):
        family_mixture("expcorr")
    rng = np.random.default_rng(3)
    model = TDL("B", 45e-9, 230.0)  # inside the family, on no point of the mixture's grid
    mask = lattice_pilots(GRID, 3, 4)
    nv = float(snr_noise_var(15.0))
    h = model.sample(GRID, 150, rng)
    y = observe(h, mask, 15.0, rng)
    err = {name: np.sum(np.abs(est - h) ** 2) for name, est in (
        ("mixture", GMMChannelEstimator(mixture, mask, nv).estimate(y)),
        ("genie", lmmse(y, covariance_matrix(model, GRID), mask, nv)),
        ("other profile", lmmse(y, covariance_matrix(TDL("C", 100e-9, 500.0), GRID), mask, nv)))}
    assert 10 * np.log10(err["mixture"] / err["genie"]) < 1.0
    assert 10 * np.log10(err["other profile"] / err["genie"]) > 1.5  # the test can tell a wrong covariance


def test_the_sparse_family_mixture_has_the_models_covariance_and_beats_its_genie_lmmse_and_omp():
    # The sparse clustered channel is not Gaussian: its covariance's LMMSE (the genie of a Gaussian channel) is not
    # its MMSE. A mixture over the delay bins its clusters occupy must keep the covariance and beat that LMMSE and
    # sparse recovery on the model's own frames.
    from diffwireless.chanest import observe, snr_noise_var
    from diffwireless.fading import SparseClustered, covariance_matrix, lattice_pilots
    from diffwireless.recipes.channel_estimator import GRID, family_mixture
    from diffwireless.sparse_chanest import OMPChannelEstimator, delay_doppler_dictionary

    model = SparseClustered(covariance_draws=40_000)
    covariances, weights = model.cluster_mixture(GRID, 16)
    assert len(weights) == 16 + 120 + 560 and np.isclose(weights.sum(), 1.0)
    pooled = sum(w * c[0] for w, c in zip(weights, covariances))
    r_f, _ = model.covariance(GRID)
    assert np.linalg.norm(pooled - r_f) / np.linalg.norm(r_f) < 0.1
    with pytest.raises(ValueError, match="delay_bins"):
        model.cluster_mixture(GRID, 0)
    rng = np.random.default_rng(6)
    mask = lattice_pilots(GRID, 3, 4)
    nv = float(snr_noise_var(20.0))
    h = model.sample(GRID, 150, rng)
    y = observe(h, mask, 20.0, rng)
    atoms = delay_doppler_dictionary(GRID, model.max_delay_s + model.cluster_spread_s)
    err = {name: np.sum(np.abs(est - h) ** 2) for name, est in (
        ("mixture", GMMChannelEstimator(family_mixture("sparse"), mask, nv).estimate(y)),
        ("genie", lmmse(y, covariance_matrix(model, GRID), mask, nv)),
        ("omp", OMPChannelEstimator(atoms, mask, nv).estimate(y)))}
    assert 10 * np.log10(err["genie"] / err["mixture"]) > 2.0
    assert 10 * np.log10(err["omp"] / err["mixture"]) > 1.0
