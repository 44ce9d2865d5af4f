"""Each OFDM frame's diffusion channel estimate beside its LS estimate, magnitude and phase (pyqtgraph)."""

from __future__ import annotations


import numpy as np
import pmt
from gnuradio import gr

from gnuradio.diffwireless.diffusion_ofdm_equalizer import ESTIMATE_TAG, LS_TAG
from gnuradio.diffwireless.gui.view import ViewBlock
from gnuradio.diffwireless.gui.views import ChannelModel, ChannelWidget


class channel_view(ViewBlock, gr.sync_block):
    """Channel View: magnitude (dB) and phase per carrier of the newest frame's ``dw_chan_est`` (the Diffusion OFDM
    Equalizer's estimate) and ``dw_chan_ls`` (the LS taps it started from).

    Input: the equalizer's output, vectors of ``fft_len`` complex (connect it beside the rest of the receiver).
    Drawing runs in the Qt thread and never blocks the flowgraph; frames it cannot draw in time are skipped (the
    view shows the newest).

    Args:
        fft_len: FFT length (the vector length).
        fps: most frames drawn per second.
        title: the view's title.
    """

    view_class = ChannelWidget

    def __init__(self, fft_len: int = 64, fps: float = 30.0, title: str = "Channel View") -> None:
        if fft_len < 1:
            raise ValueError(f"fft_len must be >= 1, got {fft_len}")
        gr.sync_block.__init__(self, name="diffwireless_channel_view", in_sig=[(np.complex64, int(fft_len))],
                               out_sig=None)
        self.fft_len = int(fft_len)
        self._init_view(ChannelModel(), title, fps)
        self._estimate_key, self._ls_key = pmt.intern(ESTIMATE_TAG), pmt.intern(LS_TAG)

    def work(self, input_items, output_items):
        n = len(input_items[0])
        ls_at = {t.offset: t.value for t in self.get_tags_in_window(0, 0, n, self._ls_key)}
        for tag in self.get_tags_in_window(0, 0, n, self._estimate_key):
            ls = ls_at.get(tag.offset)
            self.model.push(int(tag.offset), np.asarray(pmt.c32vector_elements(tag.value)),
                            None if ls is None else np.asarray(pmt.c32vector_elements(ls)))
        return n
