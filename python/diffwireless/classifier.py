"""Modulation classification of IQ frames through the engine (the classifier of the augmentation benchmark).

A classifier model is a plain network (``iq_resnet1d``) whose card names its ``classes`` and ``frame_len``. Frames
are scaled to unit mean power each (the classifier sees shape, not level) and fed as ``[n, 2, frame_len]`` (I and Q
rows) in one :class:`~diffwireless.diffusion.samplers.ForwardPass` job; the logits become the decided class, its
softmax confidence and the three most likely classes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffwireless.burst_statistics import STATISTICS, StatisticsBank, burst_statistics
from diffwireless.denoiser import iq_pairs
from diffwireless.diffusion.samplers import ForwardPass, OpenSetPass
from diffwireless.engine import DenoiseEngine, Job
from diffwireless.errors import ModelError
from diffwireless.models import DiffusionModel, shared_model

ARCH = "iq_resnet1d"
UNKNOWN = "unknown"
OFDM = "ofdm"  # the class a cyclic prefix decides (see decide_frames)
OOK = "ook"  # the class on-off keying decides (see decide_frames)


def frame_items(frames: np.ndarray) -> np.ndarray:
    """Complex frames ``[n, L]`` -> float32 ``[n, 2, L]``, each frame at unit mean power (silent frames stay 0)."""
    frames = np.asarray(frames)
    power = np.mean(frames.real.astype(np.float64) ** 2 + frames.imag.astype(np.float64) ** 2, axis=1,
                    keepdims=True)
    scaled = frames / np.sqrt(np.where(power > 0, power, 1.0))
    return np.ascontiguousarray(iq_pairs(scaled).transpose(0, 2, 1))


@dataclass
class Classification:
    """Decisions for ``n`` frames: class index ``[n]``, confidence ``[n]``, top-3 indices ``[n, 3]``, the class
    names, and for open-set models the novelty score ``[n]`` and which frames are ``unknown`` ``[n]`` (bool; all
    False without a novelty score)."""

    index: np.ndarray
    confidence: np.ndarray
    top3: np.ndarray
    classes: tuple[str, ...]
    novelty: np.ndarray | None = None
    unknown: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.unknown is None:
            self.unknown = np.zeros(len(self.index), dtype=bool)

    def labels(self) -> list[str]:
        """The decided class of each frame, ``unknown`` where the novelty is over the model's threshold."""
        return [UNKNOWN if u else self.classes[i] for i, u in zip(self.index, self.unknown)]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities ``[n, classes]`` (float64) of logits ``[n, classes]``."""
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class BurstNovelty:
    """The novelty of a burst (an open-set model's card ``open_set.burst``, with the network's statistics bank):
    three terms, each over its 95% quantile on known validation bursts, summed:

    - ``distance / knn_scale``: the median over the burst's frames of the network's novelty (the distance of their
      features to known frames);
    - ``(1 - confidence) / softmax_scale``: the doubt of the mean softmax (a burst whose frames spread over several
      classes is less like any one of them than each frame's distance says);
    - ``statistics_distance / statistics_scale``: how far the burst's signal statistics lie from every known burst
      of the class decided (:class:`~diffwireless.burst_statistics.StatisticsBank`): structure the network need not
      have learned (8PSK decided as QPSK shows no 4th-power line).

    A burst is ``unknown`` over ``threshold``."""

    knn_scale: float
    softmax_scale: float
    statistics_scale: float
    threshold: float
    bank: StatisticsBank

    def __call__(self, distance: float, confidence: float, statistics: np.ndarray, decided: int) -> float:
        far = float(self.bank.distance(statistics[None], np.array([decided]))[0])
        return distance / self.knn_scale + (1.0 - confidence) / self.softmax_scale + far / self.statistics_scale


def network_statistics_bank(network) -> StatisticsBank:
    """The statistics bank an ``iq_resnet1d`` carries (its ``burst_statistics`` and ``burst_classes`` buffers)."""
    return StatisticsBank.fit(network.burst_statistics.double().numpy(), network.burst_classes.numpy())


def _burst_novelty(model: DiffusionModel, rule: object) -> BurstNovelty | None:
    """The card's ``open_set.burst`` rule with the network's statistics bank, or None where the card has none."""
    if rule is None:
        return None
    keys = ("knn_scale", "softmax_scale", "statistics_scale", "threshold")
    try:
        numbers = [float(rule[k]) for k in keys]  # type: ignore[index]
        bank = network_statistics_bank(model.network)
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise ModelError(f"model '{model.name}': its card's open_set.burst needs {', '.join(keys)} and the network "
                         f"a statistics bank of {len(STATISTICS)} statistics ({exc})") from exc
    if not all(math.isfinite(v) and v > 0 for v in numbers) or bank.values.shape[1] != len(STATISTICS):
        raise ModelError(f"model '{model.name}': its card's open_set.burst {keys} must be finite numbers > 0 and its "
                         f"statistics bank hold {len(STATISTICS)} statistics per burst")
    return BurstNovelty(*numbers, bank)


class ModulationClassifier:
    """A classifier model (path, shipped name or object) and its decisions through the engine."""

    def __init__(self, model: DiffusionModel | str | Path, novelty_threshold: float | None = None) -> None:
        """``novelty_threshold``: overrides the card's (an open-set model's; higher: fewer ``unknown``): the
        threshold of the burst novelty (:class:`BurstNovelty`, where the card has one) and of each frame's."""
        self.model = model if isinstance(model, DiffusionModel) else shared_model(model)
        card = self.model.card
        if self.model.arch != ARCH or "classes" not in card:
            raise ModelError(f"model '{self.model.name}' is not a modulation classifier (architecture {ARCH!r} with "
                             f"'classes' in its card); got architecture {self.model.arch!r}")
        self.classes = tuple(card["classes"])
        self.frame_len = int(self.model.item_shape[1])
        open_set = card.get("open_set") if isinstance(card.get("open_set"), dict) else {}
        self.novelty_threshold: float | None = None
        if getattr(self.model.network, "open_set", False) and "threshold" in open_set:
            self.novelty_threshold = float(open_set["threshold"])
            if not np.isfinite(self.novelty_threshold):
                raise ModelError(f"model '{self.model.name}': its card's open_set threshold is not finite")
        self.burst_novelty = _burst_novelty(self.model, open_set.get("burst"))
        if self.novelty_threshold is None:
            self.burst_novelty = None
        if novelty_threshold is not None:
            self.set_novelty_threshold(novelty_threshold)
        self.sampler = ForwardPass() if self.novelty_threshold is None else OpenSetPass()
        share = card.get("band_share")
        self.band_share: float | None = None if share is None else float(share)
        if self.band_share is not None and not 0 < self.band_share <= 1:
            raise ModelError(f"model '{self.model.name}': band_share {share} is not in (0, 1]")

    def set_novelty_threshold(self, threshold: float) -> None:
        """The novelty over which a frame is ``unknown``, and a burst where the card has a burst rule
        (:class:`BurstNovelty`; its threshold moves with it).

        Raises:
            ModelError: the model has no novelty score.
            ValueError: a threshold that is not a finite number >= 0.
        """
        if self.novelty_threshold is None:
            raise ModelError(f"model '{self.model.name}' has no novelty score (not an open-set classifier): it "
                             "cannot take a novelty threshold")
        if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and threshold >= 0):
            raise ValueError(f"novelty_threshold must be a finite number >= 0, got {threshold!r}")
        self.novelty_threshold = float(threshold)
        if self.burst_novelty is not None:
            self.burst_novelty = dataclasses.replace(self.burst_novelty, threshold=float(threshold))

    def job(self, frames: np.ndarray) -> Job:
        frames = np.asarray(frames)
        if frames.ndim != 2 or frames.shape[1] != self.frame_len:
            raise ValueError(f"model '{self.model.name}' classifies frames of {self.frame_len} samples; got shape "
                             f"{frames.shape}")
        return Job(self.model, frame_items(frames), self.sampler)

    def decide(self, output: np.ndarray) -> Classification:
        """Engine output ``[n, classes]`` (open set: ``[n, classes + 1]``, the novelty last) ->
        :class:`Classification`."""
        output = np.asarray(output)
        novelty = None
        if self.novelty_threshold is not None:
            output, novelty = output[:, :-1], output[:, -1].astype(np.float64)
        p = softmax(output)
        order = np.argsort(-p, axis=1)
        unknown = None if novelty is None else novelty > self.novelty_threshold
        return Classification(order[:, 0], p[np.arange(len(p)), order[:, 0]], order[:, :3], self.classes, novelty,
                              unknown)

    def classify(self, frames: np.ndarray, engine: DenoiseEngine) -> Classification:
        return self.decide(engine.submit(self.job(frames)).result())


