"""The dw-* tools' ``--json`` reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable


def write_json(path: str | Path, doc: dict[str, Any], default: Callable[[Any], Any] | None = None) -> Path:
    """Write ``doc`` as indented JSON to ``path`` (its folder made when missing); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1, default=default) + "\n", encoding="utf-8")
    return out


def jsonable(value: Any) -> Any:
    """``default`` for :func:`write_json`: numpy scalars and arrays, tuples; anything else as its text."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple)):
        return list(value)
    return str(value)
