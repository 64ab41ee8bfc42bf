r"""Domains: where a problem lives, what its boundary is, and how points are drawn there.

A :class:`Domain` samples its interior (:meth:`Domain.sample`), answers
:meth:`Domain.contains`, and hands out parts of its boundary (:class:`Boundary`: points and
outward unit normals) for the conditions: :meth:`Domain.boundary` (the spatial boundary; for a
time-dependent domain, the boundary of space at every time) and :meth:`Domain.initial` (the
domain at the first time). Every draw takes its randomness from a *unit sampler*
``unit(n, k) -> (n, k)`` array in :math:`[0, 1)^k` (uniform, Latin hypercube or Sobol; see
:mod:`pinn_lam.training.sampling`), so one seed drives every point.

* :class:`Box`: ``Box(x=(-1, 1), t=(0, 1))``; a variable named ``t`` is time unless ``time=``
  says otherwise; :meth:`Box.face` gives one face, e.g. ``box.face("x", "low")``.
* :class:`Disk`: ``Disk(center=(0, 0), radius=1)`` in ``x, y``.
* :class:`Difference`: ``a - b``, e.g. an L-shape ``Box(x=(-1, 1), y=(-1, 1)) - Box(x=(0, 1), y=(0, 1))``
  or a plate with a hole ``Box(...) - Disk(...)``, sampled by rejection.
* :class:`SpaceTime`: a spatial domain times an interval of time, ``SpaceTime(Disk(), t=(0, 1))``.

The network scales its inputs by the bounding box :attr:`Domain.bounds`.
"""
from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence

import numpy as np

from pinn_lam.errors import ProblemError

Unit = Callable[[int, int], np.ndarray]
#: distance within which a point counts as lying on a boundary (relative to the domain's size)
ON_BOUNDARY = 1e-9


