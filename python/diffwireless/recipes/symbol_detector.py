"""``detector_{qpsk,16qam,64qam}``: the diffusion symbol detectors, each trained beside its DNN baseline.

Data (the same batches feed both networks): uniform random points of the constellation (unit power, GNU Radio's
order), each sent through its own transceiver drawn from :data:`~diffwireless.channel.DEFAULT_PROFILE` (every
impairment uniform within +-20% of nominal, ADC 5-7 bits), phase noise drawn from its stationary law, and AWGN at an
SNR uniform in [-7.5, 25] dB.

Diffusion training (conditional, SNR-matched): for a received ``y`` at channel SNR ``snr``, with ``t0`` the step
whose noise matches ``snr``, the channel's error ``eps_c = (y - s) / sqrt(nts(t0))`` (``nts`` = the schedule's noise
to signal ratio per dimension) is the diffusion noise: ``x_t = sqrt(abar_t) s + sqrt(1 - abar_t) eps_c`` for
``t <= t0`` (``t = t0`` half of the time, else uniform), conditioned on ``snr / 20``, and the network predicts
``eps_c`` (MSE). (Predicting ``s`` directly was tried: its unweighted loss neglects high SNR, and 16QAM lost
0.6-1.5 dB there.) So ``x_t0 = sqrt(abar_t0) y`` is exactly where the detector starts, and every deterministic DDIM
state
from there is a training input. The DNN baseline is an MLP classifier of ``(y, snr / 20)`` with cross-entropy,
sized to the same parameter count.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffwireless.diffusion.training import optimizer_step
from diffwireless.distributed import record as distributed_record
from diffwireless.distributed import shard, wrap
from diffwireless.bench.results import wilson_interval
from diffwireless.channel import DEFAULT_PROFILE, IDEAL, HardwareProfile, apply_sampled, sample_impairments, simulate
from diffwireless.constellations import Constellation, exact_awgn_ber, get_constellation
from diffwireless.denoiser import noise_var_per_dim
from diffwireless.detector import (AUTO_ONE_STEP_DB, AUTO_STEPS, SNR_SCALE_DB, SPACING, DiffusionDetector,
                                   DNNDetector, euclidean, genie_ml)
from diffwireless.diffusion.schedule import NoiseSchedule
from diffwireless.engine import DenoiseEngine
from diffwireless.models import DiffusionModel, build_model, load_model, save_model
from diffwireless.progress import track

SEED = 0
ITERATIONS = 6000
BATCH = 2048
LR = 2e-3
TRAIN_SNR_DB = (-7.5, 25.0)
DENOISER = {"item_shape": [2], "hidden": 128, "hidden_layers": 3, "time_dim": 32, "cond_dim": 1}
EVAL_SNRS_DB = (0.0, 5.0, 10.0, 15.0, 20.0)
RESIDUAL_SNRS_DB = tuple(np.arange(-10.0, 32.5, 2.5))
DEFAULT_STEPS = 0  # DDIM steps (0: auto) of the block's default, and of the card's residual-variance table
AUTO_RULE = f"auto ({AUTO_STEPS} {SPACING} DDIM steps below {AUTO_ONE_STEP_DB:g} dB, else 1)"


def name_for(constellation: str) -> str:
    return f"detector_{constellation}"


def dnn_hidden(num_classes: int, target: int, layers: int = 3) -> int:
    """Hidden width of an MLP classifier (inputs re, im, snr) with the parameter count nearest ``target``."""
    def count(h: int) -> int:
        return (3 + 1) * h + (layers - 1) * (h * h + h) + (h + 1) * num_classes
    return min(range(8, 1024), key=lambda h: abs(count(h) - target))


class SymbolBatches:
    """Seeded training batches: sent indices, received symbols, SNR."""

    def __init__(self, constellation: Constellation, profile: HardwareProfile, seed: int) -> None:
        self.c, self.profile = constellation, profile
        self.rng = np.random.default_rng(seed)

    def next(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = self.rng.integers(0, self.c.order, n)
        snr = self.rng.uniform(*TRAIN_SNR_DB, n)
        y = apply_sampled(self.c.points[idx], sample_impairments(self.profile, n, self.rng), snr, self.rng)
        return idx, y, snr


def _pairs(z: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack([z.real, z.imag], axis=1).astype(np.float32))


def train(out_dir: str | Path, constellation: str, seed: int = SEED, iterations: int = ITERATIONS,
          profile: HardwareProfile = DEFAULT_PROFILE, suffix: str = "",
          eval_symbols: int = 100_000) -> tuple[DiffusionModel, DiffusionModel]:
    """Train the diffusion detector and its DNN baseline for ``constellation`` on the same batches; write both
    (``detector_C{suffix}`` and ``detector_C{suffix}_dnn``, with cards) to ``out_dir``."""
    c = get_constellation(constellation)
    torch.manual_seed(seed)
    schedule = NoiseSchedule(1000, "linear")
    name = name_for(c.name) + suffix
    diff = build_model(name, "mlp_denoiser", DENOISER, schedule)
    hidden = dnn_hidden(c.order, diff.num_parameters)
    dnn = build_model(name + "_dnn", "mlp_classifier", {"item_shape": [2], "num_classes": c.order,
                                                        "hidden": hidden, "hidden_layers": 3, "cond_dim": 1}, None)
    nets = (diff.network.train(), dnn.network.train())
    opts = [torch.optim.Adam(n.parameters(), lr=LR) for n in nets]
    lrs = [torch.optim.lr_scheduler.CosineAnnealingLR(o, iterations) for o in opts]
    abar = torch.tensor(schedule.alphas_cumprod, dtype=torch.float32)
    nts = torch.tensor(schedule.noise_to_signal(np.arange(schedule.num_train_steps)), dtype=torch.float32)
    data = SymbolBatches(c, profile, seed)
    gen = torch.Generator().manual_seed(seed)
    points = _pairs(c.points)
    losses: tuple[list[float], list[float]] = ([], [])
    t_start = time.time()
    trained = [wrap(n) for n in nets]  # over several processes: each trains on its share of the global batch
    for _ in track(range(iterations), "symbol detector"):
        idx, y, snr = data.next(BATCH)
        s, yt = points[torch.from_numpy(idx)], _pairs(y)
        cond = torch.from_numpy((snr / SNR_SCALE_DB).astype(np.float32)).reshape(-1, 1)
        t0 = torch.from_numpy(schedule.steps_for_noise_vars(noise_var_per_dim(snr)))
        eps_c = (yt - s) / nts[t0].sqrt().reshape(-1, 1)
        t = torch.where(torch.rand(BATCH, generator=gen) < 0.5, t0,
                        (torch.rand(BATCH, generator=gen) * (t0 + 1).float()).long().clamp(max=t0))
        a = abar[t].reshape(-1, 1)
        s, yt, cond, eps_c, t, a, labels = (shard(v) for v in (s, yt, cond, eps_c, t, a, torch.from_numpy(idx)))
        loss_d = torch.mean((trained[0](a.sqrt() * s + (1 - a).sqrt() * eps_c, t, cond) - eps_c) ** 2)
        loss_c = torch.nn.functional.cross_entropy(trained[1](yt, None, cond), labels)
        for opt, sched, loss, log in zip(opts, lrs, (loss_d, loss_c), losses):
            log.append(optimizer_step(opt, sched, loss))
    for n in nets:
        n.eval()
    train_s = time.time() - t_start
    data_doc = {"constellation": c.name, "gr_constructor": c.gr_constructor, "symbols": "uniform, unit mean power",
                "hardware profile": {"nominal": profile.nominal.to_dict(), "ranges": profile.ranges(),
                                     "notes": profile.notes},
                "train_snr_db": list(TRAIN_SNR_DB), "noise": "AWGN (Es/N0)",
                "phase_noise": "stationary law, independent per symbol"}
    training = {"seed": seed, "iterations": iterations, "batch": BATCH, "optimizer": f"Adam lr {LR}, cosine",
                "seconds_on_cpu (both networks)": round(train_s, 1), **distributed_record()}
    diff.card = {"description": f"Diffusion symbol detector for {c.name} ({profile.notes}) "
                                f"(SNR-conditioned, SNR-matched start); for diffusion_detector.",
                 "constellation": c.name, "data": data_doc,
                 "training": dict(training, loss="MSE of the predicted channel error eps_c (see recipe)",
                                  final_loss_mean_last_100=float(np.mean(losses[0][-100:]))),
                 "schedule": schedule.to_dict(), "input_convention": "complex symbols, unit mean power, (re, im); "
                 "conditioning snr_db / 20", "reproduce": f"dw-train {name}"}
    dnn.card = {"description": f"DNN receiver baseline for {name}: MLP classifier, same data and parameter count "
                               f"(hidden {hidden}).", "constellation": c.name, "data": data_doc,
                "training": dict(training, loss="cross-entropy",
                                 final_loss_mean_last_100=float(np.mean(losses[1][-100:]))),
                "input_convention": diff.card["input_convention"], "reproduce": f"dw-train {name}"}
    measure(diff, dnn, profile, seed, eval_symbols)
    save_model(diff, Path(out_dir) / name)
    save_model(dnn, Path(out_dir) / (name + "_dnn"))
    return diff, dnn


def measure(diff: DiffusionModel, dnn: DiffusionModel, profile: HardwareProfile, seed: int = SEED,
            eval_symbols: int = 100_000) -> None:
    """Write the measured parts of the diffusion model's card: the residual-variance table its LLRs use and the
    BER evaluation beside the DNN, Euclidean and genie ML, with the detector's current default steps."""
    engine = DenoiseEngine("cpu").start()
    try:
        diff.card["residual_var"] = residual_table(diff, profile, engine, seed + 1, n=eval_symbols // 5)
        diff.card["evaluation"] = evaluate(diff, dnn, profile, engine, seed + 2, n=eval_symbols)
    finally:
        engine.stop()


def remeasure(models_dir: str | Path, constellation: str, suffix: str = "") -> None:
    """Measure a saved pair's card again (after a change of the detector's sampling, not of its weights) and
    save it: what ``train`` would write for the same weights. The seed is the card's training seed."""
    if suffix not in PROFILE_OF_SUFFIX:
        raise ValueError(f"unknown model suffix {suffix!r}; known: {', '.join(map(repr, PROFILE_OF_SUFFIX))}")
    name = name_for(get_constellation(constellation).name) + suffix
    diff = load_model(Path(models_dir) / name)
    dnn = load_model(Path(models_dir) / (name + "_dnn"))
    measure(diff, dnn, PROFILE_OF_SUFFIX[suffix], int(diff.card["training"]["seed"]))
    save_model(diff, Path(models_dir) / name)


def residual_table(model: DiffusionModel, profile: HardwareProfile, engine: DenoiseEngine, seed: int,
                   n: int = 20_000) -> dict[str, Any]:
    """Mean ``|denoised - sent|^2`` of the default detector on the nominal link over ``RESIDUAL_SNRS_DB``: the
    noise variance its LLRs use."""
    rng = np.random.default_rng(seed)
    det = DiffusionDetector(model, num_steps=DEFAULT_STEPS)
    out = []
    for snr in RESIDUAL_SNRS_DB:
        run = simulate(det.constellation.points, n, snr, profile.nominal, rng)
        den = det.result(engine.submit(det.job(run.received, snr)).result())
        out.append(max(float(np.mean(np.abs(den - run.sent) ** 2)), 1e-6))
    return {"snr_db": [float(s) for s in RESIDUAL_SNRS_DB], "var": out,
            "measured": f"nominal profile, DDIM {DEFAULT_STEPS or 'auto'} steps, {n} symbols per SNR"}


def evaluate(diff: DiffusionModel, dnn: DiffusionModel, profile: HardwareProfile, engine: DenoiseEngine, seed: int,
             n: int = 100_000) -> dict[str, Any]:
    """BER with Wilson 95% intervals on the nominal impaired link, every method on the same symbols."""
    rng = np.random.default_rng(seed)
    det, base = DiffusionDetector(diff, num_steps=DEFAULT_STEPS), DNNDetector(dnn)
    c = det.constellation
    rows = []
    for snr in EVAL_SNRS_DB:
        run = simulate(c.points, n, snr, profile.nominal, rng)
        sent_bits = c.indices_to_bits(run.indices)
        decided = {"diffusion": det.detect(run.received, snr, engine).indices,
                   "dnn": base.detect(run.received, snr, engine).indices,
                   "euclidean": euclidean(c, run.received),
                   "genie_ml": genie_ml(c, run.received, profile.nominal, snr)}
        for method, idx in decided.items():
            errors = int(np.count_nonzero(c.indices_to_bits(idx) != sent_bits))
            lo, hi = wilson_interval(errors, len(sent_bits))
            rows.append({"method": method, "snr_db": snr, "ber": errors / len(sent_bits), "ci_low": lo,
                         "ci_high": hi, "errors": errors, "bits": len(sent_bits)})
        rows.append({"method": "theory (AWGN, no impairment)", "snr_db": snr, "ber": exact_awgn_ber(c, snr)})
    return {"link": "nominal profile, AWGN", "metric": "BER, Wilson 95% interval",
            "diffusion_steps": DEFAULT_STEPS or AUTO_RULE, "seed": seed, "rows": rows}


# Ideal transceivers: the detectors of the AWGN benchmark link (a detector trained for impaired hardware is not
# the right one for an ideal link, and the theory comparison needs the matched one).
AWGN_PROFILE = HardwareProfile(nominal=IDEAL, spread=0.0, adc_bits_spread=0, notes="ideal hardware (AWGN only)")
# The hardware each shipped pair was trained for, by name suffix (the train_* functions below).
PROFILE_OF_SUFFIX = {"": DEFAULT_PROFILE, "_awgn": AWGN_PROFILE}


def train_qpsk(out_dir: str | Path) -> None:
    train(out_dir, "qpsk")


def train_16qam(out_dir: str | Path) -> None:
    train(out_dir, "16qam")


def train_64qam(out_dir: str | Path) -> None:
    train(out_dir, "64qam")


def train_qpsk_awgn(out_dir: str | Path) -> None:
    train(out_dir, "qpsk", profile=AWGN_PROFILE, suffix="_awgn")


def train_16qam_awgn(out_dir: str | Path) -> None:
    train(out_dir, "16qam", profile=AWGN_PROFILE, suffix="_awgn")


def train_64qam_awgn(out_dir: str | Path) -> None:
    train(out_dir, "64qam", profile=AWGN_PROFILE, suffix="_awgn")
