"""Small denoising networks. Each is an ``nn.Module`` with ``forward(x_t, t, cond) -> eps`` (the predicted noise)
and a JSON-able constructor config, so that a model file can rebuild it (see :mod:`diffwireless.models`)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer steps ``t [B]`` -> ``[B, dim]`` (as in the transformer positional code)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


class MLPDenoiser(nn.Module):
    """Noise predictor over small items: ``hidden_layers`` x ``hidden`` Softplus units on ``[x_t, emb(t), cond]``.

    The detector network of Letafati et al. (3 hidden layers of 128 Softplus units, a time-step embedding, a linear
    output) generalised to items of any shape, flattened. ``x_t [B, *item_shape]``, ``t [B]`` or ``[1]`` int64,
    ``cond [B, cond_dim]`` (float; e.g. SNR in dB / 10) or None when ``cond_dim == 0``; returns ``[B, *item_shape]``.
    """

    def __init__(self, item_shape: tuple[int, ...] | list[int], hidden: int = 128, hidden_layers: int = 3,
                 time_dim: int = 32, cond_dim: int = 0) -> None:
        super().__init__()
        self.item_shape = tuple(int(s) for s in item_shape)
        self.config = {"item_shape": list(self.item_shape), "hidden": hidden, "hidden_layers": hidden_layers,
                       "time_dim": time_dim, "cond_dim": cond_dim}
        self.time_dim = time_dim
        self.cond_dim = cond_dim
        n_in = math.prod(self.item_shape)
        layers: list[nn.Module] = []
        width = n_in + time_dim + cond_dim
        for _ in range(hidden_layers):
            layers += [nn.Linear(width, hidden), nn.Softplus()]
            width = hidden
        layers.append(nn.Linear(width, n_in))
        self.net = nn.Sequential(*layers)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        batch = x_t.shape[0]
        if t.numel() == 1:
            # One step for the whole batch (the samplers' case): embed once, broadcast.
            emb = timestep_embedding(t.reshape(1), self.time_dim).to(x_t.dtype).expand(batch, -1)
        else:
            emb = timestep_embedding(t, self.time_dim).to(x_t.dtype)
        parts = [x_t.reshape(batch, -1), emb]
        if self.cond_dim:
            if cond is None:
                raise ValueError(f"this network needs conditioning of width {self.cond_dim}")
            parts.append(cond.to(x_t.dtype))
        return self.net(torch.cat(parts, dim=1)).reshape(x_t.shape)


class MLPClassifier(nn.Module):
    """A plain classifier (the DNN baseline of a denoiser): ``hidden_layers`` x ``hidden`` Softplus units on
    ``[x, cond]`` -> ``num_classes`` logits. ``x [B, *item_shape]``; ``t`` is ignored (None); returns
    ``[B, num_classes]``."""

    def __init__(self, item_shape: tuple[int, ...] | list[int], num_classes: int, hidden: int = 128,
                 hidden_layers: int = 3, cond_dim: int = 0) -> None:
        super().__init__()
        self.item_shape = tuple(int(s) for s in item_shape)
        self.config = {"item_shape": list(self.item_shape), "num_classes": num_classes, "hidden": hidden,
                       "hidden_layers": hidden_layers, "cond_dim": cond_dim}
        self.cond_dim = cond_dim
        layers: list[nn.Module] = []
        width = math.prod(self.item_shape) + cond_dim
        for _ in range(hidden_layers):
            layers += [nn.Linear(width, hidden), nn.Softplus()]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        parts = [x.reshape(x.shape[0], -1)]
        if self.cond_dim:
            if cond is None:
                raise ValueError(f"this network needs conditioning of width {self.cond_dim}")
            parts.append(cond.to(x.dtype))
        return self.net(torch.cat(parts, dim=1))


class _AxisMLP(nn.Module):
    """Residual MLP along one axis of ``[B, C, F, T]`` (``axis`` 2: across carriers, 3: across symbols), its weights
    shared over the other axes: frequency mixing can form any delay-domain filter, time mixing any Doppler one."""

    def __init__(self, size: int, expansion: int, axis: int) -> None:
        super().__init__()
        self.axis = axis
        self.fc1 = nn.Linear(size, expansion * size)
        self.fc2 = nn.Linear(expansion * size, size)
        nn.init.zeros_(self.fc2.weight)  # each block starts as the identity
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(self.axis, -1)
        h = self.fc2(nn.functional.gelu(self.fc1(h)))
        return x + h.transpose(self.axis, -1)


class _MixerBlock(nn.Module):
    """Carrier mixing, symbol mixing, then a channel MLP modulated (scale, shift) by the step embedding."""

    def __init__(self, channels: int, n_carriers: int, n_symbols: int, emb_dim: int) -> None:
        super().__init__()
        self.freq = _AxisMLP(n_carriers, 2, axis=2)
        self.time = _AxisMLP(n_symbols, 2, axis=3)
        self.film = nn.Linear(emb_dim, 4 * channels)  # scale and shift of the 2C hidden channels
        self.ch1 = nn.Conv2d(channels, 2 * channels, 1)
        self.ch2 = nn.Conv2d(2 * channels, channels, 1)
        nn.init.zeros_(self.ch2.weight)
        nn.init.zeros_(self.ch2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = self.time(self.freq(x))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        return x + self.ch2(nn.functional.gelu(self.ch1(x) * (1 + scale) + shift))


def distinct_factors(mats) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct matrices of a stack ``[K, n, n]`` (numpy) and, per matrix, the index of its distinct one."""
    distinct: list[np.ndarray] = []
    index = np.zeros(len(mats), dtype=np.int64)
    for k, r in enumerate(mats):
        r = np.asarray(r, dtype=np.complex128)
        match = [i for i, q in enumerate(distinct) if np.allclose(q, r, rtol=0.0, atol=1e-12)]
        if not match:
            distinct.append(r)
        index[k] = match[0] if match else len(distinct) - 1
    return distinct, index


