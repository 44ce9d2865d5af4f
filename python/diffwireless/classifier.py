"""Modulation classification of IQ frames through the engine (the classifier of the augmentation benchmark).

A classifier model is a plain network (``iq_resnet1d``) whose card names its ``classes`` and ``frame_len``. Frames
are scaled to unit mean power each (the classifier sees shape, not level) and fed as ``[n, 2, frame_len]`` (I and Q
rows) in one :class:`~diffwireless.diffusion.samplers.ForwardPass` job; the logits become the decided class, its
softmax confidence and the three most likely classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffwireless.denoiser import iq_pairs
from diffwireless.diffusion.samplers import ForwardPass
from diffwireless.engine import DenoiseEngine, Job
from diffwireless.errors import ModelError
from diffwireless.models import DiffusionModel, shared_model

ARCH = "iq_resnet1d"


def frame_items(frames: np.ndarray) -> np.ndarray:
    """Complex frames ``[n, L]`` -> float32 ``[n, 2, L]``, each frame at unit mean power (silent frames stay 0)."""
    frames = np.asarray(frames)
    power = np.mean(frames.real.astype(np.float64) ** 2 + frames.imag.astype(np.float64) ** 2, axis=1,
                    keepdims=True)
    scaled = frames / np.sqrt(np.where(power > 0, power, 1.0))
    return np.ascontiguousarray(iq_pairs(scaled).transpose(0, 2, 1))


@dataclass
class Classification:
    """Decisions for ``n`` frames: class index ``[n]``, confidence ``[n]``, top-3 indices ``[n, 3]``, and the
    class names."""

    index: np.ndarray
    confidence: np.ndarray
    top3: np.ndarray
    classes: tuple[str, ...]

    def labels(self) -> list[str]:
        return [self.classes[i] for i in self.index]


class ModulationClassifier:
    """A classifier model (path, shipped name or object) and its decisions through the engine."""

    def __init__(self, model: DiffusionModel | str | Path) -> None:
        self.model = model if isinstance(model, DiffusionModel) else shared_model(model)
        card = self.model.card
        if self.model.arch != ARCH or "classes" not in card:
            raise ModelError(f"model '{self.model.name}' is not a modulation classifier (architecture {ARCH!r} with "
                             f"'classes' in its card); got architecture {self.model.arch!r}")
        self.classes = tuple(card["classes"])
        self.frame_len = int(self.model.item_shape[1])
        self.sampler = ForwardPass()

    def job(self, frames: np.ndarray) -> Job:
        frames = np.asarray(frames)
        if frames.ndim != 2 or frames.shape[1] != self.frame_len:
            raise ValueError(f"model '{self.model.name}' classifies frames of {self.frame_len} samples; got shape "
                             f"{frames.shape}")
        return Job(self.model, frame_items(frames), self.sampler)

    def decide(self, logits: np.ndarray) -> Classification:
        """Engine output ``[n, classes]`` -> :class:`Classification`."""
        z = np.asarray(logits, dtype=np.float64)
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        order = np.argsort(-p, axis=1)
        return Classification(order[:, 0], p[np.arange(len(p)), order[:, 0]], order[:, :3], self.classes)

    def classify(self, frames: np.ndarray, engine: DenoiseEngine) -> Classification:
        return self.decide(engine.submit(self.job(frames)).result())
