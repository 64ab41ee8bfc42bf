"""Step time of the defaults beside busy processes, for several thread setups.

Each cell starts a fresh Python process that trains a problem with its defaults (LAM only, the
first phase of the default recipe) for ``--steps`` steps and reports the median step time of the
second half, while ``busy`` pure-Python loops (``while True: pass``) run beside it. Setups:
``default`` (pinn-lam's: :func:`pinn_lam.machine.default_threads`), ``torch`` (PyTorch's own
choice), and fixed numbers of threads. ``--passive`` adds each setup with ``OMP_WAIT_POLICY=PASSIVE``.

The target: beside one busy process, the default setup's step takes at most 2.5 times its time
alone, and at most 1.2 times the one-thread setup's.

    pinn-lam bench busy --problems burgers heat --steps 200
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HELP = "step time of the defaults alone and beside busy processes, per thread setup (default, torch's, 1, 2)"
#: (slowdown beside one busy process vs alone, ratio to the one-thread setup beside one busy process)
TARGET = (2.5, 1.2)

CHILD = """
import json, sys, time, torch
setup, problem, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
from pinn_lam.machine import tune_malloc, use_default_threads
tune_malloc()
if setup == "default":
    use_default_threads()
elif setup != "torch":
    torch.set_num_threads(int(setup))
from pinn_lam.training.solve import solve
stamps = []
solve(problem, optimizer="lam", iterations=steps, figure=False, eval_every=10 ** 6, checkpoint_every=10 ** 6,
      callback=lambda state: stamps.append(time.perf_counter()))
steps = sorted(b - a for a, b in zip(stamps[len(stamps) // 2:], stamps[len(stamps) // 2 + 1:]))
print(json.dumps({"threads": torch.get_num_threads(), "median_ms": 1e3 * steps[len(steps) // 2]}))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--problems", nargs="+", default=["burgers", "heat"], help="problems (their defaults)")
    parser.add_argument("--steps", type=int, default=200, help="LAM steps per cell")
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2], help="busy processes beside the run")
    parser.add_argument("--setups", nargs="+", default=["default", "torch", "1", "2"],
                        help="thread setups: 'default' (pinn-lam's), 'torch' (PyTorch's choice) or a number")
    parser.add_argument("--passive", action="store_true", help="also each setup with OMP_WAIT_POLICY=PASSIVE")


def cell(setup: str, problem: str, steps: int, busy: int, passive: bool = False) -> dict:
    """One fresh process's median step time (ms) and thread count, beside ``busy`` busy loops."""
    env = dict(os.environ)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        time.sleep(0.2 if busy else 0.0)
        done = subprocess.run([sys.executable, "-c", CHILD, setup, problem, str(steps)], capture_output=True,
                              text=True, env=env, timeout=900)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    if done.returncode:
        raise RuntimeError(f"{problem} with threads {setup}: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def verdict(times: dict[str, list[float]], busy: list[int]) -> str:
    """Whether the default setup meets :data:`TARGET` (needs 0 and 1 busy, and the '1' setup)."""
    if "default" not in times or "1" not in times or 0 not in busy or 1 not in busy:
        return "target not judged (needs setups 'default' and '1', and 0 and 1 busy)"
    alone, beside = times["default"][busy.index(0)], times["default"][busy.index(1)]
    one = times["1"][busy.index(1)]
    met = beside <= TARGET[0] * alone and beside <= TARGET[1] * one
    return (f"default beside one busy process: {beside / alone:.2f}x its time alone (target <= {TARGET[0]:g}), "
            f"{beside / one:.2f}x one thread's (target <= {TARGET[1]:g}): {'met' if met else 'NOT met'}")


def run(args: argparse.Namespace) -> int:
    from pinn_lam.machine import cpu_model, default_threads, usable_cores

    print(f"machine: {cpu_model()}, {usable_cores()} cores; pinn-lam's default setup: {default_threads()} "
          f"thread(s); load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ok = True
    for problem in args.problems:
        print(f"\n{problem} (defaults, LAM, {args.steps} steps; median ms per step of the second half)")
        print("| threads | OMP_WAIT_POLICY | " + " | ".join(f"{b} busy" for b in args.busy) + " |")
        print("|---|---|" + "---|" * len(args.busy))
        times: dict[str, list[float]] = {}
        for setup in args.setups:
            for passive in (False, True) if args.passive else (False,):
                cells = [cell(setup, problem, args.steps, b, passive) for b in args.busy]
                label = {"default": "default", "torch": "torch's"}.get(setup, setup)
                label += f" ({cells[0]['threads']})" if setup in ("default", "torch") else ""
                print(f"| {label} | {'PASSIVE' if passive else 'unset'} | "
                      + " | ".join(f"{c['median_ms']:.2f}" for c in cells) + " |", flush=True)
                if not passive:
                    times[setup] = [c["median_ms"] for c in cells]
        line = verdict(times, list(args.busy))
        ok &= "NOT met" not in line
        print(line)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if ok else 1
