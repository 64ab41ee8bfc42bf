r"""The one interface every PDE problem follows, the library's and a user's alike.

A problem says *what* is solved; *how* (network, points, optimizer, loop) lives elsewhere.

* :attr:`Problem.domain`: where (:mod:`pinn_lam.pde.domains`); its variables name the input
  columns, space first, then time (``("x", "t")``).
* :attr:`Problem.outputs`: the network's outputs (``("u",)``, or ``("u", "v")`` for a system).
* :meth:`Problem.pde`: the residual(s) from named fields ``d`` (``d["u_t"] + d["u"] * d["u_x"]``;
  see :mod:`pinn_lam.pde.fields`): one ``(N, 1)`` tensor, a tuple of them, or a dict by name
  for several equations. The derivatives needed are found by reading; nothing is declared.
* :meth:`Problem.conditions`: initial, boundary and data terms (:mod:`pinn_lam.pde.conditions`).
* :attr:`Problem.unknowns`: scalar unknowns of an inverse problem with their initial values;
  they are trained with the network and read as ``d["name"]``.
* :meth:`Problem.exact` (optional): the exact solution from ``d`` (coordinates only).
* :meth:`Problem.reference` (optional): a :class:`~pinn_lam.pde.reference.Reference` (the
  library's problems solve their own with SciPy); by default the exact solution on a grid, else
  the automatic finite-difference reference (:mod:`pinn_lam.pde.auto_reference`) where the
  problem is in a supported class, else ``None``, in which case a run reports residual-based
  metrics only.
* :meth:`Problem.output_transform` (optional): a :class:`HardConstraint` that makes some
  conditions hold exactly.

A problem written in a script needs no class: :class:`PDE` takes all of this as arguments.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from pinn_lam.errors import ProblemError
from pinn_lam.pde.conditions import Condition
from pinn_lam.pde.domains import Domain
from pinn_lam.pde.fields import AutogradFields, Fields
from pinn_lam.pde.reference import PointReference, Reference, load_reference, tabulate

__all__ = ["PDE", "HardConstraint", "Problem", "Reference", "PointReference"]


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


class Problem:
    """Base class of every problem (see the module docstring). Subclasses set :attr:`domain`
    (as a class or instance attribute) and implement :meth:`pde`."""

    #: registry name, e.g. ``"burgers"``
    name: ClassVar[str] = "custom"
    domain: Domain
    outputs: tuple[str, ...] = ("u",)
    #: unknown scalar -> initial value (inverse problems)
    unknowns: Mapping[str, float] = {}
    #: unknown scalar -> its true value, where known: a run reports ``metrics["unknown_errors"]``
    true_unknowns: Mapping[str, float] = {}
    #: two outputs that are the real and imaginary parts of one complex field: a run also
    #: reports the error of its modulus (``rel_l2_abs``, ``max_abs_abs``)
    complex_outputs: tuple[str, str] | None = None
    #: the equation in one line of text (for tables and figures)
    equation: ClassVar[str] = ""
    #: training settings that differ from :data:`pinn_lam.training.presets.DEFAULTS`
    defaults: ClassVar[dict[str, Any]] = {}
    #: preset name -> overrides of the settings for this problem (after the preset's own)
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    #: parameter sets of the problem's rows in ``pinn-lam reference --table``
    table_parameters: ClassVar[tuple[dict[str, Any], ...]] = ({},)

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(self.domain.variables)

    @property
    def bounds(self) -> tuple[tuple[float, float], ...]:
        return tuple(self.domain.bounds)

    def parameters(self) -> dict[str, Any]:
        """The problem's own parameters (JSON-serialisable); they key the reference cache."""
        return {}

    def pde(self, d: Fields) -> Tensor | Sequence[Tensor] | Mapping[str, Tensor]:
        """The pointwise residual(s) of the equation(s) from the fields ``d``."""
        raise NotImplementedError(f"{type(self).__name__} must define pde(d)")

    def conditions(self) -> Sequence[Condition] | Mapping[str, Condition]:
        """The initial, boundary and data conditions (none by default)."""
        return ()

    def exact(self, d: Fields) -> Tensor | Sequence[Tensor] | None:
        """The exact solution from the coordinates in ``d``: ``(N, m)``, or one ``(N, 1)`` per
        output; ``None`` when unknown (the default)."""
        return None

    def output_transform(self) -> HardConstraint | None:
        """An optional hard constraint that enforces some conditions exactly; ``None`` by default."""
        return None

    def reference(self, resolution: Any = None, *, cache_dir: str | None = None):
        """The reference solution, or ``None``: by default the exact solution on a grid over the
        domain (where there is one), else the automatic finite-difference reference
        (:mod:`pinn_lam.pde.auto_reference`) where the problem is in a supported class."""
        if not self.has_exact:
            from pinn_lam.pde.auto_reference import default_reference

            return default_reference(self, cache_dir=cache_dir)
        return tabulate(lambda p: self.exact_values(p), self.domain, self.outputs, method="exact solution",
                        error_estimate=0.0)

    # -- helpers built on the above (not meant to be overridden) ------------------------------
    def condition_map(self) -> dict[str, Condition]:
        """The conditions by name (one-line error for two of the same name)."""
        conditions = self.conditions()
        items = list(conditions.values()) if isinstance(conditions, Mapping) else list(conditions)
        named: dict[str, Condition] = {}
        for condition in items:
            if not isinstance(condition, Condition):
                raise ProblemError(f"conditions must be Condition objects (Dirichlet(...), Neumann(...), ...), "
                                   f"got {type(condition).__name__}")
            if condition.name in named or condition.name.startswith("pde"):
                raise ProblemError(f"two loss terms are named {condition.name!r}; give each condition its own "
                                   "name= (and none starting with 'pde')")
            named[condition.name] = condition
        return named

    def fields(self, points: Tensor) -> Fields:
        """Fields of the coordinates only (what :meth:`exact` reads)."""
        return Fields(points, self.variables, (), time=self.domain.time)

    def exact_torch(self, points: Tensor) -> Tensor | None:
        """The exact solution at ``(N, d)`` points as an ``(N, m)`` tensor, or ``None``."""
        value = self.exact(self.fields(points))
        return None if value is None else stack_outputs(value, self.outputs, len(points), "the exact solution")

    @property
    def has_exact(self) -> bool:
        probe = torch.zeros(1, len(self.variables), dtype=torch.float64)
        return self.exact_torch(probe) is not None

    def exact_values(self, points) -> np.ndarray | None:
        """The exact solution at an ``(N, d)`` array: ``(N,)`` for one output, ``(N, m)`` for several."""
        with torch.no_grad():
            value = self.exact_torch(torch.as_tensor(np.asarray(points, dtype=np.float64)))
        if value is None:
            return None
        value = value.detach().cpu().numpy()
        return value.reshape(-1) if value.shape[1] == 1 else value

    def residual(self, points: Tensor, values: Tensor, unknowns: Mapping[str, Tensor] | None = None):
        """The PDE residual(s) of ``values`` (``(N, m)``, computed from ``points``, which require
        grad) by autograd: what :meth:`pde` returns."""
        unknowns = {k: torch.as_tensor(v, dtype=points.dtype) for k, v in (unknowns or self.unknowns).items()}
        return self.pde(AutogradFields(points, values, self.variables, self.outputs, unknowns, time=self.domain.time))

    def condition_residual(self, name: str, points: Tensor, solution: Callable[[Tensor], Tensor],
                           unknowns: Mapping[str, Tensor] | None = None) -> Tensor:
        """Condition ``name``'s residual at ``points`` for the function ``solution(points) ->
        (N, m)`` (e.g. :meth:`exact_torch`), by autograd: a check of a condition by hand."""
        condition = self.condition_map()[name]
        unknowns = {k: torch.as_tensor(v, dtype=points.dtype) for k, v in (unknowns or self.unknowns).items()}
        host = points.detach().cpu().double().numpy()
        normals = condition.normals(self.domain, host)
        normal = None if normals is None else torch.as_tensor(normals, dtype=points.dtype)

        def fields(x: Tensor, normal: Tensor | None = None) -> AutogradFields:
            x = x.detach().requires_grad_(True)
            return AutogradFields(x, solution(x), self.variables, self.outputs, unknowns, normal=normal,
                                  time=self.domain.time)

        if condition.partner is None:
            return condition.residual(fields(points, normal))
        partner = torch.as_tensor(condition.partner(host, self.domain), dtype=points.dtype)
        return condition.residual(fields(points, normal), fields(partner))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.parameters().items())
        return f"{type(self).__name__}({args})"


