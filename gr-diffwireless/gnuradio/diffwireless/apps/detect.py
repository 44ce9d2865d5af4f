"""``dw-detect``: replay an impaired symbol capture through the diffusion detector and its baselines; print BER.

    dw-detect [RECORDING] [--steps 0] [--json OUT]
    dw-detect --record OUT [--constellation 16qam] [--snr-db 16] [--symbols 40000] [--seed 7]

Replay: ``sigmf_source -> diffusion_detector`` and ``sigmf_source -> constellation_decoder_cb`` (the Euclidean
decision of GNU Radio) in one flowgraph; the DNN receiver and genie ML decide the same replayed symbols in the core,
and the exact AWGN BER of the constellation (no impairment) is printed beside them. The capture's metadata says
how it was made (constellation, SNR, impairments, and the seed of the sent symbols, which are regenerated).

Record: the example flowgraph's transmitter and link, in GNU Radio blocks: symbol indices ->
``constellation_encoder_bc`` -> unit power -> ``iqbal_gen`` -> ``distortion_2_gen`` -> ``distortion_3_gen`` ->
``phase_noise_gen`` -> + ``noise_source_c`` -> ``quantizer`` on I and Q -> ``sigmf_sink``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
from gnuradio import analog, blocks, channels, digital, gr

from diffwireless.bench.results import wilson_interval
from diffwireless.channel import DEFAULT_PROFILE, Impairments
from diffwireless.constellations import exact_awgn_ber, get_constellation, noise_var
from diffwireless.detector import DNNDetector, genie_bits
from diffwireless.engine import acquire_engine, release_engine
from diffwireless.errors import DiffWirelessError
from diffwireless.paths import bundled_recording

from gnuradio.diffwireless.constellations import gr_constellation
from gnuradio.diffwireless.diffusion_detector import diffusion_detector
from gnuradio.diffwireless.sigmf_sink import sigmf_sink
from gnuradio.diffwireless.sigmf_source import sigmf_source
from gnuradio.diffwireless.apps._report import write_json

DEMO_CAPTURE = "demo_16qam_impaired"
TAIL_PAD = 64  # symbols sent after the recorded ones, see record()
META_KEY = "diffwireless:link"


def sent_indices(order: int, n: int, seed: int) -> np.ndarray:
    """The transmitted symbol indices of a capture, regenerated from its seed."""
    return np.random.default_rng(seed).integers(0, order, n)


def connect_link(tb: gr.top_block, source, impairments: Impairments, snr_db: float, seed: int):
    """Wire the impairment chain and the noise of the example flowgraph after ``source`` (unit-power symbols);
    returns the block whose output is the received stream."""
    imp = impairments
    chain = [channels.iqbal_gen(imp.iq_magnitude_db, imp.iq_phase_deg, 0),
             channels.distortion_2_gen(imp.distortion2_beta), channels.distortion_3_gen(imp.distortion3_beta),
             channels.phase_noise_gen(imp.phase_noise_mag, imp.phase_noise_alpha)]
    add = blocks.add_cc()
    noise = analog.noise_source_c(analog.GR_GAUSSIAN, math.sqrt(float(noise_var(snr_db))), seed)
    tb.connect(source, *chain, (add, 0))
    tb.connect(noise, (add, 1))
    if not imp.adc_bits:
        return add
    c2f, f2c = blocks.complex_to_float(), blocks.float_to_complex()
    tb.connect(add, c2f)
    tb.connect((c2f, 0), channels.quantizer(imp.adc_bits), (f2c, 0))
    tb.connect((c2f, 1), channels.quantizer(imp.adc_bits), (f2c, 1))
    return f2c


def record(out: str, constellation: str, snr_db: float, n: int, seed: int, overwrite: bool = False) -> Path:
    """Make an impaired capture with GNU Radio blocks (the nominal hardware profile)."""
    c = get_constellation(constellation)
    imp = DEFAULT_PROFILE.nominal
    idx = sent_indices(c.order, n, seed)
    tb = gr.top_block("dw_detect_record")
    # Stock distortion_3_gen and phase_noise_gen (GNU Radio 3.10.5) drop the last samples of a finite stream that
    # do not fill the host's SIMD alignment (up to 15 on an AVX-512 machine): send TAIL_PAD more symbols and cut
    # the recording at exactly n.
    src = blocks.vector_source_b(np.concatenate([idx, np.zeros(TAIL_PAD, idx.dtype)]).astype(np.uint8).tolist())
    enc = digital.constellation_encoder_bc(gr_constellation(c))
    unit = blocks.multiply_const_cc(1.0 / c.gr_scale)
    tb.connect(src, enc, unit)
    received = blocks.head(gr.sizeof_gr_complex, n)
    tb.connect(connect_link(tb, unit, imp, snr_db, seed + 1), received)
    desc = (f"{c.name} at 1 sample/symbol through the example flowgraph's impaired link at Es/N0 {snr_db:g} dB; "
            f"made by dw-detect --record")
    sink = sigmf_sink(out, sample_rate=1.0, description=desc, overwrite=overwrite)
    tb.connect(received, sink)
    tb.run()
    meta_path = Path(str(out) + ".sigmf-meta")
    meta = json.loads(meta_path.read_text())
    meta["global"][META_KEY] = {"constellation": c.name, "gr_constructor": c.gr_constructor, "snr_db": snr_db,
                                "symbols": n, "tx_seed": seed, "noise_seed": seed + 1,
                                "tx": "numpy default_rng(tx_seed).integers(0, M, symbols)",
                                "impairments": imp.to_dict(), "unit_power": True}
    # SigMF: a namespace outside core is declared as an extension (optional: readers may ignore it).
    meta["global"].setdefault("core:extensions", []).append({"name": "diffwireless", "version": "1.0.0",
                                                            "optional": True})
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return meta_path


def replay(path: str, steps: int = 0) -> dict:
    """Run the capture through the detector and the Euclidean decoder in one flowgraph; BER of every method."""
    source = sigmf_source(path)
    link = source.recording.metadata["global"].get(META_KEY)
    if not isinstance(link, dict):
        raise DiffWirelessError(f"{path}: not a detector capture (its metadata has no '{META_KEY}')")
    c = get_constellation(link["constellation"])
    snr_db = float(link["snr_db"])
    imp = Impairments(**{f.name: link["impairments"][f.name] for f in fields(Impairments)})
    det = diffusion_detector(c.name, snr_db=snr_db, num_steps=steps, output="indices")
    scale, dec = blocks.multiply_const_cc(c.gr_scale), digital.constellation_decoder_cb(gr_constellation(c))
    rx, out_det, out_euc = blocks.vector_sink_c(), blocks.vector_sink_b(), blocks.vector_sink_b()
    tb = gr.top_block("dw_detect")
    tb.connect(source, det, out_det)
    tb.connect(source, scale, dec, out_euc)
    tb.connect(source, rx)
    tb.run()
    if det.error is not None:
        raise DiffWirelessError(f"the detector stopped: {det.error}")
    y = np.asarray(rx.data(), dtype=np.complex64)
    sent = sent_indices(c.order, int(link["symbols"]), int(link["tx_seed"]))
    if len(y) != len(sent):
        raise DiffWirelessError(f"{path}: {len(y)} samples, but its metadata says {len(sent)} symbols were sent")
    engine = acquire_engine("auto")
    try:
        dnn = DNNDetector(f"detector_{c.name}_dnn").detect(y, snr_db, engine).indices
    finally:
        release_engine(engine)
    bits = {"diffusion": (c.indices_to_bits(np.asarray(out_det.data(), dtype=np.int64)), det.detector.nfe(snr_db)),
            "euclidean (constellation_decoder_cb)": (c.indices_to_bits(np.asarray(out_euc.data(), dtype=np.int64)), 0),
            "dnn": (c.indices_to_bits(dnn), 1), "genie ml (bitwise MAP)": (genie_bits(c, y, imp, snr_db), 0)}
    sent_bits = c.indices_to_bits(sent)
    rows = []
    for method, (decided, nfe) in bits.items():
        if decided.size != sent_bits.size:
            raise DiffWirelessError(f"{method}: {decided.size} bits decided for {sent_bits.size} sent")
        errors = int(np.count_nonzero(decided != sent_bits))
        lo, hi = wilson_interval(errors, sent_bits.size)
        rows.append({"method": method, "nfe": nfe, "ber": errors / sent_bits.size, "ci_low": lo, "ci_high": hi,
                     "errors": errors, "bits": int(sent_bits.size)})
    theory = exact_awgn_ber(c, snr_db)
    rows.append({"method": "theory (AWGN, unimpaired)", "nfe": 0, "ber": theory, "ci_low": theory,
                 "ci_high": theory, "errors": None, "bits": None})
    return {"recording": str(path), "constellation": c.name, "snr_db": snr_db, "symbols_in": len(y),
            "symbols_out": len(out_det.data()), "model": det.detector.model.name,
            "device": det.stats().get("device", ""), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dw-detect", description=__doc__.split("\n\n")[0])
    parser.add_argument("recording", nargs="?", default=None, help="detector capture (default: the bundled one)")
    parser.add_argument("--steps", type=int, default=0, help="DDIM steps of the diffusion detector (0: auto)")
    parser.add_argument("--json", help="write the measurements as JSON here")
    parser.add_argument("--record", metavar="OUT", help="make a capture instead (OUT.sigmf-meta/-data)")
    parser.add_argument("--constellation", default="16qam")
    parser.add_argument("--snr-db", type=float, default=16.0)
    parser.add_argument("--symbols", type=int, default=40_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.record:
            meta = record(args.record, args.constellation, args.snr_db, args.symbols, args.seed, args.overwrite)
            print(f"wrote {meta}")
            return 0
        report = replay(args.recording or bundled_recording(DEMO_CAPTURE), args.steps)
    except (DiffWirelessError, ValueError, OSError) as exc:
        print(f"dw-detect: error: {exc}", file=sys.stderr)
        return 2
    lossless = report["symbols_out"] == report["symbols_in"]
    print(f"detected {report['symbols_out']} {report['constellation']} symbols of {report['symbols_in']} "
          f"({'lossless' if lossless else 'MISMATCH'}) at Es/N0 {report['snr_db']:g} dB with {report['model']} "
          f"({report['device']}); BER [95% interval]:")
    for r in report["rows"]:
        ci = f"[{r['ci_low']:.2e}, {r['ci_high']:.2e}]" if r["errors"] is not None else "(exact)"
        nfe = f"NFE {r['nfe']}" if r["nfe"] else "no network"
        print(f"    {r['method']:<38} {r['ber']:.2e} {ci:<22} ({nfe})")
    if args.json:
        write_json(args.json, report)
        print(f"json: {args.json}")
    return 0 if lossless else 1


if __name__ == "__main__":
    sys.exit(main())
