"""SIGINT and SIGTERM: a real `pinn-lam solve` subprocess checkpoints the current state, prints the
command that resumes, exits 130 / 143, and the resumed run ends bit-identical to an uninterrupted one."""
import csv
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pinn_lam.cli.solve import resume_command
from pinn_lam.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
RUN = ["solve", "heat", "--optimizer", "lam+lbfgs", "--iterations", "800,40", "--points", "128", "--width", "8",
       "--depth", "2", "--checkpoint-every", "25", "--eval-every", "50", "--threads", "1", "--device", "cpu",
       "--dtype", "float64", "--no-progress", "--param", "modes=[[1, 1.0]]"]


def start(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "pinn_lam", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)


def history(folder):
    with open(folder / "history.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "time"} for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uninterrupted")
    done = start(*RUN, "--output", str(folder))
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    return folder


def interrupt(folder, number):
    """Start the run in ``folder``, send ``number`` once its first checkpoint exists; return
    the exit status, the stderr lines and the iteration the message names."""
    process = start(*RUN, "--output", str(folder))
    deadline = time.monotonic() + 120
    while not (folder / "checkpoint.pt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(number)
    out, err = process.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert lines and lines[0].startswith(f"pinn-lam solve: interrupted by {signal.Signals(number).name} at iteration "), err
    iteration = int(lines[0].split("at iteration ")[1].split(";")[0])
    assert 0 < iteration < 840 and f"checkpoint of iteration {iteration} in {folder / 'checkpoint.pt'}" in lines[0]
    assert load_checkpoint(folder / "checkpoint.pt")["iteration"] == iteration
    assert not (folder / "metrics.json").exists() and not (folder / ".pinn-lam.lock").exists()
    return process.returncode, lines


@pytest.mark.slow
def test_sigint_checkpoints_prints_the_resume_command_and_the_resumed_run_is_bit_identical(tmp_path, uninterrupted):
    folder = tmp_path / "run"
    status, lines = interrupt(folder, signal.SIGINT)
    assert status == 130
    command = lines[1].removeprefix("resume with: ")
    assert command == shlex.join([sys.executable, "-m", "pinn_lam", *RUN, "--output", str(folder), "--resume"])
    resumed = start(*shlex.split(command)[3:])  # the words after "python -m pinn_lam"
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    final, reference = load_checkpoint(folder / "checkpoint.pt"), load_checkpoint(uninterrupted / "checkpoint.pt")
    assert final["iteration"] == reference["iteration"] == 840
    for name, tensor in reference["model"].items():
        assert torch.equal(final["model"][name], tensor), name
    assert history(folder) == history(uninterrupted)


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_143(tmp_path):
    status, lines = interrupt(tmp_path / "run", signal.SIGTERM)
    assert status == 143 and lines[1].startswith("resume with: ") and lines[1].endswith(" --resume")


def test_the_resume_command_repeats_the_arguments_with_resume_and_without_overwrite():
    command = resume_command(["solve", "heat", "--overwrite", "--param", "modes=[[1, 1.0]]", "-o", "runs/a b"])
    assert command.endswith("solve heat --param 'modes=[[1, 1.0]]' -o 'runs/a b' --resume")
    assert resume_command(["solve", "heat", "--resume"]).endswith("solve heat --resume")
