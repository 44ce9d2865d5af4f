"""QA: diffusion_waterfall in a flowgraph fed known samples and findings, checked through its widget."""

from __future__ import annotations

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import diffwireless
from gnuradio.diffwireless._pmt import dict_to_pmt
from gnuradio.diffwireless.gui.waterfall import Box

RATE = 1e6
SPR = 4096  # samples per row
N = 100 * SPR


def burst_stream() -> np.ndarray:
    """Noise, and a tone at +250 kHz in rows 40..49."""
    rng = np.random.default_rng(0)
    x = 0.05 * (rng.standard_normal(N) + 1j * rng.standard_normal(N))
    t = np.arange(40 * SPR, 50 * SPR)
    x[t] += np.exp(2j * np.pi * 0.25 * t)
    return x.astype(np.complex64)


def run(block, x, messages=()):
    tb = gr.top_block()
    src = blocks.vector_source_c(x.tolist())
    throttle = blocks.throttle(gr.sizeof_gr_complex, 4e6)  # so the block runs while the messages arrive
    tb.connect(src, throttle, block)
    tb.start()
    for port, value in messages:
        block.to_basic_block()._post(pmt.intern(port), value)
    tb.wait()


def test_rows_boxes_and_scores_land_on_their_samples(qapp):
    wf = diffwireless.diffusion_waterfall(sample_rate=RATE, fft_size=256, samples_per_row=SPR, history_rows=128)
    view_widget = wf.qwidget()
    event = dict_to_pmt({"start": 40 * SPR, "end": 50 * SPR, "label": "anomaly", "peak": 9.0})
    decision = dict_to_pmt({"start": 10 * SPR, "end": 12 * SPR, "label": "qpsk", "confidence": 0.93})
    scores = dict_to_pmt({"start": 0, "window": 1024, "threshold": 4.5,
                          "scores": np.linspace(0, 10, 200).astype(np.float32)})
    run(wf, burst_stream(), [("events", event), ("classification", decision), ("scores", scores),
                             ("events", pmt.intern("not a dict"))])
    view = wf.view
    view.refresh()
    model = wf.model
    assert model.last_row == 99 and np.isfinite(model.image[-100:]).all() and np.isnan(model.image[:-100]).all()
    # The tone's bin (+250 kHz of 1 MHz: bin 128 + 64) is the peak of exactly rows 40..49.
    rows = model.image[-100:]
    peak_bins = rows.argmax(axis=1)
    assert set(np.flatnonzero(peak_bins == 192)) == set(range(40, 50))
    # Boxes at the samples they concern, labelled; their rows on the image.
    drawn = sorted(view.drawn_boxes())
    assert drawn == sorted([(10 * SPR / RATE, 2 * SPR / RATE, "qpsk 0.93"),
                            (40 * SPR / RATE, 10 * SPR / RATE, "anomaly")])
    rows_of = {b.label: model.box_rows(b) for b in model.boxes}
    assert rows_of == {"anomaly": (28 + 40, 28 + 49), "qpsk": (28 + 10, 28 + 11)}  # 128 rows, 100 filled
    # The score trace at the windows' centres, and the threshold line.
    x, y = view.score_curve.getData()
    assert len(x) == 200 and x[0] == pytest.approx(512 / RATE) and y[-1] == pytest.approx(10.0)
    assert view.threshold_line.value() == pytest.approx(4.5) and view.threshold_line.isVisible() is not None
    assert wf.messages_ignored == 1
    assert view_widget is view.widget


def test_rows_scroll_and_old_findings_leave_the_screen(qapp):
    wf = diffwireless.diffusion_waterfall(fft_size=64, samples_per_row=1024, history_rows=16)
    wf.qwidget()
    wf.model.push_box(Box(0, 1024, "old", "event"))
    run(wf, np.ones(64 * 1024, np.complex64))
    wf.view.refresh()
    assert wf.model.last_row == 63 and wf.model.first_sample == 48 * 1024
    assert wf.model.boxes == [] and wf.view.drawn_boxes() == []


def test_a_view_that_cannot_keep_up_thins_and_says_so(qapp):
    wf = diffwireless.diffusion_waterfall(fft_size=64, samples_per_row=64, history_rows=8, fps=1)
    wf.qwidget()
    wf.view.timer.stop()  # a view that never gets to draw
    run(wf, np.ones(64 * 100, np.complex64))
    assert wf.model.rows_in.thinned == 92 and wf.model.rows_in.thinned_fraction == pytest.approx(0.92)
    wf.view.counter._t0 -= 2  # a second has passed: the title is updated on the next frame
    wf.view.refresh()
    assert "thinned: 92.0% of rows not drawn" in wf.view.status.text()


def test_bad_parameters_fail_when_the_block_is_built():
    with pytest.raises(ValueError, match="samples_per_row >= fft_size"):
        diffwireless.diffusion_waterfall(fft_size=1024, samples_per_row=512)
    with pytest.raises(ValueError, match="fps"):
        diffwireless.diffusion_waterfall(fps=0)
    with pytest.raises(ValueError, match="sample_rate"):
        diffwireless.diffusion_waterfall(sample_rate=float("nan"))
