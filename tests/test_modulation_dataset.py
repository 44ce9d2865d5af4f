"""QA: labelled modulation frames from GNU Radio's modulators and channel blocks, stored and read as SigMF."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffwireless.errors import RecordingError
from diffwireless.modulation_data import CLASSES, ModulationDataset, load_dataset, save_dataset
from gnuradio.diffwireless.apps.dataset import main
from gnuradio.diffwireless.recipes.modulation_sources import clean_signal, synthesize


def test_every_class_has_its_signature_at_unit_power():
    rng = np.random.default_rng(0)
    sig = {c: clean_signal(c, 32768, rng) for c in CLASSES}
    for c, x in sig.items():
        assert x.dtype == np.complex64 and len(x) == 32768
        assert abs(np.mean(np.abs(x) ** 2) - 1) < 1e-3, c
    # Constant envelope for the frequency modulations, not for the shaped linear ones or OFDM.
    for c in ("gfsk", "gmsk", "wbfm"):
        assert np.std(np.abs(sig[c][1000:])) < 0.01, c
    for c in ("qpsk", "16qam", "ofdm", "ook"):
        assert np.std(np.abs(sig[c])) > 0.2, c
    # AM with carrier: the mean (carrier) holds most of the power; the linear modulations have none.
    assert abs(np.mean(sig["am-dsb"])) ** 2 > 0.7 and abs(np.mean(sig["qpsk"])) ** 2 < 0.01
    # At 8 samples/symbol with roll-off 0.35, QPSK's spectrum fills about 1/8 * 1.35 of the band; OFDM's 52 of 64
    # carriers most of it.
    def occupied(x):
        psd = np.mean(np.abs(np.fft.fft(x[:32768].reshape(-1, 256), axis=1)) ** 2, axis=0)
        return np.mean(psd > 0.01 * psd.max())
    assert 0.1 < occupied(sig["qpsk"]) < 0.25 and occupied(sig["ofdm"]) > 0.7
    with pytest.raises(ValueError, match="unknown class"):
        clean_signal("morse", 100, rng)


def test_channel_adds_the_noise_of_the_snr_and_datasets_round_trip(tmp_path):
    ds = synthesize(16, (-10.0, 20.0), seed=3, classes=("qpsk", "gmsk", "ofdm"))
    assert ds.frames.shape == (3 * 2 * 16, 1024) and ds.frames.dtype == np.complex64
    # At -10 dB the noise (power 10) dominates: the frames' power is that of the SNR, give or take the fading of the
    # unit-power signal. At 20 dB it is the faded signal's (16 frames share a slow fading run, so a wide range).
    assert np.mean(np.abs(ds.frames[ds.snr_db == -10.0]) ** 2) == pytest.approx(11.0, rel=0.1)
    assert 0.2 < np.mean(np.abs(ds.frames[ds.snr_db == 20.0]) ** 2) < 4.0
    again = synthesize(16, (-10.0, 20.0), seed=3, classes=("qpsk", "gmsk", "ofdm"))
    # Seeded: the same frames (to float rounding: VOLK kernels may take another path for another buffer alignment).
    np.testing.assert_allclose(ds.frames, again.frames, atol=1e-4)
    meta = save_dataset(ds, tmp_path / "ds")
    back = load_dataset(meta)
    np.testing.assert_array_equal(back.frames, ds.frames)
    assert list(back.labels) == list(ds.labels) and np.array_equal(back.snr_db, ds.snr_db)
    assert list(np.unique(back.class_indices())) == [1, 6, 10]
    ann = json.loads(meta.read_text())["annotations"][17]
    assert ann["core:sample_start"] == 17 * 1024 and ann["core:label"] == "qpsk" and ann["diffwireless:snr_db"] == 20


def test_bad_datasets_and_arguments_are_refused(tmp_path, make_recording):
    with pytest.raises(ValueError, match="do not match"):
        ModulationDataset(np.zeros((2, 8), np.complex64), np.array(["qpsk"]), np.zeros(2))
    with pytest.raises(ValueError, match="not among"):
        ModulationDataset(np.zeros((1, 8), np.complex64), np.array(["dpsk"]), np.zeros(1)).class_indices()
    bare = make_recording("bare", np.zeros(2048, np.complex64))
    with pytest.raises(RecordingError, match="no annotations"):
        load_dataset(bare)
    uneven = make_recording("uneven", np.zeros(2048, np.complex64), annotations=[
        {"sample_start": 0, "sample_count": 1024, "label": "qpsk"},
        {"sample_start": 1024, "sample_count": 512, "label": "qpsk"}])
    with pytest.raises(RecordingError, match="different lengths"):
        load_dataset(uneven)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "x"), "--classes", "qpsk", "dpsk"])
    with pytest.raises(SystemExit):
        main([str(tmp_path / "x"), "--snr", "10", "0", "2"])


def test_dw_dataset_writes_every_class_at_every_snr(tmp_path, capsys):
    assert main([str(tmp_path / "amr"), "--frames", "2", "--snr", "0", "10", "5", "--seed", "1"]) == 0
    assert "66 frames of 1024 samples, 11 classes x 3 SNRs (0..10 dB), 2 frames per point" in capsys.readouterr().out
    ds = load_dataset(tmp_path / "amr.sigmf-meta")
    assert sorted(set(ds.labels)) == sorted(CLASSES) and sorted(set(ds.snr_db)) == [0.0, 5.0, 10.0]
    # An existing recording is not overwritten unless asked.
    assert main([str(tmp_path / "amr"), "--frames", "1", "--snr", "0", "0", "1"]) == 2
    assert main([str(tmp_path / "amr"), "--frames", "1", "--snr", "0", "0", "1", "--overwrite"]) == 0


def test_dw_dataset_checks_its_output_before_the_work(tmp_path, capsys, monkeypatch):
    import gnuradio.diffwireless.apps.dataset as app

    def never(*args, **kwargs):
        raise AssertionError("synthesis ran before the output path was checked")

    monkeypatch.setattr(app, "synthesize", never)
    assert app.main([str(tmp_path / "no_such_folder" / "amr"), "--frames", "1"]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "no_such_folder" in err


def test_frames_keep_the_burst_they_were_cut_from_when_joined():
    frames = np.zeros((3, 8), np.complex64)
    a = ModulationDataset(frames, np.array(["qpsk"] * 3), np.zeros(3), burst=np.array([0, 0, 1]))
    b = ModulationDataset(frames[:2], np.array(["gfsk"] * 2), np.zeros(2))  # one burst a frame by default
    assert b.burst.tolist() == [0, 1]
    assert (a + b).burst.tolist() == [0, 0, 1, 2, 3] and (b + a).burst.tolist() == [0, 1, 2, 2, 3]
    assert (a + b).burst_starts.tolist() == [0, 2, 3, 4]
    with pytest.raises(ValueError, match="burst index"):
        ModulationDataset(frames, np.array(["qpsk"] * 3), np.zeros(3), burst=np.array([1, 0, 2]))
