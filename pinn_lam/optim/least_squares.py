r"""The linear algebra of least-squares steps: the damped normal equations, dense (Cholesky in
float64) or matrix-free (conjugate gradients), and the Jacobian of a residual vector from its
autograd graph, as a matrix or as the two products :math:`Jv` and :math:`J^\top u`.

:mod:`pinn_lam.optim.lm` builds Levenberg–Marquardt from these; :mod:`pinn_lam.training.jacobian`
gives a PINN's Jacobian through ``torch.func`` in the same two forms.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["JacobianProducts", "autograd_jacobian", "autograd_products", "conjugate_gradient", "damped_solver"]


class JacobianProducts(NamedTuple):
    """The Jacobian as two linear maps: ``jvp(v)`` is :math:`Jv`, ``vjp(u)`` is :math:`J^\\top u`."""

    jvp: Callable[[Tensor], Tensor]
    vjp: Callable[[Tensor], Tensor]


def damped_solver(jacobian: Tensor, residuals: Tensor) -> Callable[[float], Tensor | None]:
    r"""``solve(lam)``: the step :math:`\delta` of :math:`(J^\top J + \lambda I)\delta = -J^\top R`
    in float64 by Cholesky, or ``None`` where the matrix is not numerically positive definite.

    The Gram matrix (:math:`J^\top J`, or :math:`JJ^\top` when :math:`m < n`) is formed once.
    """
    J, R = jacobian.double(), residuals.double().reshape(-1)
    m, n = J.shape
    dual = m < n
    gram = J @ J.T if dual else J.T @ J
    rhs = R if dual else J.T @ R

    def solve(damping: float) -> Tensor | None:
        matrix = gram.clone()
        matrix.diagonal().add_(damping)
        factor, info = torch.linalg.cholesky_ex(matrix)
        if int(info) != 0:
            return None
        z = torch.cholesky_solve(rhs.unsqueeze(1), factor).squeeze(1)
        return (J.T @ z).neg_() if dual else z.neg_()

    return solve


def conjugate_gradient(apply: Callable[[Tensor], Tensor], rhs: Tensor, tolerance: float,
                       max_iter: int) -> Tensor:
    r"""Conjugate gradients for :math:`Ax = b` with :math:`A` symmetric positive definite, given as
    ``apply(v) = Av``; stops when :math:`\|b - Ax\| \le` ``tolerance`` :math:`\|b\|` or after ``max_iter``."""
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    p = r.clone()
    rr = float(r.dot(r))
    stop = tolerance ** 2 * rr
    for _ in range(max_iter):
        if rr <= stop or rr == 0.0:
            break
        q = apply(p)
        curvature = float(p.dot(q))
        if not curvature > 0:
            break
        alpha = rr / curvature
        x.add_(p, alpha=alpha)
        r.sub_(q, alpha=alpha)
        rr_new = float(r.dot(r))
        p.mul_(rr_new / rr).add_(r)
        rr = rr_new
    return x


def _flat(tensors: Sequence[Tensor | None], like: Sequence[Tensor]) -> Tensor:
    return torch.cat([(torch.zeros_like(p) if t is None else t).reshape(-1) for t, p in zip(tensors, like)])


def autograd_jacobian(residuals: Tensor, params: Sequence[Tensor], chunk: int = 256) -> Tensor:
    """The dense Jacobian ``(m, n)`` of ``residuals`` (with an autograd graph to ``params``) by
    vector-Jacobian products, batched ``chunk`` rows at a time (``is_grads_batched``), or one row
    at a time where the graph's backward cannot be batched (custom kernels such as the derivative
    fast path's): the cost grows as :math:`m` times a backward pass over the whole graph."""
    m = residuals.numel()
    flat = residuals.reshape(-1)

    def rows_of(grads: Sequence[Tensor | None], size: int) -> Tensor:
        return torch.cat([(torch.zeros(size, p.numel(), dtype=flat.dtype, device=flat.device) if g is None
                           else g.reshape(size, -1)) for g, p in zip(grads, params)], dim=1)

    rows = []
    for start in range(0, m, chunk):
        size = min(chunk, m - start)
        selectors = torch.zeros(size, m, dtype=flat.dtype, device=flat.device)
        selectors[torch.arange(size), torch.arange(start, start + size)] = 1.0
        try:
            grads = torch.autograd.grad(flat, params, selectors, retain_graph=True, allow_unused=True,
                                        is_grads_batched=True)
            rows.append(rows_of(grads, size))
        except RuntimeError:
            rows.extend(rows_of(torch.autograd.grad(flat, params, selector, retain_graph=True, allow_unused=True), 1)
                        for selector in selectors)
    return torch.cat(rows)


def autograd_products(residuals: Tensor, params: Sequence[Tensor]) -> JacobianProducts:
    r""":math:`Jv` and :math:`J^\top u` from the autograd graph of ``residuals``; :math:`Jv` by
    differentiating :math:`J^\top w` (built once, with ``create_graph``) with respect to :math:`w`,
    which needs a differentiable backward pass (a one-line ``ValueError`` otherwise)."""
    flat = residuals.reshape(-1)
    dummy = torch.zeros_like(flat, requires_grad=True)
    transposed = _flat(torch.autograd.grad(flat, params, dummy, create_graph=True, allow_unused=True), params)

    def vjp(u: Tensor) -> Tensor:
        return _flat(torch.autograd.grad(flat, params, u.to(flat.dtype), retain_graph=True, allow_unused=True),
                     params).detach()

    def jvp(v: Tensor) -> Tensor:
        (out,) = torch.autograd.grad(transposed, dummy, v.to(transposed.dtype), retain_graph=True, allow_unused=True)
        return torch.zeros_like(flat).detach() if out is None else out.detach()

    _check_adjoint(jvp, vjp, flat.numel(), transposed.numel(), flat)
    return JacobianProducts(jvp, vjp)


def _check_adjoint(jvp: Callable[[Tensor], Tensor], vjp: Callable[[Tensor], Tensor], m: int, n: int,
                   like: Tensor) -> None:
    r"""Raise unless :math:`u^\top(Jv) = (J^\top u)^\top v` for one fixed pair of random vectors: a
    backward pass that autograd cannot differentiate (a custom Function, such as the derivative fast
    path's kernels) makes the double-backward :math:`Jv` silently wrong."""
    generator = torch.Generator().manual_seed(0)
    u = torch.randn(m, generator=generator, dtype=torch.float64).to(like)
    v = torch.randn(n, generator=generator, dtype=torch.float64).to(like)
    left, right = float(u.dot(jvp(v))), float(vjp(u).dot(v))
    if abs(left - right) > 1e-6 * max(abs(left), abs(right), 1e-300):
        raise ValueError("Jv needs the residuals' backward pass to be differentiable, and this one is not (a custom "
                         "autograd Function such as the derivative fast path); pass a jacobian callable "
                         "(pinn_lam.training.jacobian) or use the dense Jacobian")
