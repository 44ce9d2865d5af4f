"""The hand-over between a flowgraph thread and a view's drawing: bounded, never blocking the flowgraph.

A block's ``work()`` puts what it received into a :class:`Feed`; the view's timer (in the Qt thread) takes it out and
draws. When the view falls behind, the feed keeps the newest items and counts the ones it let go, so the flowgraph
never waits for drawing and the view can say how much it thinned.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Feed(Generic[T]):
    """A bounded FIFO between threads: :meth:`put` never blocks (the oldest item goes when full, and is counted),
    :meth:`take` returns what is there.

    Args:
        capacity: most items held.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._items: deque[T] = deque(maxlen=int(capacity))
        self._lock = threading.Lock()
        self.put_count = 0
        self.thinned = 0

    def put(self, item: T) -> None:
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.thinned += 1
            self._items.append(item)
            self.put_count += 1

    def take(self) -> list[T]:
        """Everything held now, oldest first (the feed is then empty)."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
        return items

    @property
    def thinned_fraction(self) -> float:
        """Share of the items put that were let go undrawn."""
        return self.thinned / self.put_count if self.put_count else 0.0
