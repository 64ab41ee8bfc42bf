"""Which problems get an automatic reference, and what the solver needs to know about each.

:func:`plan` reads a problem's checked structure (:func:`pinn_lam.pde.spec.describe`: the names
its equation and conditions read) and the places its conditions' points lie, and returns an
:class:`~pinn_lam.pde.auto_evolution.EvolutionPlan` (one space variable and time) or a
:class:`~pinn_lam.pde.auto_steady.SteadyPlan` (one or two space variables, no time). Anything
else is a one-line :class:`ProblemError` that says what is outside the supported classes.
"""
from __future__ import annotations

import numpy as np

from pinn_lam.errors import ProblemError
from pinn_lam.pde.auto_evolution import MAX_SPACE_ORDER, EndCondition, EvolutionPlan
from pinn_lam.pde.auto_steady import SteadyPlan
from pinn_lam.pde.domains import Box, Difference
from pinn_lam.pde.fields import derivative_keys
from pinn_lam.pde.spec import describe

#: points drawn to find where a condition lies
PROBE = 32


def plan(problem) -> EvolutionPlan | SteadyPlan:
    """The plan of ``problem``'s automatic reference (one-line :class:`ProblemError` if none)."""
    spec = describe(problem)
    if spec.unknowns:
        raise ProblemError(f"the solution depends on the unknowns {', '.join(spec.unknowns)} of this inverse problem, "
                           "so there is no automatic reference")
    if any(c.points is not None for c in spec.conditions.values()):
        raise ProblemError("the problem has data conditions; the automatic reference takes initial and boundary "
                           "conditions only")
    domain = problem.domain
    space = [v for v in spec.variables if v != domain.time]
    if domain.time is None:
        if len(space) > 2:
            raise ProblemError(f"steady problems in {len(space)} space dimensions have no automatic reference "
                               "(one or two are supported)")
        if not _boxes(domain):
            raise ProblemError(f"the boundary of {domain!r} does not lie on grid lines; the automatic steady reference "
                               "takes boxes and differences of boxes")
        return SteadyPlan(tuple(space), spec.outputs, spec.equations, derivative_keys(spec.reads["pde"], spec.variables,
                                                                                      spec.outputs))
    if not isinstance(domain, Box) or len(space) != 1:
        raise ProblemError(f"evolution problems have an automatic reference on a Box in one space variable and time; "
                           f"this one is {domain!r}")
    return _evolution(problem, spec, space[0], domain.time)


def _boxes(domain) -> bool:
    if isinstance(domain, Difference):
        return _boxes(domain.outer) and _boxes(domain.hole)
    return isinstance(domain, Box)


def _orders(keys, space: str, time: str) -> list[tuple[int, int]]:
    return [(key.count(space), key.count(time)) for key in keys]


