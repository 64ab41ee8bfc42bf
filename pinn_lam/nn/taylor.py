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

from pinn_lam.nn import kernels

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
    """An MLP's raw output on ``nv`` points, and its derivatives on the first ``n = sizes[0]``.

    Inputs: ``(activation, cols, n2, sizes)``, the scaled points ``z`` (nv, d), stacked point
    sets of ``sizes`` rows, the input scales of the ``cols`` directions (n1,), then ``W_0, b_0,
    W_1, b_1, ...``. Directions ``cols[:n2]`` also get pure second derivatives. Outputs
    (:func:`_pieces`): the values of each point set, then ``k = n1 + n2`` pieces of ``n`` rows
    (first derivatives along ``cols``, then second derivatives along ``cols[:n2]``).

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
        grad = _gather(grads_out, sizes, k, weights[-1])
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
        grads[0], grads[1] = _first_weight_grad(g_a, z, g_column, scale, cols), g_a.sum(0)
        g_z = g_a @ weights[0] if ctx.needs_input_grad[1] else None
        return (None, g_z, None, *grads)


def _piece_sizes(sizes: Sequence[int], k: int) -> list[int]:
    """Rows of each output piece: every point set's values, then ``k`` derivative pieces of the first."""
    return list(sizes) + [sizes[0]] * k


def _pieces(out: Tensor, sizes: Sequence[int], k: int) -> tuple[Tensor, ...]:
    """The output block as separate views: the value rows of each point set, then each of the
    ``k`` derivative rows. Separate outputs reach the backward pass as separate gradients,
    without a slicing node (and a zero-filled block-sized gradient) per piece."""
    return tuple(out.split(_piece_sizes(sizes, k)))


def _gather(grads: Sequence[Tensor | None], sizes: Sequence[int], k: int, weight: Tensor) -> Tensor:
    """The gradient of the output block from the gradients of its pieces (``None``: unused)."""
    return torch.cat([g if g is not None else weight.new_zeros((size, weight.shape[0]))
                      for g, size in zip(grads, _piece_sizes(sizes, k))])


def _first_weight_grad(g_a: Tensor, z: Tensor, g_column: Tensor, scale: Tensor, cols: Sequence[int]) -> Tensor:
    """The first layer's weight gradient: through the values (``g_a`` at the scaled points ``z``)
    and through the constant derivative columns ``scale_i W_0[:, i]`` (``g_column``, (n1, w))."""
    g_weight = g_a.T @ z
    g_weight.index_add_(1, torch.tensor(list(cols), device=z.device), (g_column * scale[:, None]).T)
    return g_weight


def _output(block: Tensor, weight: Tensor, bias: Tensor, nv: int) -> Tensor:
    """The affine last layer on the block; the bias goes to the value rows only."""
    out = block @ weight.T
    out[:nv] += bias
    return out


def _output_backward(grad: Tensor, block: Tensor, weight: Tensor, nv: int) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of the last layer's weight and bias, and of the block below it."""
    grad = grad.contiguous()
    return grad.T @ block, grad[:nv].sum(0), grad @ weight


def _one_minus_square(h: Tensor) -> Tensor:
    return torch.addcmul(h.new_ones(()), h, h, value=-1)


