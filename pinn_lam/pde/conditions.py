r"""Conditions: the loss terms besides the PDE, each a residual at points of its own.

A :class:`Condition` says where its points lie (``on``: a :class:`~pinn_lam.pde.domains.Boundary`,
or ``"boundary"``, ``"initial"``, ``"x=low"``, ``"x=high"`` resolved against the problem's
domain, or fixed ``points``) and what vanishes there (``residual(d)``, read from named fields as
the PDE is; see :mod:`pinn_lam.pde.fields`). Its mean square is the loss term. The derivatives it
needs are found by reading, as for the PDE, so a condition on :math:`u_x` or :math:`u_t` is as
easy to write as one on :math:`u`.

The usual kinds, each a function that builds a :class:`Condition`:

* :func:`Dirichlet`: :math:`u = g`; :func:`InitialValue`: :math:`u(x, t_0) = g`;
* :func:`Neumann`: :math:`\partial u/\partial n = g`; :func:`Robin`: :math:`a u + b\,\partial u/\partial n = g`
  (``n`` the outward unit normal, read from the boundary as ``d.normal``);
* :func:`InitialRate`: :math:`u_t(x, t_0) = g` (a second-order equation in time);
* :func:`Periodic`: the outputs (and their first derivatives) agree at both ends of a variable;
* :func:`Data`: observations :math:`u(x_j) = u_j` at fixed points (inverse problems).

Values ``g`` (and ``a``, ``b``) are numbers or functions of the fields, ``lambda d: torch.sin(d["x"])``.
"""
from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from pinn_lam.errors import ProblemError
from pinn_lam.pde.domains import Boundary, Domain
from pinn_lam.pde.fields import Fields

Value = float | Callable[[Fields], Tensor]


@dataclass(frozen=True)
class Condition:
    """One named loss term: ``residual(d)`` vanishes at points drawn ``on`` a part of the domain.

    ``partner(points, domain)`` (periodic conditions) maps each point to the one it is paired
    with; ``residual`` then takes the fields at both, ``residual(d, e)``. ``points`` fixes the
    points instead of drawing them (data). ``target`` marks a value condition,
    ``residual(d) = d[outputs] - target(d)``, whose target the loss may compute once per set of
    points."""

    name: str
    residual: Callable[..., Tensor]
    on: Boundary | str | None = "boundary"
    points: np.ndarray | None = None
    target: Callable[[Fields], Tensor] | None = None
    outputs: tuple[str, ...] = ()
    partner: Callable[[np.ndarray, Domain], np.ndarray] | None = None
    meta: dict = field(default_factory=dict, compare=False)

    def boundary(self, domain: Domain) -> Boundary:
        """Where the points are drawn, resolved against ``domain``."""
        return resolve_on(self.on, domain, self.name)

    def sample(self, domain: Domain, n: int, unit) -> np.ndarray:
        """``n`` points of this condition (its fixed points, if it has them)."""
        if self.points is not None:
            return self.points
        return np.asarray(self.boundary(domain).sample(n, unit), dtype=np.float64)

    def normals(self, domain: Domain, points: np.ndarray) -> np.ndarray | None:
        if self.points is not None or self.on is None:
            return None
        return self.boundary(domain).normals(points)


def resolve_on(on, domain: Domain, name: str) -> Boundary:
    if isinstance(on, Boundary):
        return on
    if callable(on):
        return Boundary(on, lambda p: np.full_like(np.asarray(p), np.nan), 1.0, name)
    if on == "boundary":
        return domain.boundary()
    if on == "initial":
        if domain.time is None:
            raise ProblemError(f"condition {name!r} is an initial condition, but the domain has no time "
                               f"variable (variables: {', '.join(domain.variables)})")
        return domain.initial()
    if isinstance(on, str) and "=" in on:
        variable, side = (s.strip() for s in on.split("=", 1))
        if variable not in domain.variables:
            raise ProblemError(f"condition {name!r} is on {on!r}, but the problem has no variable {variable!r} "
                               f"(variables: {', '.join(domain.variables)})")
        return domain.face(variable, side)
    raise ProblemError(f"condition {name!r}: 'on' must be a Boundary, 'boundary', 'initial' or "
                       f"'VARIABLE=low|high', got {on!r}")


def _value(value: Value, label: str) -> Callable[[Fields], Tensor]:
    """A number or a function of the fields, as a function of the fields."""
    if callable(value):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value):
        constant = float(value)
        return lambda d: torch.full_like(d.points[:, :1], constant)
    raise ProblemError(f"{label} must be a finite number or a function of the fields d, got {value!r}")


def _outputs(output, name: str) -> tuple[str, ...]:
    outputs = (output,) if isinstance(output, str) else tuple(output)
    if not outputs or not all(isinstance(o, str) for o in outputs):
        raise ProblemError(f"condition {name!r}: output must be an output name or a tuple of them, got {output!r}")
    return outputs


def _value_condition(name: str, value: Value, on, output, points=None) -> Condition:
    outputs = _outputs(output, name)
    target = _value(value, f"the value of condition {name!r}")

    def residual(d: Fields) -> Tensor:
        return torch.cat([d[o] for o in outputs], dim=1) - target(d)

    return Condition(name, residual, on=on, points=points, target=target, outputs=outputs)


