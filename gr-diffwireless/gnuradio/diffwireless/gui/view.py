"""What every live view shares: the widget's frame (a status line over a pyqtgraph area), the timer that redraws
it without taking the flowgraph's time, the frame count, and the blocks' ``qwidget()``."""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from typing import Any


class FrameCounter:
    """Frames drawn per second over the last second."""

    def __init__(self) -> None:
        self.frames_drawn = 0
        self.fps = 0.0
        self._count, self._t0 = 0, time.monotonic()

    def drew(self) -> bool:
        """Count a frame; True once a second, when :attr:`fps` was updated."""
        self.frames_drawn += 1
        self._count += 1
        now = time.monotonic()
        if now - self._t0 < 1.0:
            return False
        self.fps = self._count / (now - self._t0)
        self._count, self._t0 = 0, now
        return True


def titled_area(title: str, parent=None) -> tuple[Any, Any, Any]:
    """A view's frame: ``(widget, status label, pyqtgraph GraphicsLayoutWidget)``, the status line on top."""
    import pyqtgraph as pg
    from PyQt5 import QtWidgets

    widget = QtWidgets.QWidget(parent)
    layout = QtWidgets.QVBoxLayout(widget)
    layout.setContentsMargins(0, 0, 0, 0)
    status = QtWidgets.QLabel(title)
    layout.addWidget(status)
    graphics = pg.GraphicsLayoutWidget()
    layout.addWidget(graphics)
    return widget, status, graphics


class View(ABC):
    """A widget with a status line over a pyqtgraph area, redrawn by a timer at up to ``fps`` frames/s.

    The next frame waits long enough that drawing takes at most :attr:`MAX_DUTY` of the time: in Python, drawing
    holds the interpreter that the flowgraph's blocks need, so on a busy CPU a view draws fewer frames rather than
    slow the radio down; its status line says how many it draws.
    """

    MAX_DUTY = 0.25  # share of the time spent in refresh (painting takes about as long again)

    def __init__(self, title: str, fps: float, parent=None) -> None:
        from PyQt5 import QtCore

        self.title = title
        self.widget, self.status, self.graphics = titled_area(title, parent)
        self.counter = FrameCounter()
        self.timer = QtCore.QTimer(self.widget)
        self.timer.timeout.connect(self.refresh)
        self._interval_ms = max(1, int(1000 / fps))
        self.timer.start(self._interval_ms)

    @property
    def fps(self) -> float:
        return self.counter.fps

    @property
    def frames_drawn(self) -> int:
        return self.counter.frames_drawn

    def refresh(self) -> None:
        """Take the model's news and redraw (the timer calls this; tests may too)."""
        started = time.perf_counter()
        try:
            if self.draw() and self.counter.drew():
                self.status.setText(f"{self.title}: {self.counter.fps:.0f} frames/s{self.status_extra()}")
        finally:
            busy = time.perf_counter() - started
            self.timer.setInterval(max(self._interval_ms, int(1000 * busy / self.MAX_DUTY)))

    @abstractmethod
    def draw(self) -> bool:
        """Take the model's news and draw it; False when there was nothing new to draw."""

    def status_extra(self) -> str:
        """What the status line says after the frame rate."""
        return ""


class ViewBlock:
    """Mixin of the view blocks: the model they feed, and ``qwidget()``, which makes the widget on its first call
    (in the Qt thread: GRC's generated code calls it there) from :attr:`view_class`."""

    view_class: type[View]

    def _init_view(self, model: Any, title: str, fps: float) -> None:
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be finite and > 0, got {fps}")
        self.model, self.title, self.fps = model, str(title), float(fps)
        self.view: View | None = None

    def qwidget(self):
        """The Qt widget to put in a layout."""
        if self.view is None:
            self.view = self.view_class(self.model, self.title, self.fps)
        return self.view.widget
