r"""Networks for stiff PINN losses: embeddings, the modified MLP and random weight factorization.

:class:`FeatureNetwork` composes

* an input embedding :math:`e(x)`: the scaled coordinates, the periodic ones replaced by
  :math:`(\cos, \sin)(2\pi x_j/P_j)` (:class:`~pinn_lam.nn.embeddings.PeriodicEmbedding`), then
  optionally random Fourier features (:class:`~pinn_lam.nn.embeddings.FourierFeatures`);
* a body: the plain MLP :math:`H_{l+1} = \sigma(W_l H_l + b_l)`, :math:`H_0 = e`, or the modified
  MLP of Wang, Teng & Perdikaris (2021, "Understanding and mitigating gradient pathologies in
  physics-informed neural networks"), with two encoders :math:`U = \sigma(W_U e + b_U)`,
  :math:`V = \sigma(W_V e + b_V)` and the gating

  .. math::
      Z_l = \sigma(W_l H_l + b_l), \qquad H_{l+1} = (1 - Z_l) \odot U + Z_l \odot V,

  then the affine output :math:`u = W_L H_L + b_L`;
* optionally random weight factorization (RWF, Wang et al. 2022, "Random weight factorization
  improves the training of continuous neural representations") of every weight matrix,
  :math:`W = \mathrm{diag}(e^{s}) V`, trained in :math:`(s, V)`, initialised from a
  Xavier-normal :math:`W` with :math:`s \sim \mathcal N(\mu, \sigma)` and :math:`V = e^{-s} W`.

All of it is affine maps, element-wise functions and element-wise products, so the derivatives
with respect to the inputs are exact Taylor jets (:mod:`pinn_lam.nn.jets`), which the
derivative fast path (:mod:`pinn_lam.nn.fastpath`) uses. :func:`parse_network` reads the
``network`` option of ``solve`` (``"modified-mlp+periodic+fourier:1+rwf"``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pinn_lam.nn import jets
from pinn_lam.nn.embeddings import FourierFeatures, PeriodicEmbedding
from pinn_lam.nn.jets import Jet
from pinn_lam.nn.mlp import check_architecture
from pinn_lam.nn.taylor import ACTIVATION_DERIVATIVES

BODIES = ("mlp", "modified-mlp")


@dataclass(frozen=True)
class NetworkSpec:
    """What :func:`parse_network` reads: the body, the embeddings and RWF's :math:`(\\mu, \\sigma)`."""

    body: str = "mlp"
    periodic: bool = False
    fourier: float | None = None  # sigma of the Fourier features
    rwf: tuple[float, float] | None = None

    @property
    def plain(self) -> bool:
        """Whether this is the plain MLP of :class:`~pinn_lam.nn.mlp.MLP`."""
        return self == NetworkSpec()

    def label(self) -> str:
        """The canonical name, e.g. ``modified-mlp+periodic+fourier(σ=1)+rwf(μ=1,σ=0.1)``."""
        parts = [self.body] + (["periodic"] if self.periodic else [])
        if self.fourier is not None:
            parts.append(f"fourier(σ={self.fourier:g})")
        if self.rwf is not None:
            parts.append(f"rwf(μ={self.rwf[0]:g},σ={self.rwf[1]:g})")
        return "+".join(parts)


def parse_network(text: str | None) -> NetworkSpec:
    """Read ``body[+periodic][+fourier[:SIGMA]][+rwf[:MU,SIGMA]]``, body ``mlp`` or ``modified-mlp``
    (``None``: the plain MLP). Defaults: Fourier :math:`\\sigma = 1`, RWF :math:`(\\mu, \\sigma) = (1, 0.1)`."""
    if text is None:
        return NetworkSpec()
    if isinstance(text, NetworkSpec):
        return text
    allowed = "body mlp or modified-mlp, then any of +periodic, +fourier[:SIGMA], +rwf[:MU,SIGMA]"
    parts = str(text).strip().split("+")
    body, fields = parts[0], {}
    if body not in BODIES:
        raise ValueError(f"unknown network {text!r}: {allowed}")
    for part in parts[1:]:
        name, _, value = part.partition(":")
        if name in fields or name not in ("periodic", "fourier", "rwf") or (name == "periodic" and value):
            raise ValueError(f"unknown or repeated network part {part!r} in {text!r}: {allowed}")
        try:
            numbers = [float(v) for v in value.split(",")] if value else []
        except ValueError:
            raise ValueError(f"network part {part!r} needs numbers after ':' ({allowed})") from None
        if name == "fourier":
            if len(numbers) > 1 or (numbers and not (numbers[0] > 0 and math.isfinite(numbers[0]))):
                raise ValueError(f"fourier:SIGMA needs one positive sigma, got {part!r}")
            fields[name] = numbers[0] if numbers else 1.0
        elif name == "rwf":
            if len(numbers) not in (0, 2) or (numbers and not (numbers[1] >= 0 and all(map(math.isfinite, numbers)))):
                raise ValueError(f"rwf:MU,SIGMA needs a mean and a non-negative spread, got {part!r}")
            fields[name] = tuple(numbers) if numbers else (1.0, 0.1)
        else:
            fields[name] = True
    return NetworkSpec(body, **fields)


