"""``pinn-lam bench train PROBLEM``: the PINN training step side by side, and the time to accuracy.

Step time: DeepXDE's own Burgers configuration (network 2-20-20-20-1 with tanh and Glorot-normal
weights; 2540 collocation, 80 boundary and 160 initial points; soft constraints; learning rate
1e-3) is built three ways in one process: pinn-lam's loss with nested autograd derivatives,
pinn-lam's loss with the forward-mode fast path (:mod:`pinn_lam.nn.fastpath`), and DeepXDE itself
(PyTorch backend) when it is installed (``pip install 'pinn-lam[bench]'``). After a warm-up,
each takes ``--iterations`` steps per round, round after round with the order rotated, so that a
slow spell on a shared machine hits all of them alike. The table gives the median wall and CPU
(process) milliseconds per step and the ratio to DeepXDE (or to the autograd path without it).
DeepXDE's time is that of its ``Model.train`` loop, which also evaluates the loss twice per call
(about 1% at 100 steps per call).

Time to accuracy (``--accuracy``): :func:`pinn_lam.training.solve` with the problem's defaults, stopped
by a callback once the relative L2 error against the problem's reference reaches each of
``--targets``; the seconds are the trainer's own clock (training plus its periodic error
evaluation). ``--deepxde-recipe`` also runs DeepXDE's published Burgers recipe (Adam 15000
steps, then L-BFGS) with the same error measurement (its own evaluation time subtracted); it
takes minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from pinn_lam.benchmarks.deepxde import (DEPTH, N_BOUNDARY, N_DOMAIN, N_INITIAL, WIDTH, deepxde_model, deepxde_scope,
                                         deepxde_time_to_accuracy, same_device)
from pinn_lam.machine import cpu_model

HELP = "time a PINN training step (autograd, fast path, DeepXDE) and the time to reach a relative L2 error"
DESCRIPTION = ("Time one PINN training step on DeepXDE's Burgers configuration (2-20-20-20-1 tanh, 2540 + 80 + 160 "
               "points, lr 1e-3) for pinn-lam's autograd path, its forward-mode fast path and DeepXDE (when "
               "installed), interleaved in one process; optionally the wall time to reach relative L2 errors.")



def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("problem", nargs="?", default="burgers", help="problem to time (DeepXDE is compared on burgers only)")
    parser.add_argument("--optimizer", choices=("adam", "lam"), default="adam",
                        help="pinn-lam's optimizer in the step (DeepXDE always uses its Adam)")
    parser.add_argument("--iterations", type=int, default=100,
                        help="steps per round and case (DeepXDE evaluates its losses once per call: ~1%% at 100)")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (the median is reported)")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps per case first")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--width", type=int, default=WIDTH, help="hidden width (not DeepXDE's config: skips DeepXDE)")
    parser.add_argument("--depth", type=int, default=DEPTH, help="hidden layers (not DeepXDE's config: skips DeepXDE)")
    parser.add_argument("--points", type=int, default=N_DOMAIN, help="collocation points (other: skips DeepXDE)")
    parser.add_argument("--hard", action="store_true", help="use the problem's hard constraint (skips DeepXDE)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-deepxde", action="store_true", help="skip DeepXDE even when it is installed")
    parser.add_argument("--compile", action="store_true",
                        help="also time the fast-path loss under torch.compile (reports its warm-up)")
    parser.add_argument("--func", action="store_true",
                        help="also time derivatives by torch.func (vmap of jacfwd and hessian)")
    parser.add_argument("--accuracy", action="store_true", help="also measure pinn-lam's time to --targets")
    parser.add_argument("--deepxde-recipe", action="store_true",
                        help="also measure DeepXDE's recipe (Adam 15000 + L-BFGS) to --targets (minutes)")
    parser.add_argument("--preset", default=None, help="pinn_lam.training.solve preset for --accuracy (default: the problem's defaults)")
    parser.add_argument("--solve-option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra pinn_lam.training.solve option for --accuracy, e.g. width=20 or iterations=[2000,3000] (repeatable)")
    parser.add_argument("--targets", type=float, nargs="+", default=[1e-2, 1e-3], help="relative L2 errors")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds per accuracy run")
    parser.add_argument("--profile", type=int, default=0, metavar="STEPS",
                        help="also profile STEPS steps of the fast path (and DeepXDE) with torch's profiler and "
                             "print where the time goes, operation by operation")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")


def solve_options(pairs: list[str]) -> dict[str, Any]:
    """``["width=20", "dtype=float32", "iterations=[2000,3000]"]`` -> keyword arguments (JSON values, else strings)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--solve-option must look like KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def _check(args: argparse.Namespace) -> None:
    for name in ("iterations", "rounds", "width", "depth", "points"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be a positive integer, got {getattr(args, name)}")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {args.warmup}")
    if args.profile < 0:
        raise ValueError(f"--profile must be >= 0 steps, got {args.profile}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be a positive integer, got {args.threads}")
    if not all(0 < t < 1 for t in args.targets):
        raise ValueError(f"--targets must lie in (0, 1), got {args.targets}")
    if not args.time_limit > 0:
        raise ValueError(f"--time-limit must be positive seconds, got {args.time_limit}")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def func_loss(loss) -> Callable[[], tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """``loss.loss`` with the equations' derivatives from ``torch.func`` (vmap of jacfwd and
    hessian over the points) instead of nested autograd or the fast path."""
    from torch.func import functional_call, hessian, jacfwd, vmap

    from pinn_lam.pde.fields import TensorFields
    from pinn_lam.pde.spec import equation_residuals
    from pinn_lam.training.loss import unknown_parameters
    from pinn_lam.training.mean_squares import weighted_mean_squares

    problem, model = loss.problem, loss.model
    variables, keys = problem.variables, loss.spec.derivatives("pde")

    def equations() -> dict[str, torch.Tensor]:
        points = loss.points["pde"]
        params = dict(model.named_parameters())

        def u_of(x: torch.Tensor) -> torch.Tensor:
            return functional_call(model, params, (x[None],))[0]

        first = vmap(jacfwd(u_of))(points)  # (N, m, d)
        second = vmap(hessian(u_of))(points) if any(len(k) == 2 for k in keys) else None  # (N, m, d, d)
        d = {}
        for key in keys:
            i = variables.index(key[0])
            d[key] = first[:, :, i] if len(key) == 1 else second[:, :, i, variables.index(key[1])]
        fields = TensorFields(points, model(points), d, variables, problem.outputs, unknown_parameters(model),
                              time=problem.domain.time)
        return equation_residuals(problem.pde(fields), loss.spec.equations, len(points))

    def evaluate() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        residuals = equations()
        pairs = [(residuals[name], None) if name in residuals else (loss.condition_residual(name), None)
                 for name in loss.terms()]
        return weighted_mean_squares(pairs, [loss.weights[n] for n in loss.terms()], loss.terms())

    return evaluate


def pinn_lam_step(problem, *, fast: bool, optimizer: str, device: torch.device, dtype: torch.dtype,
                  seed: int, compile_loss: bool = False, use_func: bool = False, width: int = WIDTH, depth: int = DEPTH,
                  points: int = N_DOMAIN, hard: bool = False) -> tuple[Callable[[], Any], Any]:
    """One training step of pinn-lam (DeepXDE's configuration by default), and its :class:`PINNLoss`."""
    from pinn_lam.training.loss import PINNLoss
    from pinn_lam.nn.mlp import MLP
    from pinn_lam.optim.registry import make_optimizer

    rng = np.random.default_rng(seed)
    unit = lambda n, k: rng.random((n, k))  # the samplers' UnitSampler
    counts = {"ic": N_INITIAL, "bc": N_BOUNDARY}
    transform = problem.output_transform() if hard else None
    covered = transform.covers if transform is not None else ()
    samples = {"pde": problem.domain.sample(points, unit)}
    for name, condition in problem.condition_map().items():
        if name not in covered:
            samples[name] = condition.sample(problem.domain, counts.get(name, N_BOUNDARY), unit)
    samples = {k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in samples.items()}
    model = MLP(len(problem.variables), len(problem.outputs), width=width, depth=depth, activation="tanh", bounds=problem.bounds,
                output_transform=transform, generator=torch.Generator().manual_seed(seed)).to(device=device, dtype=dtype)
    loss = PINNLoss(problem, model, samples, fast=fast)
    evaluate = func_loss(loss) if use_func else loss.loss
    evaluate = torch.compile(evaluate) if compile_loss else evaluate
    opt = make_optimizer(optimizer, list(model.parameters()), 1e-3, {})  # as the trainer makes it

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        total, _ = evaluate()
        total.backward()
        opt.step()

    return step, loss


def _minor_faults() -> int:
    """Minor page faults of this process so far (0 where the OS does not say)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    except (ImportError, OSError):
        return 0


def time_steps(cases: dict[str, Callable[[int], None]], *, iterations: int, rounds: int, warmup: int,
               device: torch.device, base: str | None = None) -> dict[str, dict[str, float]]:
    """Median wall and CPU milliseconds per step of each ``case(n)`` (which takes ``n`` steps),
    timed in interleaved rounds with the order rotated every round.

    With ``base`` (a case name), also ``paired_ratio_cpu``: the median over rounds of each case's
    CPU time divided by the base's in the same round. On a machine whose speed drifts (shared
    cores, a virtual machine's neighbours) the paired ratio is far steadier than the ratio of
    medians, because both sides of each quotient ran within a second of each other.
    """
    for run in cases.values():
        if warmup:
            run(warmup)
    _synchronize(device)
    names = list(cases)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    faults = {n: 0 for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            f = _minor_faults()
            w, c = time.perf_counter(), time.process_time()
            cases[name](iterations)
            _synchronize(device)
            wall[name].append((time.perf_counter() - w) * 1e3 / iterations)
            cpu[name].append((time.process_time() - c) * 1e3 / iterations)
            faults[name] += _minor_faults() - f
    out = {n: {"wall_ms": statistics.median(wall[n]), "cpu_ms": statistics.median(cpu[n]),
               "wall_ms_min": min(wall[n]), "page_faults_per_step": faults[n] / (rounds * iterations)}
           for n in names}
    if base is not None:
        for n in names:
            out[n]["paired_ratio_cpu"] = statistics.median(a / b for a, b in zip(cpu[n], cpu[base]))
    return out


def peak_memory_mb(step: Callable[[], None], device: torch.device | str = "cpu") -> float:
    """Peak bytes allocated during one step beyond what was allocated before it, in MB: on the CPU
    from torch's profiler memory events (allocations minus frees in time order), on CUDA from the
    caching allocator's peak statistics."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 1e6
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e for e in prof.events() if e.self_cpu_memory_usage != 0), key=lambda e: e.time_range.start)
    total = top = 0
    for event in events:
        total += event.self_cpu_memory_usage
        top = max(top, total)
    return top / 1e6


