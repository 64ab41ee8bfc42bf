"""Atomic checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (model and optimizer
state dicts, RNG states, the current points, the history, the iteration counters). It is written
to a temporary file in the same folder and moved into place with :func:`os.replace`, so a run
killed while saving leaves the previous checkpoint intact.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from pinn_lam.atomic import atomic_write

#: bumped when the layout changes incompatibly
FORMAT_VERSION = 1


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically (creating the folder); return the path."""
    return atomic_write(path, lambda file: torch.save({"format_version": FORMAT_VERSION, **state}, file))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which, in one line
        raise OSError(f"cannot read checkpoint {path}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from error
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise OSError(f"{path} is not a pinn-lam checkpoint of format {FORMAT_VERSION}")
    return state

