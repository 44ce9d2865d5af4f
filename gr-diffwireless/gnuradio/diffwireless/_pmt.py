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
    return _value_to_pmt(value)


_INT64 = 1 << 63


def _value_to_pmt(value: Any) -> pmt.pmt_t:
    """``pmt.to_pmt`` but for integers out of PMT's int64 (a SigMF annotation may hold any JSON number): uint64
    where it fits, else the exact decimal string; inside dicts, lists and tuples too."""
    if isinstance(value, float):
        return pmt.from_double(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
        return pmt.from_uint64(value) if 0 <= value < 2 * _INT64 else pmt.intern(str(value))
    if isinstance(value, dict):
        out = pmt.make_dict()
        for k, v in value.items():
            out = pmt.dict_add(out, _value_to_pmt(k), _value_to_pmt(v))
        return out
    if isinstance(value, (list, tuple)):
        vec = pmt.make_vector(len(value), pmt.PMT_NIL)
        for i, v in enumerate(value):
            pmt.vector_set(vec, i, _value_to_pmt(v))
        return pmt.to_tuple(vec) if isinstance(value, tuple) else vec
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
