"""Signal statistics of a burst that a modulation leaves whatever the network learned: the open-set check beside it.

A network trained on known classes only learns what tells *them* apart; a new modulation that falls between two of
them (8PSK between QPSK and 16QAM, FM broadcast among the FSKs) can sit close to known frames in its features. The
classical features of automatic modulation recognition measure the structure directly, and a burst whose
statistics lie far from every known burst of the class it was decided as is unlike that class
(:class:`StatisticsBank`):

- ``power_line_2``, ``power_line_4``, ``power_line_8``: the strongest line of the spectrum of ``x**n`` over
  ``sum |x|**n`` (a BPSK's line at n = 2, QPSK's and the QAMs' at 4, 8PSK's only at 8; Swami and Sadler's
  higher-order statistics seen as spectral lines, which carrier offset only moves);
- ``if_kurtosis_1``, ``if_kurtosis_4``, ``if_kurtosis_16``: kurtosis of the instantaneous frequency (the angle of
  ``x[t+1] conj(x[t])`` summed over 1, 4 or 16 lags, weighted by its magnitude): two-level for a 2-FSK, Gaussian
  for FM of noise-like audio;
- ``if_step_kurtosis``: kurtosis of the change of the 4-lag instantaneous frequency over 4 samples (an FSK's
  symbol steps);
- ``envelope_kurtosis``: ``E|x|^4 / (E|x|^2)^2`` (constant envelope 1, Gaussian 2);
- ``abs_if_spread``: the standard deviation of the absolute centred instantaneous frequency over its RMS (Azzouz and
  Nandi's sigma_af);
- ``spectral_kurtosis``, ``spectral_flatness``: shape of the 64-bin averaged power spectrum.

Each is taken per frame as its logarithm and averaged over the burst's frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATISTICS = ("power_line_2", "power_line_4", "power_line_8", "if_kurtosis_1", "if_kurtosis_4", "if_kurtosis_16",
              "if_step_kurtosis", "envelope_kurtosis", "abs_if_spread", "spectral_kurtosis", "spectral_flatness")
SPECTRUM_BINS = 64
_TINY = 1e-30
_BATCH = 2048  # frames per pass (bounds the float64 temporaries: ~16 MB per array for 1024-sample frames)


def _weighted_kurtosis(value: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``value [n, m]`` under ``weight [n, m]``: (kurtosis, centred values, variance)."""
    total = np.maximum(weight.sum(axis=1), _TINY)
    centred = value - ((value * weight).sum(axis=1) / total)[:, None]
    variance = (centred ** 2 * weight).sum(axis=1) / total
    return (centred ** 4 * weight).sum(axis=1) / total / np.maximum(variance, _TINY) ** 2, centred, variance


