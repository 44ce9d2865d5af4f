"""Constellation Before/After, Channel View and Engine Monitor: models (no Qt; fed from flowgraph threads, read by
the drawing thread) and their pyqtgraph widgets. The Diffusion Waterfall lives in :mod:`.waterfall`."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np

from diffwireless.constellations import Constellation

from gnuradio.diffwireless.gui.feed import Feed
from gnuradio.diffwireless.gui.view import View


# -- Constellation Before/After -------------------------------------------------------------------------------------

class ConstellationModel:
    """The last ``points`` received symbols and their denoised versions, each coloured by its decided point, and
    the running bit error rate against a reference stream when one is given.

    Args:
        constellation: the link's constellation (decisions, bit labels).
        points: symbols kept on screen.
    """

    def __init__(self, constellation: Constellation, points: int = 2000) -> None:
        if points < 1:
            raise ValueError(f"points must be >= 1, got {points}")
        self.constellation = constellation
        self.points = int(points)
        self.feed = Feed[tuple[np.ndarray, np.ndarray]](64)
        self.received = np.zeros(0, dtype=np.complex64)
        self.denoised = np.zeros(0, dtype=np.complex64)
        self.decided = np.zeros(0, dtype=np.int64)
        self.bit_errors = 0
        self.bits_compared = 0

    def push(self, received: np.ndarray, denoised: np.ndarray, reference: np.ndarray | None = None) -> None:
        """Symbols of one work call (flowgraph thread): the BER is counted here, on every symbol, drawn or not."""
        received, denoised = np.asarray(received), np.asarray(denoised)
        if reference is not None and len(reference):
            c = self.constellation
            got = c.labels[c.nearest(denoised)]
            want = c.labels[c.nearest(np.asarray(reference))]
            self.bit_errors += int(np.count_nonzero(got != want))
            self.bits_compared += got.size
        keep = slice(max(0, len(received) - self.points), None)
        self.feed.put((received[keep].copy(), denoised[keep].copy()))

    @property
    def ber(self) -> float | None:
        return self.bit_errors / self.bits_compared if self.bits_compared else None

    def update(self) -> bool:
        parts = self.feed.take()
        if not parts:
            return False
        self.received = np.concatenate([self.received, *(p[0] for p in parts)])[-self.points:]
        self.denoised = np.concatenate([self.denoised, *(p[1] for p in parts)])[-self.points:]
        self.decided = self.constellation.nearest(self.denoised)
        return True


class ConstellationWidget(View):
    """Received symbols (left) and the detector's denoised symbols (right), coloured by decided point."""

    def __init__(self, model: ConstellationModel, title: str = "Constellation Before/After", fps: float = 30.0,
                 parent=None) -> None:
        import pyqtgraph as pg

        super().__init__(title, fps, parent)
        self.model = model
        self.plots, self.scatters = [], []
        for col, name in enumerate(("received", "denoised")):
            plot = self.graphics.addPlot(row=0, col=col, title=name)
            plot.setAspectLocked(True)
            plot.setXRange(-1.6, 1.6)
            plot.setYRange(-1.6, 1.6)
            plot.addItem(pg.ScatterPlotItem(model.constellation.points.real, model.constellation.points.imag,
                                            symbol="+", size=12, pen=pg.mkPen("w")))
            scatter = pg.ScatterPlotItem(size=3, pen=None)
            plot.addItem(scatter)
            self.plots.append(plot)
            self.scatters.append(scatter)
        cmap = pg.colormap.get("turbo") if "turbo" in pg.colormap.listMaps() else pg.colormap.get("viridis")
        self._colors = [pg.mkBrush(c) for c in cmap.getLookupTable(nPts=model.constellation.order, mode="byte")]

    def draw(self) -> bool:
        if not self.model.update():
            return False
        brushes = [self._colors[i] for i in self.model.decided]
        for scatter, values in zip(self.scatters, (self.model.received, self.model.denoised)):
            scatter.setData(values.real, values.imag, brush=brushes)
        return True

    def status_extra(self) -> str:
        ber = self.model.ber
        text = f", BER {ber:.2e} over {self.model.bits_compared} bits" if ber is not None else ""
        thinned = self.model.feed.thinned_fraction
        return text + (f", thinned: {100 * thinned:.0f}% of updates not drawn" if thinned else "")

    def points_drawn(self) -> tuple[int, int]:
        """Points in the received and the denoised scatter (for tests)."""
        return tuple(len(s.data) for s in self.scatters)


# -- Channel View -----------------------------------------------------------------------------------------------------

class ChannelModel:
    """The newest frame's channel estimate (``dw_chan_est``) and the LS estimate it started from (``dw_chan_ls``),
    per carrier."""

    def __init__(self) -> None:
        self.feed = Feed[tuple[int, np.ndarray, np.ndarray | None]](8)
        self.frame = -1
        self.estimate: np.ndarray | None = None
        self.ls: np.ndarray | None = None
        self.frames_seen = 0

    def push(self, frame: int, estimate: np.ndarray, ls: np.ndarray | None) -> None:
        self.frames_seen += 1
        self.feed.put((frame, np.asarray(estimate, dtype=np.complex64),
                       None if ls is None else np.asarray(ls, dtype=np.complex64)))

    def update(self) -> bool:
        items = self.feed.take()
        if not items:
            return False
        self.frame, self.estimate, self.ls = items[-1]
        return True


