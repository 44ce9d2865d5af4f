"""QA: anomaly_detector in flowgraphs (vector sources and sinks, message debug, SigMF Sink annotations)."""

from __future__ import annotations

import json
import time

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import diffwireless
from diffwireless import spectrum_scenes as scenes
from diffwireless.anomaly import AnomalyDetector, EventTracker
from diffwireless.engine import DenoiseEngine
from diffwireless.errors import ModelError

WINDOW = 1024


def stream(n_windows: int, anomalous: range, seed: int = 0, jnr_db: float = 20.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = scenes.normal_windows(n_windows, rng)
    if len(anomalous):
        x[anomalous.start:anomalous.stop] = scenes.anomalous_windows("tone", len(anomalous), jnr_db, rng)
    return x.ravel()


def source(x, tags=()):
    eos = gr.tag_utils.python_to_tag((len(x) - 1, pmt.intern("dw_eos"), pmt.from_long(len(x)), pmt.intern("qa")))
    return blocks.vector_source_c(x.tolist(), False, 1, [*tags, eos])


def run(x, tags=(), **kw):
    tb = gr.top_block()
    det = diffwireless.anomaly_detector("anomaly_band", **kw)
    snk = blocks.vector_sink_f()
    dbg = blocks.message_debug()
    tb.connect(source(x, tags), det, snk)
    tb.msg_connect(det, "events", dbg, "store")
    tb.run()
    events = [pmt.to_python(dbg.get_message(i)) for i in range(dbg.num_messages())]
    return det, np.array(snk.data()), snk.tags(), events


def test_scores_match_the_core_and_events_bound_the_anomaly():
    x = stream(24, range(8, 12))
    det, scores, tags, events = run(x, pfa=0.01, hold=2, sample_rate=1e6)
    assert len(scores) == 24  # one score per window, every window
    eng = DenoiseEngine("cpu", seed=0).start()
    try:
        ref = AnomalyDetector("anomaly_band").scores(x.reshape(24, WINDOW), eng, np.arange(24) * WINDOW)[:, 0]
    finally:
        eng.stop()
    # Each window's latent noise is keyed by its place in the stream: the block and the core agree bit for bit.
    assert np.array_equal(scores, ref)
    assert np.all(scores[8:12] > det.threshold)
    tracker = EventTracker(det.threshold, WINDOW, 2)
    expect = tracker.update(scores, 0)[1] + tracker.flush()
    assert [(e["start"], e["end"]) for e in events] == [(ev.start, ev.end) for ev in expect]
    hit = [e for e in events if e["start"] <= 8 * WINDOW < e["end"]]
    assert len(hit) == 1 and hit[0]["end"] >= 12 * WINDOW and hit[0]["method"] == "ae_ddpm"
    assert hit[0]["duration_s"] == pytest.approx((hit[0]["end"] - hit[0]["start"]) / 1e6)
    onsets = [t for t in tags if pmt.symbol_to_string(t.key) == "dw_anomaly"]
    assert len(onsets) == len(events)
    assert any(t.offset == hit[0]["start"] // WINDOW for t in onsets)


def test_partial_last_window_is_scored_and_rx_time_dates_events():
    x = stream(6, range(3, 5), jnr_db=40.0)[: 5 * WINDOW + 100]
    rx = gr.tag_utils.python_to_tag((0, pmt.intern("rx_time"),
                                     pmt.make_tuple(pmt.from_uint64(1_700_000_000), pmt.from_double(0.5)),
                                     pmt.intern("qa")))
    det, scores, tags, events = run(x, [rx], threshold=1e9, sample_rate=1e6)
    assert len(scores) == 6 and not events  # no event over an impossible threshold
    det, scores, tags, events = run(x, [rx], method="energy", threshold=33.0, sample_rate=1e6)
    assert len(scores) == 6
    first = next(e for e in events if e["start"] == 3 * WINDOW)
    assert first["rx_time"][0] == 1_700_000_000 and first["rx_time"][1] == pytest.approx(0.5 + 3 * WINDOW / 1e6)
    # rx_time goes to the score of its window, as every input tag.
    assert [t.offset for t in tags if pmt.symbol_to_string(t.key) == "rx_time"] == [0]


def test_events_become_sigmf_annotations(tmp_path):
    # A live-like flowgraph (the recording repeats, paced): GNU Radio hands no message to a block that has finished,
    # so the sink must still be running when the event arrives; it is stopped once the detector has reported one.
    x = stream(16, range(5, 9), jnr_db=40.0)
    tb = gr.top_block()
    src = blocks.vector_source_c(x.tolist(), True)
    throttle = blocks.throttle(gr.sizeof_gr_complex, 2e6)
    det = diffwireless.anomaly_detector("anomaly_band", method="energy", threshold=33.0, sample_rate=1e6)
    sink = diffwireless.sigmf_sink(str(tmp_path / "events"), "cf32_le", 1e6)
    tb.connect(src, throttle, det, blocks.null_sink(gr.sizeof_float))
    tb.connect(throttle, sink)
    tb.msg_connect(det, "events", sink, "annotations")
    tb.start()
    deadline = time.monotonic() + 20
    while not det.events and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    tb.stop()
    tb.wait()
    assert det.events, "no event within 20 s"
    meta = json.loads((tmp_path / "events.sigmf-meta").read_text())
    spans = [(a["core:sample_start"], a.get("core:sample_count"), a.get("core:label")) for a in meta["annotations"]]
    assert spans and spans[0] == (5 * WINDOW, 4 * WINDOW, "anomaly"), spans
    # The stream repeats every 16 windows: so do the events.
    assert all((start - 5 * WINDOW) % (16 * WINDOW) == 0 for start, _, _ in spans)


def test_bad_parameters_and_models_fail_at_construction():
    with pytest.raises(ValueError, match="method"):
        diffwireless.anomaly_detector("anomaly_band", method="magic")
    with pytest.raises(ValueError, match="hold"):
        diffwireless.anomaly_detector("anomaly_band", hold=0)
    with pytest.raises(ValueError, match="pfa"):
        diffwireless.anomaly_detector("anomaly_band", pfa=2.0)
    with pytest.raises(ModelError, match="not an anomaly model"):
        diffwireless.anomaly_detector("iq_denoiser_qpsk_sps4")


def test_nan_input_ends_the_flowgraph_with_an_error():
    x = stream(4, range(0, 0))
    x[2 * WINDOW + 7] = np.nan
    det, scores, _, _ = run(x)
    assert det.error is not None and str(2 * WINDOW + 7) in str(det.error)
    assert len(scores) <= 2


def test_a_replay_gives_the_same_scores_and_events_whatever_the_batching(make_recording):
    """One recording replayed three times under different batch limits (so the engine groups the windows
    differently): scores equal bit for bit, events equal."""
    meta = make_recording("ism", stream(120, range(40, 47), seed=3, jnr_db=8.0), sample_rate=250e3)
    runs = []
    for max_batch in (8, 50, 1024):
        tb = gr.top_block()
        src = diffwireless.sigmf_source(str(meta))
        det = diffwireless.anomaly_detector("anomaly_band", pfa=0.05, sample_rate=250e3,
                                            engine=diffwireless.engine_options(device="cpu", max_batch=max_batch))
        snk = blocks.vector_sink_f()
        tb.connect(src, det, snk)
        tb.run()
        runs.append((np.array(snk.data()), det.events))
    assert len(runs[0][0]) == 120 and runs[0][1]  # every window scored; the burst is an event
    for scores, events in runs[1:]:
        assert np.array_equal(scores, runs[0][0])
        assert events == runs[0][1]
