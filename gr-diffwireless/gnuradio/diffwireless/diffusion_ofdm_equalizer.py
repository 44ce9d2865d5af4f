"""Drop-in for ``digital.ofdm_frame_equalizer_vcvc`` that equalizes with a diffusion channel estimate."""

from __future__ import annotations

import math

import numpy as np
import pmt
from gnuradio import gr

from diffwireless.engine import EngineOptions, acquire_engine, release_engine
from diffwireless.errors import EngineError
from diffwireless.ofdm_equalizer import FrameEqualizer, OFDMLayout, apply_carrier_offset, noise_var_from_nulls

from gnuradio.diffwireless.engine_block import WORK_DONE

CHAN_TAPS_TAG = "ofdm_sync_chan_taps"
CARR_OFFSET_TAG = "ofdm_sync_carr_offset"
ESTIMATE_TAG = "dw_chan_est"
SNR_EST_TAG = "dw_snr_db"
DEFAULT_MODEL = "chanest_tdl_sym"


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
    (the estimate, ``fft_len`` complex), ``dw_snr_db`` (the SNR used), and with ``propagate_channel_state``
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
    """

    def __init__(self, fft_len: int = 64, cp_len: int = 16, occupied_carriers=None, pilot_carriers=None,
                 pilot_symbols=None, symbols_skipped: int = 0, len_tag_key: str = "frame_length",
                 propagate_channel_state: bool = False, fixed_frame_len: int = 0, model: str = "",
                 snr_db: float | None = None, tracking: float = 1.0, constellation=None,
                 engine: EngineOptions | str | None = None) -> None:
        gr.basic_block.__init__(self, name="diffwireless_diffusion_ofdm_equalizer",
                                in_sig=[(np.complex64, fft_len)], out_sig=[(np.complex64, fft_len)])
        from gnuradio.digital.ofdm_txrx import _def_occupied_carriers, _def_pilot_carriers, _def_pilot_symbols

        self.layout = OFDMLayout.make(fft_len,
                                      _def_occupied_carriers if occupied_carriers is None else occupied_carriers,
                                      _def_pilot_carriers if pilot_carriers is None else pilot_carriers,
                                      _def_pilot_symbols if pilot_symbols is None else pilot_symbols,
                                      symbols_skipped)
        points = None if constellation is None else np.asarray(constellation.points(), dtype=np.complex128)
        self.equalizer = FrameEqualizer(model or DEFAULT_MODEL, self.layout, tracking=tracking, points=points)
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
        self.frames = 0
        self.missing_taps = 0
        self.last_snr_db = float("nan")
        self.set_tag_propagation_policy(gr.TPP_DONT)
        self.logger = gr.logger("diffwireless_diffusion_ofdm_equalizer")
        self._srcid = pmt.intern("diffusion_ofdm_equalizer")

    def set_snr_db(self, snr_db: float | None) -> None:
        """The taps' SNR in dB, or None to measure it on each frame's empty carriers."""
        self.snr_db = None if snr_db is None else float(snr_db)

    def start(self) -> bool:
        self.frames = self.missing_taps = 0
        self.error = None
        try:
            self.engine = acquire_engine(self.options.device, holder="diffwireless_diffusion_ofdm_equalizer",
                                         **self.options.engine_config())
        except EngineError as exc:  # GNU Radio would lose an exception from start(): end the flowgraph instead
            self.error = exc
            self.logger.error(f"cannot start: {exc}")
        return True

    def stop(self) -> bool:
        if self.engine is not None:
            release_engine(self.engine)
            self.engine = None
        self.logger.info(f"{self.frames} frames equalized ({self.missing_taps} without preamble taps)")
        return True

    def forecast(self, noutput_items, ninputs):
        return [1] * ninputs

    def general_work(self, input_items, output_items):
        if self.error is not None:
            return WORK_DONE
        inp, out = input_items[0], output_items[0]
        start = self.nitems_read(0)
        tags = {pmt.symbol_to_string(t.key): t.value for t in self.get_tags_in_window(0, 0, 1)}
        if self.len_tag_key and self.len_tag_key in tags:
            frame_len = int(pmt.to_long(tags[self.len_tag_key]))
        elif self.fixed_frame_len:
            frame_len = self.fixed_frame_len
        else:
            self.logger.error(f"item {start} starts no frame (no '{self.len_tag_key}' tag); dropping it")
            self.consume(0, 1)
            return 0
        if len(inp) < frame_len or len(out) < frame_len:
            return 0  # wait for the whole frame and room for it
        frame = apply_carrier_offset(np.asarray(inp[:frame_len], dtype=np.complex128),
                                     int(pmt.to_long(tags[CARR_OFFSET_TAG])) if CARR_OFFSET_TAG in tags else 0,
                                     self.cp_len)
        noise_var = noise_var_from_nulls(frame, self.layout)
        if ESTIMATE_TAG in tags:
            taps = np.asarray(pmt.c32vector_elements(tags[ESTIMATE_TAG]), dtype=np.complex128)
            snr_db = float(pmt.to_double(tags[SNR_EST_TAG])) if SNR_EST_TAG in tags else float("nan")
        else:
            if CHAN_TAPS_TAG in tags:
                ls = np.asarray(pmt.c32vector_elements(tags[CHAN_TAPS_TAG]), dtype=np.complex128)
            else:
                self.missing_taps += 1
                ls = np.ones(self.layout.fft_len, dtype=np.complex128)
            if self.snr_db is not None:
                noise_var = float(np.mean(np.abs(ls[self.equalizer.active_bins]) ** 2)) / (1 + 10 ** (self.snr_db / 10))
            items, scale, snr_db = self.equalizer.prepare(ls, noise_var if math.isfinite(noise_var) else 0.0)
            out_items = self.engine.submit(self.equalizer.job(items, snr_db)).result()
            taps = self.equalizer.taps_from_result(out_items, scale)
        equalized, used = self.equalizer.equalize(frame, taps)
        out[:frame_len] = equalized
        first = self.nitems_written(0)
        for tag in self.get_tags_in_window(0, 0, frame_len):
            key = pmt.symbol_to_string(tag.key)
            if key in (CHAN_TAPS_TAG, ESTIMATE_TAG, SNR_EST_TAG):
                continue
            self.add_item_tag(0, first + tag.offset - start, tag.key, tag.value, tag.srcid)
        if self.len_tag_key and self.len_tag_key not in tags:
            self.add_item_tag(0, first, pmt.intern(self.len_tag_key), pmt.from_long(frame_len), self._srcid)
        self.add_item_tag(0, first, pmt.intern(ESTIMATE_TAG), pmt.init_c32vector(len(taps), taps.astype(np.complex64)),
                          self._srcid)
        self.add_item_tag(0, first, pmt.intern(SNR_EST_TAG), pmt.from_double(snr_db), self._srcid)
        if self.propagate_channel_state:
            self.add_item_tag(0, first, pmt.intern(CHAN_TAPS_TAG),
                              pmt.init_c32vector(len(taps), used[-1].astype(np.complex64)), self._srcid)
        self.last_snr_db = snr_db
        self.frames += 1
        self.consume(0, frame_len)
        return frame_len
