r"""Second-order Taylor jets along coordinate directions, for networks built from affine maps,
element-wise functions and element-wise products.

A jet of a quantity :math:`a(x)` (``(rows, w)``) holds its values at ``nv`` points and, at the
first ``n`` of them, its first derivatives :math:`a'_i = \partial_{c_i} a` along the directions
``cols`` and its pure second derivatives :math:`a''_j = \partial^2_{c_j} a` along ``cols[:n2]``.
The rules are the chain and product rules:

.. math::
    (W a + b)' = W a', \quad (W a + b)'' = W a'', \qquad
    f(a)' = f'(a)\,a', \quad f(a)'' = f''(a)\,a'^2 + f'(a)\,a'', \qquad
    (a b)' = a' b + a b', \quad (a b)'' = a'' b + 2 a' b' + a b''.

Every rule is a few torch operations, so the parameter gradient is autograd's single backward
pass through them: no graph is differentiated twice, unlike nested ``autograd.grad``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Triple = tuple[Tensor, Tensor, Tensor]


@dataclass(frozen=True)
class Jet:
    """Values ``(nv, w)`` at ``nv`` points, and at the first ``n`` of them the first derivatives
    ``first`` ``(n1, n, w)`` and the pure second derivatives ``second`` ``(n2, n, w)`` (see the
    module docstring). Kept as three tensors: slicing one block would cost a zero-filled
    block-sized gradient per slice in the backward pass."""

    value: Tensor
    first: Tensor
    second: Tensor

    @property
    def n(self) -> int:
        return self.first.shape[1]


def coordinates(points: Tensor, cols: Sequence[int], n2: int, n: int) -> Jet:
    r"""The jet of the inputs :math:`x` themselves: :math:`\partial_{c_i} x = e_{c_i}`, :math:`x'' = 0`."""
    n1, d = len(cols), points.shape[1]
    first = torch.zeros((n1, n, d), dtype=points.dtype, device=points.device)
    for i, c in enumerate(cols):
        first[i, :, c] = 1.0
    return Jet(points, first, points.new_zeros((n2, n, d)))


def affine(jet: Jet, weight: Tensor, bias: Tensor | None = None) -> Jet:
    """:math:`W a + b`; the bias reaches the values only."""
    value = jet.value @ weight.T if bias is None else torch.addmm(bias, jet.value, weight.T)
    return Jet(value, jet.first @ weight.T, jet.second @ weight.T)


def scale_shift(jet: Jet, scale: Tensor, shift: Tensor) -> Jet:
    """The per-column affine map :math:`s \\odot a + c` (input scaling)."""
    return Jet(jet.value * scale + shift, jet.first * scale, jet.second * scale)


def elementwise(jet: Jet, function: Callable[[Tensor], Triple]) -> Jet:
    """:math:`f(a)` for ``function(a) -> (f(a), f'(a), f''(a))``."""
    h, d1, d2 = function(jet.value)
    n, n2 = jet.n, jet.second.shape[0]
    if n != h.shape[0]:
        d1, d2 = d1[:n], d2[:n]
    return Jet(h, jet.first * d1, jet.second * d1 + jet.first[:n2].square() * d2)


def product(a: Jet, b: Jet) -> Jet:
    """The element-wise product :math:`a \\odot b` of two jets of one layout."""
    n, n2 = a.n, a.second.shape[0]
    va, vb = (a.value, b.value) if n == a.value.shape[0] else (a.value[:n], b.value[:n])
    first = a.first * vb + va * b.first
    second = a.second * vb + 2 * a.first[:n2] * b.first[:n2] + va * b.second
    return Jet(a.value * b.value, first, second)


def add(a: Jet, b: Jet, alpha: float = 1.0) -> Jet:
    """:math:`a + \\alpha b`."""
    if alpha == 1.0:
        return Jet(a.value + b.value, a.first + b.first, a.second + b.second)
    return Jet(a.value + alpha * b.value, a.first + alpha * b.first, a.second + alpha * b.second)


def concat(jets: Sequence[Jet]) -> Jet:
    """The jets' columns side by side."""
    return Jet(*(torch.cat([getattr(j, part) for j in jets], dim=-1) for part in ("value", "first", "second")))


def columns(jet: Jet, index: Sequence[int]) -> Jet:
    """Some columns of a jet."""
    index = list(index)
    return Jet(jet.value[:, index], jet.first[..., index], jet.second[..., index])


def sin_triple(a: Tensor) -> Triple:
    s = torch.sin(a)
    return s, torch.cos(a), -s


def cos_triple(a: Tensor) -> Triple:
    c = torch.cos(a)
    return c, -torch.sin(a), -c


def pieces(jet: Jet, sizes: Sequence[int]) -> tuple[Tensor, ...]:
    """The values of each stacked point set (``sizes`` rows each), then every derivative row
    (``n`` rows each): the output layout of :func:`pinn_lam.nn.taylor.taylor_block`."""
    return (*jet.value.split(list(sizes)), *jet.first.unbind(0), *jet.second.unbind(0))