# The families a user of a real band asks about, for each class the classifier knows.
FAMILIES = {"bpsk": "PSK/QAM", "qpsk": "PSK/QAM", "8psk": "PSK/QAM", "16qam": "PSK/QAM", "64qam": "PSK/QAM",
            "2fsk": "FSK", "gfsk": "FSK", "gmsk": "FSK", "ook": "OOK/ASK", "am-dsb": "analog", "wbfm": "analog",
            "ofdm": "OFDM"}
# Shares of the band the training frames fill: linear modulations at 8 samples per symbol (RRC 0.35) and GNU
# Radio's OFDM (52 of 64 carriers); a burst is tried as recorded and fitted to each, and the scale whose frames are
# decided with the highest mean confidence is kept.
TRAINING_SHARES = (0.17, 0.81)


@dataclass(frozen=True)
class BurstDecision:
    """The class of one burst of a capture: samples ``[start, end)``, its SNR over the noise floor (dB), the
    decision (mean softmax over the burst's frames; ``unknown`` where its novelty is over the model's threshold,
    :func:`decide_frames`), its family, the confidence (the most likely class's mean softmax), the share of the band
    its frames were fitted to (0: as recorded), its number of frames, the novelty (NaN without one), the
    most likely class (``closest``, the label but for the unknown decision) and its cyclic-prefix contrast
    (:func:`~diffwireless.frontend.cyclic_prefix_contrast`; at :data:`~diffwireless.frontend.CP_CONTRAST` or more
    it decided ``ofdm``) and keyed share (:func:`~diffwireless.frontend.keyed_share`; at
    :data:`~diffwireless.frontend.KEYED_SHARE` or more, and no cyclic prefix, it decided ``ook``)."""

    start: int
    end: int
    snr_db: float
    label: str
    family: str
    confidence: float
    share: float
    frames: int
    novelty: float = float("nan")
    closest: str = ""  # the most likely class even where the decision is unknown
    cyclic_prefix: float = 0.0
    keyed: float = 0.0


