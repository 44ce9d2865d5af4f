"""``dw-bench TASK [--quick] --out DIR``: run a benchmark, writing ``DIR/TASK.json`` and ``DIR/TASK.png``
(``dw-bench all`` runs every task, ``dw-bench --list`` names them)."""

from __future__ import annotations

import argparse
import sys

import gnuradio.diffwireless.bench  # noqa: F401 - registers the tasks that need GNU Radio
from diffwireless.bench import TASKS
from diffwireless.bench.results import write_results
from diffwireless.progress import track
from gnuradio.diffwireless.apps import _progress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dw-bench", description=__doc__)
    parser.add_argument("task", nargs="?", help=f"one of: {', '.join(TASKS)}, or 'all'")
    parser.add_argument("--quick", action="store_true", help="CI-sized run (minutes on a 2-core CPU)")
    parser.add_argument("--out", default="bench-out", help="folder for TASK.json and TASK.png")
    parser.add_argument("--list", action="store_true", help="list the tasks and exit")
    args = parser.parse_args(argv)
    _progress.install()
    if args.list or args.task is None:
        print("\n".join(TASKS))
        return 0
    names = list(TASKS) if args.task == "all" else [args.task]
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        print(f"dw-bench: unknown task {unknown[0]!r}; tasks: {', '.join(TASKS)}", file=sys.stderr)
        return 2
    for name in track(names, "dw-bench"):
        rows = TASKS.load(name)(quick=args.quick)
        path = write_results(args.out, name, rows, args.quick)
        plot = getattr(TASKS.module(name), "plot", None)
        if plot is not None:
            plot(rows, path.with_suffix(".png"))
        print(f"{name}: {len(rows)} rows -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
