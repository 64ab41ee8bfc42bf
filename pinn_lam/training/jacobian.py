r"""The Jacobian of a PINN's residual vector with respect to the network's parameters, by ``torch.func``.

:meth:`pinn_lam.training.loss.PINNLoss.residual_vector` is
:math:`R = [\sqrt{w_k/N_k}\,r_k(x^k_j;\theta)]_{k,j}`. Row :math:`(k, j)` of
:math:`J = \partial R/\partial\theta` depends on the one point :math:`x^k_j`, so :math:`J` is a
per-point gradient: :func:`torch.func.jacrev` with respect to :math:`\theta` of the residual at one
point, mapped over the points by :func:`torch.func.vmap`. The residual at one point is written
with :func:`torch.func.functional_call` of the model on a ``(1, d)`` point, and the derivatives
the PDE needs (``"t"``, ``"xx"``, ...) are nested :func:`torch.func.grad` with respect to the
point (read from the named fields as the loss reads them), so the whole computation is one
composable function of :math:`(\theta, x)`. The cost is
about that of one backward pass of the loss per output column block, far below the :math:`m`
backward passes of a row-by-row autograd Jacobian (:func:`pinn_lam.optim.lm.autograd_jacobian`).

The matrix-free products are :func:`torch.func.jvp` (:math:`Jv`, forward over reverse) and
:func:`torch.func.vjp` (:math:`J^\top u`) of the same function of :math:`\theta`.

Conditions may read derivatives (nested ``grad`` as for the equations), outward normals and
partner points (periodic conditions): a point's normal or partner travels in the per-point
``extra`` argument that a value condition uses for its precomputed target, and a periodic
residual reads the fields at the point and at its partner.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.func import functional_call, grad, jacrev, jvp, vjp, vmap

from pinn_lam.optim.least_squares import JacobianProducts
from pinn_lam.pde.fields import Fields
from pinn_lam.pde.spec import equation_residuals
from pinn_lam.training.loss import PINNLoss

PointFunction = Callable[[dict[str, Tensor], Tensor, Tensor], Tensor]

#: points per vectorised batch (bounds the memory of the intermediate per-point graphs)
CHUNK = 1024


class _PointFields(Fields):
    """The fields at one point ``x`` (``(d,)``) of the model with parameters ``theta``: every
    derivative is a nested :func:`torch.func.grad` with respect to the point."""

    def __init__(self, value: Callable[[dict[str, Tensor], Tensor], Tensor], theta: dict[str, Tensor], x: Tensor,
                 problem, normal: Tensor | None = None) -> None:
        unknowns = {name: theta[f"unknowns.{name}"] for name in problem.unknowns}
        super().__init__(x.unsqueeze(0), problem.variables, problem.outputs, unknowns, time=problem.domain.time,
                         normal=None if normal is None else normal.unsqueeze(0))
        self._value, self._theta, self._x = value, theta, x

    def _compute(self, output: int, directions: str) -> Tensor:
        function = lambda theta, x: self._value(theta, x)[output]  # noqa: E731
        for variable in directions:
            function = (lambda inner, index: lambda theta, x: grad(inner, argnums=1)(theta, x)[index])(
                function, self.variables.index(variable))
        return function(self._theta, self._x).reshape(1, 1)


def _point_functions(loss: PINNLoss) -> dict[str, PointFunction]:
    """``term -> f(theta, x, target)``: the residual of each term at one point ``x`` (``(d,)``) as a
    vector of its columns; ``target`` is the point's row of a value condition's precomputed target."""
    model, problem, spec = loss.model, loss.problem, loss.spec
    buffers = dict(model.named_buffers())

    def value(theta: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(model, {**theta, **buffers}, (x.unsqueeze(0),)).reshape(-1)

    def equation(name: str) -> PointFunction:
        def residual(theta: dict[str, Tensor], x: Tensor, target: Tensor) -> Tensor:
            d = _PointFields(value, theta, x, problem)
            return equation_residuals(problem.pde(d), spec.equations, 1)[name].reshape(-1)

        return residual

    functions: dict[str, PointFunction] = {name: equation(name) for name in spec.equations}
    for name in loss.terms():
        if name in functions:
            continue
        condition = spec.conditions[name]
        if condition.partner is not None:   # extra: the partner point
            functions[name] = lambda theta, x, partner, condition=condition: condition.residual(
                _PointFields(value, theta, x, problem), _PointFields(value, theta, partner, problem)).reshape(-1)
        elif "normal" in spec.reads[name]:  # extra: the outward normal
            functions[name] = lambda theta, x, normal, condition=condition: condition.residual(
                _PointFields(value, theta, x, problem, normal)).reshape(-1)
        elif name in spec.fixed_targets:    # extra: the precomputed target
            columns = [problem.outputs.index(o) for o in condition.outputs]
            functions[name] = lambda theta, x, target, columns=columns: value(theta, x)[columns] - target
        else:
            functions[name] = lambda theta, x, target, condition=condition: condition.residual(
                _PointFields(value, theta, x, problem)).reshape(-1)
    return functions


def _targets(loss: PINNLoss) -> dict[str, Tensor]:
    """Each term's per-point extra argument: a periodic condition's partner points, a normal-reading
    condition's normals, a value condition's precomputed target, zeros otherwise."""
    problem, spec = loss.problem, loss.spec
    targets = {}
    for name in loss.terms():
        points = loss.points["pde" if name in spec.equations else name]
        if name in spec.equations:
            targets[name] = torch.zeros(points.shape[0], 1, dtype=points.dtype, device=points.device)
            continue
        normals, partner = loss._context(name)
        if spec.conditions[name].partner is not None:
            targets[name] = partner
        elif "normal" in spec.reads[name]:
            targets[name] = normals
        elif name in spec.fixed_targets:
            with torch.no_grad():
                targets[name] = spec.conditions[name].target(problem.fields(points)).to(points)
        else:
            targets[name] = torch.zeros(points.shape[0], 1, dtype=points.dtype, device=points.device)
    return targets


def _points(loss: PINNLoss, name: str) -> Tensor:
    return loss.points["pde" if name in loss.spec.equations else name]


def _scales(loss: PINNLoss, functions: dict[str, PointFunction], targets: dict[str, Tensor]) -> dict[str, float]:
    r""":math:`\sqrt{w_k/N_k}` with :math:`N_k` the number of entries of term k."""
    theta = _parameters(loss)
    scales = {}
    for name in loss.terms():
        points = _points(loss, name)
        with torch.no_grad():
            columns = functions[name](theta, points[0], targets[name][0]).numel()
        scales[name] = (loss.weights[name] / (points.shape[0] * columns)) ** 0.5
    return scales


def _parameters(loss: PINNLoss) -> dict[str, Tensor]:
    """The model's parameters as detached copies (later in-place updates leave them alone)."""
    return {name: p.detach().clone() for name, p in loss.model.named_parameters()}


