"""The Gaussian-mixture channel estimator (Koller, Fesl, Turan, Utschick, *An asymptotically MSE-optimal estimator
based on Gaussian mixture models*, IEEE TSP 2022), with Kronecker-structured components so that it fits and runs on
a CPU.

A mixture of ``K`` zero-mean complex Gaussians, component ``k`` with covariance ``R_f,k kron R_t,k`` (carriers x
symbols), is fitted by EM to training channel grids; the estimate from pilots ``y = h_p + n`` is the posterior-
weighted mix of the per-component LMMSE estimates:

    h_hat = sum_k p(k | y) R_k A^H (A R_k A^H + s I)^-1 y,   p(k | y) ~ pi_k CN(y; 0, A R_k A^H + s I).

The structure keeps the E-step cheap (each component's eigenbases whiten a grid in two small products) and the
M-step closed (one flip-flop step of the Kronecker maximum-likelihood covariance per EM iteration).
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np

from diffwireless.progress import track


# A component holding less than this many frames' worth of responsibility is restarted (its covariance would be
# singular and its likelihoods meaningless).
MIN_COMPONENT_FRAMES = 2.0


@dataclass
class KroneckerGMM:
    """Mixture weights ``[K]``, carrier covariances ``[K, F, F]`` and symbol covariances ``[K, T, T]`` (each
    ``r_t[k]`` of trace ``T``: the scale sits in ``r_f``)."""

    weights: np.ndarray
    r_f: np.ndarray
    r_t: np.ndarray

    @property
    def components(self) -> int:
        return len(self.weights)

    def covariance(self, k: int) -> np.ndarray:
        """Component ``k``'s full covariance ``[F*T, F*T]`` (row-major grids: index ``f * T + t``)."""
        return np.kron(self.r_f[k], self.r_t[k])


def _log_likelihoods(h: np.ndarray, gmm: KroneckerGMM, floor: float) -> np.ndarray:
    """``[n, K]``: log CN(vec h; 0, R_f,k kron R_t,k) of grids ``h [n, F, T]``."""
    n, f, t = h.shape
    out = np.empty((n, gmm.components))
    for k in range(gmm.components):
        a, u_f = np.linalg.eigh(gmm.r_f[k])
        b, u_t = np.linalg.eigh(gmm.r_t[k])
        a, b = np.maximum(a, floor), np.maximum(b, floor)
        # Whitened up to the eigenvalues: U_f^H H_n conj(U_t), [n, F, T], as two large matrix products.
        z = (u_f.conj().T @ _stack_f(h)).reshape(f, n, t).transpose(1, 0, 2)
        z = (z.reshape(-1, t) @ u_t.conj()).reshape(n, f, t)
        quad = np.sum(np.abs(z) ** 2 / np.outer(a, b)[None], axis=(1, 2))
        out[:, k] = -quad - t * np.sum(np.log(a)) - f * np.sum(np.log(b)) - f * t * np.log(np.pi)
    return out


def _responsibilities(loglik: np.ndarray, weights: np.ndarray) -> np.ndarray:
    z = loglik + np.log(np.maximum(weights, 1e-300))[None]
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def fit_kronecker_gmm(h: np.ndarray, components: int, iterations: int, rng: np.random.Generator,
                      floor: float = 1e-6) -> KroneckerGMM:
    """Fit a mixture of ``components`` Kronecker-structured Gaussians to channel grids ``h [n, F, T]`` by EM
    (``iterations`` steps) from responsibilities drawn at random. ``floor``: the smallest eigenvalue kept, relative
    to the mean channel power (covariances of finite data are singular)."""
    h = np.asarray(h, dtype=np.complex128)
    n, f, t = h.shape
    if components < 1 or n < components:
        raise ValueError(f"need 1 <= components <= frames, got {components} components and {n} frames")
    power = float(np.mean(np.abs(h) ** 2))
    floor_abs = floor * power
    resp = rng.dirichlet(np.ones(components), size=n)
    r_t = np.repeat(np.eye(t, dtype=np.complex128)[None], components, axis=0)
    r_f = np.repeat(np.eye(f, dtype=np.complex128)[None] * power, components, axis=0)
    gmm = KroneckerGMM(resp.mean(axis=0), r_f, r_t)
    for _ in track(range(iterations), "GMM channel estimator (EM)"):
        gmm = _m_step(h, resp, gmm, floor_abs)
        resp = _responsibilities(_log_likelihoods(h, gmm, floor_abs), gmm.weights)
    return _m_step(h, resp, gmm, floor_abs)


