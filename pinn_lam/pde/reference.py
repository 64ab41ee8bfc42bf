"""Reference solutions: what a trained network is measured against.

A reference has evaluation points and the values of every output there (:meth:`points`,
:meth:`values`), and can be called at other points (interpolation) for figures.

* :class:`Reference`: values on a tensor-product grid (a finite-difference or spectral solution,
  or an exact solution tabulated on a grid), with its own error estimate;
* :class:`PointReference`: values at scattered points (a data file of columns, a masked grid on
  a domain that is not a box);
* :func:`load_reference` reads ``.mat`` (``scipy.io.loadmat``), ``.npz`` and whitespace ``.dat``
  files into either; :func:`tabulate` evaluates a function of the points on a grid over a domain.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pinn_lam.errors import ProblemError


@dataclass
class Reference:
    """A reference solution on a tensor-product grid.

    ``grid`` is a tuple of 1-D arrays, one per variable in order; ``u`` has shape
    ``tuple(len(g) for g in grid)`` for one output, with a last axis of one entry per output for
    several (``outputs`` names them). Calling the reference with an ``(N, d)`` array of points
    interpolates it; ``interpolate`` is supplied by the problem so that it adds no error beyond
    the reference's own. ``error_estimate`` is the estimated relative L2 error of ``u`` (from grid
    refinement, or against the exact solution), ``seconds`` the time it took to compute.
    """

    grid: tuple[np.ndarray, ...]
    u: np.ndarray
    interpolate: Callable[[np.ndarray], np.ndarray] | None = None
    error_estimate: float | None = None
    seconds: float | None = None
    method: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] = ("u",)

    def __post_init__(self) -> None:
        shape = tuple(len(g) for g in self.grid)
        expected = shape if len(self.outputs) == 1 else shape + (len(self.outputs),)
        if self.u.shape != expected:
            raise ProblemError(f"reference values have shape {self.u.shape}, expected {expected} from its grid "
                               f"and outputs {', '.join(self.outputs)}")

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Interpolated values at ``(N, d)`` points: ``(N,)`` for one output, ``(N, m)`` for several."""
        points = _check_points(points, len(self.grid))
        if self.interpolate is not None:
            values = np.asarray(self.interpolate(points))
            return values.reshape(-1) if len(self.outputs) == 1 else values.reshape(len(points), -1)
        from scipy.interpolate import RegularGridInterpolator

        method = "cubic" if all(len(g) >= 4 for g in self.grid) else "linear"
        return RegularGridInterpolator(self.grid, self.u, method=method)(points)

    def points(self) -> np.ndarray:
        """All grid points as an ``(M, d)`` array, in the same (C) order as the values."""
        mesh = np.meshgrid(*self.grid, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)

    def values(self) -> np.ndarray:
        """The values at :meth:`points`: ``(M,)`` for one output, ``(M, m)`` for several."""
        u = np.asarray(self.u, dtype=np.float64)
        return u.reshape(-1) if len(self.outputs) == 1 else u.reshape(-1, len(self.outputs))