class Boundary:
    """A part of a boundary: ``sample(n, unit) -> (n, d)`` points on it, ``normals(points)`` the
    outward unit normals there (``(n, d)`` numpy array), ``measure`` its length or area."""

    def __init__(self, sample: Callable[[int, Unit], np.ndarray], normals: Callable[[np.ndarray], np.ndarray],
                 measure: float, label: str = "", *, dim: int | None = None,
                 from_unit: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.sample, self.normals, self.measure, self.label = sample, normals, float(measure), label
        #: a parametrisation by the unit cube of dimension ``dim``, where the part has one
        self.dim, self.from_unit = dim, from_unit
        self.owns: Callable[[np.ndarray], np.ndarray] | None = None

    def __repr__(self) -> str:
        return f"Boundary({self.label or 'unnamed'})"


def _union(parts: Sequence[Boundary], label: str) -> Boundary:
    """Parts sampled in proportion to their measure: the first unit column picks the part."""
    parts = [p for p in parts if p.measure > 0]
    if len(parts) == 1:
        return parts[0]
    weights = np.cumsum([p.measure for p in parts]) / sum(p.measure for p in parts)

    dims = {p.dim for p in parts}
    if len(dims) == 1 and None not in dims and all(p.from_unit is not None for p in parts):
        # one draw per point: its first coordinate picks the part, the others place the point on it
        k = dims.pop()

        def sample(n: int, unit: Unit) -> np.ndarray:
            draw = unit(n, 1 + k)
            choice = np.searchsorted(weights, draw[:, 0], side="right").clip(max=len(parts) - 1)
            out = np.zeros((n, len(parts[0].from_unit(draw[:1, 1:])[0])))
            for index, part in enumerate(parts):
                rows = choice == index
                out[rows] = part.from_unit(draw[rows, 1:])
            return out

        return Boundary(sample, lambda points: _piecewise_normals(parts, points), sum(p.measure for p in parts), label)

    def sample(n: int, unit: Unit) -> np.ndarray:
        choice = np.searchsorted(weights, unit(n, 1)[:, 0], side="right").clip(max=len(parts) - 1)
        out = None
        for k, part in enumerate(parts):
            rows = np.flatnonzero(choice == k)
            if len(rows):
                points = part.sample(len(rows), unit)
                out = np.zeros((n, points.shape[1])) if out is None else out
                out[rows] = points
        return out if out is not None else np.zeros((0, 0))

    def normals(points: np.ndarray) -> np.ndarray:
        return _piecewise_normals(parts, points)

    return Boundary(sample, normals, sum(p.measure for p in parts), label)


def _piecewise_normals(parts: Sequence[Boundary], points: np.ndarray) -> np.ndarray:
    out = np.zeros_like(points)
    for part in parts:  # later parts win at shared corners; the normal there is not defined anyway
        owner = getattr(part, "owns", None)
        mask = owner(points) if owner is not None else np.ones(len(points), bool)
        if mask.any():
            out[mask] = part.normals(points[mask])
    return out


class Domain(abc.ABC):
    """Base of every domain. Subclasses set :attr:`variables` and :attr:`bounds`."""

    variables: tuple[str, ...]
    #: bounding box, one ``(low, high)`` per variable
    bounds: tuple[tuple[float, float], ...]
    #: the name of the time variable, or ``None`` for a steady domain
    time: str | None = None

    @abc.abstractmethod
    def sample(self, n: int, unit: Unit) -> np.ndarray:
        """``n`` points in the interior, ``(n, d)``."""

    @abc.abstractmethod
    def contains(self, points: np.ndarray, closed: bool = True) -> np.ndarray:
        """Whether each row of ``points`` lies in the domain (with its boundary when ``closed``)."""

    @abc.abstractmethod
    def boundary(self) -> Boundary:
        """The boundary of space (at every time, for a time-dependent domain)."""

    def initial(self) -> Boundary:
        """The domain at its first time (for initial conditions)."""
        raise ProblemError(f"{self!r} has no time variable, so it has no initial slice")

    def face(self, variable: str, side: str) -> Boundary:
        raise ProblemError(f"{type(self).__name__} has no faces; use boundary(), or a Box")

    def on_boundary(self, points: np.ndarray) -> np.ndarray:
        return self.contains(points, closed=True) & ~self.contains(points, closed=False)

    @property
    def size(self) -> float:
        return max(high - low for low, high in self.bounds)

    def __sub__(self, other: Domain) -> Difference:
        return Difference(self, other)


class Box(Domain):
    r"""The box :math:`\prod_i [a_i, b_i]`: ``Box(x=(0, 1), t=(0, 1))`` (variables in the order
    given), or ``Box([(0, 1), (0, 1)], variables=("x", "t"))``."""

    def __init__(self, bounds: Sequence[Sequence[float]] | None = None, *, variables: Sequence[str] | None = None,
                 time: str | None = "auto", **ranges: Sequence[float]) -> None:
        if bounds is None:
            variables, bounds = tuple(ranges), tuple(ranges.values())
        elif ranges:
            raise ProblemError("give the box as Box(x=(a, b), ...) or as Box(bounds, variables=...), not both")
        variables = tuple(variables or ("x", "y", "z", "w")[:len(bounds)])
        checked = []
        for name, pair in zip(variables, bounds):
            try:
                low, high = (float(v) for v in pair)
            except (TypeError, ValueError):
                raise ProblemError(f"the range of {name} must be a pair (low, high), got {pair!r}") from None
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ProblemError(f"the range of {name} must have finite low < high, got {pair!r}")
            checked.append((low, high))
        if not checked or len(variables) != len(checked):
            raise ProblemError(f"a box needs one (low, high) range per variable, got {len(checked)} ranges "
                               f"for variables {variables}")
        self.variables, self.bounds = variables, tuple(checked)
        if time == "auto":
            time = "t" if "t" in variables and len(variables) > 1 else None
        if time is not None and time not in variables:
            raise ProblemError(f"time variable {time!r} is not one of {variables}")
        self.time = time
        self._low = np.array([b[0] for b in checked])
        self._high = np.array([b[1] for b in checked])

    def __repr__(self) -> str:
        return "Box(" + ", ".join(f"{v}={b}" for v, b in zip(self.variables, self.bounds)) + ")"

    def sample(self, n: int, unit: Unit) -> np.ndarray:
        return self._low + (self._high - self._low) * unit(n, len(self.variables))

    def contains(self, points: np.ndarray, closed: bool = True) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        tol = ON_BOUNDARY * self.size
        if closed:
            return np.all((points >= self._low - tol) & (points <= self._high + tol), axis=1)
        return np.all((points > self._low + tol) & (points < self._high - tol), axis=1)

    def face(self, variable: str, side: str) -> Boundary:
        """The face where ``variable`` is at its ``"low"`` or ``"high"`` end."""
        if variable not in self.variables:
            raise ProblemError(f"no variable {variable!r} in {self!r}; variables are {', '.join(self.variables)}")
        if side not in ("low", "high"):
            raise ProblemError(f"a face's side is 'low' or 'high', got {side!r}")
        i = self.variables.index(variable)
        value = self.bounds[i][0 if side == "low" else 1]
        others = [k for k in range(len(self.variables)) if k != i]
        normal = np.zeros(len(self.variables))
        normal[i] = -1.0 if side == "low" else 1.0
        tol = ON_BOUNDARY * self.size

        def from_unit(u: np.ndarray) -> np.ndarray:
            points = np.empty((len(u), len(self.variables)))
            points[:, i] = value
            if others:
                points[:, others] = self._low[others] + (self._high[others] - self._low[others]) * u
            return points

        measure = float(np.prod(self._high[others] - self._low[others])) if others else 1.0
        part = Boundary(lambda n, unit: from_unit(unit(n, len(others)) if others else np.zeros((n, 0))),
                        lambda p: np.tile(normal, (len(p), 1)), measure, f"{variable}={side}",
                        dim=len(others), from_unit=from_unit)
        part.owns = lambda p: np.abs(np.asarray(p)[:, i] - value) <= tol
        return part

    def boundary(self) -> Boundary:
        space = [v for v in self.variables if v != self.time]
        return _union([self.face(v, s) for v in space for s in ("low", "high")], "boundary")

    def initial(self) -> Boundary:
        if self.time is None:
            return super().initial()
        return self.face(self.time, "low")


class Disk(Domain):
    """The disk of ``radius`` around ``center`` in the variables ``x, y``."""

    def __init__(self, center: Sequence[float] = (0.0, 0.0), radius: float = 1.0,
                 variables: Sequence[str] = ("x", "y")) -> None:
        self.center = np.asarray(center, dtype=np.float64).reshape(-1)
        self.radius = float(radius)
        if len(self.center) != 2 or len(tuple(variables)) != 2:
            raise ProblemError(f"a disk has a 2-D center and two variables, got {tuple(center)} and {tuple(variables)}")
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise ProblemError(f"the radius of a disk must be a finite number > 0, got {radius!r}")
        self.variables = tuple(variables)
        self.bounds = tuple((c - self.radius, c + self.radius) for c in self.center)

    def __repr__(self) -> str:
        return f"Disk(center={tuple(self.center)}, radius={self.radius})"

    def sample(self, n: int, unit: Unit) -> np.ndarray:
        u = unit(n, 2)  # area-uniform: r = R sqrt(u)
        r, angle = self.radius * np.sqrt(u[:, 0]), 2 * math.pi * u[:, 1]
        return self.center + np.column_stack([r * np.cos(angle), r * np.sin(angle)])

    def contains(self, points: np.ndarray, closed: bool = True) -> np.ndarray:
        distance = np.linalg.norm(np.asarray(points, dtype=np.float64) - self.center, axis=1)
        tol = ON_BOUNDARY * self.size
        return distance <= self.radius + tol if closed else distance < self.radius - tol

    def boundary(self) -> Boundary:
        def sample(n: int, unit: Unit) -> np.ndarray:
            angle = 2 * math.pi * unit(n, 1)[:, 0]
            return self.center + self.radius * np.column_stack([np.cos(angle), np.sin(angle)])

        def normals(points: np.ndarray) -> np.ndarray:
            offset = np.asarray(points) - self.center
            return offset / np.linalg.norm(offset, axis=1, keepdims=True)

        return Boundary(sample, normals, 2 * math.pi * self.radius, "circle")


def _rejection(draw: Callable[[int], np.ndarray], keep: Callable[[np.ndarray], np.ndarray], n: int,
               what: str) -> np.ndarray:
    """``n`` points of ``draw(m)`` that pass ``keep``, drawing in rounds sized by the acceptance so far."""
    found: list[np.ndarray] = []
    have, tried, accepted = 0, 0, 0
    for _ in range(64):
        if have >= n:
            break
        rate = max(accepted / tried, 0.01) if tried else 0.5
        m = int(math.ceil((n - have) / rate * 1.1)) + 16
        candidates = draw(m)
        mask = keep(candidates)
        tried, accepted = tried + m, accepted + int(mask.sum())
        found.append(candidates[mask])
        have += int(mask.sum())
    if have < n:
        raise ProblemError(f"could not draw {n} points in {what}: it is (almost) empty")
    return np.concatenate(found)[:n] if found else np.zeros((0, 0))


class Difference(Domain):
    """The points of ``outer`` that are not inside ``hole`` (with the boundary they share)."""

    def __init__(self, outer: Domain, hole: Domain) -> None:
        if tuple(outer.variables) != tuple(hole.variables):
            raise ProblemError(f"a difference needs domains in the same variables, got {outer.variables} "
                               f"and {hole.variables}")
        self.outer, self.hole = outer, hole
        self.variables, self.bounds, self.time = outer.variables, outer.bounds, outer.time

    def __repr__(self) -> str:
        return f"({self.outer!r} - {self.hole!r})"

    def sample(self, n: int, unit: Unit) -> np.ndarray:
        return _rejection(lambda m: self.outer.sample(m, unit), lambda p: ~self.hole.contains(p, closed=True),
                          n, repr(self))

    def contains(self, points: np.ndarray, closed: bool = True) -> np.ndarray:
        return self.outer.contains(points, closed) & ~self.hole.contains(points, closed=not closed)

    def boundary(self) -> Boundary:
        outer, hole = self.outer.boundary(), self.hole.boundary()
        both = _union([outer, hole], "both")

        def keep(points: np.ndarray) -> np.ndarray:
            on_hole = self.hole.on_boundary(points)
            return np.where(on_hole, self.outer.contains(points, closed=False),
                            ~self.hole.contains(points, closed=True))

        def sample(n: int, unit: Unit) -> np.ndarray:
            return _rejection(lambda m: both.sample(m, unit), keep, n, f"the boundary of {self!r}")

        def normals(points: np.ndarray) -> np.ndarray:
            on_hole = self.hole.on_boundary(points)
            out = np.zeros_like(np.asarray(points, dtype=np.float64))
            if (~on_hole).any():
                out[~on_hole] = outer.normals(points[~on_hole])
            if on_hole.any():
                out[on_hole] = -hole.normals(points[on_hole])  # the hole's outward normal points into the domain
            return out

        return Boundary(sample, normals, outer.measure + hole.measure, "boundary")


class SpaceTime(Domain):
    """A spatial domain times the interval of time ``t=(t0, t1)`` (another name by keyword)."""

    def __init__(self, space: Domain, **time: Sequence[float]) -> None:
        if len(time) != 1:
            raise ProblemError(f"give one time interval such as t=(0, 1), got {tuple(time)}")
        (name, (t0, t1)), = time.items()
        interval = Box(**{name: (t0, t1)}, time=None)
        if name in space.variables:
            raise ProblemError(f"the time variable {name!r} is already a variable of {space!r}")
        self.space, self.interval = space, interval
        self.variables = tuple(space.variables) + (name,)
        self.bounds = tuple(space.bounds) + interval.bounds
        self.time = name

    def __repr__(self) -> str:
        return f"SpaceTime({self.space!r}, {self.time}={self.interval.bounds[0]})"

    def sample(self, n: int, unit: Unit) -> np.ndarray:
        return np.column_stack([self.space.sample(n, unit), self.interval.sample(n, unit)])

    def contains(self, points: np.ndarray, closed: bool = True) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        return self.space.contains(points[:, :-1], closed) & self.interval.contains(points[:, -1:], closed)

    def boundary(self) -> Boundary:
        part = self.space.boundary()
        width = self.interval.bounds[0][1] - self.interval.bounds[0][0]

        def sample(n: int, unit: Unit) -> np.ndarray:
            return np.column_stack([part.sample(n, unit), self.interval.sample(n, unit)])

        def normals(points: np.ndarray) -> np.ndarray:
            points = np.asarray(points)
            return np.column_stack([part.normals(points[:, :-1]), np.zeros(len(points))])

        return Boundary(sample, normals, part.measure * width, "boundary")

    def initial(self) -> Boundary:
        t0 = self.interval.bounds[0][0]
        normal = np.zeros(len(self.variables))
        normal[-1] = -1.0
        return Boundary(lambda n, unit: np.column_stack([self.space.sample(n, unit), np.full(n, t0)]),
                        lambda p: np.tile(normal, (len(p), 1)), 1.0, "initial")
