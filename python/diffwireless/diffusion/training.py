"""One step of DDPM training (noise prediction), shared by the recipes that train a plain prior."""

from __future__ import annotations

import torch


def noise_prediction_step(net: torch.nn.Module, opt: torch.optim.Optimizer, lr_sched, alphas_cumprod: torch.Tensor,
                          x0: torch.Tensor, t: torch.Tensor, gen: torch.Generator) -> float:
    """Noise ``x0 [B, ...]`` to steps ``t [B]`` with fresh Gaussian noise from ``gen``, regress the network's output
    on that noise (mean squared error), take one optimizer and one learning-rate step; returns the loss."""
    eps = torch.randn(x0.shape, generator=gen)
    a = alphas_cumprod[t].reshape(-1, *([1] * (x0.dim() - 1)))
    loss = torch.mean((net(a.sqrt() * x0 + (1 - a).sqrt() * eps, t) - eps) ** 2)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    lr_sched.step()
    return loss.item()
