r"""Automatic references: a SciPy finite-difference solution of any problem in a supported class.

The problem's own residual, fed with finite-difference derivatives on a grid, defines the
discrete problem (:mod:`pinn_lam.pde.auto_evolution`: the method of lines for evolution problems
in one space variable, integrated by BDF or, periodic with coefficients free of x and t, by
ETDRK4 in :mod:`pinn_lam.pde.auto_exponential`; :mod:`pinn_lam.pde.auto_steady`: sparse systems
for steady problems in one or two space variables; :mod:`pinn_lam.pde.auto_plan` says which
problems these are). :func:`auto_reference` solves it on grids of :math:`n, 2n, 4n, \dots`
intervals (and, in time, BDF's ``rtol`` divided by 4 per level down to :data:`RTOL_FLOOR`, or
ETDRK4's steps doubled until its time error meets a quarter of the target) and estimates the
error of level :math:`k` by
its change from level :math:`k-1` on the common nodes,

.. math::

    \varepsilon_k = \frac{\|u_k - u_{k-1}\|_2}{\|u_k\|_2}, \qquad
    \hat e_k = \begin{cases} \varepsilon_k/(\rho_k - 1) & \rho_k = \varepsilon_{k-1}/\varepsilon_k > 2
                              \text{ and } \tfrac12 < \rho_k/\rho_{k-1} < 2,\\
                              \varepsilon_k & \text{otherwise}\end{cases}

(the geometric tail is trusted only once two successive ratios agree: a convergence still
speeding up, as in Allen-Cahn's pre-asymptotic levels, would otherwise be taken for a fast one),

refining (:mod:`pinn_lam.pde.auto_refine`) until :math:`\hat e_k` meets ``target`` or the next
level would overrun ``budget`` seconds (``Reference.info["stopped"]`` says which). Two cases
know a lower order than the coarse levels show: a periodic initial value whose ``k``-th derivative jumps where the period
closes caps :math:`\rho_k` at :math:`2^{k+1}` (:mod:`pinn_lam.pde.auto_seam`), and a steady
domain with a re-entrant corner is extrapolated in the corner's exponents instead
(:mod:`pinn_lam.pde.auto_corner`). Results are cached
(:func:`pinn_lam.pde.cache.cached`), keyed by the problem's name and parameters, the source of its
residual and a fingerprint of its equation and conditions evaluated at fixed points.
"""
from __future__ import annotations

import hashlib
import inspect
import math
import time as clock
from typing import Any

import numpy as np
import torch

from pinn_lam.errors import ProblemError
from pinn_lam.pde import auto_corner, auto_evolution, auto_exponential, auto_refine, auto_seam, auto_steady
from pinn_lam.pde.auto_evolution import EvolutionPlan, GridFields
from pinn_lam.pde.auto_plan import plan as make_plan
from pinn_lam.pde.cache import cached
from pinn_lam.pde.fields import AutogradFields, Fields
from pinn_lam.pde.reference import PointReference, Reference

#: bump when the automatic solvers change, so old cache entries are not reused
VERSION = "auto-4"
#: the error the refinement aims at (relative L2) and the seconds it may take, by default
TARGET, BUDGET = 1e-5, 30.0
#: the largest estimated error with which a problem without a reference gets the automatic one
DEFAULT_ACCEPTS = 1e-3
#: stencil width (7 points: sixth order for first and second derivatives in the interior)
WIDTH = 7
#: first grid (intervals along space, or along the longest side) and the largest one tried
START, LIMIT = {"evolution": 32, "steady": 16}, {"evolution": 8192, "steady": 1024}
#: output times of an evolution reference, and at most this many space points in its grid
TIMES, OUTPUT_POINTS = 101, 257
#: BDF's smallest tolerance: below it the Newton iterations meet rounding, and the estimated Jacobians
#: are re-evaluated erratically (one level's time can change several times over with the last bits of f)
RTOL_FLOOR = 1e-10
#: the time integrators of evolution problems (``"auto"``: ETDRK4 where it applies, else BDF)
INTEGRATORS = ("auto", "etdrk4", "bdf")
#: the most output times an evolution reference stores (doubling from TIMES while the spline in time needs it)
MAX_TIMES = 1601


