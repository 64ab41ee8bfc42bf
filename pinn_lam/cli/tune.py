"""``pinn-lam tune PROBLEM``: search the learning rate (and more) with Optuna; write the best settings."""
from __future__ import annotations

import argparse
from pathlib import Path

from pinn_lam.cli.compare import add_scheduler_argument, check_scheduler, parse_list, parse_params

HELP = "search an optimizer's learning rate (and decay, width, depth, points, weighting) with Optuna"
DESCRIPTION = """\
Train PROBLEM many times with settings drawn by Optuna's TPE sampler: the learning rate on a log
scale, and the settings named by --search. Each trial reports its error at every evaluation and
a median pruner stops trials that fall behind. Writes best.toml (for 'pinn-lam solve --config'),
trials.csv, and history/importance plots (PNG and PDF) to the output folder. Several processes or
machines given the same --storage and --study share one study (docs/scale-out.md). Needs
pip install 'pinn-lam[tune]'."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from pinn_lam.studies.tune import SPACE

    ranges = "; ".join(f"{name} {low:g}..{high:g}" for name, (_, _, low, high) in SPACE.items())
    parser.add_argument("problem", help="a library problem (see 'pinn-lam list') or path/to/script.py:NAME")
    parser.add_argument("--optimizer", default="lam", help="optimizer whose settings are searched (lam, adam, ...)")
    parser.add_argument("--search", default="lr", metavar="NAME,NAME,...",
                        help=f"what to search, always with lr: {', '.join(SPACE)} "
                             f"(default ranges, log scale: {ranges})")
    parser.add_argument("--range", action="append", metavar="NAME=LOW,HIGH",
                        help="search range of one searched setting, repeatable, e.g. --range lr=1e-4,1e-2")
    parser.add_argument("--trials", type=int, default=20, help="finished trials the study should hold")
    parser.add_argument("--iterations", type=int, help="iterations of every trial (unset: the preset's total)")
    parser.add_argument("--preset", help="training preset of every trial (quick)")
    parser.add_argument("--param", action="append", metavar="KEY=VALUE", help="problem parameter, repeatable")
    parser.add_argument("--seed", type=int, default=0, help="seed of every trial's training and of the sampler")
    parser.add_argument("--eval-every", type=int, help="iterations between error evaluations (the pruner's steps)")
    parser.add_argument("--dtype", choices=("float32", "float64"), help="floating-point type of every trial")
    parser.add_argument("--soft-constraints", action="store_true",
                        help="conditions as loss terms (needed to search 'weighting')")
    parser.add_argument("--startup-trials", type=int, default=5,
                        help="random trials before TPE, and complete trials before the pruner prunes")
    parser.add_argument("--warmup", type=float, default=0.25, metavar="FRACTION",
                        help="fraction of the iterations before which no trial is pruned")
    parser.add_argument("--no-prune", action="store_true", help="train every trial to the end")
    parser.add_argument("--storage", help="journal file or RDB URL (sqlite:///tune.db, postgresql://...) of the "
                                          "study (unset: OUTPUT/study.journal)")
    parser.add_argument("--study", help="study name (unset: PROBLEM-OPTIMIZER)")
    parser.add_argument("--output", "-o", help="output folder (unset: runs/tune/PROBLEM-OPTIMIZER)")
    parser.add_argument("--workers", type=int, help="parallel local worker processes (unset: 1, this process)")
    add_scheduler_argument(parser)
    parser.add_argument("--threads", type=int, help="torch threads of every trial (unset: cores // parallel trials)")


def parse_ranges(items: list[str] | None) -> tuple[tuple[str, tuple[float, float]], ...]:
    ranges = []
    for item in items or []:
        name, sep, bounds = item.partition("=")
        values = parse_list(bounds, float, "range")
        if not sep or len(values) != 2:
            raise ValueError(f"--range takes NAME=LOW,HIGH (e.g. lr=1e-4,1e-2), got {item!r}")
        ranges.append((name.strip(), (values[0], values[1])))
    return tuple(ranges)


def search_from_args(args: argparse.Namespace):
    """The :class:`~pinn_lam.studies.tune.Search` the options describe."""
    from pinn_lam.optim.registry import resolve_label
    from pinn_lam.studies.tune import Search, condition_terms
    from pinn_lam.training import presets
    from pinn_lam.training.setup import make_problem

    params = parse_params(args.param)
    make_problem(args.problem, params or None)  # an unknown problem or parameter fails before any trial
    resolve_label(args.optimizer)
    names = tuple(dict.fromkeys(["lr"] + parse_list(args.search, what="search")))
    iterations = args.iterations
    if iterations is None:
        budget = presets.resolve(args.problem, args.preset)["iterations"]
        iterations = budget if isinstance(budget, int) else int(sum(budget))
    if iterations < 1:
        raise ValueError(f"--iterations must be a positive integer, got {iterations}")
    fixed = {"iterations": iterations, "seed": args.seed, "preset": args.preset, "eval_every": args.eval_every,
             "dtype": args.dtype, "params": params or None}
    if args.soft_constraints:
        fixed["hard_constraints"] = False
    conditions = condition_terms(args.problem, params or None) if args.soft_constraints else ()
    return Search(args.problem, args.optimizer, names, parse_ranges(args.range), conditions,
                  tuple((k, v) for k, v in fixed.items() if v is not None))


def run(args: argparse.Namespace) -> int:
    from pinn_lam.cli.solve import default_folder
    from pinn_lam.studies.tune import require_optuna, spread, tune
    from pinn_lam.studies.tune_outputs import write_best, write_plots, write_trials_csv
    from pinn_lam.training import presets

    optuna = require_optuna()
    for name in ("trials", "workers", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be a positive integer, got {value}")
    if args.startup_trials < 0:
        raise ValueError(f"--startup-trials must be >= 0, got {args.startup_trials}")
    if not 0 <= args.warmup < 1:
        raise ValueError(f"--warmup is a fraction of the iterations in [0, 1), got {args.warmup}")
    check_scheduler(args)
    search = search_from_args(args)
    name = f"{default_folder(args.problem)}-{args.optimizer}"
    output = Path(args.output or Path("runs") / "tune" / name)
    output.mkdir(parents=True, exist_ok=True)
    storage = args.storage or str((output / "study.journal").resolve())
    iterations = dict(search.fixed)["iterations"]
    eval_every = args.eval_every or presets.resolve(args.problem, args.preset)["eval_every"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the command prints one line per trial itself
    print(f"pinn-lam tune: {args.trials} trials of {args.optimizer} on {args.problem} "
          f"(searching {', '.join(search.names)}; study {args.study or name!r} in {storage})")
    study = tune(search, trials=args.trials, storage=storage, study_name=args.study or name, seed=args.seed,
                 startup_trials=args.startup_trials, warmup_steps=max(int(args.warmup * iterations), eval_every),
                 prune=not args.no_prune, scheduler=args.scheduler, workers=args.workers or 1, threads=args.threads)
    states = [t.state.name.lower() for t in study.trials]
    values = [t.value for t in study.trials if t.value is not None and t.state.name == "COMPLETE"]
    print(f"{len(states)} trials: " + ", ".join(f"{states.count(s)} {s}" for s in dict.fromkeys(states)))
    written = [write_trials_csv(output / "trials.csv", study)]
    if not values:
        print("no trial completed: no best settings")
        print("wrote: " + ", ".join(map(str, written)))
        return 1
    written.append(write_best(output / "best.toml", search, study))
    plots, skipped = write_plots(output, study)
    written += plots
    s = spread(values)
    best = study.best_trial
    print(f"best: trial {best.number}, relative L2 error {best.value:.3e} with "
          + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in best.params.items()))
    print(f"final error over the complete trials: min {s['min']:.3e}, median {s['median']:.3e}, "
          f"max {s['max']:.3e} (max/min {s['ratio']:.3g})")
    for reason in skipped:
        print(f"not drawn: {reason}")
    print("wrote: " + ", ".join(str(p) for p in written if p.suffix != ".pdf"))
    return 0
