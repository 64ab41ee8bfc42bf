r"""Hyperparameter search with Optuna: the learning rate (log scale) and optionally more.

A *trial* is one ``pinn_lam.training.solve`` run with settings drawn from the search space
(:data:`SPACE`). Its objective is the final relative :math:`L^2` error against the reference,

.. math::  \min_{\theta} \; \frac{\|u_\theta - u_\text{ref}\|_2}{\|u_\text{ref}\|_2},

sampled by TPE (``optuna.samplers.TPESampler``). While a trial trains, every error evaluation
(each ``eval_every`` iterations) is reported to the study at its iteration, and a median pruner
(``optuna.pruners.MedianPruner``) stops it once its error is worse than the median of earlier
trials at the same iteration. A run that diverges is a failed trial.

Trials run on the executors of :mod:`pinn_lam.studies.executors` (this process, local worker
processes, or Dask) and talk to the study through its storage: a journal file (default
``<output>/study.journal``; on a file system every machine shares when trials run elsewhere) or
an RDB URL (``sqlite:///tune.db``, ``postgresql://...``). Any number of ``pinn-lam tune``
processes on one storage and study name share the study: each asks for trials until the study
holds ``trials`` finished ones.
"""
from __future__ import annotations

import dataclasses
import math
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path
from typing import Any, Callable, Sequence

#: the optional extra that brings Optuna
TUNE_EXTRA = "pip install 'pinn-lam[tune]'"
#: searchable name -> (``solve`` keyword, integer?, default low, default high); every range is on a log scale
SPACE: dict[str, tuple[str, bool, float, float]] = {
    "lr": ("lr", False, 1e-4, 1e-1),
    "decay": ("lr_decay", False, 1e-3, 1.0),
    "width": ("width", True, 16, 128),
    "depth": ("depth", True, 2, 6),
    "points": ("n_collocation", True, 256, 8192),
    "weighting": ("weights", False, 0.1, 100.0),
}


def require_optuna() -> Any:
    """The ``optuna`` module, or a one-line error naming the extra that provides it."""
    try:
        import optuna
    except ImportError:
        raise ValueError(f"pinn-lam tune needs Optuna, which is not installed; {TUNE_EXTRA}") from None
    return optuna


@dataclasses.dataclass(frozen=True)
class Search:
    """What a study searches and what every trial shares.

    ``names`` are keys of :data:`SPACE` (``"lr"`` always among them); ``ranges`` overrides their
    ``(low, high)``; ``conditions`` are the loss terms whose weights ``"weighting"`` draws (the
    equations keep weight 1). ``fixed`` are ``solve`` keywords common to every trial.
    """

    problem: str
    optimizer: str
    names: tuple[str, ...] = ("lr",)
    ranges: tuple[tuple[str, tuple[float, float]], ...] = ()
    conditions: tuple[str, ...] = ()
    fixed: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        unknown = [name for name in self.names if name not in SPACE]
        if unknown:
            raise ValueError(f"cannot search {', '.join(unknown)}; searchable: {', '.join(SPACE)}")
        if "lr" not in self.names:
            raise ValueError("the search always includes the learning rate 'lr'")
        for name, (low, high) in self.ranges:
            if name not in self.names:
                raise ValueError(f"a range for {name!r}, which is not searched; searched: {', '.join(self.names)}")
            if not 0 < low < high or not math.isfinite(high):
                raise ValueError(f"range of {name} must be 0 < low < high (a log scale), got {low:g},{high:g}")
            if SPACE[name][1] and (low != int(low) or high != int(high)):
                raise ValueError(f"range of {name} takes integers, got {low:g},{high:g}")
        if "weighting" in self.names and not self.conditions:
            raise ValueError("'weighting' needs loss terms besides the equations; use soft constraints "
                             "(--soft-constraints) so that the conditions are loss terms")

    def range(self, name: str) -> tuple[float, float]:
        return dict(self.ranges).get(name, SPACE[name][2:])

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The ``solve`` keywords of ``trial`` (an ``optuna.Trial``) drawn from the space."""
        settings: dict[str, Any] = {}
        for name in self.names:
            keyword, integer, _, _ = SPACE[name]
            low, high = self.range(name)
            if name == "weighting":
                settings[keyword] = {term: trial.suggest_float(f"weight_{term}", low, high, log=True)
                                     for term in self.conditions}
            elif integer:
                settings[keyword] = trial.suggest_int(name, int(low), int(high), log=True)
            else:
                settings[keyword] = trial.suggest_float(name, low, high, log=True)
        return settings


def trial_settings(search: Search, params: dict[str, Any]) -> dict[str, Any]:
    """The ``solve`` keywords of a trial whose Optuna parameters are ``params`` (a frozen trial's)."""
    settings: dict[str, Any] = {}
    for name in search.names:
        keyword = SPACE[name][0]
        if name == "weighting":
            settings[keyword] = {term: params[f"weight_{term}"] for term in search.conditions}
        else:
            settings[keyword] = params[name]
    return settings


def make_storage(storage: str) -> Any:
    """An Optuna storage: an RDB URL (``sqlite:///...``, ``postgresql://...``) or a journal file path."""
    optuna = require_optuna()
    if "://" in storage:
        return optuna.storages.RDBStorage(storage)
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    Path(storage).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(storage)))


