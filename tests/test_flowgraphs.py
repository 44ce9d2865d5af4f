"""Every apps/*.grc compiles with grcc and runs headless to a bounded end (or fails as it must without an SDR)."""

import os
import subprocess
import sys
import textwrap

import pytest

from diffwireless import SigMFRecording, bundled_recording
from conftest import APPS_DIR, grcc

# How each example is run headless and what it must do. A new .grc without an entry fails test_every_grc_is_covered.
RUNS = {
    "make_demo_recording.grc": "records",
    "replay_qt.grc": "replays",
    "denoise_qt.grc": "denoises",
    "detector_qt.grc": "detects",
    "live_receive_qt.grc": "no_sdr",
    "live_anomaly_qt.grc": "no_sdr",
    "live_ofdm_qt.grc": "no_sdr",
    "ota_detector_rx_qt.grc": "no_sdr",
    "ota_detector_tx_qt.grc": "no_sdr",
    "ofdm_loopback_qt.grc": "ofdm",
    "anomaly_qt.grc": "anomaly",
    "classifier_qt.grc": "classifier",
    "classify_recording_qt.grc": "classifies",
    "augmenter_qt.grc": "augmenter",
}

# Instantiates the generated top block under an offscreen Qt application, runs it to its end, and reports.
QT_RUNNER = textwrap.dedent("""
    import importlib.util, sys
    from PyQt5 import Qt
    spec = importlib.util.spec_from_file_location("fg", sys.argv[1])
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    app = Qt.QApplication(["qa"])
    kwargs = {k: int(v) if v.isdigit() else v for k, v in (a.split("=", 1) for a in sys.argv[3:])}
    try:
        tb = getattr(mod, sys.argv[2])(**kwargs)
    except Exception as exc:
        print("BUILD-FAILED:", type(exc).__name__, exc); sys.exit(3)
    tb.start(); tb.wait(); tb.stop(); tb.wait()
    print("SAMPLES", tb.source.nitems_written(0))
    if hasattr(tb, "denoiser"):
        print("DENOISED", tb.denoiser.items_out, "ERROR", tb.denoiser.error)
    if hasattr(tb, "detector"):
        print("DETECTED", tb.detector.items_out, "ERROR", tb.detector.error)
    if hasattr(tb, "sink_diffusion"):
        print("PACKETS", len(tb.sink_diffusion.data()) // tb.packet_len, len(tb.sink_stock.data()) // tb.packet_len,
              "FRAMES", tb.rx_diffusion.payload_equalizer.frames)
""")


def test_every_grc_is_covered():
    assert sorted(p.name for p in APPS_DIR.glob("*.grc")) == sorted(RUNS)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_flowgraph_compiles_and_runs_headless(name, tmp_path):
    generated = grcc(APPS_DIR / name, tmp_path)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    fg_id = generated.stem
    if RUNS[name] == "records":
        out = tmp_path / "rec"
        proc = subprocess.run([sys.executable, str(generated), "-o", str(out), "-n", "30000"], capture_output=True,
                              text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        rec = SigMFRecording(out)
        assert rec.num_samples == 30000 and rec.sample_rate == 1e6 and rec.captures[0].frequency_hz == 915e6
        assert [a.sample_start for a in rec.annotations] == [0, 20000]
        return
    runner = tmp_path / "run_qt.py"
    runner.write_text(QT_RUNNER)
    args = [sys.executable, str(runner), str(generated), fg_id]
    if RUNS[name] == "no_sdr":
        args.append("device=driver=hackrf")
    if RUNS[name] == "detects":
        args += ["n_symbols=30000", "constellation=qpsk"]
    if RUNS[name] == "ofdm":
        args.append("n_packets=20")
    if RUNS[name] == "anomaly":
        args.append("n_windows=60")
    if RUNS[name] == "classifier":
        args.append("n_frames=4")
    if RUNS[name] == "augmenter":
        args.append("n_frames=11")
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    if RUNS[name] == "ofdm":  # 20 packets at 25 dB over fading: both receivers decode most, none made up
        assert proc.returncode == 0, proc.stdout + proc.stderr
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("PACKETS"))
        parts = line.split()
        diffusion, stock, frames = int(parts[1]), int(parts[2]), int(parts[4])
        assert 10 <= diffusion <= 20 and 10 <= stock <= 20 and diffusion <= frames <= 20, line
        return
    if RUNS[name] == "anomaly":  # one score per window of the scene, and the events printed
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SAMPLES 61440" in proc.stdout and "DETECTED 60 ERROR None" in proc.stdout, proc.stdout + proc.stderr
        assert "(label . anomaly)" in proc.stdout  # at least one printed event (the tone at windows 20-24)
        return
    if RUNS[name] == "classifier":  # one decision per frame (11 classes x 4 frames), each printed
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SAMPLES 45056" in proc.stdout and "DETECTED 44 ERROR None" in proc.stdout, proc.stdout + proc.stderr
        assert proc.stdout.count("(top3 . ") == 44
        return
    if RUNS[name] == "classifies":  # the bundled demo's six QPSK bursts, each printed as PSK/QAM
        assert proc.returncode == 0, proc.stdout + proc.stderr
        n = SigMFRecording(bundled_recording()).num_samples
        assert f"SAMPLES {n}" in proc.stdout and f"DETECTED {-(-n // 1024)} ERROR None" in proc.stdout, proc.stdout
        assert proc.stdout.count("(family . ") >= 6 and proc.stdout.count("(family . ") == proc.stdout.count(
            "(family . PSK/QAM)"), proc.stdout
        return
    if RUNS[name] == "augmenter":  # 11 synthetic frames (one per class), each classified and printed
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SAMPLES 11264" in proc.stdout and "DETECTED 11 ERROR None" in proc.stdout, proc.stdout + proc.stderr
        assert proc.stdout.count("(top3 . ") == 11
        return
    if RUNS[name] == "detects":  # every symbol through the shipped QPSK detector, none lost
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "DETECTED 30000 ERROR None" in proc.stdout, proc.stdout + proc.stderr
        return
    if RUNS[name] in ("replays", "denoises"):
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert f"SAMPLES {SigMFRecording(bundled_recording()).num_samples}" in proc.stdout
        if RUNS[name] == "denoises":  # every sample through the shipped model and the engine, none lost
            assert f"DENOISED {SigMFRecording(bundled_recording()).num_samples} ERROR None" in proc.stdout
    else:
        from gnuradio.diffwireless.sdr_source import find_devices

        if find_devices("driver=hackrf"):
            pytest.skip("a HackRF is attached; the no-SDR path cannot be shown here")
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "BUILD-FAILED: SDRNotFoundError no SDR matches device string 'driver=hackrf'" in proc.stdout
        assert "SoapySDRUtil --find" in proc.stdout


def test_bundled_demo_recording_is_what_its_flowgraph_makes(tmp_path):
    """The shipped recording is reproducible: regenerating it gives the same samples (to 1 LSB) and metadata."""
    generated = grcc(APPS_DIR / "make_demo_recording.grc", tmp_path)
    out = tmp_path / "again"
    subprocess.run([sys.executable, str(generated), "-o", str(out)], check=True, capture_output=True, timeout=120)
    shipped, again = SigMFRecording(bundled_recording()), SigMFRecording(out)
    assert again.num_samples == shipped.num_samples == 120_000
    diff = abs(again.read(0, again.num_samples) - shipped.read(0, shipped.num_samples)).max()
    assert diff <= 1.5 / 32768
    assert [(a.sample_start, a.fields) for a in again.annotations] == \
        [(a.sample_start, a.fields) for a in shipped.annotations]
