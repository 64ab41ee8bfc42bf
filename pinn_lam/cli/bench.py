"""``pinn-lam bench``: benchmarks that compare implementations side by side in one process."""
from __future__ import annotations

import argparse
import importlib

HELP = ("benchmarks: 'optimizer' (LAM step time), 'train' (PINN step time, time to accuracy), 'accuracy' (solve "
        "defaults vs targets), 'second-order' (LM, SSBFGS, L-BFGS time and memory), 'auto-reference' (automatic "
        "vs hand-written references), 'busy' (step time beside busy processes per thread setup), 'ddp' (time per "
        "iteration over 1, 2, ... processes)")

#: benchmark names; each is a module in pinn_lam.benchmarks ('-' spelt '_') defining HELP, add_arguments(parser), run(args)
BENCHMARKS = ("optimizer", "train", "accuracy", "lbfgs", "second-order", "auto-reference", "busy", "ddp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name in BENCHMARKS:
        module = importlib.import_module(f"pinn_lam.benchmarks.{name.replace('-', '_')}")
        bench = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP),
                               formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(bench)
        bench.set_defaults(_bench=module.run)


def run(args: argparse.Namespace) -> int:
    return args._bench(args)
