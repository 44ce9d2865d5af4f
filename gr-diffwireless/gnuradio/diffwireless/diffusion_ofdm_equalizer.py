"""Drop-in for ``digital.ofdm_frame_equalizer_vcvc`` that equalizes with a diffusion channel estimate."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pmt
from gnuradio import gr

from diffwireless.engine import EngineOptions, Job, release_engine
from diffwireless.ofdm_equalizer import FrameEqualizer, OFDMLayout, apply_carrier_offset, noise_var_from_nulls

from gnuradio.diffwireless import ofdm_defaults as defaults
from gnuradio.diffwireless.engine_block import WORK_DONE, acquire_block_engine

CHAN_TAPS_TAG = "ofdm_sync_chan_taps"
CARR_OFFSET_TAG = "ofdm_sync_carr_offset"
ESTIMATE_TAG = "dw_chan_est"
LS_TAG = "dw_chan_ls"
SNR_EST_TAG = "dw_snr_db"
FALLBACK_TAG = "dw_fallback"
DEFAULT_MODEL = "chanest_tdl_sym"
MAX_FRAMES_IN_FLIGHT = 64  # frames whose estimate may be in the engine at once
_WAIT_S = 0.02  # longest wait inside one work call, so that tb.stop() is honoured promptly


class diffusion_ofdm_equalizer(gr.basic_block):
    """OFDM frame equalizer with a diffusion channel estimate, in place of ``digital.ofdm_frame_equalizer_vcvc``.

    Takes and gives the same tagged-stream frames of ``fft_len`` vectors (shifted FFT outputs) as the stock frame
    equalizer, and reads the same tags on a frame's first vector: ``ofdm_sync_chan_taps`` (initial LS taps from the
    preamble, as ``ofdm_chanest_vcvc`` puts them) and ``ofdm_sync_carr_offset`` (coarse offset in carriers, undone
    as the stock block does). The estimate: the LS taps of the active carriers denoised by one DDIM step of a
    trained channel prior from the step that matches their SNR; the SNR is measured per frame on the empty carriers
    unless ``snr_db`` is given. A common gain and phase is then fitted on every symbol (pilots, and the data
    carriers decided on ``constellation``), which follows residual frequency offset through the frame.

    Output: each occupied carrier divided by its channel estimate (soft, where ``ofdm_equalizer_simpledfe`` gives
    hard decisions), pilots set to their known symbols, other carriers 0. Tags on the first vector: ``dw_chan_est``
    (the estimate, ``fft_len`` complex), ``dw_chan_ls`` (the LS taps it started from, for the Channel View),
    ``dw_snr_db`` (the SNR used), ``dw_fallback`` (with ``fallback``, on a frame whose LS taps lay more than the
    noise from the diffusion estimate, a channel unlike the prior's: the estimate used instead, ``lmmse_robust``
    or ``ls``), and with ``propagate_channel_state``
    ``ofdm_sync_chan_taps`` (the taps after the last symbol, as the stock block). Other tags pass on their
    vectors. A frame that arrives with ``dw_chan_est`` (set by this block as header equalizer and carried to the
    payload by the header parser) is equalized with that estimate instead of being estimated again.

    Args:
        fft_len, cp_len: FFT and cyclic-prefix length.
        occupied_carriers, pilot_carriers, pilot_symbols, symbols_skipped: as ``ofdm_equalizer_simpledfe``.
        len_tag_key: the tagged-stream length key (``frame_length`` in ``ofdm_rx``).
        propagate_channel_state: put ``ofdm_sync_chan_taps`` on the output, as the stock block.
        fixed_frame_len: frame length when the stream carries no length tag (0: use the tag).
        model: a one-symbol channel prior trained for these active carriers (shipped: ``chanest_tdl_sym`` for
            GNU Radio's default 802.11-like layout).
        snr_db: the SNR of the LS taps (dB) or None to measure it per frame on the empty carriers.
        tracking: weight of each symbol's fit in the common gain (1: fitted afresh per symbol; 0: none).
        constellation: the data carriers' ``digital.constellation`` (as ``ofdm_equalizer_simpledfe`` takes it), for
            decision-directed tracking; None: pilots only.
        engine: the engine's options (``EngineOptions``), a device string, or None for the defaults.
        fallback: check each estimate against its LS taps and use the robust LMMSE (uniform delay profile over the
            cyclic prefix), or the LS taps where that fails too, for a frame the prior does not explain
            (:meth:`FrameEqualizer.checked`); counted in ``fallbacks``.
    """

    def __init__(self, fft_len: int = 64, cp_len: int = 16, occupied_carriers=None, pilot_carriers=None,
                 pilot_symbols=None, symbols_skipped: int = 0, len_tag_key: str = "frame_length",
                 propagate_channel_state: bool = False, fixed_frame_len: int = 0, model: str = "",
                 snr_db: float | None = None, tracking: float = 1.0, constellation=None,
                 engine: EngineOptions | str | None = None, fallback: bool = True) -> None:
        gr.basic_block.__init__(self, name="diffwireless_diffusion_ofdm_equalizer",
                                in_sig=[(np.complex64, fft_len)], out_sig=[(np.complex64, fft_len)])
        self.layout = OFDMLayout.make(fft_len,
                                      defaults.OCCUPIED_CARRIERS if occupied_carriers is None else occupied_carriers,
                                      defaults.PILOT_CARRIERS if pilot_carriers is None else pilot_carriers,
                                      defaults.PILOT_SYMBOLS if pilot_symbols is None else pilot_symbols,
                                      symbols_skipped)
        points = None if constellation is None else np.asarray(constellation.points(), dtype=np.complex128)
        self.equalizer = FrameEqualizer(model or DEFAULT_MODEL, self.layout, tracking=tracking, points=points,
                                        fallback=fallback)
        if snr_db is not None and not math.isfinite(float(snr_db)):
            raise ValueError(f"diffusion_ofdm_equalizer: snr_db must be finite or None, got {snr_db}")
        if not len_tag_key and fixed_frame_len < 1:
            raise ValueError("diffusion_ofdm_equalizer: give len_tag_key or fixed_frame_len")
        self.options = EngineOptions.of(engine)  # checked now, at build time
        self.cp_len = int(cp_len)
        self.len_tag_key = len_tag_key
        self.propagate_channel_state = bool(propagate_channel_state)
        self.fixed_frame_len = int(fixed_frame_len)
        self.snr_db = None if snr_db is None else float(snr_db)
        self.engine = None
        self.error: BaseException | None = None
        self._pending: deque[_Frame] = deque()
        self.frames = 0
        self.missing_taps = 0
        self.fallbacks = 0
        self.last_snr_db = float("nan")
        self.set_tag_propagation_policy(gr.TPP_DONT)
        self.logger = gr.logger("diffwireless_diffusion_ofdm_equalizer")
        self._srcid = pmt.intern("diffusion_ofdm_equalizer")

    def set_snr_db(self, snr_db: float | None) -> None:
        """The taps' SNR in dB, or None to measure it on each frame's empty carriers."""
        self.snr_db = None if snr_db is None else float(snr_db)

    def start(self) -> bool:
        self.frames = self.missing_taps = self.fallbacks = 0
        self.error = None
        self._pending = deque()
        self.engine, self.error = acquire_block_engine(self, self.options)
        return True

    def stop(self) -> bool:
        if self.engine is not None:
            for entry in self._pending:
                if entry.job is not None:
                    self.engine.drop(entry.job, count=False)
            release_engine(self.engine, self.alias())
            self.engine = None
        self.logger.info(f"{self.frames} frames equalized ({self.missing_taps} without preamble taps, "
                         f"{self.fallbacks} fallen back to the robust LMMSE or LS)")
        return True

    def forecast(self, noutput_items, ninputs):
        # With frames in flight the block must run without new input, to emit them at the end of the stream.
        return [0 if self._pending else 1] * ninputs

    def general_work(self, input_items, output_items):
        if self.error is not None:
            return WORK_DONE
        inp, out = input_items[0], output_items[0]
        produced = self._emit(out, 0)
        consumed = self._consume(inp)
        if produced == 0 and consumed == 0 and self._pending and self.error is None:
            try:  # nothing to do but wait for the oldest frame's estimate (briefly: tb.stop() must be honoured)
                if self._pending[0].job is not None:
                    self._pending[0].job.future.exception(timeout=_WAIT_S)
            except Exception:  # noqa: BLE001 - a timeout: _emit sorts out the rest
                pass
            produced = self._emit(out, 0)
        if self.error is not None and produced == 0:
            return WORK_DONE
        return produced

    # -- input side: take whole frames, submit their estimate and go on ----------------------------------------

    def _consume(self, inp: np.ndarray) -> int:
        consumed = 0
        while len(self._pending) < MAX_FRAMES_IN_FLIGHT and consumed < len(inp):
            start = self.nitems_read(0) + consumed
            tags = {pmt.symbol_to_string(t.key): t.value for t in self.get_tags_in_window(0, consumed, consumed + 1)}
            if self.len_tag_key and self.len_tag_key in tags:
                frame_len = int(pmt.to_long(tags[self.len_tag_key]))
            elif self.fixed_frame_len:
                frame_len = self.fixed_frame_len
            else:
                self.logger.error(f"item {start} starts no frame (no '{self.len_tag_key}' tag); dropping it")
                consumed += 1
                continue
            if len(inp) - consumed < frame_len:
                break  # wait for the whole frame
            frame = apply_carrier_offset(np.array(inp[consumed:consumed + frame_len], dtype=np.complex128),
                                         int(pmt.to_long(tags[CARR_OFFSET_TAG])) if CARR_OFFSET_TAG in tags else 0,
                                         self.cp_len)
            entry = _Frame(frame, frame_len, has_len_tag=bool(self.len_tag_key) and self.len_tag_key in tags)
            entry.tags = [(tag.offset - start, tag.key, tag.value, tag.srcid)
                          for tag in self.get_tags_in_window(0, consumed, consumed + frame_len)
                          if pmt.symbol_to_string(tag.key) not in (CHAN_TAPS_TAG, ESTIMATE_TAG, SNR_EST_TAG, LS_TAG,
                                                                  FALLBACK_TAG)]
            if ESTIMATE_TAG in tags:  # estimated already (the header's estimate, carried to the payload)
                entry.taps = np.asarray(pmt.c32vector_elements(tags[ESTIMATE_TAG]), dtype=np.complex128)
                entry.snr_db = float(pmt.to_double(tags[SNR_EST_TAG])) if SNR_EST_TAG in tags else float("nan")
            else:
                self._submit(entry, tags)
                if self.error is not None:
                    return consumed
            self._pending.append(entry)
            consumed += frame_len
        if consumed:
            self.consume(0, consumed)
        return consumed

    def _submit(self, entry: "_Frame", tags: dict) -> None:
        if CHAN_TAPS_TAG in tags:
            ls = np.asarray(pmt.c32vector_elements(tags[CHAN_TAPS_TAG]), dtype=np.complex128)
        else:
            self.missing_taps += 1
            ls = np.ones(self.layout.fft_len, dtype=np.complex128)
        entry.ls = ls
        noise_var = noise_var_from_nulls(entry.frame, self.layout)
        if self.snr_db is not None:
            noise_var = float(np.mean(np.abs(ls[self.equalizer.active_bins]) ** 2)) / (1 + 10 ** (self.snr_db / 10))
        entry.noise_var = noise_var if math.isfinite(noise_var) else 0.0
        items, entry.scale, entry.snr_db = self.equalizer.prepare(ls, entry.noise_var)
        job = self.equalizer.job(items, entry.snr_db)
        try:
            self.engine.submit(job)
        except Exception as exc:  # noqa: BLE001 - a clear message and the end of the flowgraph, never a dead thread
            self._fail(f"cannot submit the estimate of the frame at item {self.nitems_read(0)}: {exc}", exc)
            return
        entry.job = job

    # -- output side: frames in the order they came, each once its estimate is back ----------------------------

    def _emit(self, out: np.ndarray, produced: int) -> int:
        while self._pending:
            entry = self._pending[0]
            if entry.taps is None:
                if not entry.job.future.done():
                    break
                exc = entry.job.future.exception()
                if exc is not None:
                    self._fail(f"the channel estimate of a frame failed: {exc}", exc)
                    break
                entry.taps, entry.estimate = self.equalizer.checked(
                    self.equalizer.taps_from_result(entry.job.future.result(), entry.scale), entry.ls, entry.noise_var)
                self.fallbacks += entry.estimate != "diffusion"
            if len(out) - produced < entry.frame_len:
                break  # wait for room for the whole frame
            self._pending.popleft()
            equalized, used = self.equalizer.equalize(entry.frame, entry.taps)
            out[produced:produced + entry.frame_len] = equalized
            first = self.nitems_written(0) + produced
            for rel, key, value, srcid in entry.tags:
                self.add_item_tag(0, first + rel, key, value, srcid)
            if self.len_tag_key and not entry.has_len_tag:
                self.add_item_tag(0, first, pmt.intern(self.len_tag_key), pmt.from_long(entry.frame_len),
                                  self._srcid)
            taps = entry.taps.astype(np.complex64)
            self.add_item_tag(0, first, pmt.intern(ESTIMATE_TAG), pmt.init_c32vector(len(taps), taps), self._srcid)
            self.add_item_tag(0, first, pmt.intern(SNR_EST_TAG), pmt.from_double(entry.snr_db), self._srcid)
            if entry.estimate != "diffusion":
                self.add_item_tag(0, first, pmt.intern(FALLBACK_TAG), pmt.intern(entry.estimate), self._srcid)
            if entry.ls is not None:
                ls = entry.ls.astype(np.complex64)
                self.add_item_tag(0, first, pmt.intern(LS_TAG), pmt.init_c32vector(len(ls), ls), self._srcid)
            if self.propagate_channel_state:
                self.add_item_tag(0, first, pmt.intern(CHAN_TAPS_TAG),
                                  pmt.init_c32vector(len(taps), used[-1].astype(np.complex64)), self._srcid)
            self.last_snr_db = entry.snr_db
            self.frames += 1
            produced += entry.frame_len
        return produced

    def _fail(self, message: str, exc: BaseException) -> None:
        self.error = exc
        self.logger.error(message)


@dataclass(eq=False)
class _Frame:
    """A frame on its way: its samples (carrier offset undone), tags relative to its first vector, and the engine
    job of its estimate (None when the frame came with an estimate, in ``taps``)."""

    frame: np.ndarray
    frame_len: int
    has_len_tag: bool
    tags: list = field(default_factory=list)
    job: Job | None = None
    scale: float = 1.0
    snr_db: float = float("nan")
    taps: np.ndarray | None = None
    ls: np.ndarray | None = None  # the LS taps the estimate started from (None when it came with the frame)
    noise_var: float = 0.0
    estimate: str = "diffusion"  # which estimate the frame was equalized with (FrameEqualizer.checked)
