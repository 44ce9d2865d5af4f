"""``dw-bench detector``: BER of the diffusion detector against its baselines, its step count, and its speed.

BER vs Es/N0 (-5 to 20 dB in 2.5 dB steps) for QPSK, 16QAM and 64QAM (``--quick``: 16QAM) on four links:

- ``awgn``: ideal hardware; the detector is the ``detector_C_awgn`` model (trained on ideal hardware).
- ``impaired``: the nominal hardware profile (:data:`~diffwireless.channel.DEFAULT_PROFILE`), AWGN.
- ``impaired+laplacian`` / ``impaired+impulsive``: the same hardware, out-of-distribution noise of the same
  variance (never seen in training).

Methods, all deciding the same received symbols: ``diffusion`` (SNR-matched DDIM with the block's default
auto steps, 2 below 10 dB and 1 above; its NFE per symbol in the row), ``euclidean`` (GNU Radio's
``constellation_decoder_cb``, run in a flowgraph), ``dnn`` (the MLP classifier
baseline, same data and parameter count), ``genie_ml`` (bitwise MAP knowing the exact impairment and noise law:
the lowest BER any symbol-by-symbol detector can reach) and ``theory`` (exact AWGN BER of minimum-distance
detection of the unimpaired constellation). Intervals: Wilson 95%. Full mode draws symbols until every
method has made at least 100 bit errors or 2 million symbols are spent (the row's ``extra`` has the counts); once
no method errs in a whole point, the link's higher SNRs are not simulated (absent from the results).

Steps: on impaired 16QAM, the Es/N0 needed for BER 1e-3 by DDIM with 1, 2, 4 and 10 steps and by the two full
chains from the matched step (DDIM through every step, eta 0; ancestral DDPM), interpolated on a 0.5 dB grid, and
the loss of each variant against each full chain and against genie ML; the DNN and Euclidean on the same grid.

Speed: symbols/s through ``vector source -> diffusion_detector (bits) -> null sink`` at 5 and 16 dB, beside
``constellation_decoder_cb``.
"""

from __future__ import annotations

import time

import numpy as np
from gnuradio import blocks, digital, gr

from diffwireless.bench.results import BenchRow, headless_pyplot, wilson_interval
from diffwireless.channel import DEFAULT_PROFILE, IDEAL, simulate
from diffwireless.constellations import Constellation, exact_awgn_ber, get_constellation
from diffwireless.detector import DiffusionDetector, DNNDetector, genie_bits
from diffwireless.engine import acquire_engine, device_name, release_engine

from gnuradio.diffwireless.constellations import gr_constellation
from gnuradio.diffwireless.diffusion_detector import diffusion_detector

SNRS_DB = tuple(np.arange(-5.0, 20.01, 2.5))
LINKS = {"awgn": (IDEAL, "gaussian"), "impaired": (DEFAULT_PROFILE.nominal, "gaussian"),
         "impaired+laplacian": (DEFAULT_PROFILE.nominal, "laplacian"),
         "impaired+impulsive": (DEFAULT_PROFILE.nominal, "impulsive")}
STEPS = 0  # the block's default (auto)
STEP_SWEEP = (1, 2, 4, 10)
TARGET_BER = 1e-3


def model_names(constellation: str, link: str) -> tuple[str, str]:
    suffix = "_awgn" if link == "awgn" else ""
    return f"detector_{constellation}{suffix}", f"detector_{constellation}{suffix}_dnn"


def gr_euclidean(c: Constellation, y: np.ndarray) -> np.ndarray:
    """GNU Radio's minimum-distance decision (``constellation_decoder_cb``) of unit-power symbols ``y``."""
    tb = gr.top_block("bench_euclidean")
    src = blocks.vector_source_c((np.asarray(y) * c.gr_scale).astype(np.complex64))
    snk = blocks.vector_sink_b()
    tb.connect(src, digital.constellation_decoder_cb(gr_constellation(c)), snk)
    tb.run()
    return np.asarray(snk.data(), dtype=np.int64)


