"""Diffusion Waterfall: a scrolling spectrogram of a stream with what the diffusion blocks found in it, drawn as
labelled boxes keyed to sample index, and the anomaly score trace with its threshold under it.

:class:`WaterfallModel` holds the data (no Qt): the flowgraph side pushes samples, events, decisions and scores from
any thread; the view side calls :meth:`WaterfallModel.update` from its timer and reads the state.
:class:`DiffusionWaterfallWidget` draws a model with pyqtgraph.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from gnuradio.diffwireless.gui.feed import Feed


@dataclass(frozen=True)
class Box:
    """Something found in samples ``[start, end)``: an anomaly event (``kind`` ``event``) or a classifier decision
    (``decision``), with its label; frequency edges in Hz relative to the centre when known (else the full band)."""

    start: int
    end: int
    label: str
    kind: str
    freq_low: float | None = None
    freq_high: float | None = None


class WaterfallModel:
    """Waterfall rows and findings, keyed to sample index.

    A row is the mean power spectrum (dB, ``fft_size`` bins, DC in the middle) of the first ``ffts_per_row``
    FFT frames of each ``samples_per_row`` samples: the cost per row is fixed whatever the sample rate.

    Args:
        fft_size: FFT length (bins per row).
        samples_per_row: samples each row stands for (the time resolution).
        history_rows: rows kept on screen.
        ffts_per_row: FFT frames averaged into a row (at most ``samples_per_row // fft_size``).
        sample_rate: samples/s, for the axes in seconds and Hz (0: samples and bins).
    """

    def __init__(self, fft_size: int = 1024, samples_per_row: int = 16384, history_rows: int = 256,
                 ffts_per_row: int = 4, sample_rate: float = 0.0) -> None:
        if fft_size < 8 or samples_per_row < fft_size or history_rows < 2 or ffts_per_row < 1:
            raise ValueError(f"need fft_size >= 8, samples_per_row >= fft_size, history_rows >= 2 and ffts_per_row "
                             f">= 1; got {fft_size}, {samples_per_row}, {history_rows}, {ffts_per_row}")
        if not (math.isfinite(sample_rate) and sample_rate >= 0):
            raise ValueError(f"sample_rate must be finite and >= 0, got {sample_rate}")
        self.fft_size, self.samples_per_row = int(fft_size), int(samples_per_row)
        self.history_rows = int(history_rows)
        self.ffts_per_row = min(int(ffts_per_row), self.samples_per_row // self.fft_size)
        self.sample_rate = float(sample_rate)
        self._taper = np.hanning(self.fft_size).astype(np.float32)
        self._taper /= np.sqrt(np.mean(self._taper ** 2))
        # Producer side (flowgraph threads).
        self._lock = threading.Lock()
        self._acc_row, self._acc = -1, []
        self.rows_in = Feed[tuple[int, np.ndarray]](self.history_rows)
        self.boxes_in = Feed[Box](1024)
        self.scores_in = Feed[tuple[int, int, np.ndarray, float]](4096)
        # View side (the drawing thread).
        self.image = np.full((self.history_rows, self.fft_size), np.nan, dtype=np.float32)
        self.last_row = -1  # index of the newest row (row r covers samples [r, r + 1) * samples_per_row)
        self.boxes: list[Box] = []
        self.score_x = np.zeros(0, dtype=np.float64)  # window centres, samples
        self.score_y = np.zeros(0, dtype=np.float32)
        self.threshold: float | None = None

    # -- producer side -----------------------------------------------------------------------------------------

    def push_samples(self, iq: np.ndarray, first_sample: int) -> None:
        """Samples ``iq`` whose first is stream sample ``first_sample``; completed rows go to the view."""
        need = self.ffts_per_row * self.fft_size
        spr = self.samples_per_row
        n = len(iq)
        with self._lock:
            pos = 0
            while pos < n:
                sample = first_sample + pos
                row, into = divmod(sample, spr)
                if into >= need:  # past the part of this row that is used: skip to the next row
                    pos += spr - into
                    continue
                if row != self._acc_row:
                    self._acc_row, self._acc = row, []
                    if into:  # the row's first samples never came (a gap): this row is skipped
                        pos += spr - into
                        continue
                take = min(need - into, n - pos)
                self._acc.append(np.asarray(iq[pos:pos + take], dtype=np.complex64))
                pos += take
                if into + take == need:
                    frames = np.concatenate(self._acc).reshape(self.ffts_per_row, self.fft_size) * self._taper
                    power = np.mean(np.abs(np.fft.fftshift(np.fft.fft(frames), axes=1)) ** 2, axis=0)
                    self.rows_in.put((row, (10 * np.log10(power / self.fft_size + 1e-20)).astype(np.float32)))
                    self._acc_row, self._acc = -1, []

    def push_box(self, box: Box) -> None:
        self.boxes_in.put(box)

    def push_scores(self, start: int, window: int, scores: np.ndarray, threshold: float | None) -> None:
        """Scores of consecutive windows of ``window`` samples from stream sample ``start``."""
        self.scores_in.put((int(start), int(window), np.asarray(scores, dtype=np.float32),
                            None if threshold is None else float(threshold)))

    # -- view side -----------------------------------------------------------------------------------------------

    def update(self) -> bool:
        """Take what arrived into the state shown (call from the drawing thread); True when something changed."""
        rows, boxes, scores = self.rows_in.take(), self.boxes_in.take(), self.scores_in.take()
        for row, values in rows:
            if row <= self.last_row - self.history_rows:
                continue  # older than the screen
            if row > self.last_row:
                shift = min(row - self.last_row, self.history_rows)
                self.image = np.roll(self.image, -shift, axis=0)
                self.image[-shift:] = np.nan
                self.last_row = row
            self.image[self.history_rows - 1 - (self.last_row - row)] = values
        self.boxes.extend(boxes)
        for start, window, values, threshold in scores:
            centres = start + window * (np.arange(len(values)) + 0.5)
            self.score_x = np.concatenate([self.score_x, centres])
            self.score_y = np.concatenate([self.score_y, values])
            if threshold is not None:
                self.threshold = threshold
        first = self.first_sample
        self.boxes = [b for b in self.boxes if b.end > first]
        keep = self.score_x >= first
        self.score_x, self.score_y = self.score_x[keep], self.score_y[keep]
        return bool(rows or boxes or scores)

    @property
    def first_sample(self) -> int:
        """First stream sample of the oldest row on screen."""
        return (self.last_row - self.history_rows + 1) * self.samples_per_row

    def box_rows(self, box: Box) -> tuple[int, int]:
        """Rows of the image (0 the oldest) that ``box`` spans, first and last, clipped to the screen."""
        first_row = self.last_row - self.history_rows + 1
        lo = max(box.start // self.samples_per_row - first_row, 0)
        hi = min((box.end - 1) // self.samples_per_row - first_row, self.history_rows - 1)
        return int(lo), int(hi)


class DiffusionWaterfallWidget:
    """The pyqtgraph view of a :class:`WaterfallModel`: spectrogram (time across, frequency up) with findings as
    labelled boxes, and the score trace with the threshold under it on the same time axis. A timer redraws at up
    to ``fps`` frames/s; the title says the drawn rate and how much was thinned.

    ``widget`` is the QWidget to put in a layout (GRC: the block's ``qwidget()``).
    """

    EVENT_PEN = (255, 80, 80)
    DECISION_PEN = (90, 200, 255)

    def __init__(self, model: WaterfallModel, title: str = "Diffusion Waterfall", fps: float = 30.0,
                 parent=None) -> None:
        import pyqtgraph as pg
        from PyQt5 import QtCore, QtWidgets

        self.model = model
        self.title = title
        self.widget = QtWidgets.QWidget(parent)
        layout = QtWidgets.QVBoxLayout(self.widget)
        layout.setContentsMargins(0, 0, 0, 0)
        self.status = QtWidgets.QLabel(title)
        layout.addWidget(self.status)
        self.graphics = pg.GraphicsLayoutWidget()
        layout.addWidget(self.graphics)
        self.spectrum_plot = self.graphics.addPlot(row=0, col=0)
        self.spectrum_plot.setLabel("left", "frequency", units="Hz" if model.sample_rate else "bin")
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.image_item.setColorMap(pg.colormap.get("viridis"))
        self.spectrum_plot.addItem(self.image_item)
        self.score_plot = self.graphics.addPlot(row=1, col=0)
        self.score_plot.setMaximumHeight(140)
        self.score_plot.setLabel("left", "score")
        self.score_plot.setLabel("bottom", "time", units="s" if model.sample_rate else "samples")
        self.score_plot.setXLink(self.spectrum_plot)
        self.score_curve = self.score_plot.plot(pen=pg.mkPen((255, 200, 0), width=1))
        self.threshold_line = pg.InfiniteLine(angle=0, pen=pg.mkPen((255, 80, 80), style=QtCore.Qt.DashLine))
        self.score_plot.addItem(self.threshold_line)
        self.threshold_line.hide()
        self._box_items: list = []
        self.frames_drawn = 0
        self.fps = 0.0
        self._fps_count, self._fps_t0 = 0, time.monotonic()
        self.timer = QtCore.QTimer(self.widget)
        self.timer.timeout.connect(self.refresh)
        self.timer.start(max(1, int(1000 / fps)))

    def _x(self, samples):
        """Stream samples -> the time axis (seconds with a sample rate)."""
        return samples / self.model.sample_rate if self.model.sample_rate else samples

    def refresh(self) -> None:
        """Take the model's news and redraw (the timer calls this; tests may too)."""
        import pyqtgraph as pg
        from PyQt5 import QtWidgets

        model = self.model
        if not model.update() and self.frames_drawn:
            self._count_frame(drew=False)
            return
        if model.last_row >= 0:
            band = model.sample_rate or model.fft_size
            x0 = self._x(model.first_sample)
            width = self._x(model.history_rows * model.samples_per_row)
            # The image is [rows (time), bins (frequency)]: shown with time across, frequency up.
            levels = self._levels()
            self.image_item.setImage(np.nan_to_num(model.image.T, nan=levels[0]), autoLevels=False, levels=levels)
            self.image_item.setRect(pg.QtCore.QRectF(x0, -band / 2, width, band))
            self.spectrum_plot.setXRange(x0, x0 + width, padding=0)
            self.spectrum_plot.setYRange(-band / 2, band / 2, padding=0)
        for item in self._box_items:
            self.spectrum_plot.removeItem(item)
        self._box_items = []
        band = model.sample_rate or model.fft_size
        for box in model.boxes:
            lo = box.freq_low if box.freq_low is not None else -band / 2
            hi = box.freq_high if box.freq_high is not None else band / 2
            pen = pg.mkPen(self.EVENT_PEN if box.kind == "event" else self.DECISION_PEN, width=2)
            rect = QtWidgets.QGraphicsRectItem(self._x(box.start), lo, self._x(box.end - box.start), hi - lo)
            rect.setPen(pen)
            label = pg.TextItem(box.label, color=pen.color(), anchor=(0, 1 if box.kind == "event" else 0))
            label.setPos(self._x(box.start), hi if box.kind == "event" else lo)
            for item in (rect, label):
                self.spectrum_plot.addItem(item)
                self._box_items.append(item)
        self.score_curve.setData(self._x(model.score_x), model.score_y)
        if model.threshold is not None:
            self.threshold_line.setValue(model.threshold)
            self.threshold_line.show()
        self._count_frame(drew=True)

    def _levels(self) -> tuple[float, float]:
        finite = self.model.image[np.isfinite(self.model.image)]
        if not finite.size:
            return (-100.0, 0.0)
        lo, hi = np.percentile(finite, [5, 99.5])
        return float(lo), float(max(hi, lo + 1.0))

    def _count_frame(self, drew: bool) -> None:
        if drew:
            self.frames_drawn += 1
            self._fps_count += 1
        now = time.monotonic()
        if now - self._fps_t0 >= 1.0:
            self.fps = self._fps_count / (now - self._fps_t0)
            self._fps_count, self._fps_t0 = 0, now
            thinned = self.model.rows_in.thinned_fraction
            self.status.setText(f"{self.title}: {self.fps:.0f} frames/s"
                                + (f", thinned: {100 * thinned:.1f}% of rows not drawn" if thinned else ""))

    def drawn_boxes(self) -> list[tuple[float, float, str]]:
        """The boxes on screen as (left, width, label) in axis units (for tests)."""
        from PyQt5 import QtWidgets

        rects = [i for i in self._box_items if isinstance(i, QtWidgets.QGraphicsRectItem)]
        labels = [i for i in self._box_items if not isinstance(i, QtWidgets.QGraphicsRectItem)]
        return [(r.rect().x(), r.rect().width(), t.textItem.toPlainText()) for r, t in zip(rects, labels)]
