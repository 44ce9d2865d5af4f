"""One step of DDPM training (noise prediction), shared by the recipes that train a plain prior."""

from __future__ import annotations

import torch

from diffwireless.distributed import mean_across, shard


def optimizer_step(opt: torch.optim.Optimizer, lr_sched, loss: torch.Tensor) -> float:
    """Back-propagate ``loss``, take one optimizer and one learning-rate step; returns the loss as a float (over
    several processes, :mod:`diffwireless.distributed`: the mean of theirs)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    lr_sched.step()
    return mean_across(loss.item())


def noise_prediction_step(net: torch.nn.Module, opt: torch.optim.Optimizer, lr_sched, alphas_cumprod: torch.Tensor,
                          x0: torch.Tensor, t: torch.Tensor, gen: torch.Generator,
                          cond: torch.Tensor | None = None) -> float:
    """Noise ``x0 [B, ...]`` to steps ``t [B]`` with fresh Gaussian noise from ``gen``, regress the network's output
    (given ``cond [B, C]`` when not None) on that noise (mean squared error), take one optimizer and one
    learning-rate step; returns the loss.

    Over several processes (``net`` wrapped by :func:`diffwireless.distributed.wrap`) every process draws the
    global batch's noise and trains on its share of the batch."""
    eps = torch.randn(x0.shape, generator=gen)
    x0, t, eps = shard(x0), shard(t), shard(eps)
    cond = None if cond is None else shard(cond)
    a = alphas_cumprod[t].reshape(-1, *([1] * (x0.dim() - 1)))
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    pred = net(x_t, t) if cond is None else net(x_t, t, cond)
    return optimizer_step(opt, lr_sched, torch.mean((pred - eps) ** 2))
