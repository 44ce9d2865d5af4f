"""``dw-dataset``: a labelled modulation dataset made by GNU Radio's modulators and channel blocks, as SigMF.

    dw-dataset OUT [--frames 64] [--snr -10 20 2] [--classes bpsk qpsk ...] [--seed 0]
    dw-dataset OUT --radio [--bursts 8] [--snr -10 30 2] [--classes ook 2fsk ofdm ...] [--seed 0]

Writes ``OUT.sigmf-meta`` / ``OUT.sigmf-data``: every class at every SNR, ``--frames`` frames of 1024 samples each,
one annotation per frame (``core:label``, ``diffwireless:snr_db``). See
:mod:`gnuradio.diffwireless.recipes.modulation_sources` for the modulators and the channel, and
:func:`diffwireless.modulation_data.load_dataset` to read it back. With ``--radio``: ``--bursts`` bursts per class
and SNR that look like real bands (:mod:`gnuradio.diffwireless.recipes.radio_sources`: pulse-coded OOK, FSK over
wide index and rate spans, OFDM of many sizes, bursts, a receiver front end), each cut into up to 4 frames by the
capture front end.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter

import numpy as np

from diffwireless.errors import DiffWirelessError
from diffwireless.modulation_data import CLASSES, save_dataset
from diffwireless.recording import check_writable

from gnuradio.diffwireless.recipes.modulation_sources import synthesize
from gnuradio.diffwireless.recipes.radio_sources import RADIO_CLASSES, synthesize_radio
from gnuradio.diffwireless.apps import _progress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dw-dataset", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="recording to write (NAME, NAME.sigmf-meta or NAME.sigmf-data)")
    parser.add_argument("--frames", type=int, default=64, help="frames per class and SNR (default 64)")
    parser.add_argument("--snr", type=float, nargs=3, default=None, metavar=("FIRST", "LAST", "STEP"),
                        help="SNR grid in dB (default -10 20 2; --radio: -10 30 2)")
    parser.add_argument("--classes", nargs="+", default=None,
                        help=f"default: {' '.join(CLASSES)}; --radio: {' '.join(RADIO_CLASSES)}")
    parser.add_argument("--radio", action="store_true", help="bursts that look like real bands (see above)")
    parser.add_argument("--bursts", type=int, default=8, help="--radio: bursts per class and SNR (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    _progress.install()
    known = RADIO_CLASSES if args.radio else CLASSES
    args.classes = list(known) if args.classes is None else args.classes
    first, last, step = args.snr or ((-10.0, 30.0, 2.0) if args.radio else (-10.0, 20.0, 2.0))
    if step <= 0 or last < first:
        parser.error(f"--snr needs FIRST <= LAST and STEP > 0, got {first} {last} {step}")
    unknown = sorted(set(args.classes) - set(known))
    if unknown:
        parser.error(f"unknown classes {unknown}; known: {' '.join(known)}")
    if args.frames < 1 or args.bursts < 1:
        parser.error(f"--frames and --bursts must be >= 1, got {args.frames}, {args.bursts}")
    snrs = tuple(float(v) for v in np.arange(first, last + step / 2, step))
    try:
        check_writable(args.out, args.overwrite, how="give --overwrite")  # before the work, not after it
        if args.radio:
            ds = synthesize_radio(args.bursts, snrs, args.seed, tuple(args.classes))
            per_point = f"{args.bursts} radio bursts per point"
        else:
            ds = synthesize(args.frames, snrs, args.seed, tuple(args.classes))
            per_point = f"{args.frames} frames per point"
        meta = save_dataset(ds, args.out, description=f"dw-dataset: {len(args.classes)} classes, SNR {first:g}.."
                            f"{last:g} dB step {step:g}, {per_point}, seed {args.seed}", overwrite=args.overwrite)
    except (DiffWirelessError, ValueError) as exc:
        print(f"dw-dataset: {exc}", file=sys.stderr)
        return 2
    counts = Counter(ds.labels)
    print(f"wrote {meta}: {len(ds.labels)} frames of {ds.frame_len} samples, "
          f"{len(counts)} classes x {len(snrs)} SNRs ({snrs[0]:g}..{snrs[-1]:g} dB), {per_point}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