def decide_burst(frames: np.ndarray, classifier: ModulationClassifier, engine: DenoiseEngine,
                 cyclic_prefix: float = 0.0, keyed: float = 0.0) -> tuple[str, float, float, str]:
    """(label, confidence, novelty, closest class) of one burst's frames ``[k, frame_len]``
    (:func:`decide_frames`)."""
    statistics = burst_statistics(frames) if classifier.burst_novelty is not None else None
    return decide_frames(engine.submit(classifier.job(frames)).result(), classifier, cyclic_prefix, keyed,
                         statistics)


def decide_frames(output: np.ndarray, classifier: ModulationClassifier, cyclic_prefix: float = 0.0,
                  keyed: float = 0.0, statistics: np.ndarray | None = None) -> tuple[str, float, float, str]:
    """(label, confidence, novelty, closest class) of the engine output for one burst's frames: the class of the
    highest mean softmax (closest), and as the label ``unknown`` instead for an open-set model whose novelty is
    over its threshold: the burst's (:class:`BurstNovelty`: from the network's output, the mean softmax and the
    burst's signal statistics ``statistics [len(STATISTICS)]``, the
    :func:`~diffwireless.burst_statistics.group_statistics` of its frames) where the model's card has that rule,
    else the median of its frames'.

    ``cyclic_prefix``: the burst's :func:`~diffwireless.frontend.cyclic_prefix_contrast`. At
    :data:`~diffwireless.frontend.CP_CONTRAST` or more the burst carries an OFDM cyclic prefix, and a model with an
    ``ofdm`` class decides ``ofdm`` with confidence 1 whatever its softmax and novelty say: a cyclic prefix is
    structure no single-carrier class has (no synthetic burst of the other classes reached the threshold where it
    was measured), and the resampled frames the network sees lose its whole-sample lag.

    ``keyed``: the burst's :func:`~diffwireless.frontend.keyed_share`. At :data:`~diffwireless.frontend.KEYED_SHARE`
    or more (and no cyclic prefix) its carrier is off at the noise for that share of it, repeatedly: a model with an
    ``ook`` class decides ``ook`` with confidence 1. The frames the network sees are cut from the burst and do not
    show its gaps as such (a keyed carrier that wanders in frequency between pulses is taken for anything)."""
    from diffwireless.frontend import CP_CONTRAST, KEYED_SHARE

    novelty = float("nan")
    if classifier.novelty_threshold is not None:
        output, novelty = output[:, :-1], float(np.median(output[:, -1]))
    mean = softmax(output).mean(axis=0)
    top = int(np.argmax(mean))
    threshold = classifier.novelty_threshold
    if classifier.burst_novelty is not None:
        if statistics is None or np.shape(statistics) != (len(STATISTICS),):
            raise ValueError(f"model '{classifier.model.name}' decides bursts by their signal statistics too: give "
                             f"the burst's {len(STATISTICS)} statistics (group_statistics), got "
                             f"{None if statistics is None else np.shape(statistics)}")
        novelty = classifier.burst_novelty(novelty, float(mean[top]), np.asarray(statistics), top)
        threshold = classifier.burst_novelty.threshold
    if cyclic_prefix >= CP_CONTRAST and OFDM in classifier.classes:
        return OFDM, 1.0, novelty, OFDM
    if keyed >= KEYED_SHARE and OOK in classifier.classes:
        return OOK, 1.0, novelty, OOK
    unknown = threshold is not None and novelty > threshold
    closest = classifier.classes[top]
    return (UNKNOWN if unknown else closest), float(mean[top]), novelty, closest


