"""Atomic, checksummed checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts (model and optimizer
state dicts, RNG states, the current points, the history, the iteration counters). It is
serialized in memory, then written to a temporary file in the same folder and moved into place
with :func:`os.replace`, so a run killed while saving, or a full disk, leaves the previous
checkpoint intact.

It also stores ``checksum``, the SHA-256 of its contents (:func:`content_digest`: every tensor's
dtype, shape and bytes and every other value's type and ``repr``, in a fixed order), which
:func:`load_checkpoint` recomputes: a file whose bytes changed after it was written is refused.
Files of format 1 (before the checksum) load without the check.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from pinn_lam.atomic import atomic_write

#: bumped when the layout changes incompatibly
FORMAT_VERSION = 2
#: the formats :func:`load_checkpoint` reads (format 1 has no checksum)
READABLE_FORMATS = (1, 2)


def content_digest(state: Any) -> str:
    """The SHA-256 hex digest of a nest of dicts, lists, tuples, tensors and plain values."""
    digest = hashlib.sha256()
    _feed(digest, state)
    return digest.hexdigest()


def _feed(digest, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"tensor {tensor.dtype} {tuple(value.shape)}\n".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)}\n".encode())
        for key in sorted(value, key=repr):
            digest.update(f"{key!r}:".encode())
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__} {len(value)}\n".encode())
        for item in value:
            _feed(digest, item)
    else:
        digest.update(f"{type(value).__name__} {value!r}\n".encode())


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` with its checksum to ``path`` atomically (creating the folder); return the path.

    A failure to write is an ``OSError`` of one line naming the file and the cause."""
    content = {"format_version": FORMAT_VERSION, **state}
    buffer = io.BytesIO()
    torch.save({**content, "checksum": content_digest(content)}, buffer)
    return atomic_write(path, lambda file: file.write(buffer.getbuffer()))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``), checking its checksum."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # a truncated, foreign or unsafe file: say which, in one line
        raise OSError(f"cannot read checkpoint {path}: {_load_failure(error)}") from None
    if not isinstance(state, dict) or state.get("format_version") not in READABLE_FORMATS:
        raise OSError(f"{path} is not a pinn-lam checkpoint of format {FORMAT_VERSION}")
    if state["format_version"] >= 2:
        stored = state.pop("checksum", None)
        if stored != content_digest(state):
            raise OSError(f"checkpoint {path} is damaged: its contents do not match the checksum stored with them")
    return state


def _load_failure(error: Exception) -> str:
    """What went wrong in ``torch.load``, in a few words, without torch's advice to load unsafely."""
    text = str(error)
    if isinstance(error, pickle.UnpicklingError) and "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().split(". ")[0].strip()
        detail = detail.splitlines()[0] if detail else "unknown content"
        if "Unsupported global" in detail:
            return (f"it holds Python objects other than tensors and plain data ({detail}), which "
                    "pinn-lam checkpoints never contain; refusing to unpickle it")
        return f"not a readable checkpoint ({detail})"
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}"
