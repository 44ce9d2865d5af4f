"""Denoise a complex stream with a diffusion window model, through the shared denoising engine."""

from __future__ import annotations

import numpy as np

from diffwireless.denoiser import IQDenoiser
from diffwireless.engine import EngineOptions

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
        engine: the engine's options (:class:`~diffwireless.engine.EngineOptions`: device, batch, wait,
            precision, and the policy ``block`` for replay or ``drop`` for live input, which tags ``dw_drop`` with
            the count on the next output sample), a device string, or None for the defaults. Every block on one
            device shares its engine, so they must ask for the same options.
        max_in_flight: windows this block may have in the engine at once.
        stats_interval_s: period of the ``stats`` messages.
    """

    def __init__(self, model: str, snr_db: float = 10.0, num_steps: int = 10, signal_power: float = 1.0,
                 engine: EngineOptions | str | None = None, max_in_flight: int = 1024,
                 stats_interval_s: float = 1.0) -> None:
        self.denoiser = IQDenoiser(model, num_steps=num_steps, signal_power=signal_power)
        self.denoiser.start_step(snr_db)  # validates
        window = self.denoiser.window
        engine_block.__init__(self, "diffwireless_diffusion_denoiser", np.complex64, np.complex64, window, window,
                              engine=engine, max_in_flight=max_in_flight, stats_interval_s=stats_interval_s)
        self.snr_db = float(snr_db)

    def check_snr_db(self, snr_db: float) -> None:
        self.denoiser.start_step(snr_db)

    def make_job(self, windows: np.ndarray, first_in: int, ends_stream: bool):
        positions = first_in + self.denoiser.window * np.arange(len(windows))
        return self.denoiser.job(windows, self.snr_db, positions), None

    def finish(self, result: np.ndarray, context: None) -> np.ndarray:
        return self.denoiser.result(result)