def _evolution(problem, spec, space: str, time: str) -> EvolutionPlan:
    keys = derivative_keys(spec.reads["pde"], spec.variables, spec.outputs)
    orders = _orders(keys, space, time)
    time_order = max((kt for _, kt in orders), default=0)
    space_order = max((ks for ks, _ in orders), default=0)
    if time_order not in (1, 2):
        raise ProblemError(f"the equation has time derivatives of order {time_order}; the automatic reference solves "
                           "equations of first or second order in time")
    mixed = [k for k, (ks, kt) in zip(keys, orders) if kt == time_order and ks > 0]
    if mixed:
        raise ProblemError(f"the equation reads {', '.join(mixed)}; the automatic reference needs the highest time "
                           "derivative without space derivatives")
    if space_order > MAX_SPACE_ORDER:
        raise ProblemError(f"the equation has space derivatives of order {space_order}; the automatic reference "
                           f"takes up to {MAX_SPACE_ORDER}")
    domain, outputs = problem.domain, spec.outputs
    low, high = domain.bounds[spec.variables.index(space)]
    t0, t1 = domain.bounds[spec.variables.index(time)]
    rng = np.random.default_rng(0)
    periodic, ends, values, rates = False, [], {}, {}
    for name, condition in spec.conditions.items():
        points = condition.sample(domain, PROBE, lambda n, k: rng.random((n, k)))
        x, t = points[:, spec.variables.index(space)], points[:, spec.variables.index(time)]
        tol = 1e-9 * max(high - low, t1 - t0)
        read_outputs = sorted({outputs.index(r.partition("_")[0]) for r in spec.reads[name]
                               if r.partition("_")[0] in outputs})
        read_keys = derivative_keys(spec.reads[name], spec.variables, outputs)
        if condition.partner is not None:
            if not np.all(np.abs(x - low) <= tol):
                raise ProblemError(f"condition {name!r} pairs points along {'/'.join(spec.variables)} other than the "
                                   f"ends of {space}; the automatic reference takes Periodic({space!r})")
            periodic = True
        elif np.all(np.abs(t - t0) <= tol):
            mixed = any(time in k and k.strip(time) for k in read_keys)
            if mixed or len(read_outputs) != len(condition.outputs or [0]):
                raise ProblemError(f"initial condition {name!r} reads {', '.join(spec.reads[name])}; the automatic "
                                   "reference takes initial values and rates of the outputs")
            if condition.target is not None and not read_keys:
                values.update({outputs.index(o): name for o in condition.outputs})
            elif read_keys == (time,) and len(read_outputs) == 1:
                rates[read_outputs[0]] = name
            else:
                raise ProblemError(f"initial condition {name!r} reads {', '.join(spec.reads[name])}; the automatic "
                                   "reference takes initial values and rates of the outputs")
        else:
            at_low, at_high = np.abs(x - low) <= tol, np.abs(x - high) <= tol
            if not np.all(at_low | at_high):
                raise ProblemError(f"condition {name!r} lies inside the domain or at a final time; the automatic "
                                   f"reference takes conditions at the first time and at the ends of {space}")
            if len(read_outputs) != 1 or any(time in k for k in read_keys):
                raise ProblemError(f"boundary condition {name!r} reads {', '.join(spec.reads[name])}; the automatic "
                                   "reference takes conditions on one output and its space derivatives")
            end_orders = tuple(sorted({0} | {len(k) for k in read_keys}))
            for side, hit in ((0, at_low), (1, at_high)):
                if hit.any():
                    ends.append(EndCondition(name, read_outputs[0], side, end_orders))
    _check_conditions(outputs, periodic, ends, values, rates, time_order, space_order, space)
    return EvolutionPlan(space, time, outputs, spec.equations, time_order, space_order, periodic, tuple(ends),
                         values, rates)


def _check_conditions(outputs, periodic, ends, values, rates, time_order, space_order, space) -> None:
    missing = [outputs[o] for o in range(len(outputs)) if o not in values]
    if missing:
        raise ProblemError(f"no initial value for {', '.join(missing)}: the automatic reference needs InitialValue "
                           "for every output")
    if time_order == 2:
        missing = [outputs[o] for o in range(len(outputs)) if o not in rates]
        if missing:
            raise ProblemError(f"no initial rate for {', '.join(missing)}: a second-order equation in time needs "
                               "InitialRate for every output")
    if periodic and ends:
        raise ProblemError(f"periodic and boundary conditions on {space} together have no automatic reference")
    if periodic or space_order == 0:
        return
    if space_order != 2:
        raise ProblemError(f"an equation of order {space_order} in {space} needs Periodic({space!r}) for an automatic "
                           "reference (boundary conditions are supported for second order in space)")
    for o, name in enumerate(outputs):
        sides = sorted(e.side for e in ends if e.output == o)
        if sides != [0, 1]:
            raise ProblemError(f"output {name} has {len(sides)} boundary condition(s) at the ends {sides} of {space}; "
                               "the automatic reference needs exactly one at each end")
