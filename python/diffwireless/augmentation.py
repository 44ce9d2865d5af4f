"""Augmentation of labelled IQ frames: the classical transforms and the class-conditional diffusion augmenter.

Classical (the baseline of the augmentation benchmark): a random carrier phase, a spectral flip (complex
conjugate), a circular time shift, a carrier offset and extra noise, drawn anew for every frame of every batch
(:func:`classical_augment`).

Diffusion (Chen et al., SEI-DM): a :class:`~diffwireless.nn.UNet1d` noise predictor conditioned on the class and the
SNR, trained on the labelled frames with the class dropped at random (so one network holds the conditional and the
unconditional model), sampled by DDIM from noise with classifier-free guidance through the engine. A reference
classifier then keeps the frames it assigns to the class they were generated for, with at least ``min_confidence``
(:class:`ModulationAugmenter`). Frames are handled at unit mean power, as the classifier sees them; the network's
items are those frames as ``[2, L]`` I and Q rows scaled by ``sqrt(2)`` (unit variance per row, the scale of the
diffusion noise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diffwireless.classifier import Classification, ModulationClassifier, frame_items
from diffwireless.diffusion.noise import item_seeds
from diffwireless.diffusion.samplers import DDIMSampler
from diffwireless.engine import DenoiseEngine, Job
from diffwireless.errors import ModelError
from diffwireless.models import DiffusionModel, shared_model
from diffwireless.progress import track

ARCH = "unet1d"
ITEM_SCALE = math.sqrt(2.0)  # unit-power complex frames -> unit variance per I and Q row
SNR_SCALE_DB = 10.0  # the SNR enters the network as snr_db / 10
# Generation starts from pure noise at the last step whose signal fraction alpha_bar is at least this: the steps
# beyond carry almost no signal, and the cosine schedule's clipped last betas make the first x0 estimate there
# blow up (measured: 0.71 of generated frames recognised by modclass_resnet from the 2% step, 0.2-0.4 from the
# last step).
START_SIGNAL_FRACTION = 0.02
GUIDANCE_SCALE = 3.0


def diffusion_items(frames: np.ndarray) -> np.ndarray:
    """Complex frames ``[n, L]`` -> float32 ``[n, 2, L]``, each frame at unit power, scaled by ``sqrt(2)``."""
    return frame_items(frames) * np.float32(ITEM_SCALE)


def frames_from_items(items: np.ndarray) -> np.ndarray:
    """Network items ``[n, 2, L]`` -> complex64 frames ``[n, L]`` at unit mean power each."""
    z = items[:, 0].astype(np.float64) + 1j * items[:, 1].astype(np.float64)
    power = np.mean(np.abs(z) ** 2, axis=1, keepdims=True)
    return (z / np.sqrt(np.where(power > 0, power, 1.0))).astype(np.complex64)


def conditioning(class_index: np.ndarray, snr_db: np.ndarray, num_classes: int) -> np.ndarray:
    """Class indices ``[n]`` and SNRs ``[n]`` (dB) -> ``[n, num_classes + 1]``: one-hot class, then SNR / 10.
    An index of -1 gives no class (the unconditional input)."""
    class_index = np.asarray(class_index, dtype=np.int64).reshape(-1)
    snr_db = np.asarray(snr_db, dtype=np.float64).reshape(-1)
    if len(class_index) != len(snr_db):
        raise ValueError(f"{len(class_index)} classes but {len(snr_db)} SNRs")
    if np.any(class_index >= num_classes) or np.any(class_index < -1):
        raise ValueError(f"class indices must lie in -1..{num_classes - 1}")
    cond = np.zeros((len(class_index), num_classes + 1), dtype=np.float32)
    known = class_index >= 0
    cond[np.flatnonzero(known), class_index[known]] = 1.0
    cond[:, num_classes] = snr_db / SNR_SCALE_DB
    return cond


def classical_augment(x: torch.Tensor, gen: torch.Generator, max_cfo: float = 0.01,
                      max_noise_db: float = 10.0) -> torch.Tensor:
    """Classical augmentation of a batch of unit-power frames ``x [B, 2, L]`` (I and Q rows); same shape.

    Per frame: a uniform carrier phase; a spectral flip (conjugate) with probability 1/2; a circular time shift of
    0..L-1 samples; a carrier offset uniform in +-``max_cfo`` cycles/sample; and, with probability 1/2, complex
    Gaussian noise at 0..``max_noise_db`` dB below the frame's power, after which the frame is scaled back to unit
    power.
    """
    b, _, length = x.shape
    z = torch.complex(x[:, 0], x[:, 1])
    flip = torch.rand(b, generator=gen) < 0.5
    z = torch.where(flip[:, None], z.conj(), z)
    shift = torch.randint(0, length, (b, 1), generator=gen)
    z = torch.gather(z, 1, (torch.arange(length)[None, :] + shift) % length)
    phase = torch.rand(b, 1, generator=gen) * 2 * math.pi
    cfo = (torch.rand(b, 1, generator=gen) * 2 - 1) * max_cfo
    z = z * torch.polar(torch.ones(b, length), phase + 2 * math.pi * cfo * torch.arange(length)[None, :])
    noisy = torch.rand(b, 1, generator=gen) < 0.5
    noise_var = 10 ** (-torch.rand(b, 1, generator=gen) * max_noise_db / 10) * noisy
    noise = torch.complex(torch.randn(b, length, generator=gen), torch.randn(b, length, generator=gen))
    z = z + noise * torch.sqrt(noise_var / 2)
    z = z / torch.sqrt(torch.mean(z.abs() ** 2, dim=1, keepdim=True))
    return torch.stack([z.real, z.imag], dim=1).to(x.dtype)


def random_phase(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Rotate each item of ``x [B, 2, L]`` (I and Q rows) by a uniform carrier phase."""
    phase = torch.rand(x.shape[0], generator=gen) * 2 * math.pi
    c, s = torch.cos(phase)[:, None], torch.sin(phase)[:, None]
    return torch.stack([c * x[:, 0] - s * x[:, 1], s * x[:, 0] + c * x[:, 1]], dim=1)


