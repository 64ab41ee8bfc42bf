"""``pinn-lam bench``: benchmarks that compare implementations side by side in one process."""
from __future__ import annotations

import argparse
import importlib

HELP = "benchmarks: 'optimizer' (LAM step time), 'train' (PINN step time, time to accuracy), 'accuracy' (solve defaults vs targets), 'auto-reference' (automatic vs hand-written references)"

#: benchmark name -> module in pinn_lam.benchmarks defining HELP, add_arguments(parser), run(args)
BENCHMARKS = ("optimizer", "train", "accuracy", "lbfgs", "auto_reference")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name in BENCHMARKS:
        module = importlib.import_module(f"pinn_lam.benchmarks.{name}")
        bench = sub.add_parser(name.replace("_", "-"), help=module.HELP,
                               description=getattr(module, "DESCRIPTION", module.HELP),
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(bench)
        bench.set_defaults(_bench=module.run)


def run(args: argparse.Namespace) -> int:
    return args._bench(args)
