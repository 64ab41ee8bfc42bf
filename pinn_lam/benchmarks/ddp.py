"""``pinn-lam bench ddp``: time per iteration of one training run over 1, 2, ... processes
(:mod:`pinn_lam.training.distributed`), at several numbers of collocation points.

For every number of points and of processes the command starts the processes (one process runs
in the command's own), builds the run as ``solve`` does (the problem's network, sampler and loss;
``--iterations`` of LAM after ``--warmup`` untimed ones; no evaluation, no checkpoints) and
times the iterations after the warm-up on rank 0, whose clock waits for the slowest rank at the
end of every step. Every process uses ``--threads`` threads (1 by default: on a shared machine
the processes then compete for cores, not for threads) and keeps freed memory for reuse
(:func:`pinn_lam.machine.tune_malloc`, as the command line does). On the CPU the ranks talk through gloo
on loopback; with ``--device cuda`` through NCCL, rank ``r`` on GPU ``r`` (at most one process
per GPU). The table also shows the loss after the timed iterations: the runs train on the same
points, so it agrees across the numbers of processes to float64 rounding, and the CPU time per
iteration summed over the processes (:func:`time.process_time`: what the run costs in CPU,
less sensitive than the wall time to other programs on a shared machine).

Example: ``pinn-lam bench ddp --points 4096,65536 --processes 1,2 --threads 1``.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

HELP = "data-parallel training: time per iteration with 1, 2, ... processes (torch.distributed) at several point counts"


def _integers(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--problem", default="heat", help="a library problem or path/to/script.py:NAME")
    parser.add_argument("--points", type=_integers, default=[4096, 65536], metavar="N[,N...]",
                        help="numbers of collocation points")
    parser.add_argument("--processes", type=_integers, default=[1, 2], metavar="P[,P...]",
                        help="numbers of processes (on CUDA at most the number of GPUs)")
    parser.add_argument("--iterations", type=int, default=30, help="timed LAM iterations per configuration")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations before them")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads per process")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cpu (gloo) or cuda (NCCL)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float64", help="floating-point precision")
    parser.add_argument("--json", metavar="FILE", help="also write the results to this JSON file")


def _settings(problem: str, points: int, iterations: int, device: str, dtype: str) -> dict[str, Any]:
    """The run's options as ``solve`` resolves them: the problem's defaults, one LAM phase."""
    from pinn_lam.training.setup import configure, make_problem

    options = dict(optimizer="lam", iterations=iterations, lr=None, lr_decay=None, width=None, depth=None,
                   activation=None, n_collocation=points, n_boundary=None, sampler=None, resample_every=None,
                   hard_constraints=None, dtype=dtype, eval_every=None, checkpoint_every=None, weights=None,
                   device=device, adaptive_every=None, adaptive_pool=None, time_limit=None)
    config = configure(make_problem(problem), None, options)
    config.update(seed=0, fast=None)
    return config


def measure_one(rank: int, processes: int, rendezvous: str | None, problem: str, config: dict[str, Any], warmup: int,
                threads: int, result_file: str | None = None) -> dict[str, Any]:
    """One configuration on rank ``rank`` of ``processes``: wall seconds per timed iteration on
    rank 0, CPU seconds per iteration summed over the ranks, and the loss after them (written to
    ``result_file`` by rank 0 when given). The processes meet through the file ``rendezvous``
    (a :class:`torch.distributed.FileStore`: no port to choose, none to collide with)."""
    from pinn_lam.machine import tune_malloc
    from pinn_lam.training.distributed import DataParallel, ShardedLoss, writer_first
    from pinn_lam.training.phases import Phase
    from pinn_lam.training.setup import build, make_problem
    from pinn_lam.training.trainer import Trainer

    tune_malloc()  # as in the command's own process (a spawned process starts with glibc's defaults)
    torch.set_num_threads(threads)
    device = torch.device(config["device"])
    data_parallel = None
    if processes > 1:
        if device.type == "cuda":
            device = torch.device("cuda", rank)
            torch.cuda.set_device(device)
            config = dict(config, device=str(device))
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                             init_method=f"file://{rendezvous}", rank=rank, world_size=processes,
                                             timeout=datetime.timedelta(seconds=600))
        data_parallel = DataParallel(device)
    try:
        instance = make_problem(problem)
        model, _, loss = build(instance, config)
        if data_parallel is not None:
            loss = ShardedLoss(loss, data_parallel)
        if loss.fast and device.type == "cpu":
            from pinn_lam.nn import kernels

            writer_first(data_parallel, kernels.library)
        clock: dict[int, tuple[float, float]] = {}

        def tick(state) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            clock[state.iteration] = (time.perf_counter(), time.process_time())

        total = config["iterations"][0]
        trainer = Trainer(model, loss, [Phase("lam", total, config["lr"])], lr_decay=config["lr_decay"],
                          callback=tick, data_parallel=data_parallel)
        trainer.run()
        wall, cpu = ((end - start) / (total - warmup) for start, end in zip(clock[warmup], clock[total]))
        if data_parallel is not None:
            cpu = float(data_parallel.all_reduce(torch.tensor(cpu, dtype=torch.float64)))
        result = {"points": config["n_collocation"], "processes": processes, "seconds_per_iteration": wall,
                  "cpu_seconds_per_iteration": cpu, "loss": trainer.history[-1]["loss"], "fast_path": loss.fast}
    finally:
        if data_parallel is not None:
            torch.distributed.destroy_process_group()
    if result_file is not None and rank == 0:
        Path(result_file).write_text(json.dumps(result))
    return result


def measure(problem: str, points: list[int], processes: list[int], *, iterations: int = 30, warmup: int = 5,
            threads: int = 1, device: str = "cpu", dtype: str = "float64") -> list[dict[str, Any]]:
    """A row per (points, processes): see the module docstring."""
    import torch.multiprocessing as mp

    from pinn_lam.training.distributed import run_and_exit

    if device == "cuda" and max(processes) > torch.cuda.device_count():
        raise ValueError(f"--processes {max(processes)} needs as many GPUs; this machine has "
                         f"{torch.cuda.device_count()}")
    rows = []
    for n in points:
        config = _settings(problem, n, warmup + iterations, device, dtype)
        for count in processes:
            if count == 1:
                rows.append(measure_one(0, 1, None, problem, config, warmup, threads))
                continue
            with tempfile.TemporaryDirectory() as folder:
                file, rendezvous = os.path.join(folder, "result.json"), os.path.join(folder, "rendezvous")
                mp.spawn(run_and_exit, args=(measure_one, count, rendezvous, problem, config, warmup, threads, file),
                         nprocs=count)
                rows.append(json.loads(Path(file).read_text()))
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The results as aligned text; the speed-up is against one process at the same points."""
    header = f"{'points':>8} {'processes':>9} {'ms/iteration':>12} {'speed-up':>8} {'CPU ms/iteration':>16} {'loss':>12}"
    lines = [header]
    for row in rows:
        single = next((r for r in rows if r["points"] == row["points"] and r["processes"] == 1), None)
        speedup = f"{single['seconds_per_iteration'] / row['seconds_per_iteration']:.2f}" if single else "-"
        lines.append(f"{row['points']:>8} {row['processes']:>9} {1e3 * row['seconds_per_iteration']:>12.2f} "
                     f"{speedup:>8} {1e3 * row['cpu_seconds_per_iteration']:>16.2f} {row['loss']:>12.6e}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    for name in ("iterations", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.warmup < 1:
        raise ValueError(f"--warmup must be a positive integer, got {args.warmup}")
    from pinn_lam.machine import cpu_model

    rows = measure(args.problem, args.points, args.processes, iterations=args.iterations, warmup=args.warmup,
                   threads=args.threads, device=args.device, dtype=args.dtype)
    machine = torch.cuda.get_device_name() if args.device == "cuda" else cpu_model()
    print(f"{args.problem}, LAM, {args.dtype}, {args.threads} thread(s) per process, {machine}, "
          f"torch {torch.__version__}, {os.cpu_count()} cores")
    print(table(rows))
    if args.json:
        record = {"rows": rows, "machine": machine, "threads": args.threads}
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
    return 0
