r"""Steady problems in one or two space dimensions, assembled from their own residual.

On a uniform grid over the domain's bounding box, the nodes inside the (closed) domain are the
unknowns: a box, or a difference of boxes such as the L-shape, whose boundary lies on grid
lines. Along every grid line, each run of consecutive nodes inside gets ``width``-point
Fornberg stencils (:func:`fd.difference_matrix`, one-sided near its ends), so a derivative
:math:`\partial_x^{a}\partial_y^{b}` is the product :math:`D_x^{(a)} D_y^{(b)}` of sparse matrices.

The residual reads fields pointwise, :math:`R(x, F_1, \dots, F_K)` over the fields :math:`F_k`
(values and derivatives of each output). Newton's method linearizes it at the current grid values,
with :math:`c_k = \partial R/\partial F_k` at every node by autograd, and solves

.. math::

    \Big(\sum_k \operatorname{diag}(c_k)\,D_k\Big)\,\delta = -R(u) \ \text{at interior nodes}, \qquad
    \delta = 0 \ \text{at boundary nodes, where}\ u = g \ \text{(Dirichlet)},

with ``scipy.sparse.linalg.splu`` on the interior unknowns (minimum-degree ordering of
:math:`A^T + A`; the factorization is reused while the linearization is unchanged), from
:math:`u = 0` inside. A linear residual takes one step
(the second evaluation confirms it); a nonlinear one stops when the largest residual has fallen by
:data:`NEWTON_TOLERANCE`, or is refused in one line after :data:`NEWTON_STEPS` steps.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from pinn_lam.errors import ProblemError
from pinn_lam.pde import fd
from pinn_lam.pde.auto_evolution import GridFields
from pinn_lam.pde.fields import Fields
from pinn_lam.pde.spec import equation_residuals

#: Newton steps at most, and the fall of the largest residual that ends them
NEWTON_STEPS, NEWTON_TOLERANCE = 30, 1e-10
#: the column ordering of the sparse LU: minimum degree on A^T + A (the stencils are symmetric in structure)
PERMUTATION = "MMD_AT_PLUS_A"


@dataclass(frozen=True)
class SteadyPlan:
    """The space variables, outputs, equations and derivative keys (``"xx"``) the residual reads."""

    space: tuple[str, ...]
    outputs: tuple[str, ...]
    equations: tuple[str, ...]
    keys: tuple[str, ...]


class MaskedGrid:
    """The nodes of a uniform grid with ``n`` intervals along the longest side that lie in the
    closed domain; :attr:`boundary` marks those on its boundary."""

    def __init__(self, domain, n: int) -> None:
        extents = [high - low for low, high in domain.bounds]
        self.axes = tuple(np.linspace(low, high, max(4, round(n * (high - low) / max(extents))) + 1)
                          for low, high in domain.bounds)
        shape = tuple(len(a) for a in self.axes)
        mesh = np.stack([m.ravel() for m in np.meshgrid(*self.axes, indexing="ij")], axis=1)
        inside = domain.contains(mesh, closed=True)
        self.shape, self.inside = shape, inside.reshape(shape)
        self.points = mesh[inside]
        self.boundary = domain.on_boundary(self.points)
        self.index = np.full(shape, -1)
        self.index[self.inside] = np.arange(len(self.points))
        for axis in range(len(shape)):
            for step in (-1, 1):
                neighbour = np.roll(self.inside, -step, axis=axis)
                edge = [slice(None)] * len(shape)
                edge[axis] = -1 if step == 1 else 0
                neighbour[tuple(edge)] = False
                orphan = self.inside & ~neighbour
                if (orphan.reshape(-1)[inside] & ~self.boundary).any():
                    raise ProblemError(f"the boundary of {domain!r} does not lie on grid lines; the automatic steady "
                                       "reference takes boxes and differences of boxes")

    def difference(self, axis: int, order: int, width: int) -> sp.csr_matrix:
        """The ``order``-th derivative along ``axis`` on every run of nodes inside, ``(M, M)``."""
        size = len(self.points)
        if order == 0:
            return sp.identity(size, format="csr")
        blocks_rows, blocks_cols, blocks_vals = [], [], []
        moved = np.moveaxis(self.index, axis, -1).reshape(-1, self.shape[axis])
        coordinates = self.axes[axis]
        # on a uniform axis a run's weights depend on its length only: one Fornberg pass per length
        by_length: dict[int, sp.coo_matrix] = {}
        for line in moved:
            inside = line >= 0
            edges = np.flatnonzero(np.diff(np.r_[0, inside.astype(int), 0]))
            for start, stop in zip(edges[::2], edges[1::2]):
                length = stop - start
                w = min(width, length if length % 2 else length - 1)
                if w < order + 1:
                    continue
                if length not in by_length:
                    by_length[length] = fd.difference_matrix(coordinates[:length], order, w).tocoo()
                coo = by_length[length]
                blocks_rows.append(line[start:stop][coo.row])
                blocks_cols.append(line[start:stop][coo.col])
                blocks_vals.append(coo.data)
        if not blocks_rows:
            return sp.csr_matrix((size, size))
        return sp.csr_matrix((np.concatenate(blocks_vals), (np.concatenate(blocks_rows), np.concatenate(blocks_cols))),
                             shape=(size, size))


def derivative_matrix(grid: MaskedGrid, space: tuple[str, ...], key: str, width: int) -> sp.csr_matrix:
    """:math:`\\prod_a D_a^{(k_a)}` for the direction key ``"xy"``, ``"xx"``, ...."""
    matrix = sp.identity(len(grid.points), format="csr")
    for axis, variable in enumerate(space):
        if key.count(variable):
            matrix = grid.difference(axis, key.count(variable), width) @ matrix
    return matrix.tocsr()


def linearization(problem, plan: SteadyPlan, points: np.ndarray, fields: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The residuals ``r`` ``(N, e)`` at ``points`` for the field values ``fields`` ``(N, m, K + 1)``
    (each output's value, then its derivatives by :attr:`SteadyPlan.keys`), and their partial
    derivatives ``c`` ``(N, e, m, K + 1)`` with respect to those fields, by autograd."""
    n, m = len(points), len(plan.outputs)
    f = torch.as_tensor(fields).clone().requires_grad_(True)
    derivatives = {key: f[:, :, j + 1] for j, key in enumerate(plan.keys)}
    d = GridFields(torch.as_tensor(points), f[:, :, 0], derivatives, problem.variables, plan.outputs)
    r = torch.cat(list(equation_residuals(problem.pde(d), plan.equations, n).values()), dim=1)
    if r.shape[1] != m:
        raise ProblemError(f"{r.shape[1]} equation(s) for {m} output(s): the automatic steady reference needs one "
                           "equation per output")
    c = []
    for e in range(m):
        (grad,) = torch.autograd.grad(r[:, e].sum(), f, retain_graph=True, allow_unused=True)
        c.append(torch.zeros_like(f) if grad is None else grad)
    return r.detach().numpy(), torch.stack(c, dim=1).detach().numpy()


