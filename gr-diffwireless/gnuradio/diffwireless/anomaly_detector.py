"""Score a complex stream for anomalies window by window (AE-DDPM through the engine), with events and tags."""

from __future__ import annotations

import math

import numpy as np
import pmt

from diffwireless.anomaly import METHODS, AnomalyDetector, EventTracker
from diffwireless.engine import EngineOptions
from diffwireless.tags import RX_RATE, RX_TIME

from gnuradio.diffwireless._pmt import dict_to_pmt
from gnuradio.diffwireless.engine_block import engine_block

ONSET_TAG = "dw_anomaly"
JOB_WINDOWS = 32



class anomaly_detector(engine_block):
    """Anomaly score of a complex stream: one float per window of the model's length (1024 samples for the
    shipped ``anomaly_band``), larger is more anomalous.

    Each window's log spectrogram goes through the AE-DDPM model (autoencoder + latent DDPM trained on normal traffic
    only) in the shared engine. ``method`` picks the score on the output: ``ae_ddpm`` (the model), or a baseline
    computed on the same windows: ``ae`` (the autoencoder alone), ``energy`` (window power over the model's
    reference level: the CFAR energy detector) or ``kurtosis`` (spectral kurtosis); these two run no network. The
    threshold is the model's calibration for ``pfa`` on normal traffic, unless ``threshold`` is given.

    - Output item ``k`` is the score of input samples ``[k * window, (k + 1) * window)``; input tags go to the score
      of their window.
    - Each onset (first window over the threshold) is tagged ``dw_anomaly`` on its score: a dict with ``start``
      (input sample), ``peak`` so far, ``threshold``, ``method``.
    - ``events`` message port: a PMT dict per event when it ends (``hold`` windows in a row under the threshold, the
      ``dw_eos`` end of a replay, or the flowgraph's stop; ``self.events`` keeps them all): ``start``, ``end`` (input
      samples), ``peak``, ``threshold``, ``method``, ``label``,
      ``duration_s`` (with ``sample_rate``) and ``rx_time`` (when the input carried an ``rx_time`` tag). Connect it
      to SigMF Sink's ``annotations`` port to save events as SigMF annotations (GNU Radio hands no message to a
      block that has finished, so at the very end of a replay an event may close after the sink has stopped: the
      detector's ``events`` list and ``dw-anomaly --json`` keep every one).
    - ``scores`` message port: per batch of windows, a PMT dict with ``start`` (input sample of the first window),
      ``window`` (samples per window), ``scores`` (f32vector) and ``threshold`` (for live views such as the
      Diffusion Waterfall).

    Args:
        model: AE-DDPM model file or shipped name (``anomaly_band``; your own band: ``dw-train anomaly --normal``).
        pfa: false-alarm rate per window the threshold is set for (from the model's calibration).
        threshold: score threshold; 0 takes it from ``pfa``.
        method: ``ae_ddpm``, ``ae``, ``energy``, ``kurtosis``.
        hold: windows under the threshold that end an event.
        sample_rate: samples/s of the input, for durations and times (0: from the input's ``rx_rate`` tags, else
            unknown).
        engine, max_in_flight, stats_interval_s: as the other engine blocks (policy ``drop`` for live input:
            dropped windows give no score and are counted and tagged ``dw_drop``).
    """

    control_tags = frozenset({RX_TIME, RX_RATE})

    def __init__(self, model: str = "anomaly_band", pfa: float = 0.01, threshold: float = 0.0,
                 method: str = "ae_ddpm", hold: int = 2, sample_rate: float = 0.0,
                 engine: EngineOptions | str | None = None, max_in_flight: int = 1024,
                 stats_interval_s: float = 1.0) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        if hold < 1:
            raise ValueError(f"hold must be >= 1 window, got {hold}")
        self.detector = AnomalyDetector(model)
        self.method = method
        self.pfa, self._fixed_threshold = float(pfa), float(threshold)
        self.threshold = self._fixed_threshold or self.detector.threshold(self.pfa, method)
        self.hold = int(hold)
        self.sample_rate = float(sample_rate)
        self._rate_set = self.sample_rate > 0
        window = self.detector.window
        engine_block.__init__(self, "diffwireless_anomaly_detector", np.complex64, np.float32, window, 1,
                              engine=engine, max_in_flight=max_in_flight, stats_interval_s=stats_interval_s,
                              job_windows=JOB_WINDOWS)
        self._events_port = pmt.intern("events")
        self.message_port_register_out(self._events_port)
        self._scores_port = pmt.intern("scores")
        self.message_port_register_out(self._scores_port)
        self.events: list[dict] = []
        self._new_tracker()

    def _new_tracker(self) -> None:
        self.tracker = EventTracker(self.threshold, self.detector.window, self.hold)
        self._time_ref: tuple[int, float] | None = None  # (input sample, seconds): the last rx_time tag submitted
        self._time_ref_emit: tuple[int, float] | None = None  # the one that applied to the last emitted job

    def start(self) -> bool:
        self._new_tracker()
        self.events = []
        return engine_block.start(self)

    def stop(self) -> bool:
        for event in self.tracker.flush():
            self._publish(event)
        return engine_block.stop(self)

    def on_tag(self, key: str, value, offset: int) -> None:
        if key == RX_RATE:  # the stream's rate, where none was set (a server's streams, a radio's retune)
            if not self._rate_set and isinstance(value, (int, float)) and math.isfinite(value) and value > 0:
                self.sample_rate = float(value)
            return
        try:
            seconds, frac = value
            self._time_ref = (int(offset), int(seconds) + float(frac))
        except (TypeError, ValueError):
            self.logger.warn(f"ignoring {key} tag with value {value!r}: not (seconds, fraction)")

    def make_job(self, windows: np.ndarray, first_in: int, ends_stream: bool):
        baseline = None if self.method in ("ae_ddpm", "ae") else self.detector.method_scores(self.method, windows,
                                                                                              None)
        context = (first_in // self.detector.window, baseline, self._time_ref, ends_stream)
        positions = first_in + self.detector.window * np.arange(len(windows))
        return self.detector.job(windows, networks=baseline is None, positions=positions), context

    def finish(self, result: np.ndarray, context) -> np.ndarray:
        baseline = context[1]
        scores = baseline if baseline is not None else self.detector.method_scores(self.method, None, result)
        return np.asarray(scores, dtype=np.float32)

    def result_tags(self, data: np.ndarray, result: np.ndarray, context) -> list:
        first_window, _, time_ref, ends_stream = context
        self._time_ref_emit = time_ref
        window = self.detector.window
        self.message_port_pub(self._scores_port, dict_to_pmt({
            "start": first_window * window, "window": window, "threshold": self.threshold,
            "scores": np.asarray(data, dtype=np.float32)}))
        onsets, closed = self.tracker.update(data, first_window)
        if ends_stream:  # close the open event now, while the flowgraph still runs to deliver it
            closed += self.tracker.flush()
        for event in closed:
            self._publish(event)
        tags = []
        for w in onsets:
            rel = w - first_window
            d = {"start": w * self.detector.window, "peak": float(data[rel]), "threshold": self.threshold,
                 "method": self.method}
            tags.append((rel, ONSET_TAG, dict_to_pmt(d), self._srcid))
        return tags

    def _publish(self, event) -> None:
        d = event.as_dict(self.method, self.sample_rate, self._time_ref_emit)
        self.events.append(d)
        self.message_port_pub(self._events_port, dict_to_pmt(d))

    def set_threshold(self, threshold: float) -> None:
        """Change the threshold; 0 takes it from the false-alarm rate (applies to scores emitted from now on)."""
        self._fixed_threshold = float(threshold)
        self.threshold = self._fixed_threshold or self.detector.threshold(self.pfa, self.method)
        self.tracker.threshold = self.threshold

    def set_pfa(self, pfa: float) -> None:
        """Change the false-alarm rate (used when no fixed threshold is set)."""
        self.detector.threshold(pfa, self.method)  # validates
        self.pfa = float(pfa)
        self.set_threshold(self._fixed_threshold)