def Dirichlet(value: Value, on="boundary", output: str = "u", name: str = "bc") -> Condition:  # noqa: N802
    """:math:`u = g` on ``on`` (default: the whole spatial boundary)."""
    return _value_condition(name, value, on, output)


def InitialValue(value: Value, output: str = "u", name: str = "ic") -> Condition:  # noqa: N802
    """:math:`u(x, t_0) = g(x)` at the first time of the domain."""
    return _value_condition(name, value, "initial", output)


def InitialRate(value: Value, output: str = "u", name: str = "ic_rate") -> Condition:  # noqa: N802
    r""":math:`\partial u/\partial t\,(x, t_0) = g(x)`: the initial velocity of a second-order equation."""
    g = _value(value, f"the value of condition {name!r}")
    return Condition(name, lambda d: d[f"{output}_{d.time}"] - g(d), on="initial")


def normal_derivative(d: Fields, output: str) -> Tensor:
    r""":math:`\partial u/\partial n = \sum_i n_i\,\partial u/\partial x_i` with the outward normal
    ``d.normal``; only the directions where the normal is not zero are differentiated."""
    if d.normal is None:
        raise ProblemError("a normal derivative needs points on a boundary with normals")
    columns = [i for i in range(d.normal.shape[1]) if bool((d.normal[:, i] != 0).any())]
    total = torch.zeros_like(d.points[:, :1])
    for i in columns:
        total = total + d.normal[:, i:i + 1] * d[f"{output}_{d.variables[i]}"]
    return total


def Neumann(value: Value, on="boundary", output: str = "u", name: str = "neumann") -> Condition:  # noqa: N802
    r""":math:`\partial u/\partial n = g` with the outward unit normal :math:`n`."""
    g = _value(value, f"the value of condition {name!r}")
    return Condition(name, lambda d: normal_derivative(d, output) - g(d), on=on)


def Robin(a: Value, b: Value, value: Value, on="boundary", output: str = "u",  # noqa: N802
          name: str = "robin") -> Condition:
    r""":math:`a\,u + b\,\partial u/\partial n = g` with the outward unit normal :math:`n`."""
    fa, fb = _value(a, f"a of condition {name!r}"), _value(b, f"b of condition {name!r}")
    g = _value(value, f"the value of condition {name!r}")
    return Condition(name, lambda d: fa(d) * d[output] + fb(d) * normal_derivative(d, output) - g(d), on=on)


def Periodic(variable: str, outputs: Sequence[str] | str | None = None, derivatives: int = 1,  # noqa: N802
             name: str | None = None) -> Condition:
    """The ``outputs`` (default: all) and, with ``derivatives=1``, their first derivatives along
    ``variable`` agree where ``variable`` is at its low and its high end."""
    name = name or f"periodic_{variable}"
    if derivatives not in (0, 1, 2):
        raise ProblemError(f"condition {name!r}: derivatives must be 0, 1 or 2, got {derivatives!r}")
    chosen = None if outputs is None else _outputs(outputs, name)

    def partner(points: np.ndarray, domain: Domain) -> np.ndarray:
        i = domain.variables.index(variable)
        paired = np.array(points, dtype=np.float64, copy=True)
        paired[:, i] = domain.bounds[i][1]
        return paired

    def residual(d: Fields, e: Fields) -> Tensor:
        names = [o + ("_" + variable * k if k else "") for o in (chosen or d.outputs) for k in range(derivatives + 1)]
        return torch.cat([d[n] - e[n] for n in names], dim=1)

    return Condition(name, residual, on=f"{variable}=low", partner=partner)


def Data(points, values, outputs: Sequence[str] | str = ("u",), name: str = "data") -> Condition:  # noqa: N802
    """Observations: the ``outputs`` equal ``values`` (``(N, k)``, one column per output) at the
    fixed ``points`` (``(N, d)`` in variable order). See :func:`load_data` for files."""
    outputs = _outputs(outputs, name)
    points = np.asarray(points, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    values = values.reshape(-1, 1) if values.ndim == 1 else values
    if points.ndim != 2 or len(points) == 0:
        raise ProblemError(f"data {name!r}: points must be a non-empty (N, d) array, got shape {points.shape}")
    if values.shape != (len(points), len(outputs)):
        raise ProblemError(f"data {name!r}: values must have shape ({len(points)}, {len(outputs)}) for the outputs "
                           f"{', '.join(outputs)}, got {values.shape}")
    if not (np.isfinite(points).all() and np.isfinite(values).all()):
        raise ProblemError(f"data {name!r}: points and values must be finite")
    stored = torch.as_tensor(values)
    return _value_condition(name, lambda d: stored.to(d.points), None, outputs, points=points)


def load_data(path: str | os.PathLike, variables: Sequence[str], outputs: Sequence[str],
              keys: dict[str, str] | None = None, name: str = "data") -> Condition:
    """:func:`Data` from a file (``.mat``, ``.npz`` or whitespace ``.dat`` columns; see
    :func:`pinn_lam.pde.reference.load_arrays`): every point of the file is an observation."""
    from pinn_lam.pde.reference import load_arrays

    points, values = load_arrays(path, variables, outputs, keys)
    return Data(points, values, outputs, name)
