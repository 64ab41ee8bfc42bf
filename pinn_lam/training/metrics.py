r"""Error measures between a prediction :math:`u` and a reference :math:`v` on the same points.

* relative L2 error :math:`\|u - v\|_2 / \|v\|_2` (on a uniform grid this approximates the
  ratio of :math:`L^2` norms of the functions),
* maximum absolute error :math:`\max_i |u_i - v_i|`.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def _norm(x: np.ndarray) -> float:
    """The Euclidean norm without a BLAS call. ``np.linalg.norm`` of a long vector calls
    OpenBLAS's threaded dot product, whose threads then keep spinning for a while after it returns,
    and on a machine with few cores they take them from PyTorch's threads for the next training
    steps (the sprint's LAM phase on 2 threads, evaluated every 50 iterations, took about half
    as long again with it: docs/speed.md, "Time to accuracy")."""
    return math.sqrt(float(np.sum(np.square(x))))


def _pair(prediction, reference) -> tuple[np.ndarray, np.ndarray]:
    u = np.asarray(prediction, dtype=np.float64).reshape(-1)
    v = np.asarray(reference, dtype=np.float64).reshape(-1)
    if u.shape != v.shape:
        raise ValueError(f"prediction has {u.size} values but reference has {v.size}")
    if u.size == 0:
        raise ValueError("cannot compute an error on zero points")
    return u, v


def _reference_norm(v: np.ndarray) -> float:
    norm = _norm(v)
    if norm == 0.0:
        raise ValueError("relative error is undefined: the reference is zero everywhere")
    return norm


def relative_l2_error(prediction, reference) -> float:
    r""":math:`\|u - v\|_2 / \|v\|_2`; ``ValueError`` if the reference is identically zero."""
    u, v = _pair(prediction, reference)
    return _norm(u - v) / _reference_norm(v)


def max_abs_error(prediction, reference) -> float:
    r""":math:`\max_i |u_i - v_i|`."""
    u, v = _pair(prediction, reference)
    return float(np.max(np.abs(u - v)))


class RelativeL2:
    """:func:`relative_l2_error` of a model against fixed reference values (``(N,)``, or ``(N, m)``
    for a model of ``m`` outputs: the error over all of them), computed where the
    model is (``model(points)`` without gradients, then float64 norms in PyTorch): what the
    trainer evaluates every ``eval_every`` iterations. Only the error comes back to the host, and
    no NumPy BLAS call is made inside training (see :func:`_norm`). The points are cached per
    device and dtype (the trainer may switch a run to float64)."""

    def __init__(self, points, reference) -> None:
        self.points = np.asarray(points, dtype=np.float64)
        reference = np.asarray(reference, dtype=np.float64)
        # one value per point, or one row of values per point (several outputs)
        self.reference = reference.reshape(-1)
        if self.points.ndim != 2 or len(self.points) != len(reference):
            raise ValueError(f"points must be (N, d) with N = {len(reference)} reference values, "
                             f"got shape {self.points.shape}")
        if self.reference.size == 0:
            raise ValueError("cannot compute an error on zero points")
        self.norm = _reference_norm(self.reference)
        self._cache: dict[Any, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, model: torch.nn.Module) -> float:
        first = next(model.parameters())
        key = (first.device, first.dtype)
        if key not in self._cache:
            self._cache = {key: (torch.as_tensor(self.points, device=first.device, dtype=first.dtype),
                                 torch.as_tensor(self.reference, device=first.device))}
        points, reference = self._cache[key]
        with torch.no_grad():
            u = model(points).reshape(-1).to(torch.float64)
            return float(torch.linalg.vector_norm(u - reference)) / self.norm
