"""IQ recordings: SigMF (read and write) and raw files with an explicit format (read).

Reading is lazy (a read-only memory map) and lossless: ``read(start, count)`` returns exactly the samples asked for,
decoded to complex64 at full scale 1.0 (see :mod:`diffwireless.datatypes`), and a whole replay yields
``num_samples`` samples. Metadata is checked when the file is opened, so a bad recording fails before any sample is
produced, with one message naming the file and the cause.

SigMF metadata is validated against the SigMF schema by the ``sigmf`` package; the writer also hands its metadata to
that package, which validates and serialises it.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from diffwireless.datatypes import IQFormat, parse_datatype
from diffwireless.errors import DatatypeError, RecordingError

META_EXT = ".sigmf-meta"
DATA_EXT = ".sigmf-data"
# Namespace of the fields this project adds to SigMF metadata; declared in core:extensions when used.
EXTENSION_NAMESPACE = "diffwireless"
# Global field of a recording being written (a checkpoint's metadata): absent once the writer closed it.
IN_PROGRESS = f"{EXTENSION_NAMESPACE}:in_progress"


@dataclass(frozen=True)
class Capture:
    """One SigMF capture segment: the samples from ``sample_start`` on share these RF settings.

    Attributes:
        sample_start: index of the segment's first sample in the recording.
        frequency_hz: centre frequency, or None when the recording does not say.
        datetime: ISO-8601 UTC time of the first sample (``core:datetime``), or None.
        fields: every field of the segment as written in the metadata (full keys, e.g. ``core:frequency``).
    """

    sample_start: int
    frequency_hz: float | None = None
    datetime: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Annotation:
    """One SigMF annotation.

    Attributes:
        sample_start: index of the first annotated sample.
        sample_count: number of samples annotated, or None when the metadata does not say.
        fields: every field as written (full keys: ``core:label``, ``core:comment``, ``core:freq_lower_edge``, ...),
            ``core:sample_start`` and ``core:sample_count`` excluded.
    """

    sample_start: int
    sample_count: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str | None:
        return self.fields.get("core:label")


class Recording:
    """A readable recording: samples plus the metadata a receiver needs.

    Attributes:
        path: the data file.
        datatype: sample format of the data file.
        sample_rate: samples per second, or None when unknown.
        num_samples: samples in the recording.
        captures: capture segments, ordered by ``sample_start``; at least one, starting at 0.
        annotations: annotations, ordered by ``sample_start``.
        description: free text from the metadata ('' when none).
        in_progress: the metadata is a recorder's checkpoint, never closed (its process was killed or the disk
            filled): the samples are all readable, the data file's hash and anything after the checkpoint are not.
    """

    path: Path
    datatype: IQFormat
    sample_rate: float | None
    num_samples: int
    captures: list[Capture]
    annotations: list[Annotation]
    description: str
    in_progress: bool = False

    def __init__(self) -> None:
        self._memmap: np.memmap | None = None
        # (first sample, byte offset of that sample) per contiguous block of samples in the data file.
        self._segments: list[tuple[int, int]] = [(0, 0)]

    def _map(self, data_path: Path, first_byte: int, n_bytes: int) -> None:
        if n_bytes == 0:
            self._memmap = None
            return
        self._memmap = np.memmap(data_path, dtype=np.uint8, mode="r", offset=first_byte, shape=(n_bytes,))
        self._map_offset = first_byte

    def read(self, start: int, count: int) -> np.ndarray:
        """Samples ``start .. start+count-1`` as complex64, shape ``(n,)`` with ``n = min(count, num_samples-start)``.

        Raises:
            RecordingError: ``start`` or ``count`` is negative, or ``start`` is past the end.
        """
        if start < 0 or count < 0:
            raise RecordingError(f"{self.path}: read(start={start}, count={count}) needs non-negative arguments")
        if start > self.num_samples:
            raise RecordingError(f"{self.path}: read starts at sample {start}, past the end ({self.num_samples})")
        count = min(count, self.num_samples - start)
        if count == 0:
            return np.zeros(0, dtype=np.complex64)
        parts = []
        size = self.datatype.sample_size
        pos, end = start, start + count
        for i, (seg_start, seg_byte) in enumerate(self._segments):
            seg_end = self._segments[i + 1][0] if i + 1 < len(self._segments) else self.num_samples
            if seg_end <= pos:
                continue
            stop = min(end, seg_end)
            lo = seg_byte - self._map_offset + (pos - seg_start) * size
            raw = self._memmap[lo: lo + (stop - pos) * size]
            parts.append(self.datatype.decode(raw.view(self.datatype.component_dtype)))
            pos = stop
            if pos >= end:
                break
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def iter_chunks(self, chunk_size: int = 1 << 16):
        """Yield ``(start, samples)`` over the whole recording in order, ``chunk_size`` samples at a time."""
        for start in range(0, self.num_samples, chunk_size):
            yield start, self.read(start, chunk_size)

    def close(self) -> None:
        """Release the memory map (reads after this fail)."""
        if self._memmap is not None:
            # np.memmap has no close(); dropping the last reference unmaps it.
            self._memmap = None

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def summary_line(self) -> str:
        rate = f"{self.sample_rate:g} S/s" if self.sample_rate else "rate unknown"
        freqs = sorted({c.frequency_hz for c in self.captures if c.frequency_hz is not None})
        freq = ", ".join(f"{f / 1e6:g} MHz" for f in freqs) or "frequency unknown"
        return (f"{self.path.name}: {self.num_samples} samples {self.datatype.name}, {rate}, {freq}, "
                f"{len(self.captures)} capture(s), {len(self.annotations)} annotation(s)"
                + ("; not closed by its recorder (killed?): metadata as of its last checkpoint" if self.in_progress
                   else ""))


def sigmf_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """The (meta, data) file pair of a SigMF recording given either file or the base name without extension."""
    p = Path(path)
    if p.name.endswith(META_EXT) or p.name.endswith(DATA_EXT):
        base = p.with_name(p.name.rsplit(".", 1)[0])
    else:
        base = p
    return base.with_name(base.name + META_EXT), base.with_name(base.name + DATA_EXT)


class SigMFRecording(Recording):
    """A SigMF recording (``NAME.sigmf-meta`` + ``NAME.sigmf-data``), checked on open.

    Supports every datatype of :mod:`diffwireless.datatypes`, several capture segments, ``core:header_bytes`` in
    captures and ``core:trailing_bytes`` (non-conforming datasets), and single-channel data.

    Raises:
        RecordingError: with the file name and the cause, when the meta file is missing or not JSON, fails the
            SigMF schema, has an unknown datatype, when the data file is missing, its length is not a whole number
            of samples, or a capture starts past its end.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        super().__init__()
        try:
            self._load(path)
        except RecordingError:
            raise
        except (RecursionError, OverflowError, ValueError, TypeError, KeyError, AttributeError) as exc:
            # Metadata that opens but is unusable further on (nesting too deep, numbers out of range, a dataset
            # name that is no file name): one error naming the file, never a traceback.
            raise RecordingError(f"{sigmf_paths(path)[0]}: unusable metadata ({type(exc).__name__}: "
                                 f"{str(exc)[:200]})") from None

    def _load(self, path: str | os.PathLike) -> None:
        meta_path, data_path = sigmf_paths(path)
        if not meta_path.is_file():
            raise RecordingError(f"SigMF metadata file not found: {meta_path}")
        try:
            metadata = json.loads(meta_path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise RecordingError(f"{meta_path}: metadata is not UTF-8 text ({exc.reason})") from None
        except json.JSONDecodeError as exc:
            raise RecordingError(
                f"{meta_path}: metadata is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        if not isinstance(metadata, dict) or not isinstance(metadata.get("global"), dict):
            raise RecordingError(f"{meta_path}: metadata has no 'global' object; this is not SigMF metadata")
        metadata.setdefault("captures", [])
        metadata.setdefault("annotations", [])
        self.metadata = metadata
        self.meta_path = meta_path
        glob = metadata["global"]
        try:
            self.datatype = parse_datatype(glob.get("core:datatype"))
        except DatatypeError as exc:
            raise RecordingError(f"{meta_path}: {exc}") from None
        _validate_schema(metadata, meta_path)
        _check_numbers(metadata, meta_path)
        from diffwireless.tags import parse_datetime

        for capture in metadata["captures"]:
            if "core:datetime" in capture:
                try:
                    seconds, _ = parse_datetime(str(capture["core:datetime"]))
                except ValueError as exc:
                    raise RecordingError(f"{meta_path}: capture at sample {capture.get('core:sample_start', 0)}: "
                                         f"{exc}") from None
                if seconds < 0:
                    raise RecordingError(f"{meta_path}: capture at sample {capture.get('core:sample_start', 0)}: "
                                         f"core:datetime {capture['core:datetime']} is before 1970, which an "
                                         "rx_time tag cannot hold")
        if int(glob.get("core:num_channels", 1)) != 1:
            raise RecordingError(
                f"{meta_path}: {glob['core:num_channels']} interleaved channels; only single-channel recordings "
                "are supported"
            )
        dataset = glob.get("core:dataset")
        if dataset:
            # A non-conforming dataset names its data file, relative to the meta file.
            data_path = meta_path.with_name(dataset)
        if not data_path.is_file():
            raise RecordingError(f"SigMF data file not found: {data_path} (metadata: {meta_path.name})")
        self.path = data_path
        self.sample_rate = float(glob["core:sample_rate"]) if "core:sample_rate" in glob else None
        if self.sample_rate is not None and not (math.isfinite(self.sample_rate) and self.sample_rate > 0):
            # NaN passes the sigmf package's schema check; a pacing or a duration computed from it never ends.
            raise RecordingError(f"{meta_path}: core:sample_rate must be finite and > 0, got {self.sample_rate}")
        self.description = str(glob.get("core:description", ""))
        self.in_progress = glob.get(IN_PROGRESS) is True

        captures_meta = sorted(metadata["captures"], key=lambda c: int(c.get("core:sample_start", 0)))
        if not captures_meta or int(captures_meta[0].get("core:sample_start", 0)) != 0:
            captures_meta.insert(0, {"core:sample_start": 0})
        file_size = data_path.stat().st_size
        header_total = sum(int(c.get("core:header_bytes", 0)) for c in captures_meta)
        trailing = int(glob.get("core:trailing_bytes", 0))
        sample_bytes = file_size - header_total - trailing
        size = self.datatype.sample_size
        if sample_bytes < 0:
            raise RecordingError(
                f"{data_path}: {file_size} bytes, fewer than the {header_total + trailing} header and trailing "
                "bytes the metadata declares"
            )
        self.num_samples, remainder = divmod(sample_bytes, size)
        if remainder and self.in_progress and not trailing:
            remainder = 0  # a recorder killed in the middle of a write: its last, partial sample is left out
        if remainder:
            raise RecordingError(
                f"{data_path}: {sample_bytes} bytes of samples is not a multiple of the {size}-byte sample size of "
                f"{self.datatype.name} ({remainder} bytes left over); wrong datatype or a truncated file?"
            )
        # Byte offset of each capture's first sample: the samples of earlier captures, then every header so far.
        self._segments = []
        byte, prev_start = 0, 0
        for cap in captures_meta:
            start = int(cap.get("core:sample_start", 0))
            if start > self.num_samples:
                raise RecordingError(
                    f"{meta_path}: a capture starts at sample {start}, past the end of the data ({self.num_samples} "
                    "samples)"
                )
            byte += (start - prev_start) * size + int(cap.get("core:header_bytes", 0))
            self._segments.append((start, byte))
            prev_start = start
        self.captures = [
            Capture(
                sample_start=int(c.get("core:sample_start", 0)),
                frequency_hz=float(c["core:frequency"]) if "core:frequency" in c else None,
                datetime=c.get("core:datetime"),
                fields=dict(c),
            )
            for c in captures_meta
        ]
        self.annotations = [
            Annotation(
                sample_start=int(a["core:sample_start"]),
                sample_count=int(a["core:sample_count"]) if "core:sample_count" in a else None,
                fields={k: v for k, v in a.items() if k not in ("core:sample_start", "core:sample_count")},
            )
            for a in sorted(metadata["annotations"], key=lambda a: int(a["core:sample_start"]))
        ]
        first_byte = self._segments[0][1]
        last_start, last_byte = self._segments[-1]
        end_byte = last_byte + (self.num_samples - last_start) * size
        self._map(data_path, first_byte, end_byte - first_byte)


# The numeric fields a reader uses: counts and offsets (whole numbers, >= 0 and below 2^63, or >= 1) and
# frequencies (finite). JSON allows NaN, Infinity and integers of any size, which the sigmf package's schema check
# lets through.
_COUNT_FIELDS = {"global": ("core:trailing_bytes", "core:offset"),
                 "captures": ("core:sample_start", "core:header_bytes", "core:global_index"),
                 "annotations": ("core:sample_start", "core:sample_count")}
_FREQUENCY_FIELDS = {"global": (), "captures": ("core:frequency",),
                     "annotations": ("core:freq_lower_edge", "core:freq_upper_edge")}
_MAX_COUNT = (1 << 63) - 1


def _check_numbers(metadata: dict, meta_path: Path) -> None:
    """Every numeric field a reader uses is in range (see ``_COUNT_FIELDS``); the error names the file, the
    entry and the field."""
    entries = [("global", 0, metadata["global"])]
    entries += [(section, i, e) for section in ("captures", "annotations") for i, e in enumerate(metadata[section])]
    for section, i, entry in entries:
        where = "global" if section == "global" else f"{section}[{i}]"
        for key in _COUNT_FIELDS[section]:
            value = entry.get(key)
            if value is not None and not (isinstance(value, int) and not isinstance(value, bool)
                                          and 0 <= value <= _MAX_COUNT):
                raise RecordingError(f"{meta_path}: {where} {key} must be a whole number from 0 to 2^63 - 1, "
                                     f"got {value!r:.60}")
        for key in _FREQUENCY_FIELDS[section]:
            value = entry.get(key)
            if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                          and math.isfinite(value)):
                raise RecordingError(f"{meta_path}: {where} {key} must be a finite number of Hz, got {value!r:.60}")
    channels = metadata["global"].get("core:num_channels", 1)
    if not (isinstance(channels, int) and not isinstance(channels, bool) and channels >= 1):
        raise RecordingError(f"{meta_path}: global core:num_channels must be a whole number >= 1, got {channels!r:.60}")


@lru_cache(maxsize=1)
def _schema_validator():
    """The SigMF schema's validator, built once (``sigmf.validate`` checks the schema itself on every call, some
    milliseconds: too slow for each annotation a recorder adds)."""
    import jsonschema
    from sigmf import schema

    ref = schema.get_schema()
    return jsonschema.validators.validator_for(ref)(ref)


def _validate_schema(metadata: dict, meta_path: Path) -> None:
    """Validate against the SigMF schema with the ``sigmf`` package; schema errors become RecordingError."""
    import jsonschema
    from sigmf import validate as sigmf_validate

    with warnings.catch_warnings():
        # Undeclared extension namespaces are a deprecation warning in sigmf, not an error; many files have them.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            sigmf_validate.validate(metadata)
        except jsonschema.exceptions.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "top level"
            raise RecordingError(f"{meta_path}: not valid SigMF metadata at {where}: {exc.message}") from None


class RawRecording(Recording):
    """A headerless file of samples in a stated format (e.g. a GNU Radio ``file_sink`` output is ``cf32_le``).

    Args:
        path: the data file.
        datatype: its sample format, e.g. ``"cf32_le"``, ``"ci16_le"``, ``"cu8"``.
        sample_rate: samples per second, or None when unknown.
        frequency_hz: centre frequency, or None when unknown.

    Raises:
        RecordingError: the file is missing, the datatype is unknown, or the length is not a whole number of samples.
    """

    def __init__(self, path: str | os.PathLike, datatype: str, sample_rate: float | None = None,
                 frequency_hz: float | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise RecordingError(f"raw IQ file not found: {self.path}")
        try:
            self.datatype = parse_datatype(datatype)
        except DatatypeError as exc:
            raise RecordingError(f"{self.path}: {exc}") from None
        size = self.path.stat().st_size
        self.num_samples, remainder = divmod(size, self.datatype.sample_size)
        if remainder:
            raise RecordingError(
                f"{self.path}: {size} bytes is not a multiple of the {self.datatype.sample_size}-byte sample size of "
                f"{self.datatype.name} ({remainder} bytes left over); wrong datatype or a truncated file?"
            )
        self.sample_rate = float(sample_rate) if sample_rate else None
        fields = {"core:sample_start": 0}
        if frequency_hz:
            fields["core:frequency"] = float(frequency_hz)
        self.captures = [Capture(0, float(frequency_hz) if frequency_hz else None, None, fields)]
        self.annotations = []
        self.description = ""
        self._map(self.path, 0, self.num_samples * self.datatype.sample_size)


def open_recording(path: str | os.PathLike, datatype: str | None = None, sample_rate: float | None = None,
                   frequency_hz: float | None = None) -> Recording:
    """Open a recording for reading.

    With ``datatype`` None (or ''), ``path`` is a SigMF recording (meta file, data file, or base name). With a
    ``datatype``, ``path`` is a raw file in that format and ``sample_rate``/``frequency_hz`` describe it.
    """
    if datatype:
        return RawRecording(path, datatype, sample_rate, frequency_hz)
    return SigMFRecording(path)


def check_writable(path: str | os.PathLike, overwrite: bool, how: str = "allow overwriting") -> tuple[Path, Path]:
    """The (meta, data) pair a new recording at ``path`` would write, after checking it can be written.

    Raises:
        RecordingError: the folder does not exist or files cannot be created in it (tried: a probe file is made
            and removed), or a file of the pair exists and ``overwrite`` is False (``how`` says how the caller
            allows overwriting, e.g. a block's parameter name).
    """
    meta_path, data_path = sigmf_paths(path)
    if not meta_path.parent.is_dir():
        raise RecordingError(f"cannot write {meta_path}: folder {meta_path.parent} does not exist")
    if not overwrite:
        for p in (meta_path, data_path):
            if p.exists():
                raise RecordingError(f"{p} exists; remove it or {how}")
    probe = data_path.with_name(data_path.name + ".probe")
    try:  # permission bits do not say it all (root, read-only mounts): create a file there
        probe.open("xb").close()
        probe.unlink()
    except FileExistsError:
        pass  # a stale probe: the folder is writable
    except OSError as exc:
        raise RecordingError(f"cannot write {data_path}: {exc.strerror or exc}") from None
    return meta_path, data_path


class SigMFWriter:
    """Writes a SigMF recording sample block by sample block; the metadata is written by :meth:`close`.

    Args:
        path: meta file, data file, or base name of the recording to create.
        datatype: sample format of the data file (``cf32_le`` keeps samples exactly; integer formats scale and clip).
        sample_rate: samples per second; may be set later with :meth:`set_sample_rate` (e.g. from an ``rx_rate`` tag).
        description, author, hw, recorder: ``core:description``, ``core:author``, ``core:hw`` (the radio),
            ``core:recorder`` (the software that recorded), each omitted when empty.
        overwrite: replace an existing recording; when False an existing file is an error.
        checksum: store ``core:sha512`` of the data file in the metadata.

    Raises:
        RecordingError: the datatype is unknown, the folder does not exist, or the files exist and ``overwrite`` is
            False.
    """

    def __init__(self, path: str | os.PathLike, datatype: str = "cf32_le", sample_rate: float | None = None,
                 description: str = "", author: str = "", hw: str = "", recorder: str = "",
                 overwrite: bool = False, checksum: bool = True) -> None:
        self.meta_path, self.data_path = check_writable(path, overwrite)
        try:
            self.datatype = parse_datatype(datatype)
        except DatatypeError as exc:
            raise RecordingError(f"{self.meta_path}: {exc}") from None
        self.sample_rate = float(sample_rate) if sample_rate else None
        self.global_fields: dict[str, Any] = {}
        for key, value in (("core:description", description), ("core:author", author), ("core:hw", hw),
                           ("core:recorder", recorder)):
            if value:
                self.global_fields[key] = value
        self.checksum = checksum
        self.num_samples = 0
        self._captures: dict[int, dict[str, Any]] = {}
        self._annotations: list[dict[str, Any]] = []
        self._file = open(self.data_path, "wb")
        self._closed = False
        self._changed = True  # metadata not written since the last change (checkpoint)

    def write(self, samples: np.ndarray) -> None:
        """Append samples (shape ``(n,)``, full scale 1.0) to the data file."""
        if self._closed:
            raise RecordingError(f"{self.meta_path}: write after close")
        samples = np.asarray(samples).reshape(-1)
        self._file.write(self.datatype.encode(samples))
        self.num_samples += samples.size

    def set_sample_rate(self, sample_rate: float) -> None:
        """Raises RecordingError for a rate that is not finite and positive (nothing is changed then)."""
        rate = float(sample_rate)
        if not (math.isfinite(rate) and rate > 0):
            raise RecordingError(f"{self.meta_path}: sample rate must be finite and > 0, got {sample_rate!r}")
        self.sample_rate = rate
        self._changed = True

    def add_capture(self, sample_start: int, frequency_hz: float | None = None, datetime: str | None = None,
                    **extra: Any) -> None:
        """Start a capture segment at ``sample_start``; fields given for the same start are merged.

        Raises:
            RecordingError: a capture the SigMF schema refuses, or a value JSON cannot hold exactly (NaN, Inf,
                complex): nothing is added, so the metadata written at the end stays valid.
        """
        fields = dict(self._captures.get(int(sample_start), {"core:sample_start": int(sample_start)}))
        if frequency_hz is not None:
            fields["core:frequency"] = float(frequency_hz)
        if datetime is not None:
            fields["core:datetime"] = datetime
        fields.update(_namespaced(extra))
        self._check_entry("captures", fields)
        self._captures[int(sample_start)] = fields
        self._changed = True

    def add_annotation(self, sample_start: int, sample_count: int | None = None, **fields: Any) -> None:
        """Annotate ``sample_count`` samples from ``sample_start``.

        ``fields`` use SigMF names with or without the ``core:`` prefix (``label``, ``comment``,
        ``freq_lower_edge``, ``freq_upper_edge``, ...); names outside the core namespace are stored under
        ``diffwireless:`` unless they carry a namespace of their own. Values must be JSON-serialisable.

        Raises:
            RecordingError: an annotation the SigMF schema refuses (a negative start or count, a frequency edge out
                of range, ...), or a value JSON cannot hold exactly (NaN, Inf, complex): nothing is added, so the
                metadata written at the end stays valid.
        """
        ann: dict[str, Any] = {"core:sample_start": int(sample_start)}
        if sample_count is not None:
            ann["core:sample_count"] = int(sample_count)
        ann.update(_namespaced(fields))
        self._check_entry("annotations", ann)
        self._annotations.append(ann)
        self._changed = True

    def set_global(self, **fields: Any) -> None:
        """Set fields of the metadata's ``global`` object (bare names get the ``diffwireless:`` namespace, as
        :meth:`add_annotation` names them); a None value removes the field.

        Raises:
            RecordingError: a value JSON cannot hold exactly; nothing is changed then.
        """
        named = {(k if ":" in k else f"{EXTENSION_NAMESPACE}:{k}"): v for k, v in fields.items()}
        try:
            json.dumps({k: v for k, v in named.items() if v is not None}, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise RecordingError(f"{self.meta_path}: global fields {named!r} cannot be written as JSON: {exc}") \
                from None
        for key, value in named.items():
            if value is None:
                self.global_fields.pop(key, None)
            else:
                self.global_fields[key] = value
        self._changed = True

    def _check_entry(self, section: str, entry: dict[str, Any]) -> None:
        """Refuse an entry that would make the metadata invalid, before it is added (the schema's own verdict)."""
        try:
            json.dumps(entry, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise RecordingError(f"{self.meta_path}: {section[:-1]} {entry!r} cannot be written as JSON: {exc}") \
                from None
        probe = {"global": {"core:datatype": self.datatype.name, "core:version": "1.2.0"},
                 "captures": [{"core:sample_start": 0}], "annotations": []}
        probe[section] = [entry]
        error = _schema_validator().iter_errors(probe)
        first = next(error, None)
        if first is not None:
            where = "/".join(str(p) for p in first.absolute_path) or "top level"
            raise RecordingError(f"{self.meta_path}: not valid SigMF metadata at {where}: {first.message}")

    def metadata(self, in_progress: bool = False) -> dict[str, Any]:
        """The metadata as it would be written now (validated by :meth:`close`); with ``in_progress`` (the
        checkpoints) the global ``diffwireless:in_progress: true`` says the recording was not closed yet, so a
        recording whose process was killed says so."""
        glob: dict[str, Any] = {"core:datatype": self.datatype.name, "core:version": "1.2.0"}
        if self.sample_rate:
            glob["core:sample_rate"] = self.sample_rate
        glob.update(self.global_fields)
        if in_progress:
            glob[IN_PROGRESS] = True
        captures = [self._captures[k] for k in sorted(self._captures)]
        if not captures or captures[0]["core:sample_start"] != 0:
            captures.insert(0, {"core:sample_start": 0})
        annotations = sorted(self._annotations, key=lambda a: a["core:sample_start"])
        meta = {"global": glob, "captures": captures, "annotations": annotations}
        _declare_extension(meta)
        return meta

    @property
    def metadata_changed(self) -> bool:
        """The metadata changed since it was last written."""
        return self._changed

    def checkpoint(self) -> Path:
        """Flush the samples written so far and, when it changed since the last checkpoint, write the metadata as it
        is now, atomically (a temporary file renamed over the old one), without the data file's hash: a process
        killed after this leaves a readable recording of every sample flushed, with its datatype, rate, captures
        and annotations. :meth:`close` writes the final metadata. Returns the meta path."""
        if self._closed:
            return self.meta_path
        self._file.flush()
        if self._changed:  # every entry was checked against the schema as it was added
            _write_atomically(self.meta_path, json.dumps(self.metadata(in_progress=True), indent=2) + "\n")
            self._changed = False
        return self.meta_path

    def close(self) -> Path:
        """Flush the data file and write the metadata (checked by the ``sigmf`` package). Returns the meta path.

        Safe to call twice.
        """
        if self._closed:
            return self.meta_path
        self._closed = True
        self._file.close()
        from sigmf import SigMFFile

        meta = self.metadata()
        _validate_schema(meta, self.meta_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            # The hash needs a non-empty file (the sigmf package memory-maps it).
            hashed = self.checksum and self.num_samples > 0
            sigmf_file = SigMFFile(metadata=meta, data_file=self.data_path if hashed else None,
                                   skip_checksum=not hashed)
            # SigMFFile adds num_channels/offset defaults and the hash; write through it so the sigmf package
            # serialises what it validated.
            _write_atomically(self.meta_path, sigmf_file.dumps(pretty=True) + "\n")
        return self.meta_path

    def __enter__(self) -> SigMFWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def append_annotations(path: str | os.PathLike, annotations: list[dict[str, Any]]) -> int:
    """Add annotations to a closed SigMF recording (fields as :meth:`SigMFWriter.add_annotation` takes them, with
    ``sample_start`` and optionally ``sample_count``), skipping any already there with the same start, count and
    label; the metadata is validated and rewritten atomically (the data file, and so its hash, is untouched).
    Returns how many were added.

    Raises:
        RecordingError: the recording cannot be read, or an annotation is invalid (nothing is written then).
    """
    meta_path = sigmf_paths(path)[0]
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordingError(f"{meta_path}: cannot be read to add annotations: {exc}") from None
    existing = {(a.get("core:sample_start"), a.get("core:sample_count"), a.get("core:label"))
                for a in metadata.get("annotations", [])}
    added = 0
    for fields in annotations:
        fields = dict(fields)
        entry = {"core:sample_start": int(fields.pop("sample_start"))}
        count = fields.pop("sample_count", None)
        if count is not None:
            entry["core:sample_count"] = int(count)
        entry.update(_namespaced(fields))
        key = (entry["core:sample_start"], entry.get("core:sample_count"), entry.get("core:label"))
        if key in existing:
            continue
        existing.add(key)
        metadata.setdefault("annotations", []).append(entry)
        added += 1
    if not added:
        return 0
    metadata["annotations"].sort(key=lambda a: a["core:sample_start"])
    _declare_extension(metadata)
    try:
        json.dumps(metadata, allow_nan=False)
    except ValueError as exc:
        raise RecordingError(f"{meta_path}: annotations cannot be written as JSON: {exc}") from None
    _validate_schema(metadata, meta_path)
    _write_atomically(meta_path, json.dumps(metadata, indent=2) + "\n")
    return added


def _declare_extension(metadata: dict[str, Any]) -> None:
    """Declare this project's namespace in ``core:extensions`` when any field of ``metadata`` uses it (once)."""
    sections = [metadata["global"], *metadata.get("captures", []), *metadata.get("annotations", [])]
    if not any(k.split(":")[0] == EXTENSION_NAMESPACE for part in sections for k in part if ":" in k):
        return
    from diffwireless import __version__

    extensions = list(metadata["global"].get("core:extensions", []))  # a copy: the caller's list stays as it was
    if not any(isinstance(e, dict) and e.get("name") == EXTENSION_NAMESPACE for e in extensions):
        extensions.append({"name": EXTENSION_NAMESPACE, "version": __version__, "optional": True})
    metadata["global"]["core:extensions"] = extensions


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it, so a reader (or a crash) sees the old
    file or the new one, never half of one; the temporary file is removed when the write fails."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fp:
            fp.write(text)
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _namespaced(fields: dict[str, Any]) -> dict[str, Any]:
    """Give bare field names their SigMF namespace: core names get ``core:``, others ``diffwireless:``. A field
    whose value is None, NaN or infinite is left out: JSON has no NaN/Inf, and a string in its place is not the
    number a reader expects (the schema refuses it for the core's numeric fields)."""
    out = {}
    for key, value in fields.items():
        if value is None or (isinstance(value, (float, np.floating)) and not math.isfinite(value)):
            continue
        if ":" not in key:
            key = f"core:{key}" if key in _CORE_ANNOTATION_FIELDS else f"{EXTENSION_NAMESPACE}:{key}"
        out[key] = value
    return out


_CORE_ANNOTATION_FIELDS = frozenset({
    "label", "comment", "generator", "uuid", "freq_lower_edge", "freq_upper_edge", "frequency", "datetime",
    "global_index", "header_bytes",
})
