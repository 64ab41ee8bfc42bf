"""``pinn-lam compare --suite stiff --budget small|full``: the stiff-loss study
(:mod:`pinn_lam.studies.stiff_study`); argument checks and output only."""
from __future__ import annotations

import argparse
from pathlib import Path

from pinn_lam.cli.compare import check_scheduler

#: options of ``compare`` that the study may take (everything else is the budget's)
STUDY_OPTIONS = ("suite", "budget", "output", "workers", "scheduler", "no_resume", "no_warm_up")
#: ``compare`` options whose unset value is not None
_FLAG_DEFAULTS = {"variants": False, "soft_constraints": False, "no_stiffness": False, "hessian_points": 3}


def check_args(args: argparse.Namespace) -> None:
    """One-line errors: --budget without --suite stiff, or with an option the budget sets."""
    if args.suite is None or args.problem is not None:
        raise ValueError("--budget runs the stiff-loss study: give --suite stiff and no problem")
    if args.suite.lower() != "stiff":
        raise ValueError(f"--budget is defined for --suite stiff only, not {args.suite!r}")
    given = [name for name, value in vars(args).items()
             if name not in STUDY_OPTIONS + ("problem", "command") and not name.startswith("_")
             and value is not None and value != _FLAG_DEFAULTS.get(name)]
    if given:
        names = ", ".join("--" + name.replace("_", "-") for name in sorted(given))
        raise ValueError(f"--budget sets the runs itself; drop {names} (allowed with it: --output, --workers, "
                         "--scheduler, --no-resume, --no-warm-up)")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {args.workers}")
    check_scheduler(args)


def run_study(args: argparse.Namespace) -> int:
    from pinn_lam.studies.stiff_report import write_study
    from pinn_lam.studies.stiff_study import get_budget, run_study as run
    from pinn_lam.studies.tables import machine_description

    check_args(args)
    budget = get_budget(args.budget)
    output = Path(args.output or Path("runs") / "compare" / f"stiff-{budget.name}")
    result = run(budget, output, workers=args.workers, resume=not args.no_resume, warm=not args.no_warm_up,
                 scheduler=args.scheduler)
    written = write_study(result, output, machine=machine_description())
    print((output / "results.md").read_text())
    print("wrote: " + ", ".join(str(p) for p in written if p.suffix != ".pdf"))
    failed = sum(r.get("status") != "ok" for records in result.stage2.values() for r in records)
    if failed:
        print(f"{failed} stage-2 run(s) failed (diverged or refused); they are marked in the tables and heat maps")
    return 0
