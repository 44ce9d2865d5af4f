"""Classify the modulation of a complex stream, burst by burst through the capture front end or frame by frame
(a 1-D ResNet through the engine)."""

from __future__ import annotations

import math

import numpy as np
import pmt

from diffwireless.burst_statistics import burst_statistics
from diffwireless.classifier import FAMILIES, UNKNOWN, Classification, ModulationClassifier, decide_frames
from diffwireless.engine import EngineOptions, Job, NonFiniteItems
from diffwireless.frontend import StreamFrontEnd

from gnuradio.diffwireless._pmt import dict_to_pmt
from gnuradio.diffwireless.engine_block import engine_block

CLASS_TAG = "dw_class"
JOB_FRAMES = 64
FRONT_ENDS = ("bursts", "continuous", "off")
NO_SIGNAL, UNKNOWN_INDEX = -1, -2
BURST_FRAMES = 4  # frames a burst is decided on at most (the cost of a long burst stays bounded)

class modulation_classifier(engine_block):
    """The modulation class of a complex stream: one int32 per frame of the model's length (1024 samples for the
    shipped models, classes in the model's card).

    - ``front_end="bursts"`` (models trained on fitted bursts, e.g. the default ``modclass_radio``): the input is
      taken in stretches of up to 64 frames; bursts are gated by energy over a noise floor tracked over the last
      32 stretches, and each burst is centred, its band fitted to the model's share and decided on up to 4 frames
      (:class:`diffwireless.frontend.StreamFrontEnd`). Output item ``k`` (input samples ``[k * frame_len,
      (k + 1) * frame_len)``) is the class index of the burst over it, ``-1`` where no burst is, ``-2`` where the
      burst was decided ``unknown``. ``"continuous"``: the same without the gate, every stretch one burst (a band
      that is never quiet). ``"off"``: each frame decided alone, as cut (models trained on fixed frames, e.g.
      ``modclass_resnet``).
    - Each decision whose confidence reaches ``min_confidence`` is tagged ``dw_class`` (on the item of its first
      frame) and published on the ``classification`` message port: a dict with ``label`` (``unknown`` when the
      model's novelty score is over its threshold), ``index``, ``family``, ``confidence`` (softmax), ``top3``
      (labels, frame mode) or ``novelty`` and ``snr_db`` (burst mode), ``unknown``, ``start`` and ``end``
      (input samples). Input tags go to the item of their frame.
    - Frames are scaled to unit power before the network: the level does not matter, only the shape.

    Args:
        model: classifier file or shipped name.
        min_confidence: decisions below it get no tag and no message (the output items still carry them).
        front_end: ``bursts``, ``continuous`` or ``off``; None: ``bursts`` for models trained on fitted bursts
            (``band_share`` in the card), else ``off``.
        threshold_db: burst gate over the noise floor, dB.
        novelty_threshold: an open-set model's novelty over which a decision is ``unknown``; None: its card's (a
            burst's, :class:`~diffwireless.classifier.BurstNovelty`, where the card has that rule; with the front end
            ``off`` each frame's); higher: fewer ``unknown``.
        engine, max_in_flight, stats_interval_s: as the other engine blocks.
    """

    def __init__(self, model: str = "modclass_radio", min_confidence: float = 0.0,
                 engine: EngineOptions | str | None = None, max_in_flight: int = 1024,
                 stats_interval_s: float = 1.0, front_end: str | None = None, threshold_db: float = 6.0,
                 novelty_threshold: float | None = None) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], got {min_confidence}")
        if not (isinstance(threshold_db, (int, float)) and math.isfinite(threshold_db)):
            raise ValueError(f"threshold_db must be a finite number of dB, got {threshold_db!r}")
        self.classifier = ModulationClassifier(model, novelty_threshold)
        share = self.classifier.band_share
        front_end = ("off" if share is None else "bursts") if front_end in (None, "") else front_end
        if front_end not in FRONT_ENDS:
            raise ValueError(f"front_end must be one of {', '.join(FRONT_ENDS)}, got {front_end!r}")
        if front_end != "off" and share is None:
            raise ValueError(f"front_end {front_end!r} needs a model trained on fitted bursts (band_share in its "
                             "card); "
                             f"'{self.classifier.model.name}' was trained on fixed frames: use front_end='off'")
        self.front_end = front_end
        self.min_confidence = float(min_confidence)
        frame = self.classifier.frame_len
        self._stream = None if front_end == "off" else StreamFrontEnd(
            frame, share, BURST_FRAMES, threshold_db, gate=front_end == "bursts")
        engine_block.__init__(self, "diffwireless_modulation_classifier", np.complex64, np.int32, frame, 1,
                              engine=engine, max_in_flight=max_in_flight, stats_interval_s=stats_interval_s,
                              job_windows=JOB_FRAMES)
        self._port = pmt.intern("classification")
        self.message_port_register_out(self._port)
        self.classes = self.classifier.classes

    def set_min_confidence(self, min_confidence: float) -> None:
        self.min_confidence = float(min_confidence)

    def set_novelty_threshold(self, threshold: float | None) -> None:
        if threshold is not None:
            self.classifier.set_novelty_threshold(threshold)

    def make_job(self, windows: np.ndarray, first_in: int, ends_stream: bool):
        if self._stream is None:
            return self.classifier.job(windows), {"first_frame": first_in // self.classifier.frame_len}
        finite = np.isfinite(windows).all(axis=1)
        if not finite.all():  # the front end would gate NaN away: name it as the engine does
            raise NonFiniteItems(int(np.argmin(finite)))
        seg = self._stream.segment(windows.ravel())
        # A stretch without bursts is a job of no items: the engine answers it without the network.
        return self.classifier.job(seg.frames), {"first_in": first_in, "windows": len(windows), "segment": seg}

    def warm_up_job(self, n_windows: int) -> Job:
        if self._stream is None:
            return engine_block.warm_up_job(self, n_windows)
        # Silence makes no frames through the front end; warm the network on frames of zeros instead.
        return self.classifier.job(np.zeros((min(n_windows, BURST_FRAMES), self.classifier.frame_len), np.complex64))

    def finish(self, result: np.ndarray, context) -> np.ndarray:
        if self._stream is None:
            c = context["decided"] = self.classifier.decide(result)  # its tags are made from it too
            return np.where(c.unknown, UNKNOWN_INDEX, c.index).astype(np.int32)
        n = self.classifier.frame_len
        out = np.full(context["windows"], NO_SIGNAL, np.int32)
        seg = context["segment"]
        decisions = []
        for i, burst in enumerate(seg.bursts):
            mine = seg.owner == i
            statistics = None if self.classifier.burst_novelty is None else burst_statistics(seg.frames[mine])
            label, confidence, novelty, _ = decide_frames(result[mine], self.classifier,
                                                          float(seg.cyclic_prefix[i]), float(seg.keyed[i]),
                                                          statistics)
            index = UNKNOWN_INDEX if label == UNKNOWN else self.classes.index(label)
            out[burst.start // n: -(-burst.end // n)] = index
            decisions.append((burst, label, index, confidence, novelty, float(seg.cyclic_prefix[i]),
                              float(seg.keyed[i])))
        context["decisions"] = decisions
        return out

    def result_tags(self, data: np.ndarray, result: np.ndarray, context) -> list:
        if self._stream is None:
            return self._frame_tags(context["decided"], context["first_frame"])
        tags = []
        n, first_in = self.classifier.frame_len, context["first_in"]
        for burst, label, index, confidence, novelty, contrast, keyed in context["decisions"]:
            if confidence < self.min_confidence:
                continue
            d = {"label": label, "index": index, "family": FAMILIES.get(label, UNKNOWN), "confidence": confidence,
                 "novelty": novelty, "unknown": label == UNKNOWN, "snr_db": round(burst.snr_db, 2),
                 "start": first_in + burst.start, "end": first_in + burst.end,
                 "cyclic_prefix": round(contrast, 4), "keyed": round(keyed, 4)}
            value = dict_to_pmt(d)
            tags.append((burst.start // n, CLASS_TAG, value, self._srcid))
            self.message_port_pub(self._port, value)
        return tags

    def _frame_tags(self, c: Classification, first_frame: int) -> list:
        labels = c.labels()
        tags = []
        for i in np.flatnonzero(c.confidence >= self.min_confidence):
            d = {"label": labels[i], "index": int(c.index[i]), "family": FAMILIES.get(labels[i], UNKNOWN),
                 "confidence": float(c.confidence[i]), "top3": [self.classes[j] for j in c.top3[i]],
                 "unknown": bool(c.unknown[i]), "start": int((first_frame + i) * self.classifier.frame_len),
                 "end": int((first_frame + i + 1) * self.classifier.frame_len)}
            value = dict_to_pmt(d)
            tags.append((int(i), CLASS_TAG, value, self._srcid))
            self.message_port_pub(self._port, value)
        return tags
