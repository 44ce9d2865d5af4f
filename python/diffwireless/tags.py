"""Mapping between recording metadata and stream tags, in plain Python values (the GNU Radio layer converts to PMT).

Tag keys are the ones gr-uhd and gr-soapy use, so downstream blocks work the same on a replay and on live hardware:

- ``rx_rate``: float, samples per second;
- ``rx_freq``: float, centre frequency in Hz;
- ``rx_time``: ``(int seconds, float fractional seconds)`` of the tagged sample, UNIX time (UTC);
- ``annotation``: a dict with the fields of a SigMF annotation (``label``, ``comment``, ``sample_count``, ...; core
  fields without their ``core:`` prefix, others with their namespace), placed on the annotation's first sample.

A replay tags the first sample and every capture boundary with ``rx_rate`` and, when the recording states them,
``rx_freq`` and ``rx_time``; nothing is invented for values the recording does not hold.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from diffwireless.recording import Annotation, Capture, Recording

RX_RATE = "rx_rate"
RX_FREQ = "rx_freq"
RX_TIME = "rx_time"
ANNOTATION = "annotation"
# On the last sample of a finite stream (a replay without repeat): lets windowed blocks flush their last window,
# since GNU Radio does not tell Python blocks that their input has ended. Value: the stream's length in samples.
EOS = "dw_eos"
# Tag keys a recorder turns into capture segments rather than annotations.
CAPTURE_KEYS = (RX_RATE, RX_FREQ, RX_TIME)

_DATETIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})?$")
# rx_time values below this (2001-09-09) are device clocks counted from power-on, not UTC: not written as datetime.
_MIN_UTC_SECONDS = 1_000_000_000


def parse_datetime(text: str) -> tuple[int, float]:
    """``core:datetime`` (ISO-8601, e.g. ``2022-03-27T10:00:00.123456789Z``) to ``(whole seconds, fraction)``.

    The fraction keeps every digit given (nanoseconds and beyond), which a float of the whole time would not.

    Raises:
        ValueError: not an ISO-8601 date and time.
    """
    match = _DATETIME.match(text.strip())
    if match is None:
        raise ValueError(f"not an ISO-8601 datetime: {text!r}")
    zone = match[3] or "Z"
    base = datetime.fromisoformat(match[1] + ("+00:00" if zone == "Z" else zone))
    frac = float("0." + match[2]) if match[2] else 0.0
    return int(base.timestamp()), frac


def format_datetime(seconds: int, frac: float) -> str:
    """``(whole seconds, fraction)`` of UNIX time to ``core:datetime`` with nanosecond resolution."""
    carry, frac = divmod(frac, 1.0)
    seconds = int(seconds) + int(carry)
    nanos = int(round(frac * 1e9))
    if nanos >= 1_000_000_000:
        seconds, nanos = seconds + 1, nanos - 1_000_000_000
    stamp = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos:09d}Z"


def capture_tags(capture: Capture, sample_rate: float | None) -> list[tuple[str, Any]]:
    """Tags for the first sample of a capture segment: ``[(key, value), ...]``."""
    tags: list[tuple[str, Any]] = []
    if sample_rate:
        tags.append((RX_RATE, float(sample_rate)))
    if capture.frequency_hz is not None:
        tags.append((RX_FREQ, float(capture.frequency_hz)))
    if capture.datetime:
        tags.append((RX_TIME, parse_datetime(capture.datetime)))
    return tags


def annotation_tag_value(annotation: Annotation) -> dict[str, Any]:
    """The ``annotation`` tag value of a SigMF annotation (``core:`` prefixes dropped, ``sample_count`` included)."""
    value: dict[str, Any] = {}
    if annotation.sample_count is not None:
        value["sample_count"] = annotation.sample_count
    for key, item in annotation.fields.items():
        value[key[5:] if key.startswith("core:") else key] = item
    return value


def recording_tags(recording: Recording, end_of_stream: bool = False) -> list[tuple[int, str, Any]]:
    """Every tag a replay of ``recording`` carries, as ``(sample index, key, value)`` sorted by index.

    Capture tags come before annotation tags on the same sample; with ``end_of_stream`` the last sample also
    carries ``dw_eos`` (the number of samples), last.
    """
    tags: list[tuple[int, str, Any]] = []
    for cap in recording.captures:
        if cap.sample_start < recording.num_samples or cap.sample_start == 0:
            tags.extend((cap.sample_start, k, v) for k, v in capture_tags(cap, recording.sample_rate))
    for ann in recording.annotations:
        if ann.sample_start < recording.num_samples:
            tags.append((ann.sample_start, ANNOTATION, annotation_tag_value(ann)))
    order = {RX_RATE: 0, RX_FREQ: 1, RX_TIME: 2}
    tags.sort(key=lambda t: (t[0], order.get(t[1], 3)))
    if end_of_stream and recording.num_samples:
        tags.append((recording.num_samples - 1, EOS, int(recording.num_samples)))
    return tags


def annotation_from_tag(key: str, value: Any) -> tuple[int | None, dict[str, Any]]:
    """Turn a stream tag (or an event message) into ``(sample_count, fields)`` for :meth:`SigMFWriter.add_annotation`.

    - a dict value (the ``annotation`` tag, or an event) gives its fields; ``sample_count`` (or ``end - start``, with
      ``start``/``end`` absolute sample indices, as event messages carry) gives the length, and the tag key becomes
      the label when the dict has none;
    - any other value gives a one-sample annotation labelled with the key, the value as its comment.
    """
    if isinstance(value, dict):
        fields = dict(value)
        count = fields.pop("sample_count", None)
        start, end = fields.pop("start", None), fields.pop("end", None)
        if count is None and start is not None and end is not None:
            count = int(end) - int(start)
        fields.pop("sample_start", None)
        if key != ANNOTATION:
            fields.setdefault("label", key)
        return (int(count) if count is not None else None), fields
    return 1, {"label": key, "comment": repr(value) if not isinstance(value, str) else value}


def datetime_from_rx_time(value: Any) -> str | None:
    """``core:datetime`` for an ``rx_time`` tag value, or None when it is a device clock rather than UTC."""
    try:
        seconds, frac = value
        seconds, frac = int(seconds), float(frac)
    except (TypeError, ValueError):
        return None
    if seconds < _MIN_UTC_SECONDS:
        return None
    return format_datetime(seconds, frac)
