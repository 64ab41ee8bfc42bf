r"""The Jacobian of a PINN's residual vector with respect to the network's parameters, by ``torch.func``.

:meth:`pinn_lam.training.loss.PINNLoss.residual_vector` is
:math:`R = [\sqrt{w_k/N_k}\,r_k(x^k_j;\theta)]_{k,j}`. Row :math:`(k, j)` of
:math:`J = \partial R/\partial\theta` depends on the one point :math:`x^k_j`, so :math:`J` is a
per-point gradient: :func:`torch.func.jacrev` with respect to :math:`\theta` of the residual at one
point, mapped over the points by :func:`torch.func.vmap`. The residual at one point is written
with :func:`torch.func.functional_call` of the model on a ``(1, d)`` point, and the derivatives
the PDE needs (``"t"``, ``"xx"``, ...) are nested :func:`torch.func.grad` with respect to the
point, so the whole computation is one composable function of :math:`(\theta, x)`. The cost is
about that of one backward pass of the loss per output column block, far below the :math:`m`
backward passes of a row-by-row autograd Jacobian (:func:`pinn_lam.optim.lm.autograd_jacobian`).

The matrix-free products are :func:`torch.func.jvp` (:math:`Jv`, forward over reverse) and
:func:`torch.func.vjp` (:math:`J^\top u`) of the same function of :math:`\theta`.

Conditions must be ``value_only`` (Dirichlet-type): a condition whose residual differentiates
:math:`u` with respect to the points through autograd cannot be traced by ``torch.func``.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import functional_call, grad, jacrev, jvp, vjp, vmap

from pinn_lam.optim.least_squares import JacobianProducts
from pinn_lam.training.loss import PINNLoss

PointFunction = Callable[[dict[str, Tensor], Tensor], Tensor]

#: points per vectorised batch (bounds the memory of the intermediate per-point graphs)
CHUNK = 1024


def _point_functions(loss: PINNLoss) -> dict[str, PointFunction]:
    """``term -> f(theta, x)``: the residual of each term at one point ``x`` of shape ``(d,)``."""
    model, problem = loss.model, loss.problem
    buffers = dict(model.named_buffers())

    def u(theta: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(model, {**theta, **buffers}, (x.unsqueeze(0),)).reshape(())

    derivatives: dict[str, PointFunction] = {"": u}

    def derivative(key: str) -> PointFunction:
        if key not in derivatives:
            inner, index = derivative(key[:-1]), problem.variables.index(key[-1])
            derivatives[key] = lambda theta, x, inner=inner, index=index: grad(inner, argnums=1)(theta, x)[index]
        return derivatives[key]

    for key in problem.derivatives:
        unknown = set(key) - set(problem.variables)
        if not key or unknown:
            raise ValueError(f"derivative key {key!r} must be made of the variables {tuple(problem.variables)}")
        derivative(key)

    def pde(theta: dict[str, Tensor], x: Tensor) -> Tensor:
        values = {key: derivatives[key](theta, x).reshape(1, 1) for key in problem.derivatives}
        return problem.pde(x.unsqueeze(0), u(theta, x).reshape(1, 1), values).reshape(())

    functions: dict[str, PointFunction] = {"pde": pde}
    conditions = problem.conditions()
    for name in loss.terms()[1:]:
        condition = conditions[name]
        if not condition.value_only:
            raise ValueError(f"condition {name!r} differentiates u with respect to the points; the torch.func "
                             "Jacobian supports value-only (Dirichlet-type) conditions only")
        functions[name] = lambda theta, x, condition=condition: condition.residual(
            x.unsqueeze(0), u(theta, x).reshape(1, 1)).reshape(())
    return functions


def _scales(loss: PINNLoss) -> dict[str, float]:
    return {name: (loss.weights[name] / loss.points[name].shape[0]) ** 0.5 for name in loss.terms()}


def _parameters(loss: PINNLoss) -> dict[str, Tensor]:
    """The model's parameters as detached copies (later in-place updates leave them alone)."""
    return {name: p.detach().clone() for name, p in loss.model.named_parameters()}


def residual_function(loss: PINNLoss) -> Callable[[dict[str, Tensor]], Tensor]:
    """``R(theta)``: :meth:`PINNLoss.residual_vector` as a function of a parameter dict."""
    functions, scales = _point_functions(loss), _scales(loss)

    def residuals(theta: dict[str, Tensor]) -> Tensor:
        return torch.cat([vmap(functions[name], in_dims=(None, 0), chunk_size=CHUNK)(theta, loss.points[name])
                          * scales[name] for name in loss.terms()])

    return residuals


def jacobian_matrix(loss: PINNLoss) -> Tensor:
    """The dense Jacobian ``(m, n)`` of :meth:`PINNLoss.residual_vector` at the model's parameters,
    columns in the order of ``model.parameters()``."""
    functions, scales, theta = _point_functions(loss), _scales(loss), _parameters(loss)
    blocks = []
    for name in loss.terms():
        points = loss.points[name]
        per_point = vmap(jacrev(functions[name]), in_dims=(None, 0), chunk_size=CHUNK)(theta, points)
        block = torch.cat([per_point[key].reshape(points.shape[0], -1) for key in theta], dim=1)
        blocks.append(block * scales[name])
    return torch.cat(blocks)


def jacobian_products(loss: PINNLoss) -> JacobianProducts:
    r""":math:`Jv` and :math:`J^\top u` at the model's parameters, on flat vectors in the order of
    ``model.parameters()``."""
    residuals, theta = residual_function(loss), _parameters(loss)
    shapes = [(key, value.shape, value.numel()) for key, value in theta.items()]
    _, pullback = vjp(residuals, theta)

    def unflatten(v: Tensor) -> dict[str, Tensor]:
        pieces = v.split([n for _, _, n in shapes])
        return {key: piece.view(shape) for (key, shape, _), piece in zip(shapes, pieces)}

    def forward(v: Tensor) -> Tensor:
        return jvp(residuals, (theta,), (unflatten(v),))[1].detach()

    def backward(u: Tensor) -> Tensor:
        (grads,) = pullback(u)
        return torch.cat([grads[key].reshape(-1) for key, _, _ in shapes]).detach()

    return JacobianProducts(forward, backward)


def pinn_jacobian(loss: PINNLoss) -> Callable[[bool], Tensor | JacobianProducts]:
    """The ``jacobian`` argument of :meth:`pinn_lam.optim.lm.LevenbergMarquardt.step` for ``loss``."""
    _point_functions(loss)  # unsupported conditions fail here, before training
    return lambda matrix_free: jacobian_products(loss) if matrix_free else jacobian_matrix(loss)
