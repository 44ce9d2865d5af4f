"""``dw-bench augment``: does diffusion augmentation help a modulation classifier trained on a small set?

Data (``dw-dataset``'s synthesis: GNU Radio's modulators, fading, carrier offset, AWGN; 11 classes, SNR -10..20 dB in
2 dB steps): the full training set, seed 0, 48 frames per class and SNR (768 per class); the test set, seed 1, 24 per
class and SNR (``--quick``: 16 and 8). For each bench seed, the small set is 50 frames per class drawn at random
from the full set. Regimes, each a fresh ``iq_resnet1d`` trained with the same recipe and seed:

- ``small``: the small set alone, no augmentation (regime (i));
- ``small+classical``: the small set with classical augmentation per frame and batch (phase, flip, time shift,
  carrier offset, noise: :func:`diffwireless.augmentation.classical_augment`) ((ii));
- ``small+diffusion``: the small set plus frames from a class-conditional diffusion model trained on the small set
  only, kept when the ``small+classical`` classifier (the best one the small set gives; no other data) assigns
  them to their class ((iii));
- ``small+diffusion+classical``: both (not among the goals; the practical combination);
- ``full``: the full set, no augmentation ((iv), the upper bound of this recipe);
- ``synthetic``: the generated frames alone (train on synthetic, test on real: fidelity), to set against ``small``
  (train on real, the data the generator saw).

The generated frames: ``SYNTH_PER_CLASS`` per class (``--quick``: fewer), SNRs drawn from the small set's, DDIM
``STEPS`` steps with guidance ``GUIDANCE`` (two network evaluations per step), at most two generation rounds.

Rows: accuracy per regime and SNR (mean over seeds; interval min..max over seeds; with one seed the Wilson
interval), the mean over SNR >= 0 dB per regime, the goals as differences, the TSTR/TRTR ratio, the
filter's acceptance and the generation rate, and the classifier block's frames/s in a flowgraph
(``vector_source -> modulation_classifier -> null_sink``, shipped ``modclass_resnet``, min..max of 3 runs).
"""

from __future__ import annotations

import time

import numpy as np
from gnuradio import gr

from diffwireless.augmentation import GUIDANCE_SCALE, ModulationAugmenter
from diffwireless.bench.results import BenchRow, headless_pyplot, snr_axes, wilson_interval
from diffwireless.classifier import ModulationClassifier
from diffwireless.engine import acquire_engine, device_name, release_engine
from diffwireless.modulation_data import CLASSES, ModulationDataset
from diffwireless.recipes.modulation_augmenter import fit_augmenter
from diffwireless.recipes.modulation_classifier import fit_classifier
from diffwireless.progress import track

from gnuradio.diffwireless.bench.flowgraph import block_rates
from gnuradio.diffwireless.modulation_classifier import modulation_classifier
from gnuradio.diffwireless.recipes.modulation_sources import synthesize

SNRS_DB = tuple(float(s) for s in range(-10, 21, 2))
SMALL_PER_CLASS = 50
STEPS, GUIDANCE = 20, GUIDANCE_SCALE
REGIMES = ("small", "small+classical", "small+diffusion", "small+diffusion+classical", "full", "synthetic")
CLASSIFIER_MODEL = "modclass_resnet"


def settings(quick: bool) -> dict:
    if quick:
        return {"seeds": (0,), "full_per_point": 16, "test_per_point": 8, "clf_iterations": 500,
                "aug_iterations": 800, "synth_per_class": 100, "speed_frames": 2000}
    return {"seeds": (0, 1, 2), "full_per_point": 48, "test_per_point": 24, "clf_iterations": 1500,
            "aug_iterations": 3000, "synth_per_class": 200, "speed_frames": 8000}


def small_subset(ds: ModulationDataset, per_class: int, rng: np.random.Generator) -> ModulationDataset:
    idx = np.concatenate([rng.choice(np.flatnonzero(ds.labels == c), per_class, replace=False) for c in CLASSES])
    return ModulationDataset(ds.frames[idx], ds.labels[idx], ds.snr_db[idx])


