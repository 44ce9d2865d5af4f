"""QA: the modulation augmenter (core, block and dw-augment) and the classical augmentation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pmt
import pytest
import torch
from gnuradio import blocks, gr

from gnuradio import diffwireless
from diffwireless.augmentation import (ModulationAugmenter, classical_augment, conditioning, diffusion_items,
                                       frames_from_items)
from diffwireless.classifier import ModulationClassifier
from diffwireless.engine import DenoiseEngine
from diffwireless.errors import ModelError
from diffwireless.modulation_data import CLASSES, ModulationDataset, load_dataset, save_dataset
from diffwireless.models import build_model
from diffwireless.nn import UNet1d

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def engine():
    e = DenoiseEngine("cpu", seed=11).start()
    yield e
    e.stop()


def test_conditioning_is_one_hot_class_and_scaled_snr():
    c = conditioning(np.array([2, -1]), np.array([10.0, -5.0]), 4)
    np.testing.assert_array_equal(c, [[0, 0, 1, 0, 1.0], [0, 0, 0, 0, -0.5]])
    with pytest.raises(ValueError, match="-1..3"):
        conditioning(np.array([4]), np.array([0.0]), 4)
    with pytest.raises(ValueError, match="1 classes but 2 SNRs"):
        conditioning(np.array([0]), np.array([0.0, 1.0]), 4)


def test_items_round_trip_at_unit_power():
    rng = np.random.default_rng(0)
    x = (3 * (rng.standard_normal((5, 64)) + 1j * rng.standard_normal((5, 64)))).astype(np.complex64)
    items = diffusion_items(x)
    assert items.shape == (5, 2, 64) and items.dtype == np.float32
    np.testing.assert_allclose(np.mean(items ** 2, axis=(1, 2)), 1.0, rtol=1e-5)  # unit variance per row
    back = frames_from_items(items)
    np.testing.assert_allclose(back, x / np.sqrt(np.mean(np.abs(x) ** 2, axis=1, keepdims=True)), rtol=1e-5,
                               atol=1e-6)


def test_classical_augment_keeps_power_and_moves_a_tone_within_its_offsets():
    length, f0 = 1024, 0.1
    n = np.arange(length)
    tone = np.exp(2j * np.pi * f0 * n).astype(np.complex64)
    x = torch.from_numpy(np.repeat(diffusion_items(tone[None]) / np.sqrt(2), 200, axis=0))
    out = classical_augment(x, torch.Generator().manual_seed(1), max_cfo=0.01, max_noise_db=10.0)
    again = classical_augment(x, torch.Generator().manual_seed(1), max_cfo=0.01, max_noise_db=10.0)
    assert torch.equal(out, again)  # seeded
    z = (out[:, 0] + 1j * out[:, 1]).numpy()
    np.testing.assert_allclose(np.mean(np.abs(z) ** 2, axis=1), 1.0, rtol=1e-4)
    peak = np.fft.fftfreq(8 * length)[np.argmax(np.abs(np.fft.fft(z, 8 * length, axis=1)), axis=1)]
    # A flip mirrors the tone to -f0, the offset moves it by at most 0.01 cycles/sample; a shift and a phase do not.
    assert np.all(np.abs(np.abs(peak) - f0) <= 0.01 + 1 / (8 * length))
    assert 0.3 < np.mean(peak < 0) < 0.7  # about half flipped


def test_unet_predicts_noise_of_the_item_shape_and_drops_the_class():
    torch.manual_seed(0)
    net = UNet1d([2, 256], num_classes=3, widths=(8, 16), patch=4, emb_dim=16)
    cond = torch.from_numpy(conditioning(np.array([0, 2]), np.array([0.0, 10.0]), 3))
    out = net(torch.randn(2, 2, 256), torch.tensor([5]), cond)
    assert out.shape == (2, 2, 256) and torch.isfinite(out).all()
    unc = net.unconditional(cond)
    assert torch.all(unc[:, :3] == 0) and torch.equal(unc[:, 3], cond[:, 3])
    with pytest.raises(ValueError, match="multiple of 16"):
        UNet1d([2, 100], 3, widths=(8, 16), patch=4)
    assert build_model("u", "unet1d", net.config, None).cond_dim == 4


def test_augmenter_refuses_other_models():
    with pytest.raises(ModelError, match="not a modulation augmenter"):
        ModulationAugmenter("modclass_resnet")
    with pytest.raises(ModelError, match="not a modulation classifier"):
        ModulationAugmenter("modaug_unet", classifier="modaug_unet")
    with pytest.raises(ValueError, match="does not generate"):
        ModulationAugmenter("modaug_unet").class_index(["dvb-s2"])


def test_shipped_augmenter_makes_frames_the_classifier_recognises(engine):
    aug = ModulationAugmenter("modaug_unet", steps=20, guidance_scale=2.0)
    assert aug.classes == CLASSES and aug.frame_len == 1024 and aug.nfe == 40
    class_index = np.repeat(np.arange(len(CLASSES)), 6)
    frames = aug.generate(class_index, np.full(len(class_index), 20.0), engine)
    assert frames.shape == (66, 1024) and frames.dtype == np.complex64 and np.isfinite(frames).all()
    np.testing.assert_allclose(np.mean(np.abs(frames) ** 2, axis=1), 1.0, rtol=1e-4)
    decided = ModulationClassifier("modclass_resnet").classify(frames, engine).index
    # Chance is 1/11; the classifier trained on real frames must recognise most generated ones.
    assert np.mean(decided == class_index) > 0.6, np.mean(decided == class_index)


def test_filter_keeps_only_frames_classified_as_asked(engine):
    aug = ModulationAugmenter("modaug_unet", classifier="modclass_resnet", min_confidence=0.9)
    class_index = np.repeat(np.arange(len(CLASSES)), 4)
    syn = aug.augment(class_index, np.full(len(class_index), 0.0), engine, max_rounds=1)
    assert syn.generated == 44 and len(syn.frames) == len(syn.class_index) <= 44
    decided = aug.classifier.classify(syn.frames, engine)
    assert np.all(decided.index == syn.class_index) and np.all(decided.confidence >= 0.9)


def _run_source(blk, n_items=None):
    tb = gr.top_block()
    snk = blocks.vector_sink_c()
    if n_items is None:
        tb.connect(blk, snk)
    else:
        tb.connect(blk, blocks.head(gr.sizeof_gr_complex, n_items), snk)
    tb.run()
    return np.array(snk.data()), snk.tags()


def test_block_cycles_the_classes_with_label_and_snr_tags():
    blk = diffwireless.modulation_augmenter("modaug_unet", label="all", snr_db=12.0, n_frames=13, job_frames=5,
                                            engine="cpu")
    out, tags = _run_source(blk)
    assert len(out) == 13 * 1024 and np.isfinite(out).all()  # exactly n_frames whole frames
    labels = [(t.offset, pmt.symbol_to_string(t.value)) for t in tags if pmt.symbol_to_string(t.key) == "label"]
    assert labels == [(i * 1024, CLASSES[i % 11]) for i in range(13)]
    snrs = [pmt.to_double(t.value) for t in tags if pmt.symbol_to_string(t.key) == "snr_db"]
    assert snrs == [12.0] * 13
    assert blk.frames_out == 13 and blk.generated == 13 and blk.rejected == 0


def test_block_makes_the_same_frames_every_run_whatever_its_job_size():
    """Each frame's noise is keyed by its place in the output: two runs in jobs of different sizes (batched
    differently by the engine) give the same frames bit for bit."""
    runs = [_run_source(diffwireless.modulation_augmenter("modaug_unet", label="all", n_frames=5, job_frames=size,
                                                          steps=4, engine="cpu"))[0] for size in (2, 5)]
    assert len(runs[0]) == 5 * 1024 and np.array_equal(runs[0], runs[1])
    frames = runs[0].reshape(5, 1024)
    assert not np.array_equal(frames[0], frames[1])


def test_block_filter_and_settings():
    blk = diffwireless.modulation_augmenter("modaug_unet", label="ofdm", snr_db=20.0, classifier="modclass_resnet",
                                            min_confidence=0.5, n_frames=4, job_frames=4, engine="cpu")
    out, tags = _run_source(blk)
    assert len(out) == 4 * 1024 and blk.frames_out == 4 and blk.generated == 4 + blk.rejected
    e = DenoiseEngine("cpu").start()
    try:
        decided = ModulationClassifier("modclass_resnet").classify(out.reshape(4, 1024), e)
    finally:
        e.stop()
    assert np.all(decided.index == CLASSES.index("ofdm")) and np.all(decided.confidence >= 0.5)
    blk._on_message(pmt.intern("gmsk"))
    assert blk.label == "gmsk"
    d = pmt.dict_add(pmt.make_dict(), pmt.intern("snr_db"), pmt.from_double(-4.0))
    blk._on_message(pmt.dict_add(d, pmt.intern("label"), pmt.intern("bpsk")))
    assert (blk.label, blk.snr_db) == ("bpsk", -4.0)
    blk._on_message(pmt.intern("dvb-s2"))  # logged and ignored
    assert blk.label == "bpsk"
    with pytest.raises(ValueError, match="unknown class 'fm'"):
        diffwireless.modulation_augmenter("modaug_unet", label="fm")
    with pytest.raises(ValueError, match="n_frames"):
        diffwireless.modulation_augmenter("modaug_unet", n_frames=-1)
    with pytest.raises(ModelError):
        diffwireless.modulation_augmenter("modclass_resnet")


def test_block_stops_promptly_when_endless():
    blk = diffwireless.modulation_augmenter("modaug_unet", label="qpsk", n_frames=0, job_frames=2, engine="cpu")
    out, _ = _run_source(blk, n_items=3 * 1024)
    assert len(out) == 3 * 1024 and blk.engine is None  # head ended the flowgraph; stop() released the engine


def test_dw_augment_expands_a_dataset(tmp_path):
    rng = np.random.default_rng(3)
    frames = (rng.standard_normal((6, 1024)) + 1j * rng.standard_normal((6, 1024))).astype(np.complex64)
    src = save_dataset(ModulationDataset(frames, np.array(["qpsk"] * 3 + ["gfsk"] * 3), np.array([0.0, 10.0] * 3)),
                       tmp_path / "small")
    proc = subprocess.run([BIN / "dw-augment", src, tmp_path / "big", "--per-class", "2", "--classifier", "none",
                           "--steps", "4"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "6 real + 4 synthetic frames" in proc.stdout
    big = load_dataset(tmp_path / "big")
    assert len(big.frames) == 10 and big.synthetic.tolist() == [False] * 6 + [True] * 4
    np.testing.assert_array_equal(big.frames[:6], frames)  # the real frames untouched
    assert big.labels[6:].tolist() == ["qpsk", "qpsk", "gfsk", "gfsk"]
    assert set(big.snr_db[6:]) <= {0.0, 10.0}  # SNRs drawn from the input's
    bad = subprocess.run([BIN / "dw-augment", tmp_path / "missing", tmp_path / "x"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("dw-augment: ")
