"""Step time of a small training run beside busy processes, for several thread setups.

Each cell starts a fresh Python process that trains ``heat`` (the quick preset's network and
points, LAM only) for ``--steps`` steps and reports the median step time of the second half,
while ``busy`` pure-Python loops (``while True: pass``) run beside it. Thread setups: torch's
default, ``torch.set_num_threads(1)`` and ``(2)``, each with the OpenMP wait policy left alone and
with ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep instead of spinning).

    python scripts/busy_machine.py --steps 200
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, time, torch
threads = int(sys.argv[1])
if threads:
    torch.set_num_threads(threads)
from pinn_lam.training.solve import solve
stamps = []
solve("heat", preset="quick", optimizer="lam", iterations=int(sys.argv[2]), figure=False, device="cpu",
      eval_every=10 ** 6, callback=lambda state: stamps.append(time.perf_counter()))
steps = [b - a for a, b in zip(stamps, stamps[1:])][len(stamps) // 2:]
print(json.dumps({"threads": torch.get_num_threads(), "median_ms": 1e3 * sorted(steps)[len(steps) // 2]}))
"""


def cell(threads: int, busy: int, passive: bool, steps: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        time.sleep(0.2 if busy else 0.0)
        done = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(steps)], capture_output=True,
                              text=True, env=env, timeout=600)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--busy", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[0, 1, 2], help="0: torch's default")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; load average before: {os.getloadavg()}")
    print("| threads | OMP_WAIT_POLICY | " + " | ".join(f"{b} busy: ms/step" for b in args.busy) + " |")
    print("|---|---|" + "---|" * len(args.busy))
    for threads in args.threads:
        for passive in (False, True):
            times = [cell(threads, busy, passive, args.steps)["median_ms"] for busy in args.busy]
            label = "default" if threads == 0 else str(threads)
            print(f"| {label} | {'PASSIVE' if passive else 'unset'} | " + " | ".join(f"{t:.2f}" for t in times) + " |",
                  flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
