r"""Numbers of the stiff-loss study (:mod:`pinn_lam.studies.stiff_study`): per case, optimizer x
weighting, the final error at equal iterations and the error at equal wall time.

* **Equal iterations**: every stage-2 run has the same iteration budget; its final relative
  :math:`L^2` error, median [min, max] over seeds.
* **Equal wall time**: :math:`T` = the shortest training time among the case's finished stage-2
  runs; each run's error at :math:`T` is the last error its history recorded at a training time
  :math:`\le T` (:func:`error_at_time`), median [min, max] over seeds. It compares what each
  optimizer and weighting reaches in the time the fastest run needed for its whole budget.

A failed (diverged) run counts in ``failed`` and is left out of the medians; a cell whose every
run failed has no median (NaN).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from pinn_lam.studies.stiff_study import final_error
from pinn_lam.studies.tables import run_seconds


def weighting_of(record: dict[str, Any]) -> str:
    """The weighting scheme a run was given (``"fixed"`` when none)."""
    return str(dict(record["spec"].get("solve_options") or ()).get("weighting") or "fixed")


def error_at_time(history: Sequence[dict[str, Any]], seconds: float) -> float:
    """The last finite ``rel_l2`` of ``history`` recorded at ``time <= seconds``; NaN if none."""
    value = math.nan
    for row in history:
        error, time = row.get("rel_l2"), row.get("time")
        if error is None or time is None or float(time) > seconds:
            continue
        if math.isfinite(float(error)):
            value = float(error)
    return value


def equal_time(records: Sequence[dict[str, Any]]) -> float:
    """The shortest training time among the finished runs (NaN if none finished)."""
    times = [run_seconds(r) for r in records if r.get("status") == "ok"]
    times = [t for t in times if math.isfinite(t)]
    return min(times) if times else math.nan


def _stats(values: Sequence[float]) -> tuple[float, float, float]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan, math.nan
    return float(np.median(finite)), min(finite), max(finite)


def cell_rows(records: Sequence[dict[str, Any]], optimizers: Sequence[str],
              weightings: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (optimizer, weighting) present in one case's stage-2 ``records``, in the given
    order: ``optimizer, weighting, lr, runs, failed, final (median, min, max), at_time (median,
    min, max), seconds`` (the equal time :math:`T`) and ``iterations_per_s`` (median)."""
    seconds = equal_time(records)
    rows = []
    for label in optimizers:
        for weighting in weightings:
            runs = [r for r in records if r["spec"]["label"] == label and weighting_of(r) == weighting]
            if not runs:
                continue
            finals = [final_error(r) for r in runs]
            at_time = [error_at_time(r.get("history", []), seconds) if r.get("status") == "ok" else math.nan
                       for r in runs]
            rates = [float(r["metrics"].get("iterations", math.nan)) / run_seconds(r)
                     for r in runs if r.get("status") == "ok" and run_seconds(r) > 0]
            rows.append({"optimizer": label, "weighting": weighting, "lr": runs[0]["spec"].get("lr"),
                         "runs": len(runs), "failed": sum(not math.isfinite(e) for e in finals),
                         "final": _stats(finals), "at_time": _stats(at_time), "seconds": seconds,
                         "iterations_per_s": float(np.median(rates)) if rates else math.nan})
    return rows


def heatmap_data(rows: Sequence[dict[str, Any]], optimizers: Sequence[str], weightings: Sequence[str]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(median, failed, present)`` arrays of shape ``(len(weightings), len(optimizers))``:
    the median final error of each cell (NaN where no run finished), how many of its runs
    failed, and whether the cell was run at all (``causal`` is not run on a steady case)."""
    median = np.full((len(weightings), len(optimizers)), np.nan)
    failed = np.zeros(median.shape, dtype=int)
    present = np.zeros(median.shape, dtype=bool)
    for row in rows:
        i, j = weightings.index(row["weighting"]), optimizers.index(row["optimizer"])
        median[i, j], failed[i, j], present[i, j] = row["final"][0], row["failed"], True
    return median, failed, present


def best_weighting(rows: Sequence[dict[str, Any]], optimizer: str) -> str:
    """The weighting with the lowest median final error for ``optimizer`` (``"fixed"`` if none finished)."""
    scored = [(row["final"][0], row["weighting"]) for row in rows
              if row["optimizer"] == optimizer and math.isfinite(row["final"][0])]
    return min(scored)[1] if scored else "fixed"


def _error(stats: tuple[float, float, float]) -> str:
    median, low, high = stats
    return "-" if not math.isfinite(median) else f"{median:.2e} [{low:.2e}, {high:.2e}]"


def markdown(case: str, rows: Sequence[dict[str, Any]], iterations: int, level: int = 1) -> str:
    """The case's table (under a heading of ``level``): optimizer x weighting with the chosen
    rate, both errors, it/s and failures."""
    seconds = rows[0]["seconds"] if rows else math.nan
    lines = [f"{'#' * level} {case}", "",
             f"| optimizer | weighting | lr | final rel. L2 at {iterations} it.: median [min, max] | "
             f"rel. L2 at {seconds:.3g} s: median [min, max] | it/s | runs (failed) |", "|" + "---|" * 7]
    for row in rows:
        lr = "-" if row["lr"] is None else f"{row['lr']:g}"
        rate = "-" if not math.isfinite(row["iterations_per_s"]) else f"{row['iterations_per_s']:.0f}"
        lines.append(f"| {row['optimizer']} | {row['weighting']} | {lr} | {_error(row['final'])} | "
                     f"{_error(row['at_time'])} | {rate} | {row['runs']} ({row['failed']}) |")
    return "\n".join(lines) + "\n"


def rate_table(records: Sequence[dict[str, Any]], lrs: Sequence[float]) -> list[tuple[str, list[float], float]]:
    """Stage 1 of one case: per optimizer (in the records' order), the median final error at each
    rate of ``lrs`` (NaN where every run failed or none ran) and the spread, the worst median over
    the best (NaN unless at least two rates have one)."""
    labels = list(dict.fromkeys(r["spec"]["label"] for r in records))
    table = []
    for label in labels:
        medians = [_stats([final_error(r) for r in records
                           if r["spec"]["label"] == label and float(r["spec"]["lr"]) == float(lr)])[0] for lr in lrs]
        finite = [m for m in medians if math.isfinite(m)]
        table.append((label, medians, max(finite) / min(finite) if len(finite) > 1 else math.nan))
    return table


def rate_markdown(records: Sequence[dict[str, Any]], lrs: Sequence[float]) -> str:
    """The stage-1 table: median final error per optimizer and learning rate, and the spread."""
    lines = ["| optimizer | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " | worst / best |",
             "|" + "---|" * (len(lrs) + 2)]
    for label, medians, spread in rate_table(records, lrs):
        cells = ["-" if not math.isfinite(m) else f"{m:.2e}" for m in medians]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {'-' if not math.isfinite(spread) else f'{spread:.2f}'} |")
    return "\n".join(lines) + "\n"
