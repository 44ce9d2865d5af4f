"""Detect constellation symbols with a conditional diffusion model, through the shared denoising engine."""

from __future__ import annotations

import numpy as np

from diffwireless.detector import DiffusionDetector
from diffwireless.engine import EngineOptions

from gnuradio.diffwireless.constellations import core_constellation
from gnuradio.diffwireless.engine_block import engine_block, snr_control

OUTPUTS = ("bits", "indices", "llrs", "symbols")


class diffusion_detector(snr_control, engine_block):
    """Symbol detection for hardware-impaired links by SNR-matched conditional diffusion.

    Each received symbol (complex, unit mean power) starts the reverse diffusion at the step whose noise matches
    ``snr_db`` and is denoised back onto the constellation in up to ``num_steps`` DDIM steps (or the full DDPM
    chain), conditioned on the SNR. One output, chosen by ``output``:

    - ``bits``: hard bits, one per byte (0/1), ``k`` per symbol, MSB first (as ``digital.constellation_decoder_cb``
      followed by ``blocks.unpack_k_bits_bb(k)``);
    - ``indices``: the decided point's index in the GNU Radio constellation, one byte per symbol (as
      ``constellation_decoder_cb``);
    - ``llrs``: ``k`` float max-log LLRs per symbol, positive meaning 1 (GNU Radio's soft-decision sign);
    - ``symbols``: the denoised complex symbols.

    A ``snr_db`` stream tag (float, dB) changes the SNR from its symbol on; tags stay on the outputs of their
    symbol. Items in and out are exact (``k`` outputs per symbol for bits and LLRs).

    Args:
        constellation: a GNU Radio constellation object, as the stock blocks take it (``constellation_qpsk()``, or
            ``qam_constellation(16 or 64, False, mod_codes.GRAY_CODE)``), or ``qpsk``, ``16qam``, ``64qam``.
        model: a detector model file or shipped name; empty: the shipped ``detector_<constellation>``.
        snr_db: Es/N0 of the input in dB.
        num_steps: DDIM steps (network evaluations per symbol, at most; fewer at high SNR); 0: auto, 2 steps
            below 10 dB Es/N0 and 1 from there (the measured point where more steps stop changing decisions).
        sampler: ``ddim`` or ``ddpm`` (every step from the matched one; slow, the reference chain).
        output: see above.
        engine, max_in_flight, stats_interval_s: as for ``diffusion_denoiser`` (``max_in_flight`` counts
            symbols).
    """

    def __init__(self, constellation: str = "16qam", model: str = "", snr_db: float = 10.0, num_steps: int = 0,
                 sampler: str = "ddim", output: str = "bits", engine: EngineOptions | str | None = None,
                 max_in_flight: int = 65536, stats_interval_s: float = 1.0) -> None:
        wanted = core_constellation(constellation)
        self.detector = DiffusionDetector(model or f"detector_{wanted.name}", num_steps=num_steps, sampler=sampler)
        if self.detector.constellation is not wanted:
            raise ValueError(f"diffusion_detector: model '{self.detector.model.name}' detects "
                             f"{self.detector.constellation.name}, not {wanted.name}")
        if output not in OUTPUTS:
            raise ValueError(f"diffusion_detector: output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        self.detector.start_step(snr_db)  # validates
        self.output = output
        k = wanted.bits_per_symbol
        out_dtype, per_symbol = {"bits": (np.uint8, k), "indices": (np.uint8, 1), "llrs": (np.float32, k),
                                 "symbols": (np.complex64, 1)}[output]
        engine_block.__init__(self, "diffwireless_diffusion_detector", np.complex64, out_dtype, 1, per_symbol,
                              engine=engine, max_in_flight=max_in_flight, stats_interval_s=stats_interval_s)
        self.snr_db = float(snr_db)

    def check_snr_db(self, snr_db: float) -> None:
        self.detector.start_step(snr_db)

    def make_job(self, windows: np.ndarray, first_in: int, ends_stream: bool):
        return self.detector.job(windows.ravel(), self.snr_db), self.snr_db  # the SNR the job runs at

    def finish(self, result: np.ndarray, context: float) -> np.ndarray:
        denoised = self.detector.result(result)
        if self.output == "symbols":
            return denoised
        idx = self.detector.constellation.nearest(denoised)
        if self.output == "indices":
            return idx.astype(np.uint8)
        if self.output == "bits":
            return self.detector.constellation.indices_to_bits(idx)
        return self.detector.constellation.max_log_llr(denoised, self.detector.residual_var(context))
