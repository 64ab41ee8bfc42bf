r"""Where a periodic initial value closes its period: the first derivative that jumps there.

A periodic grid treats :math:`u_0` on :math:`[a, b)` as a periodic function. If its ``k``-th
derivative jumps where the period closes (:math:`u_0^{(k)}(b^-) \ne u_0^{(k)}(a^+)`, e.g.
:math:`2\,\mathrm{sech}\,x` on :math:`[-5, 5]` has :math:`u_0'` jumping by 0.054), no stencil or
Fourier series converges faster than algebraically there, with an order of about :math:`k + 1`,
however fast the changes between coarse grids fall (the smooth part dominates them until the
jump's part takes over). :func:`seam_order` gives that order; the refinement then caps the rate
it extrapolates with at :math:`2^{k + 1}`, so its estimate stays an upper one.
"""
from __future__ import annotations

import numpy as np

from pinn_lam.pde import fd

#: nodes on the period for the one-sided derivatives, their stencil width, and the relative jump that counts
NODES, WIDTH, RELATIVE_JUMP = 2048, 9, 1e-6
#: the derivatives checked (values, first and second)
ORDERS = 3


def derivative_jumps(values: np.ndarray, length: float) -> np.ndarray:
    r"""The jumps :math:`|u^{(k)}(b^-) - u^{(k)}(a^+)|` for ``k = 0 .. ORDERS - 1``, relative to
    :math:`\max|u^{(k)}|`, of node values ``(n + 1, m)`` on :math:`[a, b]` (both ends included),
    from one-sided ``WIDTH``-point stencils: ``(ORDERS, m)``."""
    values = np.asarray(values, dtype=np.float64)
    x = np.linspace(0.0, length, len(values))
    low = fd.fornberg_weights(x[0], x[:WIDTH], ORDERS - 1)
    high = fd.fornberg_weights(x[-1], x[-WIDTH:], ORDERS - 1)
    jumps = []
    for k in range(ORDERS):
        # the largest |u^(k)| from centred second-order differences (np.gradient), the ends one-sided
        derivative = values
        for _ in range(k):
            derivative = np.gradient(derivative, x, axis=0)
        scale = np.maximum(np.abs(derivative).max(axis=0), 1e-300)
        jumps.append(np.abs(high[:, k] @ values[-WIDTH:] - low[:, k] @ values[:WIDTH]) / scale)
    return np.array(jumps)


def seam_order(initial_values, bounds: tuple[float, float]) -> int | None:
    """``k + 1`` for the lowest derivative ``k`` of the initial values that jumps by more than
    ``RELATIVE_JUMP`` where the period closes, or ``None`` if none of the first ``ORDERS`` does.
    ``initial_values(x)`` returns ``(len(x), m)`` node values."""
    a, b = bounds
    values = np.asarray(initial_values(np.linspace(a, b, NODES + 1)), dtype=np.float64).reshape(NODES + 1, -1)
    jumps = derivative_jumps(values, b - a)
    jumped = np.flatnonzero((jumps > RELATIVE_JUMP).any(axis=1))
    return None if not len(jumped) else int(jumped[0]) + 1
