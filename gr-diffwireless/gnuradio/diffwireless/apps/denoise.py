"""``dw-denoise``: add noise to a recording, denoise it through the engine in a flowgraph, and measure both.

    dw-denoise [RECORDING] [--snr-db 5] [--signal-power 0.25] [--model iq_denoiser_qpsk_sps4] [--steps 1]

The flowgraph is ``sigmf_source -> + Gaussian noise -> diffusion_denoiser -> sink``, with the clean and the noisy
stream kept too. The recording stands in for the clean signal (the bundled demo is at about 34 dB SNR), and the
output SNR of the noisy input, of the window LMMSE estimate (the best linear filter of the same window, with the
covariance of the model's training signal) and of the diffusion denoiser is measured where the signal is on.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from gnuradio import analog, blocks, gr

from diffwireless.denoiser import output_snr_db, window_lmmse
from diffwireless.errors import DiffWirelessError
from diffwireless.paths import bundled_recording

from gnuradio.diffwireless.diffusion_denoiser import diffusion_denoiser
from gnuradio.diffwireless.sigmf_source import sigmf_source
from gnuradio.diffwireless.apps._report import write_json


def run(path: str, snr_db: float, signal_power: float, model: str, steps: int, seed: int) -> dict:
    """Run the flowgraph; returns the measurements as a dict (also what ``--json`` writes)."""
    source = sigmf_source(path)
    noise = analog.noise_source_c(analog.GR_GAUSSIAN, float(np.sqrt(signal_power * 10 ** (-snr_db / 10))), seed)
    add = blocks.add_vcc(1)
    denoiser = diffusion_denoiser(model, snr_db=snr_db, num_steps=steps, signal_power=signal_power)
    clean, noisy, out = blocks.vector_sink_c(), blocks.vector_sink_c(), blocks.vector_sink_c()
    tb = gr.top_block("dw_denoise")
    tb.connect(source, (add, 0))
    tb.connect(noise, (add, 1))
    tb.connect(add, denoiser, out)
    tb.connect(source, clean)
    tb.connect(add, noisy)
    tb.run()
    if denoiser.error is not None:
        raise DiffWirelessError(f"the denoiser stopped: {denoiser.error}")
    x, y, z = (np.asarray(s.data(), dtype=np.complex64) for s in (clean, noisy, out))
    # Where the signal is on: its power over 64 samples above half the stated power.
    envelope = np.convolve(np.abs(x) ** 2, np.ones(64) / 64, mode="same")
    on = envelope > 0.5 * signal_power
    nfe = denoiser.denoiser.nfe(snr_db)
    cov = _training_covariance(denoiser.denoiser.window)
    methods = {"noisy input": (y, 0), "window LMMSE": (window_lmmse(y, cov, snr_db, signal_power), 0),
               "diffusion DDIM": (z, nfe)}
    rows = []
    for name, (est, n) in methods.items():
        value, low, high = output_snr_db(est, x, on)
        rows.append({"method": name, "nfe": n, "output_snr_db": round(value, 2), "ci_low": round(low, 2),
                     "ci_high": round(high, 2)})
    stats = denoiser.stats()
    return {"recording": str(source.recording.path), "model": denoiser.denoiser.model.name, "snr_db": snr_db,
            "signal_power": signal_power, "samples_in": source.recording.num_samples, "samples_out": int(z.size),
            "samples_measured": int(on.sum()), "device": stats.get("device", ""), "rows": rows}


def _training_covariance(window: int) -> np.ndarray:
    from diffwireless.recipes import iq_denoiser

    if window != iq_denoiser.WINDOW:
        raise DiffWirelessError(f"the window LMMSE baseline knows the covariance of iq_denoiser's signal only "
                                f"({iq_denoiser.WINDOW}-sample windows), not of {window}-sample windows")
    return iq_denoiser.window_lmmse_cov(iq_denoiser.WindowSource(seed=123))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dw-denoise", description=__doc__.split("\n\n")[0])
    parser.add_argument("recording", nargs="?", default=None, help="SigMF recording (default: the bundled demo)")
    parser.add_argument("--snr-db", type=float, default=5.0, help="SNR of the added noise (dB)")
    parser.add_argument("--signal-power", type=float, default=0.25,
                        help="power of the signal in the recording when on (the demo's bursts: 0.25)")
    parser.add_argument("--model", default="iq_denoiser_qpsk_sps4", help="model file or shipped model name")
    parser.add_argument("--steps", type=int, default=1, help="DDIM steps")
    parser.add_argument("--seed", type=int, default=1, help="seed of the added noise")
    parser.add_argument("--json", help="write the measurements as JSON here")
    args = parser.parse_args(argv)
    try:
        report = run(args.recording or bundled_recording(), args.snr_db, args.signal_power, args.model, args.steps,
                     args.seed)
    except (DiffWirelessError, ValueError) as exc:
        print(f"dw-denoise: error: {exc}", file=sys.stderr)
        return 2
    lossless = report["samples_out"] == report["samples_in"]
    print(f"denoised through the engine ({report['device']}) with {report['model']}: {report['samples_out']} samples "
          f"out of {report['samples_in']} in ({'lossless' if lossless else 'MISMATCH'})")
    print(f"  noise added at {args.snr_db:g} dB SNR; output SNR where the signal is on "
          f"({report['samples_measured']} samples), dB [95% interval]:")
    for row in report["rows"]:
        nfe = f"NFE {row['nfe']}" if row["nfe"] else "no network"
        print(f"    {row['method']:<15} {row['output_snr_db']:6.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]  "
              f"({nfe})")
    if args.json:
        write_json(args.json, report)
        print(f"json: {args.json}")
    return 0 if lossless else 1


if __name__ == "__main__":
    sys.exit(main())
