"""``dw-wifi``: 802.11a/g/n recordings through the legacy-preamble receiver, with LS, the robust LMMSE smoother and
the diffusion channel estimate side by side; EVM of SIGNAL and the data symbols, SIGNAL decoding. The diffusion
estimate falls back to the robust LMMSE on a frame whose LS taps it does not explain (counted: ``fallbacks``).

    dw-wifi [RECORDING.sigmf-meta ...] [--add-snr-db 20 10] [--json out.json]

Each recording (20 MHz complex, SigMF) is replayed through ``sigmf_source`` into the receiver of
:mod:`diffwireless.wifi`. Every detected frame is equalized three times, once per estimate, from the same FFT
windows: the figures differ by the estimate alone. ``--add-snr-db`` repeats it with white noise added to each frame
(per active carrier, relative to that frame's own channel power; frame positions and coarse frequency offset from
the clean recording, everything else measured again), to see the estimators on real channels at lower SNR. With no
recording (as in `make demo` on a fresh clone), frames are synthesized: 802.11a at 24 Mb/s through 3GPP
TDL-B channels, 30 ns, at the given SNRs, and the output says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from gnuradio import blocks, gr

from diffwireless import wifi
from diffwireless.engine import acquire_engine, device_name, release_engine
from diffwireless.errors import DiffWirelessError
from diffwireless.fading import TDL, OFDMGrid

from gnuradio.diffwireless.sigmf_source import sigmf_source
from gnuradio.diffwireless.apps._report import write_json

ESTIMATORS = ("ls", "lmmse_robust", "diffusion")
BOOTSTRAP = 1000
SYNTHETIC_SNRS_DB = (10.0, 20.0)
SYNTHETIC_FRAMES = 40


def replay(path: str) -> np.ndarray:
    """The recording's samples through ``sigmf_source`` (lossless replay) as complex64."""
    source = sigmf_source(path)
    sink = blocks.vector_sink_c()
    tb = gr.top_block("dw_wifi")
    tb.connect(source, sink)
    tb.run()
    out = np.asarray(sink.data(), dtype=np.complex64)
    if out.size != source.recording.num_samples:
        raise DiffWirelessError(f"replay of {path} gave {out.size} of {source.recording.num_samples} samples")
    return out


