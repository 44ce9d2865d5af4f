"""``dw-bench anomaly``: ROC AUC and detection rate at 1% false alarms of the AE-DDPM detector and its baselines.

Scenes: :mod:`diffwireless.spectrum_scenes` (the band ``anomaly_band`` was trained on; fresh seeds). For each
anomaly type and JNR (-15 to 30 dB in 2.5 dB steps, the goal's -15..10 and beyond; ``--quick``: 5 dB steps),
anomalous windows are scored beside
one shared set of normal windows by every method: ``ae_ddpm`` (the shipped model through the engine), ``ae`` (its
autoencoder alone, same network call), ``energy`` (the CFAR energy detector: window power, threshold at the 99th
percentile of the normal windows) and ``kurtosis`` (spectral kurtosis). Windows per point: 1000 anomalous against
4000 normal (``--quick``: 300 against 1000).

Rows: ``auc`` with the Hanley-McNeil 95% interval (Radiology 143, 1982); ``pd_at_pfa_0.01`` (threshold from the
normal windows of the same run) with the Wilson interval; per type and method the JNR at which Pd reaches 0.9
(linear between grid points; absent when it is not reached by 30 dB); and the mean over types of the energy
detector's JNR minus the method's (the goal's ">= 3 dB lower" measure, over the types where both reach 0.9).

Speed: input samples/s through ``vector source -> anomaly_detector -> null sink`` (median of 3 runs).
"""

from __future__ import annotations

import numpy as np
from gnuradio import gr

from diffwireless import spectrum_scenes as scenes
from diffwireless.anomaly import METHODS, AnomalyDetector, detection_rate, roc_auc
from diffwireless.bench.results import BenchRow, hanley_mcneil, headless_pyplot, wilson_interval
from diffwireless.engine import acquire_engine, device_name, release_engine
from diffwireless.progress import track

from gnuradio.diffwireless.anomaly_detector import anomaly_detector
from gnuradio.diffwireless.bench.flowgraph import block_rates

MODEL = "anomaly_band"
PFA = 0.01
PD_TARGET = 0.9
# The goal's range is -15..10 dB; the grid goes on to 30 dB so that the energy detector, which must outshout the
# normal traffic's power swings, reaches Pd 0.9 somewhere and the JNR gain against it can be measured.
JNR_RANGE_DB = (-15.0, 30.0)


def scores(det: AnomalyDetector, iq: np.ndarray, engine) -> dict[str, np.ndarray]:
    out = det.scores(iq, engine)  # the engine batches it
    return {m: det.method_scores(m, iq, out) for m in METHODS}


def jnr_at_pd(jnrs: np.ndarray, pds: np.ndarray, target: float = PD_TARGET) -> float | None:
    """Lowest JNR where the Pd curve crosses ``target`` (linear between points), None when it never does."""
    for i in range(len(jnrs)):
        if pds[i] >= target:
            if i == 0:
                return float(jnrs[0])
            f = (target - pds[i - 1]) / (pds[i] - pds[i - 1])
            return float(jnrs[i - 1] + f * (jnrs[i] - jnrs[i - 1]))
    return None


def throughput(quick: bool, device: str) -> list[BenchRow]:
    det = AnomalyDetector(MODEL)
    n_windows = 1000 if quick else 4000
    x = scenes.normal_windows(n_windows, np.random.default_rng(77)).ravel()
    rates = block_rates(lambda: anomaly_detector(MODEL, engine="cpu" if device == "cpu" else "auto"), x,
                        gr.sizeof_float, len(x))
    return [BenchRow("ae_ddpm", "flowgraph vector_source -> anomaly_detector -> null_sink", "samples_per_s",
                     float(np.median(rates)), float(min(rates)), float(max(rates)), nfe=det.nfe, device=device,
                     extra={"samples": len(x), "window": det.window, "runs": 3, "interval": "min..max of 3 runs"})]


