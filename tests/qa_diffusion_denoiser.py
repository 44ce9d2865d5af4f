"""QA: diffusion_denoiser and its engine_block base in flowgraphs (vector sources and sinks)."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pmt
import pytest
import torch
from gnuradio import analog, blocks, gr

from gnuradio import diffwireless
from diffwireless.denoiser import IQDenoiser
from diffwireless.diffusion import NoiseSchedule
from diffwireless.engine import DenoiseEngine, shared_engines
from diffwireless.errors import EngineError, ModelError
from diffwireless.models import build_model, save_model
from conftest import random_iq

WINDOW = 16


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("rand16", "mlp_denoiser", {"item_shape": [WINDOW, 2], "hidden": 64}, NoiseSchedule(200),
                        card={"description": "random weights, for tests"})
    path = tmp_path_factory.mktemp("models") / "rand16"
    save_model(model, path)
    return str(path) + ".safetensors"


def reference(model_path, x, snr_db, num_steps):
    eng = DenoiseEngine("cpu").start()
    try:
        return IQDenoiser(model_path, num_steps=num_steps).denoise(x, snr_db, eng)
    finally:
        eng.stop()


def tag(offset, key, value):
    return gr.tag_utils.python_to_tag((offset, pmt.intern(key), pmt.to_pmt(value), pmt.intern("qa")))


def source(x, tags=(), eos=True):
    tags = list(tags) + ([tag(len(x) - 1, "dw_eos", len(x))] if eos else [])
    return blocks.vector_source_c(x.tolist(), False, 1, tags)


def keyed(tags, key=None):
    return [(t.offset, pmt.symbol_to_string(t.key), pmt.to_python(t.value)) for t in tags
            if key is None or pmt.symbol_to_string(t.key) == key]


def test_lossless_exact_and_tags_on_their_samples(model_path):
    n = 20_011  # not a multiple of the window: the end-of-stream tag flushes the last, padded window
    x = random_iq(n, seed=1)
    in_tags = [tag(k, "mark", k) for k in (0, 1, 15, 16, 17, 9_999, n - 1)]
    den = diffwireless.diffusion_denoiser(model_path, snr_db=5.0, num_steps=4, engine="cpu")
    sink = blocks.vector_sink_c()
    tb = gr.top_block()
    tb.connect(source(x, in_tags), den, sink)
    tb.run()
    y = np.asarray(sink.data(), dtype=np.complex64)
    assert y.size == n and den.items_in == den.items_out == n
    np.testing.assert_allclose(y, reference(model_path, x, 5.0, 4), rtol=1e-5, atol=1e-5)
    assert [o for o, _, _ in keyed(sink.tags(), "mark")] == [0, 1, 15, 16, 17, 9_999, n - 1]
    assert keyed(sink.tags(), "dw_eos") == [(n - 1, "dw_eos", n)]
    assert den.error is None and not shared_engines()  # released at stop


def test_snr_tag_changes_the_start_step_from_its_window(model_path):
    x = random_iq(4 * WINDOW * 100, seed=2)
    cut = 2 * WINDOW * 100 + 3  # inside a window: the change applies from that window on
    den = diffwireless.diffusion_denoiser(model_path, snr_db=20.0, num_steps=3, engine="cpu")
    sink = blocks.vector_sink_c()
    tb = gr.top_block()
    tb.connect(source(x, [tag(cut, "snr_db", 0.0)]), den, sink)
    tb.run()
    y = np.asarray(sink.data(), dtype=np.complex64)
    w0 = (cut // WINDOW) * WINDOW
    np.testing.assert_allclose(y[:w0], reference(model_path, x[:w0], 20.0, 3), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y[w0:], reference(model_path, x[w0:], 0.0, 3), rtol=1e-5, atol=1e-5)
    assert den.snr_db == 0.0


def test_eight_blocks_share_one_engine_in_order_with_tags(model_path):
    tb = gr.top_block()
    chains = []
    for i in range(8):
        x = random_iq(8_000 + 37 * i, seed=10 + i)
        marks = [tag(k, "mark", k) for k in range(i, len(x), 1_001)]
        den = diffwireless.diffusion_denoiser(model_path, snr_db=8.0, num_steps=2, max_in_flight=64,
                                              engine=diffwireless.engine_options("cpu", max_wait_ms=20.0))
        sink = blocks.vector_sink_c()
        tb.connect(source(x, marks), den, sink)
        chains.append((x, den, sink, [k for k in range(i, len(x), 1_001)]))
    seen = {}
    probe = threading.Event()

    def watch():  # the shared engine, observed while the flowgraph runs
        while not probe.is_set():
            for eng in shared_engines().values():
                seen[id(eng)] = eng.stats()
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    tb.run()
    probe.set()
    watcher.join()
    assert len(seen) == 1  # one engine for the eight blocks
    stats = next(iter(seen.values()))
    for x, den, sink, marks in chains:
        y = np.asarray(sink.data(), dtype=np.complex64)
        assert y.size == x.size
        np.testing.assert_allclose(y, reference(model_path, x, 8.0, 2), rtol=1e-5, atol=1e-5)
        assert [o for o, _, _ in keyed(sink.tags(), "mark")] == marks
    # Work of several blocks shared batches: one block has at most 64 windows in flight.
    assert stats["batches"] < stats["jobs"] and stats["batch_max"] > 64


def test_block_policy_loses_nothing_on_a_long_replay(model_path, make_recording):
    n = 400_000
    meta = make_recording("long", random_iq(n, seed=3), datatype="ci16_le")
    # A small in-flight limit and a small engine queue force backpressure all the way to the source.
    den = diffwireless.diffusion_denoiser(model_path, snr_db=25.0, num_steps=1, max_in_flight=32,
                                          engine=diffwireless.engine_options("cpu", max_batch=64))
    count = blocks.vector_sink_c()
    tb = gr.top_block()
    src = diffwireless.sigmf_source(str(meta))
    tb.connect(src, den, count)
    tb.run()
    y = np.asarray(count.data(), dtype=np.complex64)
    assert y.size == n and den.dropped_items == 0
    assert not keyed(count.tags(), "dw_drop")
    x = src.recording.read(0, n)
    np.testing.assert_allclose(y[-5_000:], reference(model_path, x, 25.0, 1)[-5_000:], rtol=1e-5, atol=1e-5)


class Slow(torch.nn.Module):
    def __init__(self, inner, delay_s=0.0, fail=None):
        super().__init__()
        self.inner, self.delay_s, self.fail = inner, delay_s, fail

    def forward(self, x, t, cond=None):
        if self.fail:
            raise RuntimeError(self.fail)
        time.sleep(self.delay_s)
        return self.inner(x, t, cond)


def patched(block, delay_s=0.0, fail=None):
    """The block with its own copy of the model, slowed down or failing (the shared one stays as it is)."""
    model = block.denoiser.model
    block.denoiser.model = dataclasses.replace(model, network=Slow(model.network, delay_s, fail))
    return block


def test_drop_policy_counts_and_tags_what_it_drops(model_path):
    n = 200_000
    x = random_iq(n, seed=4)
    marks = [tag(k, "mark", k) for k in range(0, n, 5_000)]
    den = patched(diffwireless.diffusion_denoiser(model_path, snr_db=10.0, num_steps=1, max_in_flight=64,
                                                  engine=diffwireless.engine_options("cpu", max_batch=64,
                                                                                     policy="drop")), delay_s=0.01)
    sink = blocks.vector_sink_c()
    tb = gr.top_block()
    tb.connect(source(x, marks), den, sink)
    tb.run()
    y = np.asarray(sink.data(), dtype=np.complex64)
    drops = keyed(sink.tags(), "dw_drop")
    assert den.dropped_items > 0 and drops
    assert y.size + den.dropped_items == n
    assert sum(v for _, _, v in drops) == den.dropped_items
    # No tag is lost: tags of dropped windows ride on the next output sample.
    assert len(keyed(sink.tags(), "mark")) == len(marks)


def test_a_failing_job_ends_the_flowgraph_with_its_message(model_path):
    den = patched(diffwireless.diffusion_denoiser(model_path, engine="cpu"), fail="injected fault 42")
    src = blocks.vector_source_c(random_iq(1_000).tolist(), True)  # endless: only the error can end it
    tb = gr.top_block()
    tb.connect(src, den, blocks.null_sink(gr.sizeof_gr_complex))
    tb.run()
    assert isinstance(den.error, EngineError)
    assert "injected fault 42" in str(den.error) and "rand16" in str(den.error)


def test_nan_input_ends_the_flowgraph_naming_the_sample(model_path):
    x = random_iq(5_000, seed=5)
    x[1234] = np.nan
    den = diffwireless.diffusion_denoiser(model_path, engine="cpu")
    sink = blocks.vector_sink_c()
    tb = gr.top_block()
    tb.connect(source(x), den, sink)
    tb.run()
    assert den.error is not None and "1234" in str(den.error)


def test_stop_with_work_in_flight_returns_and_joins_the_engine(model_path):
    den = patched(diffwireless.diffusion_denoiser(model_path, snr_db=-5.0, num_steps=50, engine="cpu"),
                  delay_s=0.05)
    src = blocks.vector_source_c(random_iq(10_000).tolist(), True)
    tb = gr.top_block()
    tb.connect(src, den, blocks.null_sink(gr.sizeof_gr_complex))
    tb.start()
    time.sleep(0.5)
    assert den.engine is not None and den.engine.stats()["queue_items"] + den._in_flight > 0
    t0 = time.monotonic()
    tb.stop()
    tb.wait()
    assert time.monotonic() - t0 < 10  # returns (the benchmark reports how fast); never hangs
    assert not shared_engines()
    assert not [t for t in threading.enumerate() if t.name.startswith("diffwireless-engine")]


def test_stats_messages(model_path):
    x = random_iq(30_000, seed=6)
    den = diffwireless.diffusion_denoiser(model_path, engine="cpu", stats_interval_s=0.0)
    debug = blocks.message_debug()
    tb = gr.top_block()
    tb.connect(source(x), den, blocks.null_sink(gr.sizeof_gr_complex))
    tb.msg_connect(den, "stats", debug, "store")
    tb.run()
    assert debug.num_messages() >= 1
    last = pmt.to_python(debug.get_message(debug.num_messages() - 1))
    assert last["items_in"] == last["items_out"] == 30_000 and last["dropped_items"] == 0
    for key in ("jobs", "items", "batches", "batch_mean", "batch_max", "queue_items", "latency_p50_ms",
                "latency_p99_ms", "drops", "device"):
        assert key in last


def test_construction_errors(model_path, tmp_path):
    with pytest.raises(ModelError, match="not found"):
        diffwireless.diffusion_denoiser(str(tmp_path / "nope.safetensors"))
    with pytest.raises(ModelError, match="pickle"):
        diffwireless.diffusion_denoiser(str(tmp_path / "model.pt"))
    with pytest.raises(EngineError, match="unknown device"):
        diffwireless.diffusion_denoiser(model_path, engine="gpu0")
    with pytest.raises(EngineError, match="policy"):
        diffwireless.diffusion_denoiser(model_path, engine=diffwireless.engine_options(policy="lossy"))
    with pytest.raises(ValueError, match="snr_db"):
        diffwireless.diffusion_denoiser(model_path, snr_db=float("nan"))
    with pytest.raises(EngineError, match="precision"):
        diffwireless.diffusion_denoiser(model_path, engine=diffwireless.engine_options(precision="int8"))
    with pytest.raises(EngineError, match="fp16 needs a CUDA device"):
        diffwireless.diffusion_denoiser(model_path, engine=diffwireless.engine_options("cpu", precision="fp16"))


def test_bf16_autocast_runs_and_stays_close_to_fp32(model_path):
    x = random_iq(4_000, seed=9)
    den = diffwireless.diffusion_denoiser(model_path, snr_db=5.0, num_steps=2,
                                          engine=diffwireless.engine_options("cpu", precision="bf16"))
    sink = blocks.vector_sink_c()
    tb = gr.top_block()
    tb.connect(source(x), den, sink)
    tb.run()
    y = np.asarray(sink.data(), dtype=np.complex64)
    ref = reference(model_path, x, 5.0, 2)
    assert y.size == x.size and den.stats()["device"] == "cpu"
    # bfloat16 keeps 8 bits of mantissa: about 1% of the signal, not float tolerance, and not exact.
    rel = np.linalg.norm(y - ref) / np.linalg.norm(ref)
    assert 0 < rel < 0.05



def test_input_is_read_before_it_is_consumed(model_path):
    # Upstream writes into the buffer the moment items are consumed; a block that read its input after consume()
    # produced a few wrong windows in about one run of three (an early bug). Five runs, each exact.
    x = random_iq(120_000, seed=8)
    expected = None
    for _ in range(5):
        src = source(x)
        noise = analog.noise_source_c(analog.GR_GAUSSIAN, 0.3, 5)
        add = blocks.add_vcc(1)
        den = diffwireless.diffusion_denoiser(model_path, snr_db=5.0, num_steps=1, engine="cpu")
        noisy, out = blocks.vector_sink_c(), blocks.vector_sink_c()
        tb = gr.top_block()
        tb.connect(src, (add, 0))
        tb.connect(noise, (add, 1))
        tb.connect(add, den, out)
        tb.connect(add, noisy)
        tb.run()
        y = np.asarray(noisy.data(), dtype=np.complex64)
        if expected is None:
            expected = reference(model_path, y, 5.0, 1)
        np.testing.assert_allclose(np.asarray(out.data(), dtype=np.complex64), expected, rtol=1e-5, atol=1e-5)
