"""``pinn-lam list``: the problems, optimizers, samplers and presets available."""
from __future__ import annotations

import argparse

HELP = "list the problems, optimizers, samplers and presets"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    import problems
    from pinn_lam.training.presets import PRESETS
    from pinn_lam.training.sampling import METHODS
    from pinn_lam.optim.registry import REGISTRY as OPTIMIZERS

    print("problems (pinn-lam solve PROBLEM):")
    for name in problems.available():
        problem = problems.get(name)
        summary = problem.equation or (type(problem).__doc__ or "").strip().splitlines()[0]
        print(f"  {name:<10} {summary}")
        print(f"  {'':<10} parameters: {', '.join(f'{k}={v}' for k, v in problem.parameters().items())}")
    print("optimizers (--optimizer NAME, or phases such as lam+lbfgs):")
    for name, text in ((n, info.description) for n, info in OPTIMIZERS.items()):
        print(f"  {name:<10} {text}")
    print("samplers (--sampler NAME):")
    for name, text in METHODS.items():
        print(f"  {name:<10} {text}")
    print("presets (--preset NAME; --quick is --preset quick): " + ", ".join(PRESETS))
    return 0