class GridMixer(nn.Module):
    """Noise predictor over OFDM channel grids (a small 2-D network in the MLP-Mixer pattern).

    ``x_t [B, 2, F, T]`` (real and imaginary parts over ``F`` carriers and ``T`` symbols), ``t [B]`` or ``[1]``
    int64, ``cond [B, cond_dim]`` or None; returns ``[B, 2, F, T]``. Each block mixes across carriers (a learned
    filter over the whole band, i.e. over delay), across symbols (over Doppler) and across feature channels; the step
    embedding (and the conditioning) modulates the channel MLPs.

    With ``linear_prior_steps`` (the schedule's length) the network predicts the noise *beyond* the linear MMSE
    estimate of a separable Gaussian prior ``R = R_f kron R_t`` (eigenvectors and eigenvalues in buffers, set by
    :meth:`set_linear_prior`): its output is the noise implied by that LMMSE estimate plus the learned part, whose
    output layer starts at zero. Training then starts from the linear estimator and learns what the channel family
    has beyond its covariance, instead of learning the averaging over the whole grid from scratch.
    """

    def __init__(self, item_shape: tuple[int, ...] | list[int], channels: int = 32, blocks: int = 4,
                 time_dim: int = 64, cond_dim: int = 0, linear_prior_steps: int = 0,
                 linear_prior_mixture: list[int] | None = None) -> None:
        super().__init__()
        self.item_shape = tuple(int(s) for s in item_shape)
        if len(self.item_shape) != 3 or self.item_shape[0] != 2:
            raise ValueError(f"GridMixer items are [2, F, T], got {self.item_shape}")
        self.config = {"item_shape": list(self.item_shape), "channels": channels, "blocks": blocks,
                       "time_dim": time_dim, "cond_dim": cond_dim}
        if linear_prior_steps:
            self.config["linear_prior_steps"] = int(linear_prior_steps)
        if linear_prior_mixture is not None:
            if not linear_prior_steps or len(linear_prior_mixture) != 5:
                raise ValueError("linear_prior_mixture is [carrier factors, symbol factors, components, carrier "
                                 "rank, symbol rank] and needs linear_prior_steps")
            self.config["linear_prior_mixture"] = [int(v) for v in linear_prior_mixture]
        self.mixture = self.config.get("linear_prior_mixture")
        self.time_dim = time_dim
        self.cond_dim = cond_dim
        _, n_carriers, n_symbols = self.item_shape
        self.embed = nn.Sequential(nn.Linear(time_dim + cond_dim, time_dim), nn.GELU(), nn.Linear(time_dim, time_dim))
        self.inp = nn.Conv2d(2, channels, 1)
        self.blocks = nn.ModuleList(_MixerBlock(channels, n_carriers, n_symbols, time_dim) for _ in range(blocks))
        self.out = nn.Conv2d(channels, 2, 1)
        self.linear_prior_steps = int(linear_prior_steps)
        if self.mixture:
            # Per distinct carrier and symbol factor its leading eigenvectors (real, imaginary) and eigenvalues;
            # per component the pair of factors it takes and its log weight; the schedule's alpha-bar.
            n_f, n_t, n_k, rank_f, rank_t = self.mixture
            self.register_buffer("mix_uf", torch.zeros(n_f, 2, n_carriers, rank_f))
            self.register_buffer("mix_lf", torch.zeros(n_f, rank_f))
            self.register_buffer("mix_ut", torch.zeros(n_t, 2, n_symbols, rank_t))
            self.register_buffer("mix_lt", torch.zeros(n_t, rank_t))
            self.register_buffer("mix_pairs", torch.zeros(n_k, 2, dtype=torch.int64))
            self.register_buffer("mix_logw", torch.zeros(n_k))
            self.register_buffer("prior_abar", torch.zeros(self.linear_prior_steps))
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
        elif self.linear_prior_steps:
            # Eigenvectors (real, imaginary) and eigenvalues of R_f and R_t, and the schedule's alpha-bar.
            self.register_buffer("prior_uf", torch.zeros(2, n_carriers, n_carriers))
            self.register_buffer("prior_lf", torch.zeros(n_carriers))
            self.register_buffer("prior_ut", torch.zeros(2, n_symbols, n_symbols))
            self.register_buffer("prior_lt", torch.zeros(n_symbols))
            self.register_buffer("prior_abar", torch.zeros(self.linear_prior_steps))
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def set_linear_prior(self, r_f, r_t, alphas_cumprod) -> None:
        """Set the separable prior: ``r_f [F, F]`` and ``r_t [T, T]`` Hermitian (numpy), their Kronecker product
        the covariance of the complex grid (unit mean power), and the schedule's ``alphas_cumprod``."""
        for name, r in (("f", r_f), ("t", r_t)):
            lam, u = np.linalg.eigh(np.asarray(r, dtype=np.complex128))
            getattr(self, f"prior_u{name}").copy_(torch.from_numpy(np.stack([u.real, u.imag])).float())
            getattr(self, f"prior_l{name}").copy_(torch.from_numpy(np.clip(lam, 0.0, None)).float())
        self.prior_abar.copy_(torch.as_tensor(np.asarray(alphas_cumprod), dtype=torch.float32))

    def set_mixture_prior(self, weights, r_f, r_t, alphas_cumprod) -> None:
        """Set a mixture of separable priors (numpy): component ``k`` of weight ``weights[k]`` has the covariance
        ``r_f[k] kron r_t[k]`` (``[K, F, F]``, ``[K, T, T]``). Equal factors are stored once; each keeps the
        eigenvectors of its largest eigenvalues, as many as the configured ranks (the rest must be negligible:
        the TDL family's carrier covariances have the rank of their taps, its symbol covariances a few)."""
        if not self.mixture:
            raise ValueError("this network was built without linear_prior_mixture")
        n_f, n_t, n_k, rank_f, rank_t = self.mixture
        factors = distinct_factors(r_f), distinct_factors(r_t)
        pairs = np.stack([factors[0][1], factors[1][1]], axis=1)
        factors = factors[0][0], factors[1][0]
        if [len(factors[0]), len(factors[1]), len(weights)] != [n_f, n_t, n_k]:
            raise ValueError(f"the mixture has {len(factors[0])} carrier factors, {len(factors[1])} symbol factors "
                             f"and {len(weights)} components; this network holds {n_f}, {n_t} and {n_k}")
        for side, (name, rank) in enumerate((("f", rank_f), ("t", rank_t))):
            for i, r in enumerate(factors[side]):
                lam, u = np.linalg.eigh(r)
                lam, u = lam[::-1][:rank], u[:, ::-1][:, :rank]
                getattr(self, f"mix_u{name}")[i].copy_(torch.from_numpy(np.stack([u.real, u.imag])).float())
                getattr(self, f"mix_l{name}")[i].copy_(torch.from_numpy(np.clip(lam, 0.0, None)).float())
        self.mix_pairs.copy_(torch.from_numpy(pairs))
        self.mix_logw.copy_(torch.from_numpy(np.log(np.maximum(np.asarray(weights, dtype=np.float64), 1e-300))))
        self.prior_abar.copy_(torch.as_tensor(np.asarray(alphas_cumprod), dtype=torch.float32))

    def linear_prior_mixture(self):
        """The linear prior as ``(weights [K], R_f [K, F, F], R_t [K, T, T])`` complex128 numpy (one component for
        a single separable prior, its covariances as stored), or None without one."""
        if not self.linear_prior_steps:
            return None

        def rebuild(u: torch.Tensor, lam: torch.Tensor) -> np.ndarray:
            u = u.double().cpu().numpy()
            u = u[0] + 1j * u[1]
            return (u * lam.double().cpu().numpy()) @ u.conj().T

        if not self.mixture:
            return (np.ones(1), rebuild(self.prior_uf, self.prior_lf)[None],
                    rebuild(self.prior_ut, self.prior_lt)[None])
        pairs = self.mix_pairs.cpu().numpy()
        r_f = np.stack([rebuild(self.mix_uf[i], self.mix_lf[i]) for i in range(len(self.mix_uf))])
        r_t = np.stack([rebuild(self.mix_ut[i], self.mix_lt[i]) for i in range(len(self.mix_ut))])
        w = np.exp(self.mix_logw.double().cpu().numpy())
        return w / w.sum(), r_f[pairs[:, 0]], r_t[pairs[:, 1]]

    def mixture_x0(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The posterior mean of the grid ``h`` from ``z = sqrt(a) h + sqrt(1 - a) w`` (complex ``[B, F, T]``,
        ``a [B, 1, 1]``) under the mixture: each component's LMMSE estimate in its low-rank eigenbasis (the
        space its stored eigenvectors leave out taken as empty), weighted by the component's posterior."""
        n_f, n_t, n_k, rank_f, rank_t = self.mixture
        uf = torch.complex(self.mix_uf[:, 0], self.mix_uf[:, 1])  # [Kf, F, rf]
        ut = torch.complex(self.mix_ut[:, 0], self.mix_ut[:, 1])  # [Kt, T, rt]
        fi, ti = self.mix_pairs[:, 0], self.mix_pairs[:, 1]
        a = a.reshape(1, -1, 1, 1)
        # All products are over the stacked distinct factors, as single 2-D products, the carrier bases
        # [Kf rf, F] and the symbol bases [T, Kt rt] applied in the cheaper order (symbols first where the symbol
        # factors hold fewer vectors than there are symbols, e.g. a static channel); never one product per
        # component (batches of tiny products, and copies of z per factor, cost more than the arithmetic).
        n_b, n_c, n_s = z.shape
        u_c = uf.permute(0, 2, 1).reshape(n_f * rank_f, n_c)  # [Kf rf, F]
        u_s = ut.permute(1, 0, 2).reshape(n_s, n_t * rank_t)  # [T, Kt rt]
        symbols_first = n_t * rank_t < n_s
        if symbols_first:
            both = u_c.conj() @ (z.reshape(n_b * n_c, n_s) @ u_s.conj()).reshape(n_b, n_c, -1).transpose(0, 1) \
                .reshape(n_c, -1)  # [Kf rf, B Kt rt]
        else:
            both = (u_c.conj() @ z.transpose(0, 1).reshape(n_c, n_b * n_s)).reshape(-1, n_s) @ u_s.conj()
        both = both.reshape(n_f, rank_f, n_b, n_t, rank_t)
        y = both[fi, :, :, ti].permute(0, 2, 1, 3)  # [K, B, rf, rt]
        lam = (self.mix_lf[fi][:, :, None] * self.mix_lt[ti][:, None, :]).unsqueeze(1)  # [K, 1, rf, rt]
        d = a * lam + (1.0 - a)
        energy = (z.abs() ** 2).sum(dim=(1, 2))  # [B]
        kept = (y.abs() ** 2).sum(dim=(2, 3))  # [K, B]
        rest = n_c * n_s - rank_f * rank_t
        a1 = a.reshape(1, -1)
        loglik = (-(y.abs() ** 2 / d).sum(dim=(2, 3)) - (energy[None] - kept) / (1.0 - a1)
                  - torch.log(d).sum(dim=(2, 3)) - rest * torch.log(1.0 - a1) + self.mix_logw[:, None])
        post = torch.softmax(loglik, dim=0)  # [K, B]
        w = y * (a.sqrt() * lam / d) * post[:, :, None, None].to(y.dtype)
        # The components' estimates summed per (carrier, symbol) factor pair, then back through the factors.
        per_pair = torch.zeros(n_f, n_t, n_b, rank_f, rank_t, dtype=w.dtype, device=w.device)
        per_pair.index_put_((fi, ti), w, accumulate=True)
        per_pair = per_pair.permute(0, 3, 2, 1, 4).reshape(n_f * rank_f, n_b * n_t * rank_t)
        if symbols_first:
            h = (u_c.T @ per_pair).reshape(n_c * n_b, n_t * rank_t) @ u_s.T  # [F B, T]
        else:
            h = u_c.T @ (per_pair.reshape(-1, n_t * rank_t) @ u_s.T).reshape(n_f * rank_f, n_b * n_s)
        return h.reshape(n_c, n_b, n_s).transpose(0, 1)  # [B, F, T]

    def linear_eps(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise implied by the LMMSE estimate of ``x0`` from ``x_t`` under the separable prior (or the
        posterior mean under the mixture)."""
        a = self.prior_abar[t.reshape(-1)].to(x_t.dtype).reshape(-1, 1, 1)
        z = torch.complex(x_t[:, 0], x_t[:, 1]) / math.sqrt(2.0)  # complex grid, noise CN(0, 1 - a)
        if self.mixture:
            h = self.mixture_x0(z, a.expand(x_t.shape[0], 1, 1))
        else:
            uf = torch.complex(self.prior_uf[0], self.prior_uf[1])
            ut = torch.complex(self.prior_ut[0], self.prior_ut[1])
            y = uf.conj().T @ z @ ut.conj()  # (U_f kron U_t)^H applied to the grid
            lam = self.prior_lf[:, None] * self.prior_lt[None, :]
            h = uf @ (y * (a.sqrt() * lam / (a * lam + 1.0 - a))) @ ut.T
        x0 = math.sqrt(2.0) * torch.stack([h.real, h.imag], dim=1)
        a4 = a.unsqueeze(1)
        return (x_t - a4.sqrt() * x0) / (1.0 - a4).sqrt()

    def learned_eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The learned part of the noise prediction alone (the whole prediction without a linear prior)."""
        batch = x_t.shape[0]
        emb = timestep_embedding(t.reshape(-1), self.time_dim).to(x_t.dtype)
        if self.cond_dim:
            if cond is None:
                raise ValueError(f"this network needs conditioning of width {self.cond_dim}")
            emb = torch.cat([emb.expand(batch, -1), cond.to(x_t.dtype)], dim=1)
        emb = self.embed(emb).expand(batch, -1)
        h = self.inp(x_t)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if self.linear_prior_steps:
            return self.linear_eps(x_t, t) + self.learned_eps(x_t, t, cond)
        return self.learned_eps(x_t, t, cond)


class SpectrogramAutoencoderDDPM(nn.Module):
    """Autoencoder over log spectrograms plus a DDPM noise predictor in its latent space (Zeng et al.'s AE-DDPM).

    The encoder is 1-D convolutional along time with the frequency bins as input channels: ``x [B, n_bins,
    n_frames]`` -> two stride-2 convolutions -> a linear map to ``latent`` values. The decoder mirrors it. The
    latent denoiser is an :class:`MLPDenoiser` over the latent *standardised* by the buffers ``z_mean``/``z_std``
    (set after the autoencoder is trained), so one noise schedule fits any recording. ``forward(z_t, t, cond)`` is
    that denoiser (the engine's samplers call it); :meth:`encode` and :meth:`decode` map between the two spaces.
    """

    def __init__(self, item_shape: tuple[int, ...] | list[int], channels: int = 64, latent: int = 32,
                 hidden: int = 128, hidden_layers: int = 3, time_dim: int = 32) -> None:
        super().__init__()
        n_bins, n_frames = (int(s) for s in item_shape)
        if n_frames % 4:
            raise ValueError(f"n_frames must be a multiple of 4 (two stride-2 stages), got {n_frames}")
        self.item_shape = (n_bins, n_frames)
        self.config = {"item_shape": [n_bins, n_frames], "channels": channels, "latent": latent, "hidden": hidden,
                       "hidden_layers": hidden_layers, "time_dim": time_dim}
        self.latent = latent
        self._inner = (channels, n_frames // 4)
        self.encoder = nn.Sequential(
            nn.Conv1d(n_bins, channels, 3, padding=1), nn.GELU(),
            nn.Conv1d(channels, channels, 4, stride=2, padding=1), nn.GELU(),
            nn.Conv1d(channels, channels, 4, stride=2, padding=1), nn.GELU(),
            nn.Flatten(), nn.Linear(channels * n_frames // 4, latent))
        self.decoder_in = nn.Linear(latent, channels * n_frames // 4)
        self.decoder = nn.Sequential(
            nn.GELU(), nn.ConvTranspose1d(channels, channels, 4, stride=2, padding=1), nn.GELU(),
            nn.ConvTranspose1d(channels, channels, 4, stride=2, padding=1), nn.GELU(),
            nn.Conv1d(channels, n_bins, 3, padding=1))
        self.denoiser = MLPDenoiser([latent], hidden=hidden, hidden_layers=hidden_layers, time_dim=time_dim)
        self.register_buffer("z_mean", torch.zeros(latent))
        self.register_buffer("z_std", torch.ones(latent))
        # Mean and deviation on normal traffic of the two residual statistics of the anomaly score, for the
        # AE-DDPM reconstruction (row 0) and the autoencoder's own (row 1); set after training.
        self.register_buffer("residual_mean", torch.zeros(2, 2))
        self.register_buffer("residual_std", torch.ones(2, 2))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, n_bins, n_frames]`` -> standardised latent ``[B, latent]``."""
        return (self.encoder(x) - self.z_mean) / self.z_std

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Standardised latent ``[B, latent]`` -> ``[B, n_bins, n_frames]``."""
        h = self.decoder_in(z * self.z_std + self.z_mean)
        return self.decoder(h.reshape(-1, *self._inner))

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.denoiser(z_t, t, None)


class _ResBlock1d(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, 3, stride=stride, padding=1)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=1)
        self.norm1, self.norm2 = nn.BatchNorm1d(c_out), nn.BatchNorm1d(c_out)
        self.skip = nn.Conv1d(c_in, c_out, 1, stride=stride) if (stride != 1 or c_in != c_out) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(h)) + self.skip(x))


# Channels an ``iq_resnet1d`` can derive from its IQ input before the first convolution (``input_features``).
IQ_FEATURES = ("powers", "autocorr")
POWERS = (2, 4, 8)  # BPSK, QPSK/QAM and 8PSK have a constant part (a spectral line) at these powers


def iq_feature_channels(x: torch.Tensor, features: tuple[str, ...] | list[str]) -> torch.Tensor:
    """``x [B, 2, L]`` (I and Q) with derived channels after it: ``[B, 2 + C, L]``.

    - ``powers``: for m in :data:`POWERS`, ``z^m / |z|^(m-1)`` (I and Q; the phase times m at the sample's own
      amplitude): a PSK's m-th power has a constant part that a convolution and a mean over time find, and that
      a network reads poorly from the IQ itself. 6 channels.
    - ``autocorr``: ``|r(k)| / r(0)`` for lags ``k = 0 .. L-1`` (``r`` the frame's autocorrelation, linear, not
      circular): an OFDM symbol's cyclic prefix shows as a peak at the FFT size, a repeated telegram at its period,
      a symbol rate as the width of the main lobe. 1 channel.
    """
    unknown = [f for f in features if f not in IQ_FEATURES]
    if unknown:
        raise ValueError(f"unknown input features {unknown}; known: {IQ_FEATURES}")
    z = torch.complex(x[:, 0].float(), x[:, 1].float())
    channels = [x]
    if "powers" in features:
        magnitude = z.abs()
        phasor = z / magnitude.clamp_min(1e-12)  # 0 where z is 0 (zero padding)
        for m in POWERS:
            u = phasor ** m * magnitude
            channels.append(torch.stack([u.real, u.imag], dim=1).to(x.dtype))
    if "autocorr" in features:
        n = z.shape[-1]
        spectrum = torch.fft.fft(z, 2 * n)
        r = torch.fft.ifft(spectrum.abs() ** 2)[:, :n].abs()
        channels.append((r / r[:, :1].clamp_min(1e-12)).unsqueeze(1).to(x.dtype))
    return torch.cat(channels, dim=1)


def _unit_rows(f: torch.Tensor) -> torch.Tensor:
    return f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)


