r"""Re-entrant corners of a masked grid, and the extrapolation their singular expansion allows.

At a corner of interior angle :math:`\omega > \pi` a solution of a second-order elliptic
equation behaves like :math:`r^{\alpha}\sin(\alpha\theta)` with :math:`\alpha = \pi/\omega`
(:math:`2/3` for the L-shape's :math:`3\pi/2`), whatever the source. A consistent grid solution
then carries a pollution error that spreads from the corner over the whole domain: matching the
grid-scale corner layer (of size :math:`h^\alpha`) to the dual singular functions
:math:`r^{-k\alpha}\sin(k\alpha\theta)` gives, at a fixed node,

.. math::

    u_h = u + c_1 h^{2\alpha} + c_2 h^{3\alpha} + \dots \qquad (h^{4/3},\ h^{2}\ \text{for}\ \alpha = 2/3),

so the relative L2 error falls with order :math:`2\alpha` only, for any stencil width. Eliminating
both terms from three grids :math:`n/4, n/2, n` at the common nodes of the coarsest,

.. math::

    R_p(a, b) = \frac{2^p b - a}{2^p - 1}, \qquad
    E_n = R_{3\alpha}\bigl(R_{2\alpha}(u_{n/4}, u_{n/2}),\ R_{2\alpha}(u_{n/2}, u_n)\bigr),

and the error estimate of :math:`E_n` starts from its change from :math:`E_{n/2}` at their common
nodes, :math:`\varepsilon_n = \|E_n - E_{n/2}\|/\|E_n\|` (the error of :math:`E_{n/2}`, an upper
estimate of :math:`E_n`'s). The expansion holds less well at the nodes next to the corner, so
the change is divided by a rate (``tail``: the geometric tail of
:mod:`pinn_lam.pde.auto_reference`) only once three changes exist and their two ratios agree.
The order the raw solutions show on the last three grids is reported beside the corner's
:math:`2\alpha`.
"""
from __future__ import annotations

import math
import time as clock
from collections.abc import Callable

import numpy as np

from pinn_lam.pde.auto_refine import relative_change

#: how far from a boundary node (in grid spacings) the quadrants around it are probed
PROBE = 0.5


def corner_exponent(domain, grid) -> float | None:
    r""":math:`\alpha = \pi/\omega` of the sharpest re-entrant corner among the boundary nodes of
    the 2-D ``grid`` (:class:`~pinn_lam.pde.auto_steady.MaskedGrid`), or ``None`` without one.

    The interior angle :math:`\omega` at a node is :math:`\pi/2` times the number of the four
    quadrants around it whose diagonal point half a spacing away lies inside the domain."""
    if len(grid.axes) != 2:
        return None
    spacing = np.array([a[1] - a[0] for a in grid.axes])
    nodes = grid.points[grid.boundary]
    inside = sum(domain.contains(nodes + PROBE * spacing * np.array(sign), closed=False).astype(int)
                 for sign in ((1, 1), (-1, 1), (-1, -1), (1, -1)))
    quadrants = int(inside.max(initial=0))
    return None if quadrants < 3 else math.pi / (quadrants * math.pi / 2)


def richardson(coarse: np.ndarray, fine: np.ndarray, order: float) -> np.ndarray:
    """:math:`(2^p u_{h/2} - u_h)/(2^p - 1)`: removes the :math:`h^p` term of two solutions at common nodes."""
    return (2.0 ** order * fine - coarse) / (2.0 ** order - 1.0)


def on_nodes(grid, values: np.ndarray, axes: tuple[np.ndarray, ...]) -> np.ndarray:
    """The rows of ``values`` (one per node of ``grid``) at the nodes that lie on ``axes``, in ``grid``'s order."""
    keep = np.all([np.isin(np.round(grid.points[:, i] * 2 ** 40), np.round(a * 2 ** 40)) for i, a in enumerate(axes)],
                  axis=0)
    return values[keep]


def observed_order(changes: list[float]) -> float | None:
    r""":math:`\log_2(\varepsilon_{k-1}/\varepsilon_k)` of the last two changes between levels."""
    if len(changes) < 2 or changes[-1] <= 0 or changes[-2] <= 0:
        return None
    return float(math.log2(changes[-2] / changes[-1]))


def refine(solve_level: Callable[[int], tuple], alpha: float, target: float, budget: float, start: int,
           limit: int, tail: Callable[[list[float]], float]) -> dict:
    r"""Grids ``start, 2 start, ...`` (``solve_level(n)`` returns ``(grid, u)``), extrapolated as
    :math:`E_n` (module docstring) from the third on, until the estimate meets ``target``, the next
    grid would overrun ``budget`` seconds, or ``n`` would pass ``limit``.

    Returns ``grid`` (the grid whose nodes carry the values), ``u``, ``n``, ``estimate``,
    ``changes`` (of :math:`E`), ``raw_changes`` and ``stopped``; before two extrapolations exist,
    the finest raw solution with its change from the grid before."""
    began = clock.perf_counter()
    first, second = 2 * alpha, 3 * alpha
    raw, extrapolated, raw_changes, changes = {}, {}, [], []
    n, growth, took_before, result = start, 3.0, None, None
    while True:
        tick = clock.perf_counter()
        raw[n] = solve_level(n)
        took = clock.perf_counter() - tick
        if took_before is not None and took_before > 0.05:
            growth = max(3.0, took / took_before)
        took_before = took
        if n // 2 in raw:
            coarse_grid = raw[n // 2][0]
            raw_changes.append(relative_change(on_nodes(*raw[n], coarse_grid.axes), raw[n // 2][1]))
            result = {"grid": raw[n][0], "u": raw[n][1], "n": n, "estimate": raw_changes[-1]}
        if n // 4 in raw:
            axes = raw[n // 4][0].axes
            a, b, c = raw[n // 4][1], on_nodes(*raw[n // 2], axes), on_nodes(*raw[n], axes)
            extrapolated[n] = richardson(richardson(a, b, first), richardson(b, c, first), second)
            if n // 2 in extrapolated:
                changes.append(relative_change(on_nodes(raw[n // 4][0], extrapolated[n], raw[n // 8][0].axes),
                                               extrapolated[n // 2]))
                estimate = changes[-1] if len(changes) < 3 else tail(changes)
                result = {"grid": raw[n // 4][0], "u": extrapolated[n], "n": n, "estimate": estimate}
        if result is not None:
            result.update(changes=list(changes), raw_changes=list(raw_changes))
            if len(changes) and result["estimate"] <= target:
                return result | {"stopped": "met the target"}
            if clock.perf_counter() - began + growth * took > budget:
                return result | {"stopped": "time budget spent"}
            if 2 * n > limit:
                return result | {"stopped": "grid limit reached"}
        n *= 2
