"""The shipped models' training recipes, by name (``dw-train NAME``, ``make models`` = ``dw-train --all``).

Each model is registered in :data:`MODELS` as ``name -> "module:function"``; the function takes the output folder
and writes ``NAME.safetensors`` plus ``NAME.json`` (the model card: data recipe, seed, metrics, size). The core
registers the recipes that need only the core; the GNU Radio layer registers its own with :func:`register_model`.
"""

from __future__ import annotations

from pathlib import Path

from diffwireless.registry import Registry

MODELS = Registry("model")
for _name, _spec in {
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
    "anomaly_band": "diffwireless.recipes.anomaly_detector:train",
}.items():
    MODELS.register(_name, _spec)


def register_model(name: str, spec: str) -> None:
    """Add the recipe of model ``name``: ``spec`` is ``"module:function"``, the function taking the output folder."""
    MODELS.register(name, spec)


def train_model(name: str, out: str | Path) -> None:
    """Run the registered recipe of ``name``, writing ``NAME.safetensors`` and ``NAME.json`` into ``out``."""
    MODELS.load(name)(out)
