"""One step of DDPM training (noise prediction), shared by the recipes that train a plain prior."""

from __future__ import annotations

import torch


def optimizer_step(opt: torch.optim.Optimizer, lr_sched, loss: torch.Tensor) -> float:
    """Back-propagate ``loss``, take one optimizer and one learning-rate step; returns the loss as a float."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    lr_sched.step()
    return loss.item()


def noise_prediction_step(net: torch.nn.Module, opt: torch.optim.Optimizer, lr_sched, alphas_cumprod: torch.Tensor,
                          x0: torch.Tensor, t: torch.Tensor, gen: torch.Generator,
                          cond: torch.Tensor | None = None) -> float:
    """Noise ``x0 [B, ...]`` to steps ``t [B]`` with fresh Gaussian noise from ``gen``, regress the network's output
    (given ``cond [B, C]`` when not None) on that noise (mean squared error), take one optimizer and one
    learning-rate step; returns the loss."""
    eps = torch.randn(x0.shape, generator=gen)
    a = alphas_cumprod[t].reshape(-1, *([1] * (x0.dim() - 1)))
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    pred = net(x_t, t) if cond is None else net(x_t, t, cond)
    return optimizer_step(opt, lr_sched, torch.mean((pred - eps) ** 2))
