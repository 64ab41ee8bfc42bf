r"""Second-order Taylor jets along coordinate directions, for networks built from affine maps,
element-wise functions and element-wise products.

A jet of a quantity :math:`a(x)` (``(rows, w)``) holds its values at ``nv`` points and, at the
first ``n`` of them, its first derivatives :math:`a'_i = \partial_{c_i} a` along the directions
``cols`` and its pure second derivatives :math:`a''_j = \partial^2_{c_j} a` along ``cols[:n2]``,
stacked in one ``(nv + (n_1 + n_2) n, w)`` block (the layout of :mod:`pinn_lam.nn.taylor`). The
rules are the chain and product rules:

.. math::
    (W a + b)' = W a', \quad (W a + b)'' = W a'', \qquad
    f(a)' = f'(a)\,a', \quad f(a)'' = f''(a)\,a'^2 + f'(a)\,a'', \qquad
    (a b)' = a' b + a b', \quad (a b)'' = a'' b + 2 a' b' + a b''.

Every rule is a few torch operations, so the parameter gradient is autograd's single backward
pass through them: no graph is differentiated twice, unlike nested ``autograd.grad``. An affine
map is one matrix product for the values and every derivative row together.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

Triple = tuple[Tensor, Tensor, Tensor]


@dataclass(frozen=True)
class Jet:
    """Values at ``nv`` points and derivative rows at the first ``n`` (see the module docstring)."""

    block: Tensor
    nv: int
    n: int
    n1: int
    n2: int

    @property
    def value(self) -> Tensor:
        return self.block[:self.nv]

    @property
    def rows(self) -> Tensor:
        """The derivative rows as ``(n1 + n2, n, w)``: first derivatives, then second."""
        return self.block[self.nv:].view(self.n1 + self.n2, self.n, self.block.shape[1])

    def like(self, value: Tensor, rows: Tensor) -> Jet:
        """A jet of the same layout from new values and derivative rows."""
        return Jet(torch.cat((value, rows.reshape(-1, value.shape[1]))), self.nv, self.n, self.n1, self.n2)


def coordinates(points: Tensor, cols: Sequence[int], n2: int, n: int) -> Jet:
    r"""The jet of the inputs :math:`x` themselves: :math:`\partial_{c_i} x = e_{c_i}`, :math:`x'' = 0`."""
    n1, d = len(cols), points.shape[1]
    first = torch.zeros((n1, n, d), dtype=points.dtype, device=points.device)
    for i, c in enumerate(cols):
        first[i, :, c] = 1.0
    second = points.new_zeros((n2, n, d))
    return Jet(torch.cat((points, first.reshape(-1, d), second.reshape(-1, d))), points.shape[0], n, n1, n2)


def affine(jet: Jet, weight: Tensor, bias: Tensor | None = None) -> Jet:
    """:math:`W a + b`; the bias reaches the values only."""
    out = jet.block @ weight.T
    if bias is None:
        return Jet(out, jet.nv, jet.n, jet.n1, jet.n2)
    return Jet(torch.cat((out[:jet.nv] + bias, out[jet.nv:])), jet.nv, jet.n, jet.n1, jet.n2)


def scale_shift(jet: Jet, scale: Tensor, shift: Tensor) -> Jet:
    """The per-column affine map :math:`s \\odot a + c` (input scaling)."""
    return Jet(torch.cat((jet.value * scale + shift, jet.block[jet.nv:] * scale)), jet.nv, jet.n, jet.n1, jet.n2)


def elementwise(jet: Jet, function: Callable[[Tensor], Triple]) -> Jet:
    """:math:`f(a)` for ``function(a) -> (f(a), f'(a), f''(a))``."""
    h, d1, d2 = function(jet.value)
    rows, n, n1 = jet.rows, jet.n, jet.n1
    first = rows[:n1] * d1[:n]
    second = rows[n1:] * d1[:n] + rows[:jet.n2].square() * d2[:n]
    return jet.like(h, torch.cat((first, second)))


def product(a: Jet, b: Jet) -> Jet:
    """The element-wise product :math:`a \\odot b` of two jets of one layout."""
    ra, rb, n, n1, n2 = a.rows, b.rows, a.n, a.n1, a.n2
    va, vb = a.value[:n], b.value[:n]
    first = ra[:n1] * vb + va * rb[:n1]
    second = ra[n1:] * vb + 2 * ra[:n2] * rb[:n2] + va * rb[n1:]
    return a.like(a.value * b.value, torch.cat((first, second)))


def add(a: Jet, b: Jet, alpha: float = 1.0) -> Jet:
    """:math:`a + \\alpha b`."""
    return Jet(a.block + alpha * b.block if alpha != 1.0 else a.block + b.block, a.nv, a.n, a.n1, a.n2)


def concat(jets: Sequence[Jet]) -> Jet:
    """The jets' columns side by side."""
    first = jets[0]
    return Jet(torch.cat([j.block for j in jets], dim=1), first.nv, first.n, first.n1, first.n2)


def columns(jet: Jet, index: Sequence[int]) -> Jet:
    """Some columns of a jet."""
    return Jet(jet.block[:, list(index)], jet.nv, jet.n, jet.n1, jet.n2)


def sin_triple(a: Tensor) -> Triple:
    s = torch.sin(a)
    return s, torch.cos(a), -s


def cos_triple(a: Tensor) -> Triple:
    c = torch.cos(a)
    return c, -torch.sin(a), -c


def pieces(jet: Jet, sizes: Sequence[int]) -> tuple[Tensor, ...]:
    """The values of each stacked point set (``sizes`` rows each), then every derivative row
    (``n`` rows each): the output layout of :func:`pinn_lam.nn.taylor.taylor_block`."""
    return tuple(jet.block.split(list(sizes) + [jet.n] * (jet.n1 + jet.n2)))
