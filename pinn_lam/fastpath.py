r"""Forward-mode (Taylor) derivatives of an MLP's output with respect to its inputs.

A PINN residual needs :math:`u`, :math:`\partial_i u` and pure second derivatives
:math:`\partial_i^2 u` at every collocation point. Nested ``autograd.grad`` gets them with one
backward pass per derivative, each building a graph that the parameter gradient then
differentiates again. For a plain MLP the same numbers follow exactly from pushing a truncated
Taylor expansion along each input direction :math:`e_i` forward through the layers:

.. math::

    z = s \odot x + c, \qquad z' = s_i e_i, \qquad z'' = 0,

    a = W h + b, \qquad a' = W h', \qquad a'' = W h'',

    h_+ = \sigma(a), \qquad h_+' = \sigma'(a)\, a', \qquad
    h_+'' = \sigma''(a)\, a'^2 + \sigma'(a)\, a'',

and the last layer is affine. The rows :math:`[h, h'_1, \dots, h'_m, h''_1, \dots]` of all
directions are stacked so that each layer costs one matrix product; the first layer's
:math:`a'` is a constant column of :math:`W` and needs no product at all.

The propagation is one :class:`torch.autograd.Function` whose backward pass (the gradient with
respect to the weights, for the optimizer) is written out by hand: for a hidden layer with
upstream gradients :math:`\bar h, \bar h'_i, \bar h''_j`,

.. math::

    \bar a = \sigma' \bar h + \sigma'' \textstyle\sum_i \bar h'_i a'_i
             + \sum_j \bar h''_j (\sigma''' a_j'^2 + \sigma'' a''_j), \qquad
    \bar a'_i = \sigma' \bar h'_i + 2 \sigma'' a'_i \bar h''_i, \qquad
    \bar a''_j = \sigma' \bar h''_j,

then :math:`\bar W = \sum_{\text{rows}} \bar a_{\text{row}}^\top h_{\text{row}}` and
:math:`\bar h = W^\top \bar a` row by row. This is exact (it is the chain rule, checked against
nested autograd in the tests) and takes far fewer kernels than letting autograd differentiate
the elementwise Taylor rules, which is where the time goes for PINN-sized layers on a CPU.

A hard constraint :math:`u = a(x) + b(x)\,r(x)` (:class:`pinn_lam.problem.HardConstraint`) is
handled by the product rule, :math:`u_i = a_i + b_i r + b r_i` and
:math:`u_{ii} = a_{ii} + b_{ii} r + 2 b_i r_i + b r_{ii}`, with the derivatives of :math:`a`
and :math:`b` taken by autograd on the points (they may depend on the points only). A caller
that evaluates the same points many times may compute them once with :func:`constraint_terms`
and pass them in.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .models import MLP
from .problem import HardConstraint

__all__ = ["supports", "derivatives", "constraint_terms", "ACTIVATION_DERIVATIVES"]

Triple = tuple[Tensor, Tensor, Tensor]


def _tanh(a: Tensor) -> Triple:
    s = torch.tanh(a)
    d1 = 1 - s * s
    return s, d1, -2 * s * d1


def _sin(a: Tensor) -> Triple:
    s = torch.sin(a)
    return s, torch.cos(a), -s


def _sigmoid(a: Tensor) -> Triple:
    s = torch.sigmoid(a)
    d1 = s * (1 - s)
    return s, d1, d1 * (1 - 2 * s)


def _softplus(a: Tensor) -> Triple:
    # torch's softplus is exactly linear above its threshold (20), and so are its derivatives
    linear = a > 20
    p = torch.sigmoid(a)
    d1 = torch.where(linear, torch.ones_like(p), p)
    d2 = torch.where(linear, torch.zeros_like(p), p * (1 - p))
    return torch.nn.functional.softplus(a), d1, d2


def _softplus3(a: Tensor, s: Tensor, d1: Tensor, d2: Tensor) -> Tensor:
    return torch.where(a > 20, torch.zeros_like(d2), d2 * (1 - 2 * d1))


def _silu(a: Tensor) -> Triple:
    p = torch.sigmoid(a)
    q = p * (1 - p)
    return a * p, p + a * q, q * (2 + a * (1 - 2 * p))


def _silu3(a: Tensor, s: Tensor, d1: Tensor, d2: Tensor) -> Tensor:
    p = torch.sigmoid(a)
    q = p * (1 - p)
    return q * ((1 - 2 * p) * (3 + a * (1 - 2 * p)) - 2 * a * q)


def _normal_pdf(a: Tensor) -> Tensor:
    return torch.exp(-0.5 * a * a) * 0.3989422804014327


def _gelu(a: Tensor) -> Triple:
    # exact (erf) GELU: s = a Phi(a), s' = Phi + a phi, s'' = phi (2 - a^2)
    cdf = 0.5 * (1 + torch.erf(a * 0.7071067811865476))
    pdf = _normal_pdf(a)
    return a * cdf, cdf + a * pdf, pdf * (2 - a * a)


def _gelu3(a: Tensor, s: Tensor, d1: Tensor, d2: Tensor) -> Tensor:
    return _normal_pdf(a) * a * (a * a - 4)


#: activation name -> (a -> (sigma, sigma', sigma''), (a, sigma, sigma', sigma'') -> sigma''');
#: the third derivative is only needed by the hand-written backward pass
ACTIVATION_DERIVATIVES: dict[str, tuple[Callable[[Tensor], Triple],
                                        Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]]] = {
    "tanh": (_tanh, lambda a, s, d1, d2: (4 - 6 * d1) * d1),  # 6 s^2 - 2 = 4 - 6 (1 - s^2)
    "sin": (_sin, lambda a, s, d1, d2: -d1),
    "sigmoid": (_sigmoid, lambda a, s, d1, d2: d1 * (1 - 6 * s + 6 * s * s)),
    "softplus": (_softplus, _softplus3),
    "silu": (_silu, _silu3),
    "gelu": (_gelu, _gelu3),
}


def _is_pure_key(key: object) -> bool:
    return isinstance(key, str) and 1 <= len(key) <= 2 and len(set(key)) == 1


def _parse_keys(variables: Sequence[str], keys: Sequence[str]) -> tuple[list[int], int]:
    """Variable indices needing a first derivative, ordered so that the ``n2`` needing a pure
    second derivative come first (their rows then form one slice), and ``n2``."""
    first: list[int] = []
    second: list[int] = []
    for key in keys:
        if not _is_pure_key(key):
            raise ValueError(f"fast path supports derivative keys like 'x' or 'xx', got {key!r}")
        if key[0] not in variables:
            raise ValueError(f"derivative key {key!r} names no variable of {tuple(variables)}")
        index = variables.index(key[0])
        if index not in first:
            first.append(index)
        if len(key) == 2 and index not in second:
            second.append(index)
    return second + [i for i in first if i not in second], len(second)


def supports(model: torch.nn.Module, keys: Sequence[str]) -> bool:
    """True when :func:`derivatives` can compute ``keys`` for ``model``: a
    :class:`~pinn_lam.models.MLP` with an activation in :data:`ACTIVATION_DERIVATIVES`, an
    output transform that is ``None`` or a :class:`~pinn_lam.problem.HardConstraint`, and
    derivative keys of order at most 2 that are pure (``"x"``, ``"t"``, ``"xx"``; not ``"xt"``)."""
    if type(model) is not MLP or model.activation not in ACTIVATION_DERIVATIVES:
        return False
    if model.output_transform is not None and not isinstance(model.output_transform, HardConstraint):
        return False
    return all(_is_pure_key(key) for key in keys)


class _TaylorMLP(torch.autograd.Function):
    """Rows ``[r, r'_1..r'_n1, r''_1..r''_n2]`` ``(1 + n1 + n2, N, m)`` of an MLP's raw output.

    Inputs: ``(activation, cols, n2)``, the scaled points ``z`` (N, d), the input scales of the
    ``cols`` directions (n1,), then ``W_0, b_0, W_1, b_1, ...``. Directions ``cols[:n2]`` also
    get second derivatives. Inside, each layer keeps the value ``h`` (N, w) apart from the
    derivative rows ``D`` (n1 + n2, N, w), so that the bias rides in ``addmm``.
    """

    @staticmethod
    def forward(ctx, spec, z, scale, *params):  # type: ignore[override]
        activation, cols, n2 = spec
        act = ACTIVATION_DERIVATIVES[activation][0]
        n1 = len(cols)
        weights, biases = params[0::2], params[1::2]
        # first layer: a' along e_i is the constant column scale_i W[:, i], and a'' = 0
        column = (weights[0][:, list(cols)] * scale).T  # (n1, w)
        a = torch.addmm(biases[0], z, weights[0].T)
        h, d1, d2 = act(a)
        rows = a.new_empty((n1 + n2,) + a.shape)
        torch.mul(d1, column[:, None], out=rows[:n1])
        torch.mul(d2, column[:n2, None] ** 2, out=rows[n1:])
        saved = [z, scale, column, a, h, d1, d2]
        for weight, bias in zip(weights[1:-1], biases[1:-1]):
            a = torch.addmm(bias, h, weight.T)
            pre = torch.matmul(rows, weight.T)  # one product for every direction
            saved += [h, rows, a, pre]
            h, d1, d2 = act(a)
            rows = pre * d1  # sigma' a' and sigma' a''
            first = pre[:n2]
            rows[n1:].addcmul_(first * first, d2)  # + sigma'' a'^2
            saved += [h, d1, d2]
        value = torch.addmm(biases[-1], h, weights[-1].T)
        result = torch.cat((value[None], torch.matmul(rows, weights[-1].T)))
        saved += [h, rows]
        ctx.save_for_backward(*saved, *params)
        ctx.spec = spec
        ctx.depth = len(weights)
        return result

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        activation, cols, n2 = ctx.spec
        act3 = ACTIVATION_DERIVATIVES[activation][1]
        n1, depth = len(cols), ctx.depth
        saved = ctx.saved_tensors
        params = saved[-2 * depth:]
        weights = params[0::2]
        z, scale, column, a0, h0, d10, d20 = saved[:7]
        hidden = [saved[7 + 7 * i: 14 + 7 * i] for i in range(depth - 2)]
        h, rows = saved[7 + 7 * (depth - 2): 9 + 7 * (depth - 2)]
        grads: list[Tensor | None] = [None] * (2 * depth)
        g_value, g_rows = grad[0], grad[1:]
        grads[-2] = torch.addmm(g_value.T @ h, g_rows.flatten(0, 1).T, rows.flatten(0, 1))
        grads[-1] = g_value.sum(0)
        up_value, up_rows = g_value @ weights[-1], torch.matmul(g_rows, weights[-1])
        for index in range(depth - 2, 0, -1):
            h, rows, a, pre, s, d1, d2 = hidden[index - 1]
            mixed = up_rows[0] * pre[0]  # sum over rows of upstream * pre-activation derivative
            for r in range(1, n1 + n2):
                mixed.addcmul_(up_rows[r], pre[r])
            g_a = torch.addcmul(up_value * d1, d2, mixed)
            if n2:
                first = pre[:n2]
                second_first = up_rows[n1:] * first
                g_a.addcmul_(act3(a, s, d1, d2), (second_first * first).sum(0))
                g_pre = up_rows.mul_(d1)  # in place: up_rows is not needed any more
                g_pre[:n2].addcmul_(second_first, d2, value=2)
            else:
                g_pre = up_rows.mul_(d1)
            grads[2 * index] = torch.addmm(g_a.T @ h, g_pre.flatten(0, 1).T, rows.flatten(0, 1))
            grads[2 * index + 1] = g_a.sum(0)
            up_value, up_rows = g_a @ weights[index], torch.matmul(g_pre, weights[index])
        g_first = up_rows[:n1]
        g_a = torch.addcmul(up_value * d10, d20, (g_first * column[:, None]).sum(0))
        g_column = (g_first * d10).sum(1)  # (n1, w)
        if n2:
            g_second = up_rows[n1:]
            g_a.addcmul_(act3(a0, h0, d10, d20), (g_second * column[:n2, None] ** 2).sum(0))
            g_column[:n2].addcmul_(column[:n2], (g_second * d20).sum(1), value=2)
        g_weight = g_a.T @ z
        for rank, i in enumerate(cols):  # the columns' dependence on W_0
            g_weight[:, i] += g_column[rank] * scale[rank]
        grads[0] = g_weight
        grads[1] = g_a.sum(0)
        g_z = g_a @ weights[0] if ctx.needs_input_grad[1] else None
        return (None, g_z, None, *grads)


def _taylor(model: MLP, points: Tensor, cols: list[int], n2: int) -> Tensor:
    """The stacked rows ``(1 + n1 + n2, N, m)``: raw output, first derivatives along ``cols``,
    pure second derivatives along ``cols[:n2]``."""
    params = [p for layer in model.layers for p in (layer.weight, layer.bias)]
    scale = model.input_scale[cols]
    return _TaylorMLP.apply((model.activation, tuple(cols), n2), model.scale_inputs(points), scale, *params)


def constraint_terms(transform: HardConstraint, points: Tensor, variables: Sequence[str],
                     keys: Sequence[str]) -> dict[str, Tensor]:
    r"""Values and derivatives of a hard constraint's offset :math:`a` and factor :math:`b`.

    Returns ``{"a": a, "b": b, "a_x": ..., "b_x": ..., "a_xx": ..., "b_xx": ...}`` for the
    variables ``keys`` need, each ``(N, 1)`` and detached: :math:`a` and :math:`b` must depend on
    the points only (as :class:`~pinn_lam.problem.HardConstraint` requires). Computed by autograd
    on a copy of the points; the result can be reused for as long as the points stay the same.
    """
    cols, n2 = _parse_keys(variables, keys)
    with torch.enable_grad():
        x = points.detach().requires_grad_(True)
        terms: dict[str, Tensor] = {}
        for label, fn in (("a", transform.offset), ("b", transform.factor)):
            value = torch.as_tensor(fn(x), dtype=x.dtype, device=x.device)
            value = value.reshape(-1, 1).expand(x.shape[0], 1) if value.numel() == 1 else value.reshape(-1, 1)
            terms[label] = value.detach()
            if not cols:
                continue
            if value.requires_grad:
                grad = torch.autograd.grad(value.sum(), x, create_graph=n2 > 0, retain_graph=True)[0]
            else:  # a constant offset or factor
                grad = torch.zeros_like(x)
            for rank, i in enumerate(cols):
                column = grad[:, i:i + 1]
                name = f"{label}_{variables[i]}"
                terms[name] = column.detach()
                if rank < n2:
                    hess = (torch.autograd.grad(column.sum(), x, retain_graph=True)[0][:, i:i + 1]
                            if column.requires_grad else torch.zeros_like(column))
                    terms[name + variables[i]] = hess.detach()
    return terms


def derivatives(model: MLP, points: Tensor, variables: Sequence[str], keys: Sequence[str], *,
                terms: Mapping[str, Tensor] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """``u = model(points)`` (N, m) and ``{key: derivative}`` as
    :func:`pinn_lam.operators.derivatives` gives them, by forward-mode propagation.

    Args:
        model: an MLP for which :func:`supports` is True.
        points: (N, d) inputs in the order of ``variables``; they need not require grad.
        variables: single-character names of the input columns.
        keys: derivative names like ``"x"``, ``"t"``, ``"xx"``.
        terms: optional precomputed :func:`constraint_terms` of the model's hard constraint at
            these very points (saves a few autograd calls per step).

    Everything returned is differentiable (once) with respect to the model's parameters (and,
    without a hard constraint, the points, whose constraint terms are detached); it cannot be
    differentiated twice (use :mod:`pinn_lam.operators` for that).
    """
    if not supports(model, keys):
        raise ValueError(f"fast path does not support this model/keys (keys={tuple(keys)}, "
                         f"activation={getattr(model, 'activation', None)!r}); use pinn_lam.operators")
    variables = tuple(variables)
    if points.dim() != 2 or points.shape[1] != len(variables):
        raise ValueError(f"points must have shape (N, {len(variables)}), got {tuple(points.shape)}")
    cols, n2 = _parse_keys(variables, keys)
    rows = _taylor(model, points, cols, n2)
    raw, n1 = rows[0], len(cols)
    transform = model.output_transform
    if transform is not None:
        c = constraint_terms(transform, points, variables, keys) if terms is None else terms
        u = c["a"] + c["b"] * raw
    else:
        u = raw
    result: dict[str, Tensor] = {}
    for key in keys:
        rank = cols.index(variables.index(key[0]))
        row = rows[1 + rank] if len(key) == 1 else rows[1 + n1 + rank]
        if transform is None:
            result[key] = row
        elif len(key) == 1:
            v = key
            result[key] = c[f"a_{v}"] + c[f"b_{v}"] * raw + c["b"] * row
        else:
            v = key[0]
            result[key] = (c[f"a_{key}"] + c[f"b_{key}"] * raw
                           + 2 * c[f"b_{v}"] * rows[1 + rank] + c["b"] * row)
    return u, result
