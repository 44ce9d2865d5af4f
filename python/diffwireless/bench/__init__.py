"""Benchmarks: one CLI, ``dw-bench TASK [--quick] --out DIR``, writing ``DIR/TASK.json`` and ``DIR/TASK.png``.

Each task is a function ``run(quick: bool) -> list[BenchRow]`` (plus an optional ``plot(rows, path)``), registered
in :data:`TASKS` by ``"module:function"`` so that running one task imports only what it needs.
"""

from diffwireless.bench.results import (BenchRow, hanley_mcneil, headless_pyplot, log_t_interval, wilson_interval,
                                        write_results)

# task name -> "module:function"; filled by the capability issues as their benchmarks land.
TASKS: dict[str, str] = {
    # The engine benchmark runs flowgraphs, so it lives in the GNU Radio layer (imported only when run).
    "engine": "gnuradio.diffwireless.bench_engine:run",
    "detector": "gnuradio.diffwireless.bench_detector:run",
    "chanest": "gnuradio.diffwireless.bench_chanest:run",
    "anomaly": "gnuradio.diffwireless.bench_anomaly:run",
    "anomaly_reference": "diffwireless.anomaly_reference:run",
    "augment": "gnuradio.diffwireless.bench_augment:run",
    "augment_ceiling": "gnuradio.diffwireless.bench_augment_ceiling:run",
}

__all__ = ["BenchRow", "TASKS", "hanley_mcneil", "headless_pyplot", "log_t_interval", "wilson_interval",
           "write_results"]
