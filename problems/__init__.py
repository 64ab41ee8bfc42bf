"""The PDE problem library: ``get(name, **params)`` and ``available()``.

Every problem module has the same shape (see ``pinn_lam.pde.problem.Problem``); adding a problem
means copying one module and adding it to ``_REGISTRY``.
"""
from __future__ import annotations

import inspect

from pinn_lam.pde.problem import Problem

from problems.burgers import Burgers
from problems.heat import Heat
from problems.poisson import Poisson

_REGISTRY: dict[str, type[Problem]] = {cls.name: cls for cls in (Burgers, Heat, Poisson)}

__all__ = ["Burgers", "Heat", "Poisson", "available", "get"]


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
