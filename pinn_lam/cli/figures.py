"""``pinn-lam figures``: regenerate every figure in ``figures/`` and ``figures/results.md``."""
from __future__ import annotations

import argparse

from pinn_lam.cli.compare import add_scheduler_argument, check_scheduler

HELP = "regenerate figures/: solutions against references, optimizer comparisons, results table"
DESCRIPTION = """\
Train what the figures need (the default solve of every problem; the optimizer comparison on
Burgers with a learning-rate grid and LAM's variants; the stiff-loss study at budget small) in parallel worker
processes, then draw every figure as PNG and PDF and write results.md. About half an hour on a
2-core CPU (docs/compare.md); --scale multiplies the iteration budgets, --quick makes a smoke test of a minute or
two. Finished runs are kept under --runs, so an interrupted call picks up where it stopped."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", default="figures", help="folder for the figures and results.md")
    parser.add_argument("--runs", default=None, help="folder for the runs (unset: runs/figures, or runs/figures-quick with --quick)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every comparison iteration budget")
    parser.add_argument("--quick", action="store_true", help="tiny budgets: checks the pipeline, not the science")
    parser.add_argument("--workers", type=int, help="parallel worker processes (unset: the number of cores)")
    add_scheduler_argument(parser)
    parser.add_argument("--no-resume", action="store_true", help="rerun everything instead of reusing finished runs")


def run(args: argparse.Namespace) -> int:
    from pinn_lam.studies.paper_figures import QUICK, Budget, make_all

    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {args.workers}")
    check_scheduler(args)
    budget = (QUICK if args.quick else Budget()).scaled(args.scale)
    runs = args.runs or ("runs/figures-quick" if args.quick else "runs/figures")
    written = make_all(args.output, runs, budget=budget, workers=args.workers, resume=not args.no_resume,
                       scheduler=args.scheduler)
    print(f"wrote {len(written)} files into {args.output}:")
    for path in written:
        if path.suffix != ".pdf":
            print(f"  {path}")
    return 0
