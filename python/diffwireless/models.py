"""Model files: safetensors weights plus a JSON model card, and the :class:`DiffusionModel` the engine runs.

A model ``NAME`` is two files: ``NAME.safetensors`` (the weights; its metadata entry ``diffwireless`` holds the
architecture, its config, the noise schedule and the item shape, so the weights alone rebuild the model) and
``NAME.json`` (the model card: what it is for, data recipe, seed, metrics, size). Only safetensors are read: pickle
checkpoints (``torch.load``) can run code and are refused.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from diffwireless.diffusion.schedule import NoiseSchedule
from diffwireless.errors import ModelError
from diffwireless.nn import ARCHITECTURES
from diffwireless.paths import model_dir

FORMAT_VERSION = 1
_METADATA_KEY = "diffwireless"
_PICKLE_SUFFIXES = {".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle"}


@dataclass(eq=False)  # identity equality: the engine merges jobs of the same model object
class DiffusionModel:
    """A network with what it was trained for.

    Attributes:
        name: short name (the file's stem).
        network: ``forward(x_t, t, cond) -> eps`` (denoisers) or ``forward(x, None, cond)`` (plain networks).
        item_shape: shape of one item, without the batch dimension (e.g. ``(32,)`` for 16 complex samples as
            interleaved real and imaginary parts).
        schedule: the noise schedule it was trained with; None for plain networks.
        cond_dim: width of the conditioning vector (0: none).
        arch: architecture name in :data:`diffwireless.nn.ARCHITECTURES`.
        card: the model card (free-form JSON: description, data, seed, metrics).
    """

    name: str
    network: nn.Module
    item_shape: tuple[int, ...]
    schedule: NoiseSchedule | None = None
    cond_dim: int = 0
    arch: str = ""
    card: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.item_shape = tuple(int(s) for s in self.item_shape)
        self.network.eval()

    @property
    def seed(self) -> int:
        """The seed its card records (``seed``, or ``training.seed``; 0 when none): with an item's stream position it
        keys the item's noise (:func:`diffwireless.diffusion.noise.item_seeds`)."""
        for holder in (self.card, self.card.get("training")):
            if isinstance(holder, dict) and isinstance(holder.get("seed"), int):
                return int(holder["seed"])
        return 0

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.network.parameters())

    def header(self) -> dict[str, Any]:
        """What the weights file records besides the tensors."""
        return {
            "format": FORMAT_VERSION,
            "name": self.name,
            "arch": self.arch,
            "config": getattr(self.network, "config", {}),
            "item_shape": list(self.item_shape),
            "cond_dim": self.cond_dim,
            "schedule": self.schedule.to_dict() if self.schedule is not None else None,
        }


def build_model(name: str, arch: str, config: dict[str, Any], schedule: NoiseSchedule | None,
                card: dict[str, Any] | None = None) -> DiffusionModel:
    """A freshly initialised model of a registered architecture (for training, tests and benchmarks)."""
    if arch not in ARCHITECTURES:
        raise ModelError(f"unknown architecture {arch!r}; known: {', '.join(sorted(ARCHITECTURES))}")
    network = ARCHITECTURES[arch](**config)
    # A network whose conditioning width follows from its other settings (UNet1d: classes + 1) says so itself.
    cond_dim = int(config.get("cond_dim", getattr(network, "cond_dim", 0)))
    return DiffusionModel(name=name, network=network, item_shape=tuple(config["item_shape"]), schedule=schedule,
                          cond_dim=cond_dim, arch=arch, card=dict(card or {}))


def model_paths(path: str | Path) -> tuple[Path, Path]:
    """``(NAME.safetensors, NAME.json)`` for ``NAME``, ``NAME.safetensors`` or ``NAME.json``."""
    p = Path(path)
    if p.suffix in _PICKLE_SUFFIXES:
        raise ModelError(f"{p}: pickle checkpoints are not loaded (loading one can run arbitrary code); "
                         "save the weights as safetensors")
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def resolve_model_path(path: str | Path) -> Path:
    """A model named by path, or by bare name from the shipped model folder; the ``.safetensors`` path."""
    weights, _ = model_paths(path)
    if weights.is_file():
        return weights
    p = Path(path)
    if p.parent == Path(".") and not p.is_absolute():
        shipped = model_paths(model_dir() / p.name)[0]
        if shipped.is_file():
            return shipped
    there = sorted(q.stem for q in model_dir().glob("*.safetensors")) if model_dir().is_dir() else []
    raise ModelError(f"model file {weights} not found; shipped models ({model_dir()}): {', '.join(there) or 'none'}")


def save_model(model: DiffusionModel, path: str | Path, card: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """Write ``NAME.safetensors`` and ``NAME.json``; the card gets the size and parameter count filled in.

    Over several training processes (:mod:`diffwireless.distributed`) only process 0 writes; the others return
    the same paths."""
    from safetensors.torch import save_file

    from diffwireless.distributed import is_writer

    weights, card_path = model_paths(path)
    if not is_writer():
        return weights, card_path
    weights.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.network.state_dict().items()}
    save_file(tensors, str(weights), metadata={_METADATA_KEY: json.dumps(model.header(), sort_keys=True)})
    weights.chmod(0o644)  # safetensors creates the file owner-only; shipped models are read by every user
    doc = dict(model.card if card is None else card)
    doc.update({"name": model.name, "file": weights.name, "format": FORMAT_VERSION, "arch": model.arch,
                "config": model.header()["config"], "parameters": model.num_parameters,
                "size_bytes": weights.stat().st_size})
    card_path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return weights, card_path


