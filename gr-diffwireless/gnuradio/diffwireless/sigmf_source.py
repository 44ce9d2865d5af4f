"""SigMF (or raw IQ) file replay as a GNU Radio source, tagged like a live SDR source."""

from __future__ import annotations

import math
import time

import numpy as np
import pmt
from gnuradio import gr

from diffwireless.errors import RecordingError
from diffwireless.recording import open_recording
from diffwireless.tags import recording_tags

from gnuradio.diffwireless._pmt import to_pmt
from gnuradio.diffwireless.engine_block import WORK_DONE

PACING_CHUNK_S = 0.002  # a paced replay hands out samples at least this many seconds' worth at a time


class sigmf_source(gr.sync_block):
    """Replay a recording as a complex stream, lossless: without ``repeat`` exactly ``num_samples`` items come out.

    Tags ``rx_rate``, ``rx_freq``, ``rx_time`` (those the recording states) on the first sample and on every
    capture boundary, and an ``annotation`` tag (PMT dict of the annotation's fields) on the first sample of each
    SigMF annotation. With ``repeat`` the tags recur on every pass; without, the last sample carries ``dw_eos``
    (the sample count), which lets windowed blocks such as ``diffusion_denoiser`` flush their last window.

    Args:
        path: ``.sigmf-meta``/``.sigmf-data`` file or base name; with ``datatype`` set, a raw IQ file.
        repeat: start again at the end instead of finishing the flowgraph.
        realtime: pace the output at the recording's sample rate, as hardware would deliver it.
        datatype: '' for SigMF; else the raw file's format (``cf32_le``, ``ci16_le``, ``cu8``, ...).
        sample_rate: raw files: samples/s (0: unknown). SigMF: 0 uses the recording's, else overrides it.
        frequency: raw files: centre frequency in Hz (0: unknown).

    A recording that cannot be read fails when the block is built (its file named); a read that fails during the
    replay (a file cut short under it) ends the flowgraph with the error logged and kept in ``error``.
    """

    def __init__(self, path: str, repeat: bool = False, realtime: bool = False, datatype: str = "",
                 sample_rate: float = 0.0, frequency: float = 0.0) -> None:
        gr.sync_block.__init__(self, name="diffwireless_sigmf_source", in_sig=None, out_sig=[np.complex64])
        for name, value in (("sample_rate", sample_rate), ("frequency", frequency)):
            if not math.isfinite(float(value)) or (name == "sample_rate" and float(value) < 0):
                raise ValueError(f"{path}: {name} must be finite{' and >= 0' if name == 'sample_rate' else ''} "
                                 f"(0: from the recording), got {value}")
        self.recording = open_recording(path, datatype or None, sample_rate or None, frequency or None)
        if sample_rate and not datatype:
            self.recording.sample_rate = float(sample_rate)
        self.sample_rate = self.recording.sample_rate
        if realtime and not self.sample_rate:
            raise ValueError(f"{path}: real-time pacing needs a sample rate, and the recording has none; "
                             "set the block's sample rate")
        self.repeat = bool(repeat)
        self.realtime = bool(realtime)
        self._srcid = pmt.intern("diffwireless_sigmf_source")
        # Tags converted to PMT once: (sample index in the recording, key, value).
        self._tags = [(i, pmt.intern(k), to_pmt(k, v))
                      for i, k, v in recording_tags(self.recording, end_of_stream=not self.repeat)]
        self._pos = 0
        self._next_tag = 0
        self.passes = 0
        self._t0 = 0.0
        self.error: RecordingError | None = None  # what ended a replay early (logged)
        self.logger = gr.logger(f"diffwireless.sigmf_source({self.recording.path.name})")

    def start(self) -> bool:
        self._t0 = time.monotonic()
        return True

    def work(self, input_items, output_items):
        try:
            return self._work(output_items[0])
        except Exception as exc:  # noqa: BLE001 - an exception left in work() stalls the flowgraph for ever
            self.error = RecordingError(f"{self.recording.path}: replay stopped at sample {self._pos}: "
                                        f"{type(exc).__name__}: {exc}")
            self.logger.error(f"{self.error}; ending the flowgraph")
            return WORK_DONE

    def _work(self, out: np.ndarray) -> int:
        n_total = self.recording.num_samples
        if self._pos >= n_total:
            self.passes += 1
            if not self.repeat or n_total == 0:
                return WORK_DONE  # the flowgraph ends once downstream has drained
            self._pos, self._next_tag = 0, 0
        n = min(len(out), n_total - self._pos)
        if self.realtime:
            n = self._paced(n)
            if n == 0:
                return 0
        out[:n] = self.recording.read(self._pos, n)
        first_out = self.nitems_written(0)
        end = self._pos + n
        while self._next_tag < len(self._tags) and self._tags[self._next_tag][0] < end:
            index, key, value = self._tags[self._next_tag]
            self.add_item_tag(0, first_out + index - self._pos, key, value, self._srcid)
            self._next_tag += 1
        self._pos = end
        return n

    def set_rate(self, sample_rate: float) -> None:
        """Pace the replay at ``sample_rate`` from now on (``realtime``; a virtual radio whose rate changes)."""
        rate = float(sample_rate)
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"{self.recording.path}: sample_rate must be finite and > 0, got {sample_rate}")
        # The pacing clock restarts so that what was sent so far is on time at the new rate.
        self._t0 = time.monotonic() - self.nitems_written(0) / rate
        self.sample_rate = rate

    def _paced(self, n: int) -> int:
        """How many of ``n`` samples are due by now at the sample rate. Fewer than a chunk due: sleep until a chunk
        is (at most 10 ms), as a radio delivers its samples in USB transfers; a loop of tiny sleeps would hold the
        interpreter from the blocks downstream."""
        chunk = min(n, max(1, int(self.sample_rate * PACING_CHUNK_S)))
        due = int((time.monotonic() - self._t0) * self.sample_rate) - self.nitems_written(0)
        if due < chunk:
            time.sleep(min(0.01, (chunk - due) / self.sample_rate))
            due = int((time.monotonic() - self._t0) * self.sample_rate) - self.nitems_written(0)
        return max(0, min(n, due))
