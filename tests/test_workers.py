"""Comparison workers exit when their parent is killed, and a finished result is on disk first."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pinn_lam.studies import workers
from pinn_lam.studies.compare import RunSpec, load_result, result_path, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
FAST, SLOW = RunSpec("heat", "lam", seed=0, iterations=1), RunSpec("heat", "lam", seed=1, iterations=1)


def fake_run(spec):
    """A run that ends at once (seed 0) or never (seed 1, after writing its pid)."""
    if spec.seed == 1:
        Path(os.environ["PINN_LAM_TEST_OUT"], "slow.pid").write_text(str(os.getpid()))
        time.sleep(120)
    return {"spec": spec.to_json(), "key": spec.key, "status": "ok", "metrics": {"rel_l2": 0.5}, "history": []}


def running(pid):
    """Whether ``pid`` is a live process (a zombie waiting for a parent that never reaps is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_until(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def python(code, **env):
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{TESTS}", **env))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("protection", ["die_with_parent()", "watch_parent(interval=0.05)"])
def test_an_orphaned_worker_exits_by_each_protection(protection):
    parent = python(
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'from pinn_lam.studies import workers; import time; "
        f"workers.{protection}; print(1, flush=True); time.sleep(120)'], stdout=subprocess.PIPE, text=True)\n"
        "child.stdout.readline()\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n")
    child = int(parent.stdout.readline())
    assert running(child)
    parent.kill()
    parent.wait()
    assert wait_until(lambda: not running(child), 10)


def test_run_and_keep_writes_the_result_before_returning_it(tmp_path):
    path = result_path(tmp_path, FAST)
    record = workers.run_and_keep(fake_run, FAST, path, write_json_atomic)
    assert json.loads(path.read_text()) == record and load_result(tmp_path, FAST) == record


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_a_comparison_keeps_its_finished_result_and_ends_its_workers(tmp_path):
    parent = python(
        "from pinn_lam.studies.compare import RunSpec, run_comparison\n"
        "from test_workers import FAST, SLOW, fake_run\n"
        f"run_comparison([FAST, SLOW], {str(tmp_path)!r}, workers=2, run=fake_run, log=None)\n",
        PINN_LAM_TEST_OUT=str(tmp_path))
    pid_file = tmp_path / "slow.pid"
    assert wait_until(lambda: pid_file.exists() and load_result(tmp_path, FAST) is not None, 120)
    slow = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert wait_until(lambda: not running(slow), 10)
    assert load_result(tmp_path, FAST)["metrics"] == {"rel_l2": 0.5}
