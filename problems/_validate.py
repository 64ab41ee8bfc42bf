"""Parameter checks shared by the problem modules (each raises a one-line ``ValueError`` that
says what is wrong and what is allowed), and the refinement rules of their references."""
from __future__ import annotations

import math
import numbers
from typing import Any, Callable

import numpy as np


def check_positive(name: str, value: Any) -> float:
    """A finite real number > 0, as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def check_count(name: str, value: Any, minimum: int) -> int:
    """An integer >= ``minimum`` (a count or a seed)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_mode_number(name: str, value: Any) -> int:
    """A positive integer wave number (an integral float such as ``2.0`` is accepted)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"mode number {name} must be a positive integer, got {value!r}")
    if not math.isfinite(value) or value != int(value) or value < 1:
        raise ValueError(f"mode number {name} must be a positive integer, got {value!r}")
    return int(value)


def check_amplitude(name: str, value: Any) -> float:
    """A finite real amplitude."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"amplitude {name} must be a finite number, got {value!r}")
    return float(value)


def check_resolution(value: Any, minimum: tuple[int, ...],
                     from_int: Callable[[int], tuple[int, ...]]) -> tuple[int, ...]:
    """A resolution: a tuple of ``len(minimum)`` integers, each at least its ``minimum``
    (a single int ``n`` is expanded by ``from_int``)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = from_int(int(value))
    allowed = (f"a tuple of {len(minimum)} integers >= {minimum}"
               + ("" if len(minimum) == 1 else " or one integer"))
    if not isinstance(value, (list, tuple)) or len(value) != len(minimum) or any(
            isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in value):
        raise ValueError(f"resolution must be {allowed}, got {value!r}")
    if any(v < m for v, m in zip(value, minimum)):
        raise ValueError(f"resolution {tuple(value)} is too coarse; each entry must be >= {minimum}")
    return tuple(int(v) for v in value)


def refined_intervals(probe_error: float, probe_intervals: int, *, order: float, target: float,
                      minimum: int, maximum: int, multiple: int = 64) -> int:
    r"""The number of intervals :math:`n` at which an error that was ``probe_error`` on
    ``probe_intervals`` falls to ``target``, assuming it scales like :math:`n^{-\mathrm{order}}`:
    rounded up to a ``multiple``, clipped to ``[minimum, maximum]``."""
    if probe_error <= target:
        return minimum
    needed = probe_intervals * (probe_error / target) ** (1.0 / order)
    return int(min(maximum, max(minimum, multiple * math.ceil(needed / multiple))))


def observed_order(coarse_change: float, fine_change: float, cap: float) -> float:
    """The convergence order seen in two successive refinement changes, clipped to ``[0.5, cap]``."""
    if fine_change <= 0 or coarse_change <= 0:
        return cap
    return float(min(cap, max(0.5, math.log2(coarse_change / fine_change))))


def extrapolate_to_fine_grid(problem, coarse: dict, fine: dict, interpolator, n: int, method: str):
    r""":math:`(4u_{2n} - I u_n)/3` on the ``2n`` grid of a second-order scheme's ``(arrays, meta)``
    solutions ``coarse`` (``n``) and ``fine`` (``2n``), :math:`I` = ``interpolator(coarse)``: the
    :math:`h^2` terms cancel. Returns ``(arrays, meta)`` with the error against ``problem``'s exact solution."""
    axes = fine["grid_0"], fine["grid_1"]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    u = (4.0 * fine["u"] - interpolator(coarse)(mesh).reshape(fine["u"].shape)) / 3.0
    exact = problem.exact_values(mesh).reshape(u.shape)
    error = float(np.linalg.norm(u - exact) / np.linalg.norm(exact))
    return {"grid_0": axes[0], "grid_1": axes[1], "u": u}, {
        "error_estimate": error, "method": method, "error_kind": "relative L2 vs exact", "resolution": [n, n]}


def on_standard_grid(problem, arrays: dict, interpolator, axes: tuple, n: int, method: str):
    """``arrays`` (a fine solution) with its ``interpolator``'s values on the grid of ``axes``
    added as ``grid_0, grid_1, u``, and ``meta`` with the relative L2 error against the exact solution there."""
    standard = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    u = interpolator(arrays)(standard).reshape(len(axes[0]), len(axes[1]))
    exact = problem.exact_values(standard).reshape(u.shape)
    error = float(np.linalg.norm(u - exact) / np.linalg.norm(exact))
    return dict(arrays, grid_0=axes[0], grid_1=axes[1], u=u), {
        "error_estimate": error, "method": method, "error_kind": "relative L2 vs exact", "resolution": [n]}


def warn_if_above(reference, target: float, advice: str):
    """``reference``, after a ``UserWarning`` when its error estimate exceeds ``target`` (a
    resolution too coarse for the parameters, or capped by the time the solver may take)."""
    if reference.error_estimate is not None and reference.error_estimate > target:
        import warnings

        warnings.warn(f"the reference's estimated error {reference.error_estimate:.1e} is above {target:.0e} "
                      f"({reference.method}); {advice}", stacklevel=3)
    return reference


def check_sine_modes(modes: Any) -> tuple[tuple[int, float], ...]:
    """A non-empty sequence of ``(k, a_k)`` pairs: positive integer wave numbers, finite amplitudes."""
    if not isinstance(modes, (list, tuple)) or len(modes) == 0:
        raise ValueError(f"modes must be a non-empty sequence of (k, a_k) pairs, got {modes!r}")
    checked = []
    for mode in modes:
        if not isinstance(mode, (list, tuple)) or len(mode) != 2:
            raise ValueError(f"each mode must be a (k, a_k) pair, got {mode!r}")
        checked.append((check_mode_number("k", mode[0]), check_amplitude("a_k", mode[1])))
    return tuple(checked)
