"""What a problem needs, found before training, and every mistake in it as one line.

:func:`describe` evaluates the problem's equation, conditions and exact solution once on a few
points of its domain with a small smooth stand-in for the network, reading the fields by
nested autograd (:class:`~pinn_lam.pde.fields.RecordingFields`). That checks the definition
(names, shapes, conditions on variables the problem has) and records what each term reads: the
derivatives the loss must compute, whether a condition needs only values (so the fast path can
carry it in the PDE's pass), and whether a target depends on the coordinates only.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from pinn_lam.errors import ProblemError
from pinn_lam.pde.conditions import Condition
from pinn_lam.pde.domains import Domain
from pinn_lam.pde.fields import RecordingFields, check_names, derivative_keys

#: points the definition is tried on
PROBE_POINTS = 8


@dataclass(frozen=True)
class ProblemSpec:
    """The checked structure of a problem (see :func:`describe`)."""

    variables: tuple[str, ...]
    outputs: tuple[str, ...]
    unknowns: tuple[str, ...]
    equations: tuple[str, ...]
    conditions: dict[str, Condition]
    #: term -> names read (an equation's, a condition's at its points and, paired, at the partner's)
    reads: dict[str, tuple[str, ...]]
    #: value conditions whose target reads the coordinates only (computable once per set of points)
    fixed_targets: tuple[str, ...]

    def derivatives(self, term: str) -> tuple[str, ...]:
        """Direction keys (``"x"``, ``"xx"``) of the derivatives ``term`` reads."""
        name = "pde" if term in self.equations else term
        return derivative_keys(self.reads[name], self.variables, self.outputs)

    def value_only(self, term: str) -> bool:
        """Whether a condition reads no derivative, no normal and no partner."""
        condition = self.conditions[term]
        return condition.partner is None and not self.derivatives(term) and "normal" not in self.reads[term]


class _Probe(RecordingFields):
    """Records reads of ``normal`` too."""

    def __getattribute__(self, key: str):
        if key == "normal":
            read = object.__getattribute__(self, "read")
            if "normal" not in read:
                read.append("normal")
        return object.__getattribute__(self, key)


def equation_residuals(value, equations: Sequence[str] | None, n: int) -> dict[str, Tensor]:
    """What ``pde(d)`` returned as ``{name: (n, 1)}``: ``"pde"`` for one tensor, ``"pde1"``,
    ``"pde2"``, ... for a tuple, the keys for a dict."""
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [(f"pde{k + 1}", v) for k, v in enumerate(value)]
    else:
        items = [("pde", value)]
    out = {}
    for name, residual in items:
        if not isinstance(residual, Tensor):
            raise ProblemError(f"equation {name!r} must give a tensor, got {type(residual).__name__}")
        if residual.dim() == 1:
            residual = residual.unsqueeze(1)
        if residual.dim() == 0 or residual.shape != (n, 1):
            raise ProblemError(f"equation {name!r} gives shape {tuple(residual.shape)}; a residual has one value per "
                               f"point: ({n}, 1)")
        out[name] = residual
    if equations is not None and tuple(out) != tuple(equations):
        raise ProblemError(f"the equations changed from {tuple(equations)} to {tuple(out)} between calls")
    return out


def _stand_in(points: Tensor, m: int) -> Tensor:
    """A smooth function of the points with nonzero derivatives of every order, ``(N, m)``."""
    generator = torch.Generator().manual_seed(7)
    weights = torch.randn(points.shape[1], m, generator=generator, dtype=points.dtype)
    return torch.sin(points @ weights + 0.3) + 0.1 * (points ** 2).sum(dim=1, keepdim=True)


def _fields(problem, points: np.ndarray, normals: np.ndarray | None = None) -> _Probe:
    x = torch.as_tensor(points, dtype=torch.float64).requires_grad_(True)
    unknowns = {k: torch.tensor(float(v), dtype=torch.float64) for k, v in problem.unknowns.items()}
    normal = None if normals is None else torch.as_tensor(normals, dtype=torch.float64)
    return _Probe(x, _stand_in(x, len(problem.outputs)), problem.variables, problem.outputs, unknowns,
                  normal=normal, time=problem.domain.time)


def _call(what: str, function, *args):
    try:
        return function(*args)
    except ProblemError as error:
        raise ProblemError(f"{what}: {error}") from None
    except KeyError as error:
        raise ProblemError(f"{what} reads {error.args[0] if error.args else error}") from None
    except Exception as error:  # a user's function failing on valid fields: say where, in one line
        raise ProblemError(f"{what} failed: {type(error).__name__}: {error}") from None


def describe(problem) -> ProblemSpec:
    """Check ``problem`` and record what each term reads (one-line :class:`ProblemError` naming
    the part at fault otherwise)."""
    domain = getattr(problem, "domain", None)
    if not isinstance(domain, Domain):
        raise ProblemError(f"{type(problem).__name__} has no domain; set domain = Box(...) (or another Domain)")
    variables, outputs = tuple(problem.variables), tuple(problem.outputs)
    unknowns = tuple(problem.unknowns)
    check_names(variables, outputs, unknowns)
    for name, value in problem.unknowns.items():
        if not np.isfinite(float(value)):
            raise ProblemError(f"unknown {name!r} must start at a finite value, got {value!r}")
    rng = np.random.default_rng(0)

    def unit(n: int, k: int) -> np.ndarray:
        return rng.random((n, k))

    interior = _call("the domain", domain.sample, PROBE_POINTS, unit)
    d = _fields(problem, interior)
    residuals = equation_residuals(_call("the equation", problem.pde, d), None, PROBE_POINTS)
    reads = {"pde": tuple(d.read)}
    conditions = problem.condition_map()
    clash = sorted(set(conditions) & set(residuals))
    if clash:
        raise ProblemError(f"the names {', '.join(clash)} are used by an equation and a condition")
    fixed = []
    for name, condition in conditions.items():
        what = f"condition {name!r}"
        points = np.asarray(_call(what, condition.sample, domain, PROBE_POINTS, unit), dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != len(variables) or len(points) == 0:
            raise ProblemError(f"{what}: its points have shape {points.shape}; expected (N, {len(variables)}) "
                               f"in the variables {', '.join(variables)}")
        if condition.points is None:  # fixed points (data) are tried in full: their targets are per point
            points = points[:PROBE_POINTS]
        d = _fields(problem, points, _call(what, condition.normals, domain, points))
        if condition.partner is None:
            value = _call(what, condition.residual, d)
            reads[name] = tuple(d.read)
        else:
            e = _fields(problem, _call(what, condition.partner, points, domain))
            value = _call(what, condition.residual, d, e)
            reads[name] = tuple(dict.fromkeys(d.read + e.read))
        if not isinstance(value, Tensor) or value.dim() != 2 or value.shape[0] != len(points):
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ProblemError(f"{what} gives {shape}; a residual has one row per point: ({len(points)}, k)")
        unknown_outputs = [o for o in condition.outputs if o not in outputs]
        if unknown_outputs:
            raise ProblemError(f"{what} is on output(s) {', '.join(unknown_outputs)}; outputs are {', '.join(outputs)}")
        if condition.target is not None:
            t = _fields(problem, points)
            _call(what, condition.target, t)
            if set(t.read) <= set(variables):
                fixed.append(name)
    if _call("the exact solution", lambda: problem.has_exact):
        _call("the exact solution", problem.exact_torch, torch.as_tensor(interior))
    return ProblemSpec(variables, outputs, unknowns, tuple(residuals), conditions, reads, tuple(fixed))
