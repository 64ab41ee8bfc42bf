r"""Steady linear problems in one or two space dimensions, assembled from their own residual.

On a uniform grid over the domain's bounding box, the nodes inside the (closed) domain are the
unknowns: a box, or a difference of boxes such as the L-shape, whose boundary lies on grid
lines. Along every grid line, each run of consecutive nodes inside gets ``width``-point
Fornberg stencils (:func:`fd.difference_matrix`, one-sided near its ends), so a derivative
:math:`\partial_x^{a}\partial_y^{b}` is the product :math:`D_x^{(a)} D_y^{(b)}` of sparse matrices.

The residual reads fields pointwise. When it is linear in the solution,
:math:`R = s(x) + \sum_k c_k(x)\,F_k` over the fields :math:`F_k` (values and derivatives of
each output), so :math:`s` is the residual with every field zero and :math:`c_k` the change when
:math:`F_k = 1` alone: one batched call, then

.. math::

    \Big(\sum_k \operatorname{diag}(c_k)\,D_k\Big)\,u = -s \ \text{at interior nodes}, \qquad
    u = g \ \text{at boundary nodes (Dirichlet)},

solved by ``scipy.sparse.linalg.splu``. A residual that is not linear (checked at random fields)
is refused in one line.
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
        for line in moved:
            inside = line >= 0
            edges = np.flatnonzero(np.diff(np.r_[0, inside.astype(int), 0]))
            for start, stop in zip(edges[::2], edges[1::2]):
                length = stop - start
                w = min(width, length if length % 2 else length - 1)
                if w < order + 1:
                    continue
                matrix = fd.difference_matrix(coordinates[start:stop], order, w)
                coo = matrix.tocoo()
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


def _fields(problem, plan: SteadyPlan, points: np.ndarray, values: np.ndarray, derivatives: dict) -> GridFields:
    return GridFields(torch.as_tensor(points), torch.as_tensor(values),
                      {k: torch.as_tensor(v) for k, v in derivatives.items()}, problem.variables, plan.outputs)


def linear_coefficients(problem, plan: SteadyPlan, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``s`` ``(N, e)`` and the coefficients ``c`` ``(N, e, m, K + 1)`` of the values (index 0)
    and of the derivative keys at ``points``; one-line error unless the residual is linear."""
    n, m, keys = len(points), len(plan.outputs), ("",) + plan.keys
    fields = m * len(keys)
    rng = np.random.default_rng(5)
    random = rng.standard_normal((n, fields))
    probes = np.concatenate([np.zeros((1, n, fields)), np.eye(fields)[:, None, :].repeat(n, axis=1),
                             random[None], 2 * random[None]])
    total = len(probes)
    flat = probes.reshape(total * n, m, len(keys))
    derivatives = {k: flat[:, :, j + 1] for j, k in enumerate(plan.keys)}
    d = _fields(problem, plan, np.tile(points, (total, 1)), flat[:, :, 0], derivatives)
    residual = equation_residuals(problem.pde(d), plan.equations, total * n)
    r = torch.cat(list(residual.values()), dim=1).detach().numpy().reshape(total, n, -1)
    s = r[0]
    c = np.stack([r[1 + j] - s for j in range(fields)], axis=2)  # (n, e, fields)
    for scale, got in ((1.0, r[-2]), (2.0, r[-1])):
        predicted = s + scale * np.einsum("nef,nf->ne", c, random)
        if not np.allclose(got, predicted, rtol=1e-8, atol=1e-8 * (1 + np.abs(got).max())):
            raise ProblemError("the steady equation is not linear in the solution; the automatic reference solves "
                               "linear steady problems only")
    if r.shape[2] != m:
        raise ProblemError(f"{r.shape[2]} equation(s) for {m} output(s): the automatic steady reference needs one "
                           "equation per output")
    return s, c.reshape(n, -1, m, len(keys))


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
    """The grid and the solution ``(M, m)`` at its nodes, with ``n`` intervals on the longest side."""
    grid = MaskedGrid(problem.domain, n)
    size, m = len(grid.points), len(plan.outputs)
    interior = np.flatnonzero(~grid.boundary)
    boundary = np.flatnonzero(grid.boundary)
    s, c = linear_coefficients(problem, plan, grid.points[interior])
    matrices = [derivative_matrix(grid, plan.space, key, width)[interior] for key in ("",) + plan.keys]
    rows = []
    for e in range(m):
        blocks = []
        for o in range(m):
            block = sum(sp.diags(c[:, e, o, k]) @ matrices[k] for k in range(len(matrices)))
            blocks.append(block)
        rows.append(blocks)
    selector = sp.identity(size, format="csr")[boundary]
    rows += [[selector if o == p else sp.csr_matrix((len(boundary), size)) for p in range(m)] for o in range(m)]
    system = sp.bmat(rows, format="csc")
    rhs = np.concatenate([-s[:, e] for e in range(m)] + [dirichlet_values(problem, plan, grid)[:, o] for o in range(m)])
    try:
        solution = spla.splu(system).solve(rhs)
    except RuntimeError as error:
        raise ProblemError(f"the assembled system is singular ({error}); is the problem well posed?") from None
    return grid, solution.reshape(m, size).T