def _frame_statistics(x: np.ndarray) -> np.ndarray:
    cols = []
    y = x
    for _ in range(3):  # x**2, x**4, x**8 by squaring
        y = y * y
        cols.append(np.abs(np.fft.fft(y, axis=1)).max(axis=1) / np.maximum(np.abs(y).sum(axis=1), _TINY))
    product = x[:, 1:] * np.conj(x[:, :-1])
    running = np.cumsum(np.concatenate([np.zeros((len(x), 1), product.dtype), product], axis=1), axis=1)
    lagged = {m: product if m == 1 else running[:, m:] - running[:, :-m] for m in (1, 4, 16)}
    for m in (1, 4, 16):
        cols.append(_weighted_kurtosis(np.angle(lagged[m]), np.abs(lagged[m]))[0])
    freq4, weight4 = np.angle(lagged[4]), np.abs(lagged[4])
    step = np.angle(lagged[4][:, 4:] * np.conj(lagged[4][:, :-4]))  # the change of freq4, wrapped
    cols.append(_weighted_kurtosis(step, np.minimum(weight4[:, 4:], weight4[:, :-4]))[0])
    power = np.abs(x) ** 2
    cols.append((power ** 2).mean(axis=1) / np.maximum(power.mean(axis=1), _TINY) ** 2)
    _, centred, variance = _weighted_kurtosis(freq4, weight4)
    spread = _weighted_kurtosis(np.abs(centred), weight4)[2]
    cols.append(np.sqrt(spread / np.maximum(variance, _TINY)))
    pieces = x[:, :x.shape[1] // SPECTRUM_BINS * SPECTRUM_BINS].reshape(len(x), -1, SPECTRUM_BINS)
    psd = (np.abs(np.fft.fft(pieces * np.hanning(SPECTRUM_BINS), axis=2)) ** 2).mean(axis=1)
    psd = np.fft.fftshift(psd, axes=1) / np.maximum(psd.sum(axis=1, keepdims=True), _TINY)
    bins = np.arange(SPECTRUM_BINS) - SPECTRUM_BINS // 2
    mean = (psd * bins).sum(axis=1, keepdims=True)
    second = (psd * (bins - mean) ** 2).sum(axis=1)
    cols.append((psd * (bins - mean) ** 4).sum(axis=1) / np.maximum(second, _TINY) ** 2)
    cols.append(np.exp(np.log(psd + 1e-12).mean(axis=1)) / psd.mean(axis=1))
    return np.log(np.maximum(np.stack(cols, axis=1), _TINY))


def frame_statistics(frames: np.ndarray) -> np.ndarray:
    """The logarithm of each of :data:`STATISTICS` per frame: ``frames [n, L]`` complex (``L >= 64``) ->
    ``[n, len(STATISTICS)]`` float64.

    Raises:
        ValueError: not a 2-D complex array of frames of at least :data:`SPECTRUM_BINS` samples, or not finite.
    """
    frames = np.asarray(frames)
    if frames.ndim != 2 or not np.iscomplexobj(frames) or frames.shape[1] < SPECTRUM_BINS:
        raise ValueError(f"need complex frames [n, L >= {SPECTRUM_BINS}], got {frames.dtype} {frames.shape}")
    if not np.isfinite(frames).all():
        raise ValueError("frames hold NaN or Inf samples")
    out = [_frame_statistics(frames[i:i + _BATCH].astype(np.complex128)) for i in range(0, len(frames), _BATCH)]
    return np.concatenate(out) if out else np.zeros((0, len(STATISTICS)))


def burst_statistics(frames: np.ndarray) -> np.ndarray:
    """One burst's statistics ``[len(STATISTICS)]``: the mean of its frames' (``frames [k, L]``, k >= 1)
    :func:`frame_statistics`."""
    return frame_statistics(frames).mean(axis=0)


def group_statistics(frames: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Per group (a burst) of ``frames [n, L]``, ``group [n]`` ascending: the mean of its frames'
    :func:`frame_statistics` -> ``[groups, len(STATISTICS)]``."""
    group = np.asarray(group)
    if len(group) != len(frames) or np.any(np.diff(group) < 0):
        raise ValueError(f"need one ascending group index per frame, got {len(group)} for {len(frames)}")
    if not len(group):
        return np.zeros((0, len(STATISTICS)))
    cuts = np.flatnonzero(np.diff(group)) + 1
    return np.array([part.mean(axis=0) for part in np.split(frame_statistics(frames), cuts)])


@dataclass(frozen=True)
class StatisticsBank:
    """Known bursts' statistics and classes: ``values [m, d]`` (:func:`group_statistics`), ``classes [m]`` (class
    index), and the standardisation ``mean [d]``, ``scale [d]`` (of the bank's values).

    :meth:`distance`: how far a burst's statistics lie from the nearest known burst of the class it was decided as
    (Euclidean, standardised): large where the burst is unlike every known burst of that class.
    """

    values: np.ndarray
    classes: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    def __post_init__(self) -> None:
        m, d = np.shape(self.values) if np.ndim(self.values) == 2 else (-1, -1)
        if m < 1 or np.shape(self.classes) != (m,) or np.shape(self.mean) != (d,) or np.shape(self.scale) != (d,):
            raise ValueError(f"a statistics bank needs values [m, d], classes [m], mean [d] and scale [d]; got "
                             f"{np.shape(self.values)}, {np.shape(self.classes)}, {np.shape(self.mean)}, "
                             f"{np.shape(self.scale)}")
        if not (np.isfinite(self.values).all() and np.isfinite(self.mean).all()
                and np.all(np.asarray(self.scale) > 0) and np.isfinite(self.scale).all()):
            raise ValueError("a statistics bank's values, mean and scale must be finite (scale > 0)")
        # Standardised once, per class with their squared norms: distance() runs once per burst in the block.
        bank = (np.asarray(self.values, dtype=np.float64) - self.mean) / self.scale
        classes = np.asarray(self.classes)
        by_class = {int(c): (rows, (rows ** 2).sum(axis=1)) for c in np.unique(classes)
                    for rows in [bank[classes == c]]}
        object.__setattr__(self, "_by_class", by_class)

    @classmethod
    def fit(cls, values: np.ndarray, classes: np.ndarray) -> "StatisticsBank":
        """A bank of ``values [m, d]`` of bursts of ``classes [m]``, standardised by their own mean and spread."""
        values = np.asarray(values, dtype=np.float64)
        scale = values.std(axis=0)
        return cls(values, np.asarray(classes, dtype=np.int64), values.mean(axis=0), np.where(scale > 0, scale, 1.0))

    def distance(self, values: np.ndarray, decided: np.ndarray) -> np.ndarray:
        """Per burst (``values [b, d]``, ``decided [b]`` class index): the standardised distance to the nearest
        bank burst of its class ``[b]``; ``inf`` for a class with no burst in the bank."""
        values, decided = np.atleast_2d(np.asarray(values, dtype=np.float64)), np.atleast_1d(decided)
        out = np.full(len(values), np.inf)
        z = (values - self.mean) / self.scale
        for c in np.unique(decided):
            if int(c) in self._by_class:
                rows, norms = self._by_class[int(c)]
                mine = decided == c
                d2 = (z[mine] ** 2).sum(axis=1)[:, None] - 2 * z[mine] @ rows.T + norms[None]
                out[mine] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
        return out