def run(quick: bool = False) -> list[BenchRow]:
    det = AnomalyDetector(MODEL)
    engine = acquire_engine("auto")
    device = device_name(engine.device)
    jnrs = np.arange(JNR_RANGE_DB[0], JNR_RANGE_DB[1] + 0.01, 5.0 if quick else 2.5)
    n_normal, n_anom = (1000, 300) if quick else (4000, 1000)
    rng = np.random.default_rng(2027)
    rows: list[BenchRow] = []
    try:
        normal = scores(det, scenes.normal_windows(n_normal, rng), engine)
        pd_curves: dict[tuple[str, str], list[float]] = {}
        for kind in track(scenes.ANOMALIES, "anomaly: kinds"):
            for jnr in jnrs:
                anom = scores(det, scenes.anomalous_windows(kind, n_anom, float(jnr), rng), engine)
                for m in METHODS:
                    nfe = det.nfe if m in ("ae_ddpm", "ae") else 0
                    dev = device if nfe else "cpu"
                    setting = f"{kind} jnr_db={jnr:g}"
                    extra = {"anomaly": kind, "jnr_db": float(jnr), "normal_windows": n_normal,
                             "anomalous_windows": n_anom}
                    auc = roc_auc(normal[m], anom[m])
                    rows.append(BenchRow(m, setting, "auc", auc, *hanley_mcneil(auc, n_normal, n_anom), nfe=nfe,
                                         device=dev, extra=extra))
                    pd, thr = detection_rate(normal[m], anom[m], PFA)
                    hits = int(round(pd * n_anom))
                    rows.append(BenchRow(m, setting, f"pd_at_pfa_{PFA:g}", pd, *wilson_interval(hits, n_anom),
                                         nfe=nfe, device=dev, extra=dict(extra, threshold=thr, detections=hits)))
                    pd_curves.setdefault((kind, m), []).append(pd)
        need: dict[tuple[str, str], float | None] = {}
        for (kind, m), pds in pd_curves.items():
            need[kind, m] = jnr_at_pd(jnrs, np.array(pds))
            if need[kind, m] is not None:
                v = need[kind, m]
                rows.append(BenchRow(m, kind, f"jnr_db_at_pd_{PD_TARGET:g}", v, v, v,
                                     extra={"interval": "none (interpolated)", "pfa": PFA}))
        for m in METHODS:
            gains = [need[k, "energy"] - need[k, m] for k in scenes.ANOMALIES
                     if need[k, "energy"] is not None and need[k, m] is not None]
            missing = [k for k in scenes.ANOMALIES if need[k, "energy"] is None or need[k, m] is None]
            if gains:
                g = float(np.mean(gains))
                rows.append(BenchRow(m, "mean over anomaly types", "jnr_gain_db_vs_energy", g, min(gains),
                                     max(gains), extra={"types": len(gains), "not_reached_by_30_db": missing,
                                                        "interval": "min..max over types"}))
            at0 = [r.value for r in rows if r.method == m and r.metric == "auc" and r.extra.get("jnr_db") == 0.0]
            if at0:
                rows.append(BenchRow(m, "mean over anomaly types, jnr_db=0", "mean_auc", float(np.mean(at0)),
                                     float(min(at0)), float(max(at0)), nfe=det.nfe if m in ("ae_ddpm", "ae") else 0,
                                     extra={"interval": "min..max over types"}))
    finally:
        release_engine(engine)
    rows += throughput(quick, device)
    return rows


def plot(rows: list[BenchRow], path) -> None:
    plt = headless_pyplot()

    kinds = [k for k in scenes.ANOMALIES if any(r.extra.get("anomaly") == k for r in rows)]
    fig, axes = plt.subplots(2, len(kinds), figsize=(3.2 * len(kinds), 6), squeeze=False)
    styles = {"ae_ddpm": "o-", "ae": "^--", "energy": "s-", "kurtosis": "d:"}
    for col, kind in enumerate(kinds):
        for row, metric in enumerate(("auc", f"pd_at_pfa_{PFA:g}")):
            ax = axes[row, col]
            for m, style in styles.items():
                pts = sorted((r.extra["jnr_db"], r.value, r.ci_low, r.ci_high) for r in rows
                             if r.method == m and r.metric == metric and r.extra.get("anomaly") == kind)
                if not pts:
                    continue
                j, v, lo, hi = (np.array(x) for x in zip(*pts))
                ax.plot(j, v, style, label=m, ms=3, lw=1)
                ax.fill_between(j, lo, hi, alpha=0.15)
            ax.set_title(f"{kind}: {'ROC AUC' if row == 0 else 'Pd at Pfa 1%'}", fontsize=9)
            ax.set_xlabel("JNR (dB)")
            ax.set_ylim(0.4 if row == 0 else 0.0, 1.01)
            ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
