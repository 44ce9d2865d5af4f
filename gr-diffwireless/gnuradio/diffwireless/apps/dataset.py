"""``dw-dataset``: a labelled modulation dataset made by GNU Radio's modulators and channel blocks, as SigMF.

    dw-dataset OUT [--frames 64] [--snr -10 20 2] [--classes bpsk qpsk ...] [--seed 0]

Writes ``OUT.sigmf-meta`` / ``OUT.sigmf-data``: every class at every SNR, ``--frames`` frames of 1024 samples each,
one annotation per frame (``core:label``, ``diffwireless:snr_db``). See
:mod:`gnuradio.diffwireless.recipes.modulation_sources` for the modulators and the channel, and
:func:`diffwireless.modulation_data.load_dataset` to read it back.
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
from gnuradio.diffwireless.apps import _progress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dw-dataset", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="recording to write (NAME, NAME.sigmf-meta or NAME.sigmf-data)")
    parser.add_argument("--frames", type=int, default=64, help="frames per class and SNR (default 64)")
    parser.add_argument("--snr", type=float, nargs=3, default=(-10.0, 20.0, 2.0), metavar=("FIRST", "LAST", "STEP"),
                        help="SNR grid in dB (default -10 20 2)")
    parser.add_argument("--classes", nargs="+", default=list(CLASSES), help=f"default: {' '.join(CLASSES)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    _progress.install()
    first, last, step = args.snr
    if step <= 0 or last < first:
        parser.error(f"--snr needs FIRST <= LAST and STEP > 0, got {first} {last} {step}")
    unknown = sorted(set(args.classes) - set(CLASSES))
    if unknown:
        parser.error(f"unknown classes {unknown}; known: {' '.join(CLASSES)}")
    snrs = tuple(float(v) for v in np.arange(first, last + step / 2, step))
    try:
        check_writable(args.out, args.overwrite, how="give --overwrite")  # before the work, not after it
        ds = synthesize(args.frames, snrs, args.seed, tuple(args.classes))
        meta = save_dataset(ds, args.out, description=f"dw-dataset: {len(args.classes)} classes, SNR {first:g}.."
                            f"{last:g} dB step {step:g}, {args.frames} frames per point, seed {args.seed}",
                            overwrite=args.overwrite)
    except (DiffWirelessError, ValueError) as exc:
        print(f"dw-dataset: {exc}", file=sys.stderr)
        return 2
    counts = Counter(ds.labels)
    print(f"wrote {meta}: {len(ds.labels)} frames of {ds.frame_len} samples, "
          f"{len(counts)} classes x {len(snrs)} SNRs ({snrs[0]:g}..{snrs[-1]:g} dB) x {args.frames}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
