"""What ``pinn-lam tune`` writes: the best settings as a ``solve --config`` TOML file, the trials
table (CSV), and Optuna's importance and history plots (PNG and PDF)."""
from __future__ import annotations

import csv
import io
import json
import math
import warnings
from pathlib import Path
from typing import Any

from pinn_lam.atomic import atomic_write
from pinn_lam.studies.tune import Search, require_optuna, trial_settings

#: ``solve`` keyword -> ``--config`` key, where they differ
CONFIG_NAMES = {"n_collocation": "points", "n_boundary": "boundary_points", "params": "param"}


def _toml_value(value: Any) -> str:
    """One TOML value: a string, boolean, integer, float or a list of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string escapes as JSON does
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(settings: dict[str, Any], comment: str = "") -> str:
    """``settings`` as TOML: plain keys first, then one table per dict value."""
    lines = [f"# {line}" for line in comment.splitlines()]
    tables = {k: v for k, v in settings.items() if isinstance(v, dict)}
    lines += [f"{key} = {_toml_value(value)}" for key, value in settings.items() if key not in tables]
    for name, table in tables.items():
        lines += ["", f"[{name}]"] + [f"{key} = {_toml_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def best_config(search: Search, params: dict[str, Any]) -> dict[str, Any]:
    """The ``solve --config`` settings of the trial whose Optuna parameters are ``params``:
    the shared settings of ``search`` and the trial's draws, under their ``--config`` names."""
    from pinn_lam.optim.registry import resolve_label

    optimizer, options = resolve_label(search.optimizer)
    if options:
        raise ValueError(f"{search.optimizer} is a variant with options {options}, which --config cannot set; "
                         "tune its base optimizer instead")
    solve_keywords = {"optimizer": optimizer, **dict(search.fixed), **trial_settings(search, params)}
    return {CONFIG_NAMES.get(k, k): v for k, v in solve_keywords.items() if v is not None}


def write_best(path: Path, search: Search, study: Any) -> Path:
    """The best complete trial's settings as a TOML file ``pinn-lam solve --config`` reads."""
    best = study.best_trial
    comment = (f"best of {len(study.trials)} trials of study {study.study_name!r} (trial {best.number}): "
               f"relative L2 error {best.value:.4g}\nuse: pinn-lam solve {search.problem} --config {path.name}")
    text = to_toml(best_config(search, best.params), comment).encode()
    atomic_write(path, lambda handle: handle.write(text))
    return path


def trials_table(study: Any) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, each parameter, iterations, seconds, pruned at, error."""
    names = sorted({name for trial in study.trials for name in trial.params})
    rows = []
    for trial in study.trials:
        steps = sorted(trial.intermediate_values)
        row = {"number": trial.number, "state": trial.state.name.lower(), "rel_l2": trial.value}
        row.update({name: trial.params.get(name) for name in names})
        row.update(iterations=trial.user_attrs.get("iterations"), seconds=trial.user_attrs.get("seconds"),
                   pruned_at=steps[-1] if trial.state.name == "PRUNED" and steps else None,
                   error=trial.user_attrs.get("error"))
        rows.append(row)
    return rows


def write_trials_csv(path: Path, study: Any) -> Path:
    rows = trials_table(study)
    text = io.StringIO()
    if rows:
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    data = text.getvalue().encode()
    atomic_write(path, lambda handle: handle.write(data))
    return path


def write_plots(folder: Path, study: Any) -> tuple[list[Path], list[str]]:
    """``history.png/.pdf`` (error by trial and best so far) and ``importance.png/.pdf`` (parameter
    importances; needs two complete trials). Returns the files and why any plot was left out."""
    optuna = require_optuna()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as plots

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    wanted = {"history": plots.plot_optimization_history}
    skipped = []
    if len(complete) >= 2:
        wanted["importance"] = plots.plot_param_importances
    else:
        skipped.append(f"importance: needs 2 complete trials, the study has {len(complete)}")
    written = []
    for name, plot in wanted.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            axes = plot(study)
        if name == "history":
            axes.set_yscale("log")
            axes.set_ylabel("relative L2 error")
        figure = axes.figure
        figure.tight_layout()
        for suffix in (".png", ".pdf"):
            target = folder / f"{name}{suffix}"
            figure.savefig(target, dpi=150)
            written.append(target)
        plt.close(figure)
    return written, skipped
