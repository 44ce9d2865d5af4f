"""``dw-train``: retrain shipped models from fixed seeds (``make models`` runs ``dw-train --all``).

Each model is registered in :data:`MODELS` as ``name -> "module:function"``; the function takes the output folder
and writes ``NAME.safetensors`` plus ``NAME.json`` (the model card: data recipe, seed, metrics, size).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from diffwireless.paths import model_dir

# model name -> "module:function"; filled by the capability issues as their models land.
MODELS: dict[str, str] = {
    "iq_denoiser_qpsk_sps4": "diffwireless.recipes.iq_denoiser:train",
    # Each writes the diffusion detector detector_C and its DNN baseline detector_C_dnn.
    "detector_qpsk": "diffwireless.recipes.symbol_detector:train_qpsk",
    "detector_16qam": "diffwireless.recipes.symbol_detector:train_16qam",
    "detector_64qam": "diffwireless.recipes.symbol_detector:train_64qam",
    "detector_qpsk_awgn": "diffwireless.recipes.symbol_detector:train_qpsk_awgn",
    "detector_16qam_awgn": "diffwireless.recipes.symbol_detector:train_16qam_awgn",
    "detector_64qam_awgn": "diffwireless.recipes.symbol_detector:train_64qam_awgn",
    "chanest_expcorr": "diffwireless.recipes.channel_estimator:train_expcorr",
    "chanest_tdl": "diffwireless.recipes.channel_estimator:train_tdl",
    "chanest_tdl_sym": "diffwireless.recipes.channel_estimator:train_tdl_sym",
    "chanest_sparse": "diffwireless.recipes.channel_estimator:train_sparse",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dw-train", description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help=f"one of: {', '.join(MODELS) or '(none yet)'}")
    parser.add_argument("--all", action="store_true", help="retrain every shipped model")
    parser.add_argument("--out", default=None, help="output folder (default: the models folder)")
    args = parser.parse_args(argv)
    names = list(MODELS) if args.all else ([args.model] if args.model else [])
    if not names:  # nothing asked for: list what can be trained
        print("\n".join(MODELS) if MODELS else "no models are registered yet")
        return 0
    for name in names:
        if name not in MODELS:
            print(f"dw-train: unknown model {name!r}; models: {', '.join(MODELS)}", file=sys.stderr)
            return 2
        module, func = MODELS[name].split(":")
        getattr(importlib.import_module(module), func)(args.out or model_dir())
    return 0


if __name__ == "__main__":
    sys.exit(main())
