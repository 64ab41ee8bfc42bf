"""``pinn-lam compare``: optimizers under one budget on a problem (or the stiff suite): figures and tables."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pinn_lam.cli.params import parse_value

HELP = "compare optimizers (LAM, Adam, RMSprop, L-BFGS, ...) on a problem or a suite: figures and tables"
DESCRIPTION = """\
Train every optimizer with every seed under the same budget (--iterations and/or --time-limit),
in parallel worker processes, and write convergence figures (loss and error against iteration
and wall time, median and min-max band over seeds), a stiffness figure (per-term gradient norms,
the loss Hessian's top eigenvalue), optionally a learning-rate sensitivity figure (LAM against
Adam, --lrs) and LAM's variants (--variants), plus results.csv and results.md.
Each run is saved as it finishes: run the same command again to resume a killed comparison.
--suite stiff --budget small|full runs the stiff-loss study instead: every optimizer under every
loss weighting at its own best learning rate (docs/stiff-study.md)."""

def parse_params(items: list[str] | None) -> dict[str, Any]:
    params = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param takes KEY=VALUE (e.g. nu=0.01/pi), got {item!r}")
        params[key.strip()] = parse_value(value)
    return params


def parse_list(text: str | None, kind=str, what: str = "value") -> list:
    if text is None or not text.strip():
        return []
    try:
        return [kind(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"cannot read {what} list {text!r}; give comma-separated values") from None


def add_scheduler_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT|local:N",
                        help="run on Dask instead of local processes: a running scheduler's address, or local:N for "
                             "a local cluster of N workers (needs pip install 'pinn-lam[dask]'; docs/scale-out.md)")


def check_scheduler(args: argparse.Namespace) -> None:
    """A malformed --scheduler, or one combined with --workers, is a one-line error before any run."""
    if args.scheduler is None:
        return
    from pinn_lam.studies.executors import parse_scheduler

    parse_scheduler(args.scheduler)
    if args.workers is not None:
        raise ValueError("--workers sets local processes; with --scheduler the cluster's workers run (drop one)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("problem", nargs="?", help="problem to compare on (a library problem, see 'pinn-lam list', "
                        "or path/to/script.py:NAME); omit with --suite")
    parser.add_argument("--suite", help="run every case of a suite instead (available: stiff)")
    parser.add_argument("--budget", choices=("small", "full"),
                        help="with --suite stiff: the stiff-loss study (learning rate per optimizer, then optimizers x "
                             "weightings x seeds; docs/stiff-study.md); small: <= 30 min on 2 cores, full: a cluster/GPU")
    parser.add_argument("--optimizers",
                        help="comma-separated optimizers or variants (lam, lam-bc, lam-layerwise, adam, rmsprop, "
                             "sgd, lbfgs, ssbfgs, ssbroyden, lm, or phases like lam+lbfgs, lam+lm; "
                             "default lam,adam,rmsprop,lbfgs)")
    parser.add_argument("--seeds", type=int, help="number of seeds per optimizer (0, 1, ...; default 3)")
    parser.add_argument("--iterations", type=int, help="iteration budget of every run (unset: the problem's default budget)")
    parser.add_argument("--time-limit", type=float, metavar="SECONDS",
                        help="wall-time budget of every run in training seconds (alone: iterations unbounded)")
    parser.add_argument("--param", action="append", metavar="KEY=VALUE",
                        help="problem parameter, repeatable, e.g. --param nu=0.001 or --param nu=0.01/pi")
    parser.add_argument("--lrs", metavar="LR,LR,...",
                        help="learning-rate grid for the sensitivity study of LAM against Adam, e.g. 1e-4,1e-3,1e-2")
    parser.add_argument("--variants", action="store_true", help="also compare LAM's variants (bias correction, layer-wise)")
    parser.add_argument("--output", "-o", help="output folder (unset: runs/compare/<problem or suite>)")
    parser.add_argument("--workers", type=int, help="parallel worker processes (unset: min(cores, runs))")
    add_scheduler_argument(parser)
    parser.add_argument("--no-resume", action="store_true", help="rerun runs already finished in the output folder")
    parser.add_argument("--no-warm-up", action="store_true",
                        help="skip the short untimed run per optimizer with which each worker starts "
                             "(the first timed run of a worker then pays one-off start-up costs)")
    parser.add_argument("--preset", help="training preset of every run (quick)")
    parser.add_argument("--eval-every", type=int,
                        help="iterations between error evaluations (default: a 50th of the iterations)")
    parser.add_argument("--dtype", choices=("float32", "float64"), help="floating-point type of every run")
    parser.add_argument("--width", type=int, help="network width")
    parser.add_argument("--depth", type=int, help="network depth (hidden layers)")
    parser.add_argument("--n-collocation", type=int, help="number of collocation points")
    parser.add_argument("--device", help="device of every run (cpu, cuda, cuda:N)")
    parser.add_argument("--network", help="network of every run, e.g. modified-mlp+periodic+fourier:1 "
                                          "(see pinn-lam solve --help)")
    parser.add_argument("--weighting", help="loss weighting of every run, e.g. grad-norm or causal:eps=1 "
                                            "(see pinn-lam solve --help)")
    parser.add_argument("--soft-constraints", action="store_true",
                        help="keep initial/boundary conditions as loss terms instead of hard constraints "
                             "(the stiffness figure then shows how the terms' gradients compare)")
    parser.add_argument("--no-stiffness", action="store_true",
                        help="skip the stiffness diagnostics (gradient norms, Hessian eigenvalue)")
    parser.add_argument("--hessian-points", type=int, default=3,
                        help="Hessian largest-eigenvalue estimates during training (first seed; one more at the end; 0: none)")


def plans_from_args(args: argparse.Namespace):
    """The comparison plans the options ask for (one per problem instance)."""
    from pinn_lam.studies import suites
    from pinn_lam.studies.compare import plan

    if (args.problem is None) == (args.suite is None):
        raise ValueError("give a problem (see 'pinn-lam list') or --suite NAME, not both")
    params = parse_params(args.param)
    if args.suite and params:
        raise ValueError("--param cannot be combined with --suite (each case sets its own parameters)")
    if args.seeds is not None and args.seeds < 1:
        raise ValueError(f"--seeds must be a positive count, got {args.seeds}")
    if args.hessian_points < 0:
        raise ValueError(f"--hessian-points must be >= 0, got {args.hessian_points}")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {args.workers}")
    check_scheduler(args)
    cases = suites.get(args.suite) if args.suite else [suites.Case(args.problem, args.problem, tuple(params.items()))]
    solve_options = {k: getattr(args, k) for k in ("dtype", "width", "depth", "n_collocation", "device",
                                                        "network", "weighting")
                     if getattr(args, k) is not None}
    if args.soft_constraints:
        solve_options["hard_constraints"] = False
    optimizers = parse_list(args.optimizers or "lam,adam,rmsprop,lbfgs", what="optimizer")
    return [plan(case.problem, optimizers=optimizers, seeds=3 if args.seeds is None else args.seeds,
                 iterations=args.iterations, time_limit=args.time_limit, params=case.parameters,
                 lrs=parse_list(args.lrs, float, "learning-rate"), variants=args.variants, case=case.name,
                 preset=args.preset, eval_every=args.eval_every, stiffness=not args.no_stiffness,
                 hessian_points=args.hessian_points, solve_options=solve_options) for case in cases]


def run(args: argparse.Namespace) -> int:
    if args.budget is not None:
        from pinn_lam.cli.stiff_study import run_study

        return run_study(args)
    from pinn_lam.studies.compare import run_comparison
    from pinn_lam.studies.report import write_report, write_tables
    from pinn_lam.studies.tables import machine_description

    plans = plans_from_args(args)
    from pinn_lam.cli.solve import default_folder

    output = Path(args.output or Path("runs") / "compare" / (args.suite or default_folder(args.problem)))
    specs = [spec for p in plans for spec in p.runs]
    print(f"pinn-lam compare: {len(specs)} runs into {output}")
    results = run_comparison(specs, output, workers=args.workers, resume=not args.no_resume,
                             warm=not args.no_warm_up, scheduler=args.scheduler)
    records = {r["key"]: r for r in results}
    machine = machine_description()
    written = []
    for p in plans:
        written += write_report(p, records, output / p.case if args.suite else output, machine=machine)
    if args.suite:
        written += write_tables(results, output, title=f"suite {args.suite}: optimizer comparison", machine=machine)
    print((output / "results.md").read_text())
    print("wrote: " + ", ".join(str(p) for p in written if p.suffix != ".pdf"))
    failed = [r for r in results if r.get("status") != "ok"]
    if failed:
        print(f"{len(failed)} run(s) failed (diverged or refused); they are counted in the tables")
    return 0
