"""``dw-classify``: the modulation family of the bursts of recordings, through the classifier's front end.

    dw-classify RECORDING... [--model modclass_radio] [--seconds 2] [--novelty-threshold X] [--json OUT]

Per recording: the bursts found (energy over the noise floor), each one's decision (``unknown`` for a signal
unlike every class the model knows) and confidence, and the recording's majority family (OOK/ASK, FSK, PSK/QAM,
OFDM, analog, or unknown) with its share of the bursts. Each burst has its DC removed, its carrier centred, and
its occupied band fitted to the share of the band the network was trained on (for models trained on fixed
frames: to each share their frames fill, keeping the most confident decision).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict
from pathlib import Path

from diffwireless.classifier import ModulationClassifier, classify_capture, majority_family
from diffwireless.frontend import CP_CONTRAST, KEYED_SHARE
from diffwireless.engine import acquire_engine, release_engine
from diffwireless.errors import DiffWirelessError
from diffwireless.recording import open_recording
from gnuradio.diffwireless.apps._report import write_json

PRINT_BURSTS = 8


def classify_recording(path: str, classifier: ModulationClassifier, engine, seconds: float | None) -> dict:
    with open_recording(path) as rec:
        n = rec.num_samples if not seconds or not rec.sample_rate else min(rec.num_samples,
                                                                            int(seconds * rec.sample_rate))
        iq = rec.read(0, n)
        rate = rec.sample_rate
    decisions = classify_capture(iq, classifier, engine)
    family, share = majority_family(decisions)
    return {"recording": Path(path).name.split(".sigmf")[0], "samples": n, "sample_rate": rate,
            "bursts": [asdict(d) for d in decisions], "family": family, "family_share": share}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dw-classify", description=__doc__.split("\n\n")[0])
    parser.add_argument("recordings", nargs="+", help="SigMF recordings")
    parser.add_argument("--model", default="modclass_radio", help="classifier (default modclass_radio)")
    parser.add_argument("--seconds", type=float, default=None, help="classify only the first SECONDS of each")
    parser.add_argument("--novelty-threshold", type=float, default=None,
                        help="novelty over which a burst is 'unknown' (default: the model card's; for "
                             "modclass_radio where 99%% of known bursts stay known; higher: fewer)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.seconds is not None and not (math.isfinite(args.seconds) and args.seconds > 0):
        parser.error(f"--seconds must be finite and > 0, got {args.seconds}")
    try:
        classifier = ModulationClassifier(args.model, args.novelty_threshold)
    except (DiffWirelessError, ValueError) as exc:
        print(f"dw-classify: error: {exc}", file=sys.stderr)
        return 2
    engine = acquire_engine("auto", holder="dw-classify")
    results = []
    try:
        for path in args.recordings:
            try:
                res = classify_recording(path, classifier, engine, args.seconds)
            except (DiffWirelessError, ValueError, OSError) as exc:
                print(f"dw-classify: error: {path}: {exc}", file=sys.stderr)
                return 2
            results.append(res)
            print(f"{res['recording']}: {len(res['bursts'])} bursts; {res['family']} "
                  f"({100 * res['family_share']:.0f}% of the bursts)")
            for b in res["bursts"][:PRINT_BURSTS]:
                closest = f", closest {b['closest']}" if b["label"] == "unknown" and b["closest"] else ""
                prefix = f", cyclic prefix {b['cyclic_prefix']:.2f}" if b["cyclic_prefix"] >= CP_CONTRAST else ""
                if not prefix and b["keyed"] >= KEYED_SHARE:
                    prefix = f", keyed {b['keyed']:.2f} of the burst"
                print(f"    {b['start']:>10d} - {b['end']:>10d}  {b['label']:7s} {b['confidence']:.2f}"
                      f"  ({b['family']}{closest}{prefix})")
            if len(res["bursts"]) > PRINT_BURSTS:
                print(f"    ... {len(res['bursts']) - PRINT_BURSTS} more")
    finally:
        release_engine(engine, "dw-classify")
    if args.json:
        write_json(args.json, {"model": args.model, "recordings": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
