"""GNU Radio constellation objects for the core's constellations (for flowgraphs and GRC variables)."""

from __future__ import annotations

from gnuradio import digital

from diffwireless.constellations import Constellation, get_constellation


def link_constellation(name: str) -> Constellation:
    """The core constellation ``name`` (unit power; ``.gr_scale``, ``.order``, ``.bits_per_symbol``)."""
    return get_constellation(name)


def gr_constellation(name: str | Constellation):
    """The ``gnuradio.digital`` constellation object whose point order and bits the core's ``name`` follows
    (its points are the core's times ``gr_scale``)."""
    c = name if isinstance(name, Constellation) else get_constellation(name)
    return eval(c.gr_constructor, {"digital": digital})  # noqa: S307 - a constant of the core's own table
