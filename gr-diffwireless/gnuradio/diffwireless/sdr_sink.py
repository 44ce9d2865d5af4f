"""Transmit complex baseband through an SDR (HackRF, USRP, ... through GNU Radio's SoapySDR sink)."""

from __future__ import annotations

import math

from gnuradio import gr

from gnuradio.diffwireless.sdr_source import open_soapy


class sdr_sink(gr.hier_block2):
    """Send complex baseband to an SDR that transmits (HackRF: ``driver=hackrf``, USRP: ``driver=uhd``, LimeSDR,
    ... through SoapySDR), with the device-string convention of SDR Source.

    Fails when built, with one message naming the device string and the SoapySDR modules installed, when no SDR
    matches: a flowgraph without its radio never starts half-way.

    Args:
        device: SoapySDR device string, e.g. ``driver=hackrf``, ``driver=uhd,serial=...``.
        frequency: centre frequency in Hz.
        sample_rate: samples per second.
        gain: transmit gain in dB (HackRF: the TX VGA, 0-47).
        antenna: antenna port name ('' for the device default).
        stream_args: SoapySDR stream arguments ('' for none).
    """

    def __init__(self, device: str = "driver=hackrf", frequency: float = 915e6, sample_rate: float = 2e6,
                 gain: float = 0.0, antenna: str = "", stream_args: str = "") -> None:
        gr.hier_block2.__init__(self, "diffwireless_sdr_sink", gr.io_signature(1, 1, gr.sizeof_gr_complex),
                                gr.io_signature(0, 0, 0))
        for name, value in (("frequency", frequency), ("sample_rate", sample_rate)):
            if not (math.isfinite(float(value)) and float(value) > 0):
                raise ValueError(f"sdr_sink: {name} must be finite and > 0, got {value}")
        if not math.isfinite(float(gain)):
            raise ValueError(f"sdr_sink: gain must be finite, got {gain}")
        self.soapy = open_soapy("sink", device, stream_args, sample_rate, frequency, antenna)
        self.soapy.set_gain(0, float(gain))
        self.connect(self, self.soapy)

    def set_frequency(self, frequency: float) -> None:
        self.soapy.set_frequency(0, float(frequency))

    def set_sample_rate(self, sample_rate: float) -> None:
        self.soapy.set_sample_rate(0, float(sample_rate))

    def set_gain(self, gain: float) -> None:
        self.soapy.set_gain(0, float(gain))