@dataclass
class SyntheticFrames:
    """Generated frames ``[n, L]`` complex64 (unit power), their class indices ``[n]`` and SNRs ``[n]`` (dB), and
    how many were generated to keep them (``generated >= n``)."""

    frames: np.ndarray
    class_index: np.ndarray
    snr_db: np.ndarray
    generated: int

    @property
    def acceptance(self) -> float:
        return len(self.frames) / self.generated if self.generated else 0.0


class ModulationAugmenter:
    """A class-conditional diffusion model of IQ frames and its sampling through the engine.

    Args:
        model: an ``unet1d`` model whose card names its ``classes`` (path, shipped name or object).
        steps: DDIM steps (network evaluations: twice this with guidance).
        guidance_scale: classifier-free guidance ``w`` (1: the plain conditional model).
        classifier: reference classifier for confidence filtering (None: keep every frame).
        min_confidence: a kept frame's class must be the classifier's decision with at least this probability.
    """

    def __init__(self, model: DiffusionModel | str | Path, steps: int = 20, guidance_scale: float = GUIDANCE_SCALE,
                 classifier: ModulationClassifier | DiffusionModel | str | Path | None = None,
                 min_confidence: float = 0.0) -> None:
        self.model = model if isinstance(model, DiffusionModel) else shared_model(model)
        if self.model.arch != ARCH or "classes" not in self.model.card or self.model.schedule is None:
            raise ModelError(f"model '{self.model.name}' is not a modulation augmenter (a diffusion model of "
                             f"architecture {ARCH!r} with 'classes' in its card); got {self.model.arch!r}")
        self.classes = tuple(self.model.card["classes"])
        self.frame_len = int(self.model.item_shape[1])
        start = int(np.flatnonzero(self.model.schedule.alphas_cumprod >= START_SIGNAL_FRACTION)[-1])
        self.sampler = DDIMSampler(num_steps=steps, start_step=start, from_observation=False,
                                   guidance_scale=guidance_scale)
        if classifier is not None and not isinstance(classifier, ModulationClassifier):
            classifier = ModulationClassifier(classifier)
        if classifier is not None:
            if classifier.frame_len != self.frame_len:
                raise ModelError(f"classifier '{classifier.model.name}' takes {classifier.frame_len}-sample frames; "
                                 f"augmenter '{self.model.name}' makes {self.frame_len}")
            missing = sorted(set(self.classes) - set(classifier.classes))
            if missing:
                raise ModelError(f"classifier '{classifier.model.name}' does not know the classes {missing}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], got {min_confidence}")
        self.classifier = classifier
        self.min_confidence = float(min_confidence)
        # The classifier's index of each of this model's classes (its class order may differ).
        self._classifier_index = (None if classifier is None else
                                  np.array([classifier.classes.index(c) for c in self.classes], dtype=np.int64))

    @property
    def nfe(self) -> int:
        """Network evaluations per generated frame."""
        return self.sampler.nfe(self.model.schedule)

    def class_index(self, labels: np.ndarray | list[str]) -> np.ndarray:
        lookup = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted(set(labels) - set(lookup))
        if unknown:
            raise ValueError(f"model '{self.model.name}' does not generate {unknown}; it knows {list(self.classes)}")
        return np.array([lookup[c] for c in labels], dtype=np.int64)

    def job(self, class_index: np.ndarray, snr_db: np.ndarray, positions: np.ndarray | None = None) -> Job:
        """A generation job for frames of the given classes ``[n]`` at the given SNRs ``[n]`` (dB). With the frames'
        ``positions [n]`` in the output stream each frame's noise is its own (the same frames every run, whatever
        the batching); without, it comes from the engine's generator."""
        cond = conditioning(class_index, snr_db, len(self.classes))
        if np.any(cond[:, : len(self.classes)].sum(axis=1) == 0):
            raise ValueError("every generated frame needs a class (index 0.."
                             f"{len(self.classes) - 1})")
        x = np.zeros((len(cond), 2, self.frame_len), dtype=np.float32)  # the shape only: generation starts at noise
        seeds = None if positions is None else item_seeds(self.model.seed, positions)
        return Job(self.model, x, self.sampler, cond, seeds=seeds)

    @staticmethod
    def frames(result: np.ndarray) -> np.ndarray:
        """A generation job's result ``[n, 2, L]`` -> complex64 frames ``[n, L]`` at unit power."""
        return frames_from_items(result)

    def generate(self, class_index: np.ndarray, snr_db: np.ndarray, engine: DenoiseEngine) -> np.ndarray:
        """Unfiltered frames ``[n, L]`` complex64 (unit power) for classes ``[n]`` at SNRs ``[n]``."""
        return self.frames(engine.submit(self.job(class_index, snr_db)).result())

    def keep(self, decided: Classification, class_index: np.ndarray) -> np.ndarray:
        """Which frames the reference classifier's decisions assign to their class ``[n]`` with enough
        confidence: bool ``[n]``."""
        wanted = self._classifier_index[np.asarray(class_index, dtype=np.int64)]
        return (decided.index == wanted) & (decided.confidence >= self.min_confidence)

    def accept(self, frames: np.ndarray, class_index: np.ndarray, engine: DenoiseEngine) -> np.ndarray:
        """:meth:`keep` for frames ``[n, L]`` classified through ``engine`` (all kept without a classifier)."""
        if self.classifier is None:
            return np.ones(len(frames), dtype=bool)
        return self.keep(self.classifier.classify(frames, engine), class_index)

    def augment(self, class_index: np.ndarray, snr_db: np.ndarray, engine: DenoiseEngine,
                max_rounds: int = 4) -> SyntheticFrames:
        """Generate and filter until every requested (class, SNR) has a kept frame or ``max_rounds`` rounds have
        run; rejected frames never come out, so fewer than requested may return (the kept ones in request order)."""
        class_index = np.asarray(class_index, dtype=np.int64)
        snr_db = np.asarray(snr_db, dtype=np.float64)
        todo = np.arange(len(class_index))
        kept: list[int] = []
        frames = np.zeros((len(class_index), self.frame_len), dtype=np.complex64)
        generated = 0
        for _ in track(range(max_rounds), "augment: generation rounds"):
            if not len(todo):
                break
            made = self.generate(class_index[todo], snr_db[todo], engine)
            generated += len(todo)
            ok = self.accept(made, class_index[todo], engine)
            frames[todo[ok]] = made[ok]
            kept += todo[ok].tolist()
            todo = todo[~ok]
        kept_idx = np.sort(np.array(kept, dtype=np.int64))
        return SyntheticFrames(frames[kept_idx], class_index[kept_idx], snr_db[kept_idx], generated)
