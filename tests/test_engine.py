"""The denoising engine (core): batching, backpressure, faults, shutdown, registry."""

from __future__ import annotations

import threading
import time
from concurrent.futures import CancelledError

import numpy as np
import pytest
import torch

from diffwireless.diffusion import DDIMSampler, DDPMSampler, ForwardPass, NoiseSchedule
from diffwireless.engine import (
    DenoiseEngine,
    EngineOptions,
    Job,
    acquire_engine,
    release_engine,
    resolve_device,
    shared_engines,
)
from diffwireless.errors import EngineError, EngineStopped
from diffwireless.models import DiffusionModel, build_model

SAMPLER = DDIMSampler(num_steps=8, start_step=120)


def mlp(seed=0, item_shape=(8, 2)) -> DiffusionModel:
    torch.manual_seed(seed)
    return build_model("mlp", "mlp_denoiser", {"item_shape": list(item_shape), "hidden": 64}, NoiseSchedule(200))


class Wrapped(torch.nn.Module):
    """A network with a hook run before each call (to slow it down or make it fail)."""

    def __init__(self, inner, hook):
        super().__init__()
        self.inner, self.hook = inner, hook

    def forward(self, x, t, cond=None):
        self.hook(x)
        return self.inner(x, t, cond)


def wrapped(hook, seed=0) -> DiffusionModel:
    base = mlp(seed)
    return DiffusionModel("wrapped", Wrapped(base.network, hook), base.item_shape, base.schedule)


@pytest.fixture
def engine():
    eng = DenoiseEngine("cpu", max_batch=256, max_wait_ms=20).start()
    yield eng
    assert eng.stop(timeout=5)


def items(n, seed=0, shape=(8, 2)):
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def test_batched_equals_unbatched_for_deterministic_ddim(engine):
    model = mlp()
    sizes = [1, 3, 7, 16, 40, 100, 2, 300, 5, 64, 9, 1]
    data = [items(n, seed=i) for i, n in enumerate(sizes)]
    futures: list = [None] * len(data)

    def submit(idx):
        futures[idx] = engine.submit(Job(model, data[idx], SAMPLER))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(data))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    stats_before = engine.stats()
    with torch.inference_mode():
        for x, fut in zip(data, futures):
            got = fut.result(timeout=30)
            alone = np.concatenate([SAMPLER.run(model.network, model.schedule, torch.from_numpy(x[i:i + 1])).numpy()
                                    for i in range(len(x))])
            np.testing.assert_allclose(got, alone, rtol=1e-5, atol=1e-5)
    st = engine.stats()
    assert st["items"] == sum(sizes) and st["jobs_done"] == len(sizes)
    assert st["batch_max"] <= 256  # max_batch is honoured; the 300-item job was split
    assert stats_before["batches"] < len(sizes)  # jobs were merged


def test_jobs_with_different_samplers_or_models_are_not_merged(engine):
    a, b = mlp(0), mlp(1)
    x = items(10)
    specs = [(a, SAMPLER), (b, SAMPLER), (a, DDIMSampler(num_steps=3, start_step=120)), (a, SAMPLER)]
    futs = [engine.submit(Job(m, x, s)) for m, s in specs]
    with torch.inference_mode():
        for (m, s), f in zip(specs, futs):
            np.testing.assert_allclose(f.result(timeout=30), s.run(m.network, m.schedule, torch.from_numpy(x)).numpy(),
                                       rtol=1e-5, atol=1e-5)
    st = engine.stats()
    # Three distinct (model, sampler) keys need three batches at least; only the two (a, SAMPLER) jobs may share one.
    assert st["items"] == 40 and 3 <= st["batches"] <= 4 and st["batch_max"] <= 20


def test_submit_copies_the_items_so_callers_may_reuse_their_buffer():
    eng = DenoiseEngine("cpu", max_batch=64, max_wait_ms=0).start()
    try:
        model = wrapped(lambda x: time.sleep(0.01))
        buffer = items(64, seed=3)
        original = buffer.copy()
        futs = [eng.submit(Job(model, buffer, SAMPLER)) for _ in range(4)]
        buffer[:] = 1e3  # as a GNU Radio input buffer is overwritten once its items are consumed
        with torch.inference_mode():
            ref = SAMPLER.run(model.network.inner, model.schedule, torch.from_numpy(original)).numpy()
        for f in futs:
            np.testing.assert_allclose(f.result(timeout=30), ref, rtol=1e-5, atol=1e-5)
    finally:
        eng.stop()


