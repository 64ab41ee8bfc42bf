r"""The PINN loss: a weighted sum of mean-square residuals, each term logged by name.

For a problem with PDE residual :math:`r` and conditions :math:`c_k` (initial/boundary),

.. math::
    L(\theta) = w_{\mathrm{pde}} \frac{1}{N_f}\sum_{i} r(x_i; u_\theta)^2
              + \sum_k w_k \frac{1}{N_k}\sum_{j} c_k(x^k_j; u_\theta)^2 ,

where the collocation points :math:`x_i` and the condition points :math:`x^k_j` are fixed
until :meth:`PINNLoss.set_points` replaces them (resampling). Conditions that the model's
hard-constraint output transform (:class:`pinn_lam.pde.problem.HardConstraint`) enforces exactly
are listed in its ``covers`` and are dropped from the loss.

The PDE term's derivatives come from the forward-mode fast path
(:func:`pinn_lam.nn.fastpath.evaluate`) when it supports the model, and otherwise from nested
autograd (:func:`pinn_lam.pde.operators.derivatives`); both give the same values. On the fast path
the values at the points of Dirichlet-type conditions (``Condition.value_only``) ride in the
same pass, and a hard constraint's terms at the fixed points are computed once per
:meth:`PINNLoss.set_points`.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from pinn_lam.pde.problem import HardConstraint, Problem


def _fastpath():
    """The fast-path module, or ``None`` while it is unavailable."""
    try:
        return importlib.import_module("pinn_lam.nn.fastpath")
    except ImportError:
        return None


def covered_conditions(model: nn.Module) -> tuple[str, ...]:
    """Names of the conditions the model enforces exactly through a :class:`HardConstraint`."""
    transform = getattr(model, "output_transform", None)
    return tuple(transform.covers) if isinstance(transform, HardConstraint) else ()


def loss_terms(problem: Problem, model: nn.Module) -> tuple[str, ...]:
    """The loss terms of ``problem`` for ``model``: ``"pde"`` then every uncovered condition."""
    covered = set(covered_conditions(model))
    return ("pde",) + tuple(name for name in problem.conditions() if name not in covered)


class PINNLoss:
    """Weighted mean-square PDE and condition residuals of ``model`` on ``problem``.

    Args:
        problem: the PDE problem (:class:`pinn_lam.pde.problem.Problem`).
        model: the network; ``model(points) -> (N, 1)``.
        points: ``{"pde": collocation points, name: points of condition name, ...}`` as
            ``(N, d)`` tensors on the model's device and dtype; one entry per term in
            :meth:`terms`.
        weights: optional ``{term: weight}``; unnamed terms weigh 1.
        fast: ``None`` uses the fast path where :func:`pinn_lam.nn.fastpath.supports` allows it,
            ``True`` requires it (``ValueError`` if unsupported), ``False`` uses autograd.

    Example::

        loss = PINNLoss(problem, model, {"pde": x_f, "ic": x_ic, "bc": x_bc})
        total, terms = loss()          # terms == {"pde": ..., "ic": ..., "bc": ...}
        total.backward()
    """

    def __init__(self, problem: Problem, model: nn.Module, points: Mapping[str, Tensor],
                 weights: Mapping[str, float] | None = None, fast: bool | None = None) -> None:
        self.problem = problem
        self.model = model
        self._terms = loss_terms(problem, model)
        self._conditions = problem.conditions()
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(self._terms))
        if unknown:
            raise ValueError(f"unknown loss weight(s) {', '.join(unknown)}; terms are {', '.join(self._terms)}")
        for name, value in weights.items():
            if not float(value) >= 0.0 or value == float("inf"):
                raise ValueError(f"loss weight {name}={value!r} must be finite and non-negative")
        self.weights = {name: float(weights.get(name, 1.0)) for name in self._terms}
        self.fast = self._choose_fast(fast)
        self.set_points(points)

    def _choose_fast(self, fast: bool | None) -> bool:
        if fast is False:
            return False
        module = _fastpath()
        supported = module is not None and bool(module.supports(self.model, self.problem.derivatives))
        if fast is True and not supported:
            raise ValueError("fast=True but the fast path does not support this model/problem; use fast=None or False")
        return supported

    def terms(self) -> tuple[str, ...]:
        """Names of the loss terms, ``"pde"`` first."""
        return self._terms

    def set_points(self, points: Mapping[str, Tensor]) -> None:
        """Replace the points of every term (e.g. after resampling)."""
        missing = [name for name in self._terms if name not in points]
        extra = sorted(set(points) - set(self._terms))
        if missing or extra:
            raise ValueError(f"points must have exactly the keys {', '.join(self._terms)}; "
                             f"missing {missing or 'none'}, unexpected {extra or 'none'}")
        d = len(self.problem.variables)
        for name, value in points.items():
            if not isinstance(value, Tensor) or value.ndim != 2 or value.shape[1] != d or value.shape[0] < 1:
                shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"points[{name!r}] must be a non-empty (N, {d}) tensor, got {shape}")
        self.points = {name: points[name].detach() for name in self._terms}
        self._fast_plan = None  # the fast path's precomputed inputs for these points, when first needed

    def pde_residual(self, points: Tensor | None = None) -> Tensor:
        """The pointwise PDE residual ``(N, 1)`` at ``points`` (default: the collocation points)."""
        points = self.points["pde"] if points is None else points
        problem = self.problem
        if self.fast:
            u, d = _fastpath().derivatives(self.model, points, problem.variables, problem.derivatives)
            return problem.pde(points, u, d)
        from pinn_lam.pde.operators import derivatives

        points = points.detach().requires_grad_(True)
        u = self.model(points)
        return problem.pde(points, u, derivatives(u, points, problem.variables, problem.derivatives))

    def condition_residual(self, name: str, points: Tensor | None = None) -> Tensor:
        """The pointwise residual of condition ``name`` at ``points`` (default: its own points)."""
        points = self.points[name] if points is None else points
        condition = self._conditions[name]
        # conditions on derivatives (e.g. Neumann) differentiate u with respect to the points
        points = points.detach() if condition.value_only else points.detach().requires_grad_(True)
        return condition.residual(points, self.model(points))

    def _fast_residuals(self) -> dict[str, tuple[Tensor, Tensor | None]]:
        """Every term's pointwise residual as ``(x, t)`` with residual ``x - t`` (``t`` may be
        ``None``): the PDE and the value-only conditions in one pass, and a Dirichlet condition's
        target ``t`` computed once per :meth:`set_points`."""
        problem, model, points = self.problem, self.model, self.points
        shared = [name for name in self._terms[1:] if self._conditions[name].value_only]
        fast, plan = _fastpath(), self._fast_plan
        parameter = next(model.parameters())
        if plan is None or plan.inputs.dtype != parameter.dtype or plan.inputs.device != parameter.device:
            plan = self._fast_plan = fast.prepare(model, points["pde"], problem.variables, problem.derivatives,
                                                  values=[points[name] for name in shared])
            with torch.no_grad():
                self._targets = {name: self._conditions[name].target(points[name]).to(parameter.dtype).detach()
                                 for name in shared if self._conditions[name].target is not None}
        u, d, values = fast.run(model, plan)
        residuals: dict[str, tuple[Tensor, Tensor | None]] = {"pde": (problem.pde(points["pde"], u, d), None)}
        for name, value in zip(shared, values):
            target = self._targets.get(name)
            if target is not None and target.shape == value.shape:
                residuals[name] = (value, target)
            else:
                residuals[name] = (self._conditions[name].residual(points[name], value), None)
        for name in self._terms[1:]:
            if name not in residuals:
                residuals[name] = (self.condition_residual(name), None)
        return residuals

    def __call__(self) -> tuple[Tensor, dict[str, Tensor]]:
        return self.loss()

    def loss(self) -> tuple[Tensor, dict[str, Tensor]]:
        """The total weighted loss and every term's mean square residual by name."""
        if self.fast:
            residuals = self._fast_residuals()
        else:
            residuals = {name: (self.pde_residual() if name == "pde" else self.condition_residual(name), None)
                         for name in self._terms}
        inputs = [residuals[name][0] for name in self._terms]
        targets = tuple(residuals[name][1] for name in self._terms)
        total, *means = _MeanSquares.apply(tuple(self.weights[name] for name in self._terms), targets, *inputs)
        return total, dict(zip(self._terms, means))

    def residual_vector(self) -> Tensor:
        r"""Every term's residuals as one vector :math:`R`, the terms in :meth:`terms` order, each
        scaled by :math:`\sqrt{w_k/N_k}`, so that :math:`\|R\|^2` is the total of :meth:`loss`
        (for least-squares optimizers, :mod:`pinn_lam.optim.lm`)."""
        if self.fast:
            residuals = self._fast_residuals()
        else:
            residuals = {name: (self.pde_residual() if name == "pde" else self.condition_residual(name), None)
                         for name in self._terms}
        parts = []
        for name in self._terms:
            value, target = residuals[name]
            r = (value if target is None else value - target).reshape(-1)
            parts.append(r * (self.weights[name] / max(r.numel(), 1)) ** 0.5)
        return torch.cat(parts)


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