def make_pruner(startup_trials: int, warmup_steps: int, prune: bool = True) -> Any:
    """The median pruner: no pruning in the first ``startup_trials`` trials nor before iteration ``warmup_steps``."""
    optuna = require_optuna()
    if not prune:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=warmup_steps)


@dataclasses.dataclass(frozen=True)
class TrialTask:
    """What a worker needs to train one trial and report to the study (all picklable)."""

    storage: str
    study: str
    trial_id: int
    settings: tuple[tuple[str, Any], ...]
    search: Search
    startup_trials: int
    warmup_steps: int
    prune: bool = True


def run_trial(task: TrialTask) -> dict[str, Any]:
    """Train one trial, reporting each error evaluation to the study; return its record:
    ``status`` (``"ok"``, ``"pruned"`` or ``"failed"``), ``value`` (the final relative error, or the
    last reported one when pruned), ``iterations``, ``seconds`` and ``error``."""
    optuna = require_optuna()
    from pinn_lam.errors import PinnLamError
    from pinn_lam.optim.registry import resolve_label
    from pinn_lam.training.solve import solve

    study = optuna.load_study(study_name=task.study, storage=make_storage(task.storage),
                              pruner=make_pruner(task.startup_trials, task.warmup_steps, task.prune))
    trial = optuna.trial.Trial(study, task.trial_id)
    reported: dict[str, Any] = {"value": None, "pruned": False}

    def report(state: Any) -> bool:
        if state.rel_l2 is None or state.rel_l2 == reported["value"]:
            return False
        reported["value"] = float(state.rel_l2)
        trial.report(reported["value"], state.iteration)
        reported["pruned"] = trial.should_prune()
        return reported["pruned"]

    optimizer, options = resolve_label(task.search.optimizer)
    keywords = {**dict(task.search.fixed), **dict(task.settings), **options}
    record: dict[str, Any] = {"status": "ok", "value": None, "iterations": 0, "seconds": None, "error": None}
    try:
        result = solve(task.search.problem, optimizer=optimizer, callback=report, figure=False, **keywords)
    except (PinnLamError, ValueError, FloatingPointError) as error:
        return {**record, "status": "failed", "error": f"{type(error).__name__}: {error}"}
    metrics = result.metrics
    record.update(iterations=int(metrics["iterations"]), seconds=float(metrics["seconds"]))
    if reported["pruned"]:
        return {**record, "status": "pruned", "value": reported["value"]}
    value = metrics.get("rel_l2")
    if value is None or not math.isfinite(value):
        reason = f"no finite error against a reference ({metrics.get('reference')})"
        return {**record, "status": "failed", "error": reason}
    return {**record, "value": float(value)}


def finished_trials(study: Any) -> int:
    optuna = require_optuna()
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=done))


