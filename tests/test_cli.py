"""Command-line tools: dw-replay, dw-bench, dw-train; and the benchmark result format."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diffwireless.bench import BenchRow, hanley_mcneil, log_t_interval, wilson_interval, write_results
from conftest import SHARED_CAPTURES

BIN = Path(sys.executable).parent


def test_dw_replay_prints_a_lossless_summary_and_writes_plot_and_json(tmp_path):
    proc = subprocess.run([BIN / "dw-replay", "--plot", tmp_path / "p.png", "--json", tmp_path / "s.json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "120000 samples out of 120000 in (lossless)" in proc.stdout
    assert "annotation at sample 20000 (+1): burst" in proc.stdout
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["num_samples"] == 120000
    assert report["tags"] == {"annotation": 6, "dw_eos": 1, "rx_freq": 1, "rx_rate": 1}
    # Bursts at full scale 0.25 x RRC QPSK, 50% duty cycle: mean power well below 0 dBFS, nothing clipped.
    assert -15 < report["mean_power_dbfs"] < -5 and report["clipped_fraction"] == 0
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_dw_denoise_is_lossless_and_beats_the_noise_on_the_demo(tmp_path):
    proc = subprocess.run([BIN / "dw-denoise", "--snr-db", "5", "--json", tmp_path / "d.json"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "120000 samples out of 120000 in (lossless)" in proc.stdout
    report = json.loads((tmp_path / "d.json").read_text())
    snr = {r["method"]: r for r in report["rows"]}
    assert abs(snr["noisy input"]["output_snr_db"] - 5.0) < 0.3  # the added noise is what was asked for
    assert snr["diffusion DDIM"]["output_snr_db"] > snr["noisy input"]["output_snr_db"] + 3.5
    assert snr["diffusion DDIM"]["output_snr_db"] > snr["window LMMSE"]["output_snr_db"] - 0.3
    assert report["samples_measured"] > 50_000  # the bursts: half the recording


def test_dw_replay_reports_a_bad_file_in_one_line_and_exit_code_2(tmp_path):
    (tmp_path / "x.sigmf-meta").write_text('{"global": {"core:datatype": "cf32_le", "core:version": "1.2.0"}}')
    proc = subprocess.run([BIN / "dw-replay", tmp_path / "x.sigmf-meta"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("dw-replay: error: SigMF data file not found:") and proc.stdout == ""


def test_dw_replay_raw_file_with_format(tmp_path):
    if not SHARED_CAPTURES.is_dir():
        pytest.skip("../shared/captures is absent")
    data = SHARED_CAPTURES / "ism-433" / "danfoss_dfile001.sigmf-data"
    proc = subprocess.run([BIN / "dw-replay", data, "--datatype", "cu8", "--rate", "250e3"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and "65536 samples out of 65536 in (lossless)" in proc.stdout


def test_dw_bench_and_dw_train_list_their_tasks():
    for tool, listed in (("dw-bench", ("engine", "anomaly_reference", "augment_ceiling", "classify", "networks")),
                         ("dw-train", ("iq_denoiser_qpsk_sps4", "modclass_radio"))):
        proc = subprocess.run([BIN / tool], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert set(listed) <= set(proc.stdout.split())
    proc = subprocess.run([BIN / "dw-bench", "no-such-task"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown task 'no-such-task'" in proc.stderr


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 100)[0] == 0 and wilson_interval(0, 100)[1] == pytest.approx(0.0370, abs=1e-4)


def test_hanley_mcneil_known_values():
    # AUC 0.5, 100 and 100: Q1 = Q2 = 1/3, variance (0.25 + 2 * 99 / 12) / 100**2, half-width 1.96 * 0.0409.
    lo, hi = hanley_mcneil(0.5, 100, 100)
    assert lo == pytest.approx(0.5 - 0.08022, abs=1e-4) and hi == pytest.approx(0.5 + 0.08022, abs=1e-4)
    assert hanley_mcneil(1.0, 50, 10) == (1.0, 1.0)


def test_log_t_interval_known_values():
    mean, lo, hi = log_t_interval([2.0, 8.0])
    assert mean == pytest.approx(4.0)
    # logs ln2, ln8: sd = sqrt(2) ln2, so the half-width is t(0.975, 1) * ln2 = 12.706 ln2 on the log scale.
    assert lo == pytest.approx(4.0 * 2 ** -12.7062, rel=1e-3) and hi == pytest.approx(4.0 * 2 ** 12.7062, rel=1e-3)
    assert log_t_interval([5.0]) == (pytest.approx(5.0),) * 3
    with pytest.raises(ValueError, match="positive"):
        log_t_interval([1.0, -1.0])


def test_bench_rows_are_written_with_interval_nfe_and_device(tmp_path):
    rows = [BenchRow("theory", "qpsk snr_db=5", "ber", 0.0060, 0.0060, 0.0060),
            BenchRow("diffusion", "qpsk snr_db=5", "ber", 0.0062, 0.0058, 0.0067, nfe=8, device="cpu")]
    doc = json.loads(write_results(tmp_path, "detector", rows, quick=True).read_text())
    assert doc["task"] == "detector" and doc["quick"] is True
    assert set(doc["rows"][1]) >= {"method", "setting", "metric", "value", "ci_low", "ci_high", "nfe", "device"}
    with pytest.raises(ValueError, match="outside its interval"):
        BenchRow("x", "y", "ber", 0.5, 0.6, 0.7)


def test_progress_bars_show_on_a_terminal_only():
    import io

    from diffwireless.progress import set_reporter, track
    from gnuradio.diffwireless.apps import _progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term, pipe = Terminal(), io.StringIO()
    try:
        assert _progress.install(term)
        assert list(track(range(5), "training")) == [0, 1, 2, 3, 4]
        assert "training:" in term.getvalue() and "/5 [" in term.getvalue() and "it/s]" in term.getvalue()
        assert not _progress.install(pipe)
        assert list(track(iter("ab"), "quiet")) == ["a", "b"] and pipe.getvalue() == ""
    finally:
        set_reporter(None)


def test_dw_bench_networks_times_each_network_on_this_device():
    from diffwireless.bench.networks import run

    rows = run(quick=True)
    timed = [r for r in rows if r.value == r.value]  # the anomaly pair is named, not timed
    assert len(timed) >= 2 and all(r.metric == "items_per_s" and r.ci_low <= r.value <= r.ci_high for r in timed)
    assert all(r.value > 0 and r.device.startswith(("cpu", "cuda")) for r in timed)
    assert any(r.value != r.value and "net(x, t, cond)" in r.setting for r in rows)
