"""The open-set classifier: the feature model (class means, shared precision) fitted after training, the
Mahalanobis novelty through the engine, and 'unknown' decisions from the card's threshold."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from diffwireless.classifier import UNKNOWN, ModulationClassifier, frame_items
from diffwireless.diffusion.samplers import OpenSetPass
from diffwireless.engine import DenoiseEngine, Job
from diffwireless.models import build_model, load_model, save_model
from diffwireless.nn import IQResNet1d
from diffwireless.recipes.modulation_classifier import (class_novelty_scales, fit_feature_model, novelty_threshold,
                                                        pooled_features)

CLASSES = ("tone", "noise")


def frames(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(256)
    if kind == "tone":
        f = rng.uniform(0.01, 0.05, (n, 1))
        return np.exp(2j * np.pi * f * t + 2j * np.pi * rng.uniform(size=(n, 1))).astype(np.complex64)
    if kind == "noise":
        return (rng.standard_normal((n, 256)) + 1j * rng.standard_normal((n, 256))).astype(np.complex64)
    x = np.zeros((n, 256), np.complex64)  # "pulse": unlike both
    x[:, ::32] = 1.0
    return x


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    m = build_model("toy_open_set", "iq_resnet1d", {"item_shape": [2, 256], "num_classes": 2, "widths": [8, 8],
                                                    "open_set": True}, None, card={"classes": list(CLASSES)})
    m.network.eval()
    x = torch.from_numpy(frame_items(np.concatenate([frames("tone", 64, rng), frames("noise", 64, rng)])))
    fit_feature_model(m.network, x, torch.tensor([0] * 64 + [1] * 64))
    known = m.network.open_set_scores(x)[:, -1].detach().numpy()
    m.card = {"classes": list(CLASSES), "open_set": {"threshold": novelty_threshold(known, 0.95)}}
    return m


def test_novelty_is_the_mahalanobis_distance_to_the_nearest_class(model):
    net = model.network
    x = torch.from_numpy(frame_items(frames("pulse", 3, np.random.default_rng(1))))
    out = net.open_set_scores(x).detach().double()
    f = pooled_features(net, x).double()
    mu, prec = net.class_means.double(), net.feature_precision.double()
    ref = torch.stack([torch.einsum("bi,ij,bj->b", f - m, prec, f - m) for m in mu], dim=1).amin(dim=1)
    torch.testing.assert_close(out[:, -1], ref, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(out[:, :-1], net(x).double(), rtol=1e-5, atol=1e-5)  # the logits unchanged
    with pytest.raises(RuntimeError, match="open_set"):
        IQResNet1d([2, 256], 2, widths=[8, 8]).open_set_scores(x)


def test_inputs_unlike_every_class_are_unknown_through_the_engine(model, tmp_path):
    rng = np.random.default_rng(2)
    save_model(model, tmp_path / "toy", model.card)
    clf = ModulationClassifier(load_model(tmp_path / "toy"))  # the feature model survives the file
    assert isinstance(clf.sampler, OpenSetPass) and clf.novelty_threshold == pytest.approx(
        model.card["open_set"]["threshold"])
    engine = DenoiseEngine("cpu").start()
    try:
        known = clf.classify(np.concatenate([frames("tone", 20, rng), frames("noise", 20, rng)]), engine)
        odd = clf.classify(frames("pulse", 20, rng), engine)
        raw = engine.submit(Job(clf.model, frame_items(frames("pulse", 4, rng)), OpenSetPass())).result()
    finally:
        engine.stop()
    assert raw.shape == (4, 3)
    assert np.mean(known.unknown) <= 0.2 and np.all(odd.unknown)
    assert set(odd.labels()) == {UNKNOWN} and np.all(odd.novelty > np.median(known.novelty))
    assert [lab for lab, u in zip(known.labels(), known.unknown) if not u] == [
        CLASSES[i] for i, u in zip(known.index, known.unknown) if not u]


def test_a_model_without_a_threshold_decides_closed_set():
    clf = ModulationClassifier("modclass_resnet")
    assert clf.novelty_threshold is None and clf.band_share is None
    out = clf.decide(np.array([[0.0] * 10 + [5.0]]))
    assert out.labels() == ["ofdm"] and not out.unknown.any() and out.novelty is None
    with pytest.raises(ValueError, match="keep"):
        novelty_threshold(np.ones(3), 1.0)


def test_the_novelty_threshold_can_be_moved(model):
    from diffwireless.errors import ModelError

    rng = np.random.default_rng(3)
    engine = DenoiseEngine("cpu").start()
    try:
        lenient = ModulationClassifier(model, novelty_threshold=1e12).classify(frames("pulse", 8, rng), engine)
    finally:
        engine.stop()
    assert not lenient.unknown.any()  # nothing is too far for an infinite threshold
    with pytest.raises(ValueError, match="novelty_threshold"):
        ModulationClassifier(model, novelty_threshold=-1.0)
    with pytest.raises(ModelError, match="no novelty score"):
        ModulationClassifier("modclass_resnet", novelty_threshold=10.0)


def test_class_scales_keep_the_share_of_each_class_they_are_fitted_to(model):
    rng = np.random.default_rng(4)
    x = np.concatenate([frames("tone", 200, rng), frames("noise", 200, rng)])
    out = model.network.open_set_scores(torch.from_numpy(frame_items(x))).detach().numpy().astype(np.float64)
    decided = np.repeat([0, 1], 200)
    scales = class_novelty_scales(out[:, -1], decided, 2, 0.9, min_frames=50)
    for c in range(2):  # each class's scale keeps 90% of the frames decided as it
        assert np.mean(out[decided == c, -1] <= scales[c]) == pytest.approx(0.9, abs=0.01)
    pooled = class_novelty_scales(out[:, -1], decided, 2, 0.9, min_frames=10_000)
    np.testing.assert_allclose(pooled, novelty_threshold(out[:, -1], 0.9))  # too few frames: the pooled quantile


def test_input_feature_channels_show_psk_powers_and_cyclic_prefix():
    from diffwireless.nn import iq_feature_channels

    rng = np.random.default_rng(3)
    n = 1024
    qpsk = np.exp(1j * (np.pi / 4 + np.pi / 2 * rng.integers(0, 4, n))).astype(np.complex64)
    eight = np.exp(1j * np.pi / 4 * rng.integers(0, 8, n)).astype(np.complex64)
    # OFDM of 64 carriers with a 16-sample cyclic prefix: its autocorrelation peaks at lag 64.
    symbols = [np.fft.ifft(rng.standard_normal(64) + 1j * rng.standard_normal(64)) for _ in range(n // 80 + 1)]
    ofdm = np.concatenate([np.r_[s[-16:], s] for s in symbols])[:n].astype(np.complex64)
    padded = np.r_[qpsk[:300], np.zeros(n - 300)].astype(np.complex64)  # a burst shorter than its frame
    x = torch.from_numpy(frame_items(np.stack([qpsk, eight, ofdm, padded])))
    y = iq_feature_channels(x, ("powers", "autocorr"))
    assert y.shape == (4, 9, n) and bool(torch.isfinite(y).all())
    assert torch.equal(y[:, :2], x)
    fourth = torch.complex(y[:, 4], y[:, 5]).mean(dim=1).abs()
    eighth = torch.complex(y[:, 6], y[:, 7]).mean(dim=1).abs()
    assert fourth[0] > 0.9 and fourth[1] < 0.1 and eighth[1] > 0.9  # QPSK's 4th power is constant, 8PSK's 8th
    r = y[2, 8]
    assert r[0] == pytest.approx(1.0) and int(torch.argmax(r[8:200])) + 8 == 64
    with pytest.raises(ValueError, match="unknown input features"):
        iq_feature_channels(x, ("cumulants",))


def test_network_with_input_features_round_trips_and_hostile_features_are_refused(tmp_path):
    from diffwireless.errors import ModelError

    torch.manual_seed(1)
    m = build_model("toy_features", "iq_resnet1d", {"item_shape": [2, 256], "num_classes": 2, "widths": [8, 8],
                                                    "input_features": ["powers", "autocorr"]}, None,
                    card={"classes": list(CLASSES)})
    assert m.network.stem[0].in_channels == 9
    m.network.eval()
    save_model(m, tmp_path / "toy_features", m.card)
    loaded = load_model(tmp_path / "toy_features.safetensors")
    x = torch.from_numpy(frame_items(frames("tone", 4, np.random.default_rng(0))))
    with torch.no_grad():
        assert torch.allclose(loaded.network(x), m.network(x))
    with pytest.raises(ValueError, match="unknown input features"):
        IQResNet1d(**{**m.network.config, "input_features": ["rm -rf"]})
    # A file whose header asks for a feature this version does not know is refused, naming the file.
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = tmp_path / "toy_features.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    key = next(iter(meta))
    header = json.loads(meta[key])
    header["config"]["input_features"] = ["powers", "cumulants"]
    save_file(tensors, str(path), metadata={key: json.dumps(header)})
    with pytest.raises(ModelError, match="toy_features.safetensors.*unknown input features"):
        load_model(path)


def test_knn_novelty_is_the_distance_to_the_kth_nearest_bank_frame(model, tmp_path):
    from diffwireless.errors import ModelError
    from diffwireless.recipes.modulation_classifier import with_feature_bank

    rng = np.random.default_rng(7)
    known = np.concatenate([frames("tone", 60, rng), frames("noise", 60, rng)])
    knn = with_feature_bank(model, known, 100, 5, seed=1)
    assert knn.network.feature_bank.shape == (100, model.network.class_means.shape[1])
    assert knn.network.feature_bank.dtype == torch.float16
    x = torch.from_numpy(frame_items(np.concatenate([frames("tone", 4, rng), frames("pulse", 4, rng)])))
    out = knn.network.open_set_scores(x).detach()
    unit = knn.network.unit_features(x).detach()
    bank = knn.network.feature_bank.float()
    ref = 1 - torch.sort(unit @ bank.T, dim=1, descending=True).values[:, 4]
    torch.testing.assert_close(out[:, -1], ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out[:, :-1], model.network(x).detach(), rtol=1e-5, atol=1e-5)  # same logits
    assert out[4:, -1].min() > out[:4, -1].max()  # the pulses lie further from every known frame than tones
    knn.card = {"classes": list(CLASSES), "open_set": {"threshold": float(out[:4, -1].max())}}
    save_model(knn, tmp_path / "knn", knn.card)
    clf = ModulationClassifier(load_model(tmp_path / "knn"))  # the bank survives the file
    engine = DenoiseEngine("cpu").start()
    try:
        decided = clf.classify(frames("pulse", 6, rng), engine)
    finally:
        engine.stop()
    assert decided.unknown.all()
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from diffwireless.models import _METADATA_KEY

    with safe_open(str(tmp_path / "knn.safetensors"), framework="pt") as f:
        meta = f.metadata()
    tensors = load_file(str(tmp_path / "knn.safetensors"))
    for bad in ({"knn_k": 500}, {"knn_bank": 10 ** 9}, {"knn_k": 0}):  # hostile files: a clear error, no allocation
        header = json.loads(meta[_METADATA_KEY])
        header["config"] = {**header["config"], **bad}
        save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={**meta, _METADATA_KEY: json.dumps(header)})
        with pytest.raises(ModelError, match="knn"):
            load_model(tmp_path / "bad.safetensors")
    for bad in ({"statistics_bank": 10 ** 9, "n_statistics": 11}, {"statistics_bank": 4, "n_statistics": 0}):
        header = json.loads(meta[_METADATA_KEY])
        header["config"] = {**header["config"], **bad}
        save_file(tensors, str(tmp_path / "bad.safetensors"), metadata={**meta, _METADATA_KEY: json.dumps(header)})
        with pytest.raises(ModelError, match="statistics_bank"):
            load_model(tmp_path / "bad.safetensors")


def test_sibling_frames_are_other_frames_of_the_same_burst():
    from diffwireless.recipes.modulation_classifier import burst_extents, sibling_frames

    burst = np.array([0, 0, 0, 1, 2, 2])  # bursts of 3, 1 and 2 frames
    frames_ = np.repeat(np.arange(6), 50)
    draws = np.random.default_rng(0).integers(0, 1 << 30, len(frames_))
    sib = sibling_frames(*burst_extents(np.array([0, 3, 4]), 6), frames_, draws)
    assert np.all(burst[sib] == burst[frames_])
    assert np.all(sib[frames_ == 3] == 3)  # alone in its burst: itself
    assert np.all(sib[frames_ != 3] != frames_[frames_ != 3])
    assert set(sib[frames_ == 0]) == {1, 2}  # both others are drawn


def test_burst_contrastive_loss_is_low_for_pairs_that_match_and_high_for_pairs_that_do_not():
    from diffwireless.recipes.modulation_classifier import burst_contrastive_loss

    g = torch.Generator().manual_seed(0)
    a = torch.randn(16, 32, generator=g)
    matched = burst_contrastive_loss(torch.cat([a, a + 0.01 * torch.randn(16, 32, generator=g)]))
    shuffled = burst_contrastive_loss(torch.cat([a, a[torch.randperm(16, generator=g)]]))
    assert float(matched) < 0.1 < 2.0 < float(shuffled)
    with pytest.raises(ValueError, match="even"):
        burst_contrastive_loss(torch.randn(5, 4))


def test_contrastive_training_keeps_a_bursts_frames_together_and_refuses_a_bad_weight():
    from diffwireless.modulation_data import ModulationDataset
    from diffwireless.recipes.modulation_classifier import fit_classifier

    rng = np.random.default_rng(1)
    # Tones: each burst one frequency over its two frames, bursts apart in frequency; one class.
    f = np.repeat(rng.uniform(-0.4, 0.4, 48), 2)[:, None]
    x = np.exp(2j * np.pi * f * np.arange(256)[None] + 2j * np.pi * rng.uniform(size=(96, 1))).astype(np.complex64)
    ds = ModulationDataset(x, np.array(["tone"] * 96), np.zeros(96), burst=np.repeat(np.arange(48), 2))
    model, record = fit_classifier(ds, 0, iterations=60, classes=("tone",), widths=(8, 8), contrast=1.0)
    assert "burst-contrastive" in record["loss"]
    with torch.no_grad():
        u = torch.nn.functional.normalize(model.network.eval().features(torch.from_numpy(frame_items(x))), dim=1)
    similarity = (u @ u.T).numpy()
    np.fill_diagonal(similarity, -np.inf)
    same = similarity[np.arange(0, 96, 2), np.arange(1, 96, 2)]
    similarity[np.arange(0, 96, 2), np.arange(1, 96, 2)] = -np.inf
    nearest_other = similarity[np.arange(0, 96, 2)].max(axis=1)
    # Its burst's other frame is the nearest of all for most bursts (trained without the term: about half).
    assert np.mean(same > nearest_other) >= 0.65
    with pytest.raises(ValueError, match="contrast"):
        fit_classifier(ds, 0, iterations=1, classes=("tone",), contrast=-1.0)


def test_a_burst_unlike_the_known_bursts_of_its_class_in_its_statistics_is_unknown(model, tmp_path):
    from diffwireless.burst_statistics import STATISTICS, group_statistics
    from diffwireless.classifier import decide_frames, decide_groups
    from diffwireless.errors import ModelError
    from diffwireless.recipes.modulation_classifier import (burst_novelty_rule, frame_outputs, with_feature_bank,
                                                            with_statistics_bank)

    rng = np.random.default_rng(11)
    known = np.concatenate([frames("tone", 40, rng), frames("noise", 40, rng)])
    group, labels = np.arange(80) // 2, np.repeat([0, 1], 40)  # bursts of two frames
    ruled = with_statistics_bank(with_feature_bank(model, known, 80, 5, seed=1), known, group, labels)
    assert ruled.network.burst_statistics.shape == (40, len(STATISTICS))
    np.testing.assert_array_equal(ruled.network.burst_classes.numpy(), np.repeat([0, 1], 20))
    fresh = np.concatenate([frames("tone", 40, rng), frames("noise", 40, rng)])
    rule = burst_novelty_rule(ruled, fresh, group, keep=0.9)
    assert rule["threshold"] > 0 and rule["keep_known_bursts"] == 0.9
    ruled.card = {"classes": list(CLASSES), "open_set": {"threshold": 1.0, "burst": rule}}
    save_model(ruled, tmp_path / "ruled", ruled.card)
    clf = ModulationClassifier(load_model(tmp_path / "ruled"))  # the statistics bank survives the file
    assert clf.burst_novelty is not None and clf.burst_novelty.threshold == rule["threshold"]

    out = frame_outputs(clf.model, fresh, open_set=True)
    decided = decide_groups(out, clf, group, statistics=group_statistics(fresh, group))
    novelty = np.array([d[2] for d in decided])
    assert np.mean([d[0] == UNKNOWN for d in decided]) <= 0.2  # fresh known bursts: known, as fitted
    # The same network output, but a burst whose statistics are those of a tone's square wave: unknown.
    square = np.sign(np.sin(2 * np.pi * 0.03 * np.arange(256)))[None].repeat(2, 0).astype(np.complex64)
    odd = group_statistics(square, np.zeros(2))[0]
    tone_burst = int(np.flatnonzero(np.array([d[3] for d in decided]) == "tone")[0])
    label, _, odd_novelty, closest = decide_frames(out[group == tone_burst], clf, statistics=odd)
    assert label == UNKNOWN and closest == "tone" and odd_novelty > novelty.max()
    clf.set_novelty_threshold(1e6)  # a user's threshold moves the burst rule's too
    assert decide_frames(out[group == tone_burst], clf, statistics=odd)[0] == "tone"
    with pytest.raises(ValueError, match="statistics"):
        decide_frames(out[:2], clf)
    ruled.card = {"classes": list(CLASSES), "open_set": {"threshold": 1.0, "burst": {**rule, "softmax_scale": -1}}}
    with pytest.raises(ModelError, match="open_set.burst"):
        ModulationClassifier(ruled)
    with pytest.raises(ModelError, match="statistics bank"):  # a rule without the bank in the network
        ModulationClassifier(build_model("no_bank", "iq_resnet1d", dict(model.network.config), None,
                                         card={"classes": list(CLASSES),
                                               "open_set": {"threshold": 1.0, "burst": rule}}))
