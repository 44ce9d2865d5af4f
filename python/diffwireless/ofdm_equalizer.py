"""Frame equalization for GNU Radio's OFDM receive chain with a diffusion channel estimate (core maths).

GNU Radio's OFDM receiver (``digital.ofdm_rx``) hands each frame to ``ofdm_frame_equalizer_vcvc`` as ``n_sym``
FFT outputs (shifted: index ``k + fft_len // 2`` is carrier ``k``), with the initial channel taps of the preamble
(``ofdm_chanest_vcvc``: the received second sync symbol over its known BPSK values, an LS estimate on every active
carrier) in the ``ofdm_sync_chan_taps`` tag, and the coarse carrier offset in ``ofdm_sync_carr_offset``.

:class:`FrameEqualizer` replaces the stock estimator (LS taps, then ``ofdm_equalizer_simpledfe``'s per-carrier
decision feedback) by:

1. the noise variance per carrier, measured on the frame's empty carriers (guard bands; DC excluded), unless the
   SNR is given;
2. the diffusion estimate of the active carriers from the LS taps: the taps are scaled to unit mean power, denoised
   by one DDIM step from the SNR-matched step of a one-symbol channel prior (its grid's carriers must be the
   layout's active carriers), and scaled back;
3. tracking of a common phase and gain through the frame (residual frequency offset turns the whole frame): per
   symbol, the least-squares gain of the estimate against the pilots and the decided data carriers;
4. one-tap equalization ``y / h`` of every occupied carrier; pilot carriers output their known symbols, empty ones 0.

Do no harm: after step 2 the estimate is checked against the LS taps it came from. For an estimate of a channel
the prior knows, the residual ``mean |LS - h_hat|^2`` over the active carriers is at most the noise variance (the
estimate removes noise, and what it leaves of the channel is below it); a frame unlike the prior's family (a delay
spread beyond it, a channel model it never saw) or an SNR where the prior is too coarse leaves structure in the
residual, over :data:`FALLBACK_RESIDUAL` times the noise. Such a frame is estimated instead by the robust LMMSE
(:func:`robust_lmmse_taps`: a uniform delay profile over the cyclic prefix, what a receiver can run without
knowing the channel) if that passes the same check, else by the LS taps (what the stock equalizer uses), and the
block tags it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffwireless.chanest import (FALLBACK_RESIDUAL, grid_items, items_grid, lmmse, residual_ratio,
                                  robust_covariance)
from diffwireless.diffusion.samplers import DDIMSampler
from diffwireless.engine import Job
from diffwireless.errors import ModelError
from diffwireless.models import DiffusionModel, shared_model

MIN_SNR_DB = -10.0  # estimates below this are treated as this (the prior's training range starts there)
MAX_SNR_DB = 35.0
# FALLBACK_RESIDUAL (1.5, diffwireless.chanest): residual power over noise above which an estimate is not
# trusted: a consistent one leaves at most the noise (its 52-carrier mean spreads by about 0.14 of it, plus the
# noise estimate's own error), so 1.5 flags structure the estimate missed and rarely an estimate that is right.
# A smoother whose residual is r times the noise has missed about (r - 1) times the noise of the channel (it removes
# the noise, and leaves what it cut off); LS keeps the noise (1 time it). Over 2, LS is the better estimate.
LS_RESIDUAL = 2.0


@dataclass(frozen=True)
class OFDMLayout:
    """Carriers of a GNU Radio OFDM frame, as ``ofdm_carrier_allocator_cvc`` and the equalizers take them.

    Attributes:
        fft_len: FFT size.
        occupied_carriers: sets of data carriers (centred numbering); symbol ``i`` uses set ``i % len``.
        pilot_carriers: sets of pilot carriers, cycling the same way.
        pilot_symbols: rows of pilot values, cycling by their own count (as the carrier allocator sends them).
        symbols_skipped: symbols already used elsewhere in the set cycle (the header), as in GNU Radio.
    """

    fft_len: int
    occupied_carriers: tuple[tuple[int, ...], ...]
    pilot_carriers: tuple[tuple[int, ...], ...] = ()
    pilot_symbols: tuple[tuple[complex, ...], ...] = ()
    symbols_skipped: int = 0

    def __post_init__(self) -> None:
        if not self.occupied_carriers or not all(self.occupied_carriers):
            raise ValueError("occupied_carriers needs at least one non-empty set")
        if bool(self.pilot_carriers) != bool(self.pilot_symbols):
            raise ValueError("pilot_carriers and pilot_symbols must both be given or both be empty")
        sizes = {len(c) for c in self.pilot_carriers}
        if len(sizes) > 1 and len(self.pilot_carriers) != len(self.pilot_symbols):
            raise ValueError("pilot carrier sets of different sizes need one pilot symbol row each")
        for i in range(max(len(self.pilot_carriers), len(self.pilot_symbols))):
            c = self.pilot_carriers[i % len(self.pilot_carriers)] if self.pilot_carriers else ()
            v = self.pilot_symbols[i % len(self.pilot_symbols)] if self.pilot_symbols else ()
            if len(c) != len(v):
                raise ValueError(f"pilot symbol row {i} has {len(v)} values for {len(c)} pilot carriers")
        half = self.fft_len // 2
        for k in self.active_carriers:
            if not -half <= k < half:
                raise ValueError(f"carrier {k} is outside -{half}..{half - 1} for fft_len {self.fft_len}")

    @classmethod
    def make(cls, fft_len: int, occupied_carriers, pilot_carriers=(), pilot_symbols=(),
             symbols_skipped: int = 0) -> "OFDMLayout":
        """From GNU Radio-style nested lists (accepts lists, tuples, numpy arrays)."""
        return cls(int(fft_len), tuple(tuple(int(k) for k in s) for s in occupied_carriers),
                   tuple(tuple(int(k) for k in s) for s in pilot_carriers),
                   tuple(tuple(complex(v) for v in s) for s in pilot_symbols), int(symbols_skipped))

    @property
    def active_carriers(self) -> tuple[int, ...]:
        """Every carrier that carries data or a pilot in some symbol, ascending."""
        return tuple(sorted({k for s in self.occupied_carriers + self.pilot_carriers for k in s}))

    def index(self, carriers) -> np.ndarray:
        """FFT bins (shifted order) of ``carriers``."""
        return np.asarray(carriers, dtype=np.int64) + self.fft_len // 2

    @property
    def null_bins(self) -> np.ndarray:
        """Bins that never carry anything, DC excluded (DC may hold the radio's DC offset)."""
        used = set(self.index(self.active_carriers).tolist()) | {self.fft_len // 2}
        return np.array([b for b in range(self.fft_len) if b not in used], dtype=np.int64)

    def symbol_sets(self, i: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[complex, ...]]:
        """``(occupied, pilot carriers, pilot symbols)`` of the frame's symbol ``i``."""
        j = i + self.symbols_skipped
        occ = self.occupied_carriers[j % len(self.occupied_carriers)]
        if not self.pilot_carriers:
            return occ, (), ()
        # As ofdm_carrier_allocator_cvc: carrier sets and symbol rows cycle each by their own count (GNU Radio's
        # default has one set of 4 pilot carriers and 127 rows of scrambled pilot values).
        return occ, self.pilot_carriers[j % len(self.pilot_carriers)], self.pilot_symbols[j % len(self.pilot_symbols)]


def robust_lmmse_taps(ls_taps: np.ndarray, noise_var: float, layout: OFDMLayout, cp_len: int,
                      backoff: float = 0.0) -> np.ndarray:
    """The classical smoother of the LS taps ``[fft_len]``: LMMSE with the robust covariance
    (:func:`~diffwireless.chanest.robust_covariance`: a uniform delay profile) over ``[-backoff, cp_len]`` samples
    (a path anywhere in the cyclic prefix, or up to ``backoff`` samples before the FFT window's start, where a
    window that opens early moves it) at ``noise_var`` per carrier; ``[fft_len]`` (0 off the active carriers)."""
    from diffwireless.fading import OFDMGrid

    # Delays count in samples and carriers in bins: any sample rate gives the same matrix; one per FFT length
    # makes the carrier spacing 1 Hz.
    grid = OFDMGrid(n_fft=layout.fft_len, carriers=layout.active_carriers, n_symbols=1, cp_len=cp_len,
                    sample_rate_hz=float(layout.fft_len))
    early = np.exp(2j * np.pi * np.asarray(grid.carriers) * backoff / layout.fft_len)  # the span moved early
    cov = early[:, None] * robust_covariance(grid, 0.0, (cp_len + backoff) / grid.sample_rate_hz) * early.conj()
    bins = layout.index(layout.active_carriers)
    h = np.asarray(ls_taps, dtype=np.complex128)[bins]
    power = max(float(np.mean(np.abs(h) ** 2)) - noise_var, 1e-3 * float(np.mean(np.abs(h) ** 2)), 1e-30)
    out = np.zeros(layout.fft_len, dtype=np.complex128)
    out[bins] = lmmse(h[None, :] / math.sqrt(power), cov, np.ones(grid.shape, dtype=bool),
                      max(noise_var, 0.0) / power)[0, :, 0] * math.sqrt(power)
    return out


def apply_carrier_offset(frame: np.ndarray, carrier_offset: int, cp_len: int) -> np.ndarray:
    """Undo a coarse carrier offset as ``ofdm_frame_equalizer_vcvc`` does: shift the bins by ``carrier_offset``
    (zero fill) and remove the phase it advances each symbol (``2 pi offset cp_len / fft_len`` per symbol)."""
    n_sym, fft_len = frame.shape
    if carrier_offset == 0:
        return frame.copy()
    flat = frame.reshape(-1)
    out = np.zeros_like(flat)
    if carrier_offset < 0:
        out[-carrier_offset:] = flat[: len(flat) + carrier_offset]
    else:
        out[: len(flat) - carrier_offset] = flat[carrier_offset:]
    out = out.reshape(n_sym, fft_len)
    phase = np.exp(-2j * np.pi * carrier_offset * cp_len / fft_len * (np.arange(n_sym) + 1))
    return out * phase[:, None]


def noise_var_from_nulls(frame: np.ndarray, layout: OFDMLayout) -> float:
    """Noise variance per bin: the mean power of the frame's empty bins (NaN where the layout has none)."""
    nulls = layout.null_bins
    if nulls.size == 0:
        return float("nan")
    return float(np.mean(np.abs(frame[:, nulls]) ** 2))


class FrameEqualizer:
    """Diffusion-estimated one-tap equalization of OFDM frames (see the module text).

    Args:
        model: a one-symbol channel prior (``grid_mixer`` with items ``[2, n_active, 1]`` whose card's grid carriers
            are the layout's active carriers), or its path or shipped name.
        layout: the frame's carriers.
        num_steps: DDIM steps (1: the posterior-mean estimate; see
            :class:`~diffwireless.chanest.DiffusionChannelEstimator`).
        tracking: weight of each symbol's own fit in the tracked common gain (1: every symbol fitted afresh; 0: the
            estimate is held through the frame).
        points: the data carriers' constellation points, for decision-directed tracking (None: pilots only).
        fallback: check each estimate against its LS taps and use the robust LMMSE where it fails (module text).
        backoff: samples before the FFT window the robust LMMSE's delay profile reaches (where the window opens
            early, the receiver's sync; GNU Radio's Schmidl & Cox opens it into the cyclic prefix, delaying paths).
    """

    def __init__(self, model: DiffusionModel | str | Path, layout: OFDMLayout, num_steps: int = 1,
                 tracking: float = 1.0, points: np.ndarray | None = None, fallback: bool = True,
                 backoff: float = 2.0) -> None:
        self.model = model if isinstance(model, DiffusionModel) else shared_model(model)
        self.layout = layout
        active = layout.active_carriers
        carriers = tuple(self.model.card.get("grid", {}).get("carriers", ()))
        if self.model.schedule is None or self.model.item_shape != (2, len(active), 1):
            raise ModelError(f"model '{self.model.name}' (items {self.model.item_shape}) is not a one-symbol channel "
                             f"prior for {len(active)} active carriers (items (2, {len(active)}, 1)); retrain one "
                             "for this layout")
        if carriers and carriers != active:
            raise ModelError(f"model '{self.model.name}' was trained for carriers {carriers[0]}..{carriers[-1]} "
                             f"({len(carriers)}), this layout's active carriers are {active[0]}..{active[-1]} "
                             f"({len(active)}): retrain it for this layout")
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        if not 0.0 <= tracking <= 1.0:
            raise ValueError(f"tracking must lie in [0, 1], got {tracking}")
        self.num_steps, self.tracking = num_steps, float(tracking)
        self.points = None if points is None else np.asarray(points, dtype=np.complex128).reshape(-1)
        self.active_bins = layout.index(active)
        self.fallback, self.backoff = bool(fallback), float(backoff)
        self.cp_len = int(self.model.card.get("grid", {}).get("cp_len", layout.fft_len // 4))

    def prepare(self, taps: np.ndarray, noise_var: float) -> tuple[np.ndarray, float, float]:
        """The preamble's LS taps ``[fft_len]`` -> ``(network item [1, 2, n_active, 1], scale, snr_db)``."""
        h = np.asarray(taps, dtype=np.complex128)[self.active_bins]
        power = float(np.mean(np.abs(h) ** 2))
        signal = max(power - noise_var, 1e-3 * power, 1e-30)
        snr_db = float(np.clip(10 * math.log10(signal / max(noise_var, 1e-30)), MIN_SNR_DB, MAX_SNR_DB))
        scale = math.sqrt(signal)
        return grid_items((h / scale).reshape(1, -1, 1)), scale, snr_db

    def job(self, items: np.ndarray, snr_db: float) -> Job:
        start = self.model.schedule.step_for_noise_var(10.0 ** (-snr_db / 10.0))
        return Job(self.model, items, DDIMSampler(num_steps=self.num_steps, start_step=start))

    def taps_from_result(self, out: np.ndarray, scale: float) -> np.ndarray:
        """Network output ``[1, 2, n_active, 1]`` -> channel taps ``[fft_len]`` (0 off the active carriers)."""
        taps = np.zeros(self.layout.fft_len, dtype=np.complex128)
        taps[self.active_bins] = items_grid(out).reshape(-1) * scale
        return taps

    def checked(self, taps: np.ndarray, ls_taps: np.ndarray, noise_var: float) -> tuple[np.ndarray, str]:
        """``(taps to use, which estimate)``: the diffusion ``taps`` (``"diffusion"``) where they leave at most
        :data:`FALLBACK_RESIDUAL` times ``noise_var`` of ``ls_taps`` unexplained (``noise_var`` floored at the
        highest SNR the prior serves, :data:`MAX_SNR_DB`); else the robust LMMSE (``"lmmse_robust"``) if it passes
        the same check; else the smoother with the smaller residual where that is under :data:`LS_RESIDUAL` times the
        noise; else the LS taps themselves (``"ls"``: a channel longer than the cyclic prefix at high SNR, where any
        smoother cuts paths off and the stock equalizer's LS taps are the best a receiver has)."""
        if not self.fallback:
            return taps, "diffusion"
        h = np.asarray(ls_taps, dtype=np.complex128)[self.active_bins]
        floor = float(np.mean(np.abs(h) ** 2)) * 10 ** (-MAX_SNR_DB / 10)
        nv = max(float(noise_var) if math.isfinite(noise_var) else 0.0, floor)
        r_diffusion = residual_ratio(h, np.asarray(taps)[self.active_bins], nv)
        if r_diffusion <= FALLBACK_RESIDUAL:
            return taps, "diffusion"
        robust = robust_lmmse_taps(ls_taps, nv, self.layout, self.cp_len, self.backoff)
        r_robust = residual_ratio(h, robust[self.active_bins], nv)
        if r_robust <= FALLBACK_RESIDUAL:
            return robust, "lmmse_robust"
        if min(r_diffusion, r_robust) <= LS_RESIDUAL:  # what a smoother misses is still below the noise LS keeps
            return (taps, "diffusion") if r_diffusion <= r_robust else (robust, "lmmse_robust")
        ls = np.zeros(self.layout.fft_len, dtype=np.complex128)
        ls[self.active_bins] = h
        return ls, "ls"

    def equalize(self, frame: np.ndarray, taps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:func:`equalize_frame` with this equalizer's layout, tracking and constellation."""
        return equalize_frame(frame, taps, self.layout, self.tracking, self.points)


def equalize_frame(frame: np.ndarray, taps: np.ndarray, layout: OFDMLayout, tracking: float = 1.0,
                   points: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One-tap equalization of ``frame [n_sym, fft_len]`` with ``taps [fft_len]`` times a common gain per symbol;
    returns ``(equalized [n_sym, fft_len] complex64, the taps used for each symbol [n_sym, fft_len])``.

    The common gain (phase and amplitude: what residual frequency offset and slow fading change across a frame)
    is the least-squares fit of ``taps * reference`` to the symbol, over its pilots and, given the constellation
    ``points``, its data carriers decided with the previous symbol's gain; ``tracking`` weighs each symbol's fit
    against the previous gain.
    """
    n_sym, fft_len = frame.shape
    out = np.zeros((n_sym, fft_len), dtype=np.complex64)
    used = np.zeros((n_sym, fft_len), dtype=np.complex64)
    gain = 1.0 + 0j
    for i in range(n_sym):
        occ, pilots, values = layout.symbol_sets(i)
        ob = layout.index(occ)
        pb = layout.index(pilots)
        if tracking:
            bins, ref = [pb], [np.asarray(values, dtype=np.complex128)]
            if points is not None:
                h = taps[ob] * gain
                soft = frame[i, ob] / np.where(np.abs(h) > 0, h, 1.0)
                bins.append(ob)
                ref.append(points[np.argmin(np.abs(soft[:, None] - points[None, :]), axis=1)])
            b = np.concatenate(bins)
            model = taps[b] * np.concatenate(ref)
            denom = np.vdot(model, model).real
            if denom > 0:
                gain = (1 - tracking) * gain + tracking * np.vdot(model, frame[i, b]) / denom
        h = taps * gain
        safe = np.where(np.abs(h[ob]) > 0, h[ob], 1.0)
        out[i, ob] = frame[i, ob] / safe
        if pilots:
            out[i, pb] = np.asarray(values)
        used[i] = h
    return out, used
