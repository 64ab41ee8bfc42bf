r"""The 1-D wave equation of Wang, Yu & Perdikaris (2022), with an exact solution.

.. math::

    u_{tt} = c^2 u_{xx}, \quad x \in [0, 1],\ t \in [0, 1], \qquad u(0, t) = u(1, t) = 0, \qquad
    u(x, 0) = \sum_k a_k \sin(k\pi x), \qquad u_t(x, 0) = 0,

with exact solution :math:`u = \sum_k a_k \sin(k\pi x)\cos(c k\pi t)`.

Parameters: ``c`` the wave speed (> 0; the benchmark uses 2), ``modes`` the ``(k, a_k)`` pairs
(the benchmark: :math:`\sin\pi x + 0.5\sin 4\pi x`). The high mode oscillates :math:`4c/2 = 4`
times in :math:`t \in [0, 1]`, which makes the residual loss much stiffer than the others
(the NTK analysis of Wang, Yu & Perdikaris).

Reference (:meth:`Wave.reference`): the method of lines for :math:`(u, u_t)` on ``n`` intervals
with the centred 7-point (6th-order) second derivative, continued past the ends by odd
reflection (:func:`odd_reflection_second_derivative`: the sine series is odd about both ends, and
the operator stays symmetric and negative definite, so the semi-discrete system is stable), integrated by ``solve_ivp``'s DOP853 at ``rtol = 1e-12`` and stored at 1001 times (quintic
spline). Its error estimate is the relative L2 error against the exact solution on the
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
from pinn_lam.pde.conditions import Dirichlet, InitialRate, InitialValue
from pinn_lam.pde.domains import Box
from pinn_lam.pde.fields import Fields
from pinn_lam.pde.problem import HardConstraint, Problem, Reference

from problems._validate import check_positive, check_resolution, check_sine_modes, on_standard_grid, warn_if_above

#: bump when the reference solver changes, so old cache entries are not reused
VERSION = "mol-fd6-1"
#: the evaluation grid: 256 x in [0, 1], 101 t in [0, 1]
STANDARD_X = np.linspace(0.0, 1.0, 256)
STANDARD_T = np.linspace(0.0, 1.0, 101)
FINE_TIMES = np.linspace(0.0, 1.0, 1001)
#: stencil width of the second derivative (7 points: 6th order in the interior)
STENCIL = 7
RTOL, ATOL = 1e-12, 1e-13


def odd_reflection_second_derivative(n: int, width: int = STENCIL) -> sp.csr_matrix:
    r"""The centred ``width``-point :math:`\partial_{xx}` on the ``n - 1`` interior nodes of
    ``n`` uniform intervals of :math:`[0, 1]`, with :math:`u_{-j} = -u_j` and :math:`u_{n+j} = -u_{n-j}`
    beyond the ends (and :math:`u_0 = u_n = 0`): an ``(n - 1, n - 1)`` matrix of order ``width - 1``."""
    half = width // 2
    offsets = np.arange(-half, half + 1)
    weights = fd.fornberg_weights(0.0, offsets / n, 2)[:, 2]
    rows, cols, vals = [], [], []
    for i in range(1, n):
        for offset, weight in zip(offsets, weights):
            j, sign = i + offset, 1.0
            if j < 0:
                j, sign = -j, -1.0
            elif j > n:
                j, sign = 2 * n - j, -1.0
            if 0 < j < n:
                rows.append(i - 1)
                cols.append(j - 1)
                vals.append(sign * weight)
    return sp.csr_matrix((vals, (rows, cols)), shape=(n - 1, n - 1))


class Wave(Problem):
    """:math:`u_{tt} = c^2 u_{xx}` on :math:`[0,1]^2`, fixed ends, released from rest."""

    name = "wave"
    equation = "u_tt = c^2 u_xx, x, t in [0,1], u(0,t) = u(1,t) = 0, u(x,0) = sum a_k sin(k pi x), u_t(x,0) = 0"
    domain = Box(x=(0.0, 1.0), t=(0.0, 1.0))
    defaults = {"optimizer": "lam+lm", "iterations": [1000, 2500], "width": 20, "depth": 3, "n_collocation": 1024,
                "hard_constraints": False}
    presets = {"quick": {"iterations": [300, 200]}}
    table_parameters = ({}, {"c": 1.0, "modes": [[2, 1.0], [6, 0.3]]})

    def __init__(self, c: float = 2.0, modes=((1, 1.0), (4, 0.5))) -> None:
        self.c = check_positive("c", c)
        self.modes = check_sine_modes(modes)

    def parameters(self) -> dict[str, Any]:
        return {"c": self.c, "modes": [list(mode) for mode in self.modes]}

    def initial(self, x: Tensor) -> Tensor:
        """:math:`u(x, 0) = \\sum_k a_k \\sin(k\\pi x)` for an ``(N, 1)`` tensor ``x``."""
        return sum(a * torch.sin(k * math.pi * x) for k, a in self.modes)

    def pde(self, d: Fields) -> Tensor:
        return d["u_tt"] - self.c ** 2 * d["u_xx"]

    def conditions(self):
        return [InitialValue(lambda d: self.initial(d["x"])), InitialRate(0.0), Dirichlet(0.0)]

    def exact(self, d: Fields) -> Tensor:
        x, t = d["x"], d["t"]
        return sum(a * torch.sin(k * math.pi * x) * torch.cos(self.c * k * math.pi * t) for k, a in self.modes)

    def output_transform(self) -> HardConstraint:
        """:math:`u = u_0(x) + t^2 x(1-x)\\,\\mathrm{raw}`: exact ``ic``, ``ic_rate`` and ``bc``.

        Not used by default (``hard_constraints=False`` in :attr:`defaults`): the exact solution
        asks the raw network for :math:`(u - u_0)/(t^2 x(1-x))`, which tends to
        :math:`-\\tfrac12\\sum_k (ck\\pi)^2 a_k \\sin(k\\pi x)/(x(1-x))` as :math:`t \\to 0`
        (up to about 2e3 for the benchmark's modes), far outside a tanh network's natural scale."""
        return HardConstraint(offset=lambda p: self.initial(p[:, :1]),
                              factor=lambda p: p[:, 1:2] ** 2 * p[:, :1] * (1.0 - p[:, :1]),
                              covers=("ic", "ic_rate", "bc"))

    def reference(self, resolution: Any = None, *, cache_dir: str | None = None) -> Reference:
        """The method-of-lines solution on ``resolution`` intervals (an int >= 16; default 512),
        cached on disk."""
        (n,) = check_resolution(512 if resolution is None else resolution, minimum=(16,), from_int=lambda n: (n,))
        reference = cached_reference(self, [n], VERSION, lambda: self._solve(n), cache_dir, interpolator=_interpolator)
        return warn_if_above(reference, 1e-5, "high modes or speeds need more nodes: pass a finer resolution=")

    def _solve(self, n: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        x = np.linspace(0.0, 1.0, n + 1)
        second = self.c ** 2 * odd_reflection_second_derivative(n)
        m = n - 1
        system = sp.bmat([[None, sp.identity(m)], [second, None]], format="csr")
        u0 = sum(a * np.sin(k * np.pi * x[1:-1]) for k, a in self.modes)
        states = fd.method_of_lines(lambda t, y: system @ y, np.r_[u0, np.zeros(m)], FINE_TIMES,
                                    method="DOP853", rtol=RTOL, atol=ATOL)
        fine = np.zeros((n + 1, len(FINE_TIMES)))
        fine[1:-1] = states[:, :m].T
        arrays = {"fine_x": x, "fine_t": FINE_TIMES, "fine_u": fine}
        return on_standard_grid(self, arrays, _interpolator, (STANDARD_X, STANDARD_T), n,
                                f"method of lines, {STENCIL}-point FD, {n} intervals, DOP853 rtol={RTOL:g}")


def _interpolator(arrays: Mapping[str, np.ndarray]):
    """A quintic tensor spline of the fine solution in :math:`(x, t)`, called on ``(N, 2)`` points."""
    return fd.grid_spline((arrays["fine_x"], arrays["fine_t"]), arrays["fine_u"], degree=5)