class ChannelWidget(View):
    """Magnitude (dB) and phase of each carrier: the diffusion estimate and the LS estimate."""

    def __init__(self, model: ChannelModel, title: str = "Channel View", fps: float = 30.0, parent=None) -> None:
        import pyqtgraph as pg

        super().__init__(title, fps, parent)
        self.model = model
        self.magnitude_plot = self.graphics.addPlot(row=0, col=0)
        self.magnitude_plot.setLabel("left", "magnitude", units="dB")
        self.phase_plot = self.graphics.addPlot(row=1, col=0)
        self.phase_plot.setLabel("left", "phase", units="rad")
        self.phase_plot.setLabel("bottom", "carrier")
        self.phase_plot.setXLink(self.magnitude_plot)
        legend = self.magnitude_plot.addLegend()
        ls_pen = pg.mkPen((160, 160, 160), width=1, style=pg.QtCore.Qt.DotLine)
        est_pen = pg.mkPen((255, 200, 0), width=2)
        self.curves = {
            ("magnitude", "ls"): self.magnitude_plot.plot(pen=ls_pen, name="LS"),
            ("magnitude", "estimate"): self.magnitude_plot.plot(pen=est_pen, name="diffusion"),
            ("phase", "ls"): self.phase_plot.plot(pen=ls_pen),
            ("phase", "estimate"): self.phase_plot.plot(pen=est_pen),
        }
        self._legend = legend

    def draw(self) -> bool:
        if not self.model.update():
            return False
        carriers = np.arange(len(self.model.estimate)) - len(self.model.estimate) // 2
        for name, values in (("estimate", self.model.estimate), ("ls", self.model.ls)):
            if values is None:
                continue
            used = np.abs(values) > 0  # carriers without an estimate (guards, DC) are 0: left out
            self.curves[("magnitude", name)].setData(carriers[used], 20 * np.log10(np.abs(values[used])))
            self.curves[("phase", name)].setData(carriers[used], np.angle(values[used]))
        return True

    def status_extra(self) -> str:
        return f", frame {self.model.frame} ({self.model.frames_seen} seen)"

    def curve(self, plot: str, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The (carriers, values) drawn by one curve (for tests)."""
        return self.curves[(plot, name)].getData()


# -- Engine Monitor ---------------------------------------------------------------------------------------------------

ENGINE_SERIES = (("batch_mean", "batch size (mean)"), ("latency_p50_ms", "latency p50 (ms)"),
                 ("latency_p99_ms", "latency p99 (ms)"), ("queue_items", "queue (items)"), ("drops", "drops"))


class EngineMonitorModel:
    """The ``stats`` messages of the engine blocks over time, per block (``block`` field, else one series).

    Args:
        history_s: seconds of history kept.
    """

    def __init__(self, history_s: float = 120.0) -> None:
        if not history_s > 0:
            raise ValueError(f"history_s must be > 0, got {history_s}")
        self.history_s = float(history_s)
        self.feed = Feed[tuple[float, dict[str, Any]]](4096)
        self.series: dict[str, dict[str, deque]] = {}
        self.t0 = time.monotonic()

    def push(self, stats: dict[str, Any], when: float | None = None) -> None:
        self.feed.put((time.monotonic() if when is None else when, dict(stats)))

    def update(self) -> bool:
        items = self.feed.take()
        for when, stats in items:
            source = str(stats.get("block", "engine"))
            per = self.series.setdefault(source, {key: deque() for key, _ in ENGINE_SERIES} | {"t": deque()})
            per["t"].append(when - self.t0)
            for key, _ in ENGINE_SERIES:
                per[key].append(float(stats.get(key, np.nan)))
            while per["t"] and per["t"][0] < per["t"][-1] - self.history_s:
                for values in per.values():
                    values.popleft()
        return bool(items)


class EngineMonitorWidget(View):
    """One plot per statistic (batch size, latency p50/p99, queue depth, drops) against time, a curve per block."""

    def __init__(self, model: EngineMonitorModel, title: str = "Engine Monitor", fps: float = 10.0,
                 parent=None) -> None:
        super().__init__(title, fps, parent)
        self.model = model
        self.plots = {}
        for i, (key, label) in enumerate(ENGINE_SERIES):
            plot = self.graphics.addPlot(row=i // 2, col=i % 2, title=label)
            if i:
                plot.setXLink(self.plots[ENGINE_SERIES[0][0]])
            self.plots[key] = plot
        for key, _ in ENGINE_SERIES[-2:]:
            self.plots[key].setLabel("bottom", "time", units="s")
        self.curves: dict[tuple[str, str], Any] = {}

    def draw(self) -> bool:
        import pyqtgraph as pg

        if not self.model.update():
            return False
        for i, (source, per) in enumerate(sorted(self.model.series.items())):
            t = np.fromiter(per["t"], dtype=np.float64)
            for key, _ in ENGINE_SERIES:
                curve = self.curves.get((source, key))
                if curve is None:
                    curve = self.plots[key].plot(pen=pg.mkPen(pg.intColor(i), width=1), name=source)
                    self.curves[(source, key)] = curve
                curve.setData(t, np.fromiter(per[key], dtype=np.float64))
        return True
