"""pinn-lam: physics-informed neural networks trained with LAM (Layer-wise Adaptive Moments).

The public names: :func:`solve` and its :class:`Result`; the optimizer :class:`LAM`
(:func:`lam`); the network :class:`MLP`; and the problem interface, a :class:`Problem` (or a
:class:`PDE` from arguments) on a domain (:class:`Box`, :class:`Disk`, their difference,
:class:`SpaceTime`) with conditions (:func:`Dirichlet`, :func:`Neumann`, :func:`Robin`,
:func:`InitialValue`, :func:`InitialRate`, :func:`Periodic`, :func:`Data`) and an optional
reference (:class:`Reference`, :class:`PointReference`, :func:`load_reference`).

Importing the package sets no global state.
"""
from __future__ import annotations

__version__ = "0.2.0"

from pinn_lam.nn.mlp import MLP
from pinn_lam.optim.lam import LAM, lam
from pinn_lam.pde.conditions import (Condition, Data, Dirichlet, InitialRate, InitialValue, Neumann, Periodic, Robin,
                                     load_data)
from pinn_lam.pde.domains import Box, Difference, Disk, SpaceTime
from pinn_lam.pde.problem import PDE, HardConstraint, Problem
from pinn_lam.pde.reference import PointReference, Reference, load_reference
from pinn_lam.training.solve import Result, solve

__all__ = ["LAM", "MLP", "PDE", "Box", "Condition", "Data", "Difference", "Dirichlet", "Disk", "HardConstraint",
           "InitialRate", "InitialValue", "Neumann", "Periodic", "PointReference", "Problem", "Reference", "Result",
           "Robin", "SpaceTime", "lam", "load_data", "load_reference", "solve", "__version__"]
