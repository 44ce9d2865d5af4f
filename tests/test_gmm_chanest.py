"""The Gaussian-mixture channel estimator: EM recovers Kronecker components, one component is the LMMSE, and a
mixture beats the LMMSE of the pooled covariance on a two-family channel."""

from __future__ import annotations

import numpy as np
import pytest

from diffwireless.chanest import lmmse
from diffwireless.gmm_chanest import GMMChannelEstimator, KroneckerGMM, fit_kronecker_gmm

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
