"""GNU Radio's OFDM receiver (``digital.ofdm_rx``) with a choice of frame equalizer: stock or diffusion."""

from __future__ import annotations

from gnuradio import analog, blocks, digital, fft, gr

from gnuradio.diffwireless import ofdm_defaults as defaults
from gnuradio.diffwireless.diffusion_ofdm_equalizer import diffusion_ofdm_equalizer

EQUALIZERS = ("diffusion", "stock")


class diffusion_ofdm_rx(gr.hier_block2):
    """``digital.ofdm_rx`` (Schmidl & Cox sync, header/payload demux, BPSK header, CRC-checked payload) whose two
    ``ofdm_frame_equalizer_vcvc`` blocks are ``diffusion_ofdm_equalizer`` (``equalizer="diffusion"``) or the stock
    ``ofdm_equalizer_simpledfe`` ones (``"stock"``, the same receiver as ``ofdm_rx``).

    Input: complex baseband at one sample per sample of ``ofdm_tx``. Output: payload bytes of the packets that pass
    their CRC, tagged as ``ofdm_rx`` tags them (``packet_length`` on each packet's first byte). The header equalizer
    (diffusion) puts its estimate on the header; the header parser carries it to the payload, whose equalizer uses
    it, so one network call serves each packet.

    With ``raw_output`` a second output gives every payload whose header decoded, before the CRC check (payload and
    CRC bytes, tagged ``packet_length`` and ``packet_num``): what bit error rates are counted on. With
    ``channel_output`` the last output gives the header equalizer's frames (vectors of ``fft_len``), tagged with
    each frame's channel estimate (``dw_chan_est``) and its LS taps (``dw_chan_ls``): the Channel View's input.

    Args: as ``digital.ofdm_rx`` (None carriers and pilots: its 802.11-like defaults; BPSK header and payload), plus
        equalizer, model, snr_db (None: measured per frame), tracking and engine options of the diffusion equalizer,
        raw_output and channel_output.
    """

    def __init__(self, fft_len: int = defaults.FFT_LEN, cp_len: int = defaults.CP_LEN,
                 frame_length_tag_key: str = "frame_length", packet_length_tag_key: str = "packet_length",
                 occupied_carriers=None, pilot_carriers=None, pilot_symbols=None, bps_header: int = 1,
                 bps_payload: int = 1,
                 equalizer: str = "diffusion", model: str = "", snr_db: float | None = None,
                 tracking: float = 1.0, engine=None, scramble_bits: bool = False,
                 raw_output: bool = False, channel_output: bool = False) -> None:
        sizes = [gr.sizeof_char] * (1 + raw_output) + [gr.sizeof_gr_complex * fft_len] * channel_output
        gr.hier_block2.__init__(self, "diffusion_ofdm_rx", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature.makev(len(sizes), len(sizes), sizes))
        if equalizer not in EQUALIZERS:
            raise ValueError(f"diffusion_ofdm_rx: equalizer must be one of {', '.join(EQUALIZERS)}, got {equalizer!r}")
        occupied_carriers = defaults.OCCUPIED_CARRIERS if occupied_carriers is None else occupied_carriers
        pilot_carriers = defaults.PILOT_CARRIERS if pilot_carriers is None else pilot_carriers
        pilot_symbols = defaults.PILOT_SYMBOLS if pilot_symbols is None else pilot_symbols
        sync_word1, sync_word2 = defaults.sync_words(fft_len, cp_len, occupied_carriers, pilot_carriers)
        header_const = defaults.constellation(bps_header)
        payload_const = defaults.constellation(bps_payload)

        def make_equalizer(constellation, skipped: int, header: bool):
            if equalizer == "stock":
                eq = digital.ofdm_equalizer_simpledfe(fft_len, constellation.base(), occupied_carriers,
                                                      pilot_carriers, pilot_symbols, symbols_skipped=skipped,
                                                      **({} if header else {"alpha": 0.1}))
                return digital.ofdm_frame_equalizer_vcvc(eq.base(), cp_len, frame_length_tag_key, header,
                                                         1 if header else 0)
            return diffusion_ofdm_equalizer(fft_len, cp_len, occupied_carriers, pilot_carriers, pilot_symbols,
                                            skipped, frame_length_tag_key, header, 1 if header else 0, model,
                                            snr_db, tracking, constellation.base(), engine)

        # Timing and coarse frequency sync (Schmidl & Cox), then the header/payload split.
        sync = digital.ofdm_sync_sc_cfb(fft_len, cp_len)
        delay = blocks.delay(gr.sizeof_gr_complex, fft_len + cp_len)
        nco = analog.frequency_modulator_fc(-2.0 / fft_len)
        mixer = blocks.multiply_cc()
        demux = digital.header_payload_demux(3, fft_len, cp_len, frame_length_tag_key, "", True)
        self.connect(self, sync)
        self.connect(self, delay, (mixer, 0), (demux, 0))
        self.connect((sync, 0), nco, (mixer, 1))
        self.connect((sync, 1), (demux, 1))
        # Header: preamble channel estimate, equalize, parse (the parser tells the demux the payload length).
        formatter = digital.packet_header_ofdm(occupied_carriers, 1, packet_length_tag_key, frame_length_tag_key,
                                               "packet_num", bps_header, bps_payload, scramble_header=scramble_bits)
        parser = digital.packet_headerparser_b(formatter.formatter())
        # Python blocks live only as long as a Python reference to them: the hier block keeps both.
        self.header_equalizer = make_equalizer(header_const, 0, True)
        self.payload_equalizer = make_equalizer(payload_const, 1, False)
        self.connect((demux, 0), fft.fft_vcc(fft_len, True, (), True),
                     digital.ofdm_chanest_vcvc(sync_word1, sync_word2, 1),
                     self.header_equalizer,
                     digital.ofdm_serializer_vcc(fft_len, occupied_carriers, frame_length_tag_key),
                     digital.constellation_decoder_cb(header_const.base()), parser)
        self.msg_connect(parser, "header_data", demux, "header_data")
        # Payload: equalize, serialize, decide, pack, descramble, check the CRC.
        descrambler = digital.additive_scrambler_bb(0x8a, 0x7f if scramble_bits else 0x00, 7, 0, bits_per_byte=8,
                                                    reset_tag_key=packet_length_tag_key)
        self.connect((demux, 1), fft.fft_vcc(fft_len, True, (), True),
                     self.payload_equalizer,
                     digital.ofdm_serializer_vcc(fft_len, occupied_carriers, frame_length_tag_key,
                                                 packet_length_tag_key, 1),
                     digital.constellation_decoder_cb(payload_const.base()),
                     blocks.repack_bits_bb(bps_payload, 8, packet_length_tag_key, True),
                     descrambler, digital.crc32_bb(True, packet_length_tag_key), self)
        if raw_output:
            self.connect(descrambler, (self, 1))
        if channel_output:  # the header equalizer's frames: each carries dw_chan_est and dw_chan_ls (Channel View)
            self.connect(self.header_equalizer, (self, 1 + raw_output))
