"""Data-parallel training: two gloo processes on loopback train on exactly the points of one
process, reach its loss and error to float64 rounding, stop together, and resume bit-identically."""
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pinn_lam.cli.main import main
from pinn_lam.errors import TrainingInterrupted
from pinn_lam.training import distributed
from pinn_lam.training.checkpoint import load_checkpoint
from pinn_lam.training.distributed import DataParallel, block, check_phases
from pinn_lam.training.solve import solve

ROOT = Path(__file__).resolve().parents[1]
# odd point counts (65 + 64 collocation points, 9 + 8 of each condition): the ranks' blocks differ
# in size, so only the count-weighted mean of their losses is the one-process loss
RUN = dict(width=10, depth=2, n_collocation=129, n_boundary=17, hard_constraints=False, eval_every=10, figure=False,
           reference_resolution=(32, 32), device="cpu", dtype="float64", params={"modes": [[1, 1.0]]},
           optimizer="lam+lbfgs", iterations=[30, 40], lr=1e-2, seed=3, checkpoint_every=10,
           resample_every=7, adaptive_every=10, adaptive_pool=512)
KILL_AT = 27  # inside the LAM phase, just after the redraw at 20 (and a resample at 21)


def test_blocks_split_the_rows_in_order_with_sizes_differing_by_at_most_one():
    for n in (1, 2, 7, 129, 1000):
        for world in range(1, min(n, 5) + 1):
            rows = [list(range(n))[block(n, rank, world)] for rank in range(world)]
            assert [row for rows_of_rank in rows for row in rows_of_rank] == list(range(n))
            assert max(map(len, rows)) - min(map(len, rows)) <= 1
    assert block(129, 0, 2) == slice(0, 65) and block(129, 1, 2) == slice(65, 129)
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\), got 2"):
        block(10, 2, 2)


def test_least_squares_phases_and_a_missing_process_group_are_refused_in_one_line(monkeypatch):
    check_phases(["lam", "lbfgs", "ssbfgs"])
    with pytest.raises(ValueError, match="optimizer lm needs the whole residual Jacobian"):
        check_phases(["lam", "lm"])
    with pytest.raises(ValueError, match="needs an initialised torch.distributed process group"):
        DataParallel("cpu")
    monkeypatch.delenv("RANK", raising=False)
    with distributed.from_environment("cpu") as data_parallel:  # outside torchrun: one process
        assert data_parallel is None


class Kill(Exception):
    pass


