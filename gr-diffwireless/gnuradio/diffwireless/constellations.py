"""GNU Radio constellation objects for the core's constellations (for flowgraphs and GRC variables)."""

from __future__ import annotations

import numpy as np
from gnuradio import digital

from diffwireless.constellations import CONSTELLATIONS, Constellation, get_constellation


def link_constellation(name: str) -> Constellation:
    """The core constellation ``name`` (unit power; ``.gr_scale``, ``.order``, ``.bits_per_symbol``)."""
    return get_constellation(name)


def gr_constellation(name: str | Constellation):
    """The ``gnuradio.digital`` constellation object whose point order and bits the core's ``name`` follows
    (its points are the core's times ``gr_scale``)."""
    c = name if isinstance(name, Constellation) else get_constellation(name)
    return eval(c.gr_constructor, {"digital": digital})  # noqa: S307 - a constant of the core's own table


def core_constellation(value) -> Constellation:
    """The core constellation of ``value``: a GNU Radio constellation object, as the stock blocks take it (its
    points, in their order, those of one of the core's constructors), or a core name (``'16qam'``).

    Raises:
        ValueError: an object whose points are none of the core's (the message lists what is supported).
    """
    if isinstance(value, (str, Constellation)):
        return value if isinstance(value, Constellation) else get_constellation(value)
    points = getattr(value, "points", None)
    if points is None:
        raise ValueError(f"constellation must be a GNU Radio constellation object or a name, got {value!r}")
    pts = np.asarray(points(), dtype=np.complex128)
    for c in CONSTELLATIONS.values():
        if len(pts) == c.order and np.allclose(pts, c.points * c.gr_scale, atol=1e-6):
            return c
    supported = "; ".join(f"{c.name}: {c.gr_constructor}" for c in CONSTELLATIONS.values())
    raise ValueError(f"a constellation of {len(pts)} points that is none of the supported ones ({supported})")
