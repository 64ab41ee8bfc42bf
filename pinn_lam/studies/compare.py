"""Optimizer comparisons: independent runs (optimizer or variant, seed, learning rate), in parallel, resumable.

A comparison is a list of :class:`RunSpec`. Each run is one ``pinn_lam.training.solve(...)`` call,
independent of every other, so :func:`run_comparison` farms them out to an executor of
:mod:`pinn_lam.studies.executors` (local ``spawn`` worker processes by default, ``cores // workers``
torch threads each; or a Dask cluster) and writes each result atomically to
``<output>/runs/<key>.json`` as soon as it finishes (a local worker writes it, so it survives its
parent, and exits when its parent dies, see :mod:`pinn_lam.studies.workers`; with Dask the client
writes it). The key hashes every field of the spec, so a killed comparison started again with
the same options skips the runs already on disk and redoes only the rest, while a changed budget
or parameter never reuses a stale result.

A run's JSON holds ``spec``, ``status`` (``"ok"`` or ``"failed"`` with ``error``: a diverged
run is a result too), ``metrics`` and ``history`` from :class:`pinn_lam.training.solve.Result`, the
stiffness rows of :class:`pinn_lam.studies.stiffness.StiffnessMonitor`, and the seconds spent on them.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import time
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from pinn_lam.atomic import atomic_write
from pinn_lam.optim import registry
from pinn_lam.optim.registry import VARIANTS, resolve_label
from pinn_lam.studies.workers import run_and_keep

#: optimizers of the learning-rate sensitivity study
LR_STUDY = ("lam", "adam")
#: iteration budget of a run limited by wall time only
UNBOUNDED = 10 ** 9


def _jsonable(value: Any) -> Any:
    """Plain JSON types (tuples -> lists, numpy/torch scalars -> float/int)."""
    return json.loads(json.dumps(value, default=_default))


def _default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a result file")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One training run of a comparison.

    ``label`` names the optimizer or variant (see :func:`resolve_label`); ``case`` names the
    problem instance in tables and folders (a suite case, or the problem's name); ``lr=None``
    uses ``solve``'s default. The budget is ``iterations`` and/or ``time_limit`` (seconds).
    ``stiffness_every`` > 0 records per-term gradient norms every that many iterations,
    ``hessian_at`` the iterations (and ``hessian_times`` the training seconds) where the Hessian's
    top eigenvalue is estimated. ``solve_options`` are further ``solve`` keywords (sorted pairs).
    """

    problem: str
    label: str
    seed: int = 0
    lr: float | None = None
    iterations: int | None = None
    time_limit: float | None = None
    params: tuple[tuple[str, Any], ...] = ()
    case: str = ""
    preset: str | None = None
    eval_every: int | None = None
    stiffness_every: int = 0
    hessian_at: tuple[int, ...] = ()
    hessian_times: tuple[float, ...] = ()
    solve_options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        resolve_label(self.label)
        if self.iterations is not None and self.iterations < 1:
            raise ValueError(f"iterations must be a positive integer, got {self.iterations!r}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise ValueError(f"time limit must be positive seconds, got {self.time_limit!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr!r}")

    @property
    def name(self) -> str:
        return self.case or self.problem

    def to_json(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))

    @property
    def key(self) -> str:
        """File stem: readable fields, then a hash of every field."""
        digest = hashlib.sha1(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:10]
        lr = "default" if self.lr is None else f"{self.lr:g}"
        return f"{self.name}__{self.label}__seed{self.seed}__lr{lr}__{digest}".replace("/", "_").replace("+", "-then-")