class _TaylorTanh(torch.autograd.Function):
    r""":class:`_TaylorGeneric` for ``tanh``, in the shorter form of the module docstring.

    The backward pass needs only each layer's output block and :math:`d`: with the output rows
    :math:`F_i = d\,a'_i` and :math:`F_{n_1+j} = d\,\tilde a''_j` (so :math:`d\,t_j = h F_j`),
    the rules multiplied through by :math:`d` read
    :math:`\bar a = d \bar h - 2 h M - 2 Q` with :math:`M = \sum_r \bar F_r F_r` and
    :math:`Q = \sum_j F_j^2 \bar F_{n_1+j}`, and :math:`\bar a'_i = d \bar F_i - 4 h F_i
    \bar F_{n_1+i}`. The pre-activations are never stored, which keeps a step's memory (and
    its traffic to main memory) to the blocks the weight gradients need anyway.
    """

    @staticmethod
    def forward(ctx, spec, z, scale, *params):  # type: ignore[override]
        _, cols, n2, sizes = spec
        n = sizes[0]
        n1, nv = len(cols), z.shape[0]
        k = n1 + n2
        weights, biases = params[0::2], params[1::2]
        width = weights[0].shape[0]
        lib = kernels.use_for(z, n1, n2)  # fused element-wise loops on the CPU, when built
        block = z.new_empty((nv + k * n, width))
        if lib is not None:  # the kernels recompute d = 1 - h^2 where needed: nothing to store
            h, w0 = block[:nv], weights[0].contiguous()
            kernels.first_affine(lib, h, z.contiguous(), w0, biases[0].contiguous())
            h.tanh_()
            kernels.first_forward(lib, block, w0, cols, scale.contiguous(), nv, n, n1, n2)
        else:
            h = torch.tanh(torch.addmm(biases[0], z, weights[0].T), out=block[:nv])
            column = (weights[0][:, list(cols)] * scale).T  # (n1, w): the first layer's a'
            d = _one_minus_square(h)
            rows = block[nv:].view(k, n, width)
            # direction by direction: a row times a vector is a fast broadcast, (k, 1, w) is not
            for i in range(n1):
                torch.mul(d[:n], column[i], out=rows[i])
            for j in range(n2):  # h''_j = d (0 - 2 t_j a'_j) = -2 t_j h'_j with t_j = h a'_j
                torch.mul(rows[j], h[:n] * column[j], out=rows[n1 + j]).mul_(-2)
        blocks, slopes = [block], [] if lib is not None else [d]
        for weight, bias in zip(weights[1:-1], biases[1:-1]):
            pre = block @ weight.T  # one product for values and every derivative row
            pre[:nv] += bias
            width = pre.shape[1]
            block = torch.empty_like(pre)
            h = torch.tanh(pre[:nv], out=block[:nv])
            if lib is not None:
                kernels.hidden_forward(lib, pre, block, nv, n, n1, n2)
            else:
                d = _one_minus_square(h)
                first = pre[nv:].view(k, n, width)
                if n2:
                    first[n1:].addcmul_(first[:n2] * h[:n], first[:n2], value=-2)  # a''_j - 2 t_j a'_j
                torch.mul(first, d[:n], out=block[nv:].view(k, n, width))
                slopes.append(d)
            blocks.append(block)
        ctx.save_for_backward(z, scale, *blocks, *slopes, *params)
        ctx.spec, ctx.depth, ctx.lib = spec, len(weights), lib  # the backward pass takes the same path
        ctx.set_materialize_grads(False)
        return _pieces(_output(block, weights[-1], biases[-1], nv), sizes, k)

    @staticmethod
    @once_differentiable
    def backward(ctx, *grads_out):  # type: ignore[override]
        _, cols, n2, sizes = ctx.spec
        n, n1, depth = sizes[0], len(cols), ctx.depth
        k = n1 + n2
        saved = ctx.saved_tensors
        z, scale = saved[:2]
        blocks = saved[2:1 + depth]
        lib = ctx.lib
        slopes = () if lib is not None else saved[1 + depth:2 * depth]
        params = saved[len(saved) - 2 * depth:]
        weights = params[0::2]
        nv = z.shape[0]
        grads: list[Tensor | None] = [None] * (2 * depth)
        grad = _gather(grads_out, sizes, k, weights[-1]).contiguous()
        if lib is not None and grad.shape[1] == 1:  # the kernel forms grad W_out, and W_out's gradients, in its pass
            up, outer = torch.empty_like(blocks[-1]), (grad, weights[-1])
            grads[-2], grads[-1] = torch.empty_like(weights[-1]), weights[-1].new_empty(1)
        else:
            grads[-2], grads[-1], up = _output_backward(grad, blocks[-1], weights[-1], nv)
            outer = None
        for index in range(depth - 2, -1, -1):  # the hidden layers, then the first
            if lib is not None:
                g_bias = up.new_empty(up.shape[1])
                g, w_out = outer if outer is not None else (None, None)
                # the first layer's weight gradient comes out of the same pass
                first = index == 0
                g_weight = torch.empty_like(weights[0]) if first else None
                kernels.rows_backward(lib, up, blocks[index], g_bias, nv, n, n1, n2, g=g, wout=w_out,
                                      g_wout=grads[-2] if g is not None else None,
                                      g_bout=grads[-1] if g is not None else None,
                                      z=z.contiguous() if first else None, cols=cols,
                                      scale=scale.contiguous() if first else None, g_weight=g_weight)
                outer = None
            else:
                _tanh_rows_backward(up, blocks[index], slopes[index], nv, n, n1, n2)
                g_bias = up[:nv].sum(0)
            if index:
                grads[2 * index] = up.T @ blocks[index - 1]
                grads[2 * index + 1] = g_bias
                up = up @ weights[index]
        # the first layer: a' is the constant column scale_i W_0[:, i], so its gradient sums over points
        g_a = up[:nv]
        if lib is None:
            g_column = up[nv:nv + n1 * n].view(n1, n, -1).sum(1)  # (n1, w)
            g_weight = _first_weight_grad(g_a, z, g_column, scale, cols)
        grads[0], grads[1] = g_weight, g_bias
        g_z = g_a @ weights[0] if ctx.needs_input_grad[1] else None
        return (None, g_z, None, *grads)


def _tanh_rows_backward(up: Tensor, block: Tensor, d: Tensor, nv: int, n: int, n1: int, n2: int) -> None:
    """Turn ``up``, the gradient of a tanh layer's output block, into the gradient of its
    pre-activations, in place, from the output ``block`` and :math:`d = 1 - h^2` alone."""
    width = up.shape[1]
    k = n1 + n2
    g_rows, rows = up[nv:].view(k, n, width), block[nv:].view(k, n, width)
    h, g_h = block[:n], up[:nv]
    m = g_rows[0] * rows[0]
    for r in range(1, k):
        m.addcmul_(g_rows[r], rows[r])
    g_h.mul_(d)
    g_n = g_h[:n]
    g_n.addcmul_(h, m, value=-2)
    products = []
    for j in range(n2):
        product = rows[j] * g_rows[n1 + j]  # F_j times the gradient of the second row
        g_n.addcmul_(product, rows[j], value=-2)
        products.append(product)
    g_rows.mul_(d[:n])
    for j, product in enumerate(products):
        g_rows[j].addcmul_(h, product, value=-4)


def taylor_block(activation: str, cols: Sequence[int], n2: int, sizes: Sequence[int], z: Tensor, scale: Tensor,
                 params: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """An MLP's raw output (``m`` columns) at the scaled points ``z``, stacked point sets of
    ``sizes`` rows, and its derivatives at the first set: the values of each set, then the first
    derivatives along ``cols`` and the pure second derivatives along ``cols[:n2]`` at the first
    ``sizes[0]`` points, each ``(rows, m)``. ``scale`` holds the input scales of ``cols``;
    ``params`` are ``W_0, b_0, W_1, b_1, ...``."""
    function = _TaylorTanh if activation == "tanh" else _TaylorGeneric
    return function.apply((activation, tuple(cols), n2, tuple(sizes)), z, scale, *params)
