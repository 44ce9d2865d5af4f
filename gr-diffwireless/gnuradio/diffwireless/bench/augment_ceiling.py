"""``dw-bench augment_ceiling``: what a *perfect* generator would add to the small set, beside classical augmentation.

A diffusion augmenter can at best draw frames from the distribution the real frames come from. This benchmark
replaces it by that distribution itself: fresh frames of ``dw-dataset``'s synthesis (seed 5, independent of the
full training set and the test set of ``dw-bench augment``), unfiltered, ``N`` per class drawn at random from a pool
with as many at each SNR of the grid (the small set is drawn from the same grid), added to the small set. The
classifier recipe, small sets, test set and seeds are those of ``dw-bench augment``, so its regimes can be read
against these.

Regimes (each a fresh ``iq_resnet1d``, the same recipe and seed):

- ``small+classical``: regime (ii), measured again in this run (the baseline of every row here);
- ``small+true200``: the small set plus 200 true frames per class, no augmentation (the number of frames per class
  ``dw-bench augment`` asks the diffusion augmenter for, before its filter);
- ``small+true2000``: the same with 2000 per class (``--quick``: 500);
- ``full+classical``: the full set (768 per class) with classical augmentation.

Rows: accuracy over SNR >= 0 dB per regime (mean of 3 seeds, min..max over seeds; ``--quick``: one seed, Wilson),
and each ``small+true*`` regime minus ``small+classical`` in points.
"""

from __future__ import annotations

import numpy as np

from diffwireless.bench.results import BenchRow, headless_pyplot
from diffwireless.engine import acquire_engine, device_name, release_engine
from diffwireless.modulation_data import CLASSES
from diffwireless.recipes.modulation_classifier import fit_classifier
from diffwireless.progress import track

from gnuradio.diffwireless.bench.augment import (SMALL_PER_CLASS, SNRS_DB, correct, seed_spread, settings,
                                                 small_subset)
from gnuradio.diffwireless.recipes.modulation_sources import synthesize

TRUE_SEED = 5


def true_per_class(quick: bool) -> tuple[int, int]:
    """Frames per class of the two ``small+true*`` regimes (``--quick`` makes fewer)."""
    return (200, 500) if quick else (200, 2000)


def regimes(quick: bool) -> tuple[str, ...]:
    return ("small+classical", *(f"small+true{n}" for n in true_per_class(quick)), "full+classical")


def run(quick: bool = False) -> list[BenchRow]:
    cfg = settings(quick)
    it = cfg["clf_iterations"]
    full = synthesize(cfg["full_per_point"], SNRS_DB, seed=0)
    test = synthesize(cfg["test_per_point"], SNRS_DB, seed=1)
    counts = true_per_class(quick)
    true = synthesize(-(-max(counts) // len(SNRS_DB)), SNRS_DB, seed=TRUE_SEED)
    engine = acquire_engine("auto")
    device = device_name(engine.device)
    high = test.snr_db >= 0
    hits: dict[str, list[np.ndarray]] = {r: [] for r in regimes(quick)}
    try:
        for seed in track(cfg["seeds"], "augment_ceiling: seeds"):
            small = small_subset(full, SMALL_PER_CLASS, np.random.default_rng(1000 + seed))
            hits["small+classical"].append(correct(fit_classifier(small, seed, it, augment="classical")[0], test,
                                                   engine)[high])
            for per_class in counts:
                extra = small_subset(true, per_class, np.random.default_rng(3000 + seed))
                model = fit_classifier(small, seed, it, augment="none", synthetic=extra)[0]
                hits[f"small+true{per_class}"].append(correct(model, test, engine)[high])
            hits["full+classical"].append(correct(fit_classifier(full, seed, it, augment="classical")[0], test,
                                                  engine)[high])
    finally:
        release_engine(engine)
    seeds = list(cfg["seeds"])
    means = {r: [float(h.mean()) for h in hits[r]] for r in hits}
    rows = [BenchRow(r, "mean over snr_db >= 0", "accuracy",
                     *seed_spread(means[r], int(hits[r][0].sum()), int(high.sum())), device=device,
                     extra={"seeds": seeds, "per_seed": means[r], "test_frames": int(high.sum())})
            for r in hits]
    for per_class in counts:
        name = f"small+true{per_class}"
        d = [100 * (a - b) for a, b in zip(means[name], means["small+classical"])]
        rows.append(BenchRow(name, "minus small+classical, mean over snr_db >= 0", "accuracy_gain_points",
                             float(np.mean(d)), min(d), max(d),
                             extra={"per_seed": d, "interval": "min..max over seeds"}))
    return rows


def plot(rows: list[BenchRow], path) -> None:
    plt = headless_pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    acc = {r.method: r for r in rows if r.metric == "accuracy"}
    names = list(acc)
    v = np.array([acc[n].value for n in names])
    err = np.array([[acc[n].value - acc[n].ci_low, acc[n].ci_high - acc[n].value] for n in names]).T
    ax.bar(np.arange(len(names)), v, 0.6, yerr=err, capsize=3)
    ax.set_xticks(np.arange(len(names)), names, fontsize=8)
    ax.set_ylim(0.5, 0.9)
    ax.set_ylabel(f"accuracy, SNR >= 0 dB ({len(CLASSES)} classes)")
    ax.set_title("A perfect generator (true frames) against classical augmentation", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