def execute(spec: RunSpec) -> dict[str, Any]:
    """Train one run with ``pinn_lam.training.solve`` and return its result record (see module docstring).

    Errors a run can legitimately end in (divergence, a line search that cannot proceed, bad
    options) become ``status="failed"`` with the message; anything else propagates.
    """
    from pinn_lam.errors import PinnLamError
    from pinn_lam.training.solve import solve
    from pinn_lam.studies.stiffness import StiffnessMonitor

    optimizer, options = resolve_label(spec.label)
    monitor = StiffnessMonitor(every=spec.stiffness_every, hessian_at=spec.hessian_at,
                               hessian_times=spec.hessian_times, seed=spec.seed)
    diagnosing = spec.stiffness_every > 0 or bool(spec.hessian_at) or bool(spec.hessian_times)

    def callback(state: Any) -> bool:
        # with diagnostics on, the time budget counts training time only, so this callback keeps it
        monitor(state)
        return spec.time_limit is not None and monitor.training_time(state.elapsed) >= spec.time_limit

    # a wall-time budget alone leaves the iterations unbounded (and the learning rate undecayed)
    iterations = spec.iterations if spec.iterations is not None or spec.time_limit is None else UNBOUNDED
    record: dict[str, Any] = {"spec": spec.to_json(), "key": spec.key, "status": "ok", "error": None,
                              "metrics": {}, "history": [], "stiffness": [], "train_seconds": None}
    start = time.perf_counter()
    try:
        result = solve(spec.problem, optimizer=optimizer, iterations=iterations, lr=spec.lr, seed=spec.seed,
                       time_limit=None if diagnosing else spec.time_limit, preset=spec.preset,
                       eval_every=spec.eval_every, params=dict(spec.params) or None,
                       callback=callback if diagnosing else None, **dict(spec.solve_options), **options)
        during = monitor.seconds  # diagnostics inside the training clock
        if diagnosing:
            monitor.finish()
        record["metrics"], record["history"] = dict(result.metrics), [dict(row) for row in result.history]
        record["train_seconds"] = float(result.metrics.get("seconds", math.nan)) - during
        if diagnosing and spec.time_limit is not None and record["metrics"].get("stop_reason") == "stopped by callback":
            record["metrics"]["stop_reason"] = f"time limit of {spec.time_limit:g} s reached"
    except (PinnLamError, ValueError, FloatingPointError) as error:
        record.update(status="failed", error=f"{type(error).__name__}: {error}")
    record["stiffness"] = monitor.rows
    record["diagnostic_seconds"] = monitor.seconds
    record["total_seconds"] = time.perf_counter() - start
    record["history"] = correct_history_times(record["history"], monitor.overhead)
    return _jsonable(record)


def correct_history_times(history: list[dict[str, Any]], overhead: Sequence[tuple[int, float]]) -> list[dict]:
    """Take the diagnostics' time out of ``history[...]["time"]``: ``overhead`` lists
    ``(iteration, cumulative diagnostic seconds after recording at that iteration)``; a history
    row at iteration ``i`` loses the overhead recorded at iterations before ``i``."""
    if not overhead:
        return history
    out, j, spent = [], 0, 0.0
    for row in history:
        while j < len(overhead) and overhead[j][0] < row.get("iteration", 0):
            spent = overhead[j][1]
            j += 1
        row = dict(row)
        if "time" in row and row["time"] is not None:
            row["time"] = max(0.0, float(row["time"]) - spent)
        out.append(row)
    return out


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file next to ``path`` and rename it over ``path``."""
    text = json.dumps(data, indent=1, default=_default).encode()
    atomic_write(path, lambda file: file.write(text))


def result_path(output_dir: str | Path, spec: RunSpec) -> Path:
    return Path(output_dir) / "runs" / f"{spec.key}.json"


def load_result(output_dir: str | Path, spec: RunSpec) -> dict[str, Any] | None:
    """The finished result of ``spec`` in ``output_dir``, or ``None`` (missing, unreadable or stale)."""
    path = result_path(output_dir, spec)
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if data.get("spec") == spec.to_json() else None


def default_workers(n_runs: int) -> int:
    """``min(cores, runs)``, at least 1; cores are those this process may run on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, n_runs))


def warm_up(specs: Sequence[RunSpec]) -> None:
    """Train each distinct optimizer of ``specs`` for 2 iterations, untimed.

    A fresh process pays a one-off cost on its first training steps (about 4 s measured here:
    lazy initialisation in torch and the libraries), which would otherwise be charged to
    whichever run a worker happens to start with and skew the wall-time comparison.
    """
    from pinn_lam.training.solve import solve

    seen = set()
    for spec in specs:
        if spec.label in seen:
            continue
        seen.add(spec.label)
        optimizer, options = resolve_label(spec.label)
        # untimed and unsaved: a warm-up never writes into (or locks) the folder of a real run
        solve_options = {k: v for k, v in dict(spec.solve_options).items() if k not in ("output_dir", "overwrite")}
        try:
            solve(spec.problem, optimizer=optimizer, iterations=2, lr=spec.lr, seed=spec.seed, preset=spec.preset,
                  params=dict(spec.params) or None, **solve_options, **options)
        except Exception:  # noqa: BLE001 - a warm-up must never stop the comparison; the run reports errors
            pass


