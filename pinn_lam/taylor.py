r"""Exact forward-mode (Taylor) propagation through an MLP, with a hand-written backward pass.

For each input direction :math:`e_i` the value, the first derivative and (for some directions)
the pure second derivative are pushed through the layers:

.. math::

    z = s \odot x + c, \qquad z' = s_i e_i, \qquad z'' = 0,

    a = W h + b, \qquad a' = W h', \qquad a'' = W h'',

    h_+ = \sigma(a), \qquad h_+' = \sigma'(a)\, a', \qquad
    h_+'' = \sigma''(a)\, a'^2 + \sigma'(a)\, a'',

and the last layer is affine. Every layer keeps its rows in one contiguous block
``[values at all nv points; a'_1 .. a'_n1, then a''_1 .. a''_n2, at the first n points]``, so
that a layer is one matrix product forward and two backward (the bias is added to the value
rows only); the first layer's :math:`a'` is a constant column of :math:`W`, with no product.

The backward pass (the gradient with respect to the weights, for the optimizer) is the chain
rule written out. For a hidden layer with upstream gradients :math:`\bar h, \bar h'_i,
\bar h''_j` and any activation:

.. math::

    \bar a = \sigma' \bar h + \sigma'' \textstyle\sum_i \bar h'_i a'_i
             + \sum_j \bar h''_j (\sigma''' a_j'^2 + \sigma'' a''_j), \qquad
    \bar a'_i = \sigma' \bar h'_i + 2 \sigma'' a'_i \bar h''_i, \qquad
    \bar a''_j = \sigma' \bar h''_j,

then :math:`\bar W = \sum_{\text{rows}} \bar a_{\text{row}}^\top h_{\text{row}}` (one product
over the block) and :math:`\bar h = W^\top \bar a` (another).

For ``tanh`` (:math:`d = \sigma' = 1 - h^2`, :math:`\sigma'' = -2hd`) a shorter form needs
fewer passes over memory: with :math:`t_j = h a'_j` and
:math:`\tilde a''_j = a''_j - 2 t_j a'_j` (stored in place of :math:`a''_j`),

.. math::

    h'_i = d\, a'_i, \qquad h''_j = d\, \tilde a''_j, \qquad
    \bar a = d\,(\bar h - 2 h m - 2 d q), \qquad
    \bar a'_i = d\,(\bar h'_i - 4 t_i \bar h''_i), \qquad \bar a''_j = d\, \bar h''_j,

where :math:`m = \sum_i \bar h'_i a'_i + \sum_j \bar h''_j \tilde a''_j` and
:math:`q = \sum_j a_j'^2 \bar h''_j`. Both forms are checked against nested autograd in
``tests/test_fastpath.py``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["ACTIVATION_DERIVATIVES", "taylor_block"]

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


class _TaylorGeneric(torch.autograd.Function):
    """An MLP's raw output on ``nv`` points, and its derivatives on the first ``n`` of them.

    Inputs: ``(activation, cols, n2, n)``, the scaled points ``z`` (nv, d), the input scales of
    the ``cols`` directions (n1,), then ``W_0, b_0, W_1, b_1, ...``. Directions ``cols[:n2]``
    also get pure second derivatives. Output: one ``(nv + k n, m)`` block, ``k = n1 + n2``: the
    values of all ``nv`` points, then ``k`` blocks of ``n`` rows (first derivatives along
    ``cols``, then second derivatives along ``cols[:n2]``).

    Inside, every layer keeps the same layout in one contiguous ``(nv + k n, w)`` block, so
    that each layer is one matrix product forward and two backward; the bias is added to the
    value rows only. Points after the first ``n`` (e.g. those of Dirichlet conditions) ride
    along as value rows at the cost of their share of the products.
    """

    @staticmethod
    def forward(ctx, spec, z, scale, *params):  # type: ignore[override]
        activation, cols, n2, sizes = spec
        n = sizes[0]
        act = ACTIVATION_DERIVATIVES[activation][0]
        n1, nv = len(cols), z.shape[0]
        k = n1 + n2
        weights, biases = params[0::2], params[1::2]
        # first layer: a' along e_i is the constant column scale_i W[:, i], and a'' = 0
        column = (weights[0][:, list(cols)] * scale).T  # (n1, w)
        a = torch.addmm(biases[0], z, weights[0].T)
        h, d1, d2 = act(a)
        block = a.new_empty((nv + k * n, a.shape[1]))
        block[:nv] = h
        rows = block[nv:].view(k, n, block.shape[1])
        torch.mul(d1[:n], column[:, None], out=rows[:n1])
        if n2:
            torch.mul(d2[:n], column[:n2, None] ** 2, out=rows[n1:])
        saved = [z, scale, column, a, h, d1, d2]
        for weight, bias in zip(weights[1:-1], biases[1:-1]):
            pre = block @ weight.T  # one product for values and every derivative row
            a = pre[:nv].add_(bias)
            h, d1, d2 = act(a)
            saved += [block, pre, h, d1, d2]
            block = torch.empty_like(pre)
            block[:nv] = h
            rows, first = block[nv:].view(k, n, pre.shape[1]), pre[nv:].view(k, n, pre.shape[1])
            torch.mul(first, d1[:n], out=rows)  # sigma' a' and sigma' a''
            if n2:
                rows[n1:].addcmul_(first[:n2].square(), d2[:n])  # + sigma'' a'^2
        saved.append(block)
        ctx.save_for_backward(*saved, *params)
        ctx.spec, ctx.depth = spec, len(weights)
        ctx.sizes_out = list(sizes) + [n] * (len(cols) + n2)
        ctx.set_materialize_grads(False)
        return _pieces(_output(block, weights[-1], biases[-1], nv), sizes, len(cols) + n2)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads_out):  # type: ignore[override]
        activation, cols, n2, sizes = ctx.spec
        n = sizes[0]
        act3 = ACTIVATION_DERIVATIVES[activation][1]
        n1, depth = len(cols), ctx.depth
        k = n1 + n2
        saved = ctx.saved_tensors
        params = saved[-2 * depth:]
        weights = params[0::2]
        z, scale, column, a0, h0, d10, d20 = saved[:7]
        nv = z.shape[0]
        hidden = [saved[7 + 5 * i: 12 + 5 * i] for i in range(depth - 2)]
        block = saved[7 + 5 * (depth - 2)]
        grads: list[Tensor | None] = [None] * (2 * depth)
        grad = _gather(grads_out, ctx.sizes_out, weights[-1])
        grads[-2], grads[-1], up = _output_backward(grad, block, weights[-1], nv)
        for index in range(depth - 2, 0, -1):
            block, pre, s, d1, d2 = hidden[index - 1]
            up_rows, first = up[nv:].view(k, n, up.shape[1]), pre[nv:].view(k, n, up.shape[1])
            mixed = up_rows[0] * first[0]  # sum over rows of upstream * pre-activation derivative
            for r in range(1, k):
                mixed.addcmul_(up_rows[r], first[r])
            g_a = up[:nv].mul_(d1)  # in place: ``up`` becomes the gradient of ``pre``
            g_a[:n].addcmul_(d2[:n], mixed)
            if n2:
                second_first = up_rows[n1:] * first[:n2]
                cube = (second_first * first[:n2]).sum(0)
                g_a[:n].addcmul_(act3(pre[:n], s[:n], d1[:n], d2[:n]), cube)
                up_rows.mul_(d1[:n])
                up_rows[:n2].addcmul_(second_first, d2[:n], value=2)
            else:
                up_rows.mul_(d1[:n])
            grads[2 * index] = up.T @ block
            grads[2 * index + 1] = g_a.sum(0)
            up = up @ weights[index]
        up_rows = up[nv:].view(k, n, up.shape[1])
        g_first = up_rows[:n1]
        g_a = up[:nv].mul_(d10)
        g_a[:n].addcmul_(d20[:n], (g_first * column[:, None]).sum(0))
        g_column = (g_first * d10[:n]).sum(1)  # (n1, w)
        if n2:
            g_second = up_rows[n1:]
            g_a[:n].addcmul_(act3(a0[:n], h0[:n], d10[:n], d20[:n]), (g_second * column[:n2, None] ** 2).sum(0))
            g_column[:n2].addcmul_(column[:n2], (g_second * d20[:n]).sum(1), value=2)
        g_weight = g_a.T @ z
        for rank, i in enumerate(cols):  # the columns' dependence on W_0
            g_weight[:, i] += g_column[rank] * scale[rank]
        grads[0] = g_weight
        grads[1] = g_a.sum(0)
        g_z = g_a @ weights[0] if ctx.needs_input_grad[1] else None
        return (None, g_z, None, *grads)


def _pieces(out: Tensor, sizes: Sequence[int], k: int) -> tuple[Tensor, ...]:
    """The output block as separate views: the value rows of each point set, then each of the
    ``k`` derivative rows. Separate outputs reach the backward pass as separate gradients,
    without a slicing node (and a zero-filled block-sized gradient) per piece."""
    return tuple(out.split(list(sizes) + [sizes[0]] * k))


def _gather(grads: Sequence[Tensor | None], sizes: Sequence[int], weight: Tensor) -> Tensor:
    """The gradient of the output block from the gradients of its pieces (``None``: unused)."""
    return torch.cat([g if g is not None else weight.new_zeros((size, weight.shape[0]))
                      for g, size in zip(grads, sizes)])


def _output(block: Tensor, weight: Tensor, bias: Tensor, nv: int) -> Tensor:
    """The affine last layer on the block; the bias goes to the value rows only."""
    out = block @ weight.T
    out[:nv] += bias
    return out


def _output_backward(grad: Tensor, block: Tensor, weight: Tensor, nv: int) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of the last layer's weight and bias, and of the block below it."""
    grad = grad.contiguous()
    # one output: an outer product, cheaper as a broadcast than as a rank-1 matrix product
    up = grad @ weight
    return grad.T @ block, grad[:nv].sum(0), up


