"""A live waterfall of a stream with the diffusion blocks' findings on it (pyqtgraph, for GRC Qt flowgraphs)."""

from __future__ import annotations


import numpy as np
import pmt
from gnuradio import gr

from gnuradio.diffwireless._pmt import to_python
from gnuradio.diffwireless.gui.view import ViewBlock
from gnuradio.diffwireless.gui.waterfall import Box, DiffusionWaterfallWidget, WaterfallModel


class diffusion_waterfall(ViewBlock, gr.sync_block):
    """Scrolling spectrogram of a complex stream with anomaly events and classifier decisions drawn as labelled
    boxes at the samples they concern (sample index, not wall-clock), and the anomaly score trace with its
    threshold under it.

    Input: the complex stream the detectors see (connect the same source). Message inputs (all optional):

    - ``events``: Anomaly Detector's events (``start``, ``end``, ``label``; ``freq_lower_edge``/``freq_upper_edge``
      when given narrow the box);
    - ``classification``: Modulation Classifier's decisions (``start``, ``end``, ``label``, ``confidence``);
    - ``scores``: Anomaly Detector's score batches (``start``, ``window``, ``scores``, ``threshold``).

    Drawing runs in the Qt thread on a timer and never blocks the flowgraph: when it cannot keep up it thins the
    rows it draws, and its title says so. Without a Qt application (a headless run) the block still computes its
    rows, so what it costs the flowgraph is the same.

    Args:
        sample_rate: samples/s for the axes (0: samples and bins).
        fft_size: FFT length (frequency bins).
        samples_per_row: samples each row stands for (time resolution; the cost per row is fixed).
        history_rows: rows on screen.
        fps: most frames drawn per second.
        title: the view's title.
    """

    view_class = DiffusionWaterfallWidget

    def __init__(self, sample_rate: float = 0.0, fft_size: int = 1024, samples_per_row: int = 16384,
                 history_rows: int = 256, fps: float = 30.0, title: str = "Diffusion Waterfall") -> None:
        gr.sync_block.__init__(self, name="diffwireless_diffusion_waterfall", in_sig=[np.complex64], out_sig=None)
        self._init_view(WaterfallModel(fft_size, samples_per_row, history_rows, sample_rate=sample_rate), title, fps)
        self.messages_ignored = 0
        self.logger = gr.logger(f"diffwireless.diffusion_waterfall({title})")
        for port, handler in (("events", self._on_event), ("classification", self._on_decision),
                              ("scores", self._on_scores)):
            self.message_port_register_in(pmt.intern(port))
            self.set_msg_handler(pmt.intern(port), handler)

    def work(self, input_items, output_items):
        self.model.push_samples(input_items[0], self.nitems_read(0))
        return len(input_items[0])

    def _on_event(self, msg) -> None:
        self._take(msg, "events", lambda d: self.model.push_box(Box(
            int(d["start"]), int(d.get("end", int(d["start"]) + 1)), str(d.get("label", "event")), "event",
            _optional_float(d.get("freq_lower_edge")), _optional_float(d.get("freq_upper_edge")))))

    def _on_decision(self, msg) -> None:
        self._take(msg, "classification", lambda d: self.model.push_box(Box(
            int(d["start"]), int(d.get("end", int(d["start"]) + 1)), str(d.get("label", "?")), "decision",
            confidence=_optional_float(d.get("confidence")))))

    def _on_scores(self, msg) -> None:
        self._take(msg, "scores", lambda d: self.model.push_scores(
            int(d["start"]), int(d["window"]), np.asarray(d["scores"], dtype=np.float32),
            _optional_float(d.get("threshold"))))

    def _take(self, msg, port: str, push) -> None:
        """Hand a message's dict to ``push``; anything else, or a value it cannot take, is counted and logged."""
        value = to_python(msg)
        try:
            if not (isinstance(value, dict) and "start" in value):
                raise ValueError(f"'{port}' takes PMT dicts with 'start', got {str(msg)[:80]}")
            push(value)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            self.messages_ignored += 1
            self.logger.warn(f"{port}: not drawn: {exc}")


def _optional_float(value) -> float | None:
    return None if value is None else float(value)
