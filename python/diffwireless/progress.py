"""Progress of long work (training, benchmarks, synthesis), reported by whoever installed a reporter.

The core only marks its long loops with :func:`track`; it depends on no progress library. A command-line tool
installs a reporter (``dw-*`` tools: a tqdm bar with rate and ETA on a terminal, nothing otherwise), so library users
and tests see no output.
"""

from __future__ import annotations

from typing import Iterable, Protocol, TypeVar

T = TypeVar("T")


class Reporter(Protocol):
    """Wraps an iterable so that its progress is shown; yields the same items."""

    def __call__(self, iterable: Iterable[T], total: int | None, desc: str) -> Iterable[T]: ...


_reporter: Reporter | None = None


def set_reporter(reporter: Reporter | None) -> Reporter | None:
    """Install ``reporter`` (None: no reporting); returns the one it replaces."""
    global _reporter
    previous, _reporter = _reporter, reporter
    return previous


def track(iterable: Iterable[T], desc: str, total: int | None = None) -> Iterable[T]:
    """``iterable``, its progress reported under ``desc`` when a reporter is installed."""
    if _reporter is None or not _writer():
        return iterable
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    return _reporter(iterable, total, desc)


def _writer() -> bool:
    """Only process 0 of several training together (torchrun) reports progress."""
    from diffwireless.distributed import is_writer

    return is_writer()
