r"""The heat equation on a rod with both ends held at zero.

.. math::

    u_t = \alpha\,u_{xx}, \quad x \in [0, 1],\ t \in [0, 1], \qquad
    u(0, t) = u(1, t) = 0, \qquad u(x, 0) = \sum_k a_k \sin(k\pi x),

with exact solution :math:`u = \sum_k a_k\, e^{-\alpha k^2\pi^2 t}\sin(k\pi x)`.

Parameters: ``alpha`` the diffusivity (> 0, in length²/time), ``modes`` the ``(k, a_k)`` pairs
(positive integer wave numbers ``k``, finite amplitudes).

Reference: the 3-point Laplacian in space and Crank–Nicolson in time, both second order, on
``n`` and ``2n`` intervals and steps, Richardson-extrapolated to fourth order on the ``2n`` grid
(an explicit ``resolution`` gives the plain scheme); its error estimate is the relative L2 error
against the exact solution on the reference grid.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pinn_lam.pde import fd
from pinn_lam.pde.cache import cached_reference
from pinn_lam.pde.conditions import Dirichlet, InitialValue
from pinn_lam.pde.domains import Box
from pinn_lam.pde.fields import Fields
from pinn_lam.pde.problem import HardConstraint, Problem, Reference

from problems._validate import (check_positive, check_resolution, check_sine_modes, extrapolate_to_fine_grid,
                              refined_intervals, warn_if_above)

#: bump when the reference solver changes, so old cache entries are not reused
VERSION = "cn-3"


class Heat(Problem):
    """:math:`u_t = \\alpha u_{xx}` on :math:`[0,1]^2` with a sine-series initial condition."""

    name = "heat"
    equation = "u_t = alpha u_xx, x, t in [0,1], u(0,t) = u(1,t) = 0, u(x,0) = sum a_k sin(k pi x)"
    domain = Box(x=(0.0, 1.0), t=(0.0, 1.0))
    #: relative L2 error the automatic resolution aims at (far below the 1e-6 of the accurate recipe)
    target_error = 1e-8

    def __init__(self, alpha: float = 0.1, modes=((1, 1.0), (4, 0.5))) -> None:
        self.alpha = check_positive("alpha", alpha)
        self.modes = check_sine_modes(modes)

    def parameters(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "modes": [list(mode) for mode in self.modes]}

    def pde(self, d: Fields) -> Tensor:
        return d["u_t"] - self.alpha * d["u_xx"]

    def initial(self, x: Tensor) -> Tensor:
        """:math:`u(x, 0) = \\sum_k a_k \\sin(k\\pi x)` for an ``(N, 1)`` tensor ``x``."""
        return sum(a * torch.sin(k * math.pi * x) for k, a in self.modes)

    def conditions(self):
        return [InitialValue(lambda d: self.initial(d["x"])), Dirichlet(0.0)]

    def exact(self, d: Fields) -> Tensor:
        x, t = d["x"], d["t"]
        return sum(a * torch.exp(-self.alpha * (k * math.pi) ** 2 * t) * torch.sin(k * math.pi * x)
                   for k, a in self.modes)

    def output_transform(self) -> HardConstraint:
        """:math:`u = \\sum_k a_k\\sin(k\\pi x) + t\\,x(1-x)\\,\\mathrm{raw}`: exact ``ic`` and ``bc``."""
        return HardConstraint(offset=lambda p: self.initial(p[:, :1]),
                              factor=lambda p: p[:, 1:2] * p[:, :1] * (1.0 - p[:, :1]),
                              covers=("ic", "bc"))

    def reference(self, resolution: Any = None, *, cache_dir: str | None = None) -> Reference:
        """Crank–Nicolson on ``resolution = (nx, nt)`` (intervals in x, time steps; an int ``n``
        means ``(n, n)``), or by default (``None``) the extrapolation from :meth:`auto_resolution`
        and twice it, cached on disk; a warning when its error is above 1e-7."""
        if resolution is None:
            reference = cached_reference(self, ["auto", self.target_error], VERSION,
                                         lambda: self._extrapolated(self.auto_resolution()),
                                         cache_dir, interpolator=_interpolator)
            return warn_if_above(reference, 1e-7, "the automatic resolution stops at 2048; pass resolution=")
        nx, nt = check_resolution(resolution, minimum=(8, 4), from_int=lambda n: (n, n))
        return cached_reference(self, [nx, nt], VERSION, lambda: self._solve(nx, nt), cache_dir,
                                interpolator=_interpolator)

    def auto_resolution(self) -> int:
        """``n`` (the extrapolation solves on ``n`` and ``2n``) with the error near
        :attr:`target_error`: a probe extrapolation (at least 8 intervals per wavelength of the
        highest mode) measures the error against the exact solution, and fourth order scales it
        (256 <= n <= 2048; 256 for the defaults, whose stored grid is then 513 x 513)."""
        probe = max(32, 4 * max(k for k, _ in self.modes))
        error = self._extrapolated(probe)[1]["error_estimate"]
        return refined_intervals(error, probe, order=4.0, target=self.target_error, minimum=256, maximum=2048)

    def _extrapolated(self, n: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        r""":math:`(4u_{2n} - I u_n)/3` on the ``2n`` grid, :math:`I` the cubic spline through the
        ``n`` solution: the :math:`h^2` and :math:`\Delta t^2` terms cancel (both expansions are even)."""
        return extrapolate_to_fine_grid(
            self, self._solve(n, n)[0], self._solve(2 * n, 2 * n)[0], _interpolator, n,
            f"Crank-Nicolson + 3-point Laplacian on {n} and {2 * n} intervals and steps, Richardson-extrapolated")

    def _solve(self, nx: int, nt: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        x, t = np.linspace(0.0, 1.0, nx + 1), np.linspace(0.0, 1.0, nt + 1)
        interior = x[1:-1]
        u0 = sum(a * np.sin(k * np.pi * interior) for k, a in self.modes)
        # keep about 512 time levels (at most 1024): the cubic spline between them adds far less than the scheme
        stride = max(d for d in range(1, nt // 512 + 1) if nt % d == 0) if nt > 512 else 1
        states = fd.crank_nicolson(self.alpha * fd.laplacian_1d(nx - 1, 1.0 / nx), u0, 1.0 / nt, nt,
                                   save_every=stride)
        t = t[::stride]
        u = np.zeros((nx + 1, len(t)))
        u[1:-1, :] = states.T
        mesh = np.stack(np.meshgrid(x, t, indexing="ij"), axis=-1).reshape(-1, 2)
        exact = self.exact_values(mesh).reshape(u.shape)
        error = float(np.linalg.norm(u - exact) / np.linalg.norm(exact))
        method = f"Crank-Nicolson + 3-point Laplacian, {nx} x-intervals, {nt} steps"
        return {"grid_0": x, "grid_1": t, "u": u}, {"error_estimate": error, "method": method,
                                                    "error_kind": "relative L2 vs exact",
                                                    "resolution": [nx, nt]}


def _interpolator(arrays):
    """A cubic spline through the grid values (error O(h^4), below the reference's own)."""
    return fd.grid_spline((arrays["grid_0"], arrays["grid_1"]), arrays["u"])
