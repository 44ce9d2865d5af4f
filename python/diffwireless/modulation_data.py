"""Labelled modulation datasets: frames of IQ with a class label and an SNR, stored as one SigMF recording.

A dataset of ``N`` frames of ``frame_len`` samples is a single SigMF recording of ``N * frame_len`` samples
(cf32_le) with one annotation per frame: ``core:label`` (the class) and ``diffwireless:snr_db``, plus
``diffwireless:synthetic: true`` on frames made by the augmenter (``dw-augment``). The synthesis
itself runs GNU Radio's modulators and channel blocks (``gnuradio.diffwireless.recipes.modulation_sources``,
``dw-dataset``);
this module only stores and reads, so training code needs no GNU Radio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffwireless.errors import RecordingError
from diffwireless.recording import SigMFRecording, SigMFWriter

CLASSES = ("bpsk", "qpsk", "8psk", "16qam", "64qam", "gfsk", "gmsk", "ook", "am-dsb", "wbfm", "ofdm")
FRAME_LEN = 1024


@dataclass
class ModulationDataset:
    """Frames ``[N, frame_len]`` complex64, their labels ``[N]`` (class names), SNRs ``[N]`` in dB, which
    frames are generated ones (``synthetic`` ``[N]`` bool; all False when not given), the burst each frame was
    cut from (``burst`` ``[N]`` int64, ascending; each frame its own when not given), and that burst's
    cyclic-prefix contrast and keyed share as recorded (``cyclic_prefix`` and ``keyed`` ``[N]``,
    :func:`~diffwireless.frontend.cyclic_prefix_contrast`, :func:`~diffwireless.frontend.keyed_share`; NaN when not
    measured). Files keep the frames, labels, SNRs and synthetic flags."""

    frames: np.ndarray
    labels: np.ndarray
    snr_db: np.ndarray
    synthetic: np.ndarray | None = None
    burst: np.ndarray | None = None
    cyclic_prefix: np.ndarray | None = None
    keyed: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.frames.ndim != 2 or not len(self.frames) == len(self.labels) == len(self.snr_db):
            raise ValueError(f"frames {self.frames.shape}, {len(self.labels)} labels and {len(self.snr_db)} SNRs "
                             "do not match")
        self.synthetic = (np.zeros(len(self.frames), dtype=bool) if self.synthetic is None
                          else np.asarray(self.synthetic, dtype=bool))
        if len(self.synthetic) != len(self.frames):
            raise ValueError(f"{len(self.synthetic)} synthetic flags for {len(self.frames)} frames")
        self.burst = (np.arange(len(self.frames), dtype=np.int64) if self.burst is None
                      else np.asarray(self.burst, dtype=np.int64))
        if len(self.burst) != len(self.frames) or np.any(np.diff(self.burst) < 0):
            raise ValueError(f"need one ascending burst index per frame, got {len(self.burst)} for "
                             f"{len(self.frames)} frames")
        self.cyclic_prefix, self.keyed = (np.full(len(self.frames), np.nan) if v is None else
                                          np.asarray(v, dtype=np.float64) for v in (self.cyclic_prefix, self.keyed))
        for name, v in (("cyclic-prefix contrasts", self.cyclic_prefix), ("keyed shares", self.keyed)):
            if len(v) != len(self.frames):
                raise ValueError(f"{len(v)} {name} for {len(self.frames)} frames")

    def __add__(self, other: "ModulationDataset") -> "ModulationDataset":
        if other.frame_len != self.frame_len:
            raise ValueError(f"cannot join frames of {self.frame_len} and {other.frame_len} samples")
        first = int(self.burst[-1]) + 1 if len(self.burst) else 0
        return ModulationDataset(np.concatenate([self.frames, other.frames]),
                                 np.concatenate([self.labels, other.labels]),
                                 np.concatenate([self.snr_db, other.snr_db]),
                                 np.concatenate([self.synthetic, other.synthetic]),
                                 np.concatenate([self.burst, other.burst - (other.burst[0] if len(other.burst) else 0)
                                                 + first]),
                                 np.concatenate([self.cyclic_prefix, other.cyclic_prefix]),
                                 np.concatenate([self.keyed, other.keyed]))

    @property
    def burst_starts(self) -> np.ndarray:
        """The index of each burst's first frame ``[B]`` (int64, ascending)."""
        return np.flatnonzero(np.diff(np.concatenate([[-1], self.burst])))

    @property
    def frame_len(self) -> int:
        return int(self.frames.shape[1])

    def class_indices(self, classes: tuple[str, ...] = CLASSES) -> np.ndarray:
        """Labels as indices into ``classes`` ``[N]`` int64."""
        lookup = {c: i for i, c in enumerate(classes)}
        unknown = sorted(set(self.labels) - set(lookup))
        if unknown:
            raise ValueError(f"labels {unknown} are not among the classes {list(classes)}")
        return np.array([lookup[c] for c in self.labels], dtype=np.int64)


def save_dataset(ds: ModulationDataset, path: str | Path, sample_rate: float | None = None,
                 description: str = "", overwrite: bool = False) -> Path:
    """Write ``ds`` as one SigMF recording with an annotation per frame; returns the meta file's path."""
    with SigMFWriter(path, "cf32_le", sample_rate, description=description, overwrite=overwrite) as writer:
        writer.write(np.ascontiguousarray(ds.frames, dtype=np.complex64).ravel())
        for i, (label, snr, synthetic) in enumerate(zip(ds.labels, ds.snr_db, ds.synthetic)):
            extra = {"synthetic": True} if synthetic else {}
            writer.add_annotation(i * ds.frame_len, ds.frame_len, label=str(label), snr_db=float(snr), **extra)
    return writer.meta_path


def load_dataset(path: str | Path) -> ModulationDataset:
    """Read a dataset written by :func:`save_dataset` (or any SigMF recording annotated the same way).

    Raises:
        RecordingError: no per-frame annotations, frames of unequal length, or a frame without a label.
    """
    with SigMFRecording(path) as rec:
        anns = [a for a in rec.annotations if a.sample_count]
        if not anns:
            raise RecordingError(f"{path}: no annotations with a sample count, so no frames to read")
        lengths = {a.sample_count for a in anns}
        if len(lengths) != 1:
            raise RecordingError(f"{path}: frames of different lengths {sorted(lengths)}; a dataset has one")
        frame_len = lengths.pop()
        frames = np.stack([rec.read(a.sample_start, frame_len) for a in anns])
        labels = [a.label for a in anns]
        if any(lab is None for lab in labels):
            raise RecordingError(f"{path}: annotation {labels.index(None)} has no core:label")
        snr = [float(a.fields.get("diffwireless:snr_db", np.nan)) for a in anns]
        synthetic = [bool(a.fields.get("diffwireless:synthetic", False)) for a in anns]
    return ModulationDataset(frames.astype(np.complex64), np.array(labels), np.array(snr), np.array(synthetic))
