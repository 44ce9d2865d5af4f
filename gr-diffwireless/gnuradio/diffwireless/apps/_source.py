"""The radio-or-recording source of the dw-* tools that run live (``dw-live``, ``dw-frontend``)."""

from __future__ import annotations

import argparse

from gnuradio import gr


def add_source_arguments(parser: argparse.ArgumentParser, realtime_help: str = "pace the recording at its sample "
                         "rate") -> None:
    """``--device --freq --rate --gain`` (a radio) and ``--recording --realtime --loop`` (a recording instead)."""
    radio = parser.add_argument_group("radio")
    radio.add_argument("--device", default="driver=rtlsdr", help="SoapySDR device string (default driver=rtlsdr)")
    radio.add_argument("--freq", type=float, default=433.92e6, help="centre frequency, Hz")
    radio.add_argument("--rate", type=float, default=1e6, help="sample rate, samples/s")
    radio.add_argument("--gain", type=float, help="gain, dB (default: AGC)")
    replay = parser.add_argument_group("virtual radio")
    replay.add_argument("--recording", help="a SigMF recording instead of a radio")
    replay.add_argument("--realtime", action="store_true", help=realtime_help)
    replay.add_argument("--loop", action="store_true", help="replay the recording for ever")


def source_block(args: argparse.Namespace) -> gr.basic_block:
    """SigMF Source of ``--recording``, or SDR Source of ``--device`` (AGC without ``--gain``).

    Raises:
        SDRNotFoundError: no radio answers the device string.
        DiffWirelessError: the recording cannot be read.
    """
    from gnuradio.diffwireless.sdr_source import sdr_source
    from gnuradio.diffwireless.sigmf_source import sigmf_source

    if args.recording:
        return sigmf_source(args.recording, repeat=args.loop, realtime=args.realtime)
    return sdr_source(args.device, args.freq, args.rate, args.gain, agc=args.gain is None)
