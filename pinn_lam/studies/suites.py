r"""Named sets of problem instances to compare optimizers on; ``pinn-lam compare --suite NAME``.

The ``stiff`` suite collects the cases where PINN losses are known to be hard for first-order
optimizers, each a library problem with parameters that make one loss term or one scale dominate:

* ``burgers`` at :math:`\nu = 0.01/\pi` (the classic shock-forming benchmark) and at
  :math:`\nu = 0.0025/\pi`, whose shock at :math:`x = 0` is four times thinner;
* ``heat`` with a fast-decaying high mode, :math:`u_0 = \sin(\pi x) + 0.5\sin(8\pi x)` at
  :math:`\alpha = 0.1`: the mode :math:`k = 8` decays like :math:`e^{-\alpha 64\pi^2 t} \approx e^{-63 t}`
  while :math:`k = 1` decays like :math:`e^{-t}`, two time scales 64 apart;
* ``poisson`` with a high-frequency mode, :math:`u = \sin(\pi x)\sin(\pi y) + 0.1\sin(8\pi x)\sin(8\pi y)`:
  the small high mode carries most of the forcing (:math:`128\pi^2 \cdot 0.1` against :math:`2\pi^2`),
  so the residual is dominated by the part of the solution that the network learns last
  (spectral bias).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Case:
    """One problem instance: ``name`` (used for folders and tables), registry ``problem``, ``params``."""

    name: str
    problem: str
    params: tuple[tuple[str, Any], ...]
    description: str = ""

    @property
    def parameters(self) -> dict[str, Any]:
        return dict(self.params)


SUITES: dict[str, tuple[Case, ...]] = {
    "stiff": (
        Case("burgers-nu0.01pi", "burgers", (("nu", 0.01 / math.pi),), "Burgers, nu = 0.01/pi (shock)"),
        Case("burgers-nu0.0025pi", "burgers", (("nu", 0.0025 / math.pi),), "Burgers, nu = 0.0025/pi (thinner shock)"),
        Case("heat-mode8", "heat", (("alpha", 0.1), ("modes", ((1, 1.0), (8, 0.5)))),
             "heat, alpha = 0.1, modes k = 1 and a fast-decaying k = 8"),
        Case("poisson-mode8", "poisson", (("modes", ((1, 1, 1.0), (8, 8, 0.1))),),
             "Poisson, modes (1, 1) and a high-frequency (8, 8)"),
    ),
}


def available() -> list[str]:
    return sorted(SUITES)


def get(name: str) -> tuple[Case, ...]:
    """The cases of suite ``name``."""
    key = str(name).lower()
    if key not in SUITES:
        raise ValueError(f"unknown suite {name!r}; available: {', '.join(available())}")
    return SUITES[key]