def decide_groups(output: np.ndarray, classifier: ModulationClassifier, group: np.ndarray,
                  cyclic_prefix: np.ndarray | None = None, keyed: np.ndarray | None = None,
                  statistics: np.ndarray | None = None) -> list[tuple[str, float, float, str]]:
    """:func:`decide_frames` for each run of frames of one group (a burst) of the engine output ``[n, ...]``:
    ``group [n]`` ascending; one decision per group, in order. ``cyclic_prefix [n]`` and ``keyed [n]``: each
    frame's burst's cyclic-prefix contrast and keyed share (None or NaN: not measured). ``statistics [groups, d]``:
    each group's signal statistics (:func:`~diffwireless.burst_statistics.group_statistics` of its frames), for a
    model that decides bursts by them too."""
    group = np.asarray(group)
    if len(group) != len(output) or np.any(np.diff(group) < 0):
        raise ValueError(f"need one ascending group index per output row, got {len(group)} for {len(output)}")
    if not len(group):
        return []
    cuts = np.flatnonzero(np.diff(group)) + 1
    contrast, share = (np.zeros(len(group)) if v is None else np.nan_to_num(np.asarray(v, dtype=float), nan=0.0)
                       for v in (cyclic_prefix, keyed))
    if statistics is not None and len(statistics) != len(cuts) + 1:
        raise ValueError(f"need the statistics of each of the {len(cuts) + 1} groups, got {len(statistics)}")
    per_group = [None] * (len(cuts) + 1) if statistics is None else list(statistics)
    return [decide_frames(part, classifier, float(c[0]), float(k[0]), stats) for part, c, k, stats in
            zip(np.split(np.asarray(output), cuts), np.split(contrast, cuts), np.split(share, cuts), per_group)]


