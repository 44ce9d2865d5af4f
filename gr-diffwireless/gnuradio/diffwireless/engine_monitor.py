"""The denoising engine's statistics over time: batch size, latency, queue depth, drops (pyqtgraph)."""

from __future__ import annotations


import pmt
from gnuradio import gr

from gnuradio.diffwireless._pmt import to_python
from gnuradio.diffwireless.gui.view import ViewBlock
from gnuradio.diffwireless.gui.views import EngineMonitorModel, EngineMonitorWidget


class engine_monitor(ViewBlock, gr.basic_block):
    """Engine Monitor: the ``stats`` messages of the diffusion blocks (connect each block's ``stats`` port to this
    block's ``stats`` input) plotted against time: mean batch size, latency p50 and p99, queue depth (items) and
    drops, one curve per block.

    Args:
        history_s: seconds of history on screen.
        fps: most frames drawn per second.
        title: the view's title.
    """

    view_class = EngineMonitorWidget

    def __init__(self, history_s: float = 120.0, fps: float = 10.0, title: str = "Engine Monitor") -> None:
        gr.basic_block.__init__(self, name="diffwireless_engine_monitor", in_sig=None, out_sig=None)
        self._init_view(EngineMonitorModel(history_s), title, fps)
        self.messages_ignored = 0
        self.message_port_register_in(pmt.intern("stats"))
        self.set_msg_handler(pmt.intern("stats"), self._on_stats)

    def _on_stats(self, msg) -> None:
        value = to_python(msg)
        if isinstance(value, dict):
            self.model.push(value)
        else:
            self.messages_ignored += 1
