r"""The Poisson equation on the unit square with a manufactured solution.

.. math::

    -\Delta u = f \ \text{on}\ (0, 1)^2, \qquad u = 0 \ \text{on the boundary}, \qquad
    u = \sum_{(m, n, a)} a\,\sin(m\pi x)\sin(n\pi y), \qquad
    f = \sum_{(m, n, a)} a\,(m^2 + n^2)\pi^2 \sin(m\pi x)\sin(n\pi y).

Parameters: ``modes`` the ``(m, n, a)`` triples (positive integer wave numbers ``m, n``,
finite amplitudes ``a``).

Reference: the 5-point Laplacian on a uniform grid (second order), assembled with
``scipy.sparse`` and solved by sparse LU (``scipy.sparse.linalg.splu``); its error estimate is
the relative L2 error against the exact solution on the reference grid.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse.linalg as spla
import torch
from torch import Tensor

from pinn_lam.pde import fd
from pinn_lam.pde.cache import cached_reference
from pinn_lam.pde.conditions import Dirichlet
from pinn_lam.pde.domains import Box
from pinn_lam.pde.fields import Fields
from pinn_lam.pde.problem import HardConstraint, Problem, Reference

from problems._validate import (check_amplitude, check_mode_number, check_resolution, extrapolate_to_fine_grid,
                              refined_intervals, warn_if_above)

#: bump when the reference solver changes, so old cache entries are not reused
VERSION = "5pt-3"


class Poisson(Problem):
    """:math:`-\\Delta u = f` on the unit square, :math:`u = 0` on its boundary."""

    name = "poisson"
    equation = "-Δu = f on (0,1)^2, u = 0 on the boundary, u = sum a sin(m pi x) sin(n pi y)"
    domain = Box(x=(0.0, 1.0), y=(0.0, 1.0))
    defaults = {"iterations": [1000, 2000]}
    #: relative L2 error the automatic resolution aims at (below the 1e-5 requirement)
    target_error = 6e-6

    def __init__(self, modes=((1, 1, 1.0), (4, 4, 0.1))) -> None:
        if not isinstance(modes, (list, tuple)) or len(modes) == 0:
            raise ValueError(f"modes must be a non-empty sequence of (m, n, a) triples, got {modes!r}")
        checked = []
        for mode in modes:
            if not isinstance(mode, (list, tuple)) or len(mode) != 3:
                raise ValueError(f"each mode must be an (m, n, a) triple, got {mode!r}")
            checked.append((check_mode_number("m", mode[0]), check_mode_number("n", mode[1]),
                            check_amplitude("a", mode[2])))
        self.modes = tuple(checked)

    def parameters(self) -> dict[str, Any]:
        return {"modes": [list(mode) for mode in self.modes]}

    def source(self, points: Tensor) -> Tensor:
        """:math:`f = -\\Delta u` at ``(N, 2)`` points: ``(N, 1)``."""
        x, y = points[:, :1], points[:, 1:2]
        return sum(a * (m * m + n * n) * math.pi ** 2 * torch.sin(m * math.pi * x) * torch.sin(n * math.pi * y)
                   for m, n, a in self.modes)

    def pde(self, d: Fields) -> Tensor:
        return -(d["u_xx"] + d["u_yy"]) - self.source(d.points)

    def conditions(self):
        return [Dirichlet(0.0)]

    def exact(self, d: Fields) -> Tensor:
        x, y = d["x"], d["y"]
        return sum(a * torch.sin(m * math.pi * x) * torch.sin(n * math.pi * y) for m, n, a in self.modes)

    def output_transform(self) -> HardConstraint:
        """:math:`u = x(1-x)\\,y(1-y)\\,\\mathrm{raw}`: the ``bc`` holds exactly."""
        return HardConstraint(offset=lambda p: torch.zeros_like(p[:, :1]),
                              factor=lambda p: p[:, :1] * (1 - p[:, :1]) * p[:, 1:2] * (1 - p[:, 1:2]),
                              covers=("bc",))

    def reference(self, resolution: Any = None, *, cache_dir: str | None = None) -> Reference:
        """The 5-point solution on ``resolution`` intervals per side (an int, or ``(nx, ny)``),
        or by default (``None``) the Richardson-extrapolated one on :meth:`auto_resolution`
        intervals, cached on disk; a warning when its error is above 1e-5 (modes too high for the cap)."""
        if resolution is None:
            reference = cached_reference(self, ["auto", self.target_error], VERSION,
                                         lambda: self._extrapolated(self.auto_resolution()),
                                         cache_dir, interpolator=_interpolator)
            return warn_if_above(reference, 1e-5, "the automatic resolution stops at 512 intervals; "
                                 "pass a finer resolution= for such high modes")
        nx, ny = check_resolution(resolution, minimum=(4, 4), from_int=lambda n: (n, n))
        return cached_reference(self, [nx, ny], VERSION, lambda: self._solve(nx, ny), cache_dir,
                                interpolator=_interpolator)

    def auto_resolution(self) -> int:
        """Intervals per side ``n`` (the extrapolation solves on ``n`` and ``2n``) with the error
        near :attr:`target_error`: a probe extrapolation (at least 8 intervals per wavelength of the
        highest mode) measures the error against the exact solution, and fourth order scales it
        (256 <= n <= 512: the stored ``2n`` grid keeps at least the 513 x 513 points the error is measured on)."""
        probe = 2 * max(16, 4 * max(max(m, n) for m, n, _ in self.modes))
        error = self._extrapolated(probe)[1]["error_estimate"]
        return refined_intervals(error, probe, order=4.0, target=self.target_error, minimum=256, maximum=512,
                                 multiple=32)

    def _extrapolated(self, n: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """:math:`(4u_{2n} - I u_n)/3` on the ``2n`` grid, :math:`I` the cubic spline through the
        ``n`` grid's values: the 5-point scheme's :math:`h^2` error term cancels (its expansion is
        even in :math:`h` for smooth solutions), leaving :math:`O(h^4)`, and the spline adds
        :math:`O(h^4)` too."""
        return extrapolate_to_fine_grid(
            self, self._solve(n, n)[0], self._solve(2 * n, 2 * n)[0], _interpolator, n,
            f"5-point Laplacian on {n} and {2 * n} intervals, Richardson-extrapolated (4th order), splu")

    def _solve(self, nx: int, ny: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        x, y = np.linspace(0.0, 1.0, nx + 1), np.linspace(0.0, 1.0, ny + 1)
        mesh = np.stack(np.meshgrid(x, y, indexing="ij"), axis=-1).reshape(-1, 2)
        f = self.source(torch.as_tensor(mesh)).numpy().reshape(nx + 1, ny + 1)
        # fd.laplacian_2d orders unknowns with x fastest, i.e. a (ny, nx) array raveled
        rhs = f[1:-1, 1:-1].T.ravel()
        matrix = -fd.laplacian_2d(nx - 1, ny - 1, 1.0 / nx, 1.0 / ny)
        # minimum degree on A^T + A fills in less than the default COLAMD for this symmetric matrix
        interior = spla.splu(matrix.tocsc(), permc_spec="MMD_AT_PLUS_A").solve(rhs)
        u = np.zeros((nx + 1, ny + 1))
        u[1:-1, 1:-1] = interior.reshape(ny - 1, nx - 1).T
        exact = self.exact_values(mesh).reshape(u.shape)
        error = float(np.linalg.norm(u - exact) / np.linalg.norm(exact))
        method = f"5-point Laplacian, sparse LU (splu), {nx} x {ny} intervals"
        return {"grid_0": x, "grid_1": y, "u": u}, {"error_estimate": error, "method": method,
                                                    "error_kind": "relative L2 vs exact",
                                                    "resolution": [nx, ny]}


def _interpolator(arrays):
    """A cubic spline through the grid values (error O(h^4), below the reference's own)."""
    return fd.grid_spline((arrays["grid_0"], arrays["grid_1"]), arrays["u"])
