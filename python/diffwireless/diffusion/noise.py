"""Noise for samplers, drawn per item from a seed of its own.

A sampler that draws its noise from one generator for the whole batch gives an item noise that depends on where the
item sat in the batch, so the engine's batching (which jobs happened to be queued together) changes a stochastic
block's output. :class:`ItemNoise` draws each item's noise from a counter-based generator keyed by that item's seed:
the ``k``-th draw of an item is the same numbers whatever else shares its batch and however the batch is chunked.
Blocks key items by the model's seed and the item's position in the stream (:func:`item_seeds`), so a replay of a
recording gives the same output every time.

The generator is splitmix64 (Steele, Lea & Flood, "Fast splittable pseudorandom number generators", OOPSLA 2014)
evaluated at arbitrary counters, with a Box-Muller transform of two 32-bit halves to a standard normal.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import numpy as np
import torch

_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's increment (the golden ratio in 64 bits)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)


def mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's output function on ``uint64`` values (wrapping arithmetic): a bijection that scrambles bits."""
    z = np.asarray(z, dtype=np.uint64)
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def item_seeds(model_seed: int, positions: np.ndarray, stream: int = 0) -> np.ndarray:
    """Seeds ``uint64 [n]`` of items at stream ``positions [n]`` (e.g. the first input sample of each), keyed by the
    model's seed and a stream number (distinct streams of one block draw distinct noise)."""
    key = mix64(np.array([(int(model_seed) * 0x100000001B3 + int(stream)) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    pos = np.asarray(positions).astype(np.int64).astype(np.uint64)  # negative positions wrap, distinct all the same
    return mix64(key ^ (pos * _GAMMA))


@runtime_checkable
class NoiseSource(Protocol):
    """Where a sampler's noise comes from, besides a ``torch.Generator``: standard normal draws of a given shape."""

    def randn(self, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor: ...


class ItemNoise:
    """Standard normal noise drawn per item: row ``i`` of the ``k``-th :meth:`randn` depends only on ``seeds[i]``,
    ``k`` and the row's shape.

    Args:
        seeds: ``uint64 [B]``, one per item of the batch (:func:`item_seeds`).
    """

    def __init__(self, seeds: np.ndarray) -> None:
        self.seeds = np.asarray(seeds, dtype=np.uint64).reshape(-1)
        self.draws = 0

    def randn(self, shape: tuple[int, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``[B, *item_shape]`` standard normal values (``B`` must be the number of seeds)."""
        shape = tuple(int(s) for s in shape)
        if not shape or shape[0] != len(self.seeds):
            raise ValueError(f"noise of shape {shape} asked of {len(self.seeds)} item seeds")
        per_item = math.prod(shape[1:])
        counters = (np.arange(per_item, dtype=np.uint64) + np.uint64(self.draws * per_item + 1)) * _GAMMA
        self.draws += 1
        bits = mix64(self.seeds[:, None] + counters[None, :])
        # Box-Muller on the two 32-bit halves, each a uniform in (0, 1).
        u1 = ((bits >> np.uint64(32)).astype(np.float64) + 0.5) * 2.0 ** -32
        u2 = ((bits & _LOW32).astype(np.float64) + 0.5) * 2.0 ** -32
        z = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
        return torch.from_numpy(z.reshape(shape)).to(device=device, dtype=dtype)


def draw_normal(noise: torch.Generator | NoiseSource | None, shape: tuple[int, ...], device: torch.device,
                dtype: torch.dtype) -> torch.Tensor:
    """Standard normal values of ``shape`` from ``noise``: a :class:`NoiseSource`, a ``torch.Generator`` or None
    (torch's global generator)."""
    if isinstance(noise, NoiseSource):
        return noise.randn(tuple(shape), device, dtype)
    return torch.randn(shape, generator=noise, device=device, dtype=dtype)
