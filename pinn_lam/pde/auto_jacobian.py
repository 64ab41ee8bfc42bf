r"""The Jacobian of the method of lines' right-hand side, from the residual's pointwise derivatives.

The semi-discrete right-hand side of :class:`~pinn_lam.pde.auto_evolution.Semidiscrete` is, node
by node, a function of the fields :math:`F_{p,k} = D_k u_p` (the ``k``-th space derivative of
output ``p``; :math:`D_0 = I`) and, second order in time, :math:`G_{p,k} = D_k w_p` of the rates:
:math:`s = -A^{-1}B` (module docstring of :mod:`pinn_lam.pde.auto_evolution`). So

.. math::

    \frac{\partial s_o}{\partial u_p} = \sum_k \operatorname{diag}\Big(\frac{\partial s_o}{\partial F_{p,k}}\Big) D_k,

with the pointwise partial derivatives by autograd (one backward pass per output). Where the
:math:`D_k` are dense (Fourier collocation), this costs :math:`O(n^2)` per Jacobian instead of the
:math:`O(n)` right-hand sides a finite-difference estimate of a dense Jacobian needs. Periodic
systems only: no end node is eliminated, so the state is every node's value (and rate).
"""
from __future__ import annotations

import numpy as np
import torch

from pinn_lam.pde.spec import equation_residuals


def _highest(system, t: float, fields: torch.Tensor, rates: torch.Tensor | None) -> torch.Tensor:
    """:math:`s = -A^{-1}B` ``(size, m)`` from the space fields ``(K + 1, size, m)`` of the values
    (and of the rates), differentiably."""
    from pinn_lam.pde.auto_evolution import GridFields

    plan, size, m = system.plan, system.size, system.m
    top = "".join(sorted(plan.time * plan.time_order))
    points = system.points(t)
    residuals = []
    for j in range(m + 1):
        probe = torch.zeros(size, m, dtype=torch.float64)
        if j:
            probe[:, j - 1] = 1.0
        derivatives = {plan.space * k: fields[k] for k in range(1, plan.space_order + 1)}
        derivatives[top] = probe
        if rates is not None:
            for k in range(plan.space_order + 1):
                derivatives["".join(sorted(plan.space * k + plan.time))] = rates[k]
        d = GridFields(points, fields[0], derivatives, system.variables, plan.outputs, system.unknowns,
                       time=plan.time)
        residuals.append(torch.cat(list(equation_residuals(system.problem.pde(d), plan.equations, size).values()),
                                   dim=1))
    b = residuals[0]
    a = torch.stack([r - b for r in residuals[1:]], dim=2)  # (size, e, m)
    return -torch.linalg.solve(a, b.unsqueeze(-1))[..., 0]


def jacobian(system, t: float, y: np.ndarray) -> np.ndarray:
    r"""The dense Jacobian :math:`\partial f/\partial y` of ``system.rhs`` at ``(t, y)`` (a periodic
    ``system``: the state is every node, output after output, then the rates)."""
    plan, size, m = system.plan, system.size, system.m
    state = system.full(t, y)
    operators = [np.eye(size)] + [np.asarray(d) for d in system.d[:plan.space_order]]
    u = state[:, :m]
    fields = torch.as_tensor(np.stack([op @ u for op in operators])).requires_grad_(True)
    rates = None
    if plan.time_order == 2:
        rates = torch.as_tensor(np.stack([op @ state[:, m:] for op in operators])).requires_grad_(True)
    highest = _highest(system, t, fields, rates)
    if not highest.requires_grad:  # the right-hand side does not depend on the state
        return np.zeros((len(y), len(y)))
    inputs = (fields,) if rates is None else (fields, rates)
    blocks_u = np.zeros((m * size, m * size))
    blocks_w = np.zeros((m * size, m * size))
    for o in range(m):
        grads = torch.autograd.grad(highest[:, o].sum(), inputs, retain_graph=o < m - 1, allow_unused=True)
        for target, grad in zip((blocks_u, blocks_w), grads):
            if grad is None:
                continue
            c = grad.detach().numpy()  # (K + 1, size, m): the partial derivative of s_o by each field, per node
            for p in range(m):
                target[o * size:(o + 1) * size, p * size:(p + 1) * size] = sum(
                    c[k, :, p][:, None] * operators[k] for k in range(len(operators)))
    if plan.time_order == 1:
        return blocks_u
    n = m * size
    return np.block([[np.zeros((n, n)), np.eye(n)], [blocks_u, blocks_w]])