def correct(model, test: ModulationDataset, engine) -> np.ndarray:
    """Which test frames ``model`` classifies right, bool ``[N]``."""
    return ModulationClassifier(model).classify(test.frames, engine).index == test.class_indices()


def one_seed(seed: int, full: ModulationDataset, test: ModulationDataset, cfg: dict, engine) -> dict:
    """Correctness of every regime on the test set, and what the augmenter did."""
    small = small_subset(full, SMALL_PER_CLASS, np.random.default_rng(1000 + seed))
    it = cfg["clf_iterations"]
    out: dict = {}
    m_small, _ = fit_classifier(small, seed, it, augment="none")
    out["small"] = correct(m_small, test, engine)
    m_classical, _ = fit_classifier(small, seed, it, augment="classical")
    out["small+classical"] = correct(m_classical, test, engine)
    out["full"] = correct(fit_classifier(full, seed, it, augment="none")[0], test, engine)
    gen_model, record = fit_augmenter(small, seed, cfg["aug_iterations"])
    augmenter = ModulationAugmenter(gen_model, steps=STEPS, guidance_scale=GUIDANCE, classifier=m_classical)
    rng = np.random.default_rng(2000 + seed)
    class_index = np.repeat(np.arange(len(CLASSES)), cfg["synth_per_class"])
    t0 = time.perf_counter()
    syn = augmenter.augment(class_index, rng.choice(small.snr_db, len(class_index)), engine, max_rounds=2)
    seconds = time.perf_counter() - t0
    synthetic = ModulationDataset(syn.frames, np.array(CLASSES)[syn.class_index], syn.snr_db)
    out["small+diffusion"] = correct(fit_classifier(small, seed, it, augment="none", synthetic=synthetic)[0],
                                     test, engine)
    out["small+diffusion+classical"] = correct(
        fit_classifier(small, seed, it, augment="classical", synthetic=synthetic)[0], test, engine)
    out["synthetic"] = correct(fit_classifier(synthetic, seed, it, augment="none")[0], test, engine)
    out["augmenter"] = {"kept": len(syn.frames), "generated": syn.generated, "acceptance": syn.acceptance,
                        "generation_s": seconds, "nfe": augmenter.nfe, "training": record}
    return out


