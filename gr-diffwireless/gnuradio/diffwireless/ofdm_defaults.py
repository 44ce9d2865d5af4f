"""The default carrier layout of GNU Radio's ``digital.ofdm_tx`` / ``ofdm_rx`` (the 802.11a layout), from the core's
802.11 tables, and the public pieces of GNU Radio's OFDM chain that the diffusion receiver reuses."""

from __future__ import annotations

from gnuradio import digital

from diffwireless import wifi

FFT_LEN = 64
CP_LEN = 16
# 48 data carriers and 4 pilots of 802.11a; each symbol's pilots are p_i * (1, 1, 1, -1), p_i the 127 polarities.
OCCUPIED_CARRIERS = (wifi.DATA_CARRIERS,)
PILOT_CARRIERS = (wifi.PILOT_CARRIERS,)
PILOT_SYMBOLS = tuple(tuple(float(v) for v in p * wifi.PILOT_BASE) for p in wifi.pilot_polarity())
# Bits per symbol -> the constellation that ofdm_tx modulates header and payload with.
CONSTELLATIONS = {1: digital.constellation_bpsk, 2: digital.constellation_qpsk, 3: digital.constellation_8psk}


def constellation(bits_per_symbol: int):
    """The ``digital.constellation`` that ``ofdm_tx`` uses for ``bits_per_symbol`` (1, 2 or 3)."""
    if bits_per_symbol not in CONSTELLATIONS:
        raise ValueError(f"bits per symbol must be one of {', '.join(map(str, CONSTELLATIONS))} (BPSK, QPSK, 8PSK), "
                         f"got {bits_per_symbol}")
    return CONSTELLATIONS[bits_per_symbol]()


def sync_words(fft_len: int, cp_len: int, occupied_carriers, pilot_carriers) -> tuple[list, list]:
    """The two Schmidl & Cox preamble symbols that ``ofdm_tx`` sends for this layout (its public attributes)."""
    tx = digital.ofdm_tx(fft_len, cp_len, occupied_carriers=occupied_carriers, pilot_carriers=pilot_carriers)
    return list(tx.sync_word1), list(tx.sync_word2)