class FactorizedLinear(nn.Module):
    r"""An affine map whose weight is :math:`W = \mathrm{diag}(e^{s}) V` (random weight factorization).

    Initialised from a Xavier-normal :math:`W_0` drawn with ``generator``: :math:`s \sim
    \mathcal N(\mu, \sigma^2)` per output, :math:`V = e^{-s} W_0`, so the initial map is
    :math:`W_0` (and the bias 0)."""

    def __init__(self, in_features: int, out_features: int, mean: float, std: float,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        weight = torch.empty(out_features, in_features)
        nn.init.xavier_normal_(weight, generator=generator)
        log_scale = mean + std * torch.randn(out_features, generator=generator)
        self.log_scale = nn.Parameter(log_scale)
        self.direction = nn.Parameter(weight * torch.exp(-log_scale)[:, None])
        self.bias = nn.Parameter(torch.zeros(out_features))

    @property
    def weight(self) -> Tensor:
        return torch.exp(self.log_scale)[:, None] * self.direction

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.weight, self.bias)


def _dense(in_features: int, out_features: int, rwf: tuple[float, float] | None,
           generator: torch.Generator | None) -> nn.Module:
    if rwf is not None:
        return FactorizedLinear(in_features, out_features, rwf[0], rwf[1], generator)
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_normal_(layer.weight, generator=generator)
    nn.init.zeros_(layer.bias)
    return layer


class FeatureNetwork(nn.Module):
    """An embedding, a plain or modified MLP body, and optional RWF (see the module docstring).

    Args:
        in_features, out_features: inputs (the problem's variables) and outputs.
        width, depth: neurons per hidden layer and number of hidden (gated) layers.
        activation: a name of :data:`pinn_lam.nn.taylor.ACTIVATION_DERIVATIVES`.
        bounds: ``(low, high)`` per input (``None``: ``[-1, 1]``).
        spec: a :class:`NetworkSpec` or its text (:func:`parse_network`).
        periods: input index -> period of the periodic inputs (used when ``spec.periodic``).
        output_transform: optional ``(points, raw) -> u`` (hard constraints).
        generator: draws the Fourier frequencies, then the weights (Xavier normal, biases 0),
            then RWF's scales.
        exact_conditions: names of the problem's conditions this network satisfies by
            construction (its periodic conditions), which the loss leaves out.
    """

    def __init__(self, in_features: int, out_features: int = 1, *, width: int = 32, depth: int = 4,
                 activation: str = "tanh", bounds: Sequence[Sequence[float]] | None = None,
                 spec: NetworkSpec | str | None = None, periods: Mapping[int, float] | None = None,
                 output_transform: Callable[[Tensor, Tensor], Tensor] | None = None,
                 generator: torch.Generator | None = None, exact_conditions: Sequence[str] = ()) -> None:
        super().__init__()
        check_architecture(in_features, out_features, width, depth, activation, ACTIVATION_DERIVATIVES)
        self.spec = parse_network(spec)
        if self.spec.periodic and not periods:
            raise ValueError("a periodic embedding needs the periods of the periodic inputs (the problem has none)")
        self.activation, self.output_transform = activation, output_transform
        self.exact_conditions = tuple(exact_conditions)
        bounds = bounds if bounds is not None else [(-1.0, 1.0)] * in_features
        if len(bounds) != in_features:
            raise ValueError(f"bounds must give (low, high) for each of {in_features} inputs, got {bounds!r}")
        self.embedding = PeriodicEmbedding(bounds, periods if self.spec.periodic else None)
        self.input_scale, self.input_shift = self.embedding.input_scale, self.embedding.input_shift
        features = self.embedding.out_features
        self.fourier = None
        if self.spec.fourier is not None:
            self.fourier = FourierFeatures(features, 2 * (width // 2) or 2, self.spec.fourier, generator)
            features = self.fourier.out_features
        rwf = self.spec.rwf
        self.encoders = nn.ModuleList(_dense(features, width, rwf, generator) for _ in range(2)) \
            if self.spec.body == "modified-mlp" else nn.ModuleList()
        sizes = [features] + [width] * depth
        self.layers = nn.ModuleList([_dense(a, b, rwf, generator) for a, b in zip(sizes[:-1], sizes[1:])]
                                    + [_dense(width, out_features, rwf, generator)])

    def scale_inputs(self, points: Tensor) -> Tensor:
        return points * self.input_scale + self.input_shift

    def jet(self, x: Jet) -> Jet:
        """The raw output's jet from the inputs' jet (:func:`pinn_lam.nn.jets.coordinates`)."""
        act = ACTIVATION_DERIVATIVES[self.activation][0]
        h = self.embedding.jet(x)
        if self.fourier is not None:
            h = self.fourier.jet(h)
        if self.encoders:
            u, v = (jets.elementwise(jets.affine(h, e.weight, e.bias), act) for e in self.encoders)
            gap = jets.add(v, u, alpha=-1.0)
            for layer in self.layers[:-1]:  # H = U + Z (V - U) = (1 - Z) U + Z V
                h = jets.add(u, jets.product(jets.elementwise(jets.affine(h, layer.weight, layer.bias), act), gap))
        else:
            for layer in self.layers[:-1]:
                h = jets.elementwise(jets.affine(h, layer.weight, layer.bias), act)
        last = self.layers[-1]
        return jets.affine(h, last.weight, last.bias)

    def taylor(self, inputs: Tensor, cols: Sequence[int], n2: int, sizes: Sequence[int]) -> tuple[Tensor, ...]:
        """What :func:`pinn_lam.nn.taylor.taylor_block` returns for an MLP: the raw output at the
        stacked point sets ``inputs`` (unscaled), then its derivatives along ``cols`` (second
        ones along ``cols[:n2]``) at the first ``sizes[0]`` points."""
        return jets.pieces(self.jet(jets.coordinates(inputs, cols, n2, sizes[0])), sizes)

    def raw(self, points: Tensor) -> Tensor:
        """The network output before any output transform."""
        return self.jet(jets.coordinates(points, (), 0, 0)).value

    def forward(self, points: Tensor) -> Tensor:
        raw = self.raw(points)
        if self.output_transform is not None:
            return self.output_transform(points, raw)
        return raw
