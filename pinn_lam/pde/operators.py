r"""Differential operators on autograd, for use inside a loss.

Every function takes a network output ``u`` of shape ``(N, 1)`` (or a field ``(N, d)``) computed
from ``points`` of shape ``(N, d)`` with ``points.requires_grad``; row ``i`` of ``u`` must depend
only on row ``i`` of ``points`` (true for any pointwise network), so one vector-Jacobian product
with a vector of ones gives every row's gradient at once. All graphs are built with
``create_graph=True`` so the results can be differentiated again (by the optimizer, or for
higher derivatives). The functions are pure: no cache survives a call.

* :func:`gradient`: :math:`\nabla u`, shape ``(N, d)``;
* :func:`partial`: :math:`\partial^k u / \partial x_i^k`, shape ``(N, 1)``;
* :func:`divergence`: :math:`\nabla\cdot F = \sum_i \partial F_i / \partial x_i`, shape ``(N, 1)``;
* :func:`laplacian`: :math:`\Delta u = \sum_i \partial^2 u / \partial x_i^2` over ``dims``;
* :func:`derivatives`: a named set such as ``{"t", "x", "xx"}`` sharing intermediate gradients.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def gradient(u: Tensor, points: Tensor) -> Tensor:
    r""":math:`\nabla u` of an ``(N, 1)`` output with respect to the ``(N, d)`` points: ``(N, d)``.

    An output that does not depend on ``points`` (e.g. the derivative of a linear function)
    has a zero gradient rather than raising.
    """
    if u.dim() != 2 or u.shape[1] != 1:
        raise ValueError(f"u must have shape (N, 1), got {tuple(u.shape)}")
    if not points.requires_grad:
        raise ValueError("points must require grad (call points.requires_grad_())")
    if not u.requires_grad:
        return torch.zeros_like(points)
    (grad,) = torch.autograd.grad(u, points, grad_outputs=torch.ones_like(u),
                                  create_graph=True, allow_unused=True)
    return torch.zeros_like(points) if grad is None else grad


def partial(u: Tensor, points: Tensor, index: int, order: int = 1) -> Tensor:
    r""":math:`\partial^{k} u / \partial x_i^{k}` with ``i = index`` and ``k = order``: ``(N, 1)``."""
    if not isinstance(order, int) or order < 1:
        raise ValueError(f"order must be a positive integer, got {order!r}")
    if not -points.shape[1] <= index < points.shape[1]:
        raise ValueError(f"index {index} out of range for {points.shape[1]} variables")
    index %= points.shape[1]
    out = u
    for _ in range(order):
        out = gradient(out, points)[:, index:index + 1]
    return out


def divergence(field: Tensor, points: Tensor) -> Tensor:
    r""":math:`\nabla\cdot F = \sum_i \partial F_i/\partial x_i` of an ``(N, d)`` field: ``(N, 1)``."""
    if field.dim() != 2 or field.shape[1] != points.shape[1]:
        raise ValueError(f"field must have shape (N, {points.shape[1]}), got {tuple(field.shape)}")
    total = torch.zeros_like(field[:, :1])
    for i in range(field.shape[1]):
        total = total + gradient(field[:, i:i + 1], points)[:, i:i + 1]
    return total


def laplacian(u: Tensor, points: Tensor, dims: Sequence[int] | None = None) -> Tensor:
    r""":math:`\sum_{i \in \mathrm{dims}} \partial^2 u/\partial x_i^2` (all dimensions by default): ``(N, 1)``."""
    dims = range(points.shape[1]) if dims is None else dims
    grad = gradient(u, points)
    total = torch.zeros_like(u)
    for i in dims:
        total = total + gradient(grad[:, i:i + 1], points)[:, i:i + 1]
    return total


def derivatives(u: Tensor, points: Tensor, variables: Sequence[str],
                keys: Sequence[str]) -> dict[str, Tensor]:
    r"""Named partial derivatives of ``u``: key ``"xx"`` is :math:`\partial^2 u/\partial x^2`,
    ``"xt"`` is :math:`\partial^2 u/\partial t\,\partial x` (differentiate along ``x`` first, then
    ``t``), ``"t"`` is :math:`\partial u/\partial t`; each character names one of ``variables``.

    Each full gradient is taken once per prefix and shared, so ``"x"``, ``"t"`` and ``"xx"`` cost
    two backward passes (the gradient of ``u``, then the gradient of ``u_x``).
    Returns ``{key: (N, 1) tensor}`` in the order of ``keys``.
    """
    column = {name: i for i, name in enumerate(variables)}
    if len(column) != len(variables) or any(len(name) != 1 for name in variables):
        raise ValueError(f"variables must be distinct single characters, got {tuple(variables)}")
    # prefix -> full gradient of the derivative named by that prefix ("" is u itself)
    gradients: dict[str, Tensor] = {}

    def value(key: str) -> Tensor:
        if key == "":
            return u
        prefix = key[:-1]
        if prefix not in gradients:
            gradients[prefix] = gradient(value(prefix), points)
        i = column[key[-1]]
        return gradients[prefix][:, i:i + 1]

    out: dict[str, Tensor] = {}
    for key in keys:
        unknown = set(key) - set(column)
        if not key or unknown:
            raise ValueError(f"derivative key {key!r} must be made of the variables {tuple(variables)}")
        out[key] = value(key)
    return out
