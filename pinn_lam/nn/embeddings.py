r"""Input embeddings of a PINN: exact periodic features and random Fourier features.

Both act on :class:`~pinn_lam.nn.jets.Jet` s, so that a network's derivatives with respect to its
inputs follow by the chain rule (:mod:`pinn_lam.nn.jets`); a plain forward pass is the jet with no
derivative rows.

* :class:`PeriodicEmbedding` maps a periodic coordinate :math:`x_j` of period :math:`P_j` to
  :math:`(\cos(2\pi x_j/P_j), \sin(2\pi x_j/P_j))` and every other coordinate to its scaled value
  :math:`z = 2(x - lo)/(hi - lo) - 1`. Any function of the features is :math:`P_j`-periodic in
  :math:`x_j`, with all its derivatives, so periodic conditions hold by construction (Dong &
  Ni 2021, "A method for representing periodic functions and enforcing exactly periodic
  boundary conditions with deep neural networks").
* :class:`FourierFeatures` maps features :math:`e` to :math:`(\cos(e B), \sin(e B))` with a fixed
  random :math:`B_{kl} \sim \mathcal N(0, \sigma^2)` (Tancik et al. 2020; Wang, Wang & Perdikaris
  2021, "On the eigenvector bias of Fourier feature networks"): a larger :math:`\sigma` lets the
  network represent higher frequencies early in training.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from pinn_lam.nn import jets
from pinn_lam.nn.jets import Jet


class PeriodicEmbedding(nn.Module):
    """Scaled coordinates, with the periodic ones replaced by their cosine and sine.

    Args:
        bounds: ``(low, high)`` per input (``low < high``).
        periods: input index -> period :math:`P` (> 0) for the periodic coordinates (may be empty).

    Output columns: the non-periodic coordinates scaled to :math:`[-1, 1]` in input order, then
    :math:`\\cos, \\sin` of each periodic one.
    """

    def __init__(self, bounds: Sequence[Sequence[float]], periods: Mapping[int, float] | None = None) -> None:
        super().__init__()
        low = torch.tensor([float(b[0]) for b in bounds], dtype=torch.float64)
        high = torch.tensor([float(b[1]) for b in bounds], dtype=torch.float64)
        if bool((high <= low).any()):
            raise ValueError(f"bounds must give low < high for each input, got {bounds!r}")
        periods = dict(periods or {})
        for index, period in periods.items():
            if not 0 <= index < len(low) or not period > 0 or not math.isfinite(period):
                raise ValueError(f"periodic input {index} must be one of 0..{len(low) - 1} with a positive "
                                 f"finite period, got {period!r}")
        self.periodic = sorted(periods)
        self.plain = [i for i in range(len(low)) if i not in periods]
        self.register_buffer("input_scale", 2.0 / (high - low))
        self.register_buffer("input_shift", -(high + low) / (high - low))
        self.register_buffer("frequency", torch.tensor([2 * math.pi / periods[i] for i in self.periodic],
                                                       dtype=torch.float64))
        self.out_features = len(self.plain) + 2 * len(self.periodic)

    def jet(self, x: Jet) -> Jet:
        parts = []
        if self.plain:
            parts.append(jets.scale_shift(jets.columns(x, self.plain), self.input_scale[self.plain],
                                          self.input_shift[self.plain]))
        if self.periodic:
            angle = jets.scale_shift(jets.columns(x, self.periodic), self.frequency,
                                     torch.zeros_like(self.frequency))
            parts += [jets.elementwise(angle, jets.cos_triple), jets.elementwise(angle, jets.sin_triple)]
        return jets.concat(parts)

    def forward(self, points: Tensor) -> Tensor:
        return self.jet(jets.coordinates(points, (), 0, 0)).value


class FourierFeatures(nn.Module):
    r""":math:`e \mapsto (\cos(e B), \sin(e B))` with a fixed :math:`B \in \mathbb R^{d \times m/2}`,
    :math:`B_{kl} \sim \mathcal N(0, \sigma^2)`.

    Args:
        in_features: :math:`d`, the columns of :math:`e`.
        features: :math:`m`, the output columns (even, >= 2).
        sigma: :math:`\sigma > 0`, the scale of the frequencies (in units of the scaled inputs).
        generator: draws :math:`B` (the run's seeded generator).
    """

    def __init__(self, in_features: int, features: int, sigma: float, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not isinstance(features, int) or features < 2 or features % 2:
            raise ValueError(f"Fourier features must be an even integer >= 2, got {features!r}")
        if not sigma > 0 or not math.isfinite(sigma):
            raise ValueError(f"Fourier feature scale sigma must be positive and finite, got {sigma!r}")
        self.sigma = float(sigma)
        frequencies = torch.randn((in_features, features // 2), generator=generator, dtype=torch.float64) * sigma
        self.register_buffer("frequencies", frequencies)
        self.out_features = features

    def jet(self, e: Jet) -> Jet:
        angle = jets.affine(e, self.frequencies.T)
        return jets.concat([jets.elementwise(angle, jets.cos_triple), jets.elementwise(angle, jets.sin_triple)])

    def forward(self, features: Tensor) -> Tensor:
        empty = features.new_zeros((0, 0, features.shape[1]))
        return self.jet(jets.Jet(features, empty, empty)).value
