"""The denoising engine's statistics over time: batch size, latency, queue depth, drops (pyqtgraph)."""

from __future__ import annotations

import math

import pmt
from gnuradio import gr

from gnuradio.diffwireless._pmt import to_python
from gnuradio.diffwireless.gui.views import EngineMonitorModel, EngineMonitorWidget


class engine_monitor(gr.basic_block):
    """Engine Monitor: the ``stats`` messages of the diffusion blocks (connect each block's ``stats`` port to this
    block's ``stats`` input) plotted against time: mean batch size, latency p50 and p99, queue depth (items) and
    drops, one curve per block.

    Args:
        history_s: seconds of history on screen.
        fps: most frames drawn per second.
        title: the view's title.
    """

    def __init__(self, history_s: float = 120.0, fps: float = 10.0, title: str = "Engine Monitor") -> None:
        gr.basic_block.__init__(self, name="diffwireless_engine_monitor", in_sig=None, out_sig=None)
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be finite and > 0, got {fps}")
        self.model = EngineMonitorModel(history_s)
        self.fps, self.title = float(fps), str(title)
        self.view: EngineMonitorWidget | None = None
        self.messages_ignored = 0
        self.message_port_register_in(pmt.intern("stats"))
        self.set_msg_handler(pmt.intern("stats"), self._on_stats)

    def qwidget(self):
        """The Qt widget (made on first call, in the Qt thread)."""
        if self.view is None:
            self.view = EngineMonitorWidget(self.model, self.title, self.fps)
        return self.view.widget

    def _on_stats(self, msg) -> None:
        value = to_python(msg)
        if isinstance(value, dict):
            self.model.push(value)
        else:
            self.messages_ignored += 1
