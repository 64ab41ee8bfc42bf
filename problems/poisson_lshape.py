r"""The Poisson equation on an L-shaped domain, whose re-entrant corner makes the solution singular.

.. math::

    -\Delta u = 1 \ \text{on}\ \Omega = (-1, 1)^2 \setminus [0, 1]^2, \qquad u = 0 \ \text{on}\ \partial\Omega.

No parameters and no exact solution. Near the corner at the origin (interior angle
:math:`3\pi/2`) the solution behaves like :math:`r^{2/3}\sin(2\theta/3)`, so its gradient is
unbounded there and every grid method converges more slowly than on a smooth problem.

Reference (:meth:`PoissonLShape.reference`): the 5-point Laplacian on the nodes of a uniform
grid of ``n`` intervals per side of :math:`[-1, 1]^2` that lie inside :math:`\Omega` (the
others are boundary nodes with :math:`u = 0`), solved by sparse LU. The error estimate is
Richardson's with the *observed* order: the solutions on ``n``, ``n/2`` and ``n/4`` intervals at
their common nodes give the order :math:`p` (about 4/3 in L2 instead of 2, because of the
corner), and the estimate is :math:`\|u_n - u_{n/2}\|/(2^p - 1)` relative to :math:`\|u_n\|`.
The values are kept at the nodes of a 128-interval grid inside :math:`\bar\Omega` (a
:class:`~pinn_lam.pde.reference.PointReference`).
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
VERSION = "5pt-masked-1"
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
    defaults = {"iterations": [1000, 3000], "width": 32, "depth": 4, "n_collocation": 4096}
    presets = {"quick": {"iterations": [300, 600], "n_collocation": 2048}}
    table_parameters = ({},)

    def pde(self, d: Fields) -> Tensor:
        return -(d["u_xx"] + d["u_yy"]) - 1.0

    def conditions(self):
        return [Dirichlet(0.0)]

    def reference(self, resolution: Any = None, *, cache_dir: str | None = None) -> PointReference:
        """The masked 5-point solution on ``resolution`` intervals per side (a multiple of 512;
        default 512), at the 128-grid nodes in the closed L, cached on disk."""
        (n,) = check_resolution(512 if resolution is None else resolution, minimum=(512,), from_int=lambda n: (n,))
        if n % 512:
            raise ValueError(f"resolution must be a multiple of 512 intervals per side, got {n}")
        return self._reference(n, cache_dir)

    def _reference(self, n: int, cache_dir) -> PointReference:
        arrays, meta = cached(self.name, self.parameters(), [n], VERSION, lambda: self._solve(n), cache_dir)
        info = {k: v for k, v in meta.items() if k not in ("error_estimate", "seconds", "method")}
        return PointReference(arrays["points"], arrays["u"], error_estimate=meta["error_estimate"],
                              seconds=meta.get("seconds"), method=meta["method"], info=info)

    def _solve(self, n: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return solve_with_estimate(n, self.domain)


def solve_with_estimate(n: int, domain, standard: int = STANDARD_INTERVALS) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The masked solution on ``n`` intervals and its Richardson estimate from ``n/2`` and ``n/4``
    (all compared on the ``standard``-interval nodes): ``(arrays, meta)``."""
    fine, half, quarter = (masked_five_point(m)[::m // standard, ::m // standard] for m in (n, n // 2, n // 4))
    norm = np.linalg.norm(fine)
    change, coarse_change = np.linalg.norm(fine - half) / norm, np.linalg.norm(half - quarter) / norm
    order = observed_order(coarse_change, change, cap=2.0)
    axis = np.linspace(-1.0, 1.0, standard + 1)
    mesh = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    # the closed L: contains() also admits the cut-out's outer edges (x = 1 or y = 1 above the cut)
    inside = domain.contains(mesh) & ~((mesh[:, 0] > 0) & (mesh[:, 1] > 0))
    method = f"5-point Laplacian on the masked {n}-interval grid, splu"
    return {"points": mesh[inside], "u": fine.reshape(-1)[inside]}, {
        "error_estimate": float(change / (2 ** order - 1)), "method": method, "resolution": [n],
        "error_kind": f"Richardson n vs n/2 with the observed order {order:.2f}", "observed_order": order,
        "refinement_change": float(change)}
