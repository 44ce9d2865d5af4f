"""QA: channel_view shows the newest frame's dw_chan_est and dw_chan_ls, magnitude and phase per carrier."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import blocks, gr

from gnuradio import diffwireless


def test_curves_equal_the_tags_of_the_newest_frame(qapp):
    fft_len = 64
    rng = np.random.default_rng(2)
    frames = []
    tags = []
    for f in range(3):
        est = (rng.standard_normal(fft_len) + 1j * rng.standard_normal(fft_len)).astype(np.complex64)
        est[:6] = 0  # guard carriers: no estimate
        ls = (est + 0.3).astype(np.complex64)
        ls[:6] = 0
        frames.append((est, ls))
        for key, value in (("dw_chan_est", est), ("dw_chan_ls", ls)):
            tags.append(gr.tag_utils.python_to_tag((f * 4, pmt.intern(key), pmt.init_c32vector(fft_len, value),
                                                    pmt.intern("qa"))))
    view = diffwireless.channel_view(fft_len=fft_len)
    view.qwidget()
    tb = gr.top_block()
    tb.connect(blocks.vector_source_c([0j] * fft_len * 12, False, fft_len, tags), view)
    tb.run()
    view.view.refresh()
    assert view.model.frames_seen == 3 and view.model.frame == 8
    est, ls = frames[-1]
    carriers = np.arange(fft_len) - fft_len // 2
    for name, values in (("estimate", est), ("ls", ls)):
        x, mag = view.view.curve("magnitude", name)
        np.testing.assert_array_equal(x, carriers[6:])
        np.testing.assert_allclose(mag, 20 * np.log10(np.abs(values[6:])), rtol=1e-5)
        np.testing.assert_allclose(view.view.curve("phase", name)[1], np.angle(values[6:]), rtol=1e-5)