class IQResNet1d(nn.Module):
    """A small 1-D ResNet classifier of IQ frames: ``x [B, 2, L]`` (I and Q rows) -> ``[B, num_classes]`` logits.

    A stem convolution (stride ``stem_stride``, kernel ``2 * stem_stride - 1``) and ``len(widths)`` residual stages of
    two 3-tap convolutions with batch
    norm, each halving the length, then global average and max pooling over time and a linear layer. ``t`` and
    ``cond`` are ignored (the engine's :class:`~diffwireless.diffusion.samplers.ForwardPass` calls it so).

    With ``open_set`` the network also holds the Gaussian model of its pooled features (a mean per class
    ``[num_classes, F]`` and one shared precision ``[F, F]``, ``F = 2 * widths[-1]``; filled after training) and
    :meth:`open_set_scores` gives the logits and the Mahalanobis distance to the nearest class: large for inputs
    unlike every training class.

    ``input_features`` (:data:`IQ_FEATURES`): channels derived from the IQ inside the network
    (:func:`iq_feature_channels`), so that callers still give ``[B, 2, L]``.

    With ``knn_bank`` (> 0, with ``open_set``) the novelty is instead the cosine distance of the unit-normalised
    features to their ``knn_k``-th nearest neighbour in a bank of ``knn_bank`` known frames' unit features (Sun et
    al., *Out-of-distribution detection with deep nearest neighbors*, ICML 2022; stored as float16, filled after
    training): no Gaussian assumed per class.

    With ``statistics_bank`` (> 0, with ``open_set``) it also carries known bursts' signal statistics
    (``burst_statistics [statistics_bank, n_statistics]``, float32, and their classes ``burst_classes``; filled
    after training): not used by :meth:`forward`, but by the burst decision of
    :class:`~diffwireless.classifier.ModulationClassifier` (:class:`~diffwireless.burst_statistics.StatisticsBank`).
    """

    MAX_KNN_BANK = 1 << 17

    def __init__(self, item_shape: tuple[int, ...] | list[int], num_classes: int,
                 widths: tuple[int, ...] | list[int] = (24, 32, 48, 64), stem_stride: int = 4,
                 open_set: bool = False, input_features: tuple[str, ...] | list[str] = (), knn_bank: int = 0,
                 knn_k: int = 50, statistics_bank: int = 0, n_statistics: int = 0) -> None:
        super().__init__()
        self.item_shape = tuple(int(s) for s in item_shape)
        self.config = {"item_shape": list(self.item_shape), "num_classes": num_classes, "widths": list(widths),
                       "stem_stride": stem_stride}
        if open_set:  # only then, so that the settings of models saved before it stay valid
            self.config["open_set"] = True
        self.input_features = tuple(input_features)
        unknown = [f for f in self.input_features if f not in IQ_FEATURES]
        if unknown:
            raise ValueError(f"unknown input features {unknown}; known: {IQ_FEATURES}")
        in_channels = 2 + 2 * len(POWERS) * ("powers" in self.input_features) + ("autocorr" in self.input_features)
        if self.input_features:  # as open_set: absent from the settings of models saved before it
            self.config["input_features"] = list(self.input_features)
        self.stem = nn.Sequential(nn.Conv1d(in_channels, widths[0], 2 * stem_stride - 1, stride=stem_stride,
                                            padding=stem_stride - 1), nn.BatchNorm1d(widths[0]), nn.ReLU())
        stages, c = [], widths[0]
        for w in widths:
            stages.append(_ResBlock1d(c, w, 2))
            c = w
        self.stages = nn.Sequential(*stages)
        self.head = nn.Linear(2 * c, num_classes)
        self.open_set = bool(open_set)
        if open_set:
            self.register_buffer("class_means", torch.zeros(num_classes, 2 * c))
            self.register_buffer("feature_precision", torch.eye(2 * c))
        self.knn_bank, self.knn_k = int(knn_bank), int(knn_k)
        if self.knn_bank:
            if not open_set or not 1 <= self.knn_k <= self.knn_bank <= self.MAX_KNN_BANK:
                raise ValueError(f"knn_bank needs open_set and 1 <= knn_k <= knn_bank <= {self.MAX_KNN_BANK}; got "
                                 f"open_set={open_set}, knn_k={knn_k}, knn_bank={knn_bank}")
            self.config.update(knn_bank=self.knn_bank, knn_k=self.knn_k)
            self.register_buffer("feature_bank", torch.zeros(self.knn_bank, 2 * c, dtype=torch.float16))
        if statistics_bank or n_statistics:
            if not open_set or not 1 <= statistics_bank <= self.MAX_KNN_BANK or not 1 <= n_statistics <= 64:
                raise ValueError(f"statistics_bank needs open_set, 1 <= statistics_bank <= {self.MAX_KNN_BANK} and "
                                 f"1 <= n_statistics <= 64; got open_set={open_set}, "
                                 f"statistics_bank={statistics_bank}, n_statistics={n_statistics}")
            self.config.update(statistics_bank=int(statistics_bank), n_statistics=int(n_statistics))
            self.register_buffer("burst_statistics", torch.zeros(int(statistics_bank), int(n_statistics)))
            self.register_buffer("burst_classes", torch.zeros(int(statistics_bank), dtype=torch.int64))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``[B, F]`` of frames ``x [B, 2, L]`` (what the linear head sees)."""
        if self.input_features:
            x = iq_feature_channels(x, self.input_features)
        h = self.stages(self.stem(x))
        return torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x))

    def unit_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features scaled to unit norm ``[B, F]`` (float32): what the k-nearest-neighbour novelty compares."""
        return _unit_rows(self.features(x).float())

    def open_set_scores(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, num_classes + 1]``: the logits, then the novelty: the squared Mahalanobis distance of the features
        to the nearest class mean under the shared precision, or with ``knn_bank`` the cosine distance to the
        ``knn_k``-th nearest bank frame.

        Raises:
            RuntimeError: the network was built without ``open_set``.
        """
        if not self.open_set:
            raise RuntimeError("this iq_resnet1d holds no feature model (built without open_set)")
        f = self.features(x).float()
        if self.knn_bank:
            similarity = _unit_rows(f) @ self.feature_bank.float().T
            novelty = 1.0 - similarity.topk(self.knn_k, dim=1).values[:, -1:]
            return torch.cat([self.head(f.to(self.head.weight.dtype)).float(), novelty], dim=1)
        means, precision = self.class_means.float(), self.feature_precision.float()
        fp = f @ precision
        dist = (fp * f).sum(dim=1, keepdim=True) - 2 * fp @ means.T + ((means @ precision) * means).sum(dim=1)[None]
        logits = self.head(f.to(self.head.weight.dtype)).float()
        return torch.cat([logits, dist.amin(dim=1, keepdim=True)], dim=1)


class _UNetBlock1d(nn.Module):
    """Two 3-tap convolutions with group norm and SiLU, the embedding added between them (scale and shift)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, c_in), c_in)
        self.conv1 = nn.Conv1d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(min(8, c_out), c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.weight)  # each block starts as its skip path
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(nn.functional.silu(h))


