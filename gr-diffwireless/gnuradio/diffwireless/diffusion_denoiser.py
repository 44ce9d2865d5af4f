"""Denoise a complex stream with a diffusion window model, through the shared denoising engine."""

from __future__ import annotations

import numpy as np

from diffwireless.denoiser import IQDenoiser
from diffwireless.engine import DEFAULT_MAX_WAIT_MS

from gnuradio.diffwireless.engine_block import engine_block, snr_control



class diffusion_denoiser(snr_control, engine_block):
    """SNR-matched DDIM denoising of a complex stream, window by window (the first user of the engine).

    The stream is cut into windows of the model's length; each window starts the reverse diffusion at the step
    whose noise level matches ``snr_db`` and takes up to ``num_steps`` network evaluations. Samples in equal samples
    out, tags kept on their samples. A ``snr_db`` stream tag (float, dB) changes the SNR from its window on.

    Args:
        model: model file (``.safetensors``, with its ``.json`` card beside it) or the name of a shipped model.
        snr_db: SNR of the input (signal power over noise power in the band the model was trained for).
        num_steps: DDIM steps (network evaluations per window, at most).
        signal_power: power of the clean signal in the input's units (the model is trained at power 1).
        device: ``auto`` (CUDA when torch sees a GPU, else CPU), ``cpu``, ``cuda``, ``cuda:N``.
        policy: ``block`` (replay: lossless, upstream waits) or ``drop`` (live: oldest work dropped, ``dw_drop``
            tag with the count on the next output sample).
        max_in_flight: windows this block may have in the engine at once.
        max_batch, max_wait_ms, precision: options of the shared engine, taken from the first block that starts
            it (``max_batch`` 0: 1024 windows on a CPU, 16384 on CUDA; ``precision`` ``fp32``, or autocast to
            ``bf16`` / ``fp16``, the latter on CUDA only).
        stats_interval_s: period of the ``stats`` messages.
    """

    def __init__(self, model: str, snr_db: float = 10.0, num_steps: int = 10, signal_power: float = 1.0,
                 device: str = "auto", policy: str = "block", max_in_flight: int = 1024,
                 max_batch: int = 0, max_wait_ms: float = DEFAULT_MAX_WAIT_MS, precision: str = "fp32",
                 stats_interval_s: float = 1.0) -> None:
        self.denoiser = IQDenoiser(model, num_steps=num_steps, signal_power=signal_power)
        self.denoiser.start_step(snr_db)  # validates
        window = self.denoiser.window
        engine_block.__init__(self, "diffwireless_diffusion_denoiser", np.complex64, np.complex64, window, window,
                              device=device, policy=policy, max_in_flight=max_in_flight, max_batch=max_batch,
                              max_wait_ms=max_wait_ms, precision=precision, stats_interval_s=stats_interval_s)
        self.snr_db = float(snr_db)

    def check_snr_db(self, snr_db: float) -> None:
        self.denoiser.start_step(snr_db)

    def make_job(self, windows: np.ndarray):
        return self.denoiser.job(windows, self.snr_db)

    def finish(self, result: np.ndarray, context=None) -> np.ndarray:
        return self.denoiser.result(result)