def tune(search: Search, *, trials: int, storage: str, study_name: str, seed: int = 0,
         startup_trials: int = 5, warmup_steps: int = 0, prune: bool = True, scheduler: str | None = None,
         workers: int = 1, threads: int | None = None, log: Callable[[str], None] | None = print) -> Any:
    """Run trials until the study ``study_name`` in ``storage`` holds ``trials`` finished ones; return it.

    Args:
        search: the space and the settings every trial shares.
        trials: finished trials (complete, pruned or failed) the study should hold, counting
            those of other processes on the same study.
        storage: a journal file path or an RDB URL (see :func:`make_storage`).
        seed: the TPE sampler's seed (each trial trains with ``search.fixed``'s seed).
        startup_trials: trials drawn at random before TPE models the results, and completed
            trials before the pruner prunes any.
        warmup_steps: iterations before which no trial is pruned. prune: ``False`` prunes nothing.
        scheduler, workers, threads: where trials run (:func:`pinn_lam.studies.executors.open_executor`).
        log: called with one line per finished trial.
    """
    optuna = require_optuna()
    from pinn_lam.studies.executors import open_executor

    if trials < 1:
        raise ValueError(f"trials must be a positive count, got {trials}")
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials)
    study = optuna.create_study(study_name=study_name, storage=make_storage(storage), sampler=sampler,
                                pruner=make_pruner(startup_trials, warmup_steps, prune), direction="minimize",
                                load_if_exists=True)
    study.set_user_attr("search", {"problem": search.problem, "optimizer": search.optimizer,
                                   "names": list(search.names), "conditions": list(search.conditions)})
    with open_executor(scheduler, workers=workers, threads=threads) as pool:
        running: dict[Any, Any] = {}
        try:
            while running or finished_trials(study) + len(running) < trials:
                while len(running) < pool.capacity and finished_trials(study) + len(running) < trials:
                    trial = study.ask()
                    # the storage's id of the trial (Optuna keeps it on the Trial only as _trial_id)
                    task = TrialTask(storage, study_name, trial._trial_id, tuple(sorted(search.suggest(trial).items())),
                                     search, startup_trials, warmup_steps, prune)
                    running[pool.submit(run_trial, task)] = trial
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    trial = running.pop(future)
                    try:
                        record = future.result()
                    except Exception as error:  # noqa: BLE001 - only a lost worker becomes a failed trial
                        if not pool.lost_worker(error):
                            raise
                        record = {"status": "failed", "value": None, "error": f"{type(error).__name__}: {error}"}
                    tell(study, trial, record)
                    if log:
                        log(describe_trial(trial.number, trial.params, record))
        except BaseException:
            pool.cancel()
            for trial in running.values():
                study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            raise
    return study


def tell(study: Any, trial: Any, record: dict[str, Any]) -> None:
    """Finish ``trial`` in ``study`` as ``record`` says, keeping its time and error as user attributes."""
    optuna = require_optuna()
    for key in ("iterations", "seconds", "error"):
        if record.get(key) is not None:
            trial.set_user_attr(key, record[key])
    if record["status"] == "ok":
        study.tell(trial, record["value"])
    elif record["status"] == "pruned":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def describe_trial(number: int, params: dict[str, Any], record: dict[str, Any]) -> str:
    """One line about a finished trial."""
    shown = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
    if record["status"] == "failed":
        return f"trial {number} ({shown}): failed ({record.get('error')})"
    value = record.get("value")
    error = "no error reported" if value is None else f"rel_l2 {value:.3g}"
    return f"trial {number} ({shown}): {record['status']}, {error}"


def condition_terms(problem: str, params: dict[str, Any] | None) -> tuple[str, ...]:
    """The names of ``problem``'s initial and boundary conditions (its loss terms under soft constraints)."""
    from pinn_lam.pde.spec import describe
    from pinn_lam.training.setup import make_problem

    return tuple(describe(make_problem(problem, params)).conditions)


def spread(values: Sequence[float]) -> dict[str, float]:
    """``min``, ``median``, ``max`` and ``max/min`` of positive ``values`` (empty: NaN)."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return {"min": math.nan, "median": math.nan, "max": math.nan, "ratio": math.nan}
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])
    return {"min": ordered[0], "median": median, "max": ordered[-1], "ratio": ordered[-1] / ordered[0]}
