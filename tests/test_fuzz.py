"""Property-based tests (Hypothesis) over everything a user hands in: SigMF metadata and data, model files and
cards, block parameters and the SigMF Sink's messages. Each input ends in a result or in one clear error that names
what was wrong (the file, the parameter), never a traceback of another kind, an abort or a hang.

``make test`` runs a small, fixed set of examples (derandomised, well under a minute); ``make fuzz`` runs many more,
new each time (``DW_FUZZ_PROFILE=fuzz``; ``DW_FUZZ_EXAMPLES=N`` to choose how many).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pmt
import pytest
import torch
from gnuradio import blocks, gr
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from gnuradio import diffwireless
from diffwireless.diffusion import NoiseSchedule
from diffwireless.errors import DiffWirelessError, ModelError
from diffwireless.models import build_model, load_model
from diffwireless.recording import SigMFRecording

# A bound on one example that only a hang reaches (typical examples take milliseconds): not a speed target.
HANG_BOUND = timedelta(seconds=30)
_COMMON = dict(deadline=HANG_BOUND, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
               print_blob=True)
settings.register_profile("suite", max_examples=100, derandomize=True, database=None, **_COMMON)
settings.register_profile("fuzz", max_examples=int(os.environ.get("DW_FUZZ_EXAMPLES", 1000)), **_COMMON)
settings.load_profile(os.environ.get("DW_FUZZ_PROFILE", "suite"))


def examples(suite: int) -> int:
    """Examples of a costlier test: ``suite`` in ``make test``, a fifth of the profile's under ``make fuzz``."""
    n = settings().max_examples
    return suite if n <= 100 else max(suite, n // 5)

# -- values as hostile files hold them ---------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70), st.floats(), st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
hostile_numbers = st.one_of(st.integers(-2 ** 66, 2 ** 66), st.floats(), st.sampled_from([None, True, "12", [], {}]))


def mostly(valid: st.SearchStrategy, hostile: st.SearchStrategy) -> st.SearchStrategy:
    """Valid three times in four, so that examples reach past the first check; hostile the rest."""
    return st.integers(0, 3).flatmap(lambda k: hostile if k == 3 else valid)


# Where a number belongs: in range mostly, and now and then any number or something else.
numbers = mostly(st.integers(0, 600), hostile_numbers)
byte_counts = mostly(st.sampled_from([0, 8, 16]), hostile_numbers)
frequencies = mostly(st.floats(0, 6e9), hostile_numbers)
datatypes = mostly(st.sampled_from(["cf32_le", "ci16_le", "ci8", "cu8", "rf32_le", "cf64_be", "ci32_le", "cu16_le"]),
                   st.one_of(st.sampled_from(["cf32", "", "xyz"]), st.text(max_size=8)))
datetimes = mostly(st.sampled_from(["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123456Z"]),
                   st.one_of(st.sampled_from(["1955-01-01T00:00:00Z", "2024-13-45T99:00:00Z", "9999-12-31T23:59:59Z",
                                              "yesterday"]), st.text(max_size=24)))


def _entry(required: dict, optional: dict) -> st.SearchStrategy:
    return st.fixed_dictionaries(required, optional=optional)


global_objects = _entry(
    {"core:datatype": datatypes, "core:version": st.sampled_from(["1.0.0", "1.2.0", "0.0.1", "x"])},
    {"core:sample_rate": mostly(st.floats(1, 1e8), hostile_numbers), "core:num_channels": mostly(st.just(1), numbers),
     "core:trailing_bytes": byte_counts,
     "core:offset": numbers, "core:description": json_values, "core:extensions": json_values,
     "core:dataset": st.one_of(st.sampled_from(["../escape.bin", "/etc/hostname", "", "data.bin", "sub/d.bin"]),
                               st.text(max_size=12)),
     "vendor:field": json_values})
captures = _entry({}, {"core:sample_start": numbers, "core:frequency": frequencies, "core:datetime": datetimes,
                       "core:header_bytes": byte_counts, "core:global_index": numbers, "vendor:x": json_values})
annotations = _entry({"core:sample_start": numbers},
                     {"core:sample_count": numbers, "core:freq_lower_edge": frequencies,
                      "core:freq_upper_edge": frequencies,
                      "core:label": json_values, "core:comment": st.text(max_size=20),
                      "vendor:big": st.one_of(st.integers(2 ** 62, 2 ** 70), json_values)})
metadata_docs = _entry({"global": global_objects},
                       {"captures": st.lists(captures, max_size=4), "annotations": st.lists(annotations, max_size=4)})
data_bytes = mostly(st.integers(0, 512).map(lambda n: bytes(8 * n)), st.binary(max_size=96))


def _names(message: str, *paths: Path) -> bool:
    return any(p.name in message for p in paths)


def _replay(meta: Path) -> None:
    """Open ``meta`` as SigMF Source does and replay it to the end; it must end and give every sample."""
    src = diffwireless.sigmf_source(str(meta))
    rec = src.recording
    assert rec.sample_rate is None or (math.isfinite(rec.sample_rate) and rec.sample_rate > 0)
    assert rec.captures[0].sample_start == 0 and rec.num_samples >= 0
    snk = blocks.vector_sink_c()
    tb = gr.top_block()
    tb.connect(src, snk)
    tb.run()
    assert src.error is None and len(snk.data()) == rec.num_samples


@given(doc=metadata_docs, data=data_bytes)
def test_any_sigmf_metadata_replays_or_fails_with_one_error_naming_the_file(doc, data):
    with tempfile.TemporaryDirectory() as tmp:
        meta, data_path = Path(tmp) / "f.sigmf-meta", Path(tmp) / "f.sigmf-data"
        meta.write_text(json.dumps(doc))
        data_path.write_bytes(data)
        (Path(tmp) / "data.bin").write_bytes(data[: len(data) // 2])
        try:
            _replay(meta)
            event("replayed")
        except ValueError as exc:  # RecordingError, and the block's own parameter errors, are ValueErrors
            event("refused: " + str(exc).split(": ", 1)[-1][:24])
            assert _names(str(exc), meta, data_path, Path(str(doc["global"].get("core:dataset", "")) or "-")), exc


@given(text=st.one_of(st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
                      st.integers(1, 300_000).map(lambda n: "[" * n),
                      st.integers(1, 100_000).map(lambda n: '{"global": ' * n),
                      json_values.map(json.dumps)),
       raw=st.booleans())
def test_any_metadata_text_fails_with_one_recording_error(text, raw):
    with tempfile.TemporaryDirectory() as tmp:
        meta = Path(tmp) / "t.sigmf-meta"
        meta.write_bytes(text.encode("utf-8") if not raw else text.encode("latin-1", errors="replace"))
        (Path(tmp) / "t.sigmf-data").write_bytes(bytes(64))
        try:
            rec = SigMFRecording(meta)
        except ValueError as exc:
            assert "t.sigmf-meta" in str(exc) or "t.sigmf-data" in str(exc), exc
        else:
            assert rec.num_samples >= 0


@settings(max_examples=examples(25))
@given(doc=metadata_docs, data=data_bytes)
def test_dw_replay_prints_one_error_line_never_a_traceback(doc, data):
    from gnuradio.diffwireless.apps import replay

    with tempfile.TemporaryDirectory() as tmp:
        meta = Path(tmp) / "c.sigmf-meta"
        meta.write_text(json.dumps(doc))
        (Path(tmp) / "c.sigmf-data").write_bytes(data)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = replay.main([str(meta), "--json", str(Path(tmp) / "s.json")])
        if rc != 0:
            lines = err.getvalue().strip().split("\n")
            assert rc == 2 and len(lines) == 1 and lines[0].startswith("dw-replay: error: "), err.getvalue()
            assert "Traceback" not in err.getvalue()


# -- model files ---------------------------------------------------------------------------------------------------

def _small_model():
    torch.manual_seed(0)
    return build_model("tiny", "mlp_denoiser", {"item_shape": [4, 2], "hidden": 8}, NoiseSchedule(50))


_TINY = _small_model()
_HEADER = _TINY.header()
_TENSORS = {k: v.detach().clone() for k, v in _TINY.network.state_dict().items()}

config_edits = st.dictionaries(st.sampled_from(["item_shape", "hidden", "depth", "cond_dim", "layers", "x"]),
                               st.one_of(numbers, st.lists(st.integers(-5, 2 ** 40), max_size=3), json_values),
                               max_size=3)
schedule_edits = st.dictionaries(st.sampled_from(list(_HEADER["schedule"]) + ["extra"]),
                                 st.one_of(numbers, json_values, st.integers(0, 3_000_000_000)), max_size=2)
header_edits = st.dictionaries(st.sampled_from(["format", "arch", "name", "item_shape", "cond_dim"]),
                               st.one_of(numbers, json_values, st.sampled_from(["unet1d", "mlp_denoiser", "resnet"])),
                               max_size=2)
tensor_edits = st.sampled_from(["none", "nan", "inf", "shape", "drop", "extra", "int", "half"])
cards = st.one_of(st.none(), json_values.map(json.dumps), st.dictionaries(st.text(max_size=6), json_values),
                  st.binary(max_size=20).map(lambda b: b.decode("latin-1")))


def _tensors(edit: str) -> dict[str, torch.Tensor]:
    tensors = {k: v.clone() for k, v in _TENSORS.items()}
    first = next(iter(tensors))
    if edit in ("nan", "inf"):
        tensors[first].view(-1)[0] = float(edit)
    elif edit == "shape":
        tensors[first] = torch.zeros(3, 3)
    elif edit == "drop":
        del tensors[first]
    elif edit == "extra":
        tensors["surprise.weight"] = torch.zeros(2)
    elif edit in ("int", "half"):
        tensors[first] = tensors[first].to(torch.int32 if edit == "int" else torch.float16)
    return tensors


@given(header=mostly(st.just({}), header_edits), config=mostly(st.just({}), config_edits),
       schedule=mostly(st.just({}), schedule_edits), tensors=mostly(st.just("none"), tensor_edits),
       card=mostly(st.just({"seed": 1}), cards), whole=mostly(st.none(), json_values))
def test_any_model_file_loads_or_fails_with_one_model_error_naming_the_file(header, config, schedule, tensors,
                                                                           card, whole):
    from safetensors.torch import save_file

    doc = {**_HEADER, **header, "config": {**_HEADER["config"], **config},
           "schedule": {**_HEADER["schedule"], **schedule}}
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "m.safetensors"
        header_text = json.dumps(doc if whole is None else whole)
        save_file(_tensors(tensors), str(weights), metadata={"diffwireless": header_text})
        if card is not None:
            (Path(tmp) / "m.json").write_text(card if isinstance(card, str) else json.dumps(card))
        try:
            model = load_model(weights)
        except ModelError as exc:
            event("refused: " + str(exc).split(": ", 1)[-1][:24])
            assert "m.safetensors" in str(exc) or "m.json" in str(exc), exc
        else:  # what loads is whole and runs
            x = torch.zeros(2, *model.item_shape)
            with torch.inference_mode():
                y = model.network(x, torch.zeros(1, dtype=torch.long), None)
            assert y.shape == x.shape and torch.isfinite(y).all()
            event("loaded")


@settings(max_examples=examples(25))
@given(data=st.binary(max_size=300), header_len=st.integers(0, 2 ** 64 - 1))
def test_any_bytes_as_a_model_file_fail_with_one_model_error(data, header_len):
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "b.safetensors"
        weights.write_bytes(header_len.to_bytes(8, "little") + data)
        with pytest.raises(ModelError, match="b.safetensors"):
            load_model(weights)


# -- block parameters ---------------------------------------------------------------------------------------------

floats = st.one_of(st.floats(), st.floats(-100, 100), st.sampled_from([0.0, -1.0, 1e300, -1e-300]))
ints = st.one_of(st.integers(-10, 10), st.integers(-2 ** 40, 2 ** 40))


def _recording(tmp: str) -> str:
    from diffwireless import SigMFWriter

    with SigMFWriter(Path(tmp) / "ok", "cf32_le", 1e3) as writer:
        writer.write(np.zeros(64, np.complex64))
    return str(writer.meta_path)


BLOCKS = {
    "engine_options": (lambda tmp, **kw: diffwireless.engine_options(**kw), {
        "device": st.one_of(st.sampled_from(["auto", "cpu", "cuda", "cuda:7", "tpu", "", "cpu:0"]),
                            st.text(max_size=6)),
        "max_batch": ints, "max_wait_ms": floats, "precision": st.sampled_from(["fp32", "bf16", "fp16", "int8"]),
        "policy": st.sampled_from(["block", "drop", "x"])}),
    "sigmf_sink": (lambda tmp, path="rec", **kw: diffwireless.sigmf_sink(str(Path(tmp) / path), **kw), {
        "path": st.sampled_from(["rec", "no/such/folder/rec", "rec.sigmf-data", "", "."]), "datatype": datatypes,
        "sample_rate": floats, "frequency": floats}),
    "sigmf_source": (lambda tmp, **kw: diffwireless.sigmf_source(_recording(tmp), **kw), {
        "realtime": st.booleans(), "repeat": st.booleans(), "sample_rate": floats, "frequency": floats}),
    "anomaly_detector": (lambda tmp, **kw: diffwireless.anomaly_detector("anomaly_band", engine="cpu", **kw), {
        "pfa": floats, "threshold": floats, "method": st.sampled_from(["ae_ddpm", "ae", "energy", "kurtosis", "x"]),
        "hold": ints, "sample_rate": floats, "max_in_flight": ints, "stats_interval_s": floats}),
    "diffusion_denoiser": (lambda tmp, **kw: diffwireless.diffusion_denoiser("iq_denoiser_qpsk_sps4", engine="cpu",
                                                                             **kw), {
        "snr_db": floats, "num_steps": ints, "signal_power": floats, "max_in_flight": ints}),
    "diffusion_detector": (lambda tmp, **kw: diffwireless.diffusion_detector(engine="cpu", **kw), {
        "constellation": st.sampled_from(["qpsk", "16qam", "64qam", "8psk", ""]), "snr_db": floats,
        "num_steps": ints, "sampler": st.sampled_from(["ddim", "ddpm", "x"]),
        "output": st.sampled_from(["bits", "symbols", "soft", "x"])}),
    "modulation_classifier": (lambda tmp, **kw: diffwireless.modulation_classifier(engine="cpu", **kw), {
        "min_confidence": floats, "max_in_flight": ints, "threshold_db": floats, "novelty_threshold": floats,
        "front_end": st.sampled_from(["bursts", "continuous", "off", "", None, "sometimes"])}),
    "modulation_augmenter": (lambda tmp, **kw: diffwireless.modulation_augmenter(engine="cpu", **kw), {
        "label": st.sampled_from(["all", "qpsk", "ofdm", "fm", ""]), "snr_db": floats, "steps": ints,
        "guidance_scale": floats, "n_frames": ints, "job_frames": ints, "min_confidence": floats}),
}


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_any_block_parameters_build_the_block_or_fail_with_one_clear_error(name):
    make, params = BLOCKS[name]

    @settings(max_examples=examples(40))
    @given(kw=st.fixed_dictionaries({}, optional=params))
    def check(kw):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                make(tmp, **kw)
            except (DiffWirelessError, ValueError) as exc:
                assert str(exc).strip(), f"{type(exc).__name__} without a message for {kw}"

    check()


# -- SigMF Sink under hostile messages -----------------------------------------------------------------------------

message_values = st.one_of(json_values, st.complex_numbers(), st.lists(st.complex_numbers(), min_size=1, max_size=3),
                           st.sampled_from([float("nan"), float("inf"), -1, 2 ** 63, 1e13]))
messages = st.one_of(
    st.fixed_dictionaries({}, optional={"sample_start": numbers, "start": numbers, "end": numbers,
                                        "sample_count": numbers, "label": message_values, "comment": message_values,
                                        "freq_lower_edge": message_values, "freq_upper_edge": message_values,
                                        "peak": message_values, "vendor:x": message_values}),
    message_values)


def _to_pmt(value):
    if isinstance(value, list) and value and all(isinstance(v, complex) for v in value):
        return pmt.init_c32vector(len(value), value)
    return pmt.to_pmt(value)


@settings(max_examples=examples(25))
@given(msgs=st.lists(messages, min_size=1, max_size=6))
def test_sigmf_sink_records_or_counts_every_message_and_always_leaves_a_valid_recording(msgs):
    converted = []
    for value in msgs:
        try:
            converted.append(_to_pmt(value))
        except (TypeError, ValueError, OverflowError, RuntimeError):
            pass  # not a PMT: nothing a flowgraph could send
    assume(converted)
    with tempfile.TemporaryDirectory() as tmp:
        sink = diffwireless.sigmf_sink(str(Path(tmp) / "m"), sample_rate=1e5)
        tb = gr.top_block()
        tb.connect(blocks.vector_source_c([0j] * 1000, True), blocks.throttle(gr.sizeof_gr_complex, 1e5), sink)
        tb.start()
        for msg in converted:
            sink.to_basic_block()._post(pmt.intern("annotations"), msg)
        deadline = time.monotonic() + 10
        while len(sink._writer._annotations) + sink.skipped < len(converted) and time.monotonic() < deadline:
            time.sleep(0.01)
        tb.stop()
        tb.wait()
        rec = SigMFRecording(Path(tmp) / "m")
        assert not rec.in_progress and rec.sample_rate == 1e5
        assert len(rec.annotations) + sink.skipped == len(converted)
        assert rec.metadata["global"].get("diffwireless:skipped_values", 0) == sink.skipped
        assert not list(Path(tmp).glob("*.tmp"))