def ber_point(c: Constellation, link: str, snr_db: float, engine, min_errors: int, chunk: int, max_symbols: int,
              rng: np.random.Generator, device: str) -> list[BenchRow]:
    imp, noise = LINKS[link]
    diff_name, dnn_name = model_names(c.name, link)
    det, dnn = DiffusionDetector(diff_name, num_steps=STEPS), DNNDetector(dnn_name)
    deciders = {  # each gives bits
        "diffusion": lambda y: det.detect(y, snr_db, engine).bits,
        "euclidean": lambda y: c.indices_to_bits(gr_euclidean(c, y)),
        "dnn": lambda y: dnn.detect(y, snr_db, engine).bits,
        "genie_ml": lambda y: genie_bits(c, y, imp, snr_db, noise),
    }
    errors = dict.fromkeys(deciders, 0)
    bits = symbols = 0
    while True:
        run = simulate(c.points, chunk, snr_db, imp, rng, noise)
        sent = c.indices_to_bits(run.indices)
        for name, decide in deciders.items():
            errors[name] += int(np.count_nonzero(decide(run.received) != sent))
        bits += sent.size
        symbols += chunk
        if min(errors.values()) >= min_errors or symbols >= max_symbols:
            break
    setting = f"{c.name} {link} snr_db={snr_db:g}"
    rows = []
    nfes = {"diffusion": det.nfe(snr_db), "euclidean": 0, "dnn": 1, "genie_ml": 0}
    for name, e in errors.items():
        lo, hi = wilson_interval(e, bits)
        rows.append(BenchRow(name, setting, "ber", e / bits, lo, hi, nfe=nfes[name],
                             device=device if nfes[name] else "cpu",
                             extra={"errors": e, "bits": bits, "constellation": c.name, "link": link,
                                    "snr_db": float(snr_db), "model": diff_name if name == "diffusion" else
                                    dnn_name if name == "dnn" else ""}))
    theory = exact_awgn_ber(c, snr_db)
    rows.append(BenchRow("theory", setting, "ber", theory, theory, theory,
                         extra={"constellation": c.name, "link": link, "snr_db": float(snr_db),
                                "what": "exact AWGN BER, unimpaired"}))
    return rows


def required_snr(snrs: np.ndarray, bers: np.ndarray, target: float = TARGET_BER) -> float:
    """Es/N0 where the BER curve crosses ``target`` (log-linear interpolation); NaN when it does not."""
    logb = np.log10(np.maximum(bers, 1e-12))
    for i in range(len(snrs) - 1):
        if logb[i] >= np.log10(target) > logb[i + 1]:
            f = (logb[i] - np.log10(target)) / (logb[i] - logb[i + 1])
            return float(snrs[i] + f * (snrs[i + 1] - snrs[i]))
    return float("nan")


def step_sweep(engine, quick: bool, device: str) -> list[BenchRow]:
    """Es/N0 for BER 1e-3 on impaired 16QAM by each sampler variant and by the baselines, on one 0.5 dB grid."""
    c, imp = get_constellation("16qam"), DEFAULT_PROFILE.nominal
    snrs = np.arange(14.0, 20.01, 0.5)
    n = 100_000 if quick else 400_000
    rng = np.random.default_rng(11)
    runs = [simulate(c.points, n, s, imp, rng) for s in snrs]
    variants = [(f"ddim {k} steps", DiffusionDetector("detector_16qam", num_steps=k)) for k in STEP_SWEEP]
    # The two full chains from the matched step: deterministic DDIM through every step, and ancestral DDPM.
    variants.append(("ddim every step", DiffusionDetector("detector_16qam", num_steps=1000)))
    variants.append(("ddpm full chain", DiffusionDetector("detector_16qam", sampler="ddpm")))
    dnn = DNNDetector("detector_16qam_dnn")
    deciders = [(name, (lambda y, s, d=det: d.detect(y, s, engine).bits), det) for name, det in variants]
    deciders += [("dnn", lambda y, s: dnn.detect(y, s, engine).bits, None),
                 ("euclidean", lambda y, s: c.indices_to_bits(gr_euclidean(c, y)), None),
                 ("genie_ml", lambda y, s: genie_bits(c, y, imp, s), None)]
    need: dict[str, float] = {}
    rows = []
    for name, decide, det in deciders:
        bers = [float(np.mean(decide(run.received, float(s)) != c.indices_to_bits(run.indices)))
                for s, run in zip(snrs, runs)]
        need[name] = required_snr(snrs, np.array(bers))
        nfe = float(np.mean([det.nfe(float(s)) for s in snrs])) if det is not None else (1.0 if name == "dnn" else 0)
        rows.append(BenchRow(name, "16qam impaired", "snr_db_at_ber_1e-3", need[name], need[name], need[name],
                             nfe=nfe, device=device if nfe else "cpu",
                             extra={"snr_grid_db": snrs.tolist(), "ber": bers, "symbols_per_point": n,
                                    "interval": "none (interpolated)"}))
    for ref in ("ddim every step", "ddpm full chain", "genie_ml"):
        for name, _ in variants:
            if name == ref:
                continue
            loss = need[name] - need[ref]
            rows.append(BenchRow(name, "16qam impaired", "loss_db_vs_" + ref.replace(" ", "_"), loss, loss, loss,
                                 nfe=next(r.nfe for r in rows if r.method == name), device=device))
    return rows


