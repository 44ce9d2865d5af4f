"""``dw-augment``: expand a labelled SigMF dataset with frames from a class-conditional diffusion model.

    dw-augment IN OUT [--per-class 200] [--model modaug_unet | --train [--iterations 3000]]
               [--steps 20] [--guidance 3] [--classifier modclass_resnet | none] [--min-confidence 0] [--seed 0]

Reads ``IN`` (a dataset as ``dw-dataset`` writes it: one annotation per frame with ``core:label`` and
``diffwireless:snr_db``), generates ``--per-class`` frames of every class in it at SNRs drawn from its own, keeps
those the classifier assigns to their class (``--classifier none``: all), and writes ``OUT``: the input frames
followed by the kept synthetic ones, annotated alike plus ``diffwireless:synthetic: true``. ``--train`` first fits
an augmenter to ``IN`` alone (saved beside ``OUT`` as ``OUT_augmenter``); otherwise ``--model`` is used, which must
know every class of ``IN``.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from diffwireless.augmentation import GUIDANCE_SCALE, ModulationAugmenter
from diffwireless.engine import DenoiseEngine
from diffwireless.errors import DiffWirelessError
from diffwireless.modulation_data import ModulationDataset, load_dataset, save_dataset
from diffwireless.models import save_model
from gnuradio.diffwireless.apps import _progress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dw-augment", description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="labelled dataset (SigMF, as dw-dataset writes)")
    parser.add_argument("out", help="dataset to write (NAME, NAME.sigmf-meta or NAME.sigmf-data)")
    parser.add_argument("--per-class", type=int, default=200, help="frames to generate per class (default 200)")
    parser.add_argument("--model", default="modaug_unet", help="augmenter model (default: shipped modaug_unet)")
    parser.add_argument("--train", action="store_true", help="fit an augmenter to INPUT instead of using --model")
    parser.add_argument("--iterations", type=int, default=3000, help="training iterations with --train")
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps (default 20)")
    parser.add_argument("--guidance", type=float, default=GUIDANCE_SCALE,
                        help=f"classifier-free guidance scale (default {GUIDANCE_SCALE:g})")
    parser.add_argument("--classifier", default="modclass_resnet",
                        help="filter classifier model, or 'none' (default modclass_resnet)")
    parser.add_argument("--min-confidence", type=float, default=0.0, help="least confidence to keep (default 0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    _progress.install()
    if args.per_class < 1 or args.steps < 1 or args.iterations < 1:
        parser.error("--per-class, --steps and --iterations must be >= 1")
    engine = None
    try:
        ds = load_dataset(args.input)
        real = ModulationDataset(ds.frames, ds.labels, ds.snr_db)
        classes = tuple(dict.fromkeys(ds.labels.tolist()))  # in order of first appearance
        if args.train:
            from diffwireless.recipes.modulation_augmenter import fit_augmenter

            model, record = fit_augmenter(real, args.seed, args.iterations, name=Path(args.out).name.split(".sigmf")[0]
                                          + "_augmenter", classes=classes)
            model.card.update(description=f"dw-augment --train on {args.input}", training=record)
            weights, _ = save_model(model, Path(args.out).parent / model.name, model.card)
            print(f"trained {weights} ({record['seconds_on_cpu']} s)")
        else:
            model = args.model
        classifier = None if args.classifier == "none" else args.classifier
        augmenter = ModulationAugmenter(model, args.steps, args.guidance, classifier, args.min_confidence)
        class_index = np.repeat(augmenter.class_index(list(classes)), args.per_class)
        rng = np.random.default_rng(args.seed)
        snr = rng.choice(ds.snr_db[np.isfinite(ds.snr_db)], len(class_index)) if np.isfinite(ds.snr_db).any() \
            else np.full(len(class_index), 10.0)
        engine = DenoiseEngine(args.device, seed=args.seed).start()
        syn = augmenter.augment(class_index, snr, engine)
        labels = np.array(augmenter.classes)[syn.class_index]
        out = ds + ModulationDataset(syn.frames, labels, syn.snr_db, np.ones(len(labels), dtype=bool))
        meta = save_dataset(out, args.out, description=f"dw-augment of {args.input}: {len(syn.frames)} synthetic "
                            f"frames (DDIM {args.steps} steps, guidance {args.guidance:g}, filter {args.classifier})",
                            overwrite=args.overwrite)
    except (DiffWirelessError, ValueError) as exc:
        print(f"dw-augment: {exc}", file=sys.stderr)
        return 2
    finally:
        if engine is not None:
            engine.stop()
    kept = Counter(labels.tolist())
    print(f"wrote {meta}: {len(ds.frames)} real + {len(syn.frames)} synthetic frames "
          f"({syn.generated} generated, {syn.acceptance:.0%} kept; {augmenter.nfe} network evaluations each)")
    print("kept per class: " + ", ".join(f"{c} {kept.get(c, 0)}" for c in classes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