class UNet1d(nn.Module):
    """Class-conditional noise predictor over IQ frames: a small 1-D U-Net (as in SEI-DM's generator).

    ``x_t [B, 2, L]`` (I and Q rows), ``t [B]`` or ``[1]`` int64, ``cond [B, num_classes + 1]``: a one-hot class
    (all zeros: no class, the unconditional branch of classifier-free guidance) and the SNR in dB / 10; returns the
    predicted noise ``[B, 2, L]``. A stem convolution of stride ``patch`` (``patch`` samples per position), then
    ``len(widths)`` levels of one :class:`_UNetBlock1d` each, down by 4 between levels and back up with skip
    connections, and a transposed convolution back to ``L`` samples. The step, class and SNR embeddings are summed
    and modulate every block. ``L`` must be a multiple of ``patch * 4 ** (len(widths) - 1)``.
    """

    def __init__(self, item_shape: tuple[int, ...] | list[int], num_classes: int,
                 widths: tuple[int, ...] | list[int] = (48, 96, 128), patch: int = 4, emb_dim: int = 128) -> None:
        super().__init__()
        self.item_shape = tuple(int(s) for s in item_shape)
        self.config = {"item_shape": list(self.item_shape), "num_classes": num_classes, "widths": list(widths),
                       "patch": patch, "emb_dim": emb_dim}
        self.cond_dim = num_classes + 1
        self.num_classes = num_classes
        self.emb_dim = emb_dim
        step = patch * 4 ** (len(widths) - 1)
        if len(self.item_shape) != 2 or self.item_shape[0] != 2 or self.item_shape[1] % step:
            raise ValueError(f"UNet1d items are [2, L] with L a multiple of {step}; got {self.item_shape}")
        self.time_mlp = nn.Sequential(nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Linear(num_classes, emb_dim, bias=False)  # the zero vector (no class) embeds to 0
        self.snr_emb = nn.Linear(1, emb_dim)
        self.stem = nn.Conv1d(2, widths[0], 2 * patch, stride=patch, padding=patch // 2)
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        c = widths[0]
        for i, w in enumerate(widths):
            self.down.append(_UNetBlock1d(c, w, emb_dim))
            c = w
            if i + 1 < len(widths):
                self.pool.append(nn.Conv1d(w, w, 4, stride=4))
        self.mid = _UNetBlock1d(c, c, emb_dim)
        self.unpool = nn.ModuleList()
        self.up = nn.ModuleList()
        for i in range(len(widths) - 2, -1, -1):
            self.unpool.append(nn.ConvTranspose1d(c, widths[i], 4, stride=4))
            self.up.append(_UNetBlock1d(2 * widths[i], widths[i], emb_dim))
            c = widths[i]
        self.head = nn.Sequential(nn.GroupNorm(min(8, c), c), nn.SiLU(),
                                  nn.ConvTranspose1d(c, 2, 2 * patch, stride=patch, padding=patch // 2))

    def unconditional(self, cond: torch.Tensor) -> torch.Tensor:
        """``cond`` with the class removed (the SNR kept): the input of classifier-free guidance's second branch."""
        out = cond.clone()
        out[:, : self.num_classes] = 0
        return out

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        if cond is None:
            raise ValueError(f"this network needs conditioning of width {self.cond_dim} (one-hot class, SNR / 10)")
        emb = self.time_mlp(timestep_embedding(t.reshape(-1), self.emb_dim).to(x_t.dtype))
        cond = cond.to(x_t.dtype)
        emb = emb + self.class_emb(cond[:, : self.num_classes]) + self.snr_emb(cond[:, self.num_classes:])
        h = self.stem(x_t)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h, emb)
            if i < len(self.pool):
                skips.append(h)
                h = self.pool[i](h)
        h = self.mid(h, emb)
        for unpool, block in zip(self.unpool, self.up):
            h = block(torch.cat([unpool(h), skips.pop()], dim=1), emb)
        return self.head(h)


# Architectures a model file may name: "arch" -> class taking the stored config as keyword arguments.
ARCHITECTURES: dict[str, type[nn.Module]] = {"mlp_denoiser": MLPDenoiser, "mlp_classifier": MLPClassifier,
                                             "grid_mixer": GridMixer,
                                             "spectrogram_ae_ddpm": SpectrogramAutoencoderDDPM,
                                             "iq_resnet1d": IQResNet1d, "unet1d": UNet1d}