def test_bad_jobs_are_refused_at_submit(engine):
    model = mlp()
    with pytest.raises(ValueError, match=r"items of shape \(8, 2\)"):
        engine.submit(Job(model, np.zeros((3, 4, 2), np.float32), SAMPLER))
    bad = items(5)
    bad[3, 1, 0] = np.nan
    with pytest.raises(ValueError, match="item 3 .*NaN"):
        engine.submit(Job(model, bad, SAMPLER))
    with pytest.raises(ValueError, match="no conditioning"):
        engine.submit(Job(model, items(2), SAMPLER, cond=np.zeros((2, 1))))
    with pytest.raises(ValueError, match="policy"):
        engine.submit(Job(model, items(2), SAMPLER), policy="lossy")


def test_a_failing_job_fails_alone_with_the_model_named(engine):
    def hook(x):
        if bool((x.abs() > 1e3).any()):
            raise RuntimeError("injected fault: sample out of range")

    model = wrapped(hook)
    good, bad = items(20, 1), items(4, 2)
    bad[0] = 1e6
    futs = [engine.submit(Job(model, good, SAMPLER)), engine.submit(Job(model, bad, SAMPLER)),
            engine.submit(Job(model, good, SAMPLER))]
    assert futs[0].result(timeout=30).shape == good.shape
    assert futs[2].result(timeout=30).shape == good.shape
    with pytest.raises(EngineError, match="model 'wrapped' failed.*injected fault"):
        futs[1].result(timeout=30)
    assert engine.stats()["failures"] == 1


