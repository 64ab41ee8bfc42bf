"""One run, one folder: refusal of another run's files, --overwrite, the lock, stale temporaries,
and no empty folder after a failed start."""
import os
import socket
import subprocess
import sys

import pytest

from pinn_lam.errors import RunFolderError
from pinn_lam.training import rundir
from pinn_lam.training.solve import solve

TINY = dict(optimizer="adam", iterations=3, width=8, depth=2, n_collocation=64, n_boundary=8, figure=False,
            reference_resolution=(16, 16), device="cpu", params={"modes": [[1, 1.0]]})


def test_a_folder_holding_another_run_is_refused_naming_resume_and_overwrite(tmp_path):
    first = solve("heat", output_dir=tmp_path, **TINY)
    before = (tmp_path / "metrics.json").read_text()
    with pytest.raises(RunFolderError) as caught:
        solve("heat", output_dir=tmp_path, **dict(TINY, seed=1))
    message = str(caught.value)
    assert "\n" not in message and "holds another run (checkpoint.pt, metrics.json, history.csv)" in message
    assert "--resume" in message and "--overwrite" in message
    assert (tmp_path / "metrics.json").read_text() == before and not (tmp_path / rundir.LOCK_NAME).exists()
    second = solve("heat", output_dir=tmp_path, overwrite=True, **dict(TINY, seed=1))
    assert second.metrics["rel_l2"] != first.metrics["rel_l2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "history.csv", "metrics.json"]


def test_overwrite_removes_every_file_of_the_old_run_before_starting(tmp_path):
    for name in rundir.RUN_FILES:
        (tmp_path / name).write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    solve("heat", output_dir=tmp_path, overwrite=True, **TINY)  # figure=False: no new solution.png/pdf
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "history.csv", "metrics.json", "notes.txt"]
    with pytest.raises(ValueError, match="resume and overwrite exclude each other"):
        solve("heat", output_dir=tmp_path, overwrite=True, resume=True, **TINY)


@pytest.mark.parametrize("failure", ["resume without checkpoint", "invalid parameter"])
def test_a_failed_start_leaves_no_folder_behind(tmp_path, failure):
    folder = tmp_path / "a" / "b"
    if failure == "resume without checkpoint":
        with pytest.raises(FileNotFoundError, match="no checkpoint"):
            solve("heat", output_dir=folder, resume=True, **TINY)
    else:
        with pytest.raises(ValueError, match="alpha"):
            solve("heat", output_dir=folder, **dict(TINY, params={"alpha": -1.0}))
    assert list(tmp_path.iterdir()) == []


def test_a_live_lock_refuses_a_second_writer_and_a_dead_ones_is_taken_over(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / rundir.LOCK_NAME).write_text(f"{sleeper.pid} {socket.gethostname()}\n")
        with pytest.raises(RunFolderError, match=f"in use by process {sleeper.pid}") as caught:
            solve("heat", output_dir=tmp_path, **TINY)
        assert "\n" not in str(caught.value)
        assert not (tmp_path / "checkpoint.pt").exists()
        assert rundir.lock_owner(tmp_path / rundir.LOCK_NAME) == (sleeper.pid, socket.gethostname())
    finally:
        sleeper.kill()
        sleeper.wait()
    # the owner is gone: its lock is stale and the next run takes it over, then releases it
    solve("heat", output_dir=tmp_path, **TINY)
    assert (tmp_path / "checkpoint.pt").exists() and not (tmp_path / rundir.LOCK_NAME).exists()


def test_a_lock_held_in_this_process_refuses_a_concurrent_run(tmp_path):
    with rundir.claim(tmp_path):
        assert rundir.lock_owner(tmp_path / rundir.LOCK_NAME) == (os.getpid(), socket.gethostname())
        with pytest.raises(RunFolderError, match="in use by process"):
            solve("heat", output_dir=tmp_path, **TINY)
    assert not (tmp_path / rundir.LOCK_NAME).exists()


def test_stale_temporaries_of_killed_writes_are_removed_on_the_next_start(tmp_path):
    stale = [tmp_path / ".checkpoint.pt.abc123.tmp", tmp_path / ".solution.pdf.x9.tmp"]
    kept = [tmp_path / ".other.tmp", tmp_path / "data.tmp"]
    for path in stale + kept:
        path.write_bytes(b"partial")
    solve("heat", output_dir=tmp_path, **TINY)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