def _m_step(h: np.ndarray, resp: np.ndarray, gmm: KroneckerGMM, floor: float) -> KroneckerGMM:
    n, f, t = h.shape
    weights = resp.mean(axis=0)
    r_f, r_t = np.empty_like(gmm.r_f), np.empty_like(gmm.r_t)
    for k in range(gmm.components):
        g = resp[:, k]
        total = float(g.sum())
        if total < MIN_COMPONENT_FRAMES:  # a component nearly empty: restart it from every frame's covariance
            g, total = np.ones(n), float(n)
        # One flip-flop step of the Kronecker MLE: R_f given R_t, then R_t given the new R_f.
        inv_t = np.linalg.inv(gmm.r_t[k] + floor * np.eye(t))
        weighted = h * g[:, None, None]
        # sum_n g_n H_n R_t^-T H_n^H and sum_n g_n H_n^T R_f^-T conj(H_n), each as a few large matrix products
        rf = _stack_f((weighted.reshape(-1, t) @ inv_t.T).reshape(n, f, t)) @ _stack_f(h).conj().T / (total * t)
        rf = (rf + rf.conj().T) / 2 + floor * np.eye(f)
        mixed = (np.linalg.inv(rf) @ _stack_f(weighted)).reshape(f, n, t).transpose(1, 0, 2).reshape(-1, t)
        rt = mixed.T @ h.reshape(-1, t).conj() / (total * f)
        rt = (rt + rt.conj().T) / 2
        scale = max(np.real(np.trace(rt)) / t, 1e-12)
        r_f[k], r_t[k] = rf * scale, rt / scale + floor * np.eye(t)
    return KroneckerGMM(weights, r_f, r_t)


def _stack_f(h: np.ndarray) -> np.ndarray:
    """``[n, F, T]`` -> ``[F, n * T]``."""
    return np.transpose(h, (1, 0, 2)).reshape(h.shape[1], -1)


