"""pinn-lam: physics-informed neural networks trained with LAM (Layer-wise Adaptive Moments).

Importing the package sets no global state.
"""
from __future__ import annotations

__version__ = "0.1.0"

from pinn_lam.nn.mlp import MLP
from pinn_lam.optim.lam import LAM, lam
from pinn_lam.pde.problem import Condition, HardConstraint, Problem, Reference
from pinn_lam.training.solve import Result, solve

__all__ = ["LAM", "MLP", "Condition", "HardConstraint", "Problem", "Reference", "Result", "lam", "solve",
           "__version__"]
