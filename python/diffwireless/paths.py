"""Where the shipped data lives: the bundled demo recording (package data) and the model folder."""

from __future__ import annotations

import os
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


def model_dir() -> Path:
    """The folder of shipped models: ``$DIFFWIRELESS_MODEL_DIR``, else the installed one, else the source tree's."""
    env = os.environ.get("DIFFWIRELESS_MODEL_DIR")
    if env:
        return Path(env)
    try:
        from diffwireless import _install_paths  # written by the CMake install

        return Path(_install_paths.MODEL_DIR)
    except ImportError:
        return _PACKAGE_DIR.parent.parent / "models"
