"""Training of the class-conditional diffusion augmenter (``unet1d``) on labelled frames.

Noise prediction under the cosine schedule of Nichol & Dhariwal (1000 steps; generation starts at the step where
2% of the signal power is left, :data:`diffwireless.augmentation.START_SIGNAL_FRACTION`); the condition is the one-hot
class and the SNR (dB / 10);
the class is dropped (set to no class) for ``P_UNCOND`` of the items so that the same network gives the
unconditional branch of classifier-free guidance; every item gets a uniform carrier phase in every batch (the
channel's phase is arbitrary). Adam with a cosine learning-rate schedule.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from diffwireless.augmentation import ARCH, conditioning, diffusion_items, random_phase
from diffwireless.diffusion.schedule import NoiseSchedule
from diffwireless.diffusion.training import noise_prediction_step
from diffwireless.distributed import record as distributed_record
from diffwireless.distributed import wrap
from diffwireless.modulation_data import CLASSES, ModulationDataset
from diffwireless.models import DiffusionModel, build_model
from diffwireless.progress import track

SCHEDULE = NoiseSchedule(1000, "cosine")
ITERATIONS, BATCH, LR = 3000, 64, 2e-3
P_UNCOND = 0.15
WIDTHS, PATCH = (32, 64, 96), 4


def fit_augmenter(ds: ModulationDataset, seed: int, iterations: int = ITERATIONS, name: str = "modaug",
                  classes: tuple[str, ...] = CLASSES) -> tuple[DiffusionModel, dict]:
    """Train the augmenter on ``ds``; returns the model (card holds only the classes) and the training record."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    config = {"item_shape": [2, ds.frame_len], "num_classes": len(classes), "widths": list(WIDTHS), "patch": PATCH}
    model = build_model(name, ARCH, config, SCHEDULE, card={"classes": list(classes)})
    net = model.network.train()
    x = torch.from_numpy(diffusion_items(ds.frames))
    cond = torch.from_numpy(conditioning(ds.class_indices(classes), ds.snr_db, len(classes)))
    abar = torch.as_tensor(SCHEDULE.alphas_cumprod, dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    t0, losses = time.time(), []
    trained = wrap(net)
    for _ in track(range(iterations), "augmenter"):
        idx = torch.randint(0, len(x), (BATCH,), generator=gen)
        x0 = random_phase(x[idx], gen)
        c = cond[idx].clone()
        c[torch.rand(BATCH, generator=gen) < P_UNCOND, : len(classes)] = 0.0
        t = torch.randint(0, SCHEDULE.num_train_steps, (BATCH,), generator=gen)
        losses.append(noise_prediction_step(trained, opt, sched, abar, x0, t, gen, cond=c))
    net.eval()
    return model, {"seed": seed, "iterations": iterations, "batch": BATCH, "optimizer": f"Adam lr {LR}, cosine",
                   "loss": f"noise prediction (MSE), class dropped for {P_UNCOND:.0%} of items, random carrier "
                           "phase per item", "train_frames": len(x),
                   "final_loss_mean_last_100": float(np.mean(losses[-100:])),
                   "seconds_on_cpu": round(time.time() - t0, 1), **distributed_record()}
