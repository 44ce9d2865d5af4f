"""Shipped models: safetensors with a complete card, small, and as good as their card says (re-measured here)."""

from __future__ import annotations

import json

import pytest

from diffwireless.models import load_model
from diffwireless.paths import model_dir
import gnuradio.diffwireless.recipes  # noqa: F401 - registers the recipes that need GNU Radio
from diffwireless.training import MODELS

CARD_FIELDS = ("description", "data", "training", "evaluation", "parameters", "size_bytes", "reproduce")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_ships_with_its_card(name):
    weights, card = model_dir() / f"{name}.safetensors", model_dir() / f"{name}.json"
    assert weights.is_file() and card.is_file(), f"run `make models` to produce {name}"
    doc = json.loads(card.read_text())
    assert all(k in doc for k in CARD_FIELDS), [k for k in CARD_FIELDS if k not in doc]
    assert doc["size_bytes"] == weights.stat().st_size <= 5_000_000
    assert "seed" in doc["training"]
    model = load_model(weights)
    assert model.num_parameters == doc["parameters"]


def test_iq_denoiser_beats_its_input_and_matches_the_window_lmmse():
    from diffwireless.recipes import iq_denoiser

    model = load_model(iq_denoiser.NAME)
    rows = iq_denoiser.evaluate(model, seed=99, n=4000, snrs_db=(0.0, 10.0), steps=(1,))["rows"]
    by = {(r["method"], r["snr_db"]): r for r in rows}
    for snr in (0.0, 10.0):
        diffusion, lmmse, noisy = by[("diffusion DDIM", snr)], by[("window LMMSE", snr)], by[("noisy input", snr)]
        assert diffusion["nfe"] == 1
        assert diffusion["output_snr_db"] > noisy["output_snr_db"] + 3.5  # at least 3.5 dB of denoising
        assert diffusion["output_snr_db"] > lmmse["output_snr_db"] - 0.3  # no worse than the linear MMSE
