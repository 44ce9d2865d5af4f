"""Training over several processes (torchrun, DistributedDataParallel over gloo on this CPU): the same step as one
process on the same global batch, only process 0 writing, and the one-process path untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffwireless import distributed

WORKER = """
import os, sys
from pathlib import Path
from diffwireless import distributed
from diffwireless.recipes.iq_denoiser import train
distributed.start()
try:
    train(Path(sys.argv[1]) / f"rank{os.environ.get('RANK', '0')}", iterations=int(sys.argv[2]))
finally:
    distributed.stop()
"""
NAME = "iq_denoiser_qpsk_sps4"


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_one_process_path_is_untouched():
    assert not distributed.active() and distributed.world_size() == 1 and distributed.rank() == 0
    assert distributed.is_writer() and distributed.record() == {}
    x = torch.arange(12.0).reshape(6, 2)
    assert distributed.shard(x) is x
    net = torch.nn.Linear(2, 2)
    assert distributed.wrap(net) is net
    assert distributed.mean_across(1.25) == 1.25


def test_start_without_a_launcher_does_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.start() is False and not distributed.active()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.start() is False


def test_two_processes_take_the_one_process_step_and_only_process_0_writes(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    two = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                str(script), str(tmp_path / "two"), "12"], tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    one = _run([sys.executable, "-m", "diffwireless.distributed", "diffwireless.recipes.iq_denoiser:train",
                str(tmp_path / "one" / "rank0"), "--iterations", "12"], tmp_path)  # one process, the plain path
    assert one.returncode == 0, one.stderr[-3000:]
    assert not (tmp_path / "two" / "rank1").exists()  # process 1 trained but wrote nothing
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "two" / "rank0" / f"{NAME}.safetensors"))
    b = load_file(str(tmp_path / "one" / "rank0" / f"{NAME}.safetensors"))
    assert a.keys() == b.keys()
    # Equal within float rounding (gradients averaged over two halves instead of one mean over the whole batch).
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), k
    card_two = json.loads((tmp_path / "two" / "rank0" / f"{NAME}.json").read_text())["training"]
    card_one = json.loads((tmp_path / "one" / "rank0" / f"{NAME}.json").read_text())["training"]
    assert card_two["processes"] == 2 and card_two["backend"] == "gloo" and "processes" not in card_one
    assert card_two["final_loss_mean_last_100"] == pytest.approx(card_one["final_loss_mean_last_100"], rel=1e-5)


def test_a_global_batch_that_does_not_split_is_refused(tmp_path):
    script = tmp_path / "uneven.py"
    script.write_text("import os, sys, torch\nfrom pathlib import Path\nfrom diffwireless import distributed\n"
                      "distributed.start()\n"
                      "try:\n    distributed.shard(torch.zeros(5, 2))\nexcept ValueError as exc:\n"
                      "    Path(sys.argv[1], os.environ['RANK']).write_text(str(exc))\nfinally:\n"
                      "    distributed.stop()\n")
    run = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(script),
                str(tmp_path)], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    for rank in ("0", "1"):
        assert (tmp_path / rank).read_text() == "a global batch of 5 does not split evenly over 2 processes; run a " \
                                                "number of processes that divides it"


def test_dw_train_runs_unchanged_under_torchrun(tmp_path):
    from diffwireless.paths import bundled_recording

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "--no-python",
           str(Path(sys.executable).parent / "dw-train"), "anomaly", "--normal", str(bundled_recording()),
           "--iterations", "8", "--out", str(tmp_path / "models"), "--name", "band"]
    if not Path(cmd[7]).exists():
        pytest.skip("dw-train is not installed beside this interpreter")
    run = _run(cmd, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("wrote ") == 1  # process 0 alone reports (and writes)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["band.json", "band.safetensors"]
    training = json.loads((tmp_path / "models" / "band.json").read_text())["training"]
    assert training["processes"] == 2 and training["autoencoder"]["iterations"] == 8
