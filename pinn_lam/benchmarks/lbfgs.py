"""``pinn-lam bench lbfgs`` (or ``python -m pinn_lam.benchmarks.lbfgs``): L-BFGS's own time per iteration, PyTorch's class against
:class:`pinn_lam.optim.lbfgs.LBFGS`, side by side in one process.

The objective is a PINN loss (:func:`pinn_lam.benchmarks.train.pinn_lam_step`: Burgers, hard
constraints, fast path, an MLP of ``--depth`` hidden layers of ``--width``), pre-trained with
``--pretrain`` LAM steps so that L-BFGS starts where the trainer would hand over. In each round,
each optimizer (order rotated) starts from the same parameters, fills its history with an untimed
chunk of ``--fill`` iterations, then does a timed chunk of ``--iterations``. The closure measures
the time spent inside it; the *overhead* is the chunk's time minus that, per iteration: the
optimizer's own work (direction, line search bookkeeping, parameter updates). The table shows the
median over rounds, and the median over rounds of the ratio new/torch within a round (the speed
of a shared machine drifts; the paired ratio does not see it). Both optimizers follow slightly
different float32 paths, so the table also shows their function evaluations per iteration and
the iterations a timed chunk did (fewer than ``--iterations`` if it stopped early).

Like the command line, this command calls :func:`pinn_lam.machine.tune_malloc` (``PINN_LAM_MALLOC=default``
leaves glibc's malloc alone): with glibc's defaults the closure's page faults, and so its time,
depend on what else the process allocates, the optimizer included.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from pinn_lam.optim.lbfgs import CHUNK, DEFAULTS, make_lbfgs, set_chunk
from pinn_lam.machine import cpu_model, tune_malloc

HELP = "L-BFGS's own time per iteration (without the closure): torch.optim.LBFGS against pinn_lam.optim.lbfgs.LBFGS"

#: the optimizers compared, both with pinn-lam's options (history_size 50, strong Wolfe)
FACTORIES: dict[str, Callable[[list[torch.Tensor]], torch.optim.LBFGS]] = {
    "torch.optim.LBFGS": lambda params: torch.optim.LBFGS(params, max_iter=CHUNK, max_eval=25 * CHUNK, **DEFAULTS),
    "pinn_lam LBFGS": make_lbfgs,
}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(points: int, *, width: int = 32, depth: int = 5, pretrain: int = 300, fill: int = 60,
            iterations: int = 100, rounds: int = 5, device: torch.device | None = None,
            dtype: torch.dtype = torch.float32, seed: int = 0) -> dict:
    """Overhead and closure milliseconds per L-BFGS iteration of each optimizer in :data:`FACTORIES`."""
    import problems

    from pinn_lam.benchmarks.train import pinn_lam_step

    device = device or torch.device("cpu")
    step, loss = pinn_lam_step(problems.get("burgers"), fast=True, optimizer="lam", device=device, dtype=dtype,
                               seed=seed, points=points, width=width, depth=depth, hard=True)
    for _ in range(pretrain):
        step()
    model = loss.model
    params = list(model.parameters())
    start = [p.detach().clone() for p in params]
    inside = [0.0, 0]  # seconds inside the closure, calls

    def closure() -> torch.Tensor:
        begin = time.perf_counter()
        model.zero_grad(set_to_none=True)
        total, _ = loss.loss()
        total.backward()
        _synchronize(device)
        inside[0] += time.perf_counter() - begin
        inside[1] += 1
        return total

    names = list(FACTORIES)
    rows: dict[str, dict[str, list[float]]] = {n: {"overhead": [], "closure": [], "evals": [], "iterations": []}
                                               for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            with torch.no_grad():
                for p, p0 in zip(params, start):
                    p.copy_(p0)
            optimizer = FACTORIES[name](params)
            set_chunk(optimizer, fill)
            optimizer.step(closure)
            before = optimizer.state[params[0]]["n_iter"]
            set_chunk(optimizer, iterations)
            inside[:] = [0.0, 0]
            _synchronize(device)
            begin = time.perf_counter()
            optimizer.step(closure)
            _synchronize(device)
            elapsed = time.perf_counter() - begin
            done = max(optimizer.state[params[0]]["n_iter"] - before, 1)
            rows[name]["overhead"].append((elapsed - inside[0]) * 1e3 / done)
            rows[name]["closure"].append(inside[0] * 1e3 / done)
            rows[name]["evals"].append(inside[1] / done)
            rows[name]["iterations"].append(done)
    base, new = rows[names[0]], rows[names[1]]

    def paired(key: str) -> float:
        return statistics.median(a / b for a, b in zip(new[key], base[key]))

    for side in (base, new):
        side["total"] = [a + b for a, b in zip(side["overhead"], side["closure"])]
    result = {"points": points, "params": sum(p.numel() for p in params), "rounds": rounds,
              "paired_ratio": {key: paired(key) for key in ("overhead", "closure", "total")}}
    result["rows"] = {n: {k: statistics.median(v) for k, v in rows[n].items()} for n in names}
    return result


def format_result(result: dict) -> str:
    lines = [f"{result['points']} collocation points, {result['params']} parameters, median of {result['rounds']} rounds",
             f"{'optimizer':20s} {'overhead ms/it':>15s} {'closure ms/it':>14s} {'evals/it':>9s} {'iterations':>11s}"]
    for name, row in result["rows"].items():
        lines.append(f"{name:20s} {row['overhead']:15.3f} {row['closure']:14.3f} {row['evals']:9.2f} "
                     f"{row['iterations']:11.0f}")
    ratio = result["paired_ratio"]
    lines.append(f"pinn_lam / torch, paired within rounds: overhead {ratio['overhead']:.3f}, "
                 f"closure {ratio['closure']:.3f}, overhead + closure {ratio['total']:.3f}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--points", type=int, nargs="+", default=[20, 3072], help="collocation points (one table each)")
    parser.add_argument("--width", type=int, default=32, help="hidden layer width")
    parser.add_argument("--depth", type=int, default=5, help="hidden layers")
    parser.add_argument("--pretrain", type=int, default=300, help="LAM steps before L-BFGS")
    parser.add_argument("--fill", type=int, default=60, help="untimed L-BFGS iterations that fill the history")
    parser.add_argument("--iterations", type=int, default=100, help="timed L-BFGS iterations per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")


def run(args: argparse.Namespace) -> int:
    for name in ("width", "depth", "iterations", "rounds", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    for name in ("pretrain", "fill"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name} must be >= 0, got {getattr(args, name)}")
    if min(args.points) < 1:
        raise ValueError(f"--points must be positive integers, got {args.points}")
    torch.set_num_threads(args.threads)
    malloc = "glibc malloc tuned" if tune_malloc() else "default malloc"  # as the command line runs
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu_model()}, {args.threads} thread(s)"
    print(f"L-BFGS overhead per iteration; {where}; {malloc}; torch {torch.__version__}; {args.dtype}; "
          f"history_size {DEFAULTS['history_size']}, {DEFAULTS['line_search_fn']}")
    for points in args.points:
        result = measure(points, width=args.width, depth=args.depth, pretrain=args.pretrain, fill=args.fill,
                         iterations=args.iterations, rounds=args.rounds, device=device,
                         dtype=getattr(torch, args.dtype))
        print("\n" + format_result(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pinn_lam.benchmarks.lbfgs", description=HELP,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
