"""QA: constellation_view fed known symbols: points drawn, colours by decision, the running BER exact."""

from __future__ import annotations

import numpy as np
import pytest
from gnuradio import blocks, gr

from gnuradio import diffwireless
from diffwireless.constellations import get_constellation


def test_points_colours_and_ber(qapp):
    qpsk = get_constellation("qpsk")
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 4, 5000)
    sent = qpsk.points[idx].astype(np.complex64)
    received = (sent + 0.2 * (rng.standard_normal(5000) + 1j * rng.standard_normal(5000))).astype(np.complex64)
    denoised = sent.copy()
    flip = rng.choice(5000, 37, replace=False)  # 37 symbols decided as the opposite point: 2 bit errors each
    denoised[flip] = -denoised[flip]
    view = diffwireless.constellation_view("qpsk", reference=True, points=1000)
    widget = view.qwidget()
    tb = gr.top_block()
    for i, x in enumerate((received, denoised, sent)):
        tb.connect(blocks.vector_source_c(x.tolist()), (view, i))
    tb.run()
    view.view.refresh()
    model = view.model
    assert model.bits_compared == 10_000 and model.bit_errors == 74 and model.ber == pytest.approx(0.0074)
    assert view.view.points_drawn() == (1000, 1000)  # the last 1000 symbols
    np.testing.assert_array_equal(model.received, received[-1000:])
    np.testing.assert_array_equal(model.decided, qpsk.nearest(denoised[-1000:]))
    brushes = view.view.scatters[1].data["brush"]
    colours = {b.color().name() for b, d in zip(brushes, model.decided) if d == model.decided[0]}
    assert len(colours) == 1  # one colour per decided point
    assert widget is view.view.widget


def test_without_a_reference_there_is_no_ber_and_two_inputs(qapp):
    view = diffwireless.constellation_view("16qam", reference=False, points=10)
    tb = gr.top_block()
    x = np.ones(50, np.complex64)
    tb.connect(blocks.vector_source_c(x.tolist()), (view, 0))
    tb.connect(blocks.vector_source_c(x.tolist()), (view, 1))
    tb.run()
    assert view.model.ber is None and view.model.bits_compared == 0
    with pytest.raises(ValueError, match="unknown constellation"):
        diffwireless.constellation_view("17qam")
