"""QA: sigmf_sink records streams with captures and annotations from tags and messages; replay -> record round trip."""

import json

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from diffwireless import RecordingError, SigMFRecording
from gnuradio import diffwireless
from conftest import random_iq


def test_replay_then_record_reproduces_samples_captures_and_annotations(make_recording, tmp_path):
    x = random_iq(40_000, seed=21)
    meta = make_recording("orig", x, sample_rate=5e6,
                          captures=[{"sample_start": 0, "frequency_hz": 2.4e9,
                                     "datetime": "2026-05-01T08:00:00.250000000Z"},
                                    {"sample_start": 25_000, "frequency_hz": 2.45e9}],
                          annotations=[{"sample_start": 100, "sample_count": 50, "label": "a", "comment": "first"},
                                       {"sample_start": 30_000, "sample_count": 7, "label": "b"}])
    source = diffwireless.sigmf_source(str(meta))
    sink = diffwireless.sigmf_sink(str(tmp_path / "copy"), sample_rate=0)
    tb = gr.top_block()
    tb.connect(source, sink)
    tb.run()
    orig, copy = SigMFRecording(meta), SigMFRecording(tmp_path / "copy")
    np.testing.assert_array_equal(copy.read(0, copy.num_samples), x)
    assert copy.sample_rate == 5e6
    assert [(c.sample_start, c.frequency_hz) for c in copy.captures] == [(0, 2.4e9), (25_000, 2.45e9)]
    assert copy.captures[0].datetime == "2026-05-01T08:00:00.250000000Z"
    assert [(a.sample_start, a.sample_count, a.fields) for a in copy.annotations] == \
        [(a.sample_start, a.sample_count, a.fields) for a in orig.annotations]


def test_chosen_tags_become_annotations_and_others_do_not(tmp_path):
    src = blocks.vector_source_c(np.ones(1000, np.complex64), False, 1, [
        gr.tag_utils.python_to_tag((10, pmt.intern("snr_db"), pmt.from_double(12.5))),
        gr.tag_utils.python_to_tag((20, pmt.intern("ignored"), pmt.from_long(1))),
    ])
    sink = diffwireless.sigmf_sink(str(tmp_path / "t"), datatype="ci16_le", sample_rate=1e3,
                                   annotate_tags=["snr_db"])
    tb = gr.top_block()
    tb.connect(src, sink)
    tb.run()
    rec = SigMFRecording(tmp_path / "t")
    assert rec.num_samples == 1000 and rec.datatype.name == "ci16_le"
    assert [(a.sample_start, a.sample_count, a.fields) for a in rec.annotations] == \
        [(10, 1, {"core:label": "snr_db", "core:comment": "12.5"})]


def test_annotation_messages_become_annotations(tmp_path):
    src = blocks.vector_source_c(np.zeros(20_000, np.complex64))
    throttle = blocks.throttle(gr.sizeof_gr_complex, 100_000)  # 0.2 s: room for the message to arrive
    sink = diffwireless.sigmf_sink(str(tmp_path / "m"), sample_rate=1e5)
    tb = gr.top_block()
    tb.connect(src, throttle, sink)
    tb.start()
    event = pmt.to_pmt({"start": 500, "end": 800, "label": "jammer", "peak_score": 4.5})
    sink.to_basic_block()._post(pmt.intern("annotations"), event)
    tb.wait()
    ann = SigMFRecording(tmp_path / "m").annotations
    assert [(a.sample_start, a.sample_count, a.fields) for a in ann] == \
        [(500, 300, {"core:label": "jammer", "diffwireless:peak_score": 4.5})]


def test_metadata_validates_with_the_sigmf_package(tmp_path):
    src = blocks.vector_source_c(random_iq(100))
    sink = diffwireless.sigmf_sink(str(tmp_path / "v"), sample_rate=1e6, frequency=915e6, description="qa")
    tb = gr.top_block()
    tb.connect(src, sink)
    tb.run()
    from sigmf import sigmffile

    rec = sigmffile.fromfile(str(tmp_path / "v.sigmf-meta"))
    rec.validate()
    assert rec.get_global_field("core:description") == "qa"
    assert json.loads((tmp_path / "v.sigmf-meta").read_text())["captures"][0]["core:frequency"] == 915e6


