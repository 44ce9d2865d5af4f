"""Conversion between PMT and the plain Python values the core library uses for tags and messages."""

from __future__ import annotations

from typing import Any

import pmt

from diffwireless.tags import RX_TIME


def to_pmt(key: str, value: Any) -> pmt.pmt_t:
    """A tag value as PMT; ``rx_time`` is a (uint64 seconds, double fraction) tuple, as gr-uhd writes it."""
    if key == RX_TIME:
        seconds, frac = value
        return pmt.make_tuple(pmt.from_uint64(int(seconds)), pmt.from_double(float(frac)))
    if isinstance(value, float):
        return pmt.from_double(value)
    return pmt.to_pmt(value)


def to_python(value: pmt.pmt_t) -> Any:
    """A PMT as a Python value; PMT dicts become dicts with string keys, symbols strings, tuples tuples."""
    return pmt.to_python(value)


def dict_to_pmt(d: dict[str, Any]) -> pmt.pmt_t:
    """A PMT dict of a Python dict with string keys, each value by :func:`to_pmt` (tag and message payloads)."""
    out = pmt.make_dict()
    for key, value in d.items():
        out = pmt.dict_add(out, pmt.intern(key), to_pmt(key, value))
    return out
