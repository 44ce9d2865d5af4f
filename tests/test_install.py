"""Installs as a user makes them: the CMake OOT install to a prefix, and ``pip install .`` (not editable) into a
fresh venv. Each is then run in its documented environment, not through this venv's paths."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import ROOT, grcc

BLOCK_FILES = sorted(p.name for p in (ROOT / "grc").glob("*.block.yml"))
BLOCK_IDS = sorted(name.removesuffix(".block.yml") for name in BLOCK_FILES)


def _clean_env(**extra: str) -> dict:
    """This process's environment without anything that points at this venv or the source tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "GRC_BLOCKS_PATH",
                                                             "DIFFWIRELESS_MODEL_DIR", "DIFFWIRELESS_PYTHON")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    build, prefix = tmp_path_factory.mktemp("build"), tmp_path_factory.mktemp("prefix")
    # The documented configuration: the launchers run an interpreter that imports torch (here: this venv's).
    for cmd in (["cmake", "-S", str(ROOT), "-B", str(build), f"-DCMAKE_INSTALL_PREFIX={prefix}",
                 f"-DDW_PYTHON={sys.executable}"],
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
    for sub in ("apps", "bench", "recipes"):
        assert (site / "gnuradio" / "diffwireless" / sub / "__init__.py").is_file()
    # A prefix other than /usr or /usr/local is on no interpreter's path: PYTHONPATH names it (the README says so).
    code = ("import sys, diffwireless; assert 'gnuradio' not in sys.modules; "
            "from gnuradio import diffwireless as dw; print(dw.__file__); print(diffwireless.__file__); "
            "print(diffwireless.paths.model_dir()); print(dw.open_recording(dw.bundled_recording()).num_samples); "
            "blk = dw.diffusion_denoiser('iq_denoiser_qpsk_sps4'); "
            "import diffwireless.models as m; print(m.resolve_model_path('iq_denoiser_qpsk_sps4'))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_clean_env(PYTHONPATH=str(site)), cwd="/")
    assert proc.returncode == 0, proc.stderr
    block_file, core_file, model_dir, n, shipped_model = proc.stdout.split()
    assert block_file.startswith(str(site)) and core_file.startswith(str(site))
    assert model_dir == str(prefix / "share/gr-diffwireless/models") and Path(model_dir, "README.md").is_file()
    assert int(n) == 120_000
    assert shipped_model == str(prefix / "share/gr-diffwireless/models/iq_denoiser_qpsk_sps4.safetensors")


def test_grcc_finds_the_installed_blocks(prefix, tmp_path):
    blocks_dir = prefix / "share/gnuradio/grc/blocks"
    assert sorted(p.name for p in blocks_dir.glob("diffwireless_*.block.yml")) == BLOCK_FILES
    for grc in (prefix / "share/gr-diffwireless/examples").glob("*.grc"):
        grcc(grc, tmp_path, blocks_path=blocks_dir, env_extra={"PYTHONPATH": str(_site_dir(prefix))})


def test_installed_launchers_run_with_the_configured_interpreter(prefix):
    env = _clean_env(PYTHONPATH=str(_site_dir(prefix)))
    launcher = (prefix / "bin/dw-replay").read_text()
    assert launcher.startswith("#!/bin/sh") and sys.executable in launcher
    proc = subprocess.run([str(prefix / "bin/dw-replay")], capture_output=True, text=True, env=env, cwd="/",
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "120000 samples out of 120000 in (lossless)" in proc.stdout
    # dw-grc finds the installed block definitions with no GRC_BLOCKS_PATH set, and GRC loads them all.
    proc = subprocess.run([str(prefix / "bin/dw-grc"), "--list"], capture_output=True, text=True, env=env, cwd="/",
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(line.split("\t")[0] for line in proc.stdout.splitlines()) == BLOCK_IDS
    for tool in ("anomaly", "augment", "bench", "dataset", "denoise", "detect", "grc", "replay", "train", "wifi"):
        assert os.access(prefix / f"bin/dw-{tool}", os.X_OK), tool


@pytest.fixture(scope="module")
def pip_venv(tmp_path_factory):
    """``pip install .`` into a fresh ``--system-site-packages`` venv of Debian's interpreter. Its third-party
    dependencies (torch, sigmf, safetensors) are this venv's, through one path line, so that the test does not
    download them again; nothing of gr-diffwireless comes from here."""
    venv = tmp_path_factory.mktemp("pipvenv") / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    py = venv / "bin/python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "deps_from_dev_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    build = tmp_path_factory.mktemp("pipbuild")
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--disable-pip-version-check", str(ROOT)], capture_output=True, text=True, timeout=600,
                          env=_clean_env(TMPDIR=str(build)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv


def test_pip_install_gives_working_commands(pip_venv):
    env = _clean_env()
    proc = subprocess.run([str(pip_venv / "bin/dw-replay")], capture_output=True, text=True, env=env, cwd="/",
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "120000 samples out of 120000 in (lossless)" in proc.stdout
    code = ("import diffwireless.paths as p, gnuradio.diffwireless as dw; print(dw.__file__); print(p.model_dir()); "
            "print(p.grc_blocks_dir())")
    proc = subprocess.run([str(pip_venv / "bin/python"), "-c", code], capture_output=True, text=True, env=env,
                          cwd="/")
    assert proc.returncode == 0, proc.stderr
    block_file, model_dir, blocks_dir = proc.stdout.split()
    assert block_file.startswith(str(pip_venv)) and "site-packages" in block_file
    assert Path(model_dir, "iq_denoiser_qpsk_sps4.safetensors").is_file()
    assert sorted(p.name for p in Path(blocks_dir).glob("*.block.yml")) == BLOCK_FILES
    proc = subprocess.run([str(pip_venv / "bin/dw-bench"), "--list"], capture_output=True, text=True, env=env,
                          cwd="/", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert {"engine", "detector", "chanest", "anomaly", "augment", "anomaly_reference"} <= set(proc.stdout.split())
    proc = subprocess.run([str(pip_venv / "bin/dw-train")], capture_output=True, text=True, env=env, cwd="/",
                          timeout=120)
    assert proc.returncode == 0 and "modclass_resnet" in proc.stdout.split(), proc.stderr
