r"""Named sets of problem instances to compare optimizers on; ``pinn-lam compare --suite NAME``.

The ``stiff`` suite collects the canonical cases where PINN losses are known to be hard for
first-order optimizers, each a library problem at its published parameters:

* ``allen-cahn`` (Raissi et al. 2019): sharp interfaces of width ~0.005 and a cubic reaction;
* ``helmholtz`` with :math:`a_1 = 1, a_2 = 4` (Wang, Teng & Perdikaris 2021): a forcing of size
  :math:`17\pi^2` whose high mode in :math:`y` unbalances the gradients of the loss terms;
* ``convection`` at :math:`\beta = 30` and :math:`\beta = 50` (Krishnapriyan et al. 2021): the
  failure mode where a plain PINN's error is of order one;
* ``wave`` with :math:`c = 2` and modes 1 and 4 (Wang, Yu & Perdikaris 2022): eigenvalues of the
  neural tangent kernel spread over orders of magnitude between the residual and the initial terms;
* ``burgers`` at :math:`\nu = 0.01/\pi` (Raissi et al. 2019): the shock.

Heat with a fast mode (two time scales) and Poisson with a high mode (spectral bias) show the same
effects as the wave and Helmholtz cases; run them with ``--param`` (e.g. ``pinn-lam compare heat
--param 'modes=((1, 1.0), (8, 0.5))'``).
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
        Case("allen-cahn", "allen-cahn", (), "Allen-Cahn, eps = 1e-4, gamma = 5 (sharp interfaces)"),
        Case("helmholtz", "helmholtz", (), "Helmholtz, a1 = 1, a2 = 4, k = 1 (high-mode forcing)"),
        Case("convection-beta30", "convection", (("beta", 30.0),), "convection, beta = 30 (failure mode)"),
        Case("convection-beta50", "convection", (("beta", 50.0),), "convection, beta = 50"),
        Case("wave", "wave", (), "wave, c = 2, modes 1 and 4 (spread NTK spectrum)"),
        Case("burgers-nu0.01pi", "burgers", (("nu", 0.01 / math.pi),), "Burgers, nu = 0.01/pi (shock)"),
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