def checked_plan(problem) -> EvolutionPlan | auto_steady.SteadyPlan:
    """The plan of ``problem``, checked on a coarse grid: the evolution equation affine in its
    highest time derivative, the steady one linear, its boundary on grid lines with Dirichlet
    values everywhere (one-line :class:`ProblemError` otherwise)."""
    plan = make_plan(problem)
    if isinstance(plan, EvolutionPlan):
        t0 = problem.domain.bounds[problem.variables.index(plan.time)][0]
        coarse = auto_evolution.Semidiscrete(problem, plan, START["evolution"], WIDTH)
        state = coarse.full(t0, auto_evolution.initial_state(coarse, _initial(problem, plan)))
        auto_evolution.check_affine(coarse, state, t0)
    else:
        grid = auto_steady.MaskedGrid(problem.domain, START["steady"])
        points = grid.points[~grid.boundary]
        auto_steady.linearization(problem, plan, points, np.zeros((len(points), len(plan.outputs), len(plan.keys) + 1)))
        auto_steady.dirichlet_values(problem, plan, grid)
    return plan


def unsupported_reason(problem) -> str | None:
    """Why ``problem`` has no automatic reference (one line), or ``None`` if it has one."""
    try:
        checked_plan(problem)
    except ProblemError as error:
        return str(error)
    except Exception as error:  # a user's function failing on grid fields: say so, in one line
        return f"the automatic reference failed: {type(error).__name__}: {error}".splitlines()[0]
    return None


def default_reference(problem, cache_dir: str | None = None) -> Reference | PointReference | None:
    """The automatic reference where ``problem`` is in a supported class and the estimate of
    its error is at most :data:`DEFAULT_ACCEPTS`, else ``None`` (a run then says why, from
    :func:`unsupported_reason`)."""
    try:
        reference = auto_reference(problem, cache_dir=cache_dir)
    except Exception:  # a reference nobody asked for must never stop the run; unsupported_reason says why
        return None
    return reference if reference.error_estimate <= DEFAULT_ACCEPTS else None


def auto_reference(problem, *, target: float = TARGET, budget: float = BUDGET, width: int = WIDTH,
                   integrator: str = "auto", cache_dir: str | None = None) -> Reference | PointReference:
    """The automatic reference of ``problem`` (one-line :class:`ProblemError` for a problem
    outside the supported classes), from the cache or computed. ``integrator`` (evolution
    problems): ``"etdrk4"`` the exponential integrator (periodic problems whose linearization
    depends on neither x nor t), ``"bdf"`` the method of lines with BDF, ``"auto"`` the first
    where it applies, else the second."""
    if not (0 < target < 1) or not budget > 0:
        raise ValueError(f"target must be in (0, 1) and budget > 0 seconds, got target={target}, budget={budget}")
    if integrator not in INTEGRATORS:
        raise ValueError(f"integrator must be one of {', '.join(INTEGRATORS)}, got {integrator!r}")
    plan = checked_plan(problem)
    key = {"parameters": problem.parameters(), "problem": fingerprint(problem), "target": target, "budget": budget,
           "width": width, "integrator": integrator}
    kind = "evolution" if isinstance(plan, EvolutionPlan) else "steady"
    compute = (lambda: _evolution(problem, plan, target, budget, width, integrator)) if kind == "evolution" else \
        (lambda: _steady(problem, plan, target, budget, width))
    arrays, meta = cached(f"{problem.name}-auto", key, "auto", VERSION, compute, cache_dir)
    info = {k: v for k, v in meta.items() if k not in ("error_estimate", "seconds", "method")}
    common = {"error_estimate": meta["error_estimate"], "seconds": meta.get("seconds"), "method": meta["method"],
              "info": info, "outputs": tuple(problem.outputs)}
    m = len(problem.outputs)
    if "scattered" in arrays:
        return PointReference(arrays["scattered"], arrays["u"] if m > 1 else arrays["u"][:, 0], **common)
    grid = tuple(arrays[f"grid_{i}"] for i in range(len(problem.variables)))
    u = arrays["u"] if m > 1 else arrays["u"][..., 0]
    return Reference(grid, u, interpolate=_interpolator(arrays, m), **common)


def _source(problem) -> str:
    function = getattr(problem, "_equation", None) or type(problem).pde
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return getattr(function, "__qualname__", repr(function))


