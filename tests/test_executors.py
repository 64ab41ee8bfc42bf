"""Runs on Dask: scheduler strings, resumable results written by the client, a worker killed
mid-run, deterministic failures recorded once, tune's trials reporting from the workers (a real
two-process ``distributed.LocalCluster``)."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from pinn_lam.studies import executors
from pinn_lam.studies.compare import RunSpec, execute, load_result, result_path, run_comparison

SPECS = [RunSpec("heat", "lam", seed=seed, iterations=1) for seed in range(4)]


def record(spec: RunSpec, **extra) -> dict:
    """A finished run's result, with what the worker saw (``extra``)."""
    return {"spec": spec.to_json(), "key": spec.key, "status": "ok", "error": None, "history": [],
            "metrics": {"rel_l2": 0.1 * (spec.seed + 1), **extra}, "stiffness": [], "train_seconds": 0.0}


def where_run(spec: RunSpec) -> dict:
    """Ends at once, reporting its process and torch threads."""
    import torch

    return record(spec, pid=os.getpid(), threads=torch.get_num_threads())


def run_once_then_die(spec: RunSpec) -> dict:
    """Seed 1's first attempt writes its pid and hangs until killed; a second attempt ends at once."""
    folder = Path(os.environ["PINN_LAM_TEST_OUT"])
    attempts = folder / f"attempts-{spec.seed}"
    with open(attempts, "a") as handle:
        handle.write(f"{os.getpid()}\n")
    if spec.seed == 1 and len(attempts.read_text().split()) == 1:
        (folder / "hanging.pid").write_text(str(os.getpid()))
        time.sleep(120)
    return record(spec, pid=os.getpid())


def fail_deterministically(spec: RunSpec) -> dict:
    """A run that ends as diverged (``execute``'s failed status), counting its attempts."""
    with open(Path(os.environ["PINN_LAM_TEST_OUT"]) / f"calls-{spec.seed}", "a") as handle:
        handle.write("call\n")
    return {**record(spec), "status": "failed", "error": "DivergenceError: diverging loss at iteration 3"}


def kill_own_worker(spec: RunSpec) -> dict:
    """A run that takes its worker process down every time (a segfault, the out-of-memory killer)."""
    os.kill(os.getpid(), signal.SIGKILL)
    return record(spec)


def never_run(spec: RunSpec) -> dict:
    raise AssertionError(f"{spec.key} was finished already and must not run again")


# -- scheduler strings, no Dask needed ----------------------------------------------------------

def test_parse_scheduler_names_the_three_places():
    assert executors.parse_scheduler(None) == ("processes", None)
    assert executors.parse_scheduler("local:3") == ("local", 3)
    assert executors.parse_scheduler("tcp://10.1.2.3:8786") == ("remote", "tcp://10.1.2.3:8786")
    for bad in ("local:0", "local:two", "10.1.2.3:8786", "tcp://", "slurm"):
        with pytest.raises(ValueError, match="scheduler"):
            executors.parse_scheduler(bad)


def test_scheduler_without_dask_is_a_one_line_error_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ValueError, match=r"pinn-lam\[dask\]") as error:
        run_comparison(SPECS[:1], tmp_path, run=where_run, scheduler="local:2", log=None)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("command", [["compare", "heat"], ["figures", "--quick"]])