def _one_minus_square(h: Tensor) -> Tensor:
    return torch.addcmul(h.new_ones(()), h, h, value=-1)


class _TaylorTanh(torch.autograd.Function):
    """:class:`_TaylorGeneric` for ``tanh``, in the shorter form of the module docstring."""

    @staticmethod
    def forward(ctx, spec, z, scale, *params):  # type: ignore[override]
        _, cols, n2, sizes = spec
        n = sizes[0]
        n1, nv = len(cols), z.shape[0]
        k = n1 + n2
        weights, biases = params[0::2], params[1::2]
        column = (weights[0][:, list(cols)] * scale).T  # (n1, w): the first layer's a'
        width = weights[0].shape[0]
        block = z.new_empty((nv + k * n, width))
        h = torch.tanh(torch.addmm(biases[0], z, weights[0].T), out=block[:nv])
        d = _one_minus_square(h)
        rows = block[nv:].view(k, n, width)
        # direction by direction: a row times a vector is a fast broadcast, (k, 1, w) is not
        for i in range(n1):
            torch.mul(d[:n], column[i], out=rows[i])
        t = h.new_empty((n2, n, width)) if n2 else None  # t_j = h a'_j
        for j in range(n2):  # h''_j = d (0 - 2 t_j a'_j) = -2 t_j h'_j
            torch.mul(h[:n], column[j], out=t[j])
            torch.mul(rows[j], t[j], out=rows[n1 + j]).mul_(-2)
        saved = [z, scale, column, h, d, t]
        for weight, bias in zip(weights[1:-1], biases[1:-1]):
            pre = block @ weight.T  # one product for values and every derivative row
            pre[:nv] += bias
            width = pre.shape[1]
            following = torch.empty_like(pre)
            h = torch.tanh(pre[:nv], out=following[:nv])
            d = _one_minus_square(h)
            first = pre[nv:].view(k, n, width)
            t = first[:n2] * h[:n] if n2 else None
            if n2:
                first[n1:].addcmul_(t, first[:n2], value=-2)  # a''_j - 2 t_j a'_j, in place
            torch.mul(first, d[:n], out=following[nv:].view(k, n, width))
            saved += [block, pre, h, d, t]
            block = following
        saved.append(block)
        ctx.save_for_backward(*saved, *params)
        ctx.spec, ctx.depth = spec, len(weights)
        ctx.sizes_out = list(sizes) + [n] * (len(cols) + n2)
        ctx.set_materialize_grads(False)
        return _pieces(_output(block, weights[-1], biases[-1], nv), sizes, len(cols) + n2)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads_out):  # type: ignore[override]
        _, cols, n2, sizes = ctx.spec
        n = sizes[0]
        n1, depth = len(cols), ctx.depth
        k = n1 + n2
        saved = ctx.saved_tensors
        params = saved[-2 * depth:]
        weights = params[0::2]
        z, scale, column, h0, d0, t0 = saved[:6]
        nv = z.shape[0]
        hidden = [saved[6 + 5 * i: 11 + 5 * i] for i in range(depth - 2)]
        grads: list[Tensor | None] = [None] * (2 * depth)
        grad = _gather(grads_out, ctx.sizes_out, weights[-1])
        grads[-2], grads[-1], up = _output_backward(grad, saved[6 + 5 * (depth - 2)], weights[-1], nv)
        for index in range(depth - 2, 0, -1):
            block, pre, h, d, t = hidden[index - 1]
            width = up.shape[1]
            rows, first = up[nv:].view(k, n, width), pre[nv:].view(k, n, width)
            g_h = up[:nv]
            m = rows[0] * first[0]
            for r in range(1, k):
                m.addcmul_(rows[r], first[r])
            if n2:
                q = first[0].square().mul_(rows[n1])
                for j in range(1, n2):
                    q.addcmul_(first[j].square(), rows[n1 + j])
                g_h[:n].addcmul_(d[:n], q, value=-2)
                rows[:n2].addcmul_(t, rows[n1:], value=-4)
            g_h[:n].addcmul_(h[:n], m, value=-2)
            g_h.mul_(d)
            rows.mul_(d[:n])  # ``up`` is now the gradient of ``pre``
            grads[2 * index] = up.T @ block
            grads[2 * index + 1] = g_h.sum(0)
            up = up @ weights[index]
        width = up.shape[1]
        rows, g_h = up[nv:].view(k, n, width), up[:nv]
        m = rows[0] * column[0]
        for i in range(1, n1):
            m.addcmul_(rows[i], column[i])
        for j in range(n2):
            second_t = rows[n1 + j] * t0[j]
            m.addcmul_(second_t, column[j], value=-2)  # the rows a''~_j = -2 t_j a'_j
            g_h[:n].addcmul_(d0[:n], rows[n1 + j] * column[j].square(), value=-2)
            rows[j].add_(second_t, alpha=-4)
        g_h[:n].addcmul_(h0[:n], m, value=-2)
        g_h.mul_(d0)
        g_column = (rows[:n1] * d0[:n]).sum(1)  # (n1, w): the gradient of the constant a'
        g_weight = g_h.T @ z
        # the columns' dependence on W_0
        g_weight.index_add_(1, torch.tensor(cols, device=z.device), (g_column * scale[:, None]).T)
        grads[0], grads[1] = g_weight, g_h.sum(0)
        g_z = g_h @ weights[0] if ctx.needs_input_grad[1] else None
        return (None, g_z, None, *grads)


def taylor_block(activation: str, cols: Sequence[int], n2: int, sizes: Sequence[int], z: Tensor, scale: Tensor,
                 params: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """An MLP's raw output (``m`` columns) at the scaled points ``z``, stacked point sets of
    ``sizes`` rows, and its derivatives at the first set: the values of each set, then the first
    derivatives along ``cols`` and the pure second derivatives along ``cols[:n2]`` at the first
    ``sizes[0]`` points, each ``(rows, m)``. ``scale`` holds the input scales of ``cols``;
    ``params`` are ``W_0, b_0, W_1, b_1, ...``."""
    function = _TaylorTanh if activation == "tanh" else _TaylorGeneric
    return function.apply((activation, tuple(cols), n2, tuple(sizes)), z, scale, *params)
