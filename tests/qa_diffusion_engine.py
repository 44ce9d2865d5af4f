"""QA of the Diffusion Engine variable (``engine_options``): blocks that name it share one engine with its options;
blocks that ask one device for different options fail at start with an error naming both."""

from __future__ import annotations

import numpy as np
import pytest
from gnuradio import blocks, gr

from diffwireless.engine import EngineOptions, shared_engines
from diffwireless.errors import EngineError
from gnuradio import diffwireless

from conftest import random_iq

MODEL = "iq_denoiser_qpsk_sps4"


def test_engine_options_are_checked_when_made():
    opts = diffwireless.engine_options("cpu", max_batch=64, max_wait_ms=5, precision="bf16", policy="drop")
    assert opts == EngineOptions(device="cpu", max_batch=64, max_wait_ms=5.0, precision="bf16", policy="drop")
    with pytest.raises(EngineError, match="policy"):
        diffwireless.engine_options(policy="sometimes")
    with pytest.raises(EngineError, match="unknown device"):
        diffwireless.engine_options(device="tpu")


def test_blocks_naming_one_engine_share_it_with_its_options():
    opts = diffwireless.engine_options("cpu", max_batch=64)
    tb = gr.top_block()
    sinks, x = [], random_iq(4_000, seed=1)
    dens = [diffwireless.diffusion_denoiser(MODEL, snr_db=10.0, num_steps=1, engine=opts) for _ in range(2)]
    for den in dens:
        sink = blocks.vector_sink_c()
        tb.connect(blocks.vector_source_c(x.tolist()), den, sink)
        sinks.append(sink)
    tb.start()
    engine = shared_engines()["cpu"]
    assert all(den.engine is engine for den in dens) and engine.max_batch == 64
    tb.wait()
    tb.stop()
    tb.wait()
    assert all(den.policy == "block" for den in dens)
    np.testing.assert_array_equal(np.array(sinks[0].data()), np.array(sinks[1].data()))
    assert "cpu" not in shared_engines()


def test_two_blocks_asking_one_device_for_different_options_fail_naming_both():
    tb = gr.top_block()
    a = diffwireless.diffusion_denoiser(MODEL, engine=diffwireless.engine_options("cpu", max_batch=64))
    b = diffwireless.diffusion_detector("16qam", engine=diffwireless.engine_options("cpu", max_batch=128))
    tb.connect(blocks.vector_source_c(random_iq(1_000).tolist()), a, blocks.null_sink(gr.sizeof_gr_complex))
    tb.connect(blocks.vector_source_c(random_iq(1_000).tolist()), b, blocks.null_sink(gr.sizeof_char))
    tb.start()  # the second block to start fails: it logs the error and ends the flowgraph, which never hangs
    tb.wait()
    tb.stop()
    tb.wait()
    failed = [blk for blk in (a, b) if blk.error is not None]
    assert len(failed) == 1 and isinstance(failed[0].error, EngineError)
    message = str(failed[0].error)
    assert "max_batch" in message and "diffwireless_diffusion_denoiser" in message \
        and "diffwireless_diffusion_detector" in message, message
    assert "cpu" not in shared_engines()