def profile_steps(steps: Callable[[int], None], count: int, rows: int = 12) -> list[dict[str, Any]]:
    """The ``rows`` operations with the most self CPU time over ``count`` steps (torch profiler):
    name, ms per step, share of the profiled self time, calls per step. A custom autograd
    Function's own time includes what it calls outside PyTorch (the fused loops); the profiler
    adds a few microseconds to every operation, so the shares are approximate."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        steps(count)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [{"name": e.key, "ms_per_step": e.self_cpu_time_total / count / 1e3,
             "share": e.self_cpu_time_total / total, "calls_per_step": e.count / count} for e in events[:rows]]


def time_to_accuracy(problem, targets: list[float], *, fast: bool, time_limit: float, seed: int,
                     device: str | None, preset: str | None = None, **options: Any) -> dict[str, Any]:
    """Seconds for :func:`pinn_lam.training.solve` (problem defaults, or ``preset``) to reach each target error."""
    from pinn_lam.training.solve import solve

    reached: dict[str, float | None] = {f"{t:g}": None for t in targets}

    def callback(state) -> bool:
        error = state.rel_l2  # the latest evaluated error (every eval_every iterations)
        for t in targets:
            if error is not None and error <= t and reached[f"{t:g}"] is None:
                reached[f"{t:g}"] = round(state.elapsed, 2)
        return all(v is not None for v in reached.values())

    options.setdefault("eval_every", 50)
    result = solve(problem, seed=seed, fast=fast, device=device, preset=preset, time_limit=time_limit,
                   callback=callback, figure=False, **options)
    return {"seconds_to": reached, "final_rel_l2": result.metrics["rel_l2"], "seconds": result.metrics["seconds"],
            "options": options,
            "iterations": result.metrics["iterations"], "optimizer": result.config["optimizer"],
            "dtype": result.config["dtype"], "stop": result.metrics["stop_reason"]}


def machine() -> str:
    from pinn_lam.machine import tune_malloc

    malloc = "glibc malloc tuned" if tune_malloc() else "default malloc"
    return f"{cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, {malloc}"


def run(args: argparse.Namespace) -> int:
    _check(args)
    solve_options(args.solve_option)  # fail early on a malformed option
    if args.preset is not None:  # and on an unknown preset, before minutes of timing
        from pinn_lam.training.presets import resolve

        resolve(args.problem, args.preset)
    import problems

    problem = problems.get(args.problem)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = getattr(torch, args.dtype)
    print(f"machine: {machine()}; device {device}, {args.dtype}")
    shape = dict(width=args.width, depth=args.depth, points=args.points, hard=args.hard)
    deepxde_config = shape == dict(width=WIDTH, depth=DEPTH, points=N_DOMAIN, hard=False)
    print(f"configuration: {problem!r}, MLP {len(problem.variables)}-{'-'.join([str(args.width)] * args.depth)}-1 tanh, "
          f"{args.points} domain + condition points ({N_BOUNDARY} boundary, {N_INITIAL} initial), "
          f"{'hard' if args.hard else 'soft'} constraints, lr 1e-3")

    def repeat(step: Callable[[], None]) -> Callable[[int], None]:
        def steps_(n: int) -> None:
            for _ in range(n):
                step()
        return steps_

    steps: dict[str, Callable[[], None]] = {}
    losses = {}
    for label, fast in (("autograd", False), ("fast path", True)):
        steps[f"pinn-lam {label} ({args.optimizer})"], losses[label] = pinn_lam_step(
            problem, fast=fast, optimizer=args.optimizer, device=device, dtype=dtype, seed=args.seed, **shape)
    if not losses["fast path"].fast:
        print("note: the fast path does not support this model; both pinn-lam rows use autograd")
    if args.compile:
        step, _ = pinn_lam_step(problem, fast=True, optimizer=args.optimizer, device=device, dtype=dtype,
                                seed=args.seed, compile_loss=True, **shape)
        begin = time.perf_counter()
        step()
        _synchronize(device)
        print(f"torch.compile warm-up (first step): {time.perf_counter() - begin:.1f} s")
        steps[f"pinn-lam fast path + torch.compile ({args.optimizer})"] = step
    if args.func:
        steps[f"pinn-lam torch.func vmap ({args.optimizer})"], _ = pinn_lam_step(
            problem, fast=False, use_func=True, optimizer=args.optimizer, device=device, dtype=dtype,
            seed=args.seed, **shape)
    cases = {name: repeat(step) for name, step in steps.items()}
    dde_model = None
    if not args.no_deepxde and args.problem == "burgers" and not deepxde_config:
        print("DeepXDE skipped: it is timed on its own configuration only")
    if not args.no_deepxde and args.problem == "burgers" and deepxde_config:
        dde_model = deepxde_model(problem.nu, args.seed)
        if dde_model is not None:
            if not same_device(dde_model.net.linears[0].weight.device, device) or dtype != torch.float32:
                print(f"DeepXDE skipped: it runs float32 on its own default device "
                      f"({dde_model.net.linears[0].weight.device}) here")
                dde_model = None
            else:
                def deepxde_steps(n: int) -> None:
                    with deepxde_scope(dde_model.pinn_lam_device):
                        dde_model.train(iterations=n, display_every=n, verbose=0)

                cases["DeepXDE (adam)"] = deepxde_steps
    base = "DeepXDE (adam)" if "DeepXDE (adam)" in cases else next(iter(cases))
    timings = time_steps(cases, iterations=args.iterations, rounds=args.rounds, warmup=args.warmup, device=device,
                         base=base)
    print(f"\nstep time, median of {args.rounds} rounds x {args.iterations} steps (ratio to {base}; 'paired' is the "
          f"median over rounds of the ratio within a round):")
    print(f"{'case':48s} {'wall ms':>9s} {'cpu ms':>9s} {'ratio wall':>11s} {'ratio cpu':>10s} {'paired cpu':>11s} "
          f"{'faults/step':>12s}")
    for name, t in timings.items():
        t["ratio_wall"] = t["wall_ms"] / timings[base]["wall_ms"]
        t["ratio_cpu"] = t["cpu_ms"] / timings[base]["cpu_ms"]
        print(f"{name:48s} {t['wall_ms']:9.3f} {t['cpu_ms']:9.3f} {t['ratio_wall']:11.2f} {t['ratio_cpu']:10.2f} "
              f"{t['paired_ratio_cpu']:11.2f} {t['page_faults_per_step']:12.1f}")
    results: dict[str, Any] = {"machine": machine(), "device": str(device), "dtype": args.dtype, "steps": timings}
    if device.type in ("cpu", "cuda"):
        memory = {name: peak_memory_mb(steps[name], device) for name in steps
                  if "compile" not in name and "func" not in name}
        results["peak_memory_mb"] = memory
        first = next(iter(memory))
        source = "torch profiler, CPU allocations" if device.type == "cpu" else "CUDA caching allocator peak"
        print(f"\npeak memory of one step ({source}):")
        for name, mb in memory.items():
            print(f"{name:48s} {mb:8.2f} MB  ({mb / memory[first]:.2f}x autograd)")
    if args.profile:
        results["profile"] = {}
        for name in cases:
            if "fast path" not in name and "DeepXDE" not in name or "compile" in name:
                continue
            table = results["profile"][name] = profile_steps(cases[name], args.profile)
            print(f"\nwhere the time goes, {name}: self CPU time per step over {args.profile} profiled steps "
                  f"(top {len(table)} operations)")
            print(f"{'operation':60s} {'ms/step':>8s} {'share':>6s} {'calls/step':>10s}")
            for row in table:
                print(f"{row['name'][:60]:60s} {row['ms_per_step']:8.3f} {row['share']:6.1%} {row['calls_per_step']:10.1f}")
    if args.accuracy:
        results["accuracy"] = {}
        for label, fast in (("pinn-lam fast path", True),):
            options = solve_options(args.solve_option)
            print(f"\ntime to accuracy, {label}: pinn_lam.training.solve({args.problem!r}, preset={args.preset!r}, {options}) ...")
            out = time_to_accuracy(args.problem, args.targets, fast=fast, time_limit=args.time_limit,
                                   seed=args.seed, device=args.device, preset=args.preset, **options)
            results["accuracy"][label] = out
            print(json.dumps(out))
    if args.deepxde_recipe and args.problem == "burgers":
        print("\ntime to accuracy, DeepXDE recipe (Adam 15000 + L-BFGS) ...")
        out = deepxde_time_to_accuracy(problem, args.targets, time_limit=args.time_limit, seed=args.seed)
        results.setdefault("accuracy", {})["DeepXDE recipe"] = out
        print(json.dumps(out) if out else "DeepXDE not available")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {args.json}")
    return 0
