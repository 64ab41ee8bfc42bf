"""``solve``: train a PINN on a problem from the library and validate it against the reference.

>>> from pinn_lam import solve
>>> result = solve("heat", preset="quick", seed=0)          # doctest: +SKIP
>>> result.metrics["rel_l2"], result.predict([[0.5, 0.1]])   # doctest: +SKIP

Settings left at ``None`` come from :mod:`pinn_lam.training.presets`. One ``seed`` drives everything:
the network's initialisation (a :class:`torch.Generator`) and every point drawn (a
:class:`numpy.random.Generator` in :class:`~pinn_lam.training.sampling.PointSampler`).
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from pinn_lam.atomic import atomic_write
from pinn_lam.optim import registry
from pinn_lam.training import memory, presets, rundir
from pinn_lam.training.checkpoint import load_checkpoint
from pinn_lam.training.loss import PINNLoss, loss_terms
from pinn_lam.training.metrics import RelativeL2, max_abs_error, relative_l2_error
from pinn_lam.nn.mlp import MLP
from pinn_lam.pde.problem import Problem
from pinn_lam.training.sampling import PointSampler
from pinn_lam.training.trainer import Phase, Trainer, parse_phases, split_iterations

#: evaluation points used during training (the final metrics use the whole reference grid)
EVAL_POINTS = 16384
#: settings that may differ when resuming (they do not change the trajectory)
RESUMABLE_CHANGES = ("device", "time_limit", "eval_every", "checkpoint_every")


@dataclass
class Result:
    """A trained model with its metrics (``rel_l2``, ``max_abs`` vs the reference, ...) and history."""

    model: nn.Module
    problem: Problem
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    config: dict[str, Any]
    reference: Any = None
    files: list[Path] = field(default_factory=list)

    def predict(self, points) -> np.ndarray:
        """The network at ``points`` (an ``(N, d)`` array in the problem's variable order) -> ``(N,)``."""
        return predict(self.model, points)


def predict(model: nn.Module, points, batch: int = 65536) -> np.ndarray:
    """Evaluate ``model`` on an ``(N, d)`` array in batches, without gradients; float64 ``(N,)``."""
    first = next(model.parameters())
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2:
        raise ValueError(f"points must be an (N, d) array, got shape {points.shape}")
    out = []
    with torch.no_grad():
        for start in range(0, len(points), batch):
            chunk = torch.as_tensor(points[start:start + batch], device=first.device, dtype=first.dtype)
            out.append(model(chunk).reshape(-1).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def default_device() -> str:
    """``"cuda"`` when a CUDA device is present, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _dtype(value) -> torch.dtype:
    names = {"float32": torch.float32, "float64": torch.float64, "double": torch.float64, "float": torch.float32}
    if isinstance(value, torch.dtype) and value in (torch.float32, torch.float64):
        return value
    if str(value) in names:
        return names[str(value)]
    raise ValueError(f"unknown dtype {value!r}; choose float32 or float64")


def _device(value) -> torch.device:
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {value!r}; use cpu, cuda or cuda:N") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {value!r} requested but CUDA is not available; use device='cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {value!r} does not exist; this machine has {torch.cuda.device_count()} "
                         f"CUDA device(s): cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def make_problem(problem: str | Problem, params: dict[str, Any] | None = None) -> Problem:
    """A problem object from a registry name (built with ``params``) or the object itself."""
    if isinstance(problem, Problem):
        if params:
            raise ValueError("params can only be given with a problem name, not a problem object")
        return problem
    import problems

    return problems.get(problem, **(params or {}))


def configure(problem: Problem, preset: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """Resolve every setting (presets, then explicit options) and validate it."""
    explicit_iterations = options.get("iterations") is not None
    config = presets.resolve(problem.name, preset, options)
    phases = parse_phases(config["optimizer"])
    iterations = config["iterations"]
    if not explicit_iterations and not isinstance(iterations, int) and len(iterations) != len(phases):
        iterations = sum(iterations)  # the preset's budget, split over the requested phases
    config["optimizer"] = "+".join(phases)
    config["iterations"] = split_iterations(iterations, phases)
    for name in ("width", "depth", "n_collocation", "n_boundary", "adaptive_pool"):
        config[name] = _positive_int(name, config[name])
    for name in ("eval_every", "checkpoint_every", "resample_every", "adaptive_every"):
        if config[name] is not None:
            config[name] = _positive_int(name, config[name])
    if config["time_limit"] is not None and not float(config["time_limit"]) > 0:
        raise ValueError(f"time_limit must be positive seconds, got {config['time_limit']!r}")
    config["lr"] = float(config["lr"])
    if not config["lr"] > 0 or not math.isfinite(config["lr"]):
        raise ValueError(f"Invalid learning rate: {config['lr']} (must be positive and finite)")
    config["dtype"] = str(_dtype(config["dtype"])).removeprefix("torch.")
    config["device"] = str(_device(config.get("device") or default_device()))
    config["problem"], config["params"] = problem.name, problem.parameters()
    return config


def build(problem: Problem, config: dict[str, Any]):
    """The model, sampler and loss for a resolved ``config`` (see :func:`configure`)."""
    transform = problem.output_transform() if config["hard_constraints"] else None
    if config["hard_constraints"] is True and transform is None:
        transform = None  # the problem has no hard constraint: keep every condition in the loss
    generator = torch.Generator().manual_seed(int(config["seed"]))
    model = MLP(len(problem.variables), 1, width=config["width"], depth=config["depth"],
                activation=config["activation"], bounds=problem.bounds, output_transform=transform,
                generator=generator)
    device, dtype = torch.device(config["device"]), _dtype(config["dtype"])
    model = model.to(device=device, dtype=dtype)
    sampler = PointSampler(problem, loss_terms(problem, model), n_collocation=config["n_collocation"],
                           n_boundary=config["n_boundary"], method=config["sampler"], seed=int(config["seed"]))
    points = {k: torch.as_tensor(v, device=device, dtype=dtype) for k, v in sampler.sample().items()}
    loss = PINNLoss(problem, model, points, weights=config["weights"], fast=config["fast"])
    return model, sampler, loss


@rundir.claims_output_folder
def solve(problem: str | Problem, *, optimizer: str | None = None, iterations: int | Sequence[int] | None = None,
          lr: float | None = None, seed: int = 0, device: str | None = None, dtype: str | None = None,
          preset: str | None = None, width: int | None = None, depth: int | None = None,
          activation: str | None = None, n_collocation: int | None = None, n_boundary: int | None = None,
          sampler: str | None = None, resample_every: int | None = None, hard_constraints: bool | None = None,
          fast: bool | None = None, time_limit: float | None = None, eval_every: int | None = None,
          output_dir: str | Path | None = None, checkpoint_every: int | None = None, resume: bool = False,
          params: dict[str, Any] | None = None, callback: Callable | None = None, progress: bool = False,
          lr_decay: float | None = None, weights: dict[str, float] | None = None,
          figure: bool = True, reference_resolution: Any = None, adaptive_every: int | None = None,
          adaptive_pool: int | None = None, overwrite: bool = False,
          stop_requested: Callable[[], int | None] | None = None, **optimizer_options) -> Result:
    """Train a PINN on ``problem`` and measure it against the reference (and exact solution).

    Args:
        problem: a registry name (``"burgers"``, ``"heat"``, ``"poisson"``) or a problem object.
        optimizer: a name (``lam``, ``adam``, ``rmsprop``, ``sgd``, ``lbfgs``) or phases ``"lam+lbfgs"``.
        iterations: per phase (a list), or a total split evenly over the phases.
        lr, lr_decay: first-order learning rate, decayed exponentially to ``lr * lr_decay`` in each phase.
        seed: the one seed of the run. device: default CUDA when present. dtype: ``float32``/``float64``.
        preset: ``"quick"`` for a small run; ``None`` for the problem's defaults.
        width, depth, activation: the MLP. hard_constraints: use the problem's output transform.
        n_collocation, n_boundary, sampler, resample_every: the points (``uniform``/``lhs``/``sobol``).
        adaptive_every, adaptive_pool: redraw the collocation points by their residual (RAD) every
            this many iterations, from this many candidates (L-BFGS keeps its curvature pairs across a redraw).
        fast: derivative fast path (``None``: when supported). weights: loss weights by term.
        time_limit: training seconds. eval_every: iterations between error evaluations.
        output_dir: where ``metrics.json``, ``history.csv``, ``checkpoint.pt`` and the figure go.
        checkpoint_every, resume: checkpoint period; continue from ``output_dir/checkpoint.pt``.
        overwrite: replace another run's files in ``output_dir`` (without it, or ``resume``, such a
            folder is refused; see :mod:`pinn_lam.training.rundir`).
        stop_requested: polled after every step; a signal number checkpoints the run and raises
            :class:`~pinn_lam.errors.TrainingInterrupted` (see :class:`~pinn_lam.training.guards.StopSignals`).
        params: the problem's parameters (with a name). callback: ``callback(TrainState) -> stop?``.
        progress: unused by the API (the command line draws the progress bar through ``callback``).
        figure: write ``solution.png``/``.pdf`` to ``output_dir``.
        reference_resolution: passed to ``problem.reference`` (``None``: the problem's default).
        **optimizer_options: passed to the optimizers (e.g. ``history_size`` for L-BFGS).

    Returns: a :class:`Result`. Raises :class:`~pinn_lam.errors.DivergenceError` (or its
    :class:`~pinn_lam.errors.NonFiniteLossError`) if the loss explodes or becomes NaN/inf,
    :class:`~pinn_lam.errors.RunFolderError` for a folder holding another run or in use,
    ``ValueError`` for bad options, ``OSError`` for unwritable folders.
    """
    problem = make_problem(problem, params)
    if seed is None or isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    options = dict(optimizer=optimizer, iterations=iterations, lr=lr, lr_decay=lr_decay, width=width, depth=depth,
                   activation=activation, n_collocation=n_collocation, n_boundary=n_boundary, sampler=sampler,
                   resample_every=resample_every, hard_constraints=hard_constraints, dtype=dtype,
                   eval_every=eval_every, checkpoint_every=checkpoint_every, weights=weights, device=device,
                   adaptive_every=adaptive_every, adaptive_pool=adaptive_pool, time_limit=time_limit)
    config = configure(problem, preset, options)
    config.update(seed=int(seed), fast=fast, preset=preset, optimizer_options=dict(optimizer_options))
    memory.check_fits(config)  # before allocating: a run too large is refused in one line, at once
    out = Path(output_dir) if output_dir is not None else None
    checkpoint_path = None
    if out is not None:
        _check_writable(out)
        checkpoint_path = out / "checkpoint.pt"
    saved = None
    if resume:
        if checkpoint_path is None:
            raise ValueError("resume needs an output folder holding checkpoint.pt")
        saved = load_checkpoint(checkpoint_path)
        before = saved["extra"]
        differ = [f"{k}={before.get(k)!r}" for k in config if k not in RESUMABLE_CHANGES and before.get(k) != config[k]]
        if differ:
            raise ValueError(f"cannot resume {checkpoint_path}: it was run with {', '.join(differ)}; "
                             "pass the same settings")

    names = config["optimizer"].split("+")
    phases = [Phase(name, n, None if registry.get(name).closure else config["lr"], opts) for name, n, opts
              in zip(names, config["iterations"], registry.split_options(names, config["optimizer_options"]))]
    model, point_sampler, loss = build(problem, config)
    reference = problem.reference(reference_resolution)
    grid_points, grid_values = reference.points(), np.asarray(reference.u, dtype=np.float64).reshape(-1)
    stride = max(1, len(grid_points) // EVAL_POINTS)
    eval_points, eval_values = grid_points[::stride], grid_values[::stride]

    error = RelativeL2(eval_points, eval_values)  # on the model's device, no NumPy BLAS in the loop

    def evaluate(m: nn.Module) -> dict[str, float]:
        return {"rel_l2": error(m)}

    trainer = Trainer(model, loss, phases, sampler=point_sampler, resample_every=config["resample_every"],
                      adaptive_every=config["adaptive_every"], adaptive_pool=config["adaptive_pool"],
                      lr_decay=config["lr_decay"], evaluate=evaluate, eval_every=config["eval_every"],
                      checkpoint_path=checkpoint_path, checkpoint_every=config["checkpoint_every"],
                      time_limit=config["time_limit"], callback=callback, extra=config,
                      stop_requested=stop_requested)
    if saved is not None:
        trainer.load_state_dict(saved)
    stop_reason = trainer.run()

    prediction = predict(model, grid_points)
    metrics: dict[str, Any] = {
        "problem": problem.name, "rel_l2": relative_l2_error(prediction, grid_values),
        "max_abs": max_abs_error(prediction, grid_values),
    }
    if problem.has_exact:
        exact = problem.exact(grid_points)
        metrics.update(rel_l2_exact=relative_l2_error(prediction, exact), max_abs_exact=max_abs_error(prediction, exact))
    final = trainer.history[-1]
    metrics.update(loss=final["loss"], seconds=round(trainer.elapsed, 3), iterations=trainer.iteration,
                   adaptive_redraws=trainer.adaptations,
                   stop_reason=stop_reason, events=list(trainer.events), evaluated_on=f"{len(grid_points)} reference grid points",
                   reference_error_estimate=reference.error_estimate, fast_path=loss.fast)
    result = Result(model, problem, metrics, trainer.history, config, reference)
    if out is not None:
        result.files = write_outputs(result, out, figure=figure) + [checkpoint_path]
    return result


def _check_writable(folder: Path) -> None:
    """Create ``folder`` and make sure files can be written there (``OSError`` otherwise)."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise OSError(f"cannot write to output folder {folder}: {error.strerror or error}") from None


def write_outputs(result: Result, out: Path, figure: bool = True) -> list[Path]:
    """Write ``metrics.json``, ``history.csv`` and (``figure``) ``solution.png``/``.pdf`` into ``out``."""
    files = [out / "metrics.json", out / "history.csv"]
    record = {"metrics": result.metrics, "config": result.config, "machine": _machine()}
    text = json.dumps(record, indent=2, default=str) + "\n"
    atomic_write(files[0], lambda handle: handle.write(text.encode()))
    columns: list[str] = []
    for row in result.history:
        columns += [k for k in row if k not in columns]
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=columns)
    writer.writeheader()
    writer.writerows(result.history)
    atomic_write(files[1], lambda handle: handle.write(table.getvalue().encode()))
    if figure:
        from pinn_lam.plots.solution import solution_figure

        title = f"{result.problem.name}: relative L2 error {result.metrics['rel_l2']:.2e}"
        files += solution_figure(result.predict, result.problem, result.reference, out / "solution", title)
    return files


def _machine() -> dict[str, Any]:
    import os

    from pinn_lam.machine import cpu_model

    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
