"""The dw-* tools' progress bars: tqdm with rate and ETA on a terminal, quiet when stderr is not one."""

from __future__ import annotations

import sys
from typing import Iterable, TypeVar

from diffwireless.progress import set_reporter

T = TypeVar("T")


def install(stream=None) -> bool:
    """Show progress bars on ``stream`` (default stderr) when it is a terminal; True when they are shown."""
    stream = sys.stderr if stream is None else stream
    if not getattr(stream, "isatty", lambda: False)():
        set_reporter(None)
        return False

    def reporter(iterable: Iterable[T], total: int | None, desc: str) -> Iterable[T]:
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, file=stream, mininterval=0.5)

    set_reporter(reporter)
    return True
