"""The PDE problem library: ``get(name, **params)`` and ``available()``.

Every problem module has the same shape (see ``pinn_lam.pde.problem.Problem``); adding a problem
means copying one module and adding it to ``_REGISTRY``.
"""
from __future__ import annotations

import inspect

from pinn_lam.pde.problem import Problem

from problems.allen_cahn import AllenCahn
from problems.burgers import Burgers
from problems.burgers_inverse import BurgersInverse
from problems.convection import Convection
from problems.heat import Heat
from problems.helmholtz import Helmholtz
from problems.poisson import Poisson
from problems.poisson_lshape import PoissonLShape
from problems.schrodinger import Schrodinger
from problems.wave import Wave

_REGISTRY: dict[str, type[Problem]] = {cls.name: cls for cls in (
    AllenCahn, Burgers, BurgersInverse, Convection, Heat, Helmholtz, Poisson, PoissonLShape, Schrodinger, Wave)}

__all__ = ["AllenCahn", "Burgers", "BurgersInverse", "Convection", "Heat", "Helmholtz", "Poisson", "PoissonLShape",
           "Schrodinger", "Wave", "available", "get"]


def available() -> list[str]:
    """Names of the registered problems."""
    return sorted(_REGISTRY)


def get(name: str, **params) -> Problem:
    """The problem registered as ``name`` (case-insensitive), built with ``params``."""
    key = str(name).lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown problem {name!r}; available: {', '.join(available())}")
    allowed = list(inspect.signature(_REGISTRY[key]).parameters)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for {key}; allowed: {', '.join(allowed)}")
    return _REGISTRY[key](**params)