# Limits of what a model file may ask for before anything is built (a hostile header must not cost gigabytes).
MAX_PARAMETERS = 50_000_000
MAX_SCHEDULE_STEPS = 100_000


def load_model(path: str | Path, device: str | torch.device = "cpu") -> DiffusionModel:
    """Load a model from its safetensors file (path or shipped name); the card is read when it is there.

    The header's network is first laid out without memory (torch's ``meta`` device) and checked against the
    file's tensor shapes, the parameter cap :data:`MAX_PARAMETERS` and the schedule cap :data:`MAX_SCHEDULE_STEPS`;
    only then is it built and filled.

    Raises:
        ModelError (naming the file): missing file, a pickle checkpoint, no ``diffwireless`` metadata, an unknown
            architecture or bad settings for it, a network or schedule over the caps, weights that do not fit the
            architecture (the message lists the mismatching tensors), non-finite weights, a card that is not a
            JSON object.
    """
    from safetensors import SafetensorError, safe_open

    weights = resolve_model_path(path)
    try:
        with safe_open(str(weights), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{weights}: not a readable safetensors file ({exc})") from exc
    if _METADATA_KEY not in meta:
        raise ModelError(f"{weights}: no '{_METADATA_KEY}' metadata; it was not written by diffwireless.save_model")
    try:
        header = json.loads(meta[_METADATA_KEY])
        fmt = int(header["format"])
        arch, config = header["arch"], header["config"]
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise ModelError(f"{weights}: malformed '{_METADATA_KEY}' metadata ({type(exc).__name__}: {exc})") from None
    if fmt > FORMAT_VERSION:
        raise ModelError(f"{weights}: model format {fmt} is newer than this diffwireless understands "
                         f"({FORMAT_VERSION}); upgrade gr-diffwireless")
    if not isinstance(config, dict) or not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise ModelError(f"{weights}: unknown architecture {arch!r} (known: {', '.join(sorted(ARCHITECTURES))}) "
                         "or settings that are not a JSON object")
    try:
        schedule = NoiseSchedule.from_dict(header["schedule"]) if header.get("schedule") else None
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError) as exc:
        raise ModelError(f"{weights}: malformed noise schedule ({type(exc).__name__}: {exc})") from None
    if schedule is not None and schedule.num_train_steps > MAX_SCHEDULE_STEPS:
        raise ModelError(f"{weights}: a schedule of {schedule.num_train_steps} steps is over the cap of "
                         f"{MAX_SCHEDULE_STEPS}")
    card_path = model_paths(weights)[1]
    try:
        card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.is_file() else {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{card_path}: the model card is not readable JSON ({exc})") from exc
    if not isinstance(card, dict):
        raise ModelError(f"{card_path}: the model card must be a JSON object, not {type(card).__name__}")
    try:
        with torch.device("meta"):  # the header's network laid out without memory, to check it first
            layout = ARCHITECTURES[arch](**config)
    except Exception as exc:  # noqa: BLE001 - any bad setting (extra, negative, wrong type) is the file's fault
        raise ModelError(f"{weights}: settings {config} do not make a {arch} ({type(exc).__name__}: {exc})") from exc
    n_params = sum(p.numel() for p in layout.parameters())
    if n_params > MAX_PARAMETERS:
        raise ModelError(f"{weights}: {arch} {config} has {n_params} parameters, over the cap of {MAX_PARAMETERS}")
    missing, unexpected = _shape_mismatch({k: tuple(v.shape) for k, v in layout.state_dict().items()}, shapes)
    if missing or unexpected:
        raise ModelError(f"{weights}: weights do not fit {arch} {config}: missing {missing or 'none'}, "
                         f"unexpected or misshaped {unexpected or 'none'}")
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(weights), device=str(device))
        model = build_model(header.get("name", weights.stem), arch, config, schedule, card)
    except (SafetensorError, OSError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{weights}: cannot be loaded ({type(exc).__name__}: {exc})") from exc
    bad = sorted(k for k, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all())
    if bad:
        raise ModelError(f"{weights}: non-finite weights (NaN or Inf) in {bad}")
    model.network.load_state_dict(tensors, strict=True)
    model.network.to(device).eval()
    return model


_shared: dict[tuple[str, int, int], DiffusionModel] = {}
_shared_lock = threading.Lock()


def shared_model(path: str | Path) -> DiffusionModel:
    """:func:`load_model` once per file and process: blocks given the same file share one model object, which is
    what lets the engine batch their work together (it merges jobs of the same model). Reloaded if the file changes.
    """
    weights = resolve_model_path(path).resolve()
    st = weights.stat()
    key = (str(weights), st.st_mtime_ns, st.st_size)
    with _shared_lock:
        model = _shared.get(key)
        if model is None:
            model = load_model(weights)
            _shared[key] = model
        return model


def _shape_mismatch(expected: dict[str, tuple[int, ...]],
                    found: dict[str, tuple[int, ...]]) -> tuple[list[str], list[str]]:
    """Tensors the network needs that the file lacks, and tensors of the file that it does not need in that shape."""
    missing = sorted(k for k in expected if k not in found)
    unexpected = sorted(k for k, shape in found.items() if expected.get(k) != shape)
    return missing, unexpected

