"""Live SDR receive through GNU Radio's SoapySDR source, tagged like ``sigmf_source`` so blocks work on both."""

from __future__ import annotations

import threading
import time

import numpy as np
import pmt
from gnuradio import gr

from diffwireless.tags import RX_FREQ, RX_RATE, RX_TIME

from gnuradio.diffwireless._pmt import to_pmt


class SDRNotFoundError(RuntimeError):
    """No attached SDR matches the device string."""


def find_devices(device: str) -> list[dict[str, str]]:
    """Devices SoapySDR finds for a device string such as ``driver=hackrf`` (empty list when none)."""
    import SoapySDR

    return [dict(d) for d in SoapySDR.Device.enumerate(device)]


def check_device(device: str) -> None:
    """Raise :class:`SDRNotFoundError` with one actionable message when no SDR matches ``device``."""
    try:
        import SoapySDR
    except ImportError:
        raise SDRNotFoundError(
            f"cannot open SDR '{device}': the SoapySDR Python bindings are missing "
            "(apt-get install python3-soapysdr soapysdr-tools)"
        ) from None
    if find_devices(device):
        return
    modules = ", ".join(m.rsplit("/", 1)[-1] for m in SoapySDR.listModules()) or "none"
    raise SDRNotFoundError(
        f"no SDR matches device string '{device}'. Check that it is plugged in and that its SoapySDR module is "
        f"installed (e.g. apt-get install soapysdr-module-hackrf / -uhd / -rtlsdr; installed modules: {modules}). "
        "List attached devices with: SoapySDRUtil --find"
    )


def open_soapy(direction: str, device: str, stream_args: str, sample_rate: float, frequency: float,
               antenna: str):
    """GNU Radio's SoapySDR ``source`` or ``sink`` (``direction``) on one channel, tuned; SDRNotFoundError with one
    message when no SDR matches ``device`` or it cannot be opened."""
    check_device(device)
    from gnuradio import soapy

    try:
        block = getattr(soapy, direction)(device, "fc32", 1, "", stream_args, [""], [""])
    except RuntimeError as exc:
        raise SDRNotFoundError(f"cannot open SDR '{device}' ({direction}): {exc}. List attached devices with: "
                               "SoapySDRUtil --find") from None
    block.set_sample_rate(0, float(sample_rate))
    block.set_frequency(0, float(frequency))
    if antenna:
        block.set_antenna(0, antenna)
    return block


class _rx_tagger(gr.sync_block):
    """Pass-through that tags the stream with rx_rate/rx_freq/rx_time at the start and after each retune."""

    def __init__(self, sample_rate: float, frequency: float) -> None:
        gr.sync_block.__init__(self, name="diffwireless_rx_tagger", in_sig=[np.complex64], out_sig=[np.complex64])
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {RX_RATE: float(sample_rate), RX_FREQ: float(frequency)}
        self._first = True

    def retag(self, **values: float) -> None:
        with self._lock:
            self._pending.update(values)

    def work(self, input_items, output_items):
        n = len(input_items[0])
        output_items[0][:n] = input_items[0]
        with self._lock:
            pending, self._pending = self._pending, {}
        if self._first:
            # Host clock at the first delivered sample: UTC to within the USB/driver latency (milliseconds).
            now = time.time()
            pending[RX_TIME] = (int(now), now - int(now))
            self._first = False
        offset = self.nitems_written(0)
        for key, value in pending.items():
            self.add_item_tag(0, offset, pmt.intern(key), to_pmt(key, value))
        return n


class sdr_source(gr.hier_block2):
    """Receive complex baseband from an SDR (HackRF, USRP, RTL-SDR, ... through SoapySDR).

    Output tags: ``rx_rate`` and ``rx_freq`` on the first sample and after every retune, ``rx_time`` (host clock,
    UTC) on the first sample. Fails when built, with one message naming the device string, if no SDR matches.

    Args:
        device: SoapySDR device string, e.g. ``driver=hackrf``, ``driver=uhd``, ``driver=rtlsdr,serial=0001``.
        frequency: centre frequency in Hz.
        sample_rate: samples per second.
        gain: overall gain in dB (ignored with ``agc``).
        agc: automatic gain control.
        antenna: antenna port name ('' for the device default).
        stream_args: SoapySDR stream arguments ('' for none).
    """

    def __init__(self, device: str = "driver=rtlsdr", frequency: float = 100e6, sample_rate: float = 2.4e6,
                 gain: float = 30.0, agc: bool = False, antenna: str = "", stream_args: str = "") -> None:
        gr.hier_block2.__init__(self, "diffwireless_sdr_source", gr.io_signature(0, 0, 0),
                                gr.io_signature(1, 1, gr.sizeof_gr_complex))
        self.soapy = open_soapy("source", device, stream_args, sample_rate, frequency, antenna)
        self.set_agc(agc)
        if not agc:
            self.set_gain(gain)
        self.tagger = _rx_tagger(sample_rate, frequency)
        self.connect(self.soapy, self.tagger, self)

    def set_frequency(self, frequency: float) -> None:
        self.soapy.set_frequency(0, float(frequency))
        self.tagger.retag(**{RX_FREQ: float(frequency)})

    def set_sample_rate(self, sample_rate: float) -> None:
        self.soapy.set_sample_rate(0, float(sample_rate))
        self.tagger.retag(**{RX_RATE: float(sample_rate)})

    def set_gain(self, gain: float) -> None:
        self.soapy.set_gain(0, float(gain))

    def set_agc(self, agc: bool) -> None:
        if self.soapy.has_gain_mode(0):
            self.soapy.set_gain_mode(0, bool(agc))
