"""AE-DDPM spectrum anomaly models: ``anomaly_band`` (shipped) and models of a user's own recording.

``anomaly_band``: the synthetic band of :mod:`diffwireless.spectrum_scenes` (QPSK, 16QAM, OFDM and GFSK channels,
random SNR, carrier offset and Rician fading, unit-power noise), windows of 1024 samples, 128-point frames (a
128 x 8 log spectrogram). Only normal traffic is seen in training.

Training, from one seed: (1) the autoencoder on log spectrograms (mean squared error); (2) its latents are
standardised (per-dimension mean and deviation stored in the model) and a DDPM is trained on them (noise prediction);
(3) the two residual statistics of the score are standardised on fresh normal windows, and thresholds for
false-alarm rates are set on the same windows, for the AE-DDPM score and for the baselines
(autoencoder alone, energy, spectral kurtosis), and written to the card.

``dw-train anomaly --normal REC.sigmf-meta`` runs the same recipe on a recording of a band's normal traffic: every
whole window of it (or of ``--seconds``) is normal; the reference level is the median window power of that
recording; three quarters train, the last quarter calibrates.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffwireless.anomaly import (ARCH, AnomalyDetector, PFA_GRID, calibrate, energy_score, log_spectrogram, roc_auc,
                                  spectral_kurtosis_score)
from diffwireless.diffusion.schedule import NoiseSchedule
from diffwireless.diffusion.training import noise_prediction_step, optimizer_step
from diffwireless.distributed import record as distributed_record
from diffwireless.distributed import shard, wrap
from diffwireless.engine import DenoiseEngine, Job
from diffwireless.models import DiffusionModel, build_model, save_model
from diffwireless import spectrum_scenes as scenes
from diffwireless.progress import track

NAME = "anomaly_band"
SEED = 0
# 128-point frames: measured on this band at 0 dB JNR (AE-DDPM mean AUC over anomaly types; 3000 normal windows
# and 1000 per type; 2000 latent DDPM steps for 64-256), 32 / 64 / 128 / 256 points gave 0.732 / 0.825 / 0.856 /
# 0.825: finer bins lift a tone, a burst or a noise jammer out of the gaps between channels, while pulses need
# frames short enough to see them.
WINDOW, N_FFT = 1024, 128
CONFIG = {"channels": 64, "latent": 32, "hidden": 128, "hidden_layers": 3, "time_dim": 32}
TRAIN_WINDOWS, CAL_WINDOWS = 24_000, 8_000
# Autoencoder steps, measured like N_FFT above: 1500 / 3000 / 9000 gave 0.839 / 0.856 / 0.811. Trained longer, the
# autoencoder learns to reconstruct what it has never seen too, and anomalies leave smaller residuals.
AE_ITERATIONS, DDPM_ITERATIONS = 3000, 4000
AE_BATCH, DDPM_BATCH = 256, 1024
AE_LR, DDPM_LR = 2e-3, 2e-3
EVAL_JNR_DB = 0.0
EVAL_WINDOWS = 1000


def _windows(make, n: int, chunk: int = 1000) -> np.ndarray:
    return np.concatenate([make(min(chunk, n - i)) for i in range(0, n, chunk)])


class _Reconstruction(torch.nn.Module):
    """The autoencoder of an anomaly network as one module (its forward: encode, then decode), so that the
    autoencoder stage can run under DistributedDataParallel without the denoiser's parameters."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder_in, self.decoder = net.encoder, net.decoder_in, net.decoder
        self._net = (net,)  # not a submodule: its denoiser takes no part in this stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._net[0].decode(self._net[0].encode(x))


