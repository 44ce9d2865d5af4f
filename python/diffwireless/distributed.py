"""Training over several processes with PyTorch's ``torchrun`` (DistributedDataParallel).

``torchrun --nproc-per-node N --no-python dw-train NAME`` runs every recipe unchanged over N processes (and over
machines with torchrun's rendezvous flags); one process (``dw-train NAME``) is the plain path, untouched. A recipe
function that takes its iterations runs shortened the same way (tests, benchmarks): ``torchrun ... -m
diffwireless.distributed MODULE:FUNCTION OUT --iterations N``.

How a recipe is spread: each process draws the *global* batch from the recipe's seed, exactly as one process
would, and trains on its own contiguous share of it (:func:`shard`: global / N items); the network is wrapped in
``DistributedDataParallel`` (:func:`wrap`), which averages the gradients over the processes, so that N processes
take the step one process takes on the whole batch (equal within float rounding; networks with batch norm see
per-process batch statistics, as DDP has them). The loss each step reports is the mean over the processes
(:func:`mean_across`), and only process 0 writes files (:func:`is_writer`; :func:`diffwireless.models.save_model`
asks it) and shows progress. Backend: NCCL where each process has a GPU, else gloo (CPUs).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.distributed as dist


def launched() -> bool:
    """Started by ``torchrun`` (or any launcher setting ``WORLD_SIZE``) with more than one process."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def active() -> bool:
    """A process group is up (more than one process trains together)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def start() -> bool:
    """Join the process group that ``torchrun`` describes in the environment (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``), once; returns whether training is distributed. Without a launcher it does
    nothing.

    Raises:
        RuntimeError: launched over several processes, but this torch has no ``torch.distributed``.
    """
    if not launched():
        return False
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed: train in one process")
    if not dist.is_initialized():
        gpu = torch.cuda.is_available() and torch.cuda.device_count() > 0
        if gpu:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        dist.init_process_group("nccl" if gpu else "gloo")
    return True


def stop() -> None:
    """Leave the process group (after training; a no-op in one process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank() -> int:
    """This process's index (0 in one process)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """Processes training together (1 in one process)."""
    return dist.get_world_size() if active() else 1


def is_writer() -> bool:
    """Whether this process writes files and shows progress: process 0 (or the only one)."""
    return rank() == 0


def shard(batch: torch.Tensor) -> torch.Tensor:
    """This process's contiguous share of a global batch ``[B, ...]``: ``[B / N, ...]`` (the batch itself in one
    process).

    Raises:
        ValueError: ``B`` does not split evenly over the N processes (the global batch must be kept).
    """
    n = world_size()
    if n == 1:
        return batch
    if batch.shape[0] % n:
        raise ValueError(f"a global batch of {batch.shape[0]} does not split evenly over {n} processes; run a "
                         "number of processes that divides it")
    size = batch.shape[0] // n
    return batch[rank() * size:(rank() + 1) * size]


def wrap(net: torch.nn.Module) -> torch.nn.Module:
    """``net`` in ``DistributedDataParallel`` when training is distributed (gradients averaged over the
    processes), else ``net`` itself. Keep the unwrapped network for evaluation and saving."""
    if not active():
        return net
    from torch.nn.parallel import DistributedDataParallel

    device = next(net.parameters()).device
    return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


def record() -> dict:
    """For a model card's training record: the processes that trained together (empty in one process)."""
    return {} if world_size() == 1 else {"processes": world_size(), "backend": dist.get_backend()}


def mean_across(value: float) -> float:
    """The mean of ``value`` over the processes (``value`` itself in one process)."""
    if not active():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def main(argv: list[str] | None = None) -> int:
    """Run one recipe function ``MODULE:FUNCTION(out_dir, iterations=N)`` in the process group (or alone)."""
    from diffwireless.registry import Registry

    parser = argparse.ArgumentParser(prog="python -m diffwireless.distributed", description=main.__doc__)
    parser.add_argument("recipe", help="module:function, e.g. diffwireless.recipes.iq_denoiser:train")
    parser.add_argument("out", help="output folder (process 0 writes the model there)")
    parser.add_argument("--iterations", type=int, required=True, help="training iterations")
    args = parser.parse_args(argv)
    recipes = Registry("recipe")
    recipes.register("run", args.recipe)
    start()
    try:
        recipes.load("run")(args.out, iterations=args.iterations)
    finally:
        stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
