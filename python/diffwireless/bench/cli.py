"""``dw-bench TASK [--quick] --out DIR`` (``dw-bench all`` runs every task, ``dw-bench --list`` names them)."""

from __future__ import annotations

import argparse
import importlib
import sys

from diffwireless.bench import TASKS
from diffwireless.bench.results import write_results


def _load(spec: str):
    module, func = spec.split(":")
    return getattr(importlib.import_module(module), func)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dw-bench", description=__doc__)
    parser.add_argument("task", nargs="?", help=f"one of: {', '.join(TASKS) or '(none yet)'}, or 'all'")
    parser.add_argument("--quick", action="store_true", help="CI-sized run (minutes on a 2-core CPU)")
    parser.add_argument("--out", default="bench-out", help="folder for TASK.json and TASK.png")
    parser.add_argument("--list", action="store_true", help="list the tasks and exit")
    args = parser.parse_args(argv)
    if args.list or args.task is None:
        print("\n".join(TASKS) if TASKS else "no benchmark tasks are registered yet")
        return 0
    names = list(TASKS) if args.task == "all" else [args.task]
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        print(f"dw-bench: unknown task {unknown[0]!r}; tasks: {', '.join(TASKS) or '(none yet)'}", file=sys.stderr)
        return 2
    if not names:
        print("no benchmark tasks are registered yet")
    for name in names:
        run = _load(TASKS[name])
        rows = run(quick=args.quick)
        path = write_results(args.out, name, rows, args.quick)
        plot = getattr(importlib.import_module(TASKS[name].split(":")[0]), "plot", None)
        if plot is not None:
            plot(rows, path.with_suffix(".png"))
        print(f"{name}: {len(rows)} rows -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
