"""Shared fixtures: paths, a grcc compiler for apps/*.grc, and recordings made on the fly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_CAPTURES = ROOT.parent / "shared" / "captures"
GRC_DIR = ROOT / "grc"
APPS_DIR = ROOT / "apps"


def grcc(grc_file: Path, out_dir: Path, blocks_path: Path = GRC_DIR, env_extra: dict | None = None) -> Path:
    """Compile a .grc with GNU Radio's grcc (run under this interpreter); returns the generated .py."""
    env = dict(os.environ, GRC_BLOCKS_PATH=str(blocks_path), **(env_extra or {}))
    proc = subprocess.run([sys.executable, "/usr/bin/grcc", "-o", str(out_dir), str(grc_file)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, f"grcc failed on {grc_file.name}:\n{proc.stdout}\n{proc.stderr}"
    generated = out_dir / f"{_flowgraph_id(grc_file)}.py"
    assert generated.is_file(), f"grcc wrote no {generated.name}:\n{proc.stdout}"
    return generated


def _flowgraph_id(grc_file: Path) -> str:
    import yaml

    return yaml.safe_load(grc_file.read_text())["options"]["parameters"]["id"]


@pytest.fixture
def make_recording(tmp_path):
    """Write a SigMF recording with the core writer: ``make_recording(name, samples, datatype, ...)`` -> meta path."""
    from diffwireless import SigMFWriter

    def _make(name: str, samples: np.ndarray, datatype: str = "cf32_le", sample_rate: float = 1e6,
              captures=(), annotations=()) -> Path:
        with SigMFWriter(tmp_path / name, datatype, sample_rate) as writer:
            writer.write(samples)
            for cap in captures:
                writer.add_capture(**cap)
            for ann in annotations:
                writer.add_annotation(**ann)
        return writer.meta_path

    return _make


def random_iq(n: int, seed: int = 0, scale: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (scale * (rng.standard_normal(n) + 1j * rng.standard_normal(n)) / np.sqrt(2)).astype(np.complex64)


@pytest.fixture(scope="session")
def qapp():
    """The Qt application the live views draw in (offscreen unless a display is set: ``make test`` sets
    QT_QPA_PLATFORM=offscreen)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PyQt5 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
