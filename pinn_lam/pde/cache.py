"""On-disk cache of reference solutions, so that a second call is instant.

An entry is keyed by the problem's name, its parameters, the resolution and a method version
(bumped when a solver changes), hashed into the file name ``<name>-<hash>.npz``. The folder is
the ``cache_dir`` argument, else the environment variable ``PINN_LAM_CACHE``, else
``~/.cache/pinn-lam``. Writes are atomic (a temporary file in the same folder, then
``os.replace``), so concurrent runs never see half a file. Each entry also stores the name,
parameters, resolution and version it was computed for, and a load checks that they hash to the
key asked for: an unreadable entry (empty, truncated, not an archive) or one stored under the wrong
key counts as a miss, and is recomputed and replaced.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from pinn_lam.atomic import atomic_write

#: environment variable naming the cache folder
ENV_VAR = "PINN_LAM_CACHE"


def cache_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$PINN_LAM_CACHE``, else ``~/.cache/pinn-lam``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "pinn-lam"


def cache_key(name: str, parameters: Mapping[str, Any], resolution: Any, version: str) -> str:
    """A stable hex digest of everything that determines a reference."""
    payload = json.dumps({"name": name, "parameters": parameters, "resolution": resolution,
                          "version": version}, sort_keys=True, default=_jsonable)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def cache_path(name: str, parameters: Mapping[str, Any], resolution: Any, version: str,
               cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the entry for these arguments lives (it may not exist)."""
    return cache_folder(cache_dir) / f"{name}-{cache_key(name, parameters, resolution, version)}.npz"


def load(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The arrays and metadata stored at ``path``, or ``None`` if it is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files if key != "__meta__"}
            meta = json.loads(str(data["__meta__"]))
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, zlib.error):
        return None
    return (arrays, meta) if isinstance(meta, dict) else None


def stored_key(meta: Mapping[str, Any]) -> str | None:
    """The key that the name, parameters, resolution and version stored in ``meta`` hash to
    (``None`` when they are missing)."""
    entry = meta.get("key")
    try:
        return cache_key(entry["name"], entry["parameters"], entry["resolution"], entry["version"])
    except (TypeError, KeyError):
        return None


def save(path: Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Path:
    """Write ``arrays`` and JSON ``meta`` to ``path`` atomically; returns ``path``."""
    if "__meta__" in arrays:
        raise ValueError("'__meta__' is reserved for the metadata")
    return atomic_write(path, lambda file: np.savez(
        file, __meta__=np.array(json.dumps(dict(meta), default=_jsonable)), **arrays))


def cached(name: str, parameters: Mapping[str, Any], resolution: Any, version: str,
           compute: Callable[[], tuple[dict[str, np.ndarray], dict[str, Any]]],
           cache_dir: str | os.PathLike | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Load the entry for these arguments, or ``compute()`` it and store it.

    ``compute`` returns ``(arrays, meta)``; the returned ``meta`` gains ``"cached"`` (whether it
    came from disk), ``"path"`` and, on a miss, ``"seconds"`` (compute time) unless already set.
    """
    path = cache_path(name, parameters, resolution, version, cache_dir)
    hit = load(path)
    if hit is not None and stored_key(hit[1]) == cache_key(name, parameters, resolution, version):
        arrays, meta = hit
        meta.pop("key")
        meta.update(cached=True, path=str(path))
        return arrays, meta
    start = time.perf_counter()
    arrays, meta = compute()
    meta = dict(meta)
    meta.setdefault("seconds", time.perf_counter() - start)
    key = {"name": name, "parameters": parameters, "resolution": resolution, "version": version}
    try:
        save(path, arrays, {**meta, "key": key})
    except OSError:
        # a read-only or full disk must not stop the computation from being used
        pass
    meta.update(cached=False, path=str(path))
    return arrays, meta


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot key the cache on {type(value).__name__}")


def cached_reference(problem: Any, resolution: Any, version: str,
                     compute: Callable[[], tuple[dict[str, np.ndarray], dict[str, Any]]],
                     cache_dir: str | os.PathLike | None = None,
                     interpolator: Callable[[dict[str, np.ndarray]], Callable] | None = None):
    """A :class:`~pinn_lam.pde.problem.Reference` for ``problem`` at ``resolution``, from the cache or
    from ``compute()``.

    ``compute`` returns arrays ``grid_0, grid_1, ...`` (one per variable) and ``u`` (with a last
    axis of one entry per output when the problem has several), plus any
    extra arrays ``interpolator(arrays)`` needs to build the reference's interpolant, and meta
    with ``error_estimate`` and ``method``; other meta entries land in ``Reference.info``.
    """
    from pinn_lam.pde.problem import Reference

    arrays, meta = cached(problem.name, problem.parameters(), resolution, version, compute, cache_dir)
    grid = tuple(arrays[f"grid_{i}"] for i in range(len(problem.variables)))
    info = {key: value for key, value in meta.items() if key not in ("error_estimate", "seconds", "method")}
    return Reference(grid=grid, u=arrays["u"],
                     interpolate=None if interpolator is None else interpolator(arrays),
                     error_estimate=meta.get("error_estimate"), seconds=meta.get("seconds"),
                     method=meta.get("method", ""), info=info, outputs=tuple(getattr(problem, "outputs", ("u",))))