def stack_outputs(value, outputs: Sequence[str], n: int, what: str) -> Tensor:
    """One ``(N, m)`` tensor from a tensor or one ``(N, 1)`` per output (a sequence or a dict)."""
    if isinstance(value, Mapping):
        missing = [o for o in outputs if o not in value]
        if missing:
            raise ProblemError(f"{what} has no value for {', '.join(missing)}")
        value = [value[o] for o in outputs]
    if isinstance(value, (list, tuple)):
        value = torch.cat([torch.as_tensor(v).reshape(n, 1) for v in value], dim=1)
    value = torch.as_tensor(value)
    if value.dim() == 1 and len(outputs) == 1:
        value = value.unsqueeze(1)
    if value.dim() == 2 and value.shape[1] == 1 and value.shape[0] == 1 and n > 1:
        value = value.expand(n, 1)
    if tuple(value.shape) != (n, len(outputs)):
        raise ProblemError(f"{what} has shape {tuple(value.shape)}; expected ({n}, {len(outputs)}) "
                           f"for the outputs {', '.join(outputs)}")
    return value


class PDE(Problem):
    """A problem from arguments, for a script: ``PDE(domain, equation, conditions, ...)``.

    Args:
        domain: a :class:`~pinn_lam.pde.domains.Domain`, e.g. ``Box(x=(0, 1), t=(0, 1))``.
        equation: ``equation(d)`` -> the residual, a tuple of residuals, or a dict by name.
        conditions: :class:`~pinn_lam.pde.conditions.Condition` objects (``Dirichlet(...)``, ...).
        outputs: the output names (default ``("u",)``).
        exact: optional ``exact(d)`` -> the exact solution from the coordinates.
        reference: optional: ``"auto"`` (the automatic finite-difference reference, see
            :mod:`pinn_lam.pde.auto_reference`), a function of an ``(N, d)`` array returning the values, a
            :class:`~pinn_lam.pde.reference.Reference` or ``PointReference``, or the path of a
            ``.mat``/``.npz``/``.dat`` file (with ``reference_keys`` naming its arrays).
        unknowns: ``{name: initial value}`` of trainable scalars (inverse problems).
        parameters: values recorded with the run (and keying cached references).
        name: shown in results and figures. defaults: training settings for this problem.
        transform: an optional :class:`HardConstraint`.
    """

    def __init__(self, domain: Domain, equation: Callable[[Fields], Any], conditions: Sequence[Condition] = (), *,
                 outputs: Sequence[str] = ("u",), exact: Callable[[Fields], Any] | None = None, reference=None,
                 reference_keys: dict[str, str] | None = None, unknowns: Mapping[str, float] | None = None,
                 parameters: Mapping[str, Any] | None = None, name: str = "custom",
                 defaults: Mapping[str, Any] | None = None, transform: HardConstraint | None = None) -> None:
        if not isinstance(domain, Domain):
            raise ProblemError(f"domain must be a Domain such as Box(x=(0, 1), t=(0, 1)), got {type(domain).__name__}")
        if not callable(equation):
            raise ProblemError(f"equation must be a function of the fields d, got {type(equation).__name__}")
        self.domain, self._equation = domain, equation
        self._conditions = list(conditions)
        self.outputs = tuple([outputs] if isinstance(outputs, str) else outputs)
        self._exact, self._reference, self._keys = exact, reference, reference_keys
        self.unknowns = {str(k): float(v) for k, v in (unknowns or {}).items()}
        self._parameters = dict(parameters or {})
        self.name, self.defaults, self._transform = str(name), dict(defaults or {}), transform

    def parameters(self) -> dict[str, Any]:
        return dict(self._parameters)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.parameters().items())
        return f"PDE({self.name!r}{', ' if args else ''}{args})"

    def pde(self, d: Fields):
        return self._equation(d)

    def conditions(self) -> list[Condition]:
        return list(self._conditions)

    def exact(self, d: Fields):
        return None if self._exact is None else self._exact(d)

    def output_transform(self) -> HardConstraint | None:
        return self._transform

    def reference(self, resolution: Any = None, *, cache_dir: str | None = None):
        given = self._reference
        if isinstance(given, str) and given == "auto":
            from pinn_lam.pde.auto_reference import auto_reference

            return auto_reference(self, cache_dir=cache_dir)
        if given is None:
            return super().reference(resolution, cache_dir=cache_dir)
        if isinstance(given, (Reference, PointReference)):
            return given
        if isinstance(given, (str, os.PathLike)):
            return load_reference(given, self.variables, self.outputs, self._keys)
        if callable(given):
            return tabulate(given, self.domain, self.outputs, method="reference function")
        raise ProblemError(f"reference must be 'auto', a function, a Reference, a file path or None, "
                           f"got {type(given).__name__}")
