"""Training of the modulation classifier (``iq_resnet1d``) on labelled frames, with the augmentation choices of the
augmentation benchmark. The shipped ``modclass_resnet`` is trained by ``gnuradio.diffwireless.recipes.classifier``
(its data come from GNU Radio's modulators); this part needs no GNU Radio."""

from __future__ import annotations

import time

import numpy as np
import torch

from diffwireless.augmentation import classical_augment, random_phase
from diffwireless.burst_statistics import group_statistics
from diffwireless.classifier import ARCH, frame_items, network_statistics_bank, softmax
from diffwireless.diffusion.training import optimizer_step
from diffwireless.distributed import record as distributed_record
from diffwireless.distributed import shard, wrap
from diffwireless.modulation_data import CLASSES, ModulationDataset
from diffwireless.models import DiffusionModel, build_model
from diffwireless.progress import track

ITERATIONS, BATCH, LR = 1500, 128, 3e-3
AUGMENTATIONS = ("none", "rotation", "classical")
# The burst-contrastive term (``contrast`` > 0): pairs of frames of one burst per step, and the temperature of
# their cosine similarities.
CONTRAST_PAIRS, CONTRAST_TEMPERATURE = 64, 0.1


def burst_extents(burst_starts: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the index of its burst's first frame and the burst's number of frames (``[N]`` each), from the
    bursts' first frames ``[B]`` (:attr:`ModulationDataset.burst_starts`) of ``n_frames`` frames."""
    sizes = np.diff(np.r_[burst_starts, n_frames])
    return np.repeat(burst_starts, sizes), np.repeat(sizes, sizes)


def sibling_frames(first: np.ndarray, size: np.ndarray, frames: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """For each frame index of ``frames [P]``, another frame of its burst (``first``, ``size``: per frame, as
    :func:`burst_extents` gives them), chosen by the non-negative integers ``draws [P]``; the frame itself where
    its burst has one frame."""
    first, size = first[frames], size[frames]
    step = np.where(size > 1, 1 + np.asarray(draws) % np.maximum(size - 1, 1), 0)
    return first + (frames - first + step) % size


def burst_contrastive_loss(features: torch.Tensor, temperature: float = CONTRAST_TEMPERATURE) -> torch.Tensor:
    """The NT-Xent loss (Chen et al., SimCLR, ICML 2020) of ``features [2P, F]``: rows ``i`` and ``P + i`` are two
    frames of one burst (a positive pair), every other row a negative. Pulls a burst's frames together and pushes
    other bursts away on the unit sphere, so that the features keep what tells one transmission from another (rate,
    pulse, constellation) rather than only what separates the training classes: what the k-nearest novelty reads."""
    n = features.shape[0]
    if n % 2 or n < 4:
        raise ValueError(f"need an even number >= 4 of feature rows (pairs), got {n}")
    u = torch.nn.functional.normalize(features, dim=1)
    similarity = (u @ u.T / temperature).masked_fill(torch.eye(n, dtype=torch.bool), float("-inf"))
    p = n // 2
    target = torch.cat([torch.arange(p, n), torch.arange(0, p)])
    return torch.nn.functional.cross_entropy(similarity, target)


def fit_classifier(ds: ModulationDataset, seed: int, iterations: int = ITERATIONS, name: str = "modclass",
                   classes: tuple[str, ...] = CLASSES, augment: str = "rotation",
                   synthetic: ModulationDataset | None = None, open_set: bool = False,
                   widths: tuple[int, ...] | None = None, input_features: tuple[str, ...] = (),
                   contrast: float = 0.0) -> tuple[DiffusionModel, dict]:
    """Train a classifier on ``ds`` (plus ``synthetic`` frames, drawn like real ones); returns the model (card not
    yet filled) and the training record.

    ``augment``: ``none``; ``rotation`` (a uniform carrier phase per frame and batch, the shipped recipe); or
    ``classical`` (:func:`~diffwireless.augmentation.classical_augment`). Adam with a cosine schedule, cross-entropy.
    With ``open_set`` the network holds a feature model, fitted here on the training frames
    (:func:`fit_feature_model`). ``widths``: the network's stage widths (default: ``iq_resnet1d``'s);
    ``input_features``: channels the network derives from the IQ (:data:`diffwireless.nn.IQ_FEATURES`).
    ``contrast``: the weight of :func:`burst_contrastive_loss` beside the cross-entropy, on
    :data:`CONTRAST_PAIRS` pairs of frames of one burst (``ds.burst``) a step, each with the same augmentation
    (0: none; needs no ``synthetic`` frames and one process).
    """
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
    if not (np.isfinite(contrast) and contrast >= 0):
        raise ValueError(f"contrast must be a finite weight >= 0, got {contrast!r}")
    if contrast and (synthetic is not None or distributed_record()):
        raise ValueError("the burst-contrastive term trains on the bursts of ds alone, in one process")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    config = {"item_shape": [2, ds.frame_len], "num_classes": len(classes)}
    if widths is not None:
        config["widths"] = list(widths)
    if input_features:
        config["input_features"] = list(input_features)
    model = build_model(name, ARCH, {**config, "open_set": True} if open_set else config, None,
                        card={"classes": list(classes)})
    net = model.network.train()
    parts = [ds] if synthetic is None else [ds, synthetic]
    x = torch.from_numpy(np.concatenate([frame_items(p.frames) for p in parts]))
    y = torch.from_numpy(np.concatenate([p.class_indices(classes) for p in parts]))
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    t0, losses = time.time(), []
    trained = wrap(net)  # over several processes: each trains on its share of the global batch
    first, size = burst_extents(ds.burst_starts, len(ds.frames)) if contrast else (None, None)
    for _ in track(range(iterations), "classifier"):
        idx = torch.randint(0, len(x), (BATCH,), generator=gen)
        if contrast:
            anchors = torch.randint(0, len(x), (CONTRAST_PAIRS,), generator=gen).numpy()
            draws = torch.randint(0, 1 << 30, (CONTRAST_PAIRS,), generator=gen).numpy()
            pairs = torch.from_numpy(np.r_[anchors, sibling_frames(first, size, anchors, draws)])
            idx = torch.cat([idx, pairs])
        xb = x[idx]
        if augment == "rotation":
            xb = random_phase(xb, gen)
        elif augment == "classical":
            xb = classical_augment(xb, gen)
        if contrast:  # one pass over both parts: batch norm sees them together
            f = net.features(xb)
            loss = (torch.nn.functional.cross_entropy(net.head(f[:BATCH]), y[idx[:BATCH]])
                    + contrast * burst_contrastive_loss(f[BATCH:]))
        else:
            loss = torch.nn.functional.cross_entropy(trained(shard(xb)), shard(y[idx]))
        losses.append(optimizer_step(opt, sched, loss))
    net.eval()
    if open_set:
        fit_feature_model(net, x, y)
    loss_note = {"none": "cross-entropy", "rotation": "cross-entropy; random carrier phase per frame",
                 "classical": "cross-entropy; classical augmentation per frame (phase, flip, shift, CFO, noise)"}
    return model, {"seed": seed, "iterations": iterations, "batch": BATCH, "optimizer": f"Adam lr {LR}, cosine",
                   "loss": loss_note[augment] + (f"; + {contrast:g} x burst-contrastive (NT-Xent, "
                                                 f"{CONTRAST_PAIRS} pairs of frames of one burst, temperature "
                                                 f"{CONTRAST_TEMPERATURE:g})" if contrast else ""),
                   "train_frames": len(ds.frames),
                   "synthetic_frames": 0 if synthetic is None else len(synthetic.frames),
                   "final_loss_mean_last_100": float(np.mean(losses[-100:])),
                   "seconds_on_cpu": round(time.time() - t0, 1), **distributed_record()}


def batched(call, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """``call`` over items ``x [N, ...]`` in batches of ``batch``, without gradients, joined as float32."""
    with torch.inference_mode():
        return torch.cat([call(x[i:i + batch]) for i in range(0, len(x), batch)]).float()


def pooled_features(net: torch.nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Features ``[N, F]`` of items ``x [N, 2, L]`` by ``net.features`` in batches (no gradients)."""
    return batched(net.features, x, batch)


def frame_outputs(model: DiffusionModel, frames: np.ndarray, open_set: bool = False) -> np.ndarray:
    """The classifier network's output for complex frames ``[N, L]`` run directly (no engine), in batches:
    ``[N, classes]`` logits, or with ``open_set`` ``[N, classes + 1]`` (the novelty last)."""
    net = model.network
    return batched(net.open_set_scores if open_set else net, torch.from_numpy(frame_items(frames))).numpy()


def fit_feature_model(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, shrinkage: float = 1e-3) -> None:
    """Fill an open-set ``iq_resnet1d``'s feature model from items ``x [N, 2, L]`` with class indices ``y [N]``:
    the mean of each class's features and the precision of the covariance shared by all classes (Lee et al.'s
    Mahalanobis detector, NeurIPS 2018), shrunk towards its mean variance by ``shrinkage`` so that it inverts."""
    feats = pooled_features(net, x).double()
    classes = net.class_means.shape[0]
    means = torch.stack([feats[y == c].mean(dim=0) if bool((y == c).any()) else torch.zeros(feats.shape[1],
                         dtype=feats.dtype) for c in range(classes)])
    centred = feats - means[y]
    cov = centred.T @ centred / max(1, len(feats) - classes)
    cov = (1 - shrinkage) * cov + shrinkage * torch.trace(cov) / len(cov) * torch.eye(len(cov), dtype=cov.dtype)
    net.class_means.copy_(means.float())
    net.feature_precision.copy_(torch.linalg.inv(cov).float())


def with_feature_bank(model: DiffusionModel, frames: np.ndarray, size: int, k: int, seed: int) -> DiffusionModel:
    """A copy of an open-set classifier whose novelty is the k-nearest-neighbour distance: the same weights, and a
    bank of the unit features of ``size`` frames drawn (``seed``) from ``frames [N, L]`` (complex, known classes)."""
    size = min(int(size), len(frames))
    pick = np.sort(np.random.default_rng(seed).choice(len(frames), size, replace=False))
    config = {**model.network.config, "knn_bank": size, "knn_k": int(k)}
    out = build_model(model.name, ARCH, config, None, card=dict(model.card))
    state = model.network.state_dict()
    out.network.load_state_dict({**state, "feature_bank": out.network.feature_bank}, strict=True)
    out.network.eval()
    bank = batched(out.network.unit_features, torch.from_numpy(frame_items(np.asarray(frames)[pick])))
    out.network.feature_bank.copy_(bank.to(torch.float16))
    return out


def with_statistics_bank(model: DiffusionModel, frames: np.ndarray, group: np.ndarray, class_index: np.ndarray,
                         statistics: np.ndarray | None = None) -> DiffusionModel:
    """A copy of an open-set classifier that also carries known bursts' signal statistics (the bank of
    :class:`~diffwireless.classifier.BurstNovelty`): of the bursts ``group [N]`` (ascending) of ``frames [N, L]``
    (complex), each of the class ``class_index [N]`` (a class index per frame, one class per burst);
    ``statistics``: their :func:`~diffwireless.burst_statistics.group_statistics` where already computed."""
    group, class_index = np.asarray(group), np.asarray(class_index)
    values = group_statistics(frames, group) if statistics is None else np.asarray(statistics)
    first = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    config = {**model.network.config, "statistics_bank": len(values), "n_statistics": values.shape[1]}
    out = build_model(model.name, ARCH, config, None, card=dict(model.card))
    extra = {"burst_statistics": torch.from_numpy(values.astype(np.float32)),
             "burst_classes": torch.from_numpy(class_index[first].astype(np.int64))}
    state = {k: v for k, v in model.network.state_dict().items() if k not in extra}
    out.network.load_state_dict({**state, **extra}, strict=True)
    out.network.eval()
    return out


def burst_novelty_rule(model: DiffusionModel, frames: np.ndarray, group: np.ndarray, keep: float,
                       scale_keep: float = 0.95) -> dict:
    """The card's ``open_set.burst`` (:class:`~diffwireless.classifier.BurstNovelty`) for a classifier with a
    feature bank and a statistics bank, fitted on known bursts ``group [N]`` (ascending) of ``frames [N, L]``: each
    term's scale its ``scale_keep`` quantile over them, the threshold the ``keep`` quantile of their novelty."""
    group = np.asarray(group)
    out = frame_outputs(model, frames, open_set=True)
    cuts = np.flatnonzero(np.diff(group)) + 1
    distance = np.array([np.median(part) for part in np.split(out[:, -1].astype(np.float64), cuts)])
    mean = np.array([softmax(part).mean(axis=0) for part in np.split(out[:, :-1], cuts)])
    doubt, decided = 1.0 - mean.max(axis=1), mean.argmax(axis=1)
    far = network_statistics_bank(model.network).distance(group_statistics(frames, group), decided)
    scales = [novelty_threshold(term, scale_keep) for term in (distance, doubt, far)]
    if not all(np.isfinite(scales)) or min(scales) <= 0:
        raise ValueError(f"the known bursts give burst-novelty scales {scales}: need finite numbers > 0")
    novelty = distance / scales[0] + doubt / scales[1] + far / scales[2]
    return {"knn_scale": round(scales[0], 6), "softmax_scale": round(scales[1], 6),
            "statistics_scale": round(scales[2], 6), "threshold": round(novelty_threshold(novelty, keep), 5),
            "keep_known_bursts": keep}


def class_novelty_scales(known_scores: np.ndarray, decided: np.ndarray, n_classes: int, keep: float = 0.95,
                         min_frames: int = 50) -> np.ndarray:
    """Per class, the novelty that keeps ``keep`` of the known frames decided as that class (``known_scores [N]``,
    ``decided [N]`` class indices): ``[n_classes]``. A class decided for fewer than ``min_frames`` frames takes the
    quantile over all frames (too few to place its own)."""
    scores = np.asarray(known_scores, dtype=np.float64)
    pooled = novelty_threshold(scores, keep)
    return np.array([novelty_threshold(scores[decided == c], keep) if np.sum(decided == c) >= min_frames else pooled
                     for c in range(n_classes)])


def novelty_threshold(known_scores: np.ndarray, keep: float = 0.95) -> float:
    """The novelty threshold that keeps ``keep`` of the known frames (their scores ``[N]``) as known."""
    scores = np.asarray(known_scores, dtype=np.float64)
    if scores.size == 0 or not 0 < keep < 1:
        raise ValueError(f"need scores and keep in (0, 1), got {scores.size} scores and {keep}")
    return float(np.quantile(scores, keep))
