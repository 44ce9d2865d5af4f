"""``modaug_unet``: the shipped class-conditional diffusion augmenter (``dw-train modaug_unet``).

Its data come from GNU Radio's modulators (:mod:`gnuradio.diffwireless.recipes.modulation_sources`), so the recipe
lives in
the GNU Radio layer. Training set: the one of ``modclass_resnet`` (``dw-dataset`` seed 0, 48 frames per class and
SNR over -10..20 dB in 2 dB steps, 8448 frames); training by
:func:`diffwireless.recipes.modulation_augmenter.fit_augmenter` with seed 0. Evaluation: 50 frames per class at
0, 10 and 20 dB, generated with the block's defaults (DDIM 20 steps, guidance 3), classified by the shipped
``modclass_resnet`` (its accuracy on real test frames at the same SNRs beside it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffwireless.augmentation import GUIDANCE_SCALE, ModulationAugmenter
from diffwireless.bench.results import wilson_interval
from diffwireless.classifier import ModulationClassifier
from diffwireless.engine import DenoiseEngine
from diffwireless.modulation_data import CLASSES, FRAME_LEN
from diffwireless.models import DiffusionModel, save_model
from diffwireless.recipes.modulation_augmenter import fit_augmenter

from gnuradio.diffwireless.recipes.classifier import SNRS_DB, TRAIN_FRAMES
from gnuradio.diffwireless.recipes.modulation_sources import synthesize

NAME = "modaug_unet"
SEED = 0
ITERATIONS = 4000
EVAL_SNRS_DB = (0.0, 10.0, 20.0)
EVAL_PER_CLASS = 50


def _accuracy(pred: np.ndarray, truth: np.ndarray) -> dict:
    hits, n = int(np.sum(pred == truth)), len(truth)
    lo, hi = wilson_interval(hits, n)
    return {"accuracy": round(hits / n, 4), "ci_low": round(lo, 4), "ci_high": round(hi, 4), "frames": n}


def evaluate(model: DiffusionModel, seed: int) -> list[dict]:
    """modclass_resnet's accuracy on generated frames and on real ones, per SNR."""
    augmenter = ModulationAugmenter(model)
    clf = ModulationClassifier("modclass_resnet")
    engine = DenoiseEngine("cpu", seed=seed).start()
    rows = []
    try:
        for snr in EVAL_SNRS_DB:
            class_index = np.repeat(np.arange(len(CLASSES)), EVAL_PER_CLASS)
            frames = augmenter.generate(class_index, np.full(len(class_index), snr), engine)
            real = synthesize(EVAL_PER_CLASS, (snr,), seed + 100)
            rows.append({"snr_db": snr,
                         "generated": _accuracy(clf.classify(frames, engine).index, class_index),
                         "real": _accuracy(clf.classify(real.frames, engine).index, real.class_indices())})
    finally:
        engine.stop()
    return rows


def train(out_dir: str | Path, seed: int = SEED) -> DiffusionModel:
    train_ds = synthesize(TRAIN_FRAMES, SNRS_DB, seed)
    model, record = fit_augmenter(train_ds, seed, ITERATIONS, name=NAME)
    model.card = {
        "description": "Class-conditional diffusion model of 1024-sample IQ frames (11 classes, conditioned on "
                       "class and SNR; classifier-free guidance) for modulation_augmenter and dw-augment; frames "
                       "at unit power each.",
        "classes": list(CLASSES), "frame_len": FRAME_LEN,
        "data": {"source": "gnuradio.diffwireless.recipes.modulation_sources.synthesize (dw-dataset): GNU Radio "
                           "modulators, fading_model, carrier offset, AWGN", "snr_db": list(SNRS_DB),
                 "train": f"seed {seed}, {TRAIN_FRAMES} frames per class and SNR (modclass_resnet's training set)"},
        "training": record,
        "sampling": {"sampler": "DDIM from noise at the 2% signal step", "steps": 20,
                     "guidance_scale": GUIDANCE_SCALE, "network_evaluations_per_frame": ModulationAugmenter(model).nfe},
        "evaluation": {"metric": "modclass_resnet accuracy on generated frames (and on real test frames, seed "
                                 f"{seed + 100}) at the same SNR, Wilson 95%, {EVAL_PER_CLASS} per class",
                       "rows": evaluate(model, seed)},
        "reproduce": f"dw-train {NAME}",
    }
    save_model(model, Path(out_dir) / NAME, model.card)
    return model
