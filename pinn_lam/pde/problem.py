"""The interface every PDE problem follows.

A problem says *what* is solved: its variables and box domain, its PDE residual, its named
initial/boundary conditions, its exact solution where one is known, and an independent
finite-difference reference. *How* it is solved (model, sampling, optimizer, loop) lives elsewhere.

Shapes and conventions
----------------------
* ``points`` is an ``(N, d)`` tensor whose columns follow :attr:`Problem.variables`
  (space first, then time: ``("x", "t")``; or ``("x", "y")``).
* The network output ``u`` and every derivative are ``(N, 1)`` tensors.
* Derivatives are named by the variables they differentiate along, in order:
  ``"x"`` is :math:`\\partial u/\\partial x`, ``"xx"`` is :math:`\\partial^2 u/\\partial x^2`,
  ``"t"`` is :math:`\\partial u/\\partial t`. A problem lists the ones its residual needs in
  :attr:`Problem.derivatives`; the trainer computes them (by nested autograd, or by the
  forward-mode fast path where the model allows it) and passes them to :meth:`Problem.pde`.
  Variable names are therefore single characters.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

import numpy as np
import torch
from torch import Tensor

#: ``unit(n, k)`` returns an ``(n, k)`` float64 array of points in :math:`[0, 1]^k`
#: (uniform, Latin hypercube or Sobol, seeded by the caller).
UnitSampler = Callable[[int, int], np.ndarray]


@dataclass(frozen=True)
class Condition:
    """One named loss term of a problem (an initial or boundary condition).

    ``sample(n, unit)`` returns ``n`` points of shape ``(n, d)`` on the part of the boundary
    where the condition holds, drawing its randomness only from ``unit``;
    ``residual(points, u)`` returns the pointwise residual, whose mean square is the loss.
    ``value_only`` declares that ``residual`` uses ``u`` only, never its derivatives with respect
    to the points (a Dirichlet condition): the loss may then evaluate ``u`` there in the same
    forward-mode pass as the PDE residual, with points that do not require grad.
    """

    name: str
    sample: Callable[[int, UnitSampler], np.ndarray]
    residual: Callable[[Tensor, Tensor], Tensor]
    value_only: bool = False
    #: ``g`` of a Dirichlet condition, whose residual is ``u - target(points)``: the loss may then
    #: compute the target once per set of points
    target: Callable[[Tensor], Tensor] | None = None


def dirichlet(name: str, sample: Callable[[int, UnitSampler], np.ndarray],
              value: Callable[[Tensor], Tensor]) -> Condition:
    """A Dirichlet condition :math:`u = g` on the sampled points (``value(points) -> (N, 1)``)."""
    return Condition(name, sample, lambda points, u: u - value(points), value_only=True, target=value)


@dataclass(frozen=True)
class HardConstraint:
    r"""A hard-constraint output transform :math:`u = a(x) + b(x)\,\mathrm{raw}(x)`.

    ``offset`` (:math:`a`) and ``factor`` (:math:`b`) are differentiable functions of the points
    returning ``(N, 1)`` tensors, chosen so that every condition named in ``covers`` holds
    exactly; the trainer then drops those loss terms. Being affine in the raw network output,
    it lets the forward-mode fast path apply the product rule with derivatives of ``a`` and ``b``.
    """

    offset: Callable[[Tensor], Tensor]
    factor: Callable[[Tensor], Tensor]
    covers: tuple[str, ...]

    def __call__(self, points: Tensor, raw: Tensor) -> Tensor:
        return self.offset(points) + self.factor(points) * raw


@dataclass
class Reference:
    """A reference solution on a tensor-product grid.

    ``grid`` is a tuple of 1-D arrays, one per variable in order; ``u`` has shape
    ``tuple(len(g) for g in grid)``. Calling the reference with an ``(N, d)`` array of points
    (in variable order) interpolates it; ``interpolate`` is supplied by the problem so that it
    adds no error beyond the reference's own. ``error_estimate`` is the estimated relative L2
    error of ``u`` (from grid refinement, or against the exact solution), ``seconds`` the time
    it took to compute.
    """

    grid: tuple[np.ndarray, ...]
    u: np.ndarray
    interpolate: Callable[[np.ndarray], np.ndarray] | None = None
    error_estimate: float | None = None
    seconds: float | None = None
    method: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        shape = tuple(len(g) for g in self.grid)
        if self.u.shape != shape:
            raise ValueError(f"reference u has shape {self.u.shape}, expected {shape} from its grid")

    def __call__(self, points: np.ndarray) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != len(self.grid):
            raise ValueError(f"points must have shape (N, {len(self.grid)}), got {points.shape}")
        if self.interpolate is not None:
            return np.asarray(self.interpolate(points)).reshape(-1)
        from scipy.interpolate import RegularGridInterpolator

        return RegularGridInterpolator(self.grid, self.u, method="cubic")(points)

    def points(self) -> np.ndarray:
        """All grid points as an ``(M, d)`` array, in the same (C) order as ``u.ravel()``."""
        mesh = np.meshgrid(*self.grid, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)


class Problem(abc.ABC):
    """Base class of every PDE problem. See the module docstring for conventions."""

    #: registry name, e.g. ``"burgers"``
    name: ClassVar[str]
    #: input names in column order, space first then time
    variables: ClassVar[tuple[str, ...]]
    #: derivatives the residual needs, e.g. ``("t", "x", "xx")``
    derivatives: ClassVar[tuple[str, ...]]

    #: box domain, one ``(low, high)`` pair per variable
    bounds: tuple[tuple[float, float], ...]

    @abc.abstractmethod
    def parameters(self) -> dict[str, Any]:
        """The problem's own parameters (JSON-serialisable); they key the reference cache."""

    @abc.abstractmethod
    def pde(self, points: Tensor, u: Tensor, d: Mapping[str, Tensor]) -> Tensor:
        """The pointwise PDE residual from ``u`` and its derivatives ``d`` (keys as in
        :attr:`derivatives`); shape ``(N, 1)``."""

    @abc.abstractmethod
    def conditions(self) -> dict[str, Condition]:
        """The initial/boundary conditions as named loss terms, e.g. ``{"ic": ..., "bc": ...}``."""

    @abc.abstractmethod
    def reference(self, resolution: Any = None, *, cache_dir: str | None = None) -> Reference:
        """The finite-difference reference solution (cached on disk)."""

    def residual(self, points: Tensor, u: Tensor) -> Tensor:
        """The PDE residual through autograd: ``points`` must require grad and ``u`` depend on it."""
        from pinn_lam.pde.operators import derivatives

        return self.pde(points, u, derivatives(u, points, self.variables, self.derivatives))

    def exact_torch(self, points: Tensor) -> Tensor | None:
        """The exact solution as a differentiable ``(N, 1)`` tensor, or ``None`` if unknown."""
        return None

    @property
    def has_exact(self) -> bool:
        probe = torch.zeros(1, len(self.variables), dtype=torch.float64)
        return self.exact_torch(probe) is not None

    def exact(self, points: np.ndarray | Tensor) -> np.ndarray | Tensor | None:
        """The exact solution: a tensor ``(N, 1)`` for a tensor, a numpy ``(N,)`` for an array."""
        if isinstance(points, Tensor):
            return self.exact_torch(points)
        values = self.exact_torch(torch.as_tensor(np.asarray(points, dtype=np.float64)))
        return None if values is None else values.detach().numpy().reshape(-1)

    def output_transform(self) -> HardConstraint | None:
        """An optional hard constraint that enforces some conditions exactly; ``None`` by default."""
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.parameters().items())
        return f"{type(self).__name__}({args})"
