"""The course's trained models on disk: one file format, one way to save and load.

Every chapter that ships trained weights keeps a table of presets (a dataclass
per model) and a function that trains one preset and returns what to save;
``python -m seqlab.chapters checkpoints [chapter ...]`` (``make checkpoints``)
trains them and writes ``seqlab/checkpoints/<name>.pt`` with :func:`save`.

A file holds ``{"format", "preset", "config", "state", "meta"}``:

- ``preset``: the preset it was trained from, as a plain dict. A test compares
  it with today's preset, so a changed preset cannot ship stale weights;
- ``config``: what the model's constructor needs (a dict, or None);
- ``state``: a state dict, or a dict of state dicts for a file of several models;
- ``meta``: anything else the book reads (training history, test scores, seconds).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .train import History

FOLDER = Path(__file__).resolve().parents[1] / "checkpoints"
FORMAT = 1


@dataclass
class Saved:
    """What :func:`load` reads back from a checkpoint file."""

    preset: dict  # the preset the weights were trained from
    config: dict | None  # the model's constructor arguments
    state: dict  # a state dict, or {model name: state dict}
    meta: dict = field(default_factory=dict)  # history, scores, timings, ...


def path_of(name: str) -> Path:
    """Where the shipped checkpoint ``name`` lives: ``seqlab/checkpoints/<name>.pt``."""
    return FOLDER / f"{name}.pt"


def as_dict(preset) -> dict:
    """A preset (a dataclass, or a dict already) as the plain dict stored in a file."""
    if dataclasses.is_dataclass(preset):
        return dataclasses.asdict(preset)
    if isinstance(preset, dict):
        return dict(preset)
    raise TypeError(f"a preset should be a dataclass or a dict, got {type(preset).__name__}")


def cpu_state(model: torch.nn.Module, dtype: torch.dtype | None = torch.float32) -> dict:
    """A model's state dict on the CPU, floating tensors cast to ``dtype`` (None keeps them)."""
    out = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        out[key] = value.clone()
    return out


def save(path: str | Path, preset, state: dict, config: dict | None = None, **meta) -> Path:
    """Write one checkpoint file (see the module's docstring); returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = {
        "format": FORMAT,
        "preset": as_dict(preset),
        "config": config,
        "state": state,
        "meta": meta,
    }
    torch.save(saved, path)
    return path


def load(path: str | Path) -> Saved:
    """Read a file written by :func:`save` (tensors on the CPU)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: make it with `python -m seqlab.chapters checkpoints`"
        )
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{path} is not a seqlab checkpoint of format {FORMAT}")
    return Saved(saved["preset"], saved["config"], saved["state"], saved["meta"])


def history_dict(history: History) -> dict:
    """The parts of a training History that a checkpoint keeps."""
    return {
        "loss": list(history.loss),
        "eval_step": list(history.eval_step),
        "eval_loss": list(history.eval_loss),
    }


def history_from(saved: dict) -> History:
    """A History back from :func:`history_dict`'s dict (lists or tensors)."""

    def as_list(values) -> list:
        return values.tolist() if isinstance(values, torch.Tensor) else list(values)

    return History(
        loss=as_list(saved["loss"]),
        eval_step=[int(s) for s in as_list(saved.get("eval_step", []))],
        eval_loss=as_list(saved.get("eval_loss", [])),
    )


def stale(name: str, preset) -> str | None:
    """Why the shipped checkpoint ``name`` does not match ``preset`` (None when it does)."""
    path = path_of(name)
    if not path.exists():
        return f"{path.name} is missing"
    stored = load(path).preset
    today = as_dict(preset)
    if stored != today:
        changed = sorted(k for k in stored.keys() | today.keys() if stored.get(k) != today.get(k))
        return f"{path.name} was trained from another preset (differs in {', '.join(changed)})"
    return None
