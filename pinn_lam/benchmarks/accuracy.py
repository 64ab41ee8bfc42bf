"""Accuracy of ``pinn-lam solve`` recipes: the error reached and the time taken, per problem and seed.

Run ``pinn-lam bench accuracy`` (Burgers, heat and Poisson, seeds 0 1 2, the defaults), with
``--problems`` any library problems, ``--preset`` a recipe (``quick``, ``accurate``, ...),
``--param NAME=VALUE`` a problem parameter. It prints a Markdown table with the machine and
writes every run's metrics to ``--output`` (JSON). Each run is judged against the target of its
problem and recipe (:func:`target_for`); a problem without one (Allen–Cahn, convection and wave
under their defaults) is recorded, not judged. Exit status 1 when a judged run misses.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HELP = "accuracy and time of 'pinn-lam solve' recipes over problems and seeds, against their targets"


@dataclass(frozen=True)
class Target:
    """A run meets it when ``measure(metrics) <= bound`` within ``seconds`` of wall time."""

    metric: str       #: "rel_l2", "rel_l2_abs" (Schrodinger's |h|) or "unknowns" (largest relative error of the unknowns)
    bound: float
    seconds: float

    def measure(self, metrics: dict[str, Any]) -> float:
        if self.metric == "unknowns":
            return max(abs(float(e)) for e in metrics["unknown_errors"].values())
        return float(metrics[self.metric])

    def describe(self) -> str:
        what = {"rel_l2": "rel. L2", "rel_l2_abs": "rel. L2 of |h|", "unknowns": "unknowns' rel. error"}[self.metric]
        return f"{what} <= {self.bound:g} in <= {self.seconds:g} s"


#: the targets of Burgers, heat and Poisson by preset (None: the defaults)
TARGETS: dict[str, tuple[float, float]] = {"default": (1e-3, 300.0), "quick": (5e-2, 60.0)}
#: (problem, preset) -> target; for burgers-inverse the clean-data one (see target_for)
SPECIFIC: dict[tuple[str, str | None], Target] = {
    ("helmholtz", None): Target("rel_l2", 1e-3, 300.0),
    ("poisson-lshape", None): Target("rel_l2", 1e-2, 300.0),
    ("schrodinger", None): Target("rel_l2_abs", 2e-3, 600.0),
    ("burgers-inverse", None): Target("unknowns", 5e-3, 300.0),
    ("burgers", "accurate"): Target("rel_l2", 1e-5, 600.0),
    ("heat", "accurate"): Target("rel_l2", 1e-6, 300.0),
    ("poisson", "accurate"): Target("rel_l2", 1e-6, 300.0),
    ("allen-cahn", None): Target("rel_l2", 5e-3, 600.0),
    ("wave", None): Target("rel_l2", 5e-3, 600.0),
}
#: convection's targets by its speed beta (other speeds are recorded, not judged)
CONVECTION = {30.0: Target("rel_l2", 5e-3, 300.0), 50.0: Target("rel_l2", 1e-2, 300.0)}
#: the inverse problem's target with noisy data
NOISY_INVERSE = Target("unknowns", 2e-2, 300.0)


def target_for(problem: str, preset: str | None, params: dict[str, Any] | None = None) -> Target | None:
    """The target a run of ``problem`` under ``preset`` with ``params`` is judged by, or ``None``."""
    params = params or {}
    if problem == "burgers-inverse" and preset is None and float(params.get("noise", 0.0)) > 0:
        return NOISY_INVERSE
    if problem == "convection" and preset is None:
        import problems

        return CONVECTION.get(float(problems.get("convection", **params).parameters()["beta"]))
    if (problem, preset) in SPECIFIC:
        return SPECIFIC[(problem, preset)]
    if problem in ("burgers", "heat", "poisson") and (preset or "default") in TARGETS:
        return Target("rel_l2", *TARGETS[preset or "default"])
    return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pinn_lam.cli.params import param

    parser.add_argument("--problems", nargs="+", default=["burgers", "poisson", "heat"], help="problems to solve")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds")
    parser.add_argument("--preset", default=None, help="a preset of the problems (default: their defaults)")
    parser.add_argument("--quick", action="store_true", help="the same as --preset quick")
    parser.add_argument("--param", type=param, action="append", default=[], metavar="NAME=VALUE",
                        help="a problem parameter for every problem, repeatable (e.g. noise=0.01)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: pinn-lam's, as 'pinn-lam solve')")
    parser.add_argument("--output", default="runs/accuracy.json", help="JSON file of all runs' metrics")
    parser.add_argument("--runs", default=None, help="also keep each run's folder under this directory")


def _measured(metrics: dict[str, Any], target: Target | None) -> str:
    if target is not None and target.metric != "rel_l2":
        return f"{target.measure(metrics):.2e}"
    if "unknown_errors" in metrics:
        return f"{max(abs(float(e)) for e in metrics['unknown_errors'].values()):.2e}"
    return f"{metrics['rel_l2_abs']:.2e}" if "rel_l2_abs" in metrics else ""


def run(args: argparse.Namespace) -> int:
    import torch

    from pinn_lam.machine import default_threads
    from pinn_lam.training.outputs import _machine
    from pinn_lam.training.solve import solve

    torch.set_num_threads(default_threads() if args.threads is None else args.threads)
    preset = "quick" if args.quick else args.preset
    params = dict(args.param) or None
    machine = _machine()
    shown = ", ".join(f"{k}={v}" for k, v in (params or {}).items())
    print(f"machine: {machine['cpu']}, {machine['cpu_count']} CPUs, torch {machine['torch']} "
          f"with {machine['torch_threads']} threads; preset: {preset or 'defaults'}{'; ' + shown if shown else ''}")
    print("| problem | seed | rel. L2 vs reference | other measure | max abs | train s | wall s | iterations | stop | target |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    records, ok, judged = [], True, set()
    for name in args.problems:
        target = target_for(name, preset, params)
        for seed in args.seeds:
            start = time.perf_counter()
            out = None if args.runs is None else Path(args.runs) / f"{name}-seed{seed}{'-' + preset if preset else ''}"
            result = solve(name, seed=seed, preset=preset, params=params, output_dir=out, figure=out is not None,
                           overwrite=out is not None)
            wall = time.perf_counter() - start
            m = result.metrics
            if target is None:
                verdict = "recorded"
            else:
                passed = target.measure(m) <= target.bound and wall <= target.seconds
                ok &= passed
                judged.add(f"{name}: {target.describe()}")
                verdict = "met" if passed else "MISSED"
            print(f"| {name} | {seed} | {m['rel_l2']:.2e} | {_measured(m, target)} | {m['max_abs']:.2e} | "
                  f"{m['seconds']:.0f} | {wall:.0f} | {m['iterations']} | {m['stop_reason']} | {verdict} |", flush=True)
            records.append({"problem": name, "seed": seed, "preset": preset, "params": params, "wall_seconds": wall,
                            "target": None if target is None else target.describe(), "metrics": m,
                            "config": result.config})
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "runs": records}, indent=2, default=str) + "\n")
    if judged:
        print(f"targets: {'; '.join(sorted(judged))}: {'met' if ok else 'NOT met'} by every run; wrote {path}")
    else:
        print(f"no target for these problems under this recipe (recorded only); wrote {path}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pinn_lam.benchmarks.accuracy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
