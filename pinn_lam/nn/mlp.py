"""Networks for PINNs: a fully connected MLP with inputs scaled to the domain.

The MLP is deliberately plain (``Linear`` layers and one elementwise activation) so that the
forward-mode derivative fast path (:mod:`pinn_lam.nn.fastpath`) can propagate derivatives through
it exactly. An optional hard-constraint ``output_transform(points, raw) -> u`` is applied last.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

#: activation name -> elementwise function
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "sin": torch.sin,
    "sigmoid": torch.sigmoid,
    "softplus": nn.functional.softplus,
    "gelu": nn.functional.gelu,
    "silu": nn.functional.silu,
}


def check_architecture(in_features: int, out_features: int, width: int, depth: int, activation: str,
                       activations: Iterable[str]) -> None:
    """One-line :class:`ValueError` unless the sizes are positive integers and ``activation`` is one
    of ``activations``."""
    for label, value in (("in_features", in_features), ("out_features", out_features), ("width", width),
                         ("depth", depth)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if activation not in activations:
        raise ValueError(f"unknown activation {activation!r}; choose one of {', '.join(activations)}")


class MLP(nn.Module):
    r"""A multilayer perceptron :math:`u(z) = W_L\,\sigma(\dots\sigma(W_1 z + b_1)\dots) + b_L`
    applied to inputs scaled to :math:`[-1, 1]` per dimension, :math:`z = 2(x - lo)/(hi - lo) - 1`.

    Args:
        in_features: number of inputs (the problem's variables).
        out_features: number of outputs.
        width: neurons per hidden layer.
        depth: number of hidden layers.
        activation: one of :data:`ACTIVATIONS`.
        bounds: ``(low, high)`` per input used for scaling; ``None`` leaves inputs unscaled.
        output_transform: optional ``(points, raw) -> u`` (hard constraints).
        generator: ``torch.Generator`` for the Xavier-normal initialisation (biases start at 0).
    """

    def __init__(self, in_features: int, out_features: int = 1, *, width: int = 32, depth: int = 4,
                 activation: str = "tanh", bounds: Sequence[Sequence[float]] | None = None,
                 output_transform: Callable[[Tensor, Tensor], Tensor] | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        check_architecture(in_features, out_features, width, depth, activation, ACTIVATIONS)
        self.activation = activation
        self.output_transform = output_transform
        sizes = [in_features] + [width] * depth + [out_features]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        for layer in self.layers:
            nn.init.xavier_normal_(layer.weight, generator=generator)
            nn.init.zeros_(layer.bias)
        if bounds is None:
            low, high = torch.full((in_features,), -1.0), torch.full((in_features,), 1.0)
        else:
            low = torch.tensor([float(b[0]) for b in bounds])
            high = torch.tensor([float(b[1]) for b in bounds])
            if low.numel() != in_features or bool((high <= low).any()):
                raise ValueError(f"bounds must give low < high for each of {in_features} inputs, got {bounds!r}")
        # z = scale * x + shift maps [low, high] to [-1, 1]
        self.register_buffer("input_scale", 2.0 / (high - low))
        self.register_buffer("input_shift", -(high + low) / (high - low))

    def scale_inputs(self, points: Tensor) -> Tensor:
        return points * self.input_scale + self.input_shift

    def raw(self, points: Tensor) -> Tensor:
        """The network output before any output transform."""
        act = ACTIVATIONS[self.activation]
        h = self.scale_inputs(points)
        for layer in self.layers[:-1]:
            h = act(layer(h))
        return self.layers[-1](h)

    def forward(self, points: Tensor) -> Tensor:
        raw = self.raw(points)
        if self.output_transform is not None:
            return self.output_transform(points, raw)
        return raw