def dirichlet_values(problem, plan: SteadyPlan, grid: MaskedGrid) -> np.ndarray:
    """The ``(B, m)`` values the conditions give at the boundary nodes (one-line error for a
    condition that is not a value condition or a boundary node no condition covers)."""
    points = grid.points[grid.boundary]
    values = np.full((len(points), len(plan.outputs)), np.nan)
    for name, condition in problem.condition_map().items():
        if condition.target is None or condition.partner is not None or condition.points is not None:
            raise ProblemError(f"condition {name!r} is not a value (Dirichlet) condition; the automatic steady "
                               "reference takes Dirichlet conditions only")
        part = condition.boundary(problem.domain)
        covered = np.ones(len(points), bool) if condition.on == "boundary" else None
        if covered is None and part.owns is not None:
            covered = part.owns(points)
        if covered is None:
            raise ProblemError(f"condition {name!r} is on {condition.on!r}; the automatic steady reference takes "
                               "conditions on 'boundary' or on a face of a box")
        target = condition.target(Fields(torch.as_tensor(points[covered]), problem.variables, ()))
        target = target.detach().numpy().reshape(int(covered.sum()), -1)
        for j, output in enumerate(condition.outputs):
            values[covered, plan.outputs.index(output)] = target[:, j]
    if np.isnan(values).any():
        rows = np.isnan(values).any(axis=1)
        raise ProblemError(f"{int(rows.sum())} boundary node(s), e.g. {tuple(points[rows][0])}, have no Dirichlet "
                           "condition; the automatic steady reference needs one on the whole boundary")
    return values


def solve(problem, plan: SteadyPlan, n: int, width: int) -> tuple[MaskedGrid, np.ndarray]:
    """The grid and the solution ``(M, m)`` at its nodes, with ``n`` intervals on the longest side:
    Newton's method from zero inside, which for a linear residual ends after one step."""
    grid = MaskedGrid(problem.domain, n)
    size, m = len(grid.points), len(plan.outputs)
    interior, boundary = np.flatnonzero(~grid.boundary), np.flatnonzero(grid.boundary)
    matrices = [derivative_matrix(grid, plan.space, key, width)[interior] for key in ("",) + plan.keys]
    u = np.zeros((size, m))
    u[boundary] = dirichlet_values(problem, plan, grid)
    first, factored = None, None
    for number in range(NEWTON_STEPS):
        fields = np.stack([np.stack([matrix @ u[:, o] for matrix in matrices], axis=1) for o in range(m)], axis=1)
        r, c = linearization(problem, plan, grid.points[interior], fields)
        size_r = float(np.abs(r).max())
        first = size_r if first is None else first
        if number > 0 and size_r <= NEWTON_TOLERANCE * max(first, 1e-300):
            return grid, u
        if factored is None or not np.array_equal(c, factored[0]):  # a linear residual keeps its matrix
            # the step is zero at the boundary nodes, so only the interior columns enter
            rows = [[sum(sp.diags(c[:, e, o, k]) @ matrices[k][:, interior] for k in range(len(matrices)))
                     for o in range(m)] for e in range(m)]
            system = sp.bmat(rows, format="csc")
            try:
                factored = (c, spla.splu(system, permc_spec=PERMUTATION))
            except RuntimeError as error:
                raise ProblemError(f"the assembled system is singular ({error}); is the problem well posed?") from None
        step = factored[1].solve(np.concatenate([-r[:, e] for e in range(m)]))
        u[interior] += step.reshape(m, len(interior)).T
        if not np.isfinite(u).all():
            break
        if number > 0 and np.linalg.norm(step) <= 1e-12 * np.linalg.norm(u):  # stalled at round-off
            return grid, u
    raise ProblemError(f"Newton's method did not converge in {NEWTON_STEPS} steps from zero inside the domain; the "
                       "steady problem may have no solution, or need a reference of its own")