def test_existing_recording_is_not_overwritten_by_default(tmp_path):
    (tmp_path / "x.sigmf-meta").write_text("{}")
    with pytest.raises(RecordingError, match="exists; remove it or set overwrite"):
        diffwireless.sigmf_sink(str(tmp_path / "x"))


def test_missing_folder_fails_when_the_block_is_built(tmp_path):
    with pytest.raises(RecordingError, match="folder .*nowhere does not exist"):
        diffwireless.sigmf_sink(str(tmp_path / "nowhere" / "x"))


def test_bad_parameters_fail_when_the_block_is_built(tmp_path):
    for name, value in (("sample_rate", -1.0), ("sample_rate", float("nan")), ("frequency", float("inf"))):
        with pytest.raises(ValueError, match=f"sigmf_sink: {name} must be finite and >= 0"):
            diffwireless.sigmf_sink(str(tmp_path / "bad"), **{name: value})


# Run in a child process: before, these values aborted the interpreter (SIGABRT at stop) and lost the metadata.
BAD_VALUES_FLOWGRAPH = """
import sys, time
import numpy as np, pmt
from gnuradio import blocks, gr
from gnuradio import diffwireless

tags = [gr.tag_utils.python_to_tag((5, pmt.intern("rx_rate"), pmt.from_double(-5.0))),
        gr.tag_utils.python_to_tag((7, pmt.intern("annotation"), pmt.to_pmt({"label": "ok", "sample_count": 3})))]
src = blocks.vector_source_c(np.ones(20_000, np.complex64).tolist(), False, 1, tags)
throttle = blocks.throttle(gr.sizeof_gr_complex, 100_000)
sink = diffwireless.sigmf_sink(sys.argv[1], sample_rate=1e5)
tb = gr.top_block()
tb.connect(src, throttle, sink)
tb.start()
bad = [{"label": "complex", "value": 1 + 2j}, {"label": "negative", "start": 10, "sample_count": -4},
       {"label": "edge", "start": 10, "freq_lower_edge": 1e13, "freq_upper_edge": 2e13},
       {"label": "negative start", "sample_start": -50}, {"label": "good", "start": 100, "end": 150}]
for value in bad:
    sink.to_basic_block()._post(pmt.intern("annotations"), pmt.to_pmt(value))
sink.to_basic_block()._post(pmt.intern("annotations"),
                            pmt.to_pmt({"label": "nan peak", "start": 200, "end": 210, "peak": float("nan")}))
sink.to_basic_block()._post(pmt.intern("annotations"), pmt.init_c32vector(2, [1j, 2]))
tb.wait()
print("SKIPPED", sink.skipped)
"""


def test_bad_tag_and_message_values_are_left_out_and_the_recording_is_kept(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "fg.py"
    script.write_text(BAD_VALUES_FLOWGRAPH)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "rec")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SKIPPED 6" in proc.stdout, proc.stdout + proc.stderr  # rx_rate -5, four bad annotations, a vector
    rec = SigMFRecording(tmp_path / "rec")  # valid SigMF: the sigmf package validated it when it was written
    assert rec.num_samples == 20_000 and rec.sample_rate == 1e5
    assert rec.metadata["global"]["diffwireless:skipped_values"] == 6 and not rec.in_progress
    got = {a.fields.get("core:label"): (a.sample_start, a.sample_count, a.fields) for a in rec.annotations}
    assert set(got) == {"ok", "good", "nan peak"}, got
    assert got["good"][:2] == (100, 50)
    assert "diffwireless:peak" not in got["nan peak"][2]  # NaN is never written
    assert not list(tmp_path.glob("*.tmp"))


