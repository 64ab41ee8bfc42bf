"""``pinn-lam bench second-order``: time per iteration and memory of Levenberg–Marquardt, SSBFGS
and L-BFGS on the defaults' networks, and the residuals' Jacobian by ``torch.func`` against
autograd and fast-path rows.

Each problem is set up as ``solve`` sets up its defaults (network, points, hard constraints), in
float64 (the precision LM runs in), then trained for ``--pretrain`` LAM steps so the optimizers
start where a second phase would. Each optimizer then starts from those parameters: L-BFGS and
SSBFGS do an untimed chunk of ``--fill`` iterations (history, inverse Hessian) and a timed chunk of
``--iterations``; LM does ``--lm-iterations`` timed iterations (each a Jacobian, a Gram matrix,
Cholesky factorisations and trial evaluations). Every time is the median over ``--rounds`` rounds.
*Memory* is what the optimizer keeps or builds per iteration, counted from tensor sizes: L-BFGS's
pairs (``history_size`` x 2 x n), SSBFGS's inverse Hessian (n x n), LM's Jacobian and Gram matrix
(m x n + min(m, n)^2), all float64. The Jacobian
rows are timed three ways: ``torch.func`` (per-point ``jacrev`` under ``vmap``,
:mod:`pinn_lam.training.jacobian`) for all m rows; autograd rows (batched vector-Jacobian
products through the nested-autograd residual) and fast-path rows (one backward pass of the
derivative fast path per row, :mod:`pinn_lam.nn.fastpath`) for ``--autograd-rows`` rows each,
scaled to m.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from pinn_lam.machine import cpu_model

HELP = ("time per iteration and memory of Levenberg-Marquardt, SSBFGS and L-BFGS on the defaults' networks, "
        "and the Jacobian by torch.func against autograd and fast-path rows")

PROBLEMS = ("heat", "poisson", "burgers")
BYTES = 8  # float64


def setup(name: str, seed: int = 0, pretrain: int = 200, **overrides):
    """The defaults' model and loss for problem ``name`` in float64 after ``pretrain`` LAM steps."""
    from pinn_lam.optim.lam import LAM
    from pinn_lam.training.solve import build, configure, make_problem

    problem = make_problem(name)
    config = configure(problem, None, {"device": "cpu", "dtype": "float64", **overrides})
    config.update(seed=seed, fast=None)
    model, _, loss = build(problem, config)
    optimizer = LAM(model.parameters(), lr=1e-2)
    for _ in range(pretrain):
        optimizer.zero_grad()
        loss()[0].backward()
        optimizer.step()
    return model, loss


def _closure_optimizer(name: str, model, loss, fill: int, iterations: int) -> dict[str, float]:
    from pinn_lam.optim import lbfgs, registry

    optimizer = registry.make_optimizer(name, list(model.parameters()), None, {})

    def closure():
        optimizer.zero_grad()
        total = loss()[0]
        total.backward()
        return total

    lbfgs.set_chunk(optimizer, fill)
    optimizer.step(closure)
    state = optimizer.state[optimizer.param_groups[0]["params"][0]]
    before, evals = lbfgs.iterations_done(optimizer), state["func_evals"]
    lbfgs.set_chunk(optimizer, iterations)
    start = time.perf_counter()
    optimizer.step(closure)
    elapsed = time.perf_counter() - start
    done = max(lbfgs.iterations_done(optimizer) - before, 1)
    n = sum(p.numel() for p in model.parameters())
    memory = n * n * BYTES if name.startswith("ss") else 2 * lbfgs.DEFAULTS["history_size"] * n * BYTES
    return {"ms": 1e3 * elapsed / done, "evals": (state["func_evals"] - evals) / done, "memory": memory,
            "iterations": done}


def _lm(model, loss, iterations: int) -> dict[str, float]:
    from pinn_lam.optim.lm import LevenbergMarquardt
    from pinn_lam.training.jacobian import pinn_jacobian

    optimizer = LevenbergMarquardt(model.parameters())
    start = time.perf_counter()
    for _ in range(iterations):
        optimizer.step(lambda: loss.residual_vector().detach(), jacobian=pinn_jacobian(loss))
    elapsed = time.perf_counter() - start
    state = optimizer.global_state
    m = loss.residual_vector().numel()
    n = sum(p.numel() for p in model.parameters())
    done = max(state["n_iter"], 1)
    return {"ms": 1e3 * elapsed / done, "evals": state["func_evals"] / done, "iterations": state["n_iter"],
            "memory": (m * n + min(m, n) ** 2) * BYTES}