def fingerprint(problem) -> str:
    """A hash of the residual's source and of the equation's and conditions' values for a fixed
    smooth function at fixed points (it tells apart problems whose functions capture different values)."""
    rng = np.random.default_rng(11)

    def unit(n: int, k: int) -> np.ndarray:
        return rng.random((n, k))

    digest = hashlib.sha256(_source(problem).encode())

    def smooth(points: np.ndarray, normals=None) -> AutogradFields:
        x = torch.as_tensor(points, dtype=torch.float64).requires_grad_(True)
        weights = torch.linspace(0.3, 1.1, x.shape[1] * len(problem.outputs), dtype=torch.float64)
        values = torch.sin(x @ weights.reshape(x.shape[1], -1) + 0.2)
        normal = None if normals is None else torch.as_tensor(normals, dtype=torch.float64)
        return AutogradFields(x, values, problem.variables, problem.outputs, normal=normal, time=problem.domain.time)

    def add(value) -> None:
        parts = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else [value]
        for part in parts:
            digest.update(np.round(part.detach().numpy(), 12).tobytes())

    add(problem.pde(smooth(problem.domain.sample(8, unit))))
    for name, condition in problem.condition_map().items():
        digest.update(name.encode())
        points = condition.sample(problem.domain, 8, unit)[:8]
        if condition.partner is None:
            add(condition.residual(smooth(points, condition.normals(problem.domain, points))))
    return digest.hexdigest()[:20]


def agreement(reference, other) -> float:
    """The relative L2 difference of ``reference`` (interpolated) from ``other`` at ``other``'s points."""
    values = np.asarray(other.values(), dtype=np.float64).reshape(len(other.points()), -1)
    mine = np.asarray(reference(other.points()), dtype=np.float64).reshape(values.shape)
    return auto_refine.relative_change(mine, values)


# -- evolution problems ------------------------------------------------------------------------
def _initial(problem, plan: EvolutionPlan):
    """``initial(output, condition, x)``: the node values a value or rate condition gives at t0."""
    t0 = problem.domain.bounds[problem.variables.index(plan.time)][0]
    conditions = problem.condition_map()

    def initial(output: int, name: str, x: np.ndarray) -> np.ndarray:
        columns = {plan.space: x, plan.time: np.full(len(x), t0)}
        points = torch.as_tensor(np.column_stack([columns[v] for v in problem.variables]))
        condition = conditions[name]
        if condition.target is not None:
            values = condition.target(Fields(points, problem.variables, (), time=plan.time))
            values = torch.as_tensor(values).detach().numpy().reshape(len(x), -1)
            return values[:, list(condition.outputs).index(plan.outputs[output])]
        m, both = len(plan.outputs), points.repeat(2, 1)
        rate = np.zeros((2 * len(x), m))
        rate[len(x):, output] = 1.0
        d = GridFields(both, torch.zeros(2 * len(x), m, dtype=torch.float64), {plan.time: torch.as_tensor(rate)},
                       problem.variables, plan.outputs, time=plan.time)
        r = condition.residual(d).detach().numpy()[:, 0]
        return -r[:len(x)] / (r[len(x):] - r[:len(x)])

    return initial


