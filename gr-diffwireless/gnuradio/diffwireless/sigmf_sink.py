"""Record a complex stream as SigMF, turning stream tags and messages into captures and annotations."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pmt
from gnuradio import gr

from diffwireless.datatypes import parse_datatype
from diffwireless.errors import RecordingError
from diffwireless.recording import SigMFWriter, check_writable, sigmf_paths
from diffwireless.tags import ANNOTATION, RX_FREQ, RX_RATE, RX_TIME, annotation_from_tag, datetime_from_rx_time

from gnuradio.diffwireless._pmt import to_python
from gnuradio.diffwireless.engine_block import WORK_DONE

CHECKPOINT_S = 1.0  # how often the samples are flushed and the metadata rewritten while recording
METADATA_CHECKPOINT_S = 0.1  # new captures and annotations reach the file this soon (each write is an fsync)


class sigmf_sink(gr.sync_block):
    """Write the input stream to ``path`` as a SigMF recording. The metadata is written at start and rewritten
    atomically every second with the samples flushed, so a killed process leaves a readable
    recording (new captures and annotations are written within 0.1 s); the final metadata (with the data
    file's SHA-512) is written at stop.

    - ``rx_freq`` and ``rx_time`` tags start capture segments (``core:frequency``, ``core:datetime``; an ``rx_time``
      before 2001 is a device clock, not UTC, and is not written). ``rx_rate`` sets ``core:sample_rate`` when the
      block's ``sample_rate`` is 0.
    - tags whose key is in ``annotate_tags`` become annotations: a dict value (as ``sigmf_source`` emits under
      ``annotation``) gives the annotation's fields; any other value a one-sample annotation labelled with the key.
    - PMT dicts on the ``annotations`` message port become annotations; ``sample_start`` (or ``start``) is the
      absolute index of the first sample in this block's input (default: the next sample to arrive),
      ``sample_count`` (or ``end``) its length, and ``label``, ``comment`` etc. its fields.
    - A tag or message value that SigMF cannot hold (NaN, a negative count, a complex number, ...) is logged and
      left out; the metadata counts them in ``diffwireless:skipped_values``. Until stop, the metadata carries
      ``diffwireless:in_progress: true`` (a killed recording says so).

    Args:
        path: recording to create (``NAME``, ``NAME.sigmf-meta`` or ``NAME.sigmf-data``).
        datatype: sample format written (``cf32_le`` is exact; ``ci16_le``, ``ci8``, ``cu8`` scale and clip).
        sample_rate: samples/s for the metadata; 0 takes it from the first ``rx_rate`` tag.
        frequency: centre frequency in Hz of the first capture; 0 leaves it to ``rx_freq`` tags.
        description: ``core:description``.
        annotate_tags: tag keys recorded as annotations.
        overwrite: replace an existing recording instead of failing.
    """

    def __init__(self, path: str, datatype: str = "cf32_le", sample_rate: float = 0.0, frequency: float = 0.0,
                 description: str = "", annotate_tags=(ANNOTATION,), overwrite: bool = False) -> None:
        gr.sync_block.__init__(self, name="diffwireless_sigmf_sink", in_sig=[np.complex64], out_sig=None)
        # Check what can be checked now, so a bad value fails when the flowgraph is built, not when it runs.
        parse_datatype(datatype)
        for name, value in (("sample_rate", sample_rate), ("frequency", frequency)):
            if not (math.isfinite(float(value)) and float(value) >= 0):
                raise ValueError(f"sigmf_sink: {name} must be finite and >= 0 (0: from the {name} tags), got {value}")
        check_writable(path, overwrite, how="set overwrite")
        self.path = str(path)
        self.datatype = datatype
        self.sample_rate = float(sample_rate)
        self.frequency = float(frequency)
        self.description = description
        self.annotate_tags = {annotate_tags} if isinstance(annotate_tags, str) else set(annotate_tags)
        self.overwrite = bool(overwrite)
        self.logger = gr.logger(f"diffwireless.sigmf_sink({Path(path).name})")
        self._writer: SigMFWriter | None = None
        self.skipped = 0  # tag and message values that could not be recorded (each logged)
        self.error: BaseException | None = None
        self._next_checkpoint = self._last_checkpoint = 0.0
        self._lock = threading.Lock()
        self._freq: float | None = self.frequency or None
        self.message_port_register_in(pmt.intern("annotations"))
        self.set_msg_handler(pmt.intern("annotations"), self._on_annotation)

    @property
    def meta_path(self) -> Path:
        return sigmf_paths(self.path)[0]

    def start(self) -> bool:
        with self._lock:
            self.error = None
            try:
                self._writer = SigMFWriter(self.path, self.datatype, self.sample_rate or None, self.description,
                                           recorder=f"GNU Radio {gr.version()}, gr-diffwireless sigmf_sink",
                                           overwrite=self.overwrite)
            except (RecordingError, OSError) as exc:  # an exception out of start() would hang the flowgraph
                self.error = exc
                self._writer = None
                self.logger.error(f"cannot record: {exc}")
                return True
            self._origin = self.nitems_read(0)
            if self._freq:
                self._writer.add_capture(0, frequency_hz=self._freq)
            self._checkpoint()  # from the first moment the recording is readable, whatever happens to the process
        return True

    def _checkpoint(self) -> None:
        """Flush the samples and rewrite the metadata atomically (caller holds the lock)."""
        try:
            self._writer.checkpoint()
        except (RecordingError, OSError) as exc:
            self.logger.warn(f"{self.meta_path}: metadata not updated: {exc}")
        self._last_checkpoint = time.monotonic()
        self._next_checkpoint = self._last_checkpoint + CHECKPOINT_S

    def work(self, input_items, output_items):
        if self._writer is None:
            return WORK_DONE  # the error was logged at start
        samples = input_items[0]
        with self._lock:
            for tag in self.get_tags_in_window(0, 0, len(samples)):
                key = pmt.symbol_to_string(tag.key)
                try:
                    self._on_tag(key, to_python(tag.value), tag.offset - self._origin)
                except (RecordingError, TypeError, ValueError, OverflowError) as exc:
                    self._skip(f"tag '{key}' at sample {tag.offset - self._origin}", exc)
            try:
                self._writer.write(samples)
            except OSError as exc:  # disk full, a vanished mount: end the flowgraph, saying what is kept
                self.error = exc
                written = self._writer.num_samples * self._writer.datatype.sample_size
                self.logger.error(f"cannot write {self._writer.data_path} after {written} bytes: "
                                  f"{exc.strerror or exc}; ending the flowgraph")
                return WORK_DONE
            now = time.monotonic()
            if now >= self._next_checkpoint or (self._writer.metadata_changed
                                                and now >= self._last_checkpoint + METADATA_CHECKPOINT_S):
                self._checkpoint()
        return len(samples)

    def _on_tag(self, key: str, value, index: int) -> None:
        writer = self._writer
        if key == RX_RATE:
            if not (math.isfinite(float(value)) and float(value) > 0):
                raise ValueError(f"a sample rate must be finite and > 0, not {value!r}")
            if not self.sample_rate and not writer.sample_rate:
                writer.set_sample_rate(float(value))
            elif writer.sample_rate and abs(float(value) - writer.sample_rate) > 1e-6 * writer.sample_rate:
                self.logger.warn(f"rx_rate {float(value):g} at sample {index} differs from the recording's "
                                 f"{writer.sample_rate:g} S/s; SigMF holds one rate, {writer.sample_rate:g} is kept")
        elif key == RX_FREQ:
            self._freq = float(value)
            writer.add_capture(index, frequency_hz=self._freq)
        elif key == RX_TIME:
            stamp = datetime_from_rx_time(value)
            if stamp is not None:
                writer.add_capture(index, frequency_hz=self._freq, datetime=stamp)
        if key in self.annotate_tags:
            count, fields = annotation_from_tag(key, value)
            writer.add_annotation(index, count, **fields)

    def _on_annotation(self, msg) -> None:
        value = to_python(msg)
        with self._lock:
            if self._writer is None:
                self.logger.warn("annotation message before the flowgraph started; ignored")
                return
            if not isinstance(value, dict):
                self._skip("an annotation message", TypeError(f"the annotations port takes PMT dicts, got {msg}"))
                return
            try:
                start = value.get("sample_start", value.get("start"))
                index = int(start) - self._origin if start is not None else self.nitems_read(0) - self._origin
                count, fields = annotation_from_tag(ANNOTATION, value)
                self._writer.add_annotation(index, count, **fields)
            except (RecordingError, TypeError, ValueError, OverflowError) as exc:
                self._skip("an annotation message", exc)

    def _skip(self, what: str, exc: BaseException) -> None:
        """A value that would make the metadata invalid: logged, left out and counted in the metadata
        (``diffwireless:skipped_values``), never allowed to end the recording (caller holds the lock)."""
        self.skipped += 1
        self.logger.warn(f"{what} not recorded ({self.skipped} so far): {exc}")
        self._writer.set_global(skipped_values=self.skipped)

    def stop(self) -> bool:
        with self._lock:
            if self._writer is not None:
                try:
                    meta = self._writer.close()
                except Exception as exc:  # noqa: BLE001 - an exception out of stop() aborts the whole process
                    self.logger.error(f"{self.meta_path}: metadata not written ({self._writer.num_samples} samples "
                                      f"are in {self._writer.data_path}): {type(exc).__name__}: {exc}")
                    return True
                self.logger.info(f"wrote {self._writer.num_samples} samples to {meta}"
                                 + (f"; {self.skipped} tag or message values left out" if self.skipped else ""))
        return True
