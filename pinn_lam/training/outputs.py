"""What a run leaves behind: ``metrics.json``, ``history.csv`` and the solution figure, and
:func:`predict` for a trained network."""
from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pinn_lam.atomic import atomic_write


def predict(model: nn.Module, points, batch: int = 65536) -> np.ndarray:
    """Evaluate ``model`` on an ``(N, d)`` array in batches, without gradients, in float64:
    ``(N,)`` for one output, ``(N, m)`` for several."""
    first = next(model.parameters())
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2:
        raise ValueError(f"points must be an (N, d) array, got shape {points.shape}")
    out = []
    with torch.no_grad():
        for start in range(0, len(points), batch):
            chunk = torch.as_tensor(points[start:start + batch], device=first.device, dtype=first.dtype)
            out.append(model(chunk).double().cpu().numpy())
    values = np.concatenate(out) if out else np.zeros((0, 1))
    return values.reshape(-1) if values.ndim == 1 or values.shape[1] == 1 else values


def write_outputs(result, out: Path, figure: bool = True) -> list[Path]:
    """Write a :class:`~pinn_lam.training.solve.Result`'s ``metrics.json``, ``history.csv`` and
    (``figure``) ``solution.png``/``.pdf`` into ``out``."""
    files = [out / "metrics.json", out / "history.csv"]
    record = {"metrics": result.metrics, "config": result.config, "machine": _machine()}
    _write_json(files[0], record)
    columns: list[str] = []
    for row in result.history:
        columns += [k for k in row if k not in columns]
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=columns)
    writer.writeheader()
    writer.writerows(result.history)
    atomic_write(files[1], lambda handle: handle.write(table.getvalue().encode()))
    if figure:
        from pinn_lam.plots.solution import solution_figure

        error = result.metrics.get("rel_l2")
        title = result.problem.name + (f": relative L2 error {error:.2e}" if error is not None else ": no reference")
        try:
            files += solution_figure(result.predict, result.problem, result.reference, out / "solution", title)
        except Exception as failure:  # the run is done: a figure that cannot be drawn is a note, not an error
            result.metrics["figure"] = f"not drawn: {type(failure).__name__}: {failure}"
            _write_json(files[0], record | {"metrics": result.metrics})
    return files


def _write_json(path: Path, record: dict[str, Any]) -> None:
    text = json.dumps(record, indent=2, default=str) + "\n"
    atomic_write(path, lambda handle: handle.write(text.encode()))


def _machine() -> dict[str, Any]:
    import os

    from pinn_lam.machine import cpu_model

    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
