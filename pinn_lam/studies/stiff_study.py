r"""The stiff-loss study: optimizers x loss weightings x seeds on the stiff suite, each first-order
optimizer at its own best learning rate; ``pinn-lam compare --suite stiff --budget small|full``.

A :class:`StudyBudget` names everything the study runs: the cases of
:data:`pinn_lam.studies.suites.SUITES` ``["stiff"]``, the optimizers, the weighting schemes
(:func:`pinn_lam.training.weighting.parse_weighting`; ``causal`` only on time-dependent cases),
the seeds, the iterations, the learning-rate grid and the network.

**Every run has soft constraints** (``hard_constraints=False``): the initial and boundary
conditions are loss terms, so a weighting scheme has terms to balance and the stiffness
diagnostics compare their gradients. Every run sets its network (the plain MLP, ``network="mlp"``:
convection's default periodic embedding would remove the failure mode under study), its size,
points, float type and weighting explicitly; everything else is the problem's default recipe
(:mod:`pinn_lam.training.presets`, no preset).

**Stage 1** (learning rate): every first-order optimizer (a registry entry without a closure,
or a variant of one) runs with fixed weights at every learning rate of ``lrs`` on the seeds
``0 .. lr_seeds-1``. Its best learning rate on a case is the one with the lowest median final
relative :math:`L^2` error over those seeds (failed runs left out; if every run failed, the
smallest rate of the grid).

**Stage 2** (the comparison): every optimizer x every weighting that applies x every seed, each
first-order optimizer at its own best rate; a phase sequence (``lam+lbfgs``) takes the best rate
of its first first-order phase (LAM's); a quasi-Newton optimizer has none. A stage-2 run with
fixed weights on a stage-1 seed at the chosen rate *is* the stage-1 run (same
:class:`~pinn_lam.studies.compare.RunSpec`, same key) and runs once.

Both stages are ordinary :class:`~pinn_lam.studies.compare.RunSpec` lists given to
:func:`~pinn_lam.studies.compare.run_comparison`: the study resumes after a kill (stage 1 from
disk decides the same rates, hence the same stage-2 keys), runs on ``--scheduler`` unchanged, and a
changed budget changes the keys, so stale runs are never reused.

Diagnostics: every run records its per-term gradient norms 50 times; the seed-0 runs with fixed
weights (so every stage-1 run on seed 0) also estimate the Hessian's top eigenvalue at
``hessian_points`` evenly spaced iterations and at the end.

**Sizing ``small``** (<= 30 minutes on the 2-core development machine, 2 workers of 1 thread).
``small`` has 4 cases x 5 first-order optimizers x 3 rates = 60 stage-1 runs and, in stage 2,
3 x (7 x 4 x 2) + 7 x 3 x 2 = 210 runs of the optimizers other than ``lam+lm`` (20 of them are
stage-1 runs) and 4 x 2 = 8 of ``lam+lm`` (fixed weights only): 258 runs (:func:`run_count`).
Measured on 2026-12-05 with one torch thread on the shared machine (load average 2.4-3.4): 24 of
the first-order and L-BFGS runs (every case, optimizer and weighting, with and without Hessian
estimates), timed one after another around :func:`~pinn_lam.studies.compare.execute` after a
warm-up, took 2.6-7.9 s each, 4.75 s on average, diagnostics and error evaluations included (a
20x3 network on 1024 points in float64 trains at 2-7 ms per iteration); the 250 runs without
``lam+lm``, run by ``pinn-lam figures`` on two workers beside one other 1-thread job, took 11 min
13 s from the first run's start to the last one's end. docs/stiff-study.md has the whole study's time.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from pinn_lam.optim import registry
from pinn_lam.optim.registry import resolve_label
from pinn_lam.studies import suites
from pinn_lam.studies.compare import RunSpec, run_comparison

#: the weighting scheme that applies only to time-dependent cases
TIME_ONLY = ("causal",)


@dataclasses.dataclass(frozen=True)
class StudyBudget:
    """What the study runs (see the module docstring). ``seeds`` and ``lr_seeds`` are counts
    (seeds 0, 1, ...); ``hessian_points`` Hessian estimates per diagnosed run, plus one at the end."""

    name: str
    cases: tuple[str, ...]
    optimizers: tuple[str, ...]
    weightings: tuple[str, ...]
    seeds: int
    iterations: int
    lrs: tuple[float, ...]
    lr_seeds: int = 1
    width: int = 20
    depth: int = 3
    n_collocation: int = 1024
    dtype: str = "float64"
    network: str = "mlp"
    hessian_points: int = 2
    suite: str = "stiff"

    def __post_init__(self) -> None:
        known = {case.name for case in suites.get(self.suite)}
        unknown = [c for c in self.cases if c not in known]
        if not self.cases or unknown:
            raise ValueError(f"budget {self.name!r}: unknown or no cases {unknown}; the {self.suite} suite has "
                             f"{', '.join(sorted(known))}")
        if not self.optimizers or not self.weightings or not self.lrs:
            raise ValueError(f"budget {self.name!r} needs optimizers, weightings and learning rates")
        for label in self.optimizers:
            resolve_label(label)
        if self.weightings[0] != "fixed":
            raise ValueError(f"budget {self.name!r}: the first weighting must be 'fixed' (the learning-rate stage's)")
        if not (1 <= self.lr_seeds <= self.seeds) or self.iterations < 1 or self.hessian_points < 0:
            raise ValueError(f"budget {self.name!r}: need 1 <= lr_seeds <= seeds, iterations >= 1, hessian_points >= 0")
        if any(not lr > 0 for lr in self.lrs):
            raise ValueError(f"budget {self.name!r}: learning rates must be positive, got {self.lrs}")


STIFF_OPTIMIZERS = ("lam", "lam-bc", "lam-layerwise", "adam", "rmsprop", "lbfgs", "lam+lbfgs", "lam+lm")
WEIGHTINGS = ("fixed", "grad-norm", "ntk", "causal")

BUDGETS: dict[str, StudyBudget] = {
    # sized in the module docstring: <= 30 minutes on 2 CPU cores
    "small": StudyBudget("small", cases=("convection-beta30", "wave", "allen-cahn", "helmholtz"),
                         optimizers=STIFF_OPTIMIZERS, weightings=WEIGHTINGS, seeds=2, iterations=1000,
                         lrs=(1e-3, 3e-3, 1e-2), lr_seeds=1),
    # for a cluster or a GPU: every case, 3 seeds (all of them choose the rate), a wider grid
    "full": StudyBudget("full", cases=tuple(case.name for case in suites.get("stiff")), optimizers=STIFF_OPTIMIZERS,
                        weightings=WEIGHTINGS, seeds=3, iterations=5000, lrs=(3e-4, 1e-3, 3e-3, 1e-2, 3e-2),
                        lr_seeds=3, width=32, depth=4, n_collocation=4096, hessian_points=3),
}


def get_budget(name: str) -> StudyBudget:
    if name not in BUDGETS:
        raise ValueError(f"unknown study budget {name!r}; available: {', '.join(BUDGETS)}")
    return BUDGETS[name]


def first_order(label: str) -> bool:
    """Whether ``label`` is one first-order optimizer (or a variant of one): stage 1 tunes its rate."""
    name, _ = resolve_label(label)
    return "+" not in name and not registry.get(name).closure and not registry.get(name).residuals


def time_dependent(case: suites.Case) -> bool:
    from pinn_lam.training.setup import make_problem

    return make_problem(case.problem, case.parameters).domain.time is not None


def least_squares(label: str) -> bool:
    """Whether ``label`` has a least-squares phase (``lm``): it keeps the loss weights fixed and refuses causal ones."""
    name, _ = resolve_label(label)
    return any(registry.get(phase).residuals for phase in name.split("+"))


def weightings_of(budget: StudyBudget, case: suites.Case, label: str | None = None) -> tuple[str, ...]:
    """The budget's weightings that apply to ``case`` (``causal`` needs a time variable) and, given
    ``label``, to that optimizer: one with a least-squares phase runs with ``fixed`` weights only
    (its phase keeps every weight fixed and refuses causal weights, so a balancing scheme would
    act only in the phase before it)."""
    steady = not time_dependent(case)
    applicable = tuple(w for w in budget.weightings if not (steady and w.split(":")[0] in TIME_ONLY))
    return applicable[:1] if label is not None and least_squares(label) else applicable


def cases_of(budget: StudyBudget) -> list[suites.Case]:
    by_name = {case.name: case for case in suites.get(budget.suite)}
    return [by_name[name] for name in budget.cases]


def run_spec(budget: StudyBudget, case: suites.Case, label: str, seed: int, lr: float | None,
             weighting: str) -> RunSpec:
    """The one run of ``label`` with ``weighting`` on ``case``: both stages build runs here, so a
    stage-2 run equal to a stage-1 run has the same key."""
    n = budget.iterations
    diagnosed = seed == 0 and weighting == "fixed" and budget.hessian_points > 0
    options = dict(width=budget.width, depth=budget.depth, n_collocation=budget.n_collocation, dtype=budget.dtype,
                   network=budget.network, weighting=weighting, hard_constraints=False)
    return RunSpec(case.problem, label, seed=seed, lr=lr, iterations=n, params=case.params, case=case.name,
                   eval_every=max(1, n // 50), stiffness_every=max(1, n // 50),
                   hessian_at=tuple(n * k // budget.hessian_points for k in range(budget.hessian_points)) if diagnosed else (),
                   solve_options=tuple(sorted(options.items())))


def stage1_specs(budget: StudyBudget) -> list[RunSpec]:
    """Every first-order optimizer at every rate of the grid, fixed weights, seeds ``< lr_seeds``."""
    return [run_spec(budget, case, label, seed, float(lr), "fixed") for case in cases_of(budget)
            for label in budget.optimizers if first_order(label) for lr in budget.lrs for seed in range(budget.lr_seeds)]


def final_error(record: dict[str, Any]) -> float:
    """A run's final relative L2 error; NaN for a failed run or a non-finite error."""
    if record.get("status") != "ok":
        return math.nan
    value = float(record.get("metrics", {}).get("rel_l2", math.nan))
    return value if math.isfinite(value) else math.nan