def test_out_of_memory_retries_in_smaller_batches(engine):
    def hook(x):
        if x.shape[0] > 20:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")

    model = wrapped(hook)
    x = items(100)
    got = engine.submit(Job(model, x, SAMPLER)).result(timeout=30)
    with torch.inference_mode():
        ref = SAMPLER.run(model.network.inner, model.schedule, torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    st = engine.stats()
    assert st["oom_retries"] >= 1 and st["batch_cap"] <= 20


def test_a_failing_device_falls_back_to_cpu_once(engine, monkeypatch, caplog):
    # The engine's device is faked as CUDA and its first network call fails as a lost GPU does.
    engine.device = torch.device("cuda")
    calls = {"n": 0}
    real = DenoiseEngine._run_tensor

    def run_tensor(self, model, sampler, x, cond, seeds=None):
        calls["n"] += 1
        if self.device.type == "cuda":
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real(self, model, sampler, x, cond, seeds)

    monkeypatch.setattr(DenoiseEngine, "_run_tensor", run_tensor)
    model = mlp()
    with caplog.at_level("WARNING", logger="diffwireless.engine"):
        a = engine.submit(Job(model, items(5), SAMPLER)).result(timeout=30)
        b = engine.submit(Job(model, items(5), SAMPLER)).result(timeout=30)
    assert a.shape == b.shape == (5, 8, 2)
    assert engine.device.type == "cpu" and calls["n"] == 3
    assert sum("falling back to the CPU" in r.message for r in caplog.records) == 1


def slow_model(delay_s):
    return wrapped(lambda x: time.sleep(delay_s))


def test_block_policy_bounds_the_queue_and_loses_nothing():
    eng = DenoiseEngine("cpu", max_batch=16, max_wait_ms=0, max_queue_items=32).start()
    try:
        model = slow_model(0.002)
        peak = []
        futs = []
        for i in range(40):
            futs.append(eng.submit(Job(model, items(8, i), DDIMSampler(num_steps=2, start_step=50)), policy="block"))
            peak.append(eng.stats()["queue_items"])
        assert all(f.result(timeout=60).shape == (8, 8, 2) for f in futs)
        assert max(peak) <= 32
        assert eng.stats()["drops"] == 0
    finally:
        eng.stop()


def test_drop_policy_drops_the_oldest_and_counts():
    eng = DenoiseEngine("cpu", max_batch=8, max_wait_ms=0, max_queue_items=24).start()
    try:
        model = slow_model(0.02)
        sampler = DDIMSampler(num_steps=2, start_step=50)
        lossless = eng.submit(Job(model, items(8), sampler), policy="block")
        futs = [eng.submit(Job(model, items(8, i), sampler), policy="drop") for i in range(30)]
        done = dropped = 0
        for f in futs:
            try:
                f.result(timeout=60)
                done += 1
            except CancelledError:
                dropped += 1
        assert lossless.result(timeout=60).shape == (8, 8, 2)
        assert dropped > 0 and done > 0
        assert eng.stats()["drops"] == 8 * dropped
        assert not futs[-1].cancelled()  # the newest work is kept, the oldest dropped
    finally:
        eng.stop()


def test_stop_with_work_in_flight_returns_and_fails_the_rest():
    eng = DenoiseEngine("cpu", max_batch=4, max_wait_ms=0).start()
    model = slow_model(0.05)
    futs = [eng.submit(Job(model, items(4, i), DDPMSampler(start_step=150))) for i in range(20)]
    time.sleep(0.2)
    t0 = time.monotonic()
    assert eng.stop(timeout=5)
    elapsed = time.monotonic() - t0
    assert elapsed < 5
    assert not any(th.name.startswith("diffwireless-engine") and th.is_alive() for th in threading.enumerate()
                   if th is eng._thread)
    outcomes = []
    for f in futs:
        try:
            f.result(timeout=5)
            outcomes.append("done")
        except EngineStopped:
            outcomes.append("stopped")
    assert outcomes.count("stopped") >= 19  # 150 steps x 50 ms: not even the first job could finish
    with pytest.raises(EngineStopped):
        eng.submit(Job(model, items(1), SAMPLER))


def test_registry_shares_one_engine_per_device():
    assert "cpu" not in shared_engines()
    a = acquire_engine("cpu", holder="block a", max_batch=128)
    b = acquire_engine("cpu", holder="block b", max_batch=128)  # the same options: the same engine
    try:
        assert a is b and a.running and a.max_batch == 128
        # Other options for the same device: an error naming both users, never a silent first-wins.
        with pytest.raises(EngineError, match=r"block c asks the engine on cpu for \{'max_batch': 999\}.*block a "
                                              r"runs it with \{'max_batch': 128\}"):
            acquire_engine("cpu", holder="block c", max_batch=999)
        release_engine(a, "block a")
        assert b.running
    finally:
        release_engine(b, "block b")
    assert not a.running and "cpu" not in shared_engines()


def test_device_names_are_checked():
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(EngineError, match="unknown device"):
        resolve_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(EngineError, match="sees no CUDA GPU"):
            resolve_device("cuda")
    with pytest.raises(EngineError, match="fp16"):
        DenoiseEngine("cpu", precision="fp16")


def test_engine_options_check_their_values_and_compare_as_the_engine_runs():
    assert EngineOptions.of(None) == EngineOptions() and EngineOptions.of("cpu").device == "cpu"
    for bad in ({"policy": "lossy"}, {"precision": "int8"}, {"max_batch": -1}, {"max_wait_ms": float("nan")},
                {"device": "gpu0"}, {"precision": "fp16", "device": "cpu"}, {"max_queue_items": 0}):
        with pytest.raises(EngineError):
            EngineOptions(**bad)
    with pytest.raises(EngineError, match="EngineOptions, a device string or None"):
        EngineOptions.of(3)
    # 0 is the device's default batch, so asking for 0 and for 1024 on a CPU is the same request.
    a = acquire_engine("cpu", holder="a", **EngineOptions(max_batch=0).engine_config())
    try:
        b = acquire_engine("cpu", holder="b", **EngineOptions(max_batch=1024, policy="drop").engine_config())
        assert a is b
        release_engine(b, "b")
    finally:
        release_engine(a, "a")


def test_an_empty_job_returns_an_empty_result(engine):
    model = mlp()
    got = engine.submit(Job(model, items(0), SAMPLER)).result(timeout=30)
    assert got.shape == (0, 8, 2)
    # and beside a job with items, each gets its own
    empty, full = (engine.submit(Job(model, items(n), SAMPLER)) for n in (0, 5))
    assert empty.result(timeout=30).shape == (0, 8, 2) and full.result(timeout=30).shape == (5, 8, 2)


def test_a_network_that_returns_the_wrong_number_of_rows_fails_its_job_naming_the_model(engine):
    base = mlp()

    class Truncating(torch.nn.Module):
        def forward(self, x, t, cond):
            return x[:-1] * 1.0

    model = DiffusionModel("truncating", Truncating(), base.item_shape, base.schedule)
    with pytest.raises(EngineError, match=r"model 'truncating' failed.*returned \d+ rows for a batch of \d+ items"):
        engine.submit(Job(model, items(4), ForwardPass())).result(timeout=30)


def test_release_is_counted_per_holder():
    a = acquire_engine("cpu", holder="block a")
    b = acquire_engine("cpu", holder="block b")
    try:
        release_engine(a, "block a")
        with pytest.raises(EngineError, match="block a releases the engine on cpu more often than it acquired it"):
            release_engine(a, "block a")
        assert b.running and "cpu" in shared_engines()  # the other holder keeps it
    finally:
        release_engine(b, "block b")
    assert not b.running and "cpu" not in shared_engines()


def test_seeded_jobs_give_the_same_output_whatever_the_batching():
    """Per-item seeds and fixed-shape network calls: a stochastic sampler's output for an item does not depend on
    the batch limit or on which other jobs share its batch; without seeds it does."""
    model = mlp(item_shape=(64, 2))
    sampler = DDIMSampler(num_steps=4, start_step=150, eta=1.0)
    x = items(90, seed=5, shape=(64, 2))
    seeds = np.arange(90, dtype=np.uint64) * 1000 + 7
    outputs, unseeded = [], []
    for max_batch, split in ((8, 1), (37, 3), (1024, 9)):
        eng = DenoiseEngine("cpu", max_batch=max_batch, max_wait_ms=20).start()
        try:
            parts = np.array_split(np.arange(90), split)
            futs = [eng.submit(Job(model, x[p], sampler, seeds=seeds[p])) for p in parts]
            # Other work of the same model and sampler shares the batches.
            noise = eng.submit(Job(model, items(11, seed=max_batch, shape=(64, 2)), sampler, seeds=seeds[:11] + 1))
            outputs.append(np.concatenate([f.result(timeout=30) for f in futs]))
            noise.result(timeout=30)
            unseeded.append(np.concatenate([eng.submit(Job(model, x[p], sampler)).result(timeout=30) for p in parts]))
        finally:
            eng.stop()
    for out in outputs[1:]:
        assert np.array_equal(out, outputs[0])
    assert not np.array_equal(unseeded[1], unseeded[2])
    # Each item's noise is its own: two items of equal input but different seeds differ.
    eng = DenoiseEngine("cpu").start()
    try:
        twin = eng.submit(Job(model, np.repeat(x[:1], 2, axis=0), sampler, seeds=np.array([1, 2]))).result(timeout=30)
        with pytest.raises(ValueError, match="seeds"):
            eng.submit(Job(model, x[:3], sampler, seeds=np.arange(2)))
    finally:
        eng.stop()
    assert not np.array_equal(twin[0], twin[1])


def test_stats_count_batches_that_mix_sources():
    eng = DenoiseEngine("cpu", max_batch=256, max_wait_ms=200).start()
    try:
        model = mlp()
        gate = threading.Event()
        slow = wrapped(lambda x: gate.wait(5))
        first = eng.submit(Job(slow, items(1), SAMPLER, source="hold"))  # keeps the worker busy
        time.sleep(0.05)
        futs = [eng.submit(Job(model, items(4, seed=i), SAMPLER, source=f"stream{i % 2}")) for i in range(4)]
        gate.set()
        first.result(timeout=30)
        for f in futs:
            f.result(timeout=30)
        alone = eng.submit(Job(model, items(4), SAMPLER, source="stream0"))
        alone.result(timeout=30)
        st = eng.stats()
        assert st["sources"] == 3
        assert st["mixed_batches"] >= 1 and st["mixed_batches"] < st["batches"]
    finally:
        assert eng.stop(timeout=5)
