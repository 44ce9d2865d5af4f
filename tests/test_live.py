"""dw-live: the live chains on a recording replayed as a virtual radio (paced, live drop policy), headless and with
its views; the same events as dw-anomaly finds offline; recording; the no-SDR error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diffwireless import SigMFRecording, SigMFWriter, bundled_recording
from conftest import SHARED_CAPTURES

from gnuradio.diffwireless.apps import anomaly as dw_anomaly
from gnuradio.diffwireless.apps import live as dw_live


def offline_events(recording: str, model: str, tmp_path: Path) -> list[dict]:
    out = tmp_path / "offline.json"
    assert dw_anomaly.main([recording, "--model", model, "--json", str(out)]) == 0
    return json.loads(out.read_text())["recordings"][0]["ae_ddpm"]["events"]


def live_report(args: list[str], tmp_path: Path) -> dict:
    out = tmp_path / "live.json"
    assert dw_live.main([*args, "--headless", "--engine-device", "cpu", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_paced_replay_of_the_demo_gives_the_offline_events_with_nothing_dropped(tmp_path):
    demo = bundled_recording()
    report = live_report(["anomaly,classify", "--recording", demo, "--realtime", "--seconds", "5"], tmp_path)
    n = SigMFRecording(demo).num_samples
    assert report["policy"] == "drop" and report["samples"] == n
    for chain in ("anomaly", "classify"):
        r = report[chain]
        assert r["items_in"] == n and r["dropped_items"] == 0 and r["error"] is None
        assert r["items_out"] == -(-n // 1024)  # every window scored / every frame classified
    assert report["events"] == offline_events(demo, "anomaly_band", tmp_path)
    assert report["decisions"]["count"] > 0


@pytest.mark.skipif(not (SHARED_CAPTURES / "ism-433").is_dir(), reason="../shared/captures/ism-433 is absent")
def test_a_real_ism_recording_gives_the_offline_events(tmp_path):
    from diffwireless.recipes.anomaly_detector import train_recording

    rec = str(SHARED_CAPTURES / "ism-433" / "TFA-Twin-Plus-30.3049_gfile001.sigmf-meta")
    train_recording(rec, tmp_path, "bg", 256, 16, 0.12, ae_iterations=400, ddpm_iterations=400)
    model = str(tmp_path / "bg.safetensors")
    report = live_report(["anomaly", "--recording", rec, "--realtime", "--anomaly-model", model], tmp_path)
    assert report["anomaly"]["dropped_items"] == 0
    events = report["events"]
    assert events and events == offline_events(rec, model, tmp_path)


def test_record_keeps_the_iq_and_the_events_as_annotations(tmp_path):
    demo = bundled_recording()
    out = tmp_path / "kept"
    report = live_report(["anomaly", "--recording", demo, "--record", str(out)], tmp_path)
    assert report["policy"] == "block"  # a recording not paced: lossless
    rec = SigMFRecording(out)
    assert rec.num_samples == SigMFRecording(demo).num_samples and rec.sample_rate == 1e6
    np.testing.assert_array_equal(rec.read(0, 1000), SigMFRecording(demo).read(0, 1000))
    # The events, as annotations (the one that closed at the end of the replay added after the sink stopped); the
    # replayed recording's own annotations are recorded again beside them.
    events = [(a.sample_start, a.sample_count) for a in rec.annotations if a.label == "anomaly"]
    assert events == [(e["start"], e["end"] - e["start"]) for e in report["events"]] and events
    assert len(rec.annotations) == len(SigMFRecording(demo).annotations) + len(events)
    assert report["record"]["added_after_stop"] == len(events)


def test_no_sdr_is_one_error_naming_the_device(capsys):
    from gnuradio.diffwireless.sdr_source import find_devices

    if find_devices("driver=hackrf"):
        pytest.skip("a HackRF is attached")
    assert dw_live.main(["anomaly", "--device", "driver=hackrf", "--headless"]) == 2
    err = capsys.readouterr().err.strip().split("\n")
    assert len(err) == 1 and "dw-live: error: no SDR matches device string 'driver=hackrf'" in err[0]


def test_unknown_chain_is_refused():
    with pytest.raises(SystemExit):
        dw_live.main(["waterfall", "--headless"])


def _ofdm_recording(path: Path, n_packets: int = 30) -> None:
    from gnuradio.diffwireless.recipes.ofdm_loopback import transmit

    tx = transmit(n_packets, seed=3)
    rng = np.random.default_rng(0)
    x = np.convolve(np.asarray(tx.samples), [1.0, 0.0, 0.45j, 0.0, -0.2])[: len(tx.samples)]
    x = x + np.sqrt(tx.signal_power / 100 / 2) * (rng.standard_normal(len(x)) + 1j * rng.standard_normal(len(x)))
    with SigMFWriter(path, "cf32_le", 1e6) as writer:
        writer.write((0.7 * x / np.abs(x).max()).astype(np.complex64))


def test_views_in_the_app_draw_and_save_screenshots(tmp_path):
    """The windowed path (offscreen Qt): the OFDM chain's Channel View and the detector's constellation."""
    _ofdm_recording(tmp_path / "ofdm")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    for chain, rec in (("ofdm", str(tmp_path / "ofdm.sigmf-meta")), ("detect", bundled_recording())):
        proc = subprocess.run([sys.executable, "-m", "gnuradio.diffwireless.apps.live", chain, "--recording", rec,
                               "--engine-device", "cpu", "--screenshot", str(tmp_path / "shots"),
                               "--json", str(tmp_path / f"{chain}.json")],
                              capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    shots = sorted(p.name for p in (tmp_path / "shots").glob("*.png"))
    assert shots == ["live-channel-view.png", "live-constellation-view.png", "live-detect.png",
                     "live-engine-monitor.png", "live-ofdm.png"]
    report = json.loads((tmp_path / "ofdm.json").read_text())
    assert report["ofdm"]["packets"] == 30 and report["ofdm"]["error"] is None
    detect = json.loads((tmp_path / "detect.json").read_text())["detect"]
    assert detect["items_out"] > 10_000 and detect["error"] is None