def run_comparison(specs: Iterable[RunSpec], output_dir: str | Path, *, workers: int | None = None,
                   resume: bool = True, run: Callable[[RunSpec], dict[str, Any]] = execute,
                   warm: bool = True, log: Callable[[str], None] | None = print,
                   scheduler: str | None = None) -> list[dict[str, Any]]:
    """Run every spec not already finished in ``output_dir`` and return all results in order.

    Args:
        specs: the runs (duplicates are run once).
        output_dir: results go to ``output_dir/runs/<spec.key>.json``, each written atomically
            as soon as its run ends.
        workers: parallel worker processes (``spawn`` start method, ``cores // workers`` torch
            threads each); ``None`` = :func:`default_workers`; 1 runs in this process.
        resume: reuse finished results on disk (``False`` reruns everything).
        run: the function that trains one spec (must be picklable for ``workers > 1``).
        warm: first :func:`warm_up` each process (only when ``run`` is :func:`execute`).
        log: called with one line per finished run (``None`` for silence).
        scheduler: where the runs execute (:func:`pinn_lam.studies.executors.parse_scheduler`):
            ``None`` for the local worker processes, ``"local:N"`` or ``"tcp://HOST:PORT"`` for
            Dask; a run whose Dask workers kept dying is recorded as failed.
    """
    specs = list(dict((spec.key, spec) for spec in specs).values())
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for spec in specs:
        found = load_result(output_dir, spec) if resume else None
        if found is None:
            todo.append(spec)
        else:
            results[spec.key] = found
    if log and results:
        log(f"resuming: {len(results)} of {len(specs)} runs already finished in {output_dir}")
    workers = default_workers(len(todo)) if workers is None else int(workers)
    if workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers}")

    def finish(spec: RunSpec, record: dict[str, Any], written: bool = False) -> None:
        if not written:
            write_json_atomic(result_path(output_dir, spec), record)
        results[spec.key] = record
        if log:
            log(f"[{len(results)}/{len(specs)}] {describe(record)}")

    # one warm-up per optimizer (on the first run that uses it)
    warm = list({spec.label: spec for spec in reversed(todo)}.values()) if warm and run is execute else []
    if scheduler is None and (workers == 1 or len(todo) <= 1):
        if todo:
            warm_up(warm)
        for spec in todo:
            finish(spec, run(spec))
    elif todo:
        from pinn_lam.studies.executors import open_executor

        prepare = functools.partial(warm_up, warm) if warm else None
        with open_executor(scheduler, workers=workers, prepare=prepare) as pool:
            if pool.writes_results:
                futures = {pool.submit(run_and_keep, run, spec, result_path(output_dir, spec), write_json_atomic): spec
                           for spec in todo}
            else:
                futures = {pool.submit(run, spec): spec for spec in todo}
            try:
                for future in as_completed(futures):
                    spec = futures[future]
                    try:
                        record = future.result()
                    except Exception as error:  # noqa: BLE001 - only a lost worker becomes a result
                        if not pool.lost_worker(error):
                            raise
                        record = lost_record(spec, error)
                    finish(spec, record, written=pool.writes_results)
            except BaseException:
                # interrupted or a run raised: drop the queued runs; finished ones are on disk
                pool.cancel()
                raise
    return [results[spec.key] for spec in specs]


def lost_record(spec: RunSpec, error: BaseException) -> dict[str, Any]:
    """The failed result of a run whose worker process died every time it was given the run."""
    return {"spec": spec.to_json(), "key": spec.key, "status": "failed", "error": f"{type(error).__name__}: {error}",
            "metrics": {}, "history": [], "stiffness": [], "train_seconds": None, "diagnostic_seconds": 0.0,
            "total_seconds": None}


def describe(record: dict[str, Any]) -> str:
    """One line about a finished run: what ran, how it ended, its error and time."""
    spec = record["spec"]
    lr = "" if spec.get("lr") is None else f" lr={spec['lr']:g}"
    head = f"{spec.get('case') or spec['problem']} {spec['label']}{lr} seed {spec['seed']}"
    if record.get("status") != "ok":
        return f"{head}: failed ({record.get('error')})"
    metrics = record.get("metrics", {})
    error = metrics.get("rel_l2", math.nan)
    seconds = record["train_seconds"] if record.get("train_seconds") is not None else metrics.get("seconds", math.nan)
    return f"{head}: rel_l2 {error:.3g} after {metrics.get('iterations', '?')} iterations, {seconds:.1f} s"


@dataclasses.dataclass
class Plan:
    """The runs of one comparison on one problem instance, by study: ``main`` (every optimizer
    at its default learning rate), ``lr`` (:data:`LR_STUDY` over a learning-rate grid) and
    ``variants`` (LAM's variants). A run shared by two studies appears in both, and runs once."""

    case: str
    main: list[RunSpec]
    lr: list[RunSpec] = dataclasses.field(default_factory=list)
    variants: list[RunSpec] = dataclasses.field(default_factory=list)

    @property
    def runs(self) -> list[RunSpec]:
        return list({spec.key: spec for spec in self.main + self.lr + self.variants}.values())