def fit(name: str, train_features: np.ndarray, cal_iq: np.ndarray, ref_power: float, window: int, n_fft: int,
        seed: int, ae_iterations: int = AE_ITERATIONS, ddpm_iterations: int = DDPM_ITERATIONS,
        card: dict[str, Any] | None = None) -> DiffusionModel:
    """Train the autoencoder and the latent DDPM on ``train_features [N, n_fft, window // n_fft]`` and calibrate
    every method's thresholds on the normal windows ``cal_iq [M, window]``. Returns the model (card filled)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    schedule = NoiseSchedule(1000, "linear")
    config = dict(CONFIG, item_shape=[n_fft, window // n_fft])
    model = build_model(name, ARCH, config, schedule)
    net = model.network.train()
    data = torch.from_numpy(np.ascontiguousarray(train_features, dtype=np.float32))
    t0 = time.time()
    ae_params = [p for n, p in net.named_parameters() if not n.startswith("denoiser.")]
    opt = torch.optim.Adam(ae_params, lr=AE_LR)
    lr = torch.optim.lr_scheduler.CosineAnnealingLR(opt, ae_iterations)
    ae_losses = []
    reconstruction = wrap(_Reconstruction(net))
    for _ in track(range(ae_iterations), "anomaly: autoencoder"):
        x = shard(data[torch.randint(0, len(data), (AE_BATCH,), generator=gen)])
        ae_losses.append(optimizer_step(opt, lr, torch.mean((reconstruction(x) - x) ** 2)))
    with torch.no_grad():
        z = torch.cat([net.encoder(data[i:i + 4096]) for i in range(0, len(data), 4096)])
        net.z_mean.copy_(z.mean(0))
        net.z_std.copy_(z.std(0).clamp_min(1e-4))
        z = (z - net.z_mean) / net.z_std
    opt = torch.optim.Adam(net.denoiser.parameters(), lr=DDPM_LR)
    lr = torch.optim.lr_scheduler.CosineAnnealingLR(opt, ddpm_iterations)
    abar = torch.tensor(schedule.alphas_cumprod, dtype=torch.float32)
    ddpm_losses = []
    denoiser = wrap(net.denoiser)
    for _ in track(range(ddpm_iterations), "anomaly: latent DDPM"):
        z0 = z[torch.randint(0, len(z), (DDPM_BATCH,), generator=gen)]
        t = torch.randint(0, schedule.num_train_steps, (DDPM_BATCH,), generator=gen)
        ddpm_losses.append(noise_prediction_step(denoiser, opt, lr, abar, z0, t, gen))
    net.eval()
    train_s = time.time() - t0
    model.card = dict(card or {})
    model.card.update({"window": window, "n_fft": n_fft, "ref_power": float(ref_power)})
    det = AnomalyDetector(model)
    engine = DenoiseEngine("cpu", seed=seed).start()
    try:
        # Standardise the residual statistics on held-out normal windows (on the training windows a small model
        # reconstructs better than on new ones), then set the thresholds on the same windows.
        raw = dataclasses.replace(det.sampler, raw=True)
        stats = engine.submit(Job(model, det.features(cal_iq), raw)).result()
        net.residual_mean.copy_(torch.from_numpy(stats.mean(axis=0)))
        net.residual_std.copy_(torch.from_numpy(stats.std(axis=0)).clamp_min(1e-6))
        scores = det.scores(cal_iq, engine)  # the engine batches it
    finally:
        engine.stop()
    model.card["calibration"] = {
        "ae_ddpm": calibrate(scores[:, 0]), "ae": calibrate(scores[:, 1]),
        "energy": calibrate(energy_score(cal_iq, ref_power)),
        "kurtosis": calibrate(spectral_kurtosis_score(cal_iq, det.kurtosis_n_fft)),
    }
    model.card["training"] = {
        "seed": seed, "train_windows": len(data), "calibration_windows": len(cal_iq),
        "autoencoder": {"iterations": ae_iterations, "batch": AE_BATCH, "optimizer": f"Adam lr {AE_LR}, cosine",
                        "loss": "MSE of the log spectrogram",
                        "final_loss_mean_last_100": float(np.mean(ae_losses[-100:]))},
        "latent_ddpm": {"iterations": ddpm_iterations, "batch": DDPM_BATCH, "optimizer": f"Adam lr {DDPM_LR}, cosine",
                        "loss": "DDPM noise prediction (MSE) on the standardised latent",
                        "final_loss_mean_last_100": float(np.mean(ddpm_losses[-100:]))},
        "seconds_on_cpu": round(train_s, 1), **distributed_record(),
    }
    model.card["schedule"] = schedule.to_dict()
    model.card["calibration_note"] = ("thresholds: the 1 - pfa quantile of each method's score over the "
                                      "calibration windows (normal traffic only), pfa in " + str(list(PFA_GRID)))
    return model


def train(out_dir: str | Path, seed: int = SEED) -> DiffusionModel:
    """``anomaly_band`` from ``seed``: train, calibrate, evaluate (AUC at 0 dB JNR), write model and card."""
    rng = np.random.default_rng(seed)
    train_feats = np.concatenate([
        log_spectrogram(scenes.normal_windows(1000, rng, WINDOW), N_FFT) for _ in range(TRAIN_WINDOWS // 1000)])
    cal_rng = np.random.default_rng(seed + 1)
    cal_iq = _windows(lambda k: scenes.normal_windows(k, cal_rng, WINDOW), CAL_WINDOWS)
    card = {
        "description": "AE-DDPM spectrum anomaly model of the synthetic band of diffwireless.spectrum_scenes "
                       "(normal traffic only); for anomaly_detector and dw-bench anomaly.",
        "data": {"scene": "diffwireless.spectrum_scenes.BandPlan() defaults: QPSK and 16QAM (RRC 0.35, 8 "
                          "samples/symbol) at -0.34 and -0.14, OFDM (128-FFT, 28 carriers) at 0.12, GFSK bursts "
                          "at 0.36 cycles/sample; each on with probability 0.8, SNR 0-20 dB over the full-band "
                          "noise, CFO +-0.004, Rician K 0-10", "noise_power": 1.0,
                 "train_windows": TRAIN_WINDOWS, "seed_train": seed, "seed_calibration": seed + 1},
        "input_convention": "complex64 windows of 1024 samples; reference level 1.0 = the noise power per sample",
        "reproduce": f"dw-train {NAME}",
    }
    model = fit(NAME, train_feats, cal_iq, 1.0, WINDOW, N_FFT, seed, card=card)
    model.card["evaluation"] = evaluate(model, seed + 2)
    save_model(model, Path(out_dir) / NAME, model.card)
    return model


def evaluate(model: DiffusionModel, seed: int, jnr_db: float = EVAL_JNR_DB, n: int = EVAL_WINDOWS) -> dict[str, Any]:
    """ROC AUC of each method per anomaly at ``jnr_db`` (``n`` normal and ``n`` anomalous windows each)."""
    rng = np.random.default_rng(seed)
    det = AnomalyDetector(model)
    engine = DenoiseEngine("cpu", seed=seed).start()
    rows = []
    try:
        normal = scenes.normal_windows(n, rng, det.window)
        base = _method_scores(det, normal, engine)
        for kind in scenes.ANOMALIES:
            anom = _method_scores(det, scenes.anomalous_windows(kind, n, jnr_db, rng, det.window), engine)
            for method in base:
                rows.append({"anomaly": kind, "jnr_db": jnr_db, "method": method,
                             "auc": round(roc_auc(base[method], anom[method]), 4)})
    finally:
        engine.stop()
    return {"metric": "ROC AUC, normal vs anomalous windows", "windows_each": n, "seed": seed, "rows": rows}


def _method_scores(det: AnomalyDetector, iq: np.ndarray, engine: DenoiseEngine) -> dict[str, np.ndarray]:
    s = det.scores(iq, engine)
    return {"ae_ddpm": s[:, 0], "ae": s[:, 1], "energy": energy_score(iq, det.ref_power),
            "kurtosis": spectral_kurtosis_score(iq, det.kurtosis_n_fft)}


def train_recording(normal: str | Path, out_dir: str | Path, name: str, window: int = WINDOW, n_fft: int = N_FFT,
                    seconds: float | None = None, seed: int = SEED, ae_iterations: int = AE_ITERATIONS,
                    ddpm_iterations: int = DDPM_ITERATIONS) -> DiffusionModel:
    """Train a model of the normal traffic in the recording ``normal`` (SigMF); write ``out_dir/name``."""
    from diffwireless.recording import open_recording

    with open_recording(normal) as rec:
        count = rec.num_samples if seconds is None else int(seconds * (rec.sample_rate or 0))
        if seconds is not None and not rec.sample_rate:
            raise ValueError(f"{normal}: no sample rate in the metadata, so --seconds cannot be used")
        iq = rec.read(0, min(count, rec.num_samples))
        rate, desc = rec.sample_rate, rec.description
    windows = windows_of(iq, window)
    if len(windows) < 40:
        raise ValueError(f"{normal}: {len(windows)} windows of {window} samples; at least 40 are needed "
                         f"({40 * window} samples)")
    ref = float(np.median(np.mean(np.abs(windows) ** 2, axis=1)))
    split = len(windows) * 3 // 4
    feats = log_spectrogram(windows[:split], n_fft, ref)
    card = {"description": f"AE-DDPM anomaly model of the normal traffic in {Path(normal).name}",
            "data": {"recording": str(normal), "recording_description": desc, "sample_rate": rate,
                     "windows": len(windows), "train_windows": split, "seconds": seconds},
            "input_convention": f"complex64 windows of {window} samples; reference level = the median window "
                                "power of the normal recording",
            "reproduce": f"dw-train anomaly --normal {normal} --name {name} --window {window} --n-fft {n_fft}"
                         + (f" --seconds {seconds}" if seconds is not None else "")
                         + (f" --iterations {ae_iterations}" if (ae_iterations, ddpm_iterations)
                            != (AE_ITERATIONS, DDPM_ITERATIONS) else "")}
    model = fit(name, feats, windows[split:], ref, window, n_fft, seed, ae_iterations, ddpm_iterations, card)
    save_model(model, Path(out_dir) / name, model.card)
    return model


def windows_of(iq: np.ndarray, window: int) -> np.ndarray:
    """The whole windows of a sample stream, ``[len // window, window]`` complex64."""
    n = len(iq) // window
    return np.ascontiguousarray(iq[:n * window], dtype=np.complex64).reshape(n, window)
