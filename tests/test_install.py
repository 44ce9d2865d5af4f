"""The CMake OOT install: to a temporary prefix, importable as gnuradio.diffwireless, blocks found by grcc."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import APPS_DIR, ROOT, grcc


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    build, prefix = tmp_path_factory.mktemp("build"), tmp_path_factory.mktemp("prefix")
    for cmd in (["cmake", "-S", str(ROOT), "-B", str(build), f"-DCMAKE_INSTALL_PREFIX={prefix}"],
                ["cmake", "--build", str(build)], ["cmake", "--install", str(build)]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout}\n{proc.stderr}"
    return prefix


def _site_dir(prefix: Path) -> Path:
    found = [p.parent for p in prefix.glob("lib/python3*/*-packages/diffwireless")]
    assert len(found) == 1, f"core package not installed under {prefix}: {found}"
    return found[0]


def test_installed_modules_import_from_the_prefix(prefix):
    site = _site_dir(prefix)
    assert (site / "gnuradio" / "diffwireless" / "sigmf_source.py").is_file()
    # Debian's interpreter, outside the venv (no .pth pointing at the source tree); the venv's site-packages come
    # last only for the pip dependencies (sigmf).
    env = dict(os.environ, PYTHONPATH=f"{site}:{sysconfig.get_paths()['purelib']}")
    env.pop("VIRTUAL_ENV", None)
    code = ("import sys, diffwireless; assert 'gnuradio' not in sys.modules; "
            "from gnuradio import diffwireless as dw; print(dw.__file__); print(diffwireless.__file__); "
            "print(diffwireless.paths.model_dir()); print(dw.open_recording(dw.bundled_recording()).num_samples); "
            "blk = dw.diffusion_denoiser('iq_denoiser_qpsk_sps4', device='cpu'); "
            "import diffwireless.models as m; print(m.resolve_model_path('iq_denoiser_qpsk_sps4'))")
    proc = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert proc.returncode == 0, proc.stderr
    block_file, core_file, model_dir, n, shipped_model = proc.stdout.split()
    assert block_file.startswith(str(site)) and core_file.startswith(str(site))
    assert model_dir == str(prefix / "share/gr-diffwireless/models") and Path(model_dir, "README.md").is_file()
    assert int(n) == 120_000
    assert shipped_model == str(prefix / "share/gr-diffwireless/models/iq_denoiser_qpsk_sps4.safetensors")


def test_grcc_finds_the_installed_blocks(prefix, tmp_path):
    blocks_dir = prefix / "share/gnuradio/grc/blocks"
    assert sorted(p.name for p in blocks_dir.glob("diffwireless_*.block.yml")) == \
        sorted(p.name for p in (ROOT / "grc").glob("*.block.yml"))
    for grc in (prefix / "share/gr-diffwireless/examples").glob("*.grc"):
        grcc(grc, tmp_path, blocks_path=blocks_dir)


def test_installed_command_line_tools_run(prefix):
    site = _site_dir(prefix)
    env = dict(os.environ, PYTHONPATH=f"{site}:{sysconfig.get_paths()['purelib']}")
    proc = subprocess.run([str(prefix / "bin/dw-replay")], capture_output=True, text=True, env=env, cwd="/",
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "120000 samples out of 120000 in (lossless)" in proc.stdout
