"""Noise schedules of the forward diffusion process, kept apart from networks and samplers.

A schedule fixes the cumulative signal fraction ``alpha_bar[t]`` of the forward process
``x_t = sqrt(alpha_bar[t]) * x_0 + sqrt(1 - alpha_bar[t]) * noise`` for ``t = 0 .. num_train_steps - 1``. A network is
trained against one schedule (it is stored in the model file) and any sampler can then run it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

import numpy as np


@dataclass(frozen=True)
class NoiseSchedule:
    """Variance schedule ``beta[t]`` and its cumulative products.

    Attributes:
        num_train_steps: number of forward steps ``T``.
        kind: ``"linear"`` (Ho et al.: betas linear from ``beta_start`` to ``beta_end``) or ``"cosine"``
            (Nichol & Dhariwal: ``alpha_bar`` follows a squared cosine; betas capped at 0.999).
        beta_start, beta_end: end points of the linear schedule (unused by ``cosine``).
    """

    num_train_steps: int = 1000
    kind: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self) -> None:
        if self.num_train_steps < 2:
            raise ValueError(f"num_train_steps must be >= 2, got {self.num_train_steps}")
        if self.kind not in ("linear", "cosine"):
            raise ValueError(f"unknown schedule kind {self.kind!r}; use 'linear' or 'cosine'")
        if self.kind == "linear" and not 0 < self.beta_start < self.beta_end < 1:
            raise ValueError(f"need 0 < beta_start < beta_end < 1, got {self.beta_start}, {self.beta_end}")

    @cached_property
    def betas(self) -> np.ndarray:
        """``beta[t]``, float64, shape ``[T]``."""
        if self.kind == "linear":
            return np.linspace(self.beta_start, self.beta_end, self.num_train_steps, dtype=np.float64)
        s = 0.008
        steps = np.arange(self.num_train_steps + 1, dtype=np.float64) / self.num_train_steps
        f = np.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return np.clip(1 - f[1:] / f[:-1], 0.0, 0.999)

    @cached_property
    def alphas_cumprod(self) -> np.ndarray:
        """``alpha_bar[t] = prod_{s<=t} (1 - beta[s])``, float64, shape ``[T]``, decreasing."""
        return np.cumprod(1.0 - self.betas)

    def noise_to_signal(self, t: int | np.ndarray) -> np.ndarray:
        """Noise-to-signal variance ratio ``(1 - alpha_bar[t]) / alpha_bar[t]`` of ``x_t / sqrt(alpha_bar[t])``."""
        a = self.alphas_cumprod[t]
        return (1.0 - a) / a

    def step_for_noise_var(self, noise_var: float) -> int:
        """The step whose noise matches an observation ``y = x_0 + n`` with ``Var(n) = noise_var`` per dimension.

        ``sqrt(alpha_bar[t]) * y`` is then distributed like the forward state ``x_t``, so the reverse process can
        start at ``t`` (SNR matching, as in CDDM and Fesl et al.). ``noise_var`` is in the units of the training
        data. Returns the step minimising ``|log noise_to_signal(t) - log noise_var|``; 0 for a noiseless input.
        """
        if not np.isfinite(noise_var) or noise_var < 0:
            raise ValueError(f"noise_var must be finite and >= 0, got {noise_var}")
        return int(self.steps_for_noise_vars(np.array([noise_var]))[0])

    def steps_for_noise_vars(self, noise_vars: np.ndarray) -> np.ndarray:
        """:meth:`step_for_noise_var` of every element (int64, same shape); 0 where the variance is 0."""
        log_ratio = np.log(self.noise_to_signal(np.arange(self.num_train_steps)))
        # log_ratio increases with t, so the nearest step lies between the midpoints that bracket the value.
        mids = (log_ratio[:-1] + log_ratio[1:]) / 2
        with np.errstate(divide="ignore"):
            steps = np.searchsorted(mids, np.log(np.asarray(noise_vars, dtype=np.float64)))
        return np.where(np.asarray(noise_vars) > 0, steps, 0).astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "NoiseSchedule":
        return cls(**d)
