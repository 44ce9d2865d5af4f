"""Benchmarks that run GNU Radio flowgraphs or blocks, registered as ``dw-bench`` tasks (imported when run)."""

from diffwireless.bench import register_task

for _task in ("engine", "detector", "chanest", "anomaly", "augment", "augment_ceiling", "live", "classify", "scaleout"):
    register_task(_task, f"gnuradio.diffwireless.bench.{_task}:run")
