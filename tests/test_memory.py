"""The memory estimate bounds a real run's peak from above, and a run that cannot fit is refused
in one line before anything is allocated."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pinn_lam.training import memory
from pinn_lam.training.solve import solve

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import torch
torch.set_num_threads(1)
from pinn_lam.training.solve import build, configure, make_problem
from pinn_lam.nn import kernels


def status(key):  # this process's own counters (ru_maxrss would carry the parent's peak over fork + exec)
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith(key))


problem = make_problem("heat")
config = configure(problem, None, dict(n_collocation=40000, width=20, depth=3, dtype="float64", device="cpu"))
config.update(seed=0, fast=None)
model, sampler, loss = build(problem, config)
kernels.library()  # loaded (or built) before measuring, as the trainer does
before = status("VmRSS:")
total, _ = loss()
total.backward()
print(status("VmHWM:") - before, loss.fast)
"""


def test_estimate_is_the_formula_by_hand():
    config = dict(n_collocation=1000, n_boundary=50, width=20, depth=3, dtype="float64", fast=None)
    assert memory.estimate_bytes(config) == int(14.0 * 1200 * 20 * 3 * 8)
    assert memory.estimate_bytes(dict(config, dtype="float32", fast=False)) == int(18.0 * 1200 * 20 * 3 * 4)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_estimate_bounds_a_measured_peak_from_above_within_a_factor_of_two_and_a_half():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    peak, fast = done.stdout.split()
    estimate = memory.estimate_bytes(dict(n_collocation=40000, n_boundary=256, width=20, depth=3, dtype="float64",
                                          fast=None if fast == "True" else False))
    assert int(peak) < estimate < 2.5 * int(peak)


def test_a_run_that_cannot_fit_is_refused_in_one_line_before_allocating(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "free_bytes", lambda device: 2 ** 30)
    with pytest.raises(MemoryError) as caught:
        solve("heat", preset="quick", n_collocation=5_000_000, device="cpu", output_dir=tmp_path / "run")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("this run needs about 31.3 GiB on cpu (5,000,000 collocation")
    assert "but 1.0 GiB is free; lower n_collocation (--points, about 159,750 fit)" in message
    assert not (tmp_path / "run").exists()


def test_the_command_line_prints_a_memory_refusal_and_an_allocation_failure_as_one_line(tmp_path, monkeypatch, capsys):
    from pinn_lam.cli.main import main

    monkeypatch.setattr(memory, "free_bytes", lambda device: 2 ** 30)
    out = ["--output", str(tmp_path / "run"), "--no-progress", "--device", "cpu"]
    assert main(["solve", "heat", "--quick", "--points", "5000000", *out]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pinn-lam solve: error: this run needs about") and "\n" not in err
    monkeypatch.setattr(memory, "free_bytes", lambda device: None)

    def fail(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 24000000000 bytes. Error code 12 (Cannot allocate memory)\nmore")

    monkeypatch.setattr("pinn_lam.training.solve.build", fail)
    assert main(["solve", "heat", "--quick", *out]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pinn-lam solve: error: out of memory during the run (") and "\n" not in err
    assert "lower n_collocation (--points)" in err and not (tmp_path / "run").exists()


def test_allocation_failures_are_told_apart_from_other_errors():
    assert memory.is_allocation_failure(MemoryError())
    assert memory.is_allocation_failure(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert not memory.is_allocation_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