def residual_function(loss: PINNLoss) -> Callable[[dict[str, Tensor]], Tensor]:
    """``R(theta)``: :meth:`PINNLoss.residual_vector` as a function of a parameter dict."""
    functions, targets = _point_functions(loss), _targets(loss)
    scales = _scales(loss, functions, targets)

    def residuals(theta: dict[str, Tensor]) -> Tensor:
        return torch.cat([vmap(functions[name], in_dims=(None, 0, 0), chunk_size=CHUNK)(
            theta, _points(loss, name), targets[name]).reshape(-1) * scales[name] for name in loss.terms()])

    return residuals


def jacobian_matrix(loss: PINNLoss) -> Tensor:
    """The dense Jacobian ``(m, n)`` of :meth:`PINNLoss.residual_vector` at the model's parameters,
    columns in the order of ``model.parameters()``."""
    functions, targets, theta = _point_functions(loss), _targets(loss), _parameters(loss)
    scales = _scales(loss, functions, targets)
    blocks = []
    for name in loss.terms():
        points = _points(loss, name)
        per_point = vmap(jacrev(functions[name]), in_dims=(None, 0, 0), chunk_size=CHUNK)(theta, points, targets[name])
        rows = per_point[next(iter(theta))].shape[0] * per_point[next(iter(theta))].shape[1]
        block = torch.cat([per_point[key].reshape(rows, -1) for key in theta], dim=1)
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
