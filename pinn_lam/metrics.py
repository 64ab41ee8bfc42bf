r"""Error measures between a prediction :math:`u` and a reference :math:`v` on the same points.

* relative L2 error :math:`\|u - v\|_2 / \|v\|_2` (on a uniform grid this approximates the
  ratio of :math:`L^2` norms of the functions),
* maximum absolute error :math:`\max_i |u_i - v_i|`.
"""
from __future__ import annotations

import numpy as np


def _pair(prediction, reference) -> tuple[np.ndarray, np.ndarray]:
    u = np.asarray(prediction, dtype=np.float64).reshape(-1)
    v = np.asarray(reference, dtype=np.float64).reshape(-1)
    if u.shape != v.shape:
        raise ValueError(f"prediction has {u.size} values but reference has {v.size}")
    if u.size == 0:
        raise ValueError("cannot compute an error on zero points")
    return u, v


def relative_l2_error(prediction, reference) -> float:
    r""":math:`\|u - v\|_2 / \|v\|_2`; ``ValueError`` if the reference is identically zero."""
    u, v = _pair(prediction, reference)
    norm = float(np.linalg.norm(v))
    if norm == 0.0:
        raise ValueError("relative error is undefined: the reference is zero everywhere")
    return float(np.linalg.norm(u - v)) / norm


def max_abs_error(prediction, reference) -> float:
    r""":math:`\max_i |u_i - v_i|`."""
    u, v = _pair(prediction, reference)
    return float(np.max(np.abs(u - v)))
