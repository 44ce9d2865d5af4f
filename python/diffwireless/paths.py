"""Where the shipped data lives: the bundled demo recording (package data) and the model folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from diffwireless.errors import RecordingError

_PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = _PACKAGE_DIR / "data"
DEMO_RECORDING = "demo_qpsk_bursts"


def bundled_recording(name: str = DEMO_RECORDING) -> str:
    """Path of the ``.sigmf-meta`` of a recording shipped with the package (default: the demo recording).

    Raises:
        RecordingError: no such bundled recording; the message lists the ones there are.
    """
    meta = DATA_DIR / f"{name}.sigmf-meta"
    if not meta.is_file():
        there = sorted(p.name[: -len(".sigmf-meta")] for p in DATA_DIR.glob("*.sigmf-meta"))
        raise RecordingError(f"no bundled recording '{name}' in {DATA_DIR}; bundled: {', '.join(there) or 'none'}")
    return str(meta)


def _installed(name: str) -> Path | None:
    """A folder recorded by the CMake install (None in a source tree or a pip install)."""
    try:
        from diffwireless import _install_paths  # written by the CMake install
    except ImportError:
        return None
    value = getattr(_install_paths, name, None)
    return None if value is None else Path(value)


def _source_tree(folder: str) -> Path | None:
    """A folder of the source tree this package runs from (an editable install); None when installed."""
    root = _PACKAGE_DIR.parent.parent
    return root / folder if (root / "gr-diffwireless").is_dir() and (root / folder).is_dir() else None


def _prefix(folder: str) -> Path:
    """A folder under the environment's prefix, where ``pip install .`` puts the data files."""
    return Path(sys.prefix) / folder


def model_dir() -> Path:
    """The folder of shipped models: ``$DIFFWIRELESS_MODEL_DIR``, else the installed one, else the source tree's."""
    env = os.environ.get("DIFFWIRELESS_MODEL_DIR")
    if env:
        return Path(env)
    return _installed("MODEL_DIR") or _source_tree("models") or _prefix("share/gr-diffwireless/models")


def grc_blocks_dir() -> Path:
    """The folder of the GRC block definitions (``diffwireless_*.block.yml``): installed, else the source tree's."""
    return _installed("GRC_BLOCKS_DIR") or _source_tree("grc") or _prefix("share/gnuradio/grc/blocks")


def examples_dir() -> Path:
    """The folder of the example flowgraphs (``*.grc``): installed, else the source tree's ``apps/``."""
    return _installed("EXAMPLES_DIR") or _source_tree("apps") or _prefix("share/gr-diffwireless/examples")
