"""Automatic references against the hand-written ones and the exact solutions: agreement and time.

Run ``pinn-lam bench auto-reference`` (or ``python -m pinn_lam.benchmarks.auto_reference``): for
Burgers at three viscosities, heat, Poisson and the problems of ``examples/``, it computes the
automatic reference from scratch (a temporary cache) with the default target (1e-5) and budget
(30 s), the hand-written reference likewise, and prints a Markdown table of the relative L2
agreement and the times, with the machine. The target is agreement <= 1e-5 in <= 30 s.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import tempfile
import time
from pathlib import Path

import numpy as np

HELP = "automatic finite-difference references vs the hand-written ones and exact solutions"
#: library problems and parameters of the table
LIBRARY = (("burgers", {"nu": 0.1 / math.pi}), ("burgers", {"nu": 0.01 / math.pi}),
           ("burgers", {"nu": 0.003 / math.pi}), ("heat", {}), ("poisson", {}), ("allen-cahn", {}),
           ("convection", {"beta": 30.0}), ("wave", {}), ("schrodinger", {}), ("poisson-lshape", {}))
EXAMPLES = ("robin_heat", "periodic_system", "inverse_diffusion")
#: agreement and seconds the table is measured against
TARGET_AGREEMENT, TARGET_SECONDS = 1e-5, 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", type=float, default=1e-5, help="the error the refinement aims at")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds the refinement may take")
    parser.add_argument("--only", nargs="+", default=None, help="rows whose label contains one of these words")


def _example(name: str):
    path = Path(__file__).resolve().parents[2] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.problem


def _problems(only=None):
    """(label, problem, is a library problem) per row whose label contains a word of ``only``."""
    import problems

    def wanted(label: str) -> bool:
        return not only or any(word in label for word in only)

    for name, params in LIBRARY:
        shown = ", ".join(f"nu={v * math.pi:g}/pi" if key == "nu" else f"{key}={v:g}" for key, v in params.items())
        label = f"{name}{f' ({shown})' if shown else ''}"
        if wanted(label):
            yield label, problems.get(name, **params), True
    for name in EXAMPLES:
        label = f"examples/{name}.py"
        if wanted(label) and (Path(__file__).resolve().parents[2] / label).exists():  # a source checkout only
            yield label, _example(name), False


def _exact_error(problem, ref) -> float | None:
    if not problem.has_exact:
        return None
    values = np.asarray(ref.values())
    exact = np.asarray(problem.exact_values(ref.points())).reshape(values.shape)
    return float(np.linalg.norm(values - exact) / np.linalg.norm(exact))


def row(label: str, problem, library: bool, target: float, budget: float) -> str:
    from pinn_lam.errors import ProblemError
    from pinn_lam.pde.auto_reference import agreement, auto_reference

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        try:
            ref = auto_reference(problem, target=target, budget=budget, cache_dir=folder)
        except ProblemError as error:
            return f"| {label} | refused: {error} | | | | | | |"
        seconds = time.perf_counter() - start
        hand_text, hand_seconds, hand_error = "", "", None
        if library:
            start = time.perf_counter()
            hand = problem.reference(cache_dir=folder)
            hand_seconds = f"{time.perf_counter() - start:.1f}"
            hand_error = agreement(ref, hand)
            hand_text = f"{hand_error:.1e}"
    exact = _exact_error(problem, ref)
    checks = [e for e in (exact if exact is not None else hand_error,) if e is not None]
    met = "yes" if checks and checks[0] <= TARGET_AGREEMENT and seconds <= TARGET_SECONDS else "no"
    exact_text = "" if exact is None else f"{exact:.1e}"
    return (f"| {label} | {ref.method} | {ref.error_estimate:.1e} | {hand_text} | {exact_text} | {seconds:.1f} | "
            f"{hand_seconds} | {met} |")


def run(args: argparse.Namespace) -> int:
    from pinn_lam.machine import cpu_model, usable_cores

    print("| Problem | Automatic reference | Est. error | vs hand-written | vs exact | Time (s) | "
          "Hand-written time (s) | <= 1e-5 in <= 30 s |")
    print("|---|---|---|---|---|---|---|---|")
    for label, problem, library in _problems(args.only):
        print(row(label, problem, library, args.target, args.budget), flush=True)
    print(f"\nRelative L2 agreement on the hand-written reference's points (vs hand-written) and on the automatic "
          f"reference's grid (vs exact); times from scratch on {cpu_model()}, {usable_cores()} cores. "
          "'<= 1e-5' is judged against the exact solution where there is one, else the hand-written reference.")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))