def best_learning_rates(records: Iterable[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """``(case, label) -> lr`` with the lowest median final error over seeds among ``records``
    (stage-1 runs); failed runs are left out, and a label whose every run failed gets its
    smallest rate. Ties go to the smaller rate."""
    errors: dict[tuple[str, str], dict[float, list[float]]] = {}
    for record in records:
        spec = record["spec"]
        errors.setdefault((spec["case"], spec["label"]), {}).setdefault(float(spec["lr"]), []).append(final_error(record))
    best = {}
    for key, by_lr in errors.items():
        medians = {lr: float(np.median([e for e in values if math.isfinite(e)]))
                   for lr, values in by_lr.items() if any(math.isfinite(e) for e in values)}
        best[key] = min(medians, key=lambda lr: (medians[lr], lr)) if medians else min(by_lr)
    return best


def learning_rate_of(label: str, case: str, best: dict[tuple[str, str], float]) -> float | None:
    """The stage-2 rate of ``label``: its own best, that of its first first-order phase, or None."""
    if (case, label) in best:
        return best[(case, label)]
    for phase in label.split("+"):
        if first_order(phase):
            if (case, phase) not in best:
                raise ValueError(f"{label} on {case} takes the rate of {phase}, which stage 1 did not tune")
            return best[(case, phase)]
    return None


def stage2_specs(budget: StudyBudget, best: dict[tuple[str, str], float]) -> list[RunSpec]:
    """Every optimizer x weighting x seed on every case, at the rates chosen in stage 1."""
    return [run_spec(budget, case, label, seed, learning_rate_of(label, case.name, best), weighting)
            for case in cases_of(budget) for label in budget.optimizers for weighting in weightings_of(budget, case, label)
            for seed in range(budget.seeds)]


def run_count(budget: StudyBudget) -> int:
    """How many distinct runs the study trains (independent of which rates stage 1 chooses)."""
    tuned = sum(first_order(label) for label in budget.optimizers)
    stage1 = len(budget.cases) * tuned * len(budget.lrs) * budget.lr_seeds
    stage2 = sum(len(weightings_of(budget, case, label)) * budget.seeds
                 for case in cases_of(budget) for label in budget.optimizers)
    return stage1 + stage2 - len(budget.cases) * tuned * budget.lr_seeds


@dataclasses.dataclass
class StudyResult:
    """The records of a finished study: ``stage1`` and ``stage2`` by case name, the chosen rates."""

    budget: StudyBudget
    stage1: dict[str, list[dict[str, Any]]]
    stage2: dict[str, list[dict[str, Any]]]
    best_lrs: dict[tuple[str, str], float]


def _by_case(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        out.setdefault(record["spec"]["case"], []).append(record)
    return out


def run_study(budget: StudyBudget, output_dir, *, log: Callable[[str], None] | None = print,
              **comparison_options) -> StudyResult:
    """Run both stages into ``output_dir/runs`` (``comparison_options`` go to
    :func:`~pinn_lam.studies.compare.run_comparison`: workers, resume, warm, scheduler)."""
    first = stage1_specs(budget)
    if log:
        log(f"stiff study ({budget.name}): stage 1, {len(first)} runs (learning rates); "
            f"{run_count(budget)} runs in all")
    stage1 = run_comparison(first, output_dir, log=log, **comparison_options)
    best = best_learning_rates(stage1)
    second = stage2_specs(budget, best)
    if log:
        log(f"stiff study ({budget.name}): stage 2, {len(second)} runs at the chosen rates")
    stage2 = run_comparison(second, output_dir, log=log, **comparison_options)
    return StudyResult(budget, _by_case(stage1), _by_case(stage2), best)
