"""Small denoising networks. Each is an ``nn.Module`` with ``forward(x_t, t, cond) -> eps`` (the predicted noise)
and a JSON-able constructor config, so that a model file can rebuild it (see :mod:`diffwireless.models`)."""

from __future__ import annotations

import math

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


# Architectures a model file may name: "arch" -> class taking the stored config as keyword arguments.
ARCHITECTURES: dict[str, type[nn.Module]] = {"mlp_denoiser": MLPDenoiser, "mlp_classifier": MLPClassifier}
