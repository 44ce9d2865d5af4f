"""Samplers: how a trained denoiser is run. Each one is a small frozen (hashable) spec with a ``run`` method.

The engine merges jobs whose model and sampler spec are equal, so a spec holds everything that shapes the
computation (steps, start step, eta) and nothing about the data. Networks predict the noise ``eps(x_t, t, cond)``
of the forward process defined by a :class:`~diffwireless.diffusion.schedule.NoiseSchedule`.

- :class:`DDIMSampler`: Song et al.'s DDIM over a strided subset of steps; ``eta=0`` is deterministic, ``eta=1``
  draws the DDPM posterior noise.
- :class:`DDPMSampler`: Ho et al.'s ancestral sampler through every step from the start step down.
- :class:`ForwardPass`: one network call, for networks that are not denoisers (classifiers, autoencoders).
- :class:`OpenSetPass`: a classifier's logits and its novelty score in one call.

With ``guidance_scale`` ``w != 1`` (DDIM only) the noise estimate is classifier-free guided (Ho & Salimans):
``eps_u + w * (eps_c - eps_u)``, where ``eps_u`` is the network's output for ``network.unconditional(cond)``; both
branches run as one batch of ``2B`` items, so a guided step costs two network evaluations per item.

With ``from_observation`` the reverse process starts from the observation scaled as the forward state at
``start_step`` (``x_t = sqrt(alpha_bar[t]) * y``): the SNR-matched start of CDDM and Fesl et al.; otherwise from
pure noise at the last step (generation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch

from diffwireless.diffusion.noise import NoiseSource, draw_normal
from diffwireless.diffusion.schedule import NoiseSchedule


# Where a sampler's noise comes from: one generator for the batch, a per-item source, or torch's global generator.
Noise = torch.Generator | NoiseSource | None


class StopRequested(Exception):
    """Raised inside a sampler loop when its ``should_stop`` callback says the engine is shutting down."""


class Denoiser(Protocol):
    """A noise-prediction network: ``x_t [B, *item_shape]``, ``t [B]`` or ``[1]`` (int64 steps, ``[1]`` = the same
    step for every item), ``cond [B, C]`` or None."""

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor: ...


@runtime_checkable
class Sampler(Protocol):
    """How the engine runs a network on a batch. Implementations are small frozen dataclasses: the engine merges
    the jobs whose model and sampler compare equal, so a sampler holds everything that shapes the computation and
    nothing about the data; it must be hashable (the engine's batching key)."""

    def nfe(self, schedule: Any) -> int:
        """Network evaluations per item."""
        ...

    def cond_width(self, model: Any) -> int:
        """Width of the conditioning a job must carry per item (0: none); the engine checks jobs against it."""
        ...

    def run(self, network: Any, schedule: Any, x: torch.Tensor, cond: torch.Tensor | None = None,
            generator: Noise = None,
            should_stop: Callable[[], bool] | None = None) -> torch.Tensor:
        """The batch ``x [B, *item_shape]`` (conditioning ``cond [B, C]``) -> the output ``[B, ...]``; noise from
        ``generator`` (a ``torch.Generator``, or a per-item :class:`~diffwireless.diffusion.noise.NoiseSource`:
        draw it with :func:`~diffwireless.diffusion.noise.draw_normal`); raises :class:`StopRequested` between
        network calls when ``should_stop()`` says so."""
        ...


def model_cond_width(model: Any) -> int:
    """The conditioning width of a sampler that hands the job's conditioning to the network: the model's."""
    return int(getattr(model, "cond_dim", 0) or 0)


SPACINGS = ("linspace", "trailing")


def ddim_timesteps(start_step: int, num_steps: int, spacing: str = "linspace") -> np.ndarray:
    """Descending, distinct steps from ``start_step`` (always first) towards 0, at most ``num_steps`` of them.

    ``linspace``: evenly spaced from ``start_step`` down to 0 inclusive. ``trailing`` (diffusers' name): the
    ``num_steps`` steps ``start_step * (1 - k / num_steps)``, which stop short of 0, so no network call is spent at
    step 0, where the state is already the estimate (with 2 steps: ``[s, s/2]`` instead of ``[s, 0]``).
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    if spacing == "linspace":
        # From the start step down (linspace from 0 would drop the start step when num_steps is 1).
        steps = np.linspace(start_step, 0, num_steps)
    elif spacing == "trailing":
        steps = np.maximum(start_step * (1.0 - np.arange(num_steps) / num_steps), min(start_step, 1))
    else:
        raise ValueError(f"spacing must be one of {', '.join(SPACINGS)}, got {spacing!r}")
    return np.unique(np.round(steps).astype(np.int64))[::-1].copy()


def _guided(network: Denoiser, guidance_scale: float) -> Denoiser:
    """``network`` with classifier-free guidance of scale ``guidance_scale`` (the network itself when it is 1)."""
    if guidance_scale == 1.0:
        return network
    unconditional = getattr(network, "unconditional", None)
    if unconditional is None:
        raise ValueError(f"guidance_scale {guidance_scale} needs a network with an unconditional branch "
                         f"(an 'unconditional(cond)' method); {type(network).__name__} has none")

    def guided(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if cond is None:
            raise ValueError("classifier-free guidance needs conditioning")
        eps_c, eps_u = network(torch.cat([x, x]), t, torch.cat([cond, unconditional(cond)])).chunk(2)
        return eps_u + guidance_scale * (eps_c - eps_u)

    return guided


def _reverse(network: Denoiser, schedule: NoiseSchedule, x: torch.Tensor, cond: torch.Tensor | None,
             steps: np.ndarray, eta: float, from_observation: bool, generator: Noise,
             should_stop: Callable[[], bool] | None) -> torch.Tensor:
    """The DDIM update over ``steps`` (descending); returns the estimate of ``x_0``, same shape as ``x``."""
    abar = schedule.alphas_cumprod
    t0 = int(steps[0])
    if from_observation:
        x = x * math.sqrt(abar[t0])
    else:
        x = draw_normal(generator, x.shape, x.device, x.dtype)
    # One step for the whole batch: a [1] tensor, which networks broadcast (no per-item copy, no device sync).
    t_vec = torch.empty(1, dtype=torch.int64, device=x.device)
    for i, t in enumerate(steps):
        if should_stop is not None and should_stop():
            raise StopRequested()
        a_t = float(abar[t])
        a_prev = float(abar[steps[i + 1]]) if i + 1 < len(steps) else 1.0
        eps = network(x, t_vec.fill_(int(t)), cond)
        x0 = (x - math.sqrt(1.0 - a_t) * eps) / math.sqrt(a_t)
        if a_prev == 1.0:
            return x0
        sigma = eta * math.sqrt((1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev)) if eta else 0.0
        x = math.sqrt(a_prev) * x0 + math.sqrt(max(1.0 - a_prev - sigma * sigma, 0.0)) * eps
        if sigma:
            x = x + sigma * draw_normal(generator, x.shape, x.device, x.dtype)
    return x


@dataclass(frozen=True)
class DDIMSampler:
    """DDIM over ``num_steps`` evenly spaced steps from ``start_step`` (None: the schedule's last step) to 0.

    Attributes:
        num_steps: network evaluations (fewer when ``start_step + 1 < num_steps``).
        start_step: first reverse step; pick it with ``NoiseSchedule.step_for_noise_var`` for SNR matching.
        eta: 0 deterministic; 1 the DDPM posterior variance.
        from_observation: start from the scaled input (denoising) instead of pure noise (generation).
        guidance_scale: classifier-free guidance scale ``w`` (1: none; 0: unconditional).
        spacing: ``linspace`` (down to step 0) or ``trailing`` (stops short of 0); see :func:`ddim_timesteps`.
    """

    num_steps: int = 10
    start_step: int | None = None
    eta: float = 0.0
    from_observation: bool = True
    guidance_scale: float = 1.0
    spacing: str = "linspace"

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")
        if not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must lie in [0, 1], got {self.eta}")
        if not (math.isfinite(self.guidance_scale) and self.guidance_scale >= 0):
            raise ValueError(f"guidance_scale must be finite and >= 0, got {self.guidance_scale}")
        if self.spacing not in SPACINGS:
            raise ValueError(f"spacing must be one of {', '.join(SPACINGS)}, got {self.spacing!r}")

    def timesteps(self, schedule: NoiseSchedule) -> np.ndarray:
        start = schedule.num_train_steps - 1 if self.start_step is None else self.start_step
        if start >= schedule.num_train_steps:
            raise ValueError(f"start_step {start} is beyond the schedule's {schedule.num_train_steps} steps")
        return ddim_timesteps(start, self.num_steps, self.spacing)

    def cond_width(self, model: Any) -> int:
        return model_cond_width(model)

    def nfe(self, schedule: NoiseSchedule) -> int:
        """Network evaluations per item (two per step when guided)."""
        return len(self.timesteps(schedule)) * (1 if self.guidance_scale == 1.0 else 2)

    def run(self, network: Denoiser, schedule: NoiseSchedule, x: torch.Tensor, cond: torch.Tensor | None = None,
            generator: Noise = None, should_stop: Callable[[], bool] | None = None) -> torch.Tensor:
        """Denoise (or generate) a batch: ``x [B, *item_shape]`` -> estimate of ``x_0``, same shape."""
        return _reverse(_guided(network, self.guidance_scale), schedule, x, cond, self.timesteps(schedule),
                        self.eta, self.from_observation, generator, should_stop)


@dataclass(frozen=True)
class DDPMSampler:
    """Ancestral DDPM through every step from ``start_step`` (None: the last) down to 0; NFE = start_step + 1."""

    start_step: int | None = None
    from_observation: bool = True

    def timesteps(self, schedule: NoiseSchedule) -> np.ndarray:
        start = schedule.num_train_steps - 1 if self.start_step is None else self.start_step
        if not 0 <= start < schedule.num_train_steps:
            raise ValueError(f"start_step {start} outside the schedule's 0..{schedule.num_train_steps - 1}")
        return np.arange(start, -1, -1, dtype=np.int64)

    def nfe(self, schedule: NoiseSchedule) -> int:
        return len(self.timesteps(schedule))

    def cond_width(self, model: Any) -> int:
        return model_cond_width(model)

    def run(self, network: Denoiser, schedule: NoiseSchedule, x: torch.Tensor, cond: torch.Tensor | None = None,
            generator: Noise = None, should_stop: Callable[[], bool] | None = None) -> torch.Tensor:
        # With every step taken, DDIM with eta=1 is exactly the DDPM posterior step.
        return _reverse(network, schedule, x, cond, self.timesteps(schedule), 1.0, self.from_observation,
                        generator, should_stop)


@dataclass(frozen=True)
class ForwardPass:
    """One call of a network that is not a denoiser: ``network(x, None, cond)``."""

    def nfe(self, schedule: NoiseSchedule | None = None) -> int:
        return 1

    def cond_width(self, model: Any) -> int:
        return model_cond_width(model)

    def run(self, network: Denoiser, schedule: NoiseSchedule | None, x: torch.Tensor,
            cond: torch.Tensor | None = None, generator: Noise = None,
            should_stop: Callable[[], bool] | None = None) -> torch.Tensor:
        return network(x, None, cond)



@runtime_checkable
class OpenSetNetwork(Protocol):
    """A classifier that also scores how unlike its training classes an input is."""

    def open_set_scores(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class OpenSetPass:
    """One call of a classifier's ``open_set_scores(x)``: ``[B, classes + 1]`` (logits, then a novelty score)."""

    def nfe(self, schedule: NoiseSchedule | None = None) -> int:
        return 1

    def cond_width(self, model: Any) -> int:
        return model_cond_width(model)

    def run(self, network: OpenSetNetwork, schedule: NoiseSchedule | None, x: torch.Tensor,
            cond: torch.Tensor | None = None, generator: Noise = None,
            should_stop: Callable[[], bool] | None = None) -> torch.Tensor:
        if not isinstance(network, OpenSetNetwork):
            raise TypeError(f"{type(network).__name__} has no open_set_scores; the model is not an open-set classifier")
        return network.open_set_scores(x)
