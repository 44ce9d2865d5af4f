"""Classify the modulation of a complex stream frame by frame (a 1-D ResNet through the engine)."""

from __future__ import annotations

import numpy as np
import pmt

from diffwireless.classifier import ModulationClassifier
from diffwireless.engine import EngineOptions

from gnuradio.diffwireless._pmt import dict_to_pmt
from gnuradio.diffwireless.engine_block import engine_block

CLASS_TAG = "dw_class"
JOB_FRAMES = 64



class modulation_classifier(engine_block):
    """The modulation class of each frame of a complex stream: one int32 (the class index) per frame of the
    model's length (1024 samples for the shipped ``modclass_resnet``, classes in its card).

    - Output item ``k`` is the class of input samples ``[k * frame_len, (k + 1) * frame_len)``; input tags go to the
      item of their frame.
    - Each frame whose confidence reaches ``min_confidence`` is tagged ``dw_class`` on its item and published on
      the ``classification`` message port: a dict with ``label``, ``index``, ``confidence`` (softmax),
      ``top3`` (labels), ``start`` and ``end`` (input samples).
    - Frames are scaled to unit power before the network: the level does not matter, only the shape.

    Args:
        model: classifier file or shipped name.
        min_confidence: frames below it get no tag and no message (their index is still output).
        engine, max_in_flight, stats_interval_s: as the other engine blocks.
    """

    def __init__(self, model: str = "modclass_resnet", min_confidence: float = 0.0,
                 engine: EngineOptions | str | None = None, max_in_flight: int = 1024,
                 stats_interval_s: float = 1.0) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must lie in [0, 1], got {min_confidence}")
        self.classifier = ModulationClassifier(model)
        self.min_confidence = float(min_confidence)
        frame = self.classifier.frame_len
        engine_block.__init__(self, "diffwireless_modulation_classifier", np.complex64, np.int32, frame, 1,
                              engine=engine, max_in_flight=max_in_flight, stats_interval_s=stats_interval_s,
                              job_windows=JOB_FRAMES)
        self._port = pmt.intern("classification")
        self.message_port_register_out(self._port)
        self.classes = self.classifier.classes

    def set_min_confidence(self, min_confidence: float) -> None:
        self.min_confidence = float(min_confidence)

    def make_job(self, windows: np.ndarray, first_in: int, ends_stream: bool):
        return self.classifier.job(windows), first_in // self.classifier.frame_len  # the job's first frame

    def finish(self, result: np.ndarray, context: int) -> np.ndarray:
        return self.classifier.decide(result).index.astype(np.int32)

    def result_tags(self, data: np.ndarray, result: np.ndarray, context: int) -> list:
        c = self.classifier.decide(result)
        tags = []
        for i in np.flatnonzero(c.confidence >= self.min_confidence):
            d = {"label": self.classes[c.index[i]], "index": int(c.index[i]), "confidence": float(c.confidence[i]),
                 "top3": [self.classes[j] for j in c.top3[i]],
                 "start": int((context + i) * self.classifier.frame_len),
                 "end": int((context + i + 1) * self.classifier.frame_len)}
            value = dict_to_pmt(d)
            tags.append((int(i), CLASS_TAG, value, self._srcid))
            self.message_port_pub(self._port, value)
        return tags
