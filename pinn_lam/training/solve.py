"""``solve``: train a PINN on a problem and validate it against its reference.

>>> from pinn_lam import solve
>>> result = solve("heat", preset="quick", seed=0)          # doctest: +SKIP
>>> result.metrics["rel_l2"], result.predict([[0.5, 0.1]])   # doctest: +SKIP

Settings left at ``None`` come from :mod:`pinn_lam.training.presets` and the problem's own
defaults. One ``seed`` drives everything: the network's initialisation (a
:class:`torch.Generator`) and every point drawn (a :class:`numpy.random.Generator` in
:class:`~pinn_lam.training.sampling.PointSampler`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from torch import nn

from pinn_lam.optim import registry
from pinn_lam.training import memory, rundir
from pinn_lam.pde.problem import Problem
from pinn_lam.pde.spec import describe
from pinn_lam.training.checkpoint import load_checkpoint
from pinn_lam.training.distributed import DataParallel, ShardedLoss, check_phases, writer_first
from pinn_lam.training.evaluation import Evaluation
from pinn_lam.training.outputs import predict, write_outputs
from pinn_lam.training.setup import build, configure, make_problem
from pinn_lam.training.trainer import Phase, Trainer

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
        """The network at ``points`` (an ``(N, d)`` array in the problem's variable order):
        ``(N,)`` for one output, ``(N, m)`` for several."""
        return predict(self.model, points)


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
          adaptive_pool: int | None = None, overwrite: bool = False, network: str | None = None,
          weighting: str | None = None, stop_requested: Callable[[], int | None] | None = None,
          data_parallel: DataParallel | None = None, **optimizer_options) -> Result:
    """Train a PINN on ``problem`` and measure it against the reference (and exact solution).

    Args:
        problem: a library name (``"burgers"``, ``"heat"``, ``"poisson"``), a problem object
            (:class:`~pinn_lam.pde.problem.Problem`, e.g. a :class:`~pinn_lam.pde.problem.PDE`),
            or ``"path/to/script.py:name"``.
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
        network: ``"mlp"`` (default) or e.g. ``"modified-mlp+periodic+fourier:1+rwf"``: embeddings,
            body and weight factorization (:func:`pinn_lam.nn.networks.parse_network`).
        weighting: ``"fixed"`` (default: ``weights`` as given) or adaptive weights, e.g.
            ``"grad-norm"``, ``"ntk"``, ``"causal:eps=1"`` (:func:`pinn_lam.training.weighting.parse_weighting`).
        time_limit: training seconds. eval_every: iterations between error evaluations.
        output_dir: where ``metrics.json``, ``history.csv``, ``checkpoint.pt`` and the figure go.
        checkpoint_every, resume: checkpoint period; continue from ``output_dir/checkpoint.pt``.
        overwrite: replace another run's files in ``output_dir`` (without it, or ``resume``, such a
            folder is refused; see :mod:`pinn_lam.training.rundir`).
        stop_requested: polled after every step; a signal number checkpoints the run and raises
            :class:`~pinn_lam.errors.TrainingInterrupted` (see :class:`~pinn_lam.training.guards.StopSignals`).
        params: the problem's parameters (with a name). callback: ``callback(TrainState) -> stop?``.
        progress: unused by the API (the command line draws the progress bar through ``callback``).
        figure: write ``solution.png``/``.pdf`` to ``output_dir`` (a figure that cannot be drawn
            is reported in ``metrics["figure"]``, never an error after training).
        reference_resolution: passed to ``problem.reference`` (``None``: the problem's default).
        data_parallel: train over the ranks of a process group, each on its block of the points
            (:mod:`pinn_lam.training.distributed`); every rank calls ``solve`` with the same
            arguments, trains on ``data_parallel.device``, and rank 0 alone writes ``output_dir``.
        **optimizer_options: passed to the optimizers (e.g. ``history_size`` for L-BFGS).

    Without a reference (a problem with neither a solver nor an exact solution nor data), the
    run trains all the same and reports the residual's root mean square on fresh points
    (``metrics["residual_rms"]``), with ``metrics["reference"]`` saying that none was given.
    Unknown parameters of an inverse problem are reported in ``metrics["unknowns"]`` and in
    the history's evaluated rows.

    On the CPU the fast path's fused loops are compiled once (cached on disk) before the
    training clock starts. The command line also calls :func:`pinn_lam.machine.tune_malloc`,
    which keeps freed memory in the process between steps; a Python script may call it too.

    Returns: a :class:`Result`. Raises :class:`~pinn_lam.errors.DivergenceError` (or its
    :class:`~pinn_lam.errors.NonFiniteLossError`) if the loss explodes or becomes NaN/inf,
    :class:`~pinn_lam.errors.RunFolderError` for a folder holding another run or in use,
    ``ValueError`` for bad options, ``OSError`` for unwritable folders.
    """
    problem = make_problem(problem, params)
    writer = data_parallel is None or data_parallel.is_writer
    if data_parallel is not None:
        device = str(data_parallel.device)
    spec = describe(problem)
    if seed is None or isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    options = dict(optimizer=optimizer, iterations=iterations, lr=lr, lr_decay=lr_decay, width=width, depth=depth,
                   activation=activation, n_collocation=n_collocation, n_boundary=n_boundary, sampler=sampler,
                   resample_every=resample_every, hard_constraints=hard_constraints, dtype=dtype,
                   eval_every=eval_every, checkpoint_every=checkpoint_every, weights=weights, device=device,
                   adaptive_every=adaptive_every, adaptive_pool=adaptive_pool, time_limit=time_limit,
                   network=network, weighting=weighting)
    config = configure(problem, preset, options)
    config.update(seed=int(seed), fast=fast, preset=preset, optimizer_options=dict(optimizer_options))
    memory.check_fits(config)  # before allocating: a run too large is refused in one line, at once
    out = Path(output_dir) if output_dir is not None else None
    checkpoint_path = None
    if out is not None:
        if writer:
            _check_writable(out)
        checkpoint_path = out / "checkpoint.pt"
    saved = None
    if resume:
        if checkpoint_path is None:
            raise ValueError("resume needs an output folder holding checkpoint.pt")
        saved = load_checkpoint(checkpoint_path) if writer else None
        if data_parallel is not None:
            saved = data_parallel.broadcast(saved)
        before = saved["extra"]
        differ = [f"{k}={before.get(k)!r}" for k in config if k not in RESUMABLE_CHANGES and before.get(k) != config[k]]
        if differ:
            raise ValueError(f"cannot resume {checkpoint_path}: it was run with {', '.join(differ)}; "
                             "pass the same settings")

    names = config["optimizer"].split("+")
    phases = [Phase(name, n, None if registry.get(name).closure else config["lr"], opts) for name, n, opts
              in zip(names, config["iterations"], registry.split_options(names, config["optimizer_options"]))]
    model, point_sampler, loss = build(problem, config, spec)
    weighting_scheme = loss.weighting
    if data_parallel is not None:
        check_phases(names)
        if weighting_scheme is not None:
            raise ValueError(f"weighting {config['weighting']!r} is not available in data-parallel training "
                             "(torchrun); use the default fixed weights")
        loss = ShardedLoss(loss, data_parallel)
    if loss.fast and any(p.is_cpu for p in model.parameters()):
        from pinn_lam.nn import kernels

        # the fused CPU loops' one-time build (seconds, cached on disk) is not training time
        writer_first(data_parallel, kernels.library)
    reference = writer_first(data_parallel, problem.reference, reference_resolution)
    evaluation = Evaluation(problem, reference, loss, seed=int(seed))
    trainer = Trainer(model, loss, phases, sampler=point_sampler, resample_every=config["resample_every"],
                      adaptive_every=config["adaptive_every"], adaptive_pool=config["adaptive_pool"],
                      lr_decay=config["lr_decay"], evaluate=evaluation.during_training, eval_every=config["eval_every"],
                      checkpoint_path=checkpoint_path if writer else None, checkpoint_every=config["checkpoint_every"],
                      time_limit=config["time_limit"], callback=callback, extra=config,
                      stop_requested=stop_requested, data_parallel=data_parallel)
    if saved is not None:
        trainer.load_state_dict(saved)
    stop_reason = trainer.run()

    metrics: dict[str, Any] = {"problem": problem.name, **evaluation.final(model)}
    final = trainer.history[-1]
    metrics.update(loss=final["loss"], seconds=round(trainer.elapsed, 3), iterations=trainer.iteration,
                   adaptive_redraws=trainer.adaptations, stop_reason=stop_reason, events=list(trainer.events),
                   fast_path=loss.fast, derivative_paths=dict(loss.paths),
                   network=model.spec.label() if hasattr(model, "spec") else "mlp",
                   exact_conditions=list(getattr(model, "exact_conditions", ())),
                   **(weighting_scheme.metrics() if weighting_scheme is not None else {"weighting": "fixed"}))
    if data_parallel is not None:
        metrics["processes"] = data_parallel.world_size
    result = Result(model, problem, metrics, trainer.history, config, evaluation.reference)
    if out is not None and writer:
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
