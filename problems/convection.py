r"""The periodic convection equation of Krishnapriyan et al. (2021), a failure mode of PINNs.

.. math::

    u_t + \beta u_x = 0, \quad x \in [0, 2\pi],\ t \in [0, 1], \qquad
    u(x, 0) = \sin x, \qquad u(0, t) = u(2\pi, t),

with exact solution :math:`u = \sin(x - \beta t)`.

Parameter: ``beta`` the speed (> 0; the benchmark uses 30, and 50 in the ``stiff`` suite). The
solution winds :math:`\beta/2\pi` times around the period, and a PINN's loss becomes hard to
train as :math:`\beta` grows (Krishnapriyan et al. report a relative error near 1 for
:math:`\beta \gtrsim 20` with a plain PINN).

Reference (:meth:`Convection.reference`): the method of lines on :math:`N` periodic nodes with
the centred 9-point (8th-order) first-derivative stencil, integrated by ``solve_ivp``'s DOP853 at
``rtol = 1e-12``; the solution is stored at 1001 times and interpolated by a quintic tensor
spline. Its error estimate is the relative L2 error against the exact solution on the
evaluation grid (256 x-points, 101 times).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from pinn_lam.pde import fd
from pinn_lam.pde.cache import cached_reference
from pinn_lam.pde.conditions import InitialValue, Periodic
from pinn_lam.pde.domains import Box
from pinn_lam.pde.fields import Fields
from pinn_lam.pde.problem import HardConstraint, Problem, Reference

from problems._validate import check_positive, check_resolution, on_standard_grid, warn_if_above

#: bump when the reference solver changes, so old cache entries are not reused
VERSION = "mol-fd8-1"
#: the evaluation grid: 256 x in [0, 2 pi], 101 t in [0, 1]
STANDARD_X = np.linspace(0.0, 2 * math.pi, 256)
STANDARD_T = np.linspace(0.0, 1.0, 101)
#: time levels kept for the interpolating spline
FINE_TIMES = np.linspace(0.0, 1.0, 1001)
#: width of the periodic centred stencil (order STENCIL - 1)
STENCIL = 9
RTOL, ATOL = 1e-12, 1e-13


def periodic_derivative(n: int, length: float, width: int = STENCIL) -> sp.csr_matrix:
    r"""The centred ``width``-point first derivative on ``n`` periodic nodes
    :math:`x_j = jL/n`: a circulant sparse ``(n, n)`` matrix of order ``width - 1``."""
    half = width // 2
    offsets = np.arange(-half, half + 1)
    weights = fd.fornberg_weights(0.0, offsets * (length / n), 1)[:, 1]
    rows = np.repeat(np.arange(n), width)
    cols = (rows + np.tile(offsets, n)) % n
    return sp.csr_matrix((np.tile(weights, n), (rows, cols)), shape=(n, n))


class Convection(Problem):
    """:math:`u_t + \\beta u_x = 0` on :math:`[0,2\\pi]\\times[0,1]`, periodic, :math:`u(x,0) = \\sin x`."""

    name = "convection"
    equation = "u_t + beta u_x = 0, x in [0,2pi], t in [0,1], u(x,0) = sin x, periodic in x"
    domain = Box(x=(0.0, 2 * math.pi), t=(0.0, 1.0))
    # LAM, then Levenberg-Marquardt on a plain 20x3 network with soft conditions, in float64
    # (docs/stiff-methods.md: with the periodic embedding and the hard initial condition LM fits
    # the collocation points of beta = 50 with a wrong solution)
    defaults = {"optimizer": "lam+lm", "iterations": [500, 1000], "width": 20, "depth": 3, "n_collocation": 1024,
                "hard_constraints": False, "lr": 0.003, "dtype": "float64"}
    table_parameters = ({"beta": 10.0}, {}, {"beta": 50.0})

    def __init__(self, beta: float = 30.0) -> None:
        self.beta = check_positive("beta", beta)

    def parameters(self) -> dict[str, Any]:
        return {"beta": self.beta}

    def pde(self, d: Fields) -> Tensor:
        return d["u_t"] + self.beta * d["u_x"]

    def conditions(self):
        return [InitialValue(lambda d: torch.sin(d["x"])), Periodic("x", derivatives=0)]

    def exact(self, d: Fields) -> Tensor:
        return torch.sin(d["x"] - self.beta * d["t"])

    def output_transform(self) -> HardConstraint:
        """:math:`u = \\sin x + t\\,\\mathrm{raw}`: the ``ic`` holds exactly (periodicity is trained)."""
        return HardConstraint(offset=lambda p: torch.sin(p[:, :1]), factor=lambda p: p[:, 1:2], covers=("ic",))

    def reference(self, resolution: Any = None, *, cache_dir: str | None = None) -> Reference:
        """The method-of-lines solution on ``resolution`` periodic nodes (an int >= 16; default
        512, which puts the spatial error far below the time integrator's), cached on disk."""
        (n,) = check_resolution(512 if resolution is None else resolution, minimum=(16,), from_int=lambda n: (n,))
        reference = cached_reference(self, [n], VERSION, lambda: self._solve(n), cache_dir, interpolator=_interpolator)
        return warn_if_above(reference, 1e-5, "high modes or speeds need more nodes: pass a finer resolution=")

    def _solve(self, n: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        length = 2 * math.pi
        x = np.arange(n) * (length / n)
        derivative = -self.beta * periodic_derivative(n, length)
        states = fd.method_of_lines(lambda t, u: derivative @ u, np.sin(x), FINE_TIMES, method="DOP853",
                                    rtol=RTOL, atol=ATOL)
        # the node x = 2 pi repeats x = 0, so the spline spans the whole period
        arrays = {"fine_x": np.r_[x, length], "fine_t": FINE_TIMES, "fine_u": np.vstack([states.T, states.T[:1]])}
        return on_standard_grid(self, arrays, _interpolator, (STANDARD_X, STANDARD_T), n,
                                f"method of lines, periodic {STENCIL}-point FD, {n} nodes, DOP853 rtol={RTOL:g}")


def _interpolator(arrays: Mapping[str, np.ndarray]):
    """A quintic tensor spline of the fine solution in :math:`(x, t)`, called on ``(N, 2)`` points."""
    return fd.grid_spline((arrays["fine_x"], arrays["fine_t"]), arrays["fine_u"], degree=5)
