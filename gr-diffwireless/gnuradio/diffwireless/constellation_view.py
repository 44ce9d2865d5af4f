"""Received and denoised symbols side by side, coloured by decided point, with the running BER (pyqtgraph)."""

from __future__ import annotations


import numpy as np
from gnuradio import gr

from gnuradio.diffwireless.constellations import core_constellation
from gnuradio.diffwireless.gui.view import ViewBlock
from gnuradio.diffwireless.gui.views import ConstellationModel, ConstellationWidget


class constellation_view(ViewBlock, gr.sync_block):
    """Constellation Before/After: the received symbols (input 0) and the Diffusion Detector's denoised symbols
    (input 1, its ``symbols`` output), each point coloured by the constellation point the denoised symbol decides
    for. With ``reference`` a third input takes the transmitted symbols and the title shows the running bit error
    rate of the denoised symbols' decisions, counted on every symbol (drawn or not).

    Drawing runs in the Qt thread and never blocks the flowgraph (updates it cannot draw in time are thinned, and
    the title says how many).

    Args:
        constellation: the link's constellation (a GNU Radio constellation object, or ``qpsk``, ``16qam``, ...).
        reference: add the reference input and show the BER.
        points: symbols on screen.
        fps: most frames drawn per second.
        title: the view's title.
    """

    view_class = ConstellationWidget

    def __init__(self, constellation="qpsk", reference: bool = False, points: int = 2000, fps: float = 30.0,
                 title: str = "Constellation Before/After") -> None:
        gr.sync_block.__init__(self, name="diffwireless_constellation_view",
                               in_sig=[np.complex64] * (3 if reference else 2), out_sig=None)
        self._init_view(ConstellationModel(core_constellation(constellation), points), title, fps)
        self.reference = bool(reference)

    def work(self, input_items, output_items):
        n = len(input_items[0])
        self.model.push(input_items[0], input_items[1], input_items[2] if self.reference else None)
        return n