def classify_capture(iq: np.ndarray, classifier: ModulationClassifier, engine: DenoiseEngine,
                     shares: tuple[float, ...] = TRAINING_SHARES, max_frames: int = 16, threshold_db: float = 6.0,
                     hold: int = 1024) -> list[BurstDecision]:
    """Classify each burst of a capture through the front end (:mod:`diffwireless.frontend`): bursts gated, DC
    removed, carrier centred, cut into up to ``max_frames`` frames. A capture in which the gate finds no burst
    (one that is all signal, such as a recording of one packet) is gated again over the floor of its spectrum
    (:func:`~diffwireless.frontend.spectral_floor`).

    A model trained on fitted bursts (its card's ``band_share``) sees each burst as it was trained:
    :func:`~diffwireless.frontend.burst_frames` at that share. Other models (trained on frames of a fixed rate)
    get the burst fitted to each of ``shares`` and as recorded; the scale whose mean softmax has the highest top
    class wins, and a scale that leaves fewer than 2 frames is tried only when no scale leaves more (one frame is
    too easily confident).
    """
    from diffwireless.frontend import (CP_CONTRAST, burst_frames, centre_carrier, cyclic_prefix_contrast, fit_band,
                                       gate_bursts, keyed_share, occupied_bandwidth, remove_dc, spectral_floor,
                                       spread_frames)

    n = classifier.frame_len
    iq = remove_dc(np.asarray(iq, dtype=np.complex64))
    out = []
    bursts = gate_bursts(iq, threshold_db=threshold_db, hold=hold, min_length=n // 4)
    if not bursts and len(iq) >= n // 4:  # no quiet stretch in time: the floor from the band's emptiest part
        bursts = gate_bursts(iq, threshold_db=threshold_db, hold=hold, min_length=n // 4, floor=spectral_floor(iq))
    for burst in bursts:
        x = iq[burst.start:burst.end]
        contrast = cyclic_prefix_contrast(x, CP_CONTRAST)[0]
        keyed = keyed_share(x, burst.noise_power)
        if classifier.band_share is not None:
            frames = burst_frames(x, n, max_frames, classifier.band_share, burst.noise_power)
            label, confidence, novelty, closest = decide_burst(frames, classifier, engine, contrast, keyed)
            out.append(BurstDecision(burst.start, burst.end, burst.snr_db, label, FAMILIES.get(label, UNKNOWN),
                                     confidence, classifier.band_share, len(frames), novelty, closest, contrast,
                                     keyed))
            continue
        centred, _ = centre_carrier(x)
        bandwidth = occupied_bandwidth(centred) if len(centred) >= 64 else 1.0
        tried = []
        for share in (0.0, *shares):
            scaled = centred if share == 0.0 else fit_band(centred, max(bandwidth, 1e-3), share)[0]
            frames = spread_frames(scaled, n, max_frames)
            label, confidence, novelty, closest = decide_burst(frames, classifier, engine, contrast, keyed)
            tried.append((len(frames) >= 2, confidence, label, share, len(frames), novelty, closest))
        _, confidence, label, share, k, novelty, closest = max(tried, key=lambda t: t[:2])
        out.append(BurstDecision(burst.start, burst.end, burst.snr_db, label, FAMILIES.get(label, UNKNOWN),
                                 confidence, share, k, novelty, closest, contrast, keyed))
    return out


def majority_family(decisions: list[BurstDecision]) -> tuple[str, float]:
    """The family most bursts were decided as (``unknown`` counts as one), and its share of the bursts
    (``("none", 0)`` without bursts)."""
    if not decisions:
        return "none", 0.0
    families = [d.family for d in decisions]
    top = max(set(families), key=families.count)
    return top, families.count(top) / len(families)
