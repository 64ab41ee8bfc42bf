"""pinn-lam: physics-informed neural networks trained with LAM (Layer-wise Adaptive Moments).

Importing the package sets no global state.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .models import MLP
from .optim import LAM, lam
from .problem import Condition, HardConstraint, Problem, Reference
# `solve` is both a submodule and the function it defines: importing the function here, after the
# submodule, keeps `pinn_lam.solve` the function however the submodule is imported later
from .solve import Result, solve

__all__ = ["LAM", "MLP", "Condition", "HardConstraint", "Problem", "Reference", "Result", "lam", "solve",
           "__version__"]
