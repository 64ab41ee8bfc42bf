r"""The method of lines for any evolution problem in one space dimension, from its own residual.

A problem's residual :math:`R(x, t, u, u_x, \dots, u_t)` reads named fields. Fed with
finite-difference derivatives of grid values instead of network derivatives, it defines the
semi-discrete system: where :math:`R` is affine in the highest time derivative,

.. math::

    R = A(x, t, u, u_x, \dots)\,u_t + B(x, t, u, u_x, \dots)
    \quad\Longrightarrow\quad u_t = -A^{-1} B \quad \text{at every node,}

with :math:`B = R|_{u_t = 0}` and the columns of :math:`A` from :math:`R|_{u_t = e_j} - B` (one
batched call of the residual per right-hand side; an :math:`m \times m` solve per node for
:math:`m` outputs). A second-order equation (:math:`u_{tt}`, with ``InitialValue`` and
``InitialRate``) becomes the first-order system for :math:`(u, w = u_t)`.

Space: :math:`n` intervals with ``width``-point Fornberg stencils (:func:`fd.difference_matrix`;
one-sided near the ends), or :math:`n` nodes with centred circulant stencils for a periodic
variable, or with ``spectral=True`` the dense Fourier collocation matrices
(:func:`spectral.differentiation_matrix`) and the Jacobian of :mod:`pinn_lam.pde.auto_jacobian`.
A boundary condition at an end (Dirichlet, Neumann, Robin: any condition affine in the
end node's value) eliminates that node: its value solves the condition, given the other nodes.
Time: ``solve_ivp``'s BDF with the Jacobian's sparsity (:func:`fd.method_of_lines`), or its
dense Jacobian where the matrices are dense; for periodic problems with coefficients free of
x and t, the exponential integrator of :mod:`pinn_lam.pde.auto_exponential` uses
:meth:`Semidiscrete.rhs` alike.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from pinn_lam.errors import ProblemError
from pinn_lam.pde import fd
from pinn_lam.pde import spectral as fourier
from pinn_lam.pde.auto_jacobian import jacobian
from pinn_lam.pde.fields import TensorFields
from pinn_lam.pde.spec import equation_residuals

#: the highest derivative order in space the solver takes
MAX_SPACE_ORDER = 3


@dataclass(frozen=True)
class EndCondition:
    """A condition that fixes ``output`` at the ``side`` (0: low, 1: high) end of space; it reads
    the space derivatives ``orders`` (0 for the value) of that output."""

    name: str
    output: int
    side: int
    orders: tuple[int, ...]


@dataclass(frozen=True)
class EvolutionPlan:
    """What the method of lines needs to know about a problem (see :func:`plan` in
    :mod:`pinn_lam.pde.auto_reference`)."""

    space: str
    time: str
    outputs: tuple[str, ...]
    equations: tuple[str, ...]
    time_order: int
    space_order: int
    periodic: bool
    ends: tuple[EndCondition, ...]
    #: output index -> the condition giving its initial value (and, second order, its initial rate)
    initial_values: dict[int, str]
    initial_rates: dict[int, str]


class GridFields(TensorFields):
    """:class:`TensorFields` whose derivatives are keyed by direction letters in any order
    (``"xt"`` and ``"tx"`` are the same field)."""

    def _compute(self, output: int, directions: str) -> torch.Tensor:
        return super()._compute(output, "".join(sorted(directions)))


def space_nodes(bounds: tuple[float, float], n: int, periodic: bool) -> np.ndarray:
    """``n + 1`` nodes on ``[a, b]``, or ``n`` nodes ``a + jh`` (``h = (b - a)/n``) when periodic."""
    a, b = bounds
    return a + (b - a) * np.arange(n) / n if periodic else np.linspace(a, b, n + 1)


def periodic_difference_matrix(n: int, h: float, derivative: int, width: int) -> sp.csr_matrix:
    """The circulant ``(n, n)`` matrix of the centred ``width``-point stencil of the
    ``derivative``-th derivative on ``n`` periodic nodes of spacing ``h``."""
    if width > n:
        raise ValueError(f"a periodic stencil of {width} points needs at least {width} nodes, got {n}")
    half = width // 2
    offsets = np.arange(-half, half + 1)
    weights = fd.fornberg_weights(0.0, h * offsets, derivative)[:, derivative]
    rows = np.repeat(np.arange(n), width)
    cols = (rows.reshape(n, width) + offsets).ravel() % n
    return sp.csr_matrix((np.tile(weights, n), (rows, cols)), shape=(n, n))


class Semidiscrete:
    r"""The semi-discrete system :math:`y' = f(t, y)` of ``problem`` on ``n`` intervals.

    ``y`` holds, output after output, the free nodes (those no end condition fixes); with
    second order in time, the values and then the rates. :meth:`full` rebuilds every node.
    ``spectral=True`` (periodic plans only) differentiates by Fourier collocation instead of stencils.
    """

    def __init__(self, problem, plan: EvolutionPlan, n: int, width: int, spectral: bool = False) -> None:
        if spectral and not plan.periodic:
            raise ValueError("Fourier differentiation needs a periodic space variable")
        self.problem, self.plan = problem, plan
        space_bounds = problem.domain.bounds[problem.variables.index(plan.space)]
        self.x = space_nodes(space_bounds, n, plan.periodic)
        size, h = len(self.x), (space_bounds[1] - space_bounds[0]) / n
        needed = max(plan.space_order, 1)
        self.spectral = spectral
        if spectral:
            self.d = [fourier.differentiation_matrix(size, space_bounds[1] - space_bounds[0], k)
                      for k in range(1, needed + 1)]
        elif plan.periodic:
            self.d = [periodic_difference_matrix(size, h, k, width) for k in range(1, needed + 1)]
        else:
            # second order in time: centred rows up to the ends keep the scheme from growing (fd.difference_matrix)
            centred = plan.time_order == 2
            self.d = [fd.difference_matrix(self.x, k, width, centred=centred) for k in range(1, needed + 1)]
        self.size, self.m = size, len(plan.outputs)
        fixed = {(e.output, 0 if e.side == 0 else size - 1) for e in plan.ends}
        self.free = [np.array([i for i in range(size) if (o, i) not in fixed]) for o in range(self.m)]
        self.unknowns = {k: torch.tensor(float(v), dtype=torch.float64) for k, v in problem.unknowns.items()}
        self.variables = tuple(problem.variables)
        self.inverse_coefficient = self._constant_inverse_coefficient()

    # -- nodes ---------------------------------------------------------------------------------
    def points(self, t: float, x: np.ndarray | None = None) -> torch.Tensor:
        x = self.x if x is None else x
        columns = {self.plan.space: x, self.plan.time: np.full(len(x), float(t))}
        return torch.as_tensor(np.column_stack([columns[v] for v in self.variables]))

    def derivative(self, values: np.ndarray, order: int) -> np.ndarray:
        """The ``order``-th space derivative of ``(size, m)`` node values (order 0: the values)."""
        return values if order == 0 else np.asarray(self.d[order - 1] @ values)

    def _split(self, y: np.ndarray) -> list[np.ndarray]:
        """The free-node blocks of ``y``, output after output (values, then rates)."""
        sizes = [len(f) for f in self.free] * self.plan.time_order
        return np.split(y, np.cumsum(sizes)[:-1])

    def full(self, t: float, y: np.ndarray) -> np.ndarray:
        """Every node's values ``(size, m)`` (and, second order, the rates ``(size, m)`` after them:
        ``(size, 2m)``), the fixed ends solved from their conditions."""
        blocks = self._split(y)
        u = np.zeros((self.size, self.m))
        for o in range(self.m):
            u[self.free[o], o] = blocks[o]
        u = self.solve_ends(t, u)
        if self.plan.time_order == 1:
            return u
        w = np.zeros((self.size, self.m))
        for o in range(self.m):
            w[self.free[o], o] = blocks[self.m + o]
        if self.plan.ends:
            # the rate at a fixed end is the time derivative of its solved value along (w, 1)
            step = 1e-4 * max(1.0, abs(t))
            ahead = self.solve_ends(t + step, u + step * w)
            behind = self.solve_ends(t - step, u - step * w)
            for e in self.plan.ends:
                i = 0 if e.side == 0 else self.size - 1
                w[i, e.output] = (ahead[i, e.output] - behind[i, e.output]) / (2 * step)
        return np.concatenate([u, w], axis=1)

    def end_residual(self, end: EndCondition, t: float, u: np.ndarray, trial: np.ndarray) -> np.ndarray:
        """The condition's residual at its end with the end value set to each of ``trial``."""
        i = 0 if end.side == 0 else self.size - 1
        k = len(trial)
        values = np.repeat(u[i:i + 1], k, axis=0)
        derivatives = {}
        for order in sorted(set(end.orders) - {0}):
            row = self.d[order - 1].getrow(i)
            base = np.asarray(row @ u).reshape(1, -1)
            weight = row[0, i]
            column = base + (trial - u[i, end.output])[:, None] * weight * np.eye(self.m)[end.output]
            derivatives[self.plan.space * order] = torch.as_tensor(column)
        values[:, end.output] = trial
        normal = np.zeros((k, len(self.variables)))
        normal[:, self.variables.index(self.plan.space)] = -1.0 if end.side == 0 else 1.0
        points = self.points(t, np.full(k, self.x[i]))
        d = GridFields(points, torch.as_tensor(values), derivatives, self.variables, self.plan.outputs,
                       self.unknowns, normal=torch.as_tensor(normal), time=self.plan.time)
        condition = self.problem.condition_map()[end.name]
        return condition.residual(d).detach().numpy()[:, 0]

    def solve_ends(self, t: float, u: np.ndarray) -> np.ndarray:
        """``u`` with each fixed end node solving its (affine) condition."""
        u = u.copy()
        for end in self.plan.ends:
            i = 0 if end.side == 0 else self.size - 1
            r0, r1 = self.end_residual(end, t, u, np.array([0.0, 1.0]))
            u[i, end.output] = -r0 / (r1 - r0)
        return u

    # -- the residual --------------------------------------------------------------------------
    def residual(self, t: float, state: np.ndarray, highest: np.ndarray) -> np.ndarray:
        """The residuals ``(k, size, e)`` with the highest time derivative set to each of the
        ``(k, size, m)`` arrays ``highest`` (``state`` from :meth:`full`)."""
        k, plan, space = len(highest), self.plan, self.plan.space
        u = state[:, :self.m]
        derivatives = {}
        for order in range(1, plan.space_order + 1):
            derivatives[space * order] = np.tile(self.derivative(u, order), (k, 1))
        top = "".join(sorted(plan.time * plan.time_order))
        derivatives[top] = highest.reshape(k * self.size, self.m)
        if plan.time_order == 2:
            w = state[:, self.m:]
            for order in range(plan.space_order + 1):
                key = "".join(sorted(space * order + plan.time))
                derivatives[key] = np.tile(self.derivative(w, order), (k, 1))
        points = self.points(t).repeat(k, 1)
        d = GridFields(points, torch.as_tensor(np.tile(u, (k, 1))),
                       {key: torch.as_tensor(value) for key, value in derivatives.items()},
                       self.variables, plan.outputs, self.unknowns, time=plan.time)
        residuals = equation_residuals(self.problem.pde(d), plan.equations, k * self.size)
        return torch.cat(list(residuals.values()), dim=1).detach().numpy().reshape(k, self.size, -1)

    def coefficient(self, t: float, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:math:`A` ``(size, e, m)`` and :math:`B` ``(size, e)`` of :math:`R = A u_t + B` at every node
        (``u_tt`` for second order in time): one batched residual per column of :math:`A`."""
        probes = np.zeros((self.m + 1, self.size, self.m))
        for j in range(self.m):
            probes[j + 1, :, j] = 1.0
        r = self.residual(t, state, probes)
        return np.stack([r[j + 1] - r[0] for j in range(self.m)], axis=2), r[0]

    def _constant_inverse_coefficient(self) -> np.ndarray | None:
        """:math:`A^{-1}` ``(size, m, m)`` where :math:`A` is the same for random states at three
        times (it depends on neither the solution nor time), else ``None``."""
        low, high = self.problem.domain.bounds[self.variables.index(self.plan.time)]
        rng = np.random.default_rng(5)
        size = sum(len(f) for f in self.free) * self.plan.time_order
        try:
            with np.errstate(all="ignore"):
                seen = [self.coefficient(t, self.full(t, rng.standard_normal(size)))[0]
                        for t in (low, low + 0.37 * (high - low), high)]
                if any(a.shape[1] != self.m or not np.isfinite(a).all() for a in seen):
                    return None
                scale = float(np.abs(seen[0]).max())
                if scale == 0 or not all(np.allclose(a, seen[0], rtol=1e-12, atol=1e-14 * scale) for a in seen[1:]):
                    return None
                inverse = np.linalg.inv(seen[0])
        except Exception:  # a singular or undefined coefficient: solve node by node at every call
            return None
        return inverse if np.isfinite(inverse).all() else None

    def highest_derivative(self, t: float, state: np.ndarray) -> np.ndarray:
        """``u_t`` (or ``u_tt``) at every node, ``(size, m)``: :math:`-A^{-1}B` node by node
        (:math:`A^{-1}` computed once where :math:`A` is constant)."""
        if self.inverse_coefficient is not None:
            b = self.residual(t, state, np.zeros((1, self.size, self.m)))[0]
            return -np.einsum("nme,ne->nm", self.inverse_coefficient, b)
        a, b = self.coefficient(t, state)
        if self.m == 1:
            return -b / a[:, :, 0]
        return -np.linalg.solve(a, b[..., None])[..., 0]

    def rhs(self, t: float, y: np.ndarray) -> np.ndarray:
        state = self.full(t, y)
        top = self.highest_derivative(t, state)
        parts = [state[self.free[o], self.m + o] for o in range(self.m)] if self.plan.time_order == 2 else []
        return np.concatenate(parts + [top[self.free[o], o] for o in range(self.m)])

    def pack(self, u: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """The state ``y`` of node values ``(size, m)`` (and rates)."""
        parts = [u[self.free[o], o] for o in range(self.m)]
        if self.plan.time_order == 2:
            parts += [w[self.free[o], o] for o in range(self.m)]
        return np.concatenate(parts)

    def sparsity(self) -> sp.csr_matrix:
        """Which entries of the Jacobian :math:`\\partial f/\\partial y` may be nonzero."""
        stencil = sp.identity(self.size, format="csr")
        for matrix in self.d[:max(self.plan.space_order, 1)]:
            stencil = stencil + abs(matrix)
        stencil = (stencil != 0).astype(np.float64)
        # a fixed end's value depends on the free nodes its condition reads
        elimination = sp.lil_matrix((self.size, self.size))
        for i in range(self.size):
            elimination[i, i] = 1.0
        for end in self.plan.ends:
            i = 0 if end.side == 0 else self.size - 1
            for order in end.orders:
                if order:
                    for j in self.d[order - 1].getrow(i).indices:
                        elimination[i, j] = 1.0
        reach = ((stencil @ elimination.tocsr()) != 0).astype(np.float64)
        blocks = [[reach[self.free[o]][:, self.free[p]] for p in range(self.m)] for o in range(self.m)]
        coupled = sp.bmat(blocks, format="csr")
        if self.plan.time_order == 1:
            return coupled
        identity = sp.identity(coupled.shape[0], format="csr")
        return sp.bmat([[None, identity], [coupled, coupled]], format="csr")


def initial_state(system: Semidiscrete, initial: Callable[[int, str, np.ndarray], np.ndarray]) -> np.ndarray:
    """The state at the first time; ``initial(output, condition, x)`` gives node values."""
    plan = system.plan
    u = np.column_stack([initial(o, plan.initial_values[o], system.x) for o in range(system.m)])
    w = None
    if plan.time_order == 2:
        w = np.column_stack([initial(o, plan.initial_rates[o], system.x) if o in plan.initial_rates
                             else np.zeros(system.size) for o in range(system.m)])
    return system.pack(u, w)


def solve(problem, plan: EvolutionPlan, n: int, width: int, times: np.ndarray, rtol: float,
          initial: Callable[[int, str, np.ndarray], np.ndarray],
          deadline: float = math.inf, spectral: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The nodes ``x`` and the solution ``(len(x), len(times), m)`` on ``n`` intervals
    (``RuntimeError`` when the integrator fails or ``time.perf_counter()`` passes ``deadline``)."""
    system = Semidiscrete(problem, plan, n, width, spectral)
    y0 = initial_state(system, initial)
    scale = max(float(np.abs(y0).max()), 1e-3)

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the method of lines on {n} intervals ran past its time budget")
        return system.rhs(t, y)

    structure = {"jac": lambda t, y: jacobian(system, t, y)} if spectral else {"jac_sparsity": system.sparsity()}
    ys = fd.method_of_lines(rhs, y0, times, method="BDF", rtol=rtol, atol=rtol * scale, **structure)
    u = np.stack([system.full(t, y)[:, :system.m] for t, y in zip(times, ys)], axis=1)
    return system.x, u


def check_affine(system: Semidiscrete, state: np.ndarray, t: float) -> None:
    """One-line :class:`ProblemError` unless the residual is affine in the highest time
    derivative and determines it at every node."""
    plan, rng = system.plan, np.random.default_rng(3)
    p = rng.standard_normal((system.size, system.m))
    probes = np.stack([np.zeros_like(p)] + [np.eye(system.m)[j] + 0 * p for j in range(system.m)] + [p, 2 * p])
    r = system.residual(t, state, probes)
    b, a = r[0], np.stack([r[j + 1] - r[0] for j in range(system.m)], axis=2)
    name = f"{plan.outputs[0]}_{plan.time * plan.time_order}"
    for scale, got in ((1.0, r[-2]), (2.0, r[-1])):
        predicted = b + scale * np.einsum("nem,nm->ne", a, p)
        if not np.allclose(got, predicted, rtol=1e-8, atol=1e-8 * (1 + np.abs(got).max())):
            raise ProblemError(f"the equation is not affine in {name}: the automatic reference needs "
                               f"A {name} + B = 0 with A, B free of {name}")
    if r.shape[2] != system.m:
        raise ProblemError(f"{r.shape[2]} equation(s) for {system.m} output(s): the automatic reference needs one "
                           "evolution equation per output")
    determinant = np.abs(np.linalg.det(a))
    if not np.all(determinant > 1e-12 * max(determinant.max(), 1e-300)) or determinant.max() == 0:
        raise ProblemError(f"the equations do not determine {name} at every point (an equation without a time "
                           "derivative?): the automatic reference solves evolution equations only")

