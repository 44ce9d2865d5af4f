"""``modclass_resnet``: the shipped modulation classifier (``dw-train modclass_resnet``).

Its data come from GNU Radio's modulators (:mod:`gnuradio.diffwireless.recipes.modulation_sources`), so the recipe
lives in
the GNU Radio layer (``dw-train`` imports it only when asked for it). Training set: ``dw-dataset`` with seed 0, 48
frames per class and SNR over -10..20 dB in 2 dB steps (8448 frames); evaluation: seed 1, 24 frames per point
(4224 frames), accuracy per SNR with Wilson intervals. Adam with a cosine schedule, cross-entropy, a random phase
rotation per frame in every batch (the channel's carrier phase is arbitrary).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffwireless.bench.results import wilson_interval
from diffwireless.classifier import ModulationClassifier
from diffwireless.engine import DenoiseEngine
from diffwireless.modulation_data import CLASSES, FRAME_LEN, ModulationDataset
from diffwireless.models import DiffusionModel, save_model
from diffwireless.recipes.modulation_classifier import fit_classifier

from gnuradio.diffwireless.recipes.modulation_sources import synthesize

NAME = "modclass_resnet"
SEED = 0
SNRS_DB = tuple(float(s) for s in range(-10, 21, 2))
TRAIN_FRAMES, EVAL_FRAMES = 48, 24


def accuracy_by_snr(model: DiffusionModel, ds: ModulationDataset) -> list[dict]:
    """Accuracy per SNR (Wilson 95%) of ``model`` on ``ds`` through the engine."""
    clf = ModulationClassifier(model)
    engine = DenoiseEngine("cpu").start()
    try:
        pred = clf.classify(ds.frames, engine).index
    finally:
        engine.stop()
    truth = ds.class_indices(clf.classes)
    rows = []
    for snr in sorted(set(ds.snr_db.tolist())):
        m = ds.snr_db == snr
        hits = int(np.sum(pred[m] == truth[m]))
        lo, hi = wilson_interval(hits, int(m.sum()))
        rows.append({"snr_db": snr, "accuracy": round(hits / m.sum(), 4), "ci_low": round(lo, 4),
                     "ci_high": round(hi, 4), "frames": int(m.sum())})
    return rows


def train(out_dir: str | Path, seed: int = SEED) -> DiffusionModel:
    train_ds = synthesize(TRAIN_FRAMES, SNRS_DB, seed)
    eval_ds = synthesize(EVAL_FRAMES, SNRS_DB, seed + 1)
    model, record = fit_classifier(train_ds, seed, name=NAME, augment="rotation")
    rows = accuracy_by_snr(model, eval_ds)
    model.card = {
        "description": "Modulation classifier of 1024-sample IQ frames (11 classes) for modulation_classifier and "
                       "the augmentation benchmark; frames scaled to unit power each.",
        "classes": list(CLASSES), "frame_len": FRAME_LEN,
        "data": {"source": "gnuradio.diffwireless.recipes.modulation_sources.synthesize (dw-dataset): GNU Radio "
                           "modulators, fading_model, carrier offset, AWGN", "snr_db": list(SNRS_DB),
                 "train": f"seed {seed}, {TRAIN_FRAMES} frames per class and SNR",
                 "evaluation": f"seed {seed + 1}, {EVAL_FRAMES} frames per class and SNR"},
        "training": record,
        "evaluation": {"metric": "accuracy over the 11 classes, Wilson 95%", "rows": rows,
                       "mean_accuracy_snr_ge_0": round(float(np.mean([r["accuracy"] for r in rows
                                                                      if r["snr_db"] >= 0])), 4)},
        "reproduce": f"dw-train {NAME}",
    }
    save_model(model, Path(out_dir) / NAME, model.card)
    return model
