"""QA: sigmf_source in flowgraphs (vector sinks): lossless replay, tags at start and capture boundaries, repeat."""

import json
import time

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import diffwireless
from conftest import random_iq


def _run(source, head=None):
    sink = blocks.vector_sink_c()
    tb = gr.top_block()
    if head is None:
        tb.connect(source, sink)
    else:
        limit = blocks.head(gr.sizeof_gr_complex, head)
        tb.connect(source, limit, sink)
    tb.run()
    return np.asarray(sink.data(), dtype=np.complex64), sink.tags()


def _tags(tags):
    return [(t.offset, pmt.symbol_to_string(t.key), pmt.to_python(t.value)) for t in tags]


@pytest.fixture
def two_capture_recording(make_recording):
    x = random_iq(50_000, seed=11)
    meta = make_recording("two", x, sample_rate=2e6,
                          captures=[{"sample_start": 0, "frequency_hz": 100e6, "datetime": "2026-01-01T00:00:00Z"},
                                    {"sample_start": 30_000, "frequency_hz": 101e6}],
                          annotations=[{"sample_start": 12_345, "sample_count": 100, "label": "burst"}])
    return meta, x


def test_replay_is_lossless_and_exact(two_capture_recording):
    meta, x = two_capture_recording
    y, _ = _run(diffwireless.sigmf_source(str(meta)))
    assert y.size == x.size
    np.testing.assert_array_equal(y, x)


def test_tags_at_start_capture_boundary_and_annotation(two_capture_recording):
    meta, _ = two_capture_recording
    _, tags = _run(diffwireless.sigmf_source(str(meta)))
    got = _tags(tags)
    assert (0, "rx_rate", 2e6) in got and (0, "rx_freq", 100e6) in got
    assert (0, "rx_time", (1767225600, 0.0)) in got
    assert (30_000, "rx_rate", 2e6) in got and (30_000, "rx_freq", 101e6) in got
    assert (12_345, "annotation", {"sample_count": 100, "label": "burst"}) in got
    assert got[-1] == (49_999, "dw_eos", 50_000)  # the end-of-stream marker on the last sample
    assert len(got) == 7


def test_rx_time_is_a_uint64_double_tuple_like_gr_uhd(two_capture_recording):
    meta, _ = two_capture_recording
    _, tags = _run(diffwireless.sigmf_source(str(meta)))
    rx_time = next(t.value for t in tags if pmt.symbol_to_string(t.key) == "rx_time")
    assert pmt.is_tuple(rx_time) and pmt.is_uint64(pmt.tuple_ref(rx_time, 0))
    assert pmt.is_real(pmt.tuple_ref(rx_time, 1))


def test_repeat_replays_again_with_tags_each_pass(two_capture_recording):
    meta, x = two_capture_recording
    y, tags = _run(diffwireless.sigmf_source(str(meta), repeat=True), head=2 * x.size + 10)
    np.testing.assert_array_equal(y[x.size: 2 * x.size], x)
    offsets = [o for o, k, _ in _tags(tags) if k == "rx_freq"]
    assert offsets == [0, 30_000, x.size, x.size + 30_000, 2 * x.size]


def test_realtime_pacing_does_not_run_ahead_of_the_sample_rate(make_recording):
    # 50 ms of samples at 1 MS/s: a paced replay cannot finish sooner (the upper bound is not tested: CI load varies).
    meta = make_recording("paced", random_iq(50_000), sample_rate=1e6)
    start = time.monotonic()
    y, _ = _run(diffwireless.sigmf_source(str(meta), realtime=True))
    assert y.size == 50_000
    assert time.monotonic() - start >= 0.045


def test_raw_file_replay(tmp_path):
    x = random_iq(4096, seed=12)
    (tmp_path / "f.cfile").write_bytes(x.astype("<c8").tobytes())
    y, tags = _run(diffwireless.sigmf_source(str(tmp_path / "f.cfile"), datatype="cf32_le", sample_rate=48e3))
    np.testing.assert_array_equal(y, x)
    assert _tags(tags) == [(0, "rx_rate", 48e3), (4095, "dw_eos", 4096)]


def test_bad_recording_fails_when_the_block_is_built(tmp_path):
    (tmp_path / "b.sigmf-meta").write_text("not json")
    with pytest.raises(ValueError, match="metadata is not valid JSON"):
        diffwireless.sigmf_source(str(tmp_path / "b.sigmf-meta"))


def test_realtime_without_a_rate_is_refused(tmp_path):
    (tmp_path / "r.cfile").write_bytes(b"\0" * 80)
    with pytest.raises(ValueError, match="real-time pacing needs a sample rate"):
        diffwireless.sigmf_source(str(tmp_path / "r.cfile"), realtime=True, datatype="cf32_le")


def test_a_rate_that_is_not_finite_and_positive_is_refused_naming_the_file(tmp_path, make_recording):
    (tmp_path / "r.cfile").write_bytes(b"\0" * 80)
    for rate in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="r.cfile: sample_rate must be finite"):
            diffwireless.sigmf_source(str(tmp_path / "r.cfile"), realtime=True, datatype="cf32_le", sample_rate=rate)
    # NaN in the metadata passes the sigmf package's schema check; the block refuses it (before: realtime
    # replay sat at 0 items for ever)
    meta = make_recording("n", np.zeros(100, np.complex64), sample_rate=1e3)
    doc = json.loads(meta.read_text())
    doc["global"]["core:sample_rate"] = float("nan")
    meta.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"n.sigmf-meta: core:sample_rate must be finite and > 0"):
        diffwireless.sigmf_source(str(meta), realtime=True)


@pytest.mark.parametrize("field, section, value", [
    ("core:frequency", "captures", float("inf")), ("core:sample_start", "captures", -3),
    ("core:header_bytes", "captures", 2 ** 64), ("core:sample_count", "annotations", -1),
    ("core:freq_lower_edge", "annotations", float("nan")), ("core:trailing_bytes", "global", -8),
    ("core:num_channels", "global", 0),
])
def test_every_numeric_field_is_checked_when_opened_naming_the_file(make_recording, field, section, value):
    meta = make_recording("f", np.zeros(100, np.complex64), sample_rate=1e3,
                          annotations=[{"sample_start": 10, "sample_count": 5, "label": "x"}])
    doc = json.loads(meta.read_text())
    if section == "global":
        doc["global"][field] = value
    else:
        doc[section][0][field] = value
    meta.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=rf"f.sigmf-meta: .*{field}"):
        diffwireless.sigmf_source(str(meta))


def test_a_read_that_fails_during_the_replay_ends_the_flowgraph_with_the_file_named(make_recording):
    meta = make_recording("cut", random_iq(50_000), sample_rate=1e3)
    src = diffwireless.sigmf_source(str(meta))

    def fails(start, count):
        raise OSError(5, "Input/output error")

    src.recording.read = fails  # as a file on a vanished mount
    tb = gr.top_block()
    tb.connect(src, blocks.vector_sink_c())
    tb.run()  # returns (before, the exception stayed in work() and the flowgraph sat at 0 items)
    assert "cut.sigmf-data: replay stopped at sample 0: OSError" in str(src.error)