def model_mixture(covariances: Sequence[tuple[np.ndarray, np.ndarray]],
                  weights: np.ndarray | None = None) -> KroneckerGMM:
    """A :class:`KroneckerGMM` whose components are given covariances ``(R_f [F, F], R_t [T, T])`` (e.g. the
    ``covariance()`` of channel models over a grid of their parameters), weighted uniformly unless ``weights``
    ``[K]`` is given: the MMSE estimator of a channel family that is a mixture of those Gaussians, without EM."""
    if not covariances:
        raise ValueError("model_mixture needs at least one covariance")
    r_f = np.stack([np.asarray(c[0], dtype=np.complex128) for c in covariances])
    r_t = np.stack([np.asarray(c[1], dtype=np.complex128) for c in covariances])
    w = np.full(len(r_f), 1.0 / len(r_f)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (len(r_f),) or np.any(w < 0) or not np.isclose(w.sum(), 1.0):
        raise ValueError(f"weights must be {len(r_f)} non-negative numbers summing to 1")
    return KroneckerGMM(w, r_f, r_t)


def lattice_axes(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(pilot carriers, pilot symbols)`` when ``mask [F, T]`` is their outer product (a pilot lattice), else None."""
    mask = np.asarray(mask, dtype=bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (rows, cols) if mask.sum() == len(rows) * len(cols) else None


# A component whose posterior stays below this on every frame of a batch is left out of the mix (its share of any
# estimate is below double precision's).
NEGLIGIBLE_POSTERIOR = 1e-16
# On a pilot lattice, a component's eigen-directions whose signal power is below this share of the noise are taken
# as noise alone (their terms in the likelihood and the estimate change by less than that share): exact for the
# low-rank components of a family's mixture, and their cost falls with their rank.
NEGLIGIBLE_SIGNAL = 1e-9


class GMMChannelEstimator:
    """Estimates from pilot observations with a :class:`KroneckerGMM` for one pilot pattern ``mask [F, T]`` and
    noise variance. For a pilot lattice (every pilot carrier in every pilot symbol) each component's pilot covariance
    is itself a Kronecker product, and the likelihoods and filters run in its two small eigenbases (cost per frame
    and component ``O(F r_f P_t + r_f r_t T)`` with ``r_f``, ``r_t`` the ranks that carry signal above
    :data:`NEGLIGIBLE_SIGNAL`); any other mask uses the full filters ``[F*T, P]``."""

    def __init__(self, gmm: KroneckerGMM, mask: np.ndarray, noise_var: float) -> None:
        self.mask = np.asarray(mask, dtype=bool)
        self.gmm = gmm
        self.axes = lattice_axes(self.mask)
        self.filters, self.inverses, self.logdets, self.bases = [], [], [], []
        if self.axes is not None:
            rows, cols = self.axes
            self.noise_var, self.n_pilots = float(noise_var), len(rows) * len(cols)
            for k in range(gmm.components):
                a, u_f = np.linalg.eigh(gmm.r_f[k][np.ix_(rows, rows)])
                b, u_t = np.linalg.eigh(gmm.r_t[k][np.ix_(cols, cols)])
                a, b = np.clip(a, 0.0, None), np.clip(b, 0.0, None)
                keep_f = (a * b.max() > NEGLIGIBLE_SIGNAL * noise_var) | (a == a.max())
                keep_t = (b * a.max() > NEGLIGIBLE_SIGNAL * noise_var) | (b == b.max())
                d = np.outer(a[keep_f], b[keep_t]) + noise_var  # the kept eigenvalues of R_pp + s I
                self.logdets.append(float(np.sum(np.log(d)) + (self.n_pilots - d.size) * np.log(noise_var)))
                self.bases.append((u_f[:, keep_f], u_t[:, keep_t], d, gmm.r_f[k][:, rows], gmm.r_t[k][:, cols]))
            return
        p = np.flatnonzero(self.mask.reshape(-1))
        for k in range(gmm.components):
            cov = gmm.covariance(k)
            c_pp = cov[np.ix_(p, p)] + noise_var * np.eye(len(p))
            chol = np.linalg.cholesky(c_pp)
            inv = np.linalg.inv(c_pp)
            self.inverses.append((inv + inv.conj().T) / 2)
            self.logdets.append(2 * float(np.sum(np.log(np.real(np.diag(chol))))))
            self.filters.append(cov[:, p] @ self.inverses[-1])  # [F*T, P]

    def _whitened(self, y: np.ndarray) -> list[np.ndarray]:
        """Per lattice component, the pilots ``[n, P_f, P_t]`` in its eigenbasis over its eigenvalues: ``C^-1 y``
        before the basis is undone."""
        return [(u_f.conj().T @ y @ u_t.conj()) / d for u_f, u_t, d, _, _ in self.bases]

    def _lattice_posterior(self, z: list[np.ndarray], energy: np.ndarray) -> np.ndarray:
        """``z`` from :meth:`_whitened`, ``energy [n]`` the pilots' power: what a component's kept directions do
        not hold is noise alone."""
        loglik = []
        for zk, (_, _, d, _, _), logdet in zip(z, self.bases, self.logdets):
            kept = np.abs(zk) ** 2 * d  # |U^H y|^2 / d per kept direction
            rest = energy - np.sum(kept * d, axis=(1, 2))
            loglik.append(-np.sum(kept, axis=(1, 2)) - np.clip(rest, 0.0, None) / self.noise_var - logdet)
        return _responsibilities(np.stack(loglik, axis=1), self.gmm.weights)

    def posterior(self, ls: np.ndarray) -> np.ndarray:
        """``[n, K]``: p(k | y) for pilot observations ``ls [n, P]``."""
        y = np.asarray(ls, dtype=np.complex128)
        if self.axes is not None:
            grid = y.reshape(len(y), len(self.axes[0]), len(self.axes[1]))
            return self._lattice_posterior(self._whitened(grid), np.sum(np.abs(y) ** 2, axis=1))
        loglik = np.stack([-np.real(np.einsum("np,pq,nq->n", y.conj(), inv, y)) - logdet
                           for inv, logdet in zip(self.inverses, self.logdets)], axis=1)
        return _responsibilities(loglik, self.gmm.weights)

    def estimate(self, ls: np.ndarray) -> np.ndarray:
        """Channel grids ``[n, F, T]`` from ``ls [n, P]`` (the pilots in row-major order of ``mask``)."""
        y = np.asarray(ls, dtype=np.complex128)
        if self.axes is None:
            post = self.posterior(y)
            est = sum(post[:, k:k + 1] * (y @ w.T) for k, w in enumerate(self.filters))
            return est.reshape(-1, *self.mask.shape)
        z = self._whitened(y.reshape(len(y), len(self.axes[0]), len(self.axes[1])))
        post = self._lattice_posterior(z, np.sum(np.abs(y) ** 2, axis=1))
        est = np.zeros((len(y), *self.mask.shape), dtype=np.complex128)
        for k, (u_f, u_t, _, c_f, c_t) in enumerate(self.bases):
            if post[:, k].max() < NEGLIGIBLE_POSTERIOR:
                continue
            # R_k[:, pilots] C_k^-1 y = (R_f[:, rows] kron R_t[:, cols]) vec(U_f Z U_t^T)
            est += post[:, k, None, None] * ((c_f @ u_f) @ z[k] @ (c_t @ u_t).T)
        return est