def test_scheduler_option_errors_are_one_line_before_any_run(command, monkeypatch, tmp_path, capsys):
    from pinn_lam.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(command + ["--scheduler", "slurm"]) == 2
    assert main(command + ["--scheduler", "local:2", "--workers", "2"]) == 2
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert main(command + ["--scheduler", "local:2"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and "unknown scheduler 'slurm'" in errors[0] and "--workers" in errors[1]
    assert "pip install 'pinn-lam[dask]'" in errors[2]
    assert not list(tmp_path.iterdir())


def test_runs_on_host_adds_the_threads_of_each_machines_workers():
    workers = {"tcp://10.0.0.1:4001": {"host": "10.0.0.1", "nthreads": 1},
               "tcp://10.0.0.1:4002": {"host": "10.0.0.1", "nthreads": 2},
               "tcp://10.0.0.2:4001": {"nthreads": 4}}
    assert executors.runs_on_host(workers) == {"10.0.0.1": 3, "10.0.0.2": 4}


# -- a real LocalCluster of two worker processes ------------------------------------------------

@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two loopback worker processes (one thread each); a run may lose its worker once and be
    retried, a second loss fails it."""
    distributed = pytest.importorskip("distributed")
    import dask

    send_functions_by_value()
    out = tmp_path_factory.mktemp("worker-out")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PINN_LAM_TEST_OUT", str(out))  # inherited by the worker processes
        patch.setenv("PINN_LAM_KERNELS", "0")  # no kernels to compile in them
        with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
            with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                          dashboard_address=":0", silence_logs=50) as local:
                yield local, out


def send_functions_by_value() -> None:
    """Workers unpickle this file's run functions without importing it."""
    cloudpickle = pytest.importorskip("cloudpickle")
    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def fresh(out: Path) -> Path:
    for path in out.iterdir():
        path.unlink()
    return out


def test_dask_runs_land_in_the_folder_written_by_the_client_and_resume_across_executors(cluster, tmp_path):
    local, _ = cluster
    # half the comparison ran here (the in-process executor), then it was stopped
    run_comparison(SPECS[:2], tmp_path, workers=1, run=where_run, warm=False, log=None)
    results = run_comparison(SPECS, tmp_path, run=where_run, scheduler=local.scheduler_address, log=None)
    assert [r["metrics"]["rel_l2"] for r in results] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert {r["metrics"]["pid"] for r in results[:2]} == {os.getpid()}
    assert os.getpid() not in {r["metrics"]["pid"] for r in results[2:]}
    # each of the 2 workers runs one run at a time: cores // 2 torch threads
    assert {r["metrics"]["threads"] for r in results[2:]} == {max(1, executors.usable_cores() // 2)}
    for spec, result in zip(SPECS, results):
        assert load_result(tmp_path, spec) == json.loads(json.dumps(result))
    assert not list((tmp_path / "runs").glob("*.tmp*"))
    # restarted: nothing left to run, whichever executor ran what
    again = run_comparison(SPECS, tmp_path, run=never_run, scheduler=local.scheduler_address, log=None)
    assert again == results


def test_a_worker_killed_mid_run_loses_only_that_run(cluster, tmp_path):
    local, out = cluster
    fresh(out)
    pid_file = out / "hanging.pid"

    def kill_when_hanging():
        deadline = time.monotonic() + 60
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)

    killer = threading.Thread(target=kill_when_hanging, daemon=True)
    killer.start()
    results = run_comparison(SPECS, tmp_path, run=run_once_then_die, scheduler=local.scheduler_address, log=None)
    killer.join(timeout=5)
    assert [r["status"] for r in results] == ["ok"] * 4
    assert [r["metrics"]["rel_l2"] for r in results] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    first, second = (out / "attempts-1").read_text().split()
    assert first == pid_file.read_text() and second != first  # retried in another process
    assert [len((out / f"attempts-{s}").read_text().split()) for s in (0, 2, 3)] == [1, 1, 1]
    assert all(load_result(tmp_path, spec) is not None for spec in SPECS)


def test_deterministic_failures_are_recorded_once_and_a_worker_killer_gives_up(cluster, tmp_path):
    local, out = cluster
    fresh(out)
    diverged = run_comparison(SPECS[:2], tmp_path, run=fail_deterministically, scheduler=local.scheduler_address,
                              log=None)
    assert [r["status"] for r in diverged] == ["failed", "failed"]
    assert [(out / f"calls-{s}").read_text().count("call") for s in (0, 1)] == [1, 1]
    assert load_result(tmp_path, SPECS[0])["error"].startswith("DivergenceError")
    lost = run_comparison(SPECS[2:3], tmp_path, run=kill_own_worker, scheduler=local.scheduler_address, log=None)
    assert lost[0]["status"] == "failed" and lost[0]["error"].startswith("KilledWorker")
    assert json.loads(result_path(tmp_path, SPECS[2]).read_text())["status"] == "failed"


def test_a_real_run_on_the_cluster_matches_the_same_run_here(cluster, tmp_path):
    import torch

    local, _ = cluster
    spec = RunSpec("heat", "adam", seed=3, lr=1e-3, iterations=20, preset="quick", eval_every=10,
                   solve_options=(("fast", False),))  # autograd: no kernels to compile in the worker
    there = run_comparison([spec], tmp_path, scheduler=local.scheduler_address, log=None)[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, executors.usable_cores() // 2))
    try:
        here = execute(spec)
    finally:
        torch.set_num_threads(threads)
    assert there["status"] == here["status"] == "ok"
    assert there["metrics"]["iterations"] == here["metrics"]["iterations"] == 20
    assert there["metrics"]["rel_l2"] == pytest.approx(here["metrics"]["rel_l2"], rel=1e-9)
    assert 0 < there["metrics"]["rel_l2"] < 10


def test_tune_trials_on_the_cluster_report_to_the_study(cluster, tmp_path):
    pytest.importorskip("optuna")
    from pinn_lam.studies.tune import Search, tune

    local, _ = cluster
    search = Search("heat", "adam", fixed=(("iterations", 20), ("seed", 0), ("preset", "quick"), ("eval_every", 10)))
    study = tune(search, trials=2, storage=str(tmp_path / "study.journal"), study_name="dask", startup_trials=2,
                 scheduler=local.scheduler_address, log=None)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    # the workers reported the evaluations of iterations 0 and 10 (seen after the next step) to the journal
    assert all(sorted(t.intermediate_values) == [1, 11] for t in study.trials)
    assert all(t.user_attrs["iterations"] == 20 and 0 < t.value < 10 for t in study.trials)


def test_local_n_starts_and_stops_its_own_cluster(tmp_path):
    pytest.importorskip("distributed")
    send_functions_by_value()
    results = run_comparison(SPECS[:2], tmp_path, run=where_run, scheduler="local:1", warm=False, log=None)
    assert [r["metrics"]["rel_l2"] for r in results] == pytest.approx([0.1, 0.2])
    assert len({r["metrics"]["pid"] for r in results}) == 1 and results[0]["metrics"]["pid"] != os.getpid()
