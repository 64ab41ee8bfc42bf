r"""The loss's sum of weighted mean squares as one autograd node.

:func:`weighted_mean_squares` returns :math:`(\sum_k w_k m_k, m_1, m_2, \dots)` with
:math:`m_k = \mathrm{mean}((x_k - t_k)^2)` over every entry of :math:`x_k`.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def weighted_mean_squares(residuals: Sequence[tuple[Tensor, Tensor | None]], weights: Sequence[float],
                          names: Sequence[str]) -> tuple[Tensor, dict[str, Tensor]]:
    """The weighted total and each term's mean square by name, from ``(x, t)`` pairs whose
    residual is ``x - t`` (``t`` a constant or ``None`` for zero)."""
    inputs = [x for x, _ in residuals]
    targets = tuple(t for _, t in residuals)
    total, *means = _MeanSquares.apply(tuple(weights), targets, *inputs)
    return total, dict(zip(names, means))


class _MeanSquares(torch.autograd.Function):
    r"""``(sum_k w_k m_k, m_1, m_2, ...)`` with :math:`m_k = \mathrm{mean}((x_k - t_k)^2)`, in one
    autograd node: a dot product per term forward and one product per term backward, where
    ``square().mean()`` and a weighted sum make about six nodes per term (each a dispatch, and
    a pass over the residual). Inputs: the weights, the targets ``t_k`` (constants or ``None``
    for zero), then the ``x_k``. Every output is differentiable, so each term's own gradient
    can be taken too (:func:`pinn_lam.studies.stiffness.gradient_norms`), and the backward pass is
    made of differentiable operations on the saved inputs, so it can be differentiated again
    (Hessian-vector products, :func:`pinn_lam.studies.stiffness.hessian_top_eigenvalue`)."""

    @staticmethod
    def forward(ctx, weights, targets, *inputs):  # type: ignore[override]
        residuals = [x if t is None else x - t for x, t in zip(inputs, targets)]
        means = [_mean_square(r) for r in residuals]
        total = means[0] * weights[0] if weights[0] != 1.0 else means[0].clone()
        for weight, mean in zip(weights[1:], means[1:]):
            total.add_(mean, alpha=weight)
        ctx.save_for_backward(*inputs)
        ctx.weights, ctx.targets = weights, targets
        ctx.set_materialize_grads(False)
        return (total, *means)

    @staticmethod
    def backward(ctx, g_total, *g_means):  # type: ignore[override]
        grads = []
        for x, t, weight, g_mean in zip(ctx.saved_tensors, ctx.targets, ctx.weights, g_means):
            scale = 2.0 / max(x.numel(), 1)
            if g_total is None and g_mean is None:
                grads.append(None)
                continue
            if g_mean is None:
                coefficient = g_total * (weight * scale)
            else:
                coefficient = g_mean * scale if g_total is None else (g_total * weight + g_mean) * scale
            grads.append((x if t is None else x - t) * coefficient)
        return (None, None, *grads)


def _mean_square(r: Tensor) -> Tensor:
    """``r.square().mean()`` as one dot product where BLAS has one."""
    if r.dtype in (torch.float32, torch.float64) and r.numel():
        flat = r.reshape(-1)
        return torch.dot(flat, flat) / flat.numel()
    return r.square().mean()
