"""``dw-bench classify``: the modulation classifiers on fresh synthetic bursts, on classes held out of training,
on real recordings, and the block's speed with its front end.

- **Synthetic** (fresh seed :data:`TEST_SEED`): bursts of :mod:`gnuradio.diffwireless.recipes.radio_sources`
  through the front end; accuracy per SNR (Wilson 95%) of ``modclass_radio`` (12 classes) and its family accuracy
  beside the shipped ``modclass_resnet`` (trained on fixed frames; it knows no ``2fsk``, so it is compared by
  family): of the decision per burst (as the block and ``dw-classify`` decide: the mean softmax over the burst's
  frames, ``ofdm`` where the burst as recorded shows a cyclic prefix,
  :func:`diffwireless.frontend.cyclic_prefix_contrast`, and ``ook`` where its carrier is keyed off at the noise,
  :func:`diffwireless.frontend.keyed_share`), of the same without the two tests
  (``network_alone_accuracy``, ``modclass_radio``) and of each frame alone (``frame_accuracy``,
  ``frame_family_accuracy``).
- **Open set**: for each pair of :data:`HELD_OUT_PAIRS`, two classifiers trained without it: like ``modclass_radio``
  (cross-entropy) and with the burst-contrastive term beside it (:data:`CONTRAST`, the candidate); AUROC
  (Hanley-McNeil 95%) known-vs-held-out of each candidate novelty score on the test bursts at SNR >= 0 dB (per burst
  as the block decides: the median over the burst's frames, the softmax terms from the burst's mean softmax;
  ``frame_auroc``: each frame alone): for both trainings the distance to the k-th nearest of a bank of known frames'
  features (the shipped :data:`~gnuradio.diffwireless.recipes.radio_classifier.KNN_K` and :data:`OTHER_K`), each
  alone, with the softmax term (:func:`softmax_weight`), and as the shipped burst rule
  (:class:`diffwireless.classifier.BurstNovelty`: with the softmax term and the distance of the burst's signal
  statistics to the training bursts of the class decided, each over its 95% quantile on the validation bursts; the
  default with the cross-entropy training and ``KNN_K``; beside its AUROC the share of known and of held-out bursts
  it decides ``unknown`` at its threshold), and one minus the maximum softmax; for the cross-entropy training also
  the signal statistics' distance alone, the Mahalanobis distance of the features
  (plain, and over the decided class's 95% quantile on known validation frames) and the energy score
  (``-logsumexp`` of the logits); the class-conditional diffusion model's denoising error (a likelihood bound's
  terms; the augmenter's recipe trained on the known classes, given the frame's true SNR: an advantage the block
  would not have), of the best class and over the unconditional error; beside them the supervised reference:
  ``modclass_radio``, which has seen the two classes, scoring by its probability of them (a bound no score without
  examples of the unknown is expected to reach).
- **Real**: the recordings of known family under ``$DW_CAPTURES`` (default ``../shared/captures``): ``ism-433/*``,
  ``urh/*``, ``wifi-ofdm/conducted_*``; per recording and model the majority family and its share of the bursts
  (``dw-classify``'s path; bursts decided ``unknown`` count as a family of their own, and the family of the most
  likely class is kept beside it, and the family under a maximum-softmax rule whose threshold keeps 95% of known
  validation bursts), and over all of them the share of frames decided wrong with confidence over 0.9.
- **Speed**: samples/s of ``vector_source -> modulation_classifier -> null_sink`` with the front end (bursts and
  continuous), on a capture of bursts and on one of continuous signal, against an RTL-SDR's 2.4 Msamples/s.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from gnuradio import gr

import torch

from diffwireless.anomaly import roc_auc
from diffwireless.augmentation import conditioning, diffusion_items
from diffwireless.burst_statistics import group_statistics
from diffwireless.bench.results import BenchRow, hanley_mcneil, headless_pyplot, snr_axes, wilson_interval
from diffwireless.classifier import (FAMILIES, UNKNOWN, ModulationClassifier, classify_capture, decide_groups,
                                     majority_family, network_statistics_bank, softmax)
from diffwireless.engine import acquire_engine, device_name, release_engine
from diffwireless.modulation_data import ModulationDataset
from diffwireless.progress import track
from diffwireless.recipes.modulation_augmenter import SCHEDULE, fit_augmenter
from diffwireless.recipes.modulation_classifier import (burst_novelty_rule, class_novelty_scales, fit_classifier,
                                                        frame_outputs, with_feature_bank, with_statistics_bank)
from diffwireless.recording import open_recording

from gnuradio.diffwireless.bench.flowgraph import block_rates
from gnuradio.diffwireless.modulation_classifier import modulation_classifier
from gnuradio.diffwireless.recipes.radio_classifier import (BANK_SIZE, INPUT_FEATURES, KEEP_KNOWN, KEEP_KNOWN_BURSTS,
                                                             KNN_K, WIDTHS)
from gnuradio.diffwireless.recipes.radio_sources import RADIO_CLASSES, clean_burst, received, synthesize_radio

NEW, OLD = "modclass_radio", "modclass_resnet"
TEST_SEED, HELD_OUT_SEED = 101, 100
# Classes held out of training, measured as the unknown: the pair the literature names (each close to a known
# class: QPSK, high-index 2-FSK) and a pair unlike the rest (OOK telegrams, OFDM).
HELD_OUT_PAIRS = (("8psk", "wbfm"), ("ook", "ofdm"))
# The candidate training beside the shipped recipe's: its burst-contrastive weight; and beside the shipped k-nearest
# rule the nearest frame alone (each with and without the softmax term, :func:`softmax_weight`).
CONTRAST, OTHER_K = 1.0, 1
# The class-conditional diffusion candidate: the augmenter's recipe on the known classes' training frames; its
# noise-prediction error averaged over these steps (of 1000; signal fractions about 0.99 to 0.5).
DENOISING_STEPS = (50, 150, 300, 500)
SNRS_DB = tuple(float(s) for s in range(-10, 31, 4))
RTL_SDR_RATE = 2.4e6
CONFIDENT = 0.9
# Recordings of known family: (folder, file pattern, family), the family by what the transmitters send.
REAL_SETS = (("ism-433", "*.sigmf-meta", "OOK/ASK"), ("urh", "*.sigmf-meta", "FSK"),
             ("wifi-ofdm", "conducted_*.sigmf-meta", "OFDM"))
REAL_FAMILY = {"danfoss_dfile001": "FSK", "enocean": "OOK/ASK"}  # exceptions within their folders


def settings(quick: bool) -> dict:
    if quick:
        return {"test_bursts": 3, "held_out_bursts": 4, "validation_bursts": 2, "held_out_iterations": 600,
                "denoising_iterations": 200, "real_seconds": 0.5, "speed_seconds": 0.25}
    return {"test_bursts": 16, "held_out_bursts": 32, "validation_bursts": 6, "held_out_iterations": 3000,
            "denoising_iterations": 3000, "real_seconds": 2.0, "speed_seconds": 1.0}


def captures_dir() -> Path:
    env = os.environ.get("DW_CAPTURES")
    return Path(env) if env else Path(__file__).resolve().parents[4].parent / "shared" / "captures"


def real_recordings() -> list[tuple[Path, str]]:
    """(meta path, true family) of every recording of the set that is present."""
    root = captures_dir()
    out = []
    for folder, pattern, family in REAL_SETS:
        for meta in sorted((root / folder).glob(pattern)):
            name = meta.name.split(".sigmf")[0]
            out.append((meta, REAL_FAMILY.get(name, family)))
    return out


def mean_of_proportions(hits: list[np.ndarray]) -> tuple[float, float, float]:
    """The mean of the per-group hit rates and its 95% interval (normal; groups independent)."""
    rates = np.array([h.mean() for h in hits])
    var = np.sum(rates * (1 - rates) / np.array([len(h) for h in hits])) / len(hits) ** 2
    mean, half = float(rates.mean()), 1.959964 * float(np.sqrt(var))
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def synthetic_rows(test: ModulationDataset) -> list[BenchRow]:
    """Accuracy per SNR of the decisions per burst (the block's and ``dw-classify``'s: the mean softmax over the
    burst's frames, up to 4; the closest class where the burst is decided ``unknown``) and, beside it, of each frame
    alone (``frame_`` metrics)."""
    rows = []
    first = test.burst_starts
    statistics = group_statistics(test.frames, test.burst)
    for name in (NEW, OLD):
        clf = ModulationClassifier(name)
        output = frame_outputs(clf.model, test.frames, clf.novelty_threshold is not None)
        decided = clf.decide(output)
        per_burst = decide_groups(output, clf, test.burst, test.cyclic_prefix, test.keyed, statistics)
        units = {"frame_": (np.array([clf.classes[i] for i in decided.index]), test.labels, test.snr_db),
                 "": (np.array([d[3] for d in per_burst]), test.labels[first], test.snr_db[first])}
        if name == NEW:  # the network alone, without the front end's cyclic-prefix and keying tests
            alone = decide_groups(output, clf, test.burst, statistics=statistics)
            units["network_alone_"] = (np.array([d[3] for d in alone]), test.labels[first], test.snr_db[first])
        for prefix, (labels, truth, snr_db) in units.items():
            family_hit = np.array([FAMILIES[a] == FAMILIES[b] for a, b in zip(labels, truth)])
            metrics = [("family_accuracy", family_hit)] + ([("accuracy", labels == truth)] if name == NEW else [])
            unit = "frames" if prefix == "frame_" else "bursts"
            for metric, hit in metrics:
                for snr in SNRS_DB:
                    m = snr_db == snr
                    rows.append(BenchRow(name, f"synthetic bursts snr_db={snr:g}", prefix + metric,
                                         float(hit[m].mean()), *wilson_interval(int(hit[m].sum()), int(m.sum())),
                                         nfe=1, extra={"snr_db": snr, unit: int(m.sum())}))
                rows.append(BenchRow(name, "synthetic bursts, mean over snr_db >= 0", prefix + metric,
                                     *mean_of_proportions([hit[snr_db == s] for s in SNRS_DB if s >= 0]), nfe=1,
                                     extra={unit: int(np.sum(snr_db >= 0)),
                                            "interval": "normal, the mean of independent per-SNR proportions"}))
        if name == NEW:
            u = np.array([d[0] == UNKNOWN for d in per_burst])[test.snr_db[first] >= 0]
            rows.append(BenchRow(name, "synthetic bursts of known classes, snr_db >= 0", "unknown_share",
                                 float(u.mean()), *wilson_interval(int(u.sum()), len(u)), nfe=1))
    return rows


def open_set_rows(test: ModulationDataset, cfg: dict, seed: int, held_out: tuple[str, str]) -> list[BenchRow]:
    known_classes = tuple(c for c in RADIO_CLASSES if c not in held_out)
    train = synthesize_radio(cfg["held_out_bursts"], tuple(float(s) for s in range(-10, 31, 2)), seed,
                             known_classes)
    # The per-class scales and the softmax weights: known validation frames of their own seed, SNR >= 0 dB.
    validation = synthesize_radio(cfg["validation_bursts"], tuple(float(s) for s in range(0, 31, 2)), seed + 50,
                                  known_classes)
    high = test.snr_db >= 0
    held = np.isin(test.labels, held_out)
    cuts = test.burst_starts[1:]
    test_statistics = group_statistics(test.frames, test.burst)
    train_statistics = group_statistics(train.frames, train.burst)  # one bank for both trainings and both k

    def medians(score: np.ndarray) -> np.ndarray:  # per burst, as the block decides: the median over its frames
        return np.array([np.median(part) for part in np.split(score, cuts)])

    def doubts(p: np.ndarray) -> np.ndarray:  # per burst: one minus the decided class's mean softmax
        return np.array([1 - part.mean(axis=0).max() for part in np.split(p, cuts)])

    full = ModulationClassifier(NEW)
    p_full = softmax(frame_outputs(full.model, test.frames, open_set=True)[:, :-1])[
        :, [full.classes.index(c) for c in held_out]].sum(axis=1)
    reference = f"supervised reference (modclass_radio, P({')+P('.join(held_out)}))"
    # name -> (frame scores, burst scores, training record)
    scores: dict[str, tuple] = {reference: (p_full, np.array([part.mean() for part in np.split(p_full, cuts)]),
                                            "modclass_radio")}
    for training, contrast in (("", 0.0), ("burst-contrastive: ", CONTRAST)):
        model, record = fit_classifier(train, seed, iterations=cfg["held_out_iterations"], name="modclass_held_out",
                                       classes=known_classes, augment="rotation", open_set=True, widths=WIDTHS,
                                       input_features=INPUT_FEATURES, contrast=contrast)
        out = frame_outputs(model, test.frames, open_set=True)
        logits, distance = out[:, :-1].astype(np.float64), out[:, -1].astype(np.float64)
        p_known = softmax(logits)
        doubt = 1 - p_known.max(axis=1)
        # The k-th nearest of a bank of BANK_SIZE known frames (here drawn from the training frames), alone (the
        # shipped rule: the cross-entropy training's, k = KNN_K) and with the softmax term.
        for k in (KNN_K, OTHER_K):
            banked = with_feature_bank(model, train.frames, BANK_SIZE, k, seed)
            knn = frame_outputs(banked, test.frames, True)[:, -1].astype(np.float64)
            weight = softmax_weight(frame_outputs(banked, validation.frames, True)[validation.snr_db >= 0])
            name = f"{training}knn (k={k}, bank {min(BANK_SIZE, len(train.frames))})"
            scores[name] = (knn, medians(knn), record)
            scores[f"{name} + softmax"] = (knn + weight * doubt, medians(knn) + weight * doubts(p_known), record)
            # The shipped rule (BurstNovelty): the two terms and the burst's signal statistics against the
            # training bursts of the class decided, each over its validation quantile.
            ruled = with_statistics_bank(banked, train.frames, train.burst, train.class_indices(known_classes),
                                         train_statistics)
            rule = burst_novelty_rule(ruled, validation.frames, validation.burst, KEEP_KNOWN_BURSTS)
            ruled.card = {"classes": list(known_classes), "open_set": {"threshold": 1.0, "burst": rule}}
            bursts = decide_groups(frame_outputs(ruled, test.frames, True), ModulationClassifier(ruled), test.burst,
                                   statistics=test_statistics)
            shipped = " (shipped)" if (contrast, k) == (0.0, KNN_K) else ""
            scores[f"{name} + softmax + signal statistics{shipped}"] = (
                None, np.array([d[2] for d in bursts]), record,
                {"unknown_share": np.array([d[0] == UNKNOWN for d in bursts]), "threshold": rule["threshold"]})
        if not contrast:  # the statistics term alone (the class decided by this training's mean softmax)
            far = ruled_bank_distance(ruled, test_statistics, cuts, p_known)
            scores["signal statistics alone (nearest known burst of the class decided)"] = (None, far, record)
        if not contrast:
            val = frame_outputs(model, validation.frames, open_set=True)
            scales = class_novelty_scales(val[:, -1], val[:, :-1].argmax(axis=1), len(known_classes), KEEP_KNOWN)
            peak = logits.max(axis=1, keepdims=True)
            energy = -(peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1)))
            relative = distance / scales[logits.argmax(axis=1)]
            scores.update({"mahalanobis": (distance, medians(distance), record),
                           "mahalanobis relative to the decided class": (relative, medians(relative), record),
                           "energy": (-energy, medians(-energy), record)})
        scores[f"{training}max_softmax"] = (doubt, doubts(p_known), record)
    augmenter, record = fit_augmenter(train, seed, iterations=cfg["denoising_iterations"], name="modaug_held_out",
                                      classes=known_classes)
    error = denoising_errors(augmenter.network, test.frames, test.snr_db, len(known_classes), seed)
    best, unconditional = error[:-1].min(axis=0), error[-1]
    for name, score in (("diffusion denoising error (best class)", best),
                        ("diffusion denoising error, best class over unconditional", best / unconditional)):
        scores[name] = (score, medians(score), record)
    first = test.burst_starts
    rows = []
    for name, (frame_score, burst_score, record, *operating) in scores.items():
        for prefix, score, mask_high, mask_held, unit in (("", burst_score, high[first], held[first], "bursts"),
                                                          ("frame_", frame_score, high, held, "frames")):
            if score is None:  # a rule of bursts only
                continue
            neg, pos = score[mask_high & ~mask_held], score[mask_high & mask_held]
            auc = roc_auc(neg, pos)
            extra = {f"known_{unit}": int(len(neg)), f"unknown_{unit}": int(len(pos)), "training": record,
                     "default": name.endswith("(shipped)")}
            if operating and not prefix:  # the decisions at the rule's threshold
                unknown = operating[0]["unknown_share"]
                extra.update(threshold=operating[0]["threshold"],
                             unknown_share_of_known=float(unknown[mask_high & ~mask_held].mean()),
                             unknown_share_of_held_out=float(unknown[mask_high & mask_held].mean()))
            rows.append(BenchRow(name, f"known {len(known_classes)} classes vs held-out {'+'.join(held_out)}, "
                                 "snr_db >= 0", prefix + "auroc", auc, *hanley_mcneil(auc, len(neg), len(pos)), nfe=1,
                                 extra=extra))
    return rows


def ruled_bank_distance(model, statistics: np.ndarray, cuts: np.ndarray, p_known: np.ndarray) -> np.ndarray:
    """Per burst (``statistics [b, d]``; its frames' rows of ``p_known [n, classes]`` split at ``cuts``): the
    distance of its signal statistics to the nearest burst of ``model``'s statistics bank of the class its mean
    softmax decides."""
    decided = np.array([part.mean(axis=0).argmax() for part in np.split(p_known, cuts)])
    return network_statistics_bank(model.network).distance(statistics, decided)


def denoising_errors(network: torch.nn.Module, frames: np.ndarray, snr_db: np.ndarray, n_classes: int, seed: int,
                     batch: int = 256) -> np.ndarray:
    """The class-conditional noise predictor's error on ``frames [n, L]`` (at their SNR ``[n]``, dB) given each class
    and given none: ``[n_classes + 1, n]`` (the unconditional last), the mean squared error of the predicted noise
    averaged over :data:`DENOISING_STEPS`, the same noise (seeded) for every condition."""
    x = torch.from_numpy(diffusion_items(frames))
    abar = torch.as_tensor(SCHEDULE.alphas_cumprod, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    noise = [torch.randn(x.shape, generator=gen) for _ in DENOISING_STEPS]
    conds = [torch.from_numpy(conditioning(np.full(len(x), c if c < n_classes else -1), snr_db, n_classes))
             for c in range(n_classes + 1)]
    error = np.zeros((n_classes + 1, len(x)))
    with torch.no_grad():
        for step, eps in zip(DENOISING_STEPS, noise):
            a = abar[step]
            for i in range(0, len(x), batch):
                part = slice(i, i + batch)
                x_t = a.sqrt() * x[part] + (1 - a).sqrt() * eps[part]  # one noised batch for every condition
                t = torch.full((len(x_t),), step)
                for c, cond in enumerate(conds):
                    predicted = network(x_t, t, cond[part])
                    error[c, part] += ((predicted - eps[part]) ** 2).mean(dim=(1, 2)).numpy() / len(DENOISING_STEPS)
    return error


def softmax_weight(known: np.ndarray, keep: float = KEEP_KNOWN) -> float:
    """The weight of the softmax term of a novelty ``distance + weight * (1 - max softmax)`` from the open-set
    outputs ``[n, classes + 1]`` (the distance last) of known frames: the ratio of the two terms' ``keep`` quantiles,
    so that each counts alike at the edge of the known (0 where no known frame has any doubt)."""
    doubt = np.quantile(1.0 - softmax(known[:, :-1]).max(axis=1), keep)
    return float(np.quantile(known[:, -1].astype(np.float64), keep) / doubt) if doubt > 0 else 0.0


def max_softmax_threshold(clf: ModulationClassifier, validation: ModulationDataset) -> float:
    """The lowest mean softmax of the decided class that keeps :data:`KEEP_KNOWN` of the known validation bursts
    at SNR >= 0 dB: the maximum-softmax rule's threshold, set as the shipped rule's is."""
    output = frame_outputs(clf.model, validation.frames, clf.novelty_threshold is not None)
    confidence = np.array([d[1] for d in decide_groups(output, clf, validation.burst, validation.cyclic_prefix,
                                                           validation.keyed,
                                                           group_statistics(validation.frames, validation.burst))])
    first = validation.burst_starts
    return float(np.quantile(confidence[validation.snr_db[first] >= 0], 1 - KEEP_KNOWN))


def real_rows(cfg: dict, engine) -> list[BenchRow]:
    rows = []
    recordings = real_recordings()
    # Beside the shipped rule: unknown where the burst's mean softmax is under the threshold set on the recipe's
    # validation bursts (seed 2) as the shipped threshold is.
    validation = synthesize_radio(cfg["validation_bursts"], tuple(float(s) for s in range(0, 31, 2)), 2)
    for name in (NEW, OLD):
        clf = ModulationClassifier(name)
        min_confidence = max_softmax_threshold(clf, validation) if name == NEW else None
        right, wrong_confident, frames, right_softmax_rule = 0, 0, 0, 0
        for meta, family in track(recordings, f"classify: real ({name})"):
            with open_recording(meta) as rec:
                n = min(rec.num_samples, int(cfg["real_seconds"] * (rec.sample_rate or 1e6)))
                iq = rec.read(0, n)
            decisions = classify_capture(iq, clf, engine)
            top, share = majority_family(decisions)
            closed = [FAMILIES.get(d.closest, UNKNOWN) for d in decisions]
            closed_top = max(set(closed), key=closed.count) if closed else "none"
            softmax_rule = {}
            if min_confidence is not None:
                ruled = [UNKNOWN if d.confidence < min_confidence else FAMILIES[d.closest] for d in decisions]
                ruled_top = max(set(ruled), key=ruled.count) if ruled else "none"
                right_softmax_rule += ruled_top == family
                softmax_rule = {"max_softmax_rule_family": ruled_top,
                                "max_softmax_rule_unknown_bursts": ruled.count(UNKNOWN)}
            right += top == family
            frames += sum(d.frames for d in decisions)
            wrong_confident += sum(d.frames for d in decisions
                                   if d.family not in (family, UNKNOWN) and d.confidence > CONFIDENT)
            rows.append(BenchRow(name, f"real {meta.parent.name}/{meta.name.split('.sigmf')[0]}",
                                 "majority_family_share", share, share, share,
                                 extra={"family": top, "true_family": family, "right": top == family,
                                        "closed_set_family": closed_top,
                                        "unknown_bursts": sum(d.label == UNKNOWN for d in decisions),
                                        "bursts": len(decisions), "seconds": cfg["real_seconds"], **softmax_rule,
                                        "labels": {lab: [d.label for d in decisions].count(lab)
                                                   for lab in sorted({d.label for d in decisions})}}))
        k = len(recordings)
        if k:
            rows.append(BenchRow(name, f"real recordings ({k})", "right_family_share", right / k,
                                 *wilson_interval(right, k), extra={"right": right, "recordings": k}))
            if min_confidence is not None:
                rows.append(BenchRow(f"{name}, unknown by max softmax", f"real recordings ({k})",
                                     "right_family_share", right_softmax_rule / k,
                                     *wilson_interval(right_softmax_rule, k),
                                     extra={"right": right_softmax_rule, "recordings": k,
                                            "min_confidence": min_confidence}))
            rows.append(BenchRow(name, f"real recordings ({k}), frames of all bursts",
                                 f"wrong_with_confidence_over_{CONFIDENT:g}", wrong_confident / max(frames, 1),
                                 *wilson_interval(wrong_confident, max(frames, 1)),
                                 extra={"wrong_confident_frames": wrong_confident, "frames": frames}))
    return rows


def speed_capture(kind: str, seconds: float, seed: int = 7) -> np.ndarray:
    """``seconds`` at 2.4 Msamples/s: ``bursts`` (OOK, FSK and OFDM bursts in noise, 30% of the time on) or
    ``continuous`` (one OFDM signal throughout)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RTL_SDR_RATE)
    parts, total = [], 0
    while total < n:
        if kind == "continuous":
            x, _ = received(clean_burst("ofdm", 2048, rng), 20.0, rng)
        else:
            label = ("ook", "2fsk", "ofdm", "qpsk")[len(parts) % 4]
            burst, _ = received(clean_burst(label, 256, rng), 20.0, rng)
            x = np.concatenate([burst, 0.1 * (rng.standard_normal(2 * len(burst)) + 0j)]).astype(np.complex64)
        parts.append(x)
        total += len(x)
    return np.concatenate(parts)[:n].astype(np.complex64)


def speed_rows(cfg: dict, device: str) -> list[BenchRow]:
    rows = []
    for kind, front_end in (("bursts", "bursts"), ("continuous", "continuous"), ("continuous", "bursts")):
        x = speed_capture(kind, cfg["speed_seconds"])
        rates = block_rates(lambda: modulation_classifier(NEW, engine="cpu" if device == "cpu" else "auto",
                                                          front_end=front_end), x, gr.sizeof_int, len(x))
        rows.append(BenchRow(NEW, f"front_end={front_end}, {kind} capture", "samples_per_s",
                             float(np.median(rates)), float(min(rates)), float(max(rates)), nfe=1, device=device,
                             extra={"samples": len(x), "runs": 3, "interval": "min..max of 3 runs",
                                    "rtl_sdr_rate": RTL_SDR_RATE}))
    return rows


def run(quick: bool = False) -> list[BenchRow]:
    cfg = settings(quick)
    test = synthesize_radio(cfg["test_bursts"], SNRS_DB, TEST_SEED)
    rows = synthetic_rows(test)
    for k, pair in enumerate(HELD_OUT_PAIRS):
        rows += open_set_rows(test, cfg, HELD_OUT_SEED + k, pair)
    engine = acquire_engine("auto", holder="dw-bench classify")
    device = device_name(engine.device)
    try:
        rows += real_rows(cfg, engine)
    finally:
        release_engine(engine, "dw-bench classify")
    rows += speed_rows(cfg, device)
    return rows


def plot(rows: list[BenchRow], path) -> None:
    plt = headless_pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method, metric, style in ((NEW, "accuracy", "o-"), (NEW, "frame_accuracy", ".:"),
                                  (NEW, "family_accuracy", "s--"), (OLD, "family_accuracy", "x:")):
        pts = sorted((r.extra["snr_db"], r.value, r.ci_low, r.ci_high) for r in rows
                     if r.method == method and r.metric == metric and "snr_db" in r.extra)
        if pts:
            s, v, lo, hi = (np.array(p) for p in zip(*pts))
            unit = "per frame" if metric.startswith("frame_") else "per burst"
            ax.plot(s, v, style, ms=3, lw=1, label=f"{method} {metric.removeprefix('frame_').replace('_', ' ')}, "
                                                    f"{unit}")
            ax.fill_between(s, lo, hi, alpha=0.12)
    snr_axes(ax, "accuracy", "Fresh synthetic bursts through the front end",
             xlabel="burst SNR over the captured band (dB)")
    real = [r for r in rows if r.metric == "majority_family_share"]
    names = sorted({r.setting.removeprefix("real ") for r in real})
    for k, (method, colour) in enumerate(((NEW, "tab:blue"), (OLD, "tab:gray"))):
        for i, name in enumerate(names):
            r = next((r for r in real if r.method == method and r.setting == f"real {name}"), None)
            if r is None:
                continue
            ok = r.extra["right"]
            ax2.barh(i + 0.4 * k, r.value if ok else -r.value, 0.38, color=colour if ok else "tab:red",
                     label=None)
            ax2.text(0.02 if ok else -0.02, i + 0.4 * k, f"{method}: {r.extra['family']}", va="center",
                     ha="left" if ok else "right", fontsize=6)
    ax2.set_yticks(np.arange(len(names)) + 0.2, [n.split("/")[-1][:28] for n in names], fontsize=6)
    ax2.axvline(0, color="k", lw=0.5)
    ax2.set_xlim(-1.05, 1.05)
    ax2.set_xlabel("share of bursts in the majority family (red, left: not the true family)")
    ax2.set_title("Real recordings", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
