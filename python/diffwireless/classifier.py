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


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities ``[n, classes]`` (float64) of logits ``[n, classes]``."""
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


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
        p = softmax(logits)
        order = np.argsort(-p, axis=1)
        return Classification(order[:, 0], p[np.arange(len(p)), order[:, 0]], order[:, :3], self.classes)

    def classify(self, frames: np.ndarray, engine: DenoiseEngine) -> Classification:
        return self.decide(engine.submit(self.job(frames)).result())


# The families a user of a real band asks about, for each class the classifier knows.
FAMILIES = {"bpsk": "PSK/QAM", "qpsk": "PSK/QAM", "8psk": "PSK/QAM", "16qam": "PSK/QAM", "64qam": "PSK/QAM",
            "gfsk": "FSK", "gmsk": "FSK", "ook": "OOK/ASK", "am-dsb": "analog", "wbfm": "analog", "ofdm": "OFDM"}
# Shares of the band the training frames fill: linear modulations at 8 samples per symbol (RRC 0.35) and GNU
# Radio's OFDM (52 of 64 carriers); a burst is tried as recorded and fitted to each, and the scale whose frames are
# decided with the highest mean confidence is kept.
TRAINING_SHARES = (0.17, 0.81)


@dataclass(frozen=True)
class BurstDecision:
    """The class of one burst of a capture: samples ``[start, end)``, its SNR over the noise floor (dB), the
    decision (mean softmax over the burst's frames at the scale decided with the highest mean confidence), its
    family, that scale's share of the band (0: as recorded), and its number of frames."""

    start: int
    end: int
    snr_db: float
    label: str
    family: str
    confidence: float
    share: float
    frames: int


def classify_capture(iq: np.ndarray, classifier: ModulationClassifier, engine: DenoiseEngine,
                     shares: tuple[float, ...] = TRAINING_SHARES, max_frames: int = 16, threshold_db: float = 6.0,
                     hold: int = 1024) -> list[BurstDecision]:
    """Classify each burst of a capture through the front end (:mod:`diffwireless.frontend`): bursts gated,
    DC removed, carrier centred, the burst's occupied band fitted to each of ``shares`` (and as recorded), cut
    into up to ``max_frames`` frames; the scale whose mean softmax has the highest top class wins. A scale that
    leaves fewer than 2 frames is tried only when no scale leaves more (one frame is too easily confident)."""
    from diffwireless.frontend import centre_carrier, fit_band, gate_bursts, occupied_bandwidth, remove_dc

    n = classifier.frame_len
    iq = remove_dc(np.asarray(iq, dtype=np.complex64))
    out = []
    for burst in gate_bursts(iq, threshold_db=threshold_db, hold=hold, min_length=n // 4):
        centred, _ = centre_carrier(iq[burst.start:burst.end])
        bandwidth = occupied_bandwidth(centred) if len(centred) >= 64 else 1.0
        tried = []
        for share in (0.0, *shares):
            x = centred if share == 0.0 else fit_band(centred, max(bandwidth, 1e-3), share)[0]
            if len(x) < n:
                x = np.concatenate([x, np.zeros(n - len(x), np.complex64)])
            k = min(max_frames, len(x) // n)
            starts = np.linspace(0, len(x) - n, k).astype(int)
            frames = np.stack([x[s:s + n] for s in starts])
            mean = softmax(engine.submit(classifier.job(frames)).result()).mean(axis=0)
            tried.append((k >= 2, float(mean.max()), int(np.argmax(mean)), share, k))
        _, confidence, top, share, k = max(tried)
        label = classifier.classes[top]
        out.append(BurstDecision(burst.start, burst.end, burst.snr_db, label, FAMILIES.get(label, "unknown"),
                                 confidence, share, k))
    return out


def majority_family(decisions: list[BurstDecision]) -> tuple[str, float]:
    """The family most bursts were decided as, and its share of the bursts (``("none", 0)`` without bursts)."""
    if not decisions:
        return "none", 0.0
    families = [d.family for d in decisions]
    top = max(set(families), key=families.count)
    return top, families.count(top) / len(families)