def test_a_folder_where_no_file_can_be_created_fails_when_the_block_is_built(tmp_path):
    import os
    import subprocess

    # A read-only mount refuses even root (permission bits do not): a tmpfs remounted read-only where we may.
    folder = tmp_path / "ro"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    if not mounted:
        os.chmod(folder, 0o500)
        if os.access(folder, os.W_OK) and os.geteuid() == 0:
            pytest.skip("cannot make a read-only folder here (root, and no mount)")
    try:
        with pytest.raises(RecordingError, match="cannot write .*ro/x.sigmf-data"):
            diffwireless.sigmf_sink(str(folder / "x"), sample_rate=1e3)
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=False)
        os.chmod(folder, 0o700)


RECORDING_FLOWGRAPH = """
import sys
import numpy as np, pmt
from gnuradio import blocks, gr
from gnuradio import diffwireless

x = (np.exp(2j * np.pi * 0.01 * np.arange(10_000)) * 0.5).astype(np.complex64)
tags = [gr.tag_utils.python_to_tag((0, pmt.intern("rx_freq"), pmt.from_double(433.92e6)))]
src = blocks.vector_source_c(x.tolist(), True, 1, tags)
throttle = blocks.throttle(gr.sizeof_gr_complex, 200_000)
sink = diffwireless.sigmf_sink(sys.argv[1], datatype="ci16_le", sample_rate=200_000)
tb = gr.top_block()
tb.connect(src, throttle, sink)
print("RECORDING", flush=True)
tb.run()  # a plain run(): no handler of its own for SIGTERM
"""


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_a_recording_killed_mid_run_is_readable_with_its_rate_and_datatype(tmp_path, sig):
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "rec.py"
    script.write_text(RECORDING_FLOWGRAPH)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "killed")], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "RECORDING"
        time.sleep(1.0)
    finally:
        proc.send_signal(getattr(signal, sig))
        proc.wait(timeout=30)
    assert proc.returncode == -getattr(signal, sig)  # killed, no clean-up ran
    rec = SigMFRecording(tmp_path / "killed")  # the schema-checked reader: readable as it was left
    assert rec.datatype.name == "ci16_le" and rec.sample_rate == 200_000
    assert rec.captures[0].frequency_hz == 433.92e6
    assert rec.in_progress and "not closed" in rec.summary_line()  # the recording says it was cut short
    assert rec.num_samples >= 50_000  # the samples of the second before the kill, at 200 kS/s
    assert not list(tmp_path.glob("*.tmp"))
    # and SigMF Source replays all of it
    src = diffwireless.sigmf_source(str(tmp_path / "killed"))
    snk = blocks.vector_sink_c()
    tb = gr.top_block()
    tb.connect(src, snk)
    tb.run()
    assert len(snk.data()) == rec.num_samples


def test_a_write_error_ends_the_flowgraph_naming_the_file(tmp_path):
    import os

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    data = tmp_path / "full.sigmf-data"
    data.symlink_to("/dev/full")  # every write fails as on a full disk
    sink = diffwireless.sigmf_sink(str(tmp_path / "full"), sample_rate=1e3, overwrite=True)
    tb = gr.top_block()
    tb.connect(blocks.vector_source_c(np.ones(1_000_000, np.complex64)), sink)
    tb.start()
    tb.wait()  # ends: the block returned WORK_DONE with the error (before, its thread died and wait() hung)
    tb.stop()
    tb.wait()
    assert isinstance(sink.error, OSError) and "No space left" in str(sink.error)


def test_tag_values_out_of_int64_become_pmt_without_an_error():
    from gnuradio.diffwireless._pmt import to_pmt, to_python

    # A SigMF annotation may hold any JSON number; PMT's integers are int64.
    for value in (2 ** 63, 2 ** 64 - 1, [1, 2 ** 63, "a"], {"n": -(2 ** 63) - 1}, (1.5, "x"), 7):
        back = to_python(to_pmt("anything", value))
        assert str(back) == str(value) or back == {"n": str(-(2 ** 63) - 1)}
