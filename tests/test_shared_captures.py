"""QA: every real recording in ../shared/captures replays through sigmf_source with samples out == SigMF count.

The expected count is computed here from the raw file size and the datatype's sample size, independently of the
reader under test. These recordings exist in CI and developer checkouts, not in a user's clone.
"""

import json

import pytest
from gnuradio import blocks, gr

from gnuradio import diffwireless
from conftest import SHARED_CAPTURES

CAPTURES = sorted(SHARED_CAPTURES.glob("*/*.sigmf-meta")) if SHARED_CAPTURES.is_dir() else []
SAMPLE_BYTES = {"cf32_le": 8, "ci16_le": 4, "cu8": 2}


def test_shared_captures_are_present():
    if not SHARED_CAPTURES.is_dir():
        pytest.skip(f"{SHARED_CAPTURES} is absent (a user's clone has no ../shared)")
    assert len(CAPTURES) >= 20


@pytest.mark.parametrize("meta", CAPTURES, ids=[f"{p.parent.name}/{p.stem}" for p in CAPTURES])
def test_replay_of_real_capture_is_lossless(meta):
    doc = json.loads(meta.read_text())
    expected = meta.with_suffix(".sigmf-data").stat().st_size // SAMPLE_BYTES[doc["global"]["core:datatype"]]
    source = diffwireless.sigmf_source(str(meta))
    sink = blocks.null_sink(gr.sizeof_gr_complex)  # its nitems_read counts what arrived
    tb = gr.top_block()
    tb.connect(source, sink)
    tb.run()
    assert sink.nitems_read(0) == expected
    assert source.recording.num_samples == expected