def _evolution(problem, plan: EvolutionPlan, target: float, budget: float, width: int, integrator: str = "auto"):
    t0, t1 = problem.domain.bounds[problem.variables.index(plan.time)]
    times = np.linspace(t0, t1, TIMES)
    initial = _initial(problem, plan)
    began = clock.perf_counter()
    exponential = integrator == "etdrk4" or (integrator == "auto" and plan.periodic)
    if exponential and not auto_exponential.eligible(problem, plan, width, initial, times):
        if integrator == "etdrk4":
            raise ProblemError("the exponential integrator needs a periodic problem whose linearization does not "
                               "depend on x or t (a block-circulant Jacobian); use integrator='bdf'")
        exponential = False
    seam = None
    if plan.periodic:
        seam = auto_seam.seam_order(lambda x: np.column_stack([initial(o, plan.initial_values[o], x)
                                                               for o in range(len(plan.outputs))]),
                                    problem.domain.bounds[problem.variables.index(plan.space)])
    max_ratio = math.inf if seam is None else 2.0 ** seam
    solved = _solve_exponential if exponential else _solve_bdf
    x, times, u, n, estimate, changes, stopped, method = solved(problem, plan, target, budget, width, times, initial,
                                                                 max_ratio, began)
    if plan.periodic:
        high = problem.domain.bounds[problem.variables.index(plan.space)][1]
        x, u = np.r_[x, high], np.concatenate([u, u[:1]], axis=0)
    stride = max(1, -(-(len(x) - 1) // (OUTPUT_POINTS - 1)))
    meta = {"error_estimate": estimate, "method": f"{method}; {stopped}",
            "error_kind": "change from the grid and tolerance before", "stopped": stopped, "changes": changes,
            "intervals": n, "seam_order": seam}
    axes = [x[::stride], times] if plan.space == problem.variables[0] else [times, x[::stride]]
    out = u[::stride] if plan.space == problem.variables[0] else np.swapaxes(u[::stride], 0, 1)
    return {"grid_0": axes[0], "grid_1": axes[1], "u": out, "fine_x": x, "fine_t": times, "fine_u": u,
            "space_first": np.array(plan.space == problem.variables[0])}, meta


def _solve_bdf(problem, plan, target, budget, width, times, initial, max_ratio, began):
    """The method of lines with BDF, the tolerance divided by 4 per level; then more output times
    while the spline in time needs them."""
    t0, t1 = times[0], times[-1]

    def rtol(k: int) -> float:
        return max(target / 100 / 4 ** k, RTOL_FLOOR)

    def level(n: int, k: int, deadline: float):
        return auto_evolution.solve(problem, plan, n, width, times, rtol(k), initial, deadline)

    (x, u), n, estimate, changes, stopped = auto_refine.refine(level, lambda r: r[1][::2], target, budget,
                                                               START["evolution"], LIMIT["evolution"], max_ratio)
    k = round(np.log2(n / START["evolution"]))
    # enough output times that the quintic spline in time keeps the estimate (an oscillating phase needs more)
    in_time = _time_interpolation_error(times, u)
    while in_time > target / 4 and len(times) < MAX_TIMES and clock.perf_counter() - began < budget:
        times = np.linspace(t0, t1, 2 * len(times) - 1)
        try:
            x, u = auto_evolution.solve(problem, plan, n, width, times, rtol(k), initial, began + 2.0 * budget)
        except RuntimeError:
            break
        in_time = _time_interpolation_error(times, u)
    method = (f"automatic method of lines: {width}-point FD{' periodic' if plan.periodic else ''}, {n} intervals "
              f"in {plan.space}, BDF rtol={rtol(k):.1e}")
    return x, times, u, n, estimate + in_time, changes, stopped, method


def _solve_exponential(problem, plan, target, budget, width, times, initial, max_ratio, began):
    """ETDRK4 (:mod:`pinn_lam.pde.auto_exponential`) with its time error at most ``target / 4`` per
    level; the fewest output times of the finest run the spline in time needs."""
    runs: dict[int, auto_exponential.Run] = {}

    def level(n: int, k: int, deadline: float):
        steps = max((r.steps for r in runs.values()), default=0)
        run = auto_exponential.solve(problem, plan, n, width, times, initial, target / 4, steps, deadline)
        runs[n] = run
        return run.x, run.u

    (x, _), n, estimate, changes, stopped = auto_refine.refine(level, lambda r: r[1][::2], target, budget,
                                                               START["evolution"], LIMIT["evolution"], max_ratio)
    run = runs[n]
    stride = (len(run.dense_times) - 1) // (TIMES - 1)
    while True:  # the fewest output times (TIMES, 2 TIMES - 1, ...) whose spline in time meets target / 4
        in_time = _time_interpolation_error(run.dense_times[::stride], run.dense[:, ::stride])
        if in_time <= target / 4 or stride == 1:
            break
        stride //= 2
    method = (f"automatic exponential integrator: {width}-point FD periodic, {n} intervals in {plan.space}, "
              f"ETDRK4 with {run.steps} steps")
    return (x, run.dense_times[::stride], run.dense[:, ::stride], n, estimate + run.time_error + in_time, changes,
            stopped, method)


def _time_interpolation_error(times: np.ndarray, u: np.ndarray) -> float:
    """The relative L2 error of a quintic spline in time through ``u`` (``(x, t, m)``) at ``times``,
    estimated from the spline through every other time at the others, divided by :math:`2^5`
    (halving the spacing divides a quintic spline's error by about :math:`2^6`)."""
    from scipy.interpolate import make_interp_spline

    if len(times) < 13:
        return 0.0
    half = make_interp_spline(times[::2], u[:, ::2], k=5, axis=1)(times[1::2])
    return float(np.linalg.norm(half - u[:, 1::2]) / max(np.linalg.norm(u[:, 1::2]), 1e-300)) / 2 ** 5


def _interpolator(arrays: dict[str, np.ndarray], m: int):
    from scipy.interpolate import RectBivariateSpline

    if "fine_u" not in arrays:
        if len([k for k in arrays if k.startswith("grid_")]) != 2:
            return None
        grid, u = (arrays["grid_0"], arrays["grid_1"]), arrays["u"]
        splines = [RectBivariateSpline(*grid, u[:, :, o], kx=5, ky=5, s=0) for o in range(m)]
        return lambda points: _columns([s.ev(points[:, 0], points[:, 1]) for s in splines])
    x, t, u = arrays["fine_x"], arrays["fine_t"], arrays["fine_u"]
    splines = [RectBivariateSpline(x, t, u[:, :, o], kx=5, ky=5, s=0) for o in range(m)]
    first, second = (0, 1) if bool(arrays["space_first"]) else (1, 0)

    return lambda points: _columns([s.ev(points[:, first], points[:, second]) for s in splines])


def _columns(values: list[np.ndarray]) -> np.ndarray:
    return values[0] if len(values) == 1 else np.column_stack(values)


# -- steady problems ---------------------------------------------------------------------------
def _steady(problem, plan, target: float, budget: float, width: int):
    def level(n: int, k: int, deadline: float):
        return auto_steady.solve(problem, plan, n, width)

    alpha = auto_corner.corner_exponent(problem.domain, auto_steady.MaskedGrid(problem.domain, START["steady"]))
    if alpha is not None:
        return _steady_with_corner(problem, plan, target, budget, width, alpha)

    def restrict(result):  # the values at the nodes of the grid one level coarser
        grid, u = result
        return auto_corner.on_nodes(grid, u, tuple(a[::2] for a in grid.axes))

    (grid, u), n, estimate, changes, stopped = auto_refine.refine(level, restrict, target, budget, START["steady"],
                                                                  LIMIT["steady"])
    method = f"automatic sparse solve: {width}-point FD on {n} intervals, splu; {stopped}"
    meta = {"error_estimate": estimate, "method": method, "error_kind": "change from the grid before",
            "stopped": stopped, "changes": changes, "intervals": n}
    if grid.inside.all():
        shape = grid.shape + (u.shape[1],)
        arrays: dict[str, Any] = {f"grid_{i}": a for i, a in enumerate(grid.axes)}
        arrays["u"] = u.reshape(shape)
        return arrays, meta
    return {"scattered": grid.points, "u": u}, meta


def _steady_with_corner(problem, plan, target: float, budget: float, width: int, alpha: float):
    """The extrapolated solution of a domain with a re-entrant corner (:mod:`pinn_lam.pde.auto_corner`)."""
    result = auto_corner.refine(lambda n: auto_steady.solve(problem, plan, n, width), alpha, target, budget,
                                START["steady"], LIMIT["steady"], auto_refine.estimate)
    n, stopped = result["n"], result["stopped"]
    orders = f"h^({2 * alpha:.4g}) and h^({3 * alpha:.4g})"
    extrapolated = bool(result["changes"])
    method = (f"automatic sparse solve: {width}-point FD on {n // 4}, {n // 2} and {n} intervals, splu, extrapolated in "
              f"{orders} (re-entrant corner, exponent {alpha:.4g}); {stopped}" if extrapolated else
              f"automatic sparse solve: {width}-point FD on {n} intervals, splu; {stopped}")
    kind = ("change from the extrapolation one grid coarser, with its geometric tail once two ratios agree"
            if extrapolated else "change from the grid before")
    meta = {"error_estimate": result["estimate"], "method": method, "error_kind": kind, "stopped": stopped,
            "changes": result["changes"], "raw_changes": result["raw_changes"], "intervals": n,
            "corner_exponent": alpha, "expected_order": 2 * alpha,
            "observed_order": auto_corner.observed_order(result["raw_changes"])}
    return {"scattered": result["grid"].points, "u": result["u"]}, meta