@dataclass
class PointReference:
    """Reference values at scattered points: ``points`` ``(M, d)``, ``u`` ``(M,)`` or ``(M, m)``."""

    scattered: np.ndarray
    u: np.ndarray
    error_estimate: float | None = None
    seconds: float | None = None
    method: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] = ("u",)

    def __post_init__(self) -> None:
        self.scattered = np.asarray(self.scattered, dtype=np.float64)
        self.u = np.asarray(self.u, dtype=np.float64)
        if self.scattered.ndim != 2 or len(self.scattered) == 0:
            raise ProblemError(f"reference points must be a non-empty (M, d) array, got shape {self.scattered.shape}")
        expected = (len(self.scattered),) if len(self.outputs) == 1 else (len(self.scattered), len(self.outputs))
        if self.u.reshape(expected if self.u.size == np.prod(expected) else self.u.shape).shape != expected:
            raise ProblemError(f"reference values have shape {self.u.shape}, expected {expected} for "
                               f"{len(self.scattered)} points and outputs {', '.join(self.outputs)}")
        self.u = self.u.reshape(expected)

    @property
    def grid(self) -> None:
        return None

    def points(self) -> np.ndarray:
        return self.scattered

    def values(self) -> np.ndarray:
        return self.u

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Linear interpolation between the scattered points (nearest value outside their hull)."""
        from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator, interp1d

        points = _check_points(points, self.scattered.shape[1])
        if self.scattered.shape[1] == 1:
            order = np.argsort(self.scattered[:, 0])
            return interp1d(self.scattered[order, 0], self.u[order], axis=0, fill_value="extrapolate")(points[:, 0])
        linear = LinearNDInterpolator(self.scattered, self.u)(points)
        missing = np.isnan(linear).reshape(len(points), -1).any(axis=1)
        if missing.any():
            linear[missing] = NearestNDInterpolator(self.scattered, self.u)(points[missing])
        return linear


def _check_points(points, d: int) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != d:
        raise ValueError(f"points must have shape (N, {d}), got {points.shape}")
    return points


def tabulate(function: Callable[[np.ndarray], np.ndarray], domain, outputs: Sequence[str], *,
             points_per_axis: int | None = None, method: str = "", error_estimate: float | None = None):
    """``function(points) -> values`` on a uniform grid over ``domain``'s bounding box: a
    :class:`Reference` for a box, a :class:`PointReference` of the grid points inside otherwise.
    The grid has ``points_per_axis`` points along each variable (default: about 65,536 in all)."""
    d = len(domain.variables)
    n = points_per_axis or max(9, int(round(65536 ** (1 / d))))
    grid = tuple(np.linspace(low, high, n) for low, high in domain.bounds)
    mesh = np.stack([m.ravel() for m in np.meshgrid(*grid, indexing="ij")], axis=1)
    inside = domain.contains(mesh)
    values = np.asarray(function(mesh[inside] if not inside.all() else mesh), dtype=np.float64)
    m = len(outputs)
    if values.shape[0] != int(inside.sum()) or (values.ndim == 2 and values.shape[1] != m) or values.ndim > 2:
        raise ProblemError(f"the reference function returned shape {values.shape} for {int(inside.sum())} points; "
                           f"expected ({int(inside.sum())},{'' if m == 1 else f' {m}'}) for outputs {', '.join(outputs)}")
    if inside.all():
        shape = tuple(len(g) for g in grid) + (() if m == 1 else (m,))
        return Reference(grid, values.reshape(shape), error_estimate=error_estimate, method=method,
                         outputs=tuple(outputs))
    return PointReference(mesh[inside], values, error_estimate=error_estimate, method=method, outputs=tuple(outputs))


def load_arrays(path: str | os.PathLike, variables: Sequence[str], outputs: Sequence[str],
                keys: dict[str, str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(M, d)`` and values ``(M, m)`` from a data file.

    ``.mat`` and ``.npz`` files hold one array per variable and per output, found under the name
    ``keys`` gives (default: the name itself; ``"ARRAY.real"``, ``".imag"`` or ``".abs"`` takes
    a part of a complex array): either 1-D axes of a grid, with each output on the grid (in
    either axis order), or one entry per point. ``.dat`` (and ``.txt``, ``.csv``) files
    are columns separated by white space (or commas), the variables then the outputs, with ``%``
    or ``#`` comment lines.
    """
    path = Path(path)
    if not path.is_file():
        raise ProblemError(f"data file {path} does not exist")
    keys = dict(keys or {})
    unknown = sorted(set(keys) - set(variables) - set(outputs))
    if unknown:
        raise ProblemError(f"keys names {', '.join(unknown)}, which are neither variables ({', '.join(variables)}) "
                           f"nor outputs ({', '.join(outputs)})")
    suffix = path.suffix.lower()
    if suffix in (".dat", ".txt", ".csv"):
        return _columns(path, variables, outputs)
    if suffix == ".mat":
        from scipy.io import loadmat

        arrays = {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
    elif suffix == ".npz":
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    else:
        raise ProblemError(f"data file {path.name}: unknown format {suffix!r}; use .mat, .npz or .dat")

    def take(name: str) -> np.ndarray:
        key = keys.get(name, name)
        base, _, part = key.rpartition(".") if key.endswith((".real", ".imag", ".abs")) else (key, "", "")
        if base not in arrays:
            raise ProblemError(f"data file {path.name} has no array {base!r} for {name} (arrays: "
                               f"{', '.join(sorted(arrays))}); map it with keys={{{name!r}: 'ARRAY'}}")
        array = np.asarray(arrays[base])
        return {"real": np.real, "imag": np.imag, "abs": np.abs}[part](array) if part else array

    axes = [take(v) for v in variables]
    fields = [take(o) for o in outputs]
    if any(np.iscomplexobj(f) for f in fields):
        raise ProblemError(f"data file {path.name}: complex values; name a part as an output, for example "
                           "keys={'u': 'ARRAY.real', 'v': 'ARRAY.imag'}")
    sizes = [a.size for a in axes]
    if all(f.size == sizes[0] for f in fields) and len(set(sizes)) == 1 and not _is_grid(fields[0], sizes):
        points = np.column_stack([a.reshape(-1) for a in axes]).astype(np.float64)
        return points, np.column_stack([f.reshape(-1) for f in fields]).astype(np.float64)
    grid = [a.reshape(-1).astype(np.float64) for a in axes]
    shape = tuple(len(g) for g in grid)
    values = []
    for name, f in zip(outputs, fields):
        f = np.squeeze(f)
        if f.shape == shape:
            values.append(f)
        elif f.ndim == len(shape) and f.shape == shape[::-1]:
            values.append(f.T)
        else:
            raise ProblemError(f"data file {path.name}: {name} has shape {f.shape}, which matches neither the grid "
                               f"{shape} of {', '.join(variables)} nor one value per point")
    mesh = np.stack([m.ravel() for m in np.meshgrid(*grid, indexing="ij")], axis=1)
    return mesh, np.column_stack([v.reshape(-1) for v in values]).astype(np.float64)


def _is_grid(field_: np.ndarray, sizes: list[int]) -> bool:
    """Whether a field is laid out on the grid of the axes (more entries than any one axis)."""
    return len(sizes) > 1 and field_.size == int(np.prod(sizes)) and field_.size != sizes[0]


def _columns(path: Path, variables: Sequence[str], outputs: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    rows = []
    with open(path) as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line or line[0] in "%#":
                continue
            try:
                rows.append([float(v) for v in line.replace(",", " ").split()])
            except ValueError:
                raise ProblemError(f"data file {path.name}, line {number}: not numbers: {line[:60]!r}") from None
    need = len(variables) + len(outputs)
    widths = {len(r) for r in rows}
    if not rows or widths != {need}:
        raise ProblemError(f"data file {path.name} must have {need} columns ({', '.join([*variables, *outputs])}) "
                           f"on every line, found {sorted(widths) or 'no data'}")
    table = np.asarray(rows, dtype=np.float64)
    return table[:, :len(variables)], table[:, len(variables):]


def load_reference(path: str | os.PathLike, variables: Sequence[str], outputs: Sequence[str] = ("u",),
                   keys: dict[str, str] | None = None) -> Reference | PointReference:
    """A reference from a data file (:func:`load_arrays`): a :class:`Reference` when the file
    holds a grid, a :class:`PointReference` otherwise."""
    points, values = load_arrays(path, variables, outputs, keys)
    method = f"data file {Path(path).name}"
    axes = [np.unique(points[:, i]) for i in range(points.shape[1])]
    if int(np.prod([len(a) for a in axes])) == len(points) and len(points) > 1:
        order = np.lexsort(points.T[::-1])
        shape = tuple(len(a) for a in axes) + (() if len(outputs) == 1 else (len(outputs),))
        sorted_values = values[order]
        if np.array_equal(points[order], np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1)):
            return Reference(tuple(axes), sorted_values.reshape(shape), method=method, outputs=tuple(outputs))
    return PointReference(points, values if len(outputs) > 1 else values[:, 0], method=method, outputs=tuple(outputs))
