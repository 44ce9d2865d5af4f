"""Benchmark result rows, confidence intervals, and the JSON file every benchmark writes."""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BenchRow:
    """One measured number with its interval and what was measured.

    Attributes:
        method: what produced the number (``diffusion``, ``euclidean``, ``theory``, ``engine``, ...).
        setting: the condition (``qpsk awgn snr_db=5``, ``streams=16``, ...).
        metric: the quantity and unit (``ber``, ``nmse_db``, ``items_per_s``, ...).
        value: the estimate.
        ci_low, ci_high: its 95% interval (equal to ``value`` for exact values such as theory).
        nfe: network evaluations per output item (0 for methods without a network).
        device: where it ran (``cpu``, ``cuda:NVIDIA H100 ...``).
        extra: anything else worth keeping (counts of errors and trials, seeds).
    """

    method: str
    setting: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    nfe: float = 0
    device: str = "cpu"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not (self.ci_low <= self.value <= self.ci_high) and not any(
                math.isnan(v) for v in (self.value, self.ci_low, self.ci_high)):
            raise ValueError(f"{self.method}/{self.setting}/{self.metric}: value {self.value} outside its interval "
                             f"[{self.ci_low}, {self.ci_high}]")


def wilson_interval(errors: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a proportion ``errors / trials`` (95% by default); ``(0, 1)`` for no trials."""
    if trials <= 0:
        return 0.0, 1.0
    if not 0 <= errors <= trials:
        raise ValueError(f"errors={errors} must lie in [0, trials={trials}]")
    p = errors / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # At 0 or ``trials`` errors the bound is exactly 0 or 1 (the formula leaves a rounding residue there).
    return (0.0 if errors == 0 else max(0.0, centre - half)), (1.0 if errors == trials else min(1.0, centre + half))


def hanley_mcneil(auc: float, n_neg: int, n_pos: int) -> tuple[float, float]:
    """95% normal-approximation interval of an AUC (Hanley and McNeil 1982), clipped to [0, 1]."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_neg * n_pos)
    half = 1.959964 * math.sqrt(max(var, 0.0))
    return max(0.0, auc - half), min(1.0, auc + half)


def log_t_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """Geometric mean of a few positive measurements (rates, ratios) and its Student-t interval, taken on the
    logarithm, since their spread is multiplicative (a host that runs 20% slower scales every rate measured in it).
    Returns ``(mean, low, high)``; one value gives a zero-width interval."""
    raw = np.asarray(values, dtype=np.float64)
    if raw.size == 0 or not (np.isfinite(raw).all() and (raw > 0).all()):
        raise ValueError(f"log_t_interval needs positive finite values, got {values}")
    v = np.log(raw)
    mean = float(v.mean())
    if v.size < 2:
        return math.exp(mean), math.exp(mean), math.exp(mean)
    from scipy import stats

    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def write_results(out_dir: str | Path, task: str, rows: list[BenchRow], quick: bool) -> Path:
    """Write ``out_dir/task.json``: the rows plus where and when they were measured. Returns the path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "task": task,
        "quick": quick,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": {"machine": platform.machine(), "python": platform.python_version()},
        "rows": [asdict(r) for r in rows],
    }
    path = out / f"{task}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


def headless_pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend (benchmarks plot on machines without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def snr_axes(ax, ylabel: str, title: str, xlabel: str = "SNR (dB)") -> None:
    """The look of every accuracy-against-SNR panel: labels, 0-1 range, grid, legend, title."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
