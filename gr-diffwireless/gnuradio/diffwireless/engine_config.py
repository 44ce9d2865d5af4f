"""The *Diffusion Engine* GRC variable: one set of engine options that the diffusion blocks name by id."""

from __future__ import annotations

from diffwireless.engine import DEFAULT_MAX_WAIT_MS, EngineOptions


def engine_options(device: str = "auto", max_batch: int = 0, max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
                   precision: str = "fp32", policy: str = "block") -> EngineOptions:
    """Engine options for the diffusion blocks' ``engine`` parameter (checked now: a bad value fails the build).

    Args:
        device: ``auto`` (CUDA when torch sees a GPU, else CPU), ``cpu``, ``cuda``, ``cuda:N``.
        max_batch: most items per network batch (0: 1024 on a CPU, 16384 on CUDA).
        max_wait_ms: how long a job may wait for others to fill its batch, in milliseconds.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast; fp16 needs CUDA).
        policy: ``block`` (replay: lossless) or ``drop`` (live: oldest work dropped, counted and tagged ``dw_drop``).
    """
    return EngineOptions(device=device, max_batch=int(max_batch), max_wait_ms=float(max_wait_ms),
                         precision=precision, policy=policy)
