"""QA: the modulation classifier (core and block) on frames from GNU Radio's modulators."""

from __future__ import annotations

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from gnuradio import diffwireless
from diffwireless.classifier import ModulationClassifier, frame_items
from diffwireless.engine import DenoiseEngine
from diffwireless.errors import ModelError
from diffwireless.modulation_data import CLASSES
from gnuradio.diffwireless.recipes.modulation_sources import synthesize


def run_to_end(blk, x: np.ndarray):
    """``x`` (ending with a ``dw_eos`` tag) through ``blk``; returns its int sink and its messages' store."""
    tb = gr.top_block()
    snk = blocks.vector_sink_i()
    dbg = blocks.message_debug()
    eos = gr.tag_utils.python_to_tag((len(x) - 1, pmt.intern("dw_eos"), pmt.from_long(len(x)), pmt.intern("qa")))
    tb.connect(blocks.vector_source_c(x.tolist(), False, 1, [eos]), blk, snk)
    tb.msg_connect(blk, "classification", dbg, "store")
    tb.run()
    return snk, dbg


@pytest.fixture(scope="module")
def frames():
    return synthesize(8, (20.0,), seed=123)  # 88 fresh frames at 20 dB, every class


def test_frame_items_are_unit_power_iq_rows():
    x = (np.arange(8) * (1 + 2j)).reshape(2, 4).astype(np.complex64)
    items = frame_items(x)
    assert items.shape == (2, 2, 4) and items.dtype == np.float32
    np.testing.assert_allclose(np.mean(items[:, 0] ** 2 + items[:, 1] ** 2, axis=1), 1.0, rtol=1e-5)
    assert np.all(frame_items(np.zeros((1, 4), np.complex64)) == 0)  # a silent frame stays silent


def test_shipped_classifier_labels_clean_frames(frames):
    clf = ModulationClassifier("modclass_resnet")
    assert clf.classes == CLASSES and clf.frame_len == 1024
    engine = DenoiseEngine("cpu").start()
    try:
        out = clf.classify(frames.frames, engine)
    finally:
        engine.stop()
    truth = frames.class_indices()
    accuracy = np.mean(out.index == truth)
    # At 20 dB the card's accuracy is far above chance (1/11); QAM orders and the FSK pair may be confused.
    assert accuracy > 0.6, accuracy
    assert np.all(out.top3[:, 0] == out.index) and np.all((out.confidence > 0) & (out.confidence <= 1))
    assert np.mean([t in top for t, top in zip(truth, out.top3)]) > accuracy


def test_block_outputs_one_class_per_frame_with_tags_and_messages(frames):
    x = frames.frames.ravel()
    snk, dbg = run_to_end(diffwireless.modulation_classifier("modclass_resnet", min_confidence=0.0, engine="cpu"), x)
    out = np.array(snk.data())
    assert len(out) == len(frames.labels)  # one decision per frame, every frame
    eng = DenoiseEngine("cpu").start()
    try:
        ref = ModulationClassifier("modclass_resnet").classify(frames.frames, eng).index
    finally:
        eng.stop()
    np.testing.assert_array_equal(out, ref)  # the block decides as the core does
    tags = [t for t in snk.tags() if pmt.symbol_to_string(t.key) == "dw_class"]
    assert [t.offset for t in tags] == list(range(len(out)))
    first = pmt.to_python(tags[5].value)
    assert first["index"] == out[5] and first["label"] == CLASSES[out[5]] and first["start"] == 5 * 1024
    assert len(first["top3"]) == 3 and first["top3"][0] == first["label"]
    assert dbg.num_messages() == len(out)


def test_confidence_gate_and_bad_arguments(frames):
    x = frames.frames[:16].ravel()
    tb = gr.top_block()
    blk = diffwireless.modulation_classifier("modclass_resnet", min_confidence=0.9, engine="cpu")
    snk = blocks.vector_sink_i()
    tb.connect(blocks.vector_source_c(x.tolist()), blk, snk)
    tb.run()
    eng = DenoiseEngine("cpu").start()
    try:
        conf = ModulationClassifier("modclass_resnet").classify(frames.frames[:16], eng).confidence
    finally:
        eng.stop()
    tagged = sorted(t.offset for t in snk.tags() if pmt.symbol_to_string(t.key) == "dw_class")
    assert len(snk.data()) == 16 and tagged == list(np.flatnonzero(conf >= 0.9))
    with pytest.raises(ValueError, match="min_confidence"):
        diffwireless.modulation_classifier("modclass_resnet", min_confidence=2.0)
    with pytest.raises(ModelError, match="not a modulation classifier"):
        diffwireless.modulation_classifier("anomaly_band")
    with pytest.raises(ValueError, match="1024 samples"):
        ModulationClassifier("modclass_resnet").job(np.zeros((2, 100), np.complex64))


@pytest.fixture(scope="module")
def band():
    """One receiver's capture of an OOK telegram, a 2-FSK burst and an OFDM packet at 20 dB, and where each lies."""
    from gnuradio.diffwireless.recipes.frontend_figure import capture

    return capture(4)


def test_front_end_mode_decides_bursts_and_leaves_quiet_frames_undecided(band):
    from diffwireless.classifier import FAMILIES

    x, truth = band
    blk = diffwireless.modulation_classifier("modclass_radio", engine="cpu")
    assert blk.front_end == "bursts"  # the default for a model trained on fitted bursts
    snk, dbg = run_to_end(blk, x)
    out = np.array(snk.data())
    assert len(out) == -(-len(x) // 1024)  # one item per frame, the last partial one too
    first, last = truth[0][0] // 1024, -(-truth[-1][1] // 1024)
    assert np.all(out[:first] == -1) and np.all(out[last + 1:] == -1)  # quiet stretches: no decision
    messages = [pmt.to_python(dbg.get_message(i)) for i in range(dbg.num_messages())]
    right = 0
    for start, end, label in truth:
        inside = out[start // 1024 + 1:end // 1024]
        assert np.all(inside != -1)  # every frame of the burst is decided
        mine = [m for m in messages if m["start"] < end and m["end"] > start]
        assert mine and all(m["snr_db"] > 3 for m in mine)  # over the gate (an OOK burst counts its off-times)
        right += all(m["family"] == FAMILIES[label] for m in mine)
        assert not any(m["family"] not in (FAMILIES[label], "unknown") and m["confidence"] > 0.9 for m in mine)
    assert right >= 2, messages  # the model names the family of clear bursts (its card: high-SNR accuracy)
    tags = [t for t in snk.tags() if pmt.symbol_to_string(t.key) == "dw_class"]
    assert len(tags) == len(messages)
    with pytest.raises(ValueError, match="band_share"):
        diffwireless.modulation_classifier("modclass_resnet", front_end="bursts")
    with pytest.raises(ValueError, match="front_end"):
        diffwireless.modulation_classifier("modclass_radio", front_end="sometimes")


def test_front_end_mode_names_nan_input():
    x = np.zeros(20_000, np.complex64)
    x[5000] = np.nan
    tb = gr.top_block()
    blk = diffwireless.modulation_classifier("modclass_radio", engine="cpu")
    tb.connect(blocks.vector_source_c(x.tolist()), blk, blocks.null_sink(gr.sizeof_int))
    tb.run()  # ends: the block stops the flowgraph instead of gating the NaN away
    assert isinstance(blk.error, ValueError) and "NaN/Inf at input item 5000" in str(blk.error)