def classifier_speed(frames: int, device: str) -> BenchRow:
    clf = ModulationClassifier(CLASSIFIER_MODEL)
    x = synthesize(max(1, frames // (len(CLASSES) * 4)), (0.0, 10.0, 20.0, 5.0), seed=9).frames.ravel()
    rates = block_rates(lambda: modulation_classifier(CLASSIFIER_MODEL, engine="cpu" if device == "cpu" else "auto"),
                        x, gr.sizeof_int, len(x) // clf.frame_len)
    return BenchRow("modulation_classifier", "flowgraph vector_source -> modulation_classifier -> null_sink",
                    "frames_per_s", float(np.median(rates)), float(min(rates)), float(max(rates)), nfe=1,
                    device=device, extra={"frames": len(x) // clf.frame_len, "runs": 3,
                                          "interval": "min..max of 3 runs"})


def seed_spread(values: list[float], hits: int | None = None, n: int | None = None) -> tuple[float, float, float]:
    """Mean and interval: min..max over seeds, or the Wilson interval when there is one seed."""
    mean = float(np.mean(values))
    if len(values) == 1 and n:
        return (mean, *wilson_interval(hits, n))
    return mean, float(min(values)), float(max(values))


def run(quick: bool = False) -> list[BenchRow]:
    cfg = settings(quick)
    full = synthesize(cfg["full_per_point"], SNRS_DB, seed=0)
    test = synthesize(cfg["test_per_point"], SNRS_DB, seed=1)
    engine = acquire_engine("auto")
    device = device_name(engine.device)
    try:
        results = [one_seed(s, full, test, cfg, engine) for s in cfg["seeds"]]
    finally:
        release_engine(engine)
    seeds = list(cfg["seeds"])
    rows: list[BenchRow] = []
    high = test.snr_db >= 0
    means: dict[str, list[float]] = {}
    for regime in track(REGIMES, "augment: regimes"):
        nfe = results[0]["augmenter"]["nfe"] if "diffusion" in regime or regime == "synthetic" else 0
        for snr in SNRS_DB:
            m = test.snr_db == snr
            accs = [float(r[regime][m].mean()) for r in results]
            hits = int(results[0][regime][m].sum())
            rows.append(BenchRow(regime, f"snr_db={snr:g}", "accuracy", *seed_spread(accs, hits, int(m.sum())),
                                 device="cpu", extra={"snr_db": snr, "test_frames": int(m.sum()), "seeds": seeds,
                                                      "per_seed": accs, "generator_nfe": nfe}))
        means[regime] = [float(r[regime][high].mean()) for r in results]
        rows.append(BenchRow(regime, "mean over snr_db >= 0", "accuracy",
                             *seed_spread(means[regime], int(results[0][regime][high].sum()), int(high.sum())),
                             device="cpu", extra={"seeds": seeds, "per_seed": means[regime], "generator_nfe": nfe}))
    for a, b in (("small+diffusion", "small"), ("small+diffusion", "small+classical"),
                 ("small+diffusion+classical", "small+classical")):
        d = [x - y for x, y in zip(means[a], means[b])]
        rows.append(BenchRow(a, f"minus {b}, mean over snr_db >= 0", "accuracy_gain_points",
                             100 * float(np.mean(d)), 100 * min(d), 100 * max(d),
                             extra={"per_seed": [100 * v for v in d], "interval": "min..max over seeds"}))
    ratio = [s / r for s, r in zip(means["synthetic"], means["small"])]
    rows.append(BenchRow("synthetic", "train on synthetic / train on real (small), mean over snr_db >= 0",
                         "tstr_over_trtr", float(np.mean(ratio)), min(ratio), max(ratio),
                         extra={"per_seed": ratio, "interval": "min..max over seeds"}))
    aug = [r["augmenter"] for r in results]
    acc = [a["acceptance"] for a in aug]
    setting = f"filter by the small+classical classifier, {cfg['synth_per_class']} per class asked"
    rows.append(BenchRow("diffusion", setting,
                         "acceptance", float(np.mean(acc)), min(acc), max(acc), nfe=aug[0]["nfe"], device=device,
                         extra={"kept": [a["kept"] for a in aug], "generated": [a["generated"] for a in aug]}))
    rate = [a["generated"] / a["generation_s"] for a in aug]
    rows.append(BenchRow("diffusion", f"DDIM {STEPS} steps, guidance {GUIDANCE:g}, with the filter",
                         "frames_per_s", float(np.mean(rate)), min(rate), max(rate), nfe=aug[0]["nfe"],
                         device=device, extra={"training_s": [a["training"]["seconds_on_cpu"] for a in aug]}))
    rows.append(classifier_speed(cfg["speed_frames"], device))
    return rows


def plot(rows: list[BenchRow], path) -> None:
    plt = headless_pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"small": "s:", "small+classical": "^--", "small+diffusion": "o-", "small+diffusion+classical": "D-",
              "full": "k-", "synthetic": "x:"}
    for regime, style in styles.items():
        pts = sorted((r.extra["snr_db"], r.value, r.ci_low, r.ci_high) for r in rows
                     if r.method == regime and r.metric == "accuracy" and "snr_db" in r.extra)
        if not pts:
            continue
        s, v, lo, hi = (np.array(x) for x in zip(*pts))
        ax.plot(s, v, style, label=regime, ms=3, lw=1)
        ax.fill_between(s, lo, hi, alpha=0.12)
    snr_axes(ax, "accuracy (11 classes)", "Modulation classifier: 50 frames/class, augmented")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
