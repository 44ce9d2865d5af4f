"""Diffusion Waterfall: a scrolling spectrogram of a stream with what the diffusion blocks found in it, drawn as
labelled boxes keyed to sample index, and the anomaly score trace with its threshold under it.

:class:`WaterfallModel` holds the data (no Qt): the flowgraph side pushes samples, events, decisions and scores from
any thread; the view side calls :meth:`WaterfallModel.update` from its timer and reads the state.
:class:`DiffusionWaterfallWidget` draws a model with pyqtgraph.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from gnuradio.diffwireless.gui.feed import Feed
from gnuradio.diffwireless.gui.view import View


@dataclass(frozen=True)
class Box:
    """Something found in samples ``[start, end)``: an anomaly event (``kind`` ``event``) or a classifier decision
    (``decision``), with its label (and a decision's confidence, the lowest over the frames it spans); frequency
    edges in Hz relative to the centre when known (else the full band)."""

    start: int
    end: int
    label: str
    kind: str
    freq_low: float | None = None
    freq_high: float | None = None
    confidence: float | None = None

    @property
    def text(self) -> str:
        return self.label if self.confidence is None else f"{self.label} {self.confidence:.2f}"


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
        self.boxes_changed = False  # the view redraws its boxes only then (they scroll with the axes by themselves)

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
        newest = max((row for row, _ in rows), default=self.last_row)
        if newest > self.last_row:  # one shift for all the rows that arrived
            shift = min(newest - self.last_row, self.history_rows)
            self.image = np.roll(self.image, -shift, axis=0)
            self.image[-shift:] = np.nan
            self.last_row = newest
        for row, values in rows:
            if row > self.last_row - self.history_rows:  # else older than the screen
                self.image[self.history_rows - 1 - (self.last_row - row)] = values
        for box in boxes:
            last = self.boxes[-1] if self.boxes else None
            # Consecutive frames of one class are one box (a classifier decides every frame: thousands a second).
            if (last is not None and box.kind == "decision" == last.kind and box.label == last.label
                    and last.end <= box.start <= last.end + (last.end - last.start)):
                low = min(c for c in (last.confidence, box.confidence, 1.0) if c is not None)
                self.boxes[-1] = dataclasses.replace(last, end=box.end, confidence=low)
            else:
                self.boxes.append(box)
        self.boxes_changed = bool(boxes) or self.boxes_changed
        for start, window, values, threshold in scores:
            centres = start + window * (np.arange(len(values)) + 0.5)
            self.score_x = np.concatenate([self.score_x, centres])
            self.score_y = np.concatenate([self.score_y, values])
            if threshold is not None:
                self.threshold = threshold
        first = self.first_sample
        kept = [b for b in self.boxes if b.end > first]
        self.boxes_changed = self.boxes_changed or len(kept) != len(self.boxes)
        self.boxes = kept
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


class DiffusionWaterfallWidget(View):
    """The pyqtgraph view of a :class:`WaterfallModel`: spectrogram (time across, frequency up) with findings as
    labelled boxes, and the score trace with the threshold under it on the same time axis. A timer redraws at up
    to ``fps`` frames/s (:class:`~gnuradio.diffwireless.gui.view.View`); the title says the drawn rate and how
    much was thinned.

    ``widget`` is the QWidget to put in a layout (GRC: the block's ``qwidget()``).
    """

    EVENT_PEN = (255, 80, 80)
    MAX_BOXES = 64  # boxes drawn, the newest half of each kind (more would cost the frame rate; the title counts)
    DECISION_PEN = (90, 200, 255)

    def __init__(self, model: WaterfallModel, title: str = "Diffusion Waterfall", fps: float = 30.0,
                 parent=None) -> None:
        import pyqtgraph as pg
        from PyQt5 import QtCore

        self.model = model
        super().__init__(title, fps, parent)
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
        self.spectrum_plot.hideAxis("bottom")  # the score plot's time axis serves both
        self.threshold_line = pg.InfiniteLine(angle=0, pen=pg.mkPen((255, 80, 80), style=QtCore.Qt.DashLine))
        self.score_plot.addItem(self.threshold_line)
        self.threshold_line.hide()
        self._box_pool: list[tuple] = []  # (rect, label) items, made once and reused
        self._shown_boxes = 0
        self.boxes_not_drawn = 0
        self._pens = {True: pg.mkPen(self.EVENT_PEN, width=2), False: pg.mkPen(self.DECISION_PEN, width=2)}
        self._level_cache: tuple[float, tuple[float, float]] | None = None

    def _x(self, samples):
        """Stream samples -> the time axis (seconds with a sample rate)."""
        return samples / self.model.sample_rate if self.model.sample_rate else samples

    def draw(self) -> bool:
        import pyqtgraph as pg

        model = self.model
        if not model.update() and self.frames_drawn:
            return False
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
        if model.boxes_changed:
            self._draw_boxes()
        self.score_curve.setData(self._x(model.score_x), model.score_y)
        if model.threshold is not None:
            self.threshold_line.setValue(model.threshold)
            self.threshold_line.show()
        return True

    def _draw_boxes(self) -> None:
        """Show the newest :attr:`MAX_BOXES` boxes with a pool of items made once (made and removed per box, their
        Qt signal wiring alone would cost the frame rate when a classifier decides thousands of frames a second)."""
        import pyqtgraph as pg
        from PyQt5 import QtWidgets

        model = self.model
        model.boxes_changed = False
        # The newest of each kind: a classifier's thousands of decisions must not push the anomaly events off.
        shown = [b for kind in ("event", "decision")
                 for b in [b for b in model.boxes if b.kind == kind][-self.MAX_BOXES // 2:]]
        self.boxes_not_drawn = len(model.boxes) - len(shown)
        while len(self._box_pool) < len(shown):
            rect = QtWidgets.QGraphicsRectItem()
            label = pg.TextItem()
            self.spectrum_plot.addItem(rect)
            self.spectrum_plot.addItem(label)
            self._box_pool.append((rect, label))
        band = model.sample_rate or model.fft_size
        for (rect, label), box in zip(self._box_pool, shown):
            lo = box.freq_low if box.freq_low is not None else -band / 2
            hi = box.freq_high if box.freq_high is not None else band / 2
            pen = self._pens[box.kind == "event"]
            rect.setPen(pen)
            rect.setRect(self._x(box.start), lo, self._x(box.end - box.start), hi - lo)
            label.setColor(pen.color())
            label.setAnchor((0, 1) if box.kind == "event" else (0, 0))
            label.setText(box.text)
            label.setPos(self._x(box.start), hi if box.kind == "event" else lo)
            rect.show()
            label.show()
        for rect, label in self._box_pool[len(shown):]:
            rect.hide()
            label.hide()
        self._shown_boxes = len(shown)

    def _levels(self) -> tuple[float, float]:
        """Colour range: the 5th to 99.5th percentile of the rows on screen, updated twice a second (a percentile
        of the whole image every frame would cost more than the frame)."""
        now = time.monotonic()
        if self._level_cache is not None and now < self._level_cache[0]:
            return self._level_cache[1]
        rows = self.model.image[::4]
        finite = rows[np.isfinite(rows)]
        if not finite.size:
            return (-100.0, 0.0)
        lo, hi = np.percentile(finite, [5, 99.5])
        self._level_cache = (now + 0.5, (float(lo), float(max(hi, lo + 1.0))))
        return self._level_cache[1]

    def status_extra(self) -> str:
        thinned = self.model.rows_in.thinned_fraction
        return ((f", thinned: {100 * thinned:.1f}% of rows not drawn" if thinned else "")
                + (f", {self.boxes_not_drawn} older boxes not drawn" if self.boxes_not_drawn else ""))

    def drawn_boxes(self) -> list[tuple[float, float, str]]:
        """The boxes on screen as (left, width, label) in axis units (for tests)."""
        return [(r.rect().x(), r.rect().width(), t.textItem.toPlainText())
                for r, t in self._box_pool[: self._shown_boxes]]
