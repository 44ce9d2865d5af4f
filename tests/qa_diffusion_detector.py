"""QA of the diffusion_detector block: vector source -> block -> vector sink."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pmt
import pytest
from gnuradio import blocks, gr

from diffwireless.channel import DEFAULT_PROFILE, simulate
from diffwireless.constellations import get_constellation
from diffwireless.detector import DiffusionDetector
from diffwireless.engine import DenoiseEngine
from diffwireless.paths import bundled_recording

from gnuradio.diffwireless import diffusion_detector
from gnuradio.diffwireless.apps.detect import DEMO_CAPTURE, record

C16 = get_constellation("16qam")


def received(n: int, snr_db: float = 14.0, seed: int = 1) -> np.ndarray:
    return simulate(C16.points, n, snr_db, DEFAULT_PROFILE.nominal, np.random.default_rng(seed)).received


def run_block(y: np.ndarray, tags=(), **kwargs):
    tb = gr.top_block()
    src = blocks.vector_source_c(y.astype(np.complex64).tolist(), tags=list(tags))
    blk = diffusion_detector("16qam", engine="cpu", **kwargs)
    out = kwargs.get("output", "bits")
    snk = {"bits": blocks.vector_sink_b, "indices": blocks.vector_sink_b, "llrs": blocks.vector_sink_f,
           "symbols": blocks.vector_sink_c}[out]()
    tb.connect(src, blk, snk)
    tb.run()
    return blk, snk


def test_bits_are_the_core_detectors_and_exact_in_count():
    y = received(20_000)
    blk, snk = run_block(y, snr_db=14.0, output="bits")
    assert blk.error is None
    bits = np.asarray(snk.data())
    assert bits.size == 4 * len(y) and set(np.unique(bits)) <= {0, 1}
    engine = DenoiseEngine("cpu").start()
    try:
        core = DiffusionDetector("detector_16qam").detect(y, 14.0, engine)
    finally:
        engine.stop()
    # Same model and sampler; only the batch composition differs, which may move a float by one ULP.
    assert np.mean(bits == core.bits) > 0.9995


def test_every_output_agrees_with_the_others():
    y = received(5000, seed=2)
    _, idx = run_block(y, output="indices")
    _, bits = run_block(y, output="bits")
    _, llrs = run_block(y, output="llrs")
    _, sym = run_block(y, output="symbols")
    idx, bits, llrs, sym = (np.asarray(s.data()) for s in (idx, bits, llrs, sym))
    assert len(idx) == len(sym) == 5000 and len(bits) == len(llrs) == 20_000
    np.testing.assert_array_equal(C16.indices_to_bits(idx), bits)
    np.testing.assert_array_equal(C16.nearest(sym), idx)
    assert np.mean((llrs > 0).astype(np.uint8) == bits) > 0.9995


def test_snr_tag_switches_the_sampler_and_tags_land_on_their_symbols_bits():
    y = received(6000, snr_db=20.0, seed=3)
    tags = [gr.tag_utils.python_to_tag((3000, pmt.intern("snr_db"), pmt.from_double(20.0), pmt.intern("t"))),
            gr.tag_utils.python_to_tag((1234, pmt.intern("burst"), pmt.PMT_T, pmt.intern("t")))]
    blk, snk = run_block(y, tags=tags, snr_db=5.0, output="bits")
    assert blk.snr_db == 20.0
    found = {pmt.symbol_to_string(t.key): t.offset for t in snk.tags()}
    assert found["snr_db"] == 3000 * 4 and found["burst"] == 1234 * 4
    bits = np.asarray(snk.data())
    sent = simulate(C16.points, 6000, 20.0, DEFAULT_PROFILE.nominal, np.random.default_rng(3)).indices
    err_second_half = np.mean(bits[12000:] != C16.indices_to_bits(sent[3000:]))
    assert err_second_half < 1e-3  # decided at the right SNR after the tag


def test_construction_errors_are_clear():
    with pytest.raises(ValueError, match="detects 16qam, not 64qam"):
        diffusion_detector("64qam", model="detector_16qam")
    with pytest.raises(ValueError, match="output must be one of"):
        diffusion_detector("16qam", output="soft")
    with pytest.raises(ValueError, match="unknown constellation"):
        diffusion_detector("32apsk")
    with pytest.raises(Exception, match="not found"):
        diffusion_detector("8psk")  # no shipped 8PSK detector


def test_nan_input_ends_the_flowgraph_with_the_sample_named():
    y = received(3000, seed=4)
    y[1500] = np.nan
    blk, snk = run_block(y, output="indices")
    assert blk.error is not None and "1500" in str(blk.error)
    assert len(snk.data()) <= 1500


def test_bundled_capture_is_what_dw_detect_records(tmp_path):
    from diffwireless import SigMFRecording

    shipped = SigMFRecording(bundled_recording(DEMO_CAPTURE))
    link = json.loads(open(bundled_recording(DEMO_CAPTURE)).read())["global"]["diffwireless:link"]
    record(str(tmp_path / "again"), link["constellation"], link["snr_db"], link["symbols"], link["tx_seed"])
    again = SigMFRecording(tmp_path / "again")
    assert again.num_samples == shipped.num_samples == link["symbols"]
    assert np.abs(again.read(0, again.num_samples) - shipped.read(0, shipped.num_samples)).max() < 1e-6


def test_record_holds_exactly_the_symbols_asked_for(tmp_path):
    from diffwireless import SigMFRecording

    # 1001 fills no SIMD alignment: GNU Radio's distortion_3_gen alone would end the stream early (1000 or 992).
    record(str(tmp_path / "odd"), "qpsk", 12.0, 1001, 3)
    assert SigMFRecording(tmp_path / "odd").num_samples == 1001


def test_dw_detect_replays_the_bundled_capture_losslessly_and_beats_euclidean(tmp_path):
    out = tmp_path / "detect.json"
    proc = subprocess.run([sys.executable, "-m", "gnuradio.diffwireless.apps.detect", "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["symbols_in"] == report["symbols_out"] == 40_000
    ber = {r["method"].split(" ")[0]: r for r in report["rows"]}
    assert ber["diffusion"]["ci_high"] < ber["euclidean"]["ci_low"]
    assert ber["genie"]["ber"] <= ber["euclidean"]["ber"]
    assert "lossless" in proc.stdout


def test_dw_detect_refuses_a_recording_that_is_not_a_detector_capture():
    proc = subprocess.run([sys.executable, "-m", "gnuradio.diffwireless.apps.detect", bundled_recording()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not a detector capture" in proc.stderr


def test_bench_rows_of_one_point_and_the_crossing_interpolation():
    from gnuradio.diffwireless.bench import detector as bench

    engine = DenoiseEngine("cpu").start()
    try:
        rows = bench.ber_point(get_constellation("qpsk"), "impaired", 5.0, engine, min_errors=50, chunk=20_000,
                               max_symbols=100_000, rng=np.random.default_rng(0), device="cpu")
    finally:
        engine.stop()
    by = {r.method: r for r in rows}
    assert set(by) == {"diffusion", "euclidean", "dnn", "genie_ml", "theory"}
    assert all(r.ci_low <= r.value <= r.ci_high for r in rows)
    assert by["diffusion"].extra["errors"] >= 50 and by["diffusion"].nfe == 2  # auto: 2 steps below 10 dB
    assert by["genie_ml"].value <= by["euclidean"].value
    # log-linear crossing of 1e-3 between 1e-2 at 10 dB and 1e-4 at 12 dB: 11 dB
    assert bench.required_snr(np.array([8.0, 10.0, 12.0]), np.array([1e-1, 1e-2, 1e-4])) == pytest.approx(11.0)
    assert np.isnan(bench.required_snr(np.array([1.0, 2.0]), np.array([0.5, 0.4])))


def test_constellation_given_as_gnuradio_object_or_name():
    from gnuradio import digital

    by_object = diffusion_detector(digital.qam_constellation(16, False, digital.mod_codes.GRAY_CODE), engine="cpu")
    by_base = diffusion_detector(digital.constellation_qpsk().base(), engine="cpu")
    assert by_object.detector.constellation.name == "16qam" and by_base.detector.constellation.name == "qpsk"
    # constellation_16qam() orders its points otherwise (its indices are not a Gray code): refused, with the
    # constructors that are supported.
    with pytest.raises(ValueError, match="none of the supported ones.*qam_constellation"):
        diffusion_detector(digital.constellation_16qam(), engine="cpu")
