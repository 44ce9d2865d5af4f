"""``dw-train``: retrain the shipped models from fixed seeds (``make models`` runs ``dw-train --all``), or train an
anomaly model of your own band (``dw-train anomaly --normal REC.sigmf-meta``).

Over several processes or machines: ``torchrun --nproc-per-node N --no-python dw-train NAME`` (the same global
batch, each process a share of it; only process 0 writes; :mod:`diffwireless.distributed`)."""

from __future__ import annotations

import argparse
import sys

import gnuradio.diffwireless.recipes  # noqa: F401 - registers the recipes that need GNU Radio
from diffwireless import distributed
from diffwireless.paths import model_dir
from diffwireless.training import MODELS, train_model
from gnuradio.diffwireless.apps import _progress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dw-train", description=__doc__)
    parser.add_argument("model", nargs="?", help=f"one of: {', '.join(MODELS) or '(none yet)'}")
    parser.add_argument("--all", action="store_true", help="retrain every shipped model")
    parser.add_argument("--out", default=None, help="output folder (default: the models folder)")
    user = parser.add_argument_group("a model of your own band (dw-train anomaly --normal REC.sigmf-meta)")
    user.add_argument("--normal", help="SigMF recording of the band's normal traffic (model 'anomaly')")
    user.add_argument("--name", help="model name (default: anomaly_ + the recording's name)")
    user.add_argument("--window", type=int, default=1024, help="samples per scored window (default 1024)")
    user.add_argument("--n-fft", type=int, default=128, help="FFT frame length; window / n_fft must be a "
                                                              "multiple of 4 (default 128, as anomaly_band)")
    user.add_argument("--seconds", type=float, default=None, help="use only the first SECONDS of the recording")
    user.add_argument("--iterations", type=int, default=None,
                      help="training iterations of the autoencoder and of the latent DDPM (default 3000 and 4000)")
    args = parser.parse_args(argv)
    _progress.install()
    try:
        distributed.start()
    except RuntimeError as exc:
        print(f"dw-train: {exc}", file=sys.stderr)
        return 2
    try:
        return _train(parser, args)
    finally:
        distributed.stop()


def _train(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.model == "anomaly" or args.normal:
        return _train_anomaly(parser, args)
    names = list(MODELS) if args.all else ([args.model] if args.model else [])
    if not names:  # nothing asked for: list what can be trained
        if distributed.is_writer():
            print("\n".join(MODELS) if MODELS else "no models are registered yet")
        return 0
    for name in names:
        if name not in MODELS:
            print(f"dw-train: unknown model {name!r}; models: {', '.join(MODELS)}", file=sys.stderr)
            return 2
        train_model(name, args.out or model_dir())
    return 0


def _train_anomaly(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from pathlib import Path

    from diffwireless.errors import RecordingError
    from diffwireless.recipes.anomaly_detector import train_recording

    if args.model not in (None, "anomaly") or not args.normal:
        parser.error("a model of your own band is trained by: dw-train anomaly --normal REC.sigmf-meta")
    name = args.name or "anomaly_" + Path(args.normal).name.split(".sigmf")[0]
    out = Path(args.out or ".")
    try:
        its = {} if args.iterations is None else {"ae_iterations": args.iterations, "ddpm_iterations": args.iterations}
        model = train_recording(args.normal, out, name, args.window, args.n_fft, args.seconds, **its)
    except (RecordingError, ValueError) as exc:
        print(f"dw-train: {exc}", file=sys.stderr)
        return 2
    if distributed.is_writer():
        print(f"wrote {out / (name + '.safetensors')} and {name}.json ({model.card['training']['train_windows']} "
              f"training windows, {model.card['training']['seconds_on_cpu']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
