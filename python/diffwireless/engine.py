"""The denoising engine: one worker thread per device that batches the network work of every block and stream.

Blocks do not run networks in their ``work()``: they submit :class:`Job` objects (a model, a batch of items,
conditioning, a sampler spec) and get a :class:`concurrent.futures.Future`. The worker merges queued jobs that share
the model and the sampler spec into one batch of up to ``max_batch`` items (waiting at most ``max_wait_ms`` for more
to arrive), runs the sampler once on the device, and splits the result back into the jobs' futures.

Engines are shared through a registry: :func:`acquire_engine` returns the process's engine for a device, starting
it for the first user, and :func:`release_engine` stops it when its last user lets go.

Backpressure is a bounded queue, counted in items. Policy ``block`` makes the submitter wait for room (replay: no
loss). Policy ``drop`` drops the oldest queued ``drop`` work to make room, counts it, and fails its futures with
``CancelledError`` (live: the block tags the gap).

Faults: a CUDA out-of-memory error retries in halves (and lowers the batch cap); a failing device falls back to the
CPU with one warning; any other failure fails only the job that caused it, with an :class:`EngineError` naming the
model; :meth:`DenoiseEngine.stop` fails what is queued with :class:`EngineStopped`, interrupts the running batch
between network evaluations, and joins the thread.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import logging
import math
import threading
import time
import weakref
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from diffwireless.diffusion.noise import ItemNoise
from diffwireless.diffusion.samplers import Noise, Sampler, StopRequested
from diffwireless.errors import EngineError, EngineStopped
from diffwireless.models import DiffusionModel

# Items per batch when not given: enough to saturate the device without piling up latency. On a CPU a few hundred
# rows already run matrix products at full speed; a GPU needs far more to fill its cores.
DEFAULT_MAX_BATCH = {"cpu": 1024, "cuda": 16384}
DEFAULT_MAX_WAIT_MS = 2.0
DEFAULT_MAX_QUEUE_ITEMS = 1 << 17
POLICIES = ("block", "drop")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_LATENCY_WINDOW = 4096
# Elements per network batch of a seeded (reproducible) job: enough rows to run near full speed, few enough that a
# small job is not padded far.
REPRODUCIBLE_ELEMENTS = {"cpu": 1 << 15, "cuda": 1 << 18}
SHAPE_STEP = 64  # other batches are padded to a multiple of this many rows (a bounded set of shapes)

log = logging.getLogger("diffwireless.engine")


class NonFiniteItems(ValueError):
    """A job's items hold NaN or Inf; ``item`` is the index of the first such item in the job."""

    def __init__(self, item: int) -> None:
        super().__init__(f"item {item} of the batch holds NaN or Inf; the network cannot take it")
        self.item = item


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` (or empty) is the first CUDA GPU when torch sees one, else the CPU; anything else as torch names it.

    Raises:
        EngineError: an unknown device string, or CUDA asked for where torch has none.
    """
    if str(device) in ("", "auto"):
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise EngineError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise EngineError(f"device {device!r} asked for, but torch {torch.__version__} ({build}) sees no CUDA GPU; "
                          "use 'auto' or 'cpu'")
    return dev


def device_name(device: torch.device) -> str:
    """``cpu`` or ``cuda:<GPU name>``, as benchmark rows record it."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device.type


def _engine_config(device: torch.device, max_batch: int | None, max_wait_ms: float, max_queue_items: int,
                   precision: str) -> dict[str, Any]:
    """The engine options checked, as an engine on ``device`` holds them (``max_batch`` 0 or None: the device's
    default), for :class:`DenoiseEngine`, :class:`EngineOptions` and the comparison in :func:`acquire_engine`.

    Raises:
        EngineError: a value out of range, or fp16 where there is no CUDA.
    """
    if max_batch is not None and int(max_batch) < 0:
        raise EngineError(f"max_batch must be >= 1 (or 0 for the device's default), got {max_batch}")
    if not 0 <= float(max_wait_ms) < float("inf"):
        raise EngineError(f"max_wait_ms must be finite and >= 0, got {max_wait_ms}")
    if int(max_queue_items) < 1:
        raise EngineError(f"max_queue_items must be >= 1, got {max_queue_items}")
    if precision not in PRECISIONS:
        raise EngineError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp16" and device.type != "cuda":
        raise EngineError(f"precision fp16 needs a CUDA device, and {device} is not one; use fp32 or bf16")
    return {"max_batch": int(max_batch or DEFAULT_MAX_BATCH.get(device.type, DEFAULT_MAX_BATCH["cpu"])),
            "max_wait_ms": float(max_wait_ms), "max_queue_items": int(max_queue_items), "precision": precision}


@dataclass(frozen=True)
class EngineOptions:
    """How the shared engine of a device runs, and how a block hands it work (the GRC *Diffusion Engine* block).

    Attributes:
        device: ``auto`` (CUDA when torch sees a GPU, else CPU), ``cpu``, ``cuda``, ``cuda:N``.
        max_batch: most items per network batch; 0: 1024 on a CPU, 16384 on CUDA.
        max_wait_ms: how long the oldest queued job may wait for others to fill its batch.
        precision: ``fp32``, or autocast to ``bf16`` / ``fp16`` (fp16 needs CUDA).
        policy: ``block`` (replay: lossless, upstream waits) or ``drop`` (live: the oldest work not yet started is
            dropped, counted and tagged). A block's own choice: it does not shape the engine.
        max_queue_items: bound of the engine's queue, in items.

    Raises:
        EngineError: a value out of range, an unknown device, or CUDA options where there is no CUDA.
    """

    device: str = "auto"
    max_batch: int = 0
    max_wait_ms: float = DEFAULT_MAX_WAIT_MS
    precision: str = "fp32"
    policy: str = "block"
    max_queue_items: int = DEFAULT_MAX_QUEUE_ITEMS

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise EngineError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        _engine_config(resolve_device(self.device), self.max_batch, self.max_wait_ms, self.max_queue_items,
                       self.precision)

    @classmethod
    def of(cls, value: "EngineOptions | str | None") -> "EngineOptions":
        """``value`` as options: None gives the defaults, a string the defaults on that device."""
        if value is None:
            return cls()
        if isinstance(value, str):
            return cls(device=value)
        if not isinstance(value, cls):
            raise EngineError(f"engine options must be EngineOptions, a device string or None, got {value!r}")
        return value

    def engine_config(self) -> dict[str, Any]:
        """The :class:`DenoiseEngine` options among these (``policy`` is per job)."""
        return {"max_batch": int(self.max_batch), "max_wait_ms": float(self.max_wait_ms),
                "max_queue_items": int(self.max_queue_items), "precision": self.precision}


@dataclass(eq=False)
class Job:
    """One request: run ``sampler`` on the items ``x`` with ``model``.

    Attributes:
        model: the model (jobs of the same model object and an equal sampler spec are batched together).
        x: items, float32, shape ``[n, *model.item_shape]``.
        sampler: a :mod:`diffwireless.diffusion.samplers` spec.
        cond: conditioning, float32 ``[n, model.cond_dim]``, or None.
        seeds: ``uint64 [n]`` per-item noise seeds (:func:`~diffwireless.diffusion.noise.item_seeds`), or None.
            A seeded job is reproducible whatever the batching: each item draws its noise from its own seed, and
            the network runs on batches of one fixed size (:func:`reproducible_rows`, padded), because a network's
            output for a row changes in the last bits with the number of rows it is computed with. Without seeds
            the noise comes from the engine's generator in queue order.
        source: who submitted it (a block's name; '' unnamed): the engine counts batches that mix sources.
    """

    model: DiffusionModel
    x: np.ndarray
    sampler: Sampler
    cond: np.ndarray | None = None
    seeds: np.ndarray | None = None
    source: str = ""
    future: Future = field(default_factory=Future, repr=False)
    policy: str = "block"
    submitted: float = 0.0
    taken: int = 0
    done: int = 0
    out: np.ndarray | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def key(self) -> tuple[DiffusionModel, Sampler, bool]:
        return (self.model, self.sampler, self.seeds is not None)


def reproducible_rows(item_shape: tuple[int, ...], device: torch.device) -> int:
    """Rows of every network batch of a seeded job: a power of two near a fixed number of elements per batch
    (2^15 on a CPU, 2^18 on CUDA), between 16 and 4096; fixed for a model and device, whatever the batch limit."""
    budget = REPRODUCIBLE_ELEMENTS.get(device.type, REPRODUCIBLE_ELEMENTS["cpu"])
    rows = 2 ** round(math.log2(budget / max(1, math.prod(item_shape))))
    return int(min(max(rows, 16), 4096))


class DenoiseEngine:
    """A worker thread that runs batched sampler jobs on one device. Usually obtained from :func:`acquire_engine`.

    Args:
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        max_batch: most items per network batch; None or 0: 1024 on a CPU, 16384 on CUDA.
        max_wait_ms: how long the oldest queued job may wait for others to fill its batch.
        max_queue_items: bound of the queue, in items (a single larger job is still accepted into an empty queue).
        precision: ``fp32``, or autocast to ``bf16`` / ``fp16`` (fp16 needs CUDA).
        seed: seed of the engine's noise generator (stochastic samplers).
    """

    def __init__(self, device: str | torch.device = "auto", max_batch: int | None = None,
                 max_wait_ms: float = DEFAULT_MAX_WAIT_MS, max_queue_items: int = DEFAULT_MAX_QUEUE_ITEMS,
                 precision: str = "fp32", seed: int = 0) -> None:
        self.device = resolve_device(device)
        self.config = {**_engine_config(self.device, max_batch, max_wait_ms, max_queue_items, precision),
                       "seed": int(seed)}
        self.max_batch = self.config["max_batch"]
        self.max_wait_s = float(max_wait_ms) / 1e3
        self.max_queue_items = int(max_queue_items)
        self.precision = precision
        self.seed = int(seed)
        self._cond = threading.Condition()
        self._queue: deque[Job] = deque()
        self._queue_items = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        # The device copy of each model's network; weak keys, so a model dropped by its blocks is freed here too.
        self._nets: weakref.WeakKeyDictionary[DiffusionModel, torch.nn.Module] = weakref.WeakKeyDictionary()
        self._staging: torch.Tensor | None = None
        self._batch_cap = self.max_batch
        self._generator = torch.Generator(device=self.device).manual_seed(self.seed)
        self._reset_stats()

    # -- lifecycle ---------------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def start(self) -> "DenoiseEngine":
        """Start the worker thread (no-op when running)."""
        with self._cond:
            if self.running:
                return self
            self._stopping = False
            self._thread = threading.Thread(target=self._worker, name=f"diffwireless-engine[{self.device}]",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 1.0) -> bool:
        """Fail queued jobs with :class:`EngineStopped`, interrupt the running batch, join the worker.

        Returns True when the thread has ended within ``timeout`` seconds.
        """
        with self._cond:
            self._stopping = True
            pending = list(self._queue)
            self._queue.clear()
            self._queue_items = 0
            self._cond.notify_all()
        for job in pending:
            self._fail(job, EngineStopped(f"denoising engine on {self.device} stopped before the job ran"))
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        if thread.is_alive():
            log.warning("engine on %s: worker still in a network call %.1f s after stop(); it ends after that call",
                        self.device, timeout)
            return False
        return True

    # -- submitting --------------------------------------------------------------------------------------------

    def submit(self, job: Job, policy: str = "block", timeout: float | None = None) -> Future:
        """Queue a job; returns its future (result: ``ndarray [n, *output item shape]``).

        Args:
            job: the work; ``x`` (and ``cond``) are copied as contiguous float32, so the caller may reuse its
                buffers as soon as ``submit`` returns.
            policy: ``block`` waits for queue room (``timeout`` seconds at most, None: for ever); ``drop`` never
                waits: the oldest queued ``drop`` jobs are cancelled to make room (or this one, when the queue is
                full of ``block`` work). Cancelled futures raise ``CancelledError``; :meth:`stats` counts them.

        Raises:
            NonFiniteItems: NaN or Inf in the items (a ValueError naming the first such item).
            ValueError: a wrong shape, or bad conditioning.
            EngineStopped: the engine is not running.
            EngineError: ``block`` policy and no room within ``timeout``.
        """
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        self._validate(job)
        job.policy = policy
        with self._cond:
            if not self.running:
                raise EngineStopped(f"denoising engine on {self.device} is not running")
            if policy == "block":
                deadline = None if timeout is None else time.monotonic() + timeout
                while self._queue_items and self._queue_items + job.n > self.max_queue_items:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise EngineError(f"engine queue full ({self._queue_items} items) for {timeout} s")
                    self._cond.wait(remaining if remaining is not None else 0.1)
                    if self._stopping:
                        raise EngineStopped(f"denoising engine on {self.device} stopped")
            else:
                while self._queue_items and self._queue_items + job.n > self.max_queue_items:
                    victim = next((j for j in self._queue if j.policy == "drop" and j.taken == 0), None)
                    if victim is None:
                        break
                    self._cancel_locked(victim)
                if self._queue_items and self._queue_items + job.n > self.max_queue_items:
                    job.future.cancel()
                    self._stats["drops"] += job.n
                    return job.future
            job.submitted = time.perf_counter()
            self._queue.append(job)
            self._queue_items += job.n
            self._stats["jobs"] += 1
            self._cond.notify_all()
        return job.future

    def drop(self, job: Job, count: bool = True) -> bool:
        """Cancel a queued job that has not started. Its items count as drops (``count``) or, when its submitter
        is stopping, as ``cancelled``. False when the job has already started (or finished)."""
        with self._cond:
            if job.taken or job not in self._queue:
                return False
            self._cancel_locked(job, "drops" if count else "cancelled")
            return True

    def _cancel_locked(self, job: Job, counter: str = "drops") -> None:
        self._queue.remove(job)
        self._queue_items -= job.n - job.taken
        job.future.cancel()
        self._stats[counter] += job.n
        self._cond.notify_all()

    def _validate(self, job: Job) -> None:
        model = job.model
        # Always a copy: callers such as GNU Radio blocks hand in views of buffers that they reuse at once.
        x = np.array(job.x, dtype=np.float32, copy=True, order="C")
        if x.ndim != 1 + len(model.item_shape) or tuple(x.shape[1:]) != model.item_shape:
            raise ValueError(f"model '{model.name}' takes items of shape {model.item_shape}; got a batch of shape "
                             f"{tuple(x.shape)}")
        if not np.isfinite(x).all():
            raise NonFiniteItems(int(np.argmin(np.isfinite(x.reshape(len(x), -1)).all(axis=1))))
        job.x = x
        if not isinstance(job.sampler, Sampler) or job.sampler.__hash__ is None:
            raise ValueError(f"{type(job.sampler).__name__} is not a Sampler (nfe, cond_width, run; hashable)")
        # A sampler that reads conditioning itself (the guided channel sampler: pilots) sets its width.
        cond_dim = job.sampler.cond_width(model)
        if cond_dim:
            if job.cond is None:
                raise ValueError(f"model '{model.name}' needs conditioning of width {cond_dim}")
            cond = np.array(job.cond, dtype=np.float32, copy=True, order="C").reshape(len(x), -1)
            if cond.shape[1] != cond_dim or not np.isfinite(cond).all():
                raise ValueError(f"model '{model.name}' needs finite conditioning [n, {cond_dim}]; got "
                                 f"{tuple(np.shape(job.cond))}")
            job.cond = cond
        elif job.cond is not None:
            raise ValueError(f"model '{model.name}' takes no conditioning")
        if job.seeds is not None:
            seeds = np.asarray(job.seeds)
            if seeds.shape != (len(x),) or seeds.dtype.kind not in "iu":
                raise ValueError(f"a job of {len(x)} items needs integer seeds [{len(x)}], got {seeds.dtype} "
                                 f"{seeds.shape}")
            job.seeds = seeds.astype(np.uint64)

    # -- the worker --------------------------------------------------------------------------------------------

    def _worker(self) -> None:
        while True:
            parts = self._next_batch()
            if parts is None:
                return
            if parts:
                self._run_parts(parts)

    def _next_batch(self) -> list[tuple[Job, int, int]] | None:
        """Wait for work; take up to the batch cap of items sharing the oldest job's model and sampler."""
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            head = self._queue[0]
            key, deadline = head.key, head.submitted + self.max_wait_s
            while not self._stopping and head in self._queue:
                available = sum(j.n - j.taken for j in self._queue if j.key == key)
                remaining = deadline - time.perf_counter()
                if available >= self._batch_cap or remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._stopping:
                return None
            parts, room = [], self._batch_cap
            for job in list(self._queue):
                if room == 0:
                    break
                if job.key != key:
                    continue
                if job.taken == 0 and not job.future.set_running_or_notify_cancel():
                    self._queue.remove(job)  # cancelled by its submitter
                    self._queue_items -= job.n
                    continue
                k = min(room, job.n - job.taken)
                parts.append((job, job.taken, k))
                job.taken += k
                room -= k
                self._queue_items -= k
                if job.taken == job.n:
                    self._queue.remove(job)
            self._cond.notify_all()
            return parts

    def _run_parts(self, parts: list[tuple[Job, int, int]]) -> None:
        model, sampler, _ = parts[0][0].key
        x = parts[0][0].x[parts[0][1]:parts[0][1] + parts[0][2]] if len(parts) == 1 else \
            np.concatenate([job.x[s:s + k] for job, s, k in parts])
        cond = seeds = None
        if parts[0][0].cond is not None:
            cond = np.concatenate([job.cond[s:s + k] for job, s, k in parts])
        if parts[0][0].seeds is not None:
            seeds = np.concatenate([job.seeds[s:s + k] for job, s, k in parts])
        try:
            y = self._compute(model, sampler, x, cond, seeds)
        except StopRequested:
            for job, _, _ in parts:
                self._fail(job, EngineStopped(f"denoising engine on {self.device} stopped during the job"))
            return
        except Exception as exc:  # noqa: BLE001 - any network failure must reach the job's submitter
            if len({id(job) for job, _, _ in parts}) > 1:
                for part in parts:  # run each job alone so that only the failing one fails
                    self._run_parts([part])
                return
            job = parts[0][0]
            self._stats["failures"] += 1
            self._fail(job, EngineError(f"model '{model.name}' failed on a batch of {len(x)} items "
                                        f"({sampler}): {type(exc).__name__}: {exc}"))
            log.error("engine on %s: model '%s' failed: %s: %s", self.device, model.name, type(exc).__name__, exc)
            return
        now = time.perf_counter()
        offset = 0
        with self._cond:
            st = self._stats
            st["batches"] += 1
            st["items"] += len(x)
            sources = {job.source for job, _, _ in parts}
            st["mixed_batches"] += len(sources) > 1
            self._sources.update(sources - {""})
            st["batch_max"] = max(st["batch_max"], len(x))
            for job, start, k in parts:
                piece = y[offset:offset + k]
                offset += k
                if job.future.done():
                    continue  # failed earlier
                if job.out is None:
                    job.out = np.empty((job.n,) + piece.shape[1:], dtype=piece.dtype)
                job.out[start:start + k] = piece
                job.done += k
                if job.done == job.n:
                    self._latencies.append(now - job.submitted)
                    st["jobs_done"] += 1
                    job.future.set_result(job.out)

    def _compute(self, model: DiffusionModel, sampler: Sampler, x: np.ndarray, cond: np.ndarray | None,
                 seeds: np.ndarray | None = None) -> np.ndarray:
        """Run the batch in chunks of the batch cap (seeded: of :func:`reproducible_rows`, the last one padded);
        halve the cap on out-of-memory; fall back to CPU once."""
        if len(x) == 0:  # an empty job: no rows, shaped as the network answers (networks need a row to run)
            one = np.zeros((1, *x.shape[1:]), dtype=np.float32)
            one_cond = None if cond is None else np.zeros((1, *cond.shape[1:]), dtype=np.float32)
            one_seed = None if seeds is None else np.zeros(1, np.uint64)
            return self._run_tensor(model, sampler, one, one_cond, one_seed)[:0]
        while True:
            fixed = 0 if seeds is None else reproducible_rows(model.item_shape, self.device)
            try:
                out, start = [], 0
                while start < len(x):
                    cap = fixed or self._batch_cap
                    try:
                        out.append(self._run_chunk(model, sampler, x, cond, seeds, start, cap, fixed > 0))
                        start += cap
                    except Exception as exc:  # noqa: BLE001
                        if not _is_oom(exc) or cap == 1:
                            raise
                        if fixed:
                            fixed = max(1, cap // 2)
                            log.warning("engine on %s: out of memory at the fixed batch of %d items of a seeded job; "
                                        "its output now depends on the batching", self.device, cap)
                        self._batch_cap = max(1, min(cap, len(x) - start) // 2)
                        self._stats["oom_retries"] += 1
                        log.warning("engine on %s: out of memory at a batch of %d items; retrying with batches of %d",
                                    self.device, min(cap, len(x) - start), self._batch_cap)
                        if self.device.type == "cuda":
                            torch.cuda.empty_cache()
                return out[0] if len(out) == 1 else np.concatenate(out)
            except StopRequested:
                raise
            except Exception as exc:  # noqa: BLE001
                if self.device.type == "cpu" or not _is_device_failure(exc):
                    raise
                self._fall_back_to_cpu(exc)

    def _fall_back_to_cpu(self, exc: BaseException) -> None:
        log.warning("engine on %s: the device failed (%s: %s); falling back to the CPU for the rest of this run",
                    self.device, type(exc).__name__, exc)
        self.device = torch.device("cpu")
        self._nets.clear()
        self._staging = None
        self._generator = torch.Generator(device=self.device).manual_seed(self.seed)
        if self.precision == "fp16":
            self.precision = "fp32"

    def _network(self, model: DiffusionModel) -> torch.nn.Module:
        net = self._nets.get(model)
        if net is None:
            net = model.network
            if next(net.parameters(), torch.empty(0)).device != self.device:
                net = copy.deepcopy(net).to(self.device)
            net.eval()
            self._nets[model] = net
        return net

    def _to_device(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a)
        if self.device.type != "cuda":
            return t
        # A reused pinned staging buffer makes the host-to-device copy asynchronous.
        if self._staging is None or self._staging.numel() < t.numel():
            self._staging = torch.empty(max(t.numel(), self.max_batch * 64), dtype=torch.float32).pin_memory()
        stage = self._staging[: t.numel()].view(t.shape)
        stage.copy_(t)
        return stage.to(self.device, non_blocking=True)

    def _run_chunk(self, model: DiffusionModel, sampler: Sampler, x: np.ndarray, cond: np.ndarray | None,
                   seeds: np.ndarray | None, start: int, rows: int, pad: bool) -> np.ndarray:
        """Items ``[start, start + rows)`` of the batch, filled with zero items (their rows dropped from the output)
        up to ``rows`` with ``pad`` (every call of a seeded job has one shape), else up to a multiple of
        :data:`SHAPE_STEP` rows.

        Few distinct shapes matter: torch's CPU kernels keep memory per batch shape they meet, and a live engine,
        whose batches are whatever happened to be queued, grew by 1.5 GB on the classifier (measured) where a
        bounded set of shapes stays flat. A step of rows wastes less than rounding up to powers of two (measured
        in the live benchmark: padding to powers of two cost a third of the chain's throughput)."""
        stop = min(start + rows, len(x))
        xs, cs = x[start:stop], None if cond is None else cond[start:stop]
        ss = None if seeds is None else seeds[start:stop]
        n = stop - start
        short = rows - n if pad else min(-(-n // SHAPE_STEP) * SHAPE_STEP, max(rows, n)) - n
        if short:
            xs = np.concatenate([xs, np.zeros((short, *x.shape[1:]), dtype=x.dtype)])
            cs = None if cs is None else np.concatenate([cs, np.zeros((short, *cs.shape[1:]), dtype=cs.dtype)])
            ss = None if ss is None else np.concatenate([ss, np.zeros(short, dtype=ss.dtype)])
        y = self._run_tensor(model, sampler, xs, cs, ss)
        return y[: stop - start] if short else y

    def _run_tensor(self, model: DiffusionModel, sampler: Sampler, x: np.ndarray,
                    cond: np.ndarray | None, seeds: np.ndarray | None = None) -> np.ndarray:
        net = self._network(model)
        xt = self._to_device(x)
        ct = None if cond is None else torch.from_numpy(cond).to(self.device)
        dtype = PRECISIONS[self.precision]
        autocast = torch.autocast(self.device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            noise: Noise = self._generator if seeds is None else ItemNoise(seeds)
            y = sampler.run(net, model.schedule, xt, ct, noise, self._should_stop)
        if y.shape[0] != xt.shape[0]:  # broadcasting it back into the jobs would hide the fault
            raise ValueError(f"the network returned {y.shape[0]} rows for a batch of {xt.shape[0]} items")
        return y.float().cpu().numpy()

    def _should_stop(self) -> bool:
        return self._stopping

    def _fail(self, job: Job, exc: BaseException) -> None:
        fut = job.future
        if fut.done():
            return
        if not fut.running() and not fut.set_running_or_notify_cancel():
            return
        fut.set_exception(exc)

    # -- stats -------------------------------------------------------------------------------------------------

    def _reset_stats(self) -> None:
        self._stats: dict[str, Any] = {"jobs": 0, "jobs_done": 0, "items": 0, "batches": 0, "batch_max": 0,
                                       "drops": 0, "cancelled": 0, "failures": 0, "oom_retries": 0,
                                       "mixed_batches": 0}
        self._sources: set[str] = set()
        self._latencies: deque[float] = deque(maxlen=_LATENCY_WINDOW)

    def stats(self) -> dict[str, Any]:
        """Counters since start: jobs (submitted), jobs_done, items, batches, batch_mean, batch_max, queue_items,
        queue_jobs, latency_p50_ms / latency_p99_ms (submit to result, last 4096 jobs), drops (items dropped by
        the ``drop`` policy), cancelled (items withdrawn by stopping blocks), failures, oom_retries, batch_cap,
        device, mixed_batches (batches holding the items of more than one job source: several blocks or streams
        batched together) and sources (the named sources seen)."""
        with self._cond:
            st = dict(self._stats)
            lat = np.array(self._latencies, dtype=np.float64)
            st["queue_items"] = self._queue_items
            st["queue_jobs"] = len(self._queue)
            st["sources"] = len(self._sources)
        st["batch_mean"] = st["items"] / st["batches"] if st["batches"] else 0.0
        st["latency_p50_ms"] = float(np.percentile(lat, 50) * 1e3) if lat.size else 0.0
        st["latency_p99_ms"] = float(np.percentile(lat, 99) * 1e3) if lat.size else 0.0
        st["batch_cap"] = self._batch_cap
        st["device"] = device_name(self.device)
        return st


def format_stats(stats: dict[str, Any]) -> str:
    """One log line of :meth:`DenoiseEngine.stats`."""
    return (f"{stats['device']}: {stats['jobs']} jobs, {stats['items']} items in {stats['batches']} batches "
            f"(mean {stats['batch_mean']:.1f}, max {stats['batch_max']}), queue {stats['queue_items']} items, "
            f"latency p50 {stats['latency_p50_ms']:.2f} ms p99 {stats['latency_p99_ms']:.2f} ms, "
            f"drops {stats['drops']}, failures {stats['failures']}")


def _is_oom(exc: BaseException) -> bool:
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    return isinstance(exc, oom_type) or "out of memory" in str(exc).lower()


def _is_device_failure(exc: BaseException) -> bool:
    accel = getattr(torch, "AcceleratorError", ())
    text = str(exc)
    return isinstance(exc, accel) or "CUDA error" in text or "CUDA driver" in text or "no CUDA GPUs" in text


# -- the process-wide registry ---------------------------------------------------------------------------------

_registry_lock = threading.Lock()
_engines: dict[str, DenoiseEngine] = {}
_first_holder: dict[str, str] = {}
_holds: dict[str, dict[str, int]] = {}  # per device: how many times each holder holds the engine


def acquire_engine(device: str = "auto", holder: str = "", **config: Any) -> DenoiseEngine:
    """The shared engine of ``device``, started for its first user (``config``: :class:`DenoiseEngine` options).

    One engine per device is what lets every block's work share its batches, so a later user must ask for the
    options it runs with (or for none).

    Args:
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``.
        holder: who asks (a block's name), for the error below.
        config: engine options.

    Raises:
        EngineError: the engine of this device already runs with other options than ``config`` asks for; the
            message names both users and both sets of options.
    """
    dev = resolve_device(device)
    key = str(dev)
    with _registry_lock:
        engine = _engines.get(key)
        if engine is None or not engine.running:
            engine = DenoiseEngine(dev, **config).start()
            _engines[key] = engine
            _first_holder[key] = holder or "a user"
            _holds[key] = {}
        else:
            full = {**_engine_config(dev, config.get("max_batch"), config.get("max_wait_ms", DEFAULT_MAX_WAIT_MS),
                                     config.get("max_queue_items", DEFAULT_MAX_QUEUE_ITEMS),
                                     config.get("precision", "fp32")), "seed": int(config.get("seed", 0))}
            differ = {k: full[k] for k in config if engine.config.get(k) != full[k]}
            if differ:
                running = {k: engine.config.get(k) for k in differ}
                raise EngineError(f"{holder or 'a user'} asks the engine on {key} for {differ}, but "
                                  f"{_first_holder[key]} runs it with {running}: one device has one engine, so give "
                                  "both the same options (in GRC: the same Diffusion Engine block)")
        _holds[key][holder] = _holds[key].get(holder, 0) + 1
        return engine


def release_engine(engine: DenoiseEngine, holder: str = "") -> None:
    """Let go of an engine from :func:`acquire_engine` (``holder`` as given there); the last user's release stops
    it and joins its thread.

    Raises:
        EngineError: ``holder`` releases the engine more often than it acquired it; the others keep it running.
    """
    with _registry_lock:
        key = next((k for k, e in _engines.items() if e is engine), None)
        if key is None:
            engine.stop()
            return
        if _holds[key].get(holder, 0) == 0:
            raise EngineError(f"{holder or 'a user'} releases the engine on {key} more often than it acquired it; "
                              "the engine keeps running for its other users")
        _holds[key][holder] -= 1
        if sum(_holds[key].values()) > 0:
            return
        del _engines[key], _first_holder[key], _holds[key]
    engine.stop()


def shared_engines() -> dict[str, DenoiseEngine]:
    """The running shared engines by device (for tests and stats)."""
    with _registry_lock:
        return dict(_engines)


@atexit.register
def _stop_all() -> None:
    with _registry_lock:
        engines = list(_engines.values())
        _engines.clear()
        _first_holder.clear()
        _holds.clear()
    for engine in engines:
        engine.stop()
