r"""The Poisson equation on an L-shaped domain, whose re-entrant corner makes the solution singular.

.. math::

    -\Delta u = 1 \ \text{on}\ \Omega = (-1, 1)^2 \setminus [0, 1]^2, \qquad u = 0 \ \text{on}\ \partial\Omega.

No parameters and no exact solution. Near the corner at the origin (interior angle
:math:`3\pi/2`) the solution behaves like :math:`r^{2/3}\sin(2\theta/3)`, so its gradient is
unbounded there and every grid method converges more slowly than on a smooth problem.

Reference (:meth:`PoissonLShape.reference`): the 5-point Laplacian on the nodes of a uniform
grid of ``m`` intervals per side of :math:`[-1, 1]^2` that lie inside :math:`\Omega` (the
others are boundary nodes with :math:`u = 0`), solved by sparse LU, on ``n/4``, ``n/2`` and ``n``
intervals and extrapolated twice at their common nodes. The corner's singularity makes the
error expand as :math:`u_h = u + c_1 h^{4/3} + c_2 h^2 + c_3 h^{8/3} + \dots` (the exponents
:math:`2k\alpha` and 2 with :math:`\alpha = \pi/\omega = 2/3` for the interior angle
:math:`\omega = 3\pi/2`), so eliminating :math:`h^{4/3}` and then :math:`h^2`,

.. math::

    R_p(a, b) = \frac{2^p b - a}{2^p - 1}, \qquad
    E_n = R_2\bigl(R_{4/3}(u_{n/4}, u_{n/2}),\ R_{4/3}(u_{n/2}, u_n)\bigr),

leaves :math:`O(h^{8/3})`. The error estimate is the change :math:`\|E_n - E_{n/2}\|/\|E_n\|`
at the stored nodes: the error of :math:`E_{n/2}`, so an upper estimate of :math:`E_n`'s
(near the corner the expansion holds less well, and the change is not divided by a rate). The
single 5-point solution's observed order (about 4/3) is reported as ``raw_order``. Values are kept at the nodes of a 128-interval grid
inside :math:`\bar\Omega` (a :class:`~pinn_lam.pde.reference.PointReference`).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse.linalg as spla
from torch import Tensor

from pinn_lam.pde import fd
from pinn_lam.pde.cache import cached
from pinn_lam.pde.conditions import Dirichlet
from pinn_lam.pde.domains import Box
from pinn_lam.pde.fields import Fields
from pinn_lam.pde.problem import PointReference, Problem

from problems._validate import check_resolution, observed_order

#: bump when the reference solver changes, so old cache entries are not reused
VERSION = "5pt-masked-extrapolated-2"
#: intervals per side of the grid whose nodes carry the reference values
STANDARD_INTERVALS = 128


def masked_five_point(n: int) -> np.ndarray:
    r"""The 5-point solution of :math:`-\Delta u = 1` on ``n`` intervals per side (``n``
    divisible by 2): values at all ``(n + 1)^2`` nodes of :math:`[-1, 1]^2`, indexed ``[x, y]``,
    zero outside :math:`\Omega` and on its boundary."""
    axis = np.linspace(-1.0, 1.0, n + 1)
    h = 2.0 / n
    x, y = np.meshgrid(axis[1:-1], axis[1:-1], indexing="xy")  # (y, x) layout, x fastest
    inside = ~((x >= 0) & (y >= 0))
    active = np.flatnonzero(inside.ravel())
    # dropping the rows and columns of the nodes outside puts u = 0 there: the Dirichlet condition
    matrix = -fd.laplacian_2d(n - 1, n - 1, h, h)[active][:, active]
    solution = spla.splu(matrix.tocsc(), permc_spec="MMD_AT_PLUS_A").solve(np.ones(len(active)))
    u = np.zeros((n - 1) * (n - 1))
    u[active] = solution
    full = np.zeros((n + 1, n + 1))
    full[1:-1, 1:-1] = u.reshape(n - 1, n - 1).T
    return full


class PoissonLShape(Problem):
    """:math:`-\\Delta u = 1` on the L-shape :math:`(-1,1)^2 \\setminus [0,1]^2`, :math:`u = 0` on its boundary."""

    name = "poisson-lshape"
    equation = "-Δu = 1 on (-1,1)^2 minus [0,1]^2, u = 0 on the boundary"
    domain = Box(x=(-1.0, 1.0), y=(-1.0, 1.0)) - Box(x=(0.0, 1.0), y=(0.0, 1.0))
    # LAM, then Levenberg-Marquardt on a small network (6.4e-3 after 300 LM steps on seed 0, still falling)
    defaults = {"optimizer": "lam+lm", "iterations": [300, 500], "width": 20, "depth": 3, "n_collocation": 2048}
    presets = {"quick": {"iterations": [300, 600], "n_collocation": 2048}}
    table_parameters = ({},)

    def pde(self, d: Fields) -> Tensor:
        return -(d["u_xx"] + d["u_yy"]) - 1.0

    def conditions(self):
        return [Dirichlet(0.0)]

    def reference(self, resolution: Any = None, *, cache_dir: str | None = None) -> PointReference:
        """The extrapolated 5-point solution with ``resolution`` intervals per side on its finest
        grid (a multiple of 1024; default 1024), at the 128-grid nodes in the closed L, cached on disk."""
        (n,) = check_resolution(1024 if resolution is None else resolution, minimum=(1024,), from_int=lambda n: (n,))
        if n % 1024:
            raise ValueError(f"resolution must be a multiple of 1024 intervals per side, got {n}")
        return self._reference(n, cache_dir)

    def _reference(self, n: int, cache_dir) -> PointReference:
        arrays, meta = cached(self.name, self.parameters(), [n], VERSION, lambda: self._solve(n), cache_dir)
        info = {k: v for k, v in meta.items() if k not in ("error_estimate", "seconds", "method")}
        return PointReference(arrays["points"], arrays["u"], error_estimate=meta["error_estimate"],
                              seconds=meta.get("seconds"), method=meta["method"], info=info)

    def _solve(self, n: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return solve_with_estimate(n, self.domain)


#: the exponents of the error expansion the extrapolation eliminates
CORNER_ORDER, SMOOTH_ORDER = 4.0 / 3.0, 2.0


def richardson(coarse: np.ndarray, fine: np.ndarray, order: float) -> np.ndarray:
    """:math:`(2^p u_{h/2} - u_h)/(2^p - 1)`: removes the :math:`h^p` term of two solutions at common nodes."""
    return (2.0 ** order * fine - coarse) / (2.0 ** order - 1.0)


def extrapolated(raw: dict[int, np.ndarray], n: int) -> np.ndarray:
    """:math:`E_n` (module docstring) from the solutions ``raw[m]`` on ``m = n/4, n/2, n`` intervals at common nodes."""
    return richardson(richardson(raw[n // 4], raw[n // 2], CORNER_ORDER),
                      richardson(raw[n // 2], raw[n], CORNER_ORDER), SMOOTH_ORDER)


def solve_with_estimate(n: int, domain, standard: int = STANDARD_INTERVALS) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    r""":math:`E_n` and its estimate :math:`\|E_n - E_{n/2}\|/\|E_n\|` (module docstring) at the
    ``standard``-interval nodes (``n`` a multiple of ``8 * standard``): ``(arrays, meta)``."""
    if n % (8 * standard):
        raise ValueError(f"n must be a multiple of 8 x {standard} intervals, got {n}")
    raw = {m: masked_five_point(m)[::m // standard, ::m // standard] for m in (n // 8, n // 4, n // 2, n)}
    value, before = extrapolated(raw, n), extrapolated(raw, n // 2)
    change = float(np.linalg.norm(value - before) / np.linalg.norm(value))
    raw_order = observed_order(np.linalg.norm(raw[n // 4] - raw[n // 8]), np.linalg.norm(raw[n // 2] - raw[n // 4]),
                               cap=2.0)
    axis = np.linspace(-1.0, 1.0, standard + 1)
    mesh = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    # the closed L: contains() also admits the cut-out's outer edges (x = 1 or y = 1 above the cut)
    inside = domain.contains(mesh) & ~((mesh[:, 0] > 0) & (mesh[:, 1] > 0))
    method = (f"5-point Laplacian on the masked {n // 4}-, {n // 2}- and {n}-interval grids, splu, "
              "extrapolated in h^(4/3) and h^2")
    return {"points": mesh[inside], "u": value.reshape(-1)[inside]}, {
        "error_estimate": change, "method": method, "resolution": [n], "raw_order": raw_order,
        "error_kind": "change from the extrapolation on n/8, n/4, n/2 (an upper estimate)",
        "refinement_change": change}
