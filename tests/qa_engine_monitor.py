"""QA: engine_monitor plots the stats messages of a running diffusion block."""

from __future__ import annotations

import numpy as np
import pmt
from gnuradio import blocks, gr

from gnuradio import diffwireless
from conftest import random_iq


def test_stats_of_a_running_block_become_series(qapp):
    mon = diffwireless.engine_monitor(history_s=60)
    mon.qwidget()
    tb = gr.top_block()
    det = diffwireless.anomaly_detector(engine="cpu", stats_interval_s=0.05)
    tb.connect(blocks.vector_source_c(random_iq(1024 * 200).tolist()), blocks.throttle(gr.sizeof_gr_complex, 1e6),
               det, blocks.null_sink(gr.sizeof_float))
    tb.msg_connect(det, "stats", mon, "stats")
    tb.start()
    mon.to_basic_block()._post(pmt.intern("stats"), pmt.intern("noise"))
    tb.wait()
    mon.view.refresh()
    series = mon.model.series[det.alias()]
    assert len(series["t"]) >= 2 and all(np.diff(np.array(series["t"])) >= 0)
    assert max(series["batch_mean"]) > 0 and list(series["drops"])[-1] == 0
    assert mon.messages_ignored == 1
    x, y = mon.view.curves[(det.alias(), "batch_mean")].getData()
    assert len(x) == len(series["t"])