def _jacobian_times(loss, autograd_rows: int) -> dict[str, float]:
    from pinn_lam.optim.least_squares import autograd_jacobian
    from pinn_lam.training.jacobian import jacobian_matrix
    from pinn_lam.training.loss import PINNLoss

    jacobian_matrix(loss)  # torch.func's first call traces its transforms
    start = time.perf_counter()
    J = jacobian_matrix(loss)
    functorch = time.perf_counter() - start
    m = J.shape[0]
    rows = min(autograd_rows, m)
    plain = PINNLoss(loss.problem, loss.model, loss.points, weights=loss.weights, fast=False)
    autograd_jacobian(plain.residual_vector()[:2], list(loss.model.parameters()))  # the first batched pass is slower
    start = time.perf_counter()
    residuals = plain.residual_vector()
    part = autograd_jacobian(residuals[:rows], list(loss.model.parameters()), chunk=rows)
    by_rows = (time.perf_counter() - start) * m / rows
    agree = float((part - J[:rows]).abs().max() / J[:rows].abs().max())
    times = {"torch.func": functorch, "autograd rows": by_rows, "rows timed": rows, "agreement": agree}
    if loss.fast:  # the fast path's hand-written backward, one pass per row (it cannot be batched)
        start = time.perf_counter()
        part = autograd_jacobian(loss.residual_vector()[:rows], list(loss.model.parameters()), chunk=rows)
        times["fast-path rows"] = (time.perf_counter() - start) * m / rows
        times["agreement"] = max(agree, float((part - J[:rows]).abs().max() / J[:rows].abs().max()))
    return times


def measure(name: str, *, pretrain: int = 200, fill: int = 10, iterations: int = 20, lm_iterations: int = 3,
            autograd_rows: int = 64, rounds: int = 3, seed: int = 0, **overrides) -> dict:
    """Rows per optimizer (ms per iteration, evaluations per iteration, memory bytes) and the
    Jacobian times, each the median over ``rounds`` rounds (a shared machine's speed drifts; every
    round times every optimizer from the same parameters)."""
    model, loss = setup(name, seed, pretrain, **overrides)
    start = [p.detach().clone() for p in model.parameters()]

    def reset():
        with torch.no_grad():
            for p, p0 in zip(model.parameters(), start):
                p.copy_(p0)

    measured: dict[str, list[dict]] = {"lbfgs": [], "ssbfgs": [], "lm": []}
    jacobians = []
    for _ in range(rounds):
        for optimizer in ("lbfgs", "ssbfgs"):
            reset()
            measured[optimizer].append(_closure_optimizer(optimizer, model, loss, fill, iterations))
        reset()
        measured["lm"].append(_lm(model, loss, lm_iterations))
        reset()
        jacobians.append(_jacobian_times(loss, autograd_rows))
    rows = {name: _median(values) for name, values in measured.items()}
    return {"problem": name, "params": sum(p.numel() for p in model.parameters()), "rounds": rounds,
            "residuals": loss.residual_vector().numel(), "rows": rows, "jacobian": _median(jacobians)}


def _median(rows: list[dict]) -> dict:
    """The median of each entry over ``rows``, in their type (counts of a deterministic run agree)."""
    return {key: type(rows[0][key])(statistics.median(row[key] for row in rows)) for key in rows[0]}


def format_result(result: dict) -> str:
    lines = [f"{result['problem']}: {result['params']} parameters, {result['residuals']} residuals, "
             f"median of {result['rounds']} rounds",
             f"{'optimizer':10s} {'ms/iteration':>13s} {'evals/it':>9s} {'iterations':>11s} {'memory MB':>10s}"]
    for name, row in result["rows"].items():
        lines.append(f"{name:10s} {row['ms']:13.1f} {row['evals']:9.2f} {row['iterations']:11d} "
                     f"{row['memory'] / 1e6:10.1f}")
    jac = result["jacobian"]
    fast = f"; fast-path rows {jac['fast-path rows']:.3f} s" if "fast-path rows" in jac else ""
    lines.append(f"Jacobian: torch.func {jac['torch.func']:.3f} s; autograd rows {jac['autograd rows']:.3f} s{fast} "
                 f"(rows scaled from {jac['rows timed']}; max relative difference {jac['agreement']:.1e})")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=PROBLEMS, help="problems")
    parser.add_argument("--pretrain", type=int, default=200, help="LAM steps before the optimizers start")
    parser.add_argument("--fill", type=int, default=10, help="untimed L-BFGS/SSBFGS iterations")
    parser.add_argument("--iterations", type=int, default=20, help="timed L-BFGS/SSBFGS iterations")
    parser.add_argument("--lm-iterations", type=int, default=3, help="timed Levenberg-Marquardt iterations")
    parser.add_argument("--autograd-rows", type=int, default=64, help="Jacobian rows timed by autograd")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the table shows medians)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")


def run(args: argparse.Namespace) -> int:
    for name in ("iterations", "lm_iterations", "autograd_rows", "rounds", "threads", "fill"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.pretrain < 0:
        raise ValueError(f"--pretrain must be >= 0, got {args.pretrain}")
    torch.set_num_threads(args.threads)
    print(f"second-order optimizers, float64; {cpu_model()}, {args.threads} thread(s); torch {torch.__version__}")
    for name in args.problems:
        result = measure(name, pretrain=args.pretrain, fill=args.fill, iterations=args.iterations,
                         lm_iterations=args.lm_iterations, autograd_rows=args.autograd_rows, rounds=args.rounds)
        print("\n" + format_result(result))
    return 0
