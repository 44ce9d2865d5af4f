"""GNU Radio Companion finds every block of gr-diffwireless and compiles every example flowgraph, run from this venv
as ``dw-grc`` / ``make grc`` run it; under a virtual display its window shows the ``[Diffusion Wireless]`` tree."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import APPS_DIR, GRC_DIR

from gnuradio.diffwireless.apps.grc import grc_environment, load_platform

BLOCKS = {yaml.safe_load(p.read_text())["id"]: yaml.safe_load(p.read_text()) for p in GRC_DIR.glob("*.block.yml")}


@pytest.fixture(scope="module")
def platform():
    old = os.environ.get("GRC_BLOCKS_PATH")
    os.environ.update(grc_environment())
    try:
        yield load_platform()
    finally:
        if old is None:
            os.environ.pop("GRC_BLOCKS_PATH", None)
        else:
            os.environ["GRC_BLOCKS_PATH"] = old


def test_grc_environment_puts_the_project_blocks_first():
    env = grc_environment({"GRC_BLOCKS_PATH": "/elsewhere"})
    assert env["GRC_BLOCKS_PATH"].split(os.pathsep) == [str(GRC_DIR), "/elsewhere"]


def test_grc_loads_every_block_without_error(platform):
    grc_platform, problems = platform
    assert problems == []
    ours = {key: block for key, block in grc_platform.blocks.items() if key.startswith("diffwireless_")}
    assert sorted(ours) == sorted(BLOCKS)
    for key, block in ours.items():
        assert block.category[0] == "Diffusion Wireless", key
        assert block.label == BLOCKS[key]["label"]


@pytest.mark.parametrize("grc_file", sorted(p.name for p in APPS_DIR.glob("*.grc")))
def test_grc_compiles_every_example(platform, grc_file, tmp_path):
    grc_platform, _ = platform
    flow_graph, generated = grc_platform.load_and_generate_flow_graph(str(APPS_DIR / grc_file), str(tmp_path))
    assert generated, f"GRC could not generate {grc_file}"
    assert flow_graph.is_valid() and Path(generated).is_file()


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="no Xvfb (make test installs it)")
def test_dw_grc_window_shows_the_block_tree(tmp_path):
    png = tmp_path / "grc.png"
    proc = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1400x900x24", "dw-grc", "--screenshot", str(png),
                           str(APPS_DIR / "anomaly_qt.grc")], capture_output=True, text=True, timeout=180,
                          env=dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The tree's rows as dw-grc prints them: "Label<TAB>block id", indented under their category.
    rows = {line.split("\t")[-1] for line in proc.stdout.splitlines()}
    rows = {row for row in rows if row.startswith("diffwireless_")}
    assert rows == set(BLOCKS), rows ^ set(BLOCKS)
