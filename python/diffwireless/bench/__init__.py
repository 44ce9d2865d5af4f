"""Benchmarks: one CLI, ``dw-bench TASK [--quick] --out DIR``, writing ``DIR/TASK.json`` and ``DIR/TASK.png``.

Each task is a function ``run(quick: bool) -> list[BenchRow]`` (plus an optional ``plot(rows, path)``), registered
in :data:`TASKS` by ``"module:function"`` so that running one task imports only what it needs. The core registers
the tasks that need nothing but the core; the GNU Radio layer registers its own with :func:`register_task`.
"""

from diffwireless.bench.results import (BenchRow, hanley_mcneil, headless_pyplot, log_t_interval, wilson_interval,
                                        write_results)
from diffwireless.registry import Registry

# task name -> "module:function"
TASKS = Registry("benchmark task")
TASKS.register("anomaly_reference", "diffwireless.anomaly_reference:run")
TASKS.register("networks", "diffwireless.bench.networks:run")


def register_task(name: str, spec: str) -> None:
    """Add a benchmark task ``name`` run by ``spec`` (``"module:function"``, imported only when the task runs)."""
    TASKS.register(name, spec)


__all__ = ["BenchRow", "TASKS", "hanley_mcneil", "headless_pyplot", "log_t_interval", "register_task",
           "wilson_interval", "write_results"]