def plan(problem: str, *, optimizers: Sequence[str] = ("lam", "adam", "rmsprop", "lbfgs"),
         seeds: int | Sequence[int] = 3, iterations: int | None = None, time_limit: float | None = None,
         params: dict[str, Any] | None = None, lrs: Sequence[float] = (), variants: bool = False,
         case: str | None = None, preset: str | None = None, eval_every: int | None = None,
         stiffness: bool = True, hessian_points: int = 3, solve_options: dict[str, Any] | None = None) -> Plan:
    """The runs comparing ``optimizers`` on ``problem`` (a library name with ``params``, or
    ``"path/to/script.py:name"``: runs go to worker processes, so a problem of one's own is
    named by the script that defines it).

    Every run gets the same budget: ``iterations`` and/or ``time_limit`` seconds; with neither,
    the problem's default iteration budget (its preset's total). ``seeds`` is a count (seeds
    0..n-1) or a list. A learning rate left to the default is resolved to the preset's value so
    that the learning-rate study reuses the main runs. With ``stiffness``, every run records the
    per-term gradient norms about 50 times, and the first seed of each main run also the
    Hessian's largest eigenvalue at ``hessian_points`` evenly spaced points plus the end (0: none).
    ``eval_every`` (default: a 50th of the iterations, or every 25 under a time limit alone) sets
    how often the error is measured, so that every error curve shows its course.
    """
    from pinn_lam.training import presets
    from pinn_lam.training.setup import make_problem

    make_problem(problem, params)  # an unknown problem or a bad parameter fails here, not in every run
    seeds = list(range(int(seeds))) if isinstance(seeds, (int,)) else [int(s) for s in seeds]
    if not seeds or min(seeds) < 0:
        raise ValueError(f"seeds must be a positive count or non-negative seeds, got {seeds!r}")
    if not optimizers:
        raise ValueError("give at least one optimizer to compare")
    for label in optimizers:
        resolve_label(label)
    if any(not float(lr) > 0 for lr in lrs):
        raise ValueError(f"learning rates must be positive, got {list(lrs)!r}")
    if iterations is not None and (isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1):
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time limit must be positive seconds, got {time_limit!r}")
    settings = presets.resolve(problem, preset)
    if iterations is None and time_limit is None:
        budget = settings["iterations"]
        iterations = budget if isinstance(budget, int) else int(sum(budget))
    default_lr = float(settings["lr"])
    every, hessian_at, hessian_times = 0, (), ()
    if hessian_points < 0:
        raise ValueError(f"hessian_points must be >= 0, got {hessian_points!r}")
    if stiffness:
        every = max(1, iterations // 50) if iterations is not None else 50
        if not hessian_points:
            pass
        elif iterations is not None:
            hessian_at = tuple(int(iterations * k / hessian_points) for k in range(hessian_points))
        else:
            hessian_times = tuple(time_limit * k / hessian_points for k in range(hessian_points))
    if eval_every is None:  # about 50 points on every error curve (the problem's default may be every 250)
        eval_every = max(1, iterations // 50) if iterations is not None else 25
    common = dict(problem=problem, iterations=iterations, time_limit=time_limit, case=case or problem,
                  params=tuple(sorted((params or {}).items())), preset=preset, eval_every=eval_every,
                  stiffness_every=every, solve_options=tuple(sorted((solve_options or {}).items())))

    def spec(label: str, seed: int, lr: float | None, hessian: bool) -> RunSpec:
        if lr is None and not all(registry.get(part).closure for part in resolve_label(label)[0].split("+")):
            lr = default_lr
        return RunSpec(label=label, seed=seed, lr=lr, hessian_at=hessian_at if hessian else (),
                       hessian_times=hessian_times if hessian else (), **common)

    main = [spec(label, seed, None, seed == seeds[0]) for label in optimizers for seed in seeds]
    by_run = {(s.label, s.lr, s.seed): s for s in main}
    lr_runs = [by_run.get((label, float(lr), seed)) or spec(label, seed, float(lr), False)
               for label in LR_STUDY for lr in lrs for seed in seeds]
    variant_runs = [by_run.get((label, default_lr, seed)) or spec(label, seed, None, seed == seeds[0])
                    for label in (("lam",) + tuple(VARIANTS)) for seed in seeds] if variants else []
    return Plan(case or problem, main, lr_runs, variant_runs)