def _with_noise(iq: np.ndarray, start: int, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``iq`` with white noise at ``snr_db`` per active carrier relative to the frame at ``start``."""
    frame = wifi.cut_frame(iq, start, 0.0)
    taps, _ = wifi.ls_estimate(frame.ltf)
    var = float(np.mean(np.abs(taps[taps != 0]) ** 2)) * 10.0 ** (-snr_db / 10.0)
    noise = np.sqrt(var / 2) * (rng.standard_normal(iq.shape) + 1j * rng.standard_normal(iq.shape))
    return (iq + noise).astype(np.complex64)


def measure_frames(pieces, engine, diffusion: wifi.DiffusionTaps) -> dict:
    """``pieces``: ``(iq, stf_start, coarse_cfo)`` per frame. Returns per estimator the per-frame reports."""
    reports: dict[str, list[wifi.FrameReport]] = {e: [] for e in ESTIMATORS}
    snrs = []
    fallbacks = diffusion.fallbacks
    for iq, start, cfo in pieces:
        frame = wifi.cut_frame(iq, start, cfo)
        if frame is None or len(frame.symbols) == 0:
            continue
        ls, noise_var = wifi.ls_estimate(frame.ltf)
        snrs.append(10 * np.log10(np.mean(np.abs(ls[ls != 0]) ** 2) / noise_var))
        taps = {"ls": ls, "lmmse_robust": wifi.robust_lmmse_taps(ls, noise_var),
                "diffusion": diffusion(ls, noise_var, engine)}
        for name, t in taps.items():
            reports[name].append(wifi.evaluate_frame(frame, t))
    return {"reports": reports, "ltf_snr_db": snrs, "fallbacks": diffusion.fallbacks - fallbacks}


def summarize(reports: dict, rng: np.random.Generator) -> list[dict]:
    """EVM per estimator: the mean over frames of each frame's RMS EVM in dB (every evaluated symbol of the frame;
    a mean in dB, so that a frame whose estimate fails does not swamp the rest), with a bootstrap 95% interval over
    frames, and the mean gains over LS and over the robust LMMSE on the same frames, with paired intervals."""
    rows = []
    per_frame = {e: np.array([r.evm_db for r in reps]) for e, reps in reports.items()}
    n = per_frame["ls"].size
    if not n:
        return rows
    idx = rng.integers(0, n, size=(BOOTSTRAP, n))
    for e in ESTIMATORS:
        v = per_frame[e]
        lo, hi = np.percentile(v[idx].mean(axis=1), [2.5, 97.5])
        reps = reports[e]
        row = {"estimator": e, "evm_db": round(float(v.mean()), 2), "ci_low": round(float(lo), 2),
               "ci_high": round(float(hi), 2)}
        for base in ("ls", "lmmse_robust"):
            gain = per_frame[base] - v
            g_lo, g_hi = np.percentile(gain[idx].mean(axis=1), [2.5, 97.5])
            row[f"gain_over_{base}_db"] = [round(float(gain.mean()), 2), round(float(g_lo), 2), round(float(g_hi), 2)]
        rows.append({**row,
                     "worst_frame_evm_db": round(float(v.max()), 2),
                     "signal_valid": int(sum(r.signal.valid for r in reps)), "frames": len(reps),
                     "symbols": int(sum(r.n_symbols for r in reps))})
    return rows


def run_recording(path: str, add_snrs_db, engine, diffusion, rng) -> list[dict]:
    iq = replay(path)
    found = wifi.detect(iq)
    out = []
    for cond in [None, *add_snrs_db]:
        if cond is None:
            pieces = [(iq, s, c) for s, c in found]
        else:
            # Each frame gets its own noise (its own power), in a window around it.
            pieces = []
            for s, c in found:
                lo, hi = max(0, s - 64), min(len(iq), s + 400 + 80 * 100)  # 100 symbols: 2.4 kB at 24 Mb/s
                pieces.append((_with_noise(iq[lo:hi], s - lo, cond, rng), s - lo, c))
        m = measure_frames(pieces, engine, diffusion)
        out.append({"recording": Path(path).name, "added_noise_snr_db": cond, "frames_detected": len(found),
                    "ltf_snr_db_median": round(float(np.median(m["ltf_snr_db"])), 1) if m["ltf_snr_db"] else None,
                    "diffusion_fallbacks": m["fallbacks"], "rows": summarize(m["reports"], rng)})
    return out


def run_synthetic(snrs_db, engine, diffusion, rng) -> list[dict]:
    grid = OFDMGrid(n_fft=64, carriers=tuple(range(-32, 32)), n_symbols=1)
    out = []
    for snr in snrs_db:
        pieces = []
        for _ in range(SYNTHETIC_FRAMES):
            h = TDL("B", 30e-9, 0.0).sample(grid, 1, rng)[0, :, 0]
            iq, _ = wifi.synthesize_frame(24, 10, h, snr, float(rng.uniform(-50e3, 50e3)), rng)
            pieces += [(iq, s, c) for s, c in wifi.detect(iq)[:1]]
        m = measure_frames(pieces, engine, diffusion)
        out.append({"recording": f"synthetic 802.11a 24 Mb/s, TDL-B 30 ns, {SYNTHETIC_FRAMES} frames",
                    "added_noise_snr_db": None, "snr_db": snr, "frames_detected": len(pieces),
                    "ltf_snr_db_median": round(float(np.median(m["ltf_snr_db"])), 1) if m["ltf_snr_db"] else None,
                    "diffusion_fallbacks": m["fallbacks"], "rows": summarize(m["reports"], rng)})
    return out


def print_table(results: list[dict]) -> None:
    print(f"{'recording':58s} {'noise':>6s} {'frames':>6s} {'LTF SNR':>7s}  " +
          "  ".join(f"{e + ' EVM dB':>22s}" for e in ESTIMATORS) + "  diffusion gain dB vs ls / vs lmmse  "
          "SIGNAL ok (ls/lmmse/diff)  fallbacks")
    for r in results:
        cond = "-" if r["added_noise_snr_db"] is None else f"{r['added_noise_snr_db']:g} dB"
        if "snr_db" in r:
            cond = f"{r['snr_db']:g} dB"
        cells = "  ".join(f"{x['evm_db']:7.2f} [{x['ci_low']:6.2f},{x['ci_high']:6.2f}]" for x in r["rows"])
        ok = "/".join(str(x["signal_valid"]) for x in r["rows"])
        d = r["rows"][-1]
        gains = " / ".join(f"{g[0]:5.2f} [{g[1]:5.2f},{g[2]:5.2f}]" for g in (d["gain_over_ls_db"],
                                                                        d["gain_over_lmmse_robust_db"]))
        print(f"{r['recording'][:58]:58s} {cond:>6s} {r['frames_detected']:6d} {r['ltf_snr_db_median'] or 0:7.1f}  "
              f"{cells}  {gains}  {ok}  {r.get('diffusion_fallbacks', 0)}/{d['frames']}")


def verdict(results: list[dict]) -> list[str]:
    """Where the diffusion estimate earns its place against the robust LMMSE (the estimator a receiver runs without
    training), by the paired 95% interval of the EVM gain; one line per recording and noise level."""
    lines = []
    for r in results:
        cond = r.get("snr_db", r["added_noise_snr_db"])
        where = f"{r['recording']} ({'as recorded' if cond is None else f'{cond:g} dB'})"
        gain, low, high = r["rows"][-1]["gain_over_lmmse_robust_db"]
        if low > 0:
            lines.append(f"{where}: diffusion earns its place, {gain:.2f} dB better EVM than the robust LMMSE")
        elif high < 0:
            lines.append(f"{where}: diffusion does NOT earn its place, {-gain:.2f} dB worse EVM than the robust "
                         "LMMSE: use the robust LMMSE (or the stock equalizer) on such channels")
        else:
            lines.append(f"{where}: diffusion level with the robust LMMSE (gain {gain:.2f} dB, interval "
                         f"[{low:.2f}, {high:.2f}])")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dw-wifi", description=__doc__.split("\n\n")[0])
    p.add_argument("recordings", nargs="*", help="802.11 SigMF recordings at 20 MHz (none: synthesized frames)")
    p.add_argument("--add-snr-db", type=float, nargs="*", default=[],
                   help="also evaluate with noise added to each frame at these SNRs per carrier")
    p.add_argument("--model", default="chanest_tdl_sym", help="one-symbol 52-carrier channel prior")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    try:
        diffusion = wifi.DiffusionTaps(args.model)
        engine = acquire_engine(args.device)
        try:
            if args.recordings:
                results = [row for path in args.recordings
                           for row in run_recording(path, args.add_snr_db, engine, diffusion, rng)]
            else:
                print("no recording given: synthesized 802.11a frames through TDL channels (give SigMF "
                      "recordings of 802.11a/g frames to measure real ones)")
                results = run_synthetic(args.add_snr_db or SYNTHETIC_SNRS_DB, engine, diffusion, rng)
            device = device_name(engine.device)
        finally:
            release_engine(engine)
    except DiffWirelessError as e:
        print(f"dw-wifi: {e}", file=sys.stderr)
        return 1
    print_table(results)
    for line in verdict(results):
        print(line)
    if args.json:
        write_json(args.json, {"model": args.model, "device": device, "nfe": 1, "results": results})
    return 0
