r"""Refinement of an automatic reference: levels of doubling resolution until an error estimate meets a target.

The change of level :math:`k` from level :math:`k-1` on their common nodes estimates its error,
extrapolated with the observed rate once it has settled (:func:`estimate`); :func:`refine` adds
levels until the estimate meets the target, the next level would overrun the time budget, or the
grid limit is reached (:mod:`pinn_lam.pde.auto_reference` has the formulas).
"""
from __future__ import annotations

import math
import time as clock

import numpy as np

from pinn_lam.errors import ProblemError


def relative_change(fine: np.ndarray, coarse: np.ndarray) -> float:
    """:math:`\|f - c\|_2 / \|f\|_2` of ``fine`` against ``coarse`` (values at the same nodes)."""
    return float(np.linalg.norm(fine - coarse) / max(np.linalg.norm(fine), 1e-300))


def estimate(changes: list[float], max_ratio: float = math.inf) -> float:
    """The error estimate of the finest level from the changes between levels (module docstring):
    the geometric tail :math:`\varepsilon_k/(\rho - 1)` only where the last two ratios agree
    within a factor of 2 (the convergence is in its asymptotic regime), else the change itself;
    :math:`\rho` at most ``max_ratio`` (the rate a known lower order allows)."""
    if len(changes) >= 2 and changes[-1] > 0 and changes[-2] / changes[-1] > 2:
        ratio = changes[-2] / changes[-1]
        settled = len(changes) < 3 or changes[-2] <= 0 or 0.5 < ratio / (changes[-3] / changes[-2]) < 2
        if settled:
            return changes[-1] / (min(ratio, max_ratio) - 1)
    return changes[-1]


def refine(solve_level, restrict, target: float, budget: float, start: int, limit: int,
           max_ratio: float = math.inf):
    """Levels ``n = start, 2 start, ...`` until the estimate meets ``target``, the next level
    would overrun ``budget`` seconds, or ``n`` would pass ``limit``; at least two levels.
    ``solve_level(n, k, deadline)`` may raise ``RuntimeError`` (blown up, or past the deadline)."""
    began = clock.perf_counter()
    deadline = began + 2.0 * budget
    n, level, previous, changes, best = start, 0, None, [], None
    growth, took_before = 3.0, None  # how much longer the next level takes: at least 3x, else as observed
    while True:
        tick = clock.perf_counter()
        try:
            with np.errstate(all="ignore"):
                result = solve_level(n, level, deadline)
            failed = not np.isfinite(result[1]).all()
        except RuntimeError:  # an unresolved grid may blow up: refine and start the comparison anew
            result, failed = None, True
        took = clock.perf_counter() - tick
        if took_before is not None and took_before > 0.05:
            growth = max(3.0, took / took_before)
        took_before = took
        out_of_room = clock.perf_counter() - began + growth * took > budget or 2 * n > limit
        if failed:
            if best is not None and out_of_room:
                return best[:4] + ("time budget spent",)
            if out_of_room:
                raise ProblemError(f"the automatic reference failed on {n} intervals and has no budget or grid left "
                                   "to refine (an unresolved or unstable problem?)")
            previous, changes = None, []
        elif previous is not None:
            changes.append(relative_change(restrict(result), previous[1]))
            best = (result, n, estimate(changes, max_ratio), list(changes))
            if best[2] <= target:
                return best + ("met the target",)
            if clock.perf_counter() - began + growth * took > budget:
                return best + ("time budget spent",)
            if 2 * n > limit:
                return best + ("grid limit reached",)
        previous = None if failed else (n, result[1])
        n, level = 2 * n, level + 1