def _two_process_worker(rank, world, folder):
    """Every scenario of one rank; rank 0 saves what the parent checks."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{Path(folder) / 'rendezvous'}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=120))
    try:  # a rank that fails still leaves the group, so that no Gloo thread outlives the interpreter
        data_parallel, folder = DataParallel("cpu"), Path(folder)
        seen = {}

        def record(state):  # the global points and this rank's block, after every step
            seen[state.iteration] = {"global": dict(state.loss.points), "local": dict(state.loss.local.points)}

        full = solve("heat", output_dir=folder / "full", callback=record, data_parallel=data_parallel, **RUN)

        def kill(state):
            if state.iteration >= KILL_AT:
                raise Kill()

        try:
            solve("heat", output_dir=folder / "killed", callback=kill, data_parallel=data_parallel, **RUN)
        except Kill:
            pass
        resumed = solve("heat", output_dir=folder / "killed", resume=True, data_parallel=data_parallel, **RUN)

        # a stop that one rank alone asks for stops both at the same iteration
        short = dict(RUN, iterations=[20, 5], checkpoint_every=None)
        asked = solve("heat", callback=lambda state: rank == 1 and state.iteration >= 12,
                      data_parallel=data_parallel, **short)
        try:
            solve("heat", output_dir=folder / "signal", stop_requested=lambda: 15 if rank == 1 else None,
                  data_parallel=data_parallel, **short)
            interrupted = None
        except TrainingInterrupted as stop:
            interrupted = (stop.iteration, stop.checkpoint is not None)

        torch.save({"seen": seen, "full": (full.metrics, full.history, full.files),
                    "resumed": (resumed.metrics, resumed.history), "asked": asked.metrics,
                    "interrupted": interrupted}, folder / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _spawn(function, args, nprocs, timeout):
    context = mp.spawn(function, args=args, nprocs=nprocs, join=False)
    deadline = time.monotonic() + timeout
    while not context.join(timeout=max(1.0, deadline - time.monotonic())):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {nprocs} processes did not finish within {timeout} s")


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two-processes")
    _spawn(distributed.run_and_exit, (_two_process_worker, 2, str(folder)), nprocs=2, timeout=240)
    return folder, [torch.load(folder / f"rank{rank}.pt", weights_only=False) for rank in (0, 1)]


@pytest.fixture(scope="module")
def one_process():
    seen = {}

    def record(state):
        seen[state.iteration] = dict(state.loss.points)

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = solve("heat", callback=record, **RUN)
    finally:
        torch.set_num_threads(previous)
    return result, seen


@pytest.mark.slow
def test_two_processes_train_on_the_points_of_one_and_end_at_its_error(two_processes, one_process):
    folder, ranks = two_processes
    single, single_points = one_process
    metrics, history, files = ranks[0]["full"]
    # resampled at 7, 14, ..., redrawn by residual at 10, 20, ...: the same global points throughout
    assert list(ranks[0]["seen"]) == list(single_points) and len(single_points) > 10
    for iteration, points in single_points.items():
        for rank in (0, 1):
            seen = ranks[rank]["seen"][iteration]
            for name, value in points.items():
                assert torch.equal(seen["global"][name], value), (iteration, rank, name)
                assert torch.equal(seen["local"][name], value[block(len(value), rank, 2)]), (iteration, rank, name)
    assert [len(ranks[rank]["seen"][1]["local"]["bc"]) for rank in (0, 1)] == [9, 8]
    # the first loss is a sum in another order; 70 steps of LAM and L-BFGS keep float64 rounding small
    assert [k for k in history[0] if k.startswith("loss")] == ["loss", "loss_pde", "loss_ic", "loss_bc"]
    for key in ("loss", "loss_pde", "loss_ic", "loss_bc"):
        assert history[0][key] == pytest.approx(single.history[0][key], rel=1e-14), key
    assert len(history) == len(single.history)
    for mine, theirs in zip(history, single.history):
        for key in ("loss", "loss_pde", "loss_ic", "loss_bc"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-8), (mine["iteration"], key)
    assert metrics["iterations"] == single.metrics["iterations"] == 70 and metrics["processes"] == 2
    assert metrics["rel_l2"] == pytest.approx(single.metrics["rel_l2"], rel=1e-8)
    assert single.metrics["rel_l2"] < 0.05 and metrics["adaptive_redraws"] == 6
    assert ranks[1]["full"][0]["rel_l2"] == metrics["rel_l2"]  # both ranks hold the same network
    # rank 0 alone writes
    assert sorted(p.name for p in (folder / "full").iterdir()) == ["checkpoint.pt", "history.csv", "metrics.json"]
    assert files and ranks[1]["full"][2] == []


@pytest.mark.slow
def test_a_resumed_two_process_run_matches_an_uninterrupted_one(two_processes):
    folder, ranks = two_processes
    full_metrics, full_history, _ = ranks[0]["full"]
    metrics, history = ranks[0]["resumed"]
    untimed = lambda rows: [{k: v for k, v in row.items() if k != "time"} for row in rows]  # noqa: E731
    assert untimed(history) == untimed(full_history)
    assert metrics["rel_l2"] == full_metrics["rel_l2"] and metrics["iterations"] == 70
    ends = [load_checkpoint(folder / name / "checkpoint.pt") for name in ("full", "killed")]
    for key in ("model", "points", "sampler", "optimizer", "iteration", "adaptations"):
        assert repr(ends[0][key]) == repr(ends[1][key]), key
    assert all(torch.equal(a, b) for a, b in zip(ends[0]["model"].values(), ends[1]["model"].values()))


@pytest.mark.slow
def test_a_stop_asked_by_one_rank_stops_every_rank_at_the_same_iteration(two_processes):
    _, ranks = two_processes
    asked = [rank["asked"] for rank in ranks]
    assert [m["stop_reason"] for m in asked] == ["stopped by callback"] * 2
    assert asked[0]["iterations"] == asked[1]["iterations"] == 12
    # a signal on rank 1: both ranks stop after the same step; rank 0 writes the checkpoint
    assert ranks[0]["interrupted"] == (1, True) and ranks[1]["interrupted"] == (1, False)


def _torchrun_against_one_process(tmp_path, device, tolerance):
    """``torchrun --nproc-per-node 2 -m pinn_lam solve`` on ``device`` and the same command in one
    process: one set of outputs, one summary, the same error."""
    args = ["solve", "heat", "--iterations", "20,10", "--points", "257", "--width", "10", "--depth", "2",
            "--no-progress", "--no-figure", "--param", "modes=[[1, 1.0]]", "--threads", "1", "--device", device,
            "--dtype", "float64"]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "pinn_lam"]
    two = subprocess.run(launch + args + ["--output", str(tmp_path / "two")], capture_output=True, text=True,
                         env=env, timeout=240)
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("relative L2 error vs reference") == 1 and "wrote: " in two.stdout
    threads = torch.get_num_threads()
    try:  # the one-process run in this process (--threads sets the process's threads)
        assert main([*args, "--output", str(tmp_path / "one")]) == 0
    finally:
        torch.set_num_threads(threads)
    metrics = [json.loads((tmp_path / name / "metrics.json").read_text())["metrics"] for name in ("two", "one")]
    assert metrics[0]["processes"] == 2 and "processes" not in metrics[1]
    assert metrics[0]["rel_l2"] == pytest.approx(metrics[1]["rel_l2"], rel=tolerance) and metrics[1]["rel_l2"] < 0.05


@pytest.mark.slow
def test_torchrun_solve_writes_one_set_of_outputs_with_the_one_process_error(tmp_path):
    _torchrun_against_one_process(tmp_path, "cpu", 1e-8)


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_torchrun_on_two_gpus_over_nccl_reaches_the_one_gpu_error(tmp_path):
    # CUDA's reductions run in another order than the CPU's: a looser tolerance than on the CPU
    _torchrun_against_one_process(tmp_path, "cuda", 1e-6)


def test_the_resume_command_of_a_torchrun_run_starts_as_many_processes():
    from types import SimpleNamespace

    from pinn_lam.cli.solve import resume_command

    command = resume_command(["solve", "heat", "--threads", "1"], "runs/heat", SimpleNamespace(world_size=3))
    assert command == "torchrun --nproc-per-node 3 -m pinn_lam solve heat --threads 1 --output runs/heat --resume"


def _write_or_fail(rank, folder, fail):
    if fail:
        raise ValueError(f"rank {rank} failed on purpose")
    (Path(folder) / f"done{rank}").write_text("yes")


def test_run_and_exit_ends_a_spawned_process_after_its_work_and_reports_its_error(tmp_path):
    mp.spawn(distributed.run_and_exit, args=(_write_or_fail, str(tmp_path), False), nprocs=1)
    assert (tmp_path / "done0").read_text() == "yes"
    with pytest.raises(mp.ProcessRaisedException, match="rank 0 failed on purpose"):
        mp.spawn(distributed.run_and_exit, args=(_write_or_fail, str(tmp_path), True), nprocs=1)


def test_a_rank_that_ran_a_process_group_ends_with_its_code_and_its_output_flushed():
    assert distributed.exit_if_data_parallel(3) == 3  # no group started in this process: just the code
    script = ("import sys; from pinn_lam.training import distributed as d; d._STARTED_GROUP = True; "
              "sys.stdout.write('written'); d.exit_if_data_parallel(3); print('not reached')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (3, "written")