def throughput(quick: bool, device: str) -> list[BenchRow]:
    c = get_constellation("16qam")
    n = 200_000 if quick else 1_000_000
    rows = []
    for snr in (5.0, 16.0):
        y = simulate(c.points, n, snr, DEFAULT_PROFILE.nominal, np.random.default_rng(5)).received
        for method in ("diffusion", "euclidean"):
            rates = []
            for _ in range(3):
                tb = gr.top_block("bench_detector_speed")
                src = blocks.vector_source_c(y.astype(np.complex64) * (1.0 if method == "diffusion" else c.gr_scale))
                if method == "diffusion":
                    blk = diffusion_detector("16qam", snr_db=snr, num_steps=STEPS, output="bits", engine="cpu")
                    snk = blocks.null_sink(gr.sizeof_char)
                else:
                    blk = digital.constellation_decoder_cb(gr_constellation(c))
                    snk = blocks.null_sink(gr.sizeof_char)
                tb.connect(src, blk, snk)
                t0 = time.perf_counter()
                tb.run()
                rates.append(n / (time.perf_counter() - t0))
            nfe = DiffusionDetector("detector_16qam", num_steps=STEPS).nfe(snr) if method == "diffusion" else 0
            rows.append(BenchRow(method, f"16qam impaired snr_db={snr:g} flowgraph", "symbols_per_s",
                                 float(np.median(rates)), float(min(rates)), float(max(rates)), nfe=nfe,
                                 device=device if method == "diffusion" else "cpu",
                                 extra={"symbols": n, "runs": 3, "interval": "min..max of 3 runs"}))
    return rows


def run(quick: bool = False) -> list[BenchRow]:
    engine = acquire_engine("auto")
    device = device_name(engine.device)
    rows: list[BenchRow] = []
    try:
        constellations = ("16qam",) if quick else ("qpsk", "16qam", "64qam")
        rng = np.random.default_rng(2026)
        for name in constellations:
            c = get_constellation(name)
            for link in LINKS:
                for snr in SNRS_DB:
                    if quick:
                        point = ber_point(c, link, float(snr), engine, 0, 20_000, 20_000, rng, device)
                    else:
                        point = ber_point(c, link, float(snr), engine, 100, 100_000, 2_000_000, rng, device)
                    rows += point
                    # BER falls with SNR: once no method makes an error in the whole run, the higher points are
                    # not simulated (they are absent from the results, not reported as zero).
                    if not quick and all(r.extra.get("errors", 1) == 0 for r in point if r.method != "theory"):
                        break
        rows += step_sweep(engine, quick, device)
    finally:
        release_engine(engine)
    rows += throughput(quick, device)
    return rows


def plot(rows: list[BenchRow], path) -> None:
    plt = headless_pyplot()

    ber = [r for r in rows if r.metric == "ber"]
    panels = sorted({(r.extra["constellation"], r.extra["link"]) for r in ber},
                    key=lambda p: (["qpsk", "16qam", "64qam"].index(p[0]), list(LINKS).index(p[1])))
    cols = len(LINKS)
    nrows = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows), squeeze=False)
    styles = {"diffusion": "o-", "euclidean": "s--", "dnn": "^-", "genie_ml": "k:", "theory": "k-"}
    for ax, (cname, link) in zip(axes.ravel(), panels):
        for method, style in styles.items():
            pts = sorted((r.extra["snr_db"], r.value, r.ci_low, r.ci_high) for r in ber
                         if r.method == method and r.extra["constellation"] == cname and r.extra["link"] == link)
            if not pts:
                continue
            s, v, lo, hi = (np.array(x) for x in zip(*pts))
            keep = v > 0
            ax.semilogy(s[keep], v[keep], style, label=method, ms=3, lw=1)
            if method not in ("theory",):
                ax.fill_between(s[keep], lo[keep], hi[keep], alpha=0.15)
        ax.set_title(f"{cname}, {link}", fontsize=9)
        ax.set_xlabel("Es/N0 (dB)")
        ax.set_ylim(1e-6, 1)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    axes.ravel()[0].set_ylabel("BER")
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
