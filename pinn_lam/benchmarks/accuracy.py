"""Accuracy of ``pinn-lam solve`` with its defaults: relative L2 error and time, per problem and seed.

Run ``python -m pinn_lam.benchmarks.accuracy`` (all problems, seeds 0 1 2, the defaults) or
``python -m pinn_lam.benchmarks.accuracy --quick``; it prints a Markdown table, with the
machine, and writes every run's metrics to ``--output`` (JSON). These are the numbers that
``docs/solve.md`` quotes against the targets (default runs: rel. L2 <= 1e-3 in <= 5 min each;
``--quick``: <= 5e-2 in < 1 min).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HELP = "accuracy and time of 'pinn-lam solve' defaults over problems and seeds"

TARGETS = {"default": (1e-3, 300.0), "quick": (5e-2, 60.0)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--problems", nargs="+", default=["burgers", "poisson", "heat"], help="problems to solve")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds")
    parser.add_argument("--quick", action="store_true", help="use the quick preset")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: pinn-lam's, as 'pinn-lam solve')")
    parser.add_argument("--output", default="runs/accuracy.json", help="JSON file of all runs' metrics")
    parser.add_argument("--runs", default=None, help="also keep each run's folder under this directory")


def run(args: argparse.Namespace) -> int:
    import torch

    from pinn_lam.machine import default_threads
    from pinn_lam.training.outputs import _machine
    from pinn_lam.training.solve import solve

    torch.set_num_threads(default_threads() if args.threads is None else args.threads)
    preset = "quick" if args.quick else None
    bound, seconds = TARGETS[preset or "default"]
    machine = _machine()
    print(f"machine: {machine['cpu']}, {machine['cpu_count']} CPUs, torch {machine['torch']} "
          f"with {machine['torch_threads']} threads; preset: {preset or 'defaults'}")
    print("| problem | seed | rel. L2 vs reference | max abs | train s | wall s | iterations | stop |")
    print("|---|---|---|---|---|---|---|---|")
    records, ok = [], True
    for name in args.problems:
        for seed in args.seeds:
            start = time.perf_counter()
            out = None if args.runs is None else Path(args.runs) / f"{name}-seed{seed}{'-quick' if preset else ''}"
            result = solve(name, seed=seed, preset=preset, output_dir=out, figure=out is not None, overwrite=out is not None)
            wall = time.perf_counter() - start
            m = result.metrics
            passed = m["rel_l2"] <= bound and wall <= seconds
            ok &= passed
            print(f"| {name} | {seed} | {m['rel_l2']:.2e} | {m['max_abs']:.2e} | {m['seconds']:.0f} | {wall:.0f} "
                  f"| {m['iterations']} | {m['stop_reason']} |{'' if passed else ' MISSED'}", flush=True)
            records.append({"problem": name, "seed": seed, "preset": preset, "wall_seconds": wall,
                            "metrics": m, "config": result.config})
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "runs": records}, indent=2, default=str) + "\n")
    print(f"target: rel. L2 <= {bound:g} in <= {seconds:g} s per run: {'met' if ok else 'NOT met'}; wrote {path}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pinn_lam.benchmarks.accuracy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
