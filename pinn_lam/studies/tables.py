"""Tables of comparison results: CSV and Markdown, with the machine they were measured on.

Input is a list of run records as written by :mod:`pinn_lam.studies.compare` (``spec``, ``status``,
``metrics``, ``history``). Runs are grouped by (case, optimizer label, learning rate); each group
gives the final relative L2 error (median, min, max over seeds), the training time until the
error first reached 1e-2 and 1e-3 (median over seeds, counting a seed that never did as
infinitely slow, so the median is finite only when at least half of the seeds got there), the
iterations per second, and how many runs failed (diverged).
"""
from __future__ import annotations

import csv
import math
import platform
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

#: error levels whose time-to-reach is tabulated
THRESHOLDS = (1e-2, 1e-3)

COLUMNS = ("case", "optimizer", "lr", "runs", "failed", "rel_l2_median", "rel_l2_min", "rel_l2_max",
           "time_to_1e-2_s", "reached_1e-2", "time_to_1e-3_s", "reached_1e-3", "seconds_median",
           "iterations_median", "iterations_per_s")


def time_to(history: Sequence[dict[str, Any]], threshold: float, *, metric: str = "rel_l2",
            x: str = "time") -> float:
    """The first ``x`` (training seconds, or ``"iteration"``) at which ``metric`` <= ``threshold``
    among the history rows that have it; ``inf`` if it never did."""
    for row in history:
        value = row.get(metric)
        if value is not None and math.isfinite(value) and value <= threshold:
            return float(row[x])
    return math.inf


def _median(values: Sequence[float]) -> float:
    return float(np.median(values)) if len(values) else math.nan


def run_seconds(record: dict[str, Any]) -> float:
    """Training seconds of a run (diagnostics excluded where the runner measured them)."""
    if record.get("train_seconds") is not None:
        return float(record["train_seconds"])
    return float(record.get("metrics", {}).get("seconds", math.nan))


def summarize(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (case, optimizer, lr) with the columns of :data:`COLUMNS`, in first-seen order."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        spec = record["spec"]
        groups.setdefault((spec.get("case") or spec["problem"], spec["label"], spec.get("lr")), []).append(record)
    rows = []
    for (case, label, lr), runs in groups.items():
        ok = [r for r in runs if r.get("status") == "ok"]
        errors = [float(r["metrics"].get("rel_l2", math.nan)) for r in ok]
        finite = [e for e in errors if math.isfinite(e)]
        seconds = [run_seconds(r) for r in ok]
        iterations = [float(r["metrics"].get("iterations", math.nan)) for r in ok]
        rates = [i / s for i, s in zip(iterations, seconds) if s > 0 and math.isfinite(i)]
        row: dict[str, Any] = {
            "case": case, "optimizer": label, "lr": lr, "runs": len(runs),
            "failed": len(runs) - len(ok) + len(errors) - len(finite),
            "rel_l2_median": _median(finite), "rel_l2_min": min(finite, default=math.nan),
            "rel_l2_max": max(finite, default=math.nan),
        }
        for threshold in THRESHOLDS:
            # a failed run never reaches the threshold: it counts as infinitely slow
            times = [time_to(r["history"], threshold) for r in ok] + [math.inf] * (len(runs) - len(ok))
            row[f"time_to_{threshold:.0e}_s".replace("e-0", "e-")] = _median(times)
            row[f"reached_{threshold:.0e}".replace("e-0", "e-")] = f"{sum(math.isfinite(t) for t in times)}/{len(runs)}"
        row["seconds_median"] = _median(seconds)
        row["iterations_median"] = _median(iterations)
        row["iterations_per_s"] = _median(rates)
        rows.append(row)
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """The rows as CSV with the header :data:`COLUMNS` (numbers at full precision)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
    return path


def _fmt(value: Any, kind: str = "g") -> str:
    if value is None:
        return "default"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isinf(value):
        return "not reached"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if kind == "s":
        return f"{value:.1f}"
    if kind == "lr":
        return f"{value:g}"
    if kind == "int":
        return f"{value:.0f}"
    return f"{value:.2e}"


def markdown(rows: Sequence[dict[str, Any]], *, machine: str | None = None) -> str:
    """A Markdown table of the rows, followed by the machine description."""
    header = ("| case | optimizer | lr | final rel. L2: median [min, max] | time to 1e-2 [s] | "
              "time to 1e-3 [s] | it/s | runs (failed) |")
    lines = [header, "|" + "---|" * 8]
    for row in rows:
        error = (f"{_fmt(row['rel_l2_median'])} [{_fmt(row['rel_l2_min'])}, {_fmt(row['rel_l2_max'])}]"
                 if math.isfinite(row["rel_l2_median"]) else "-")
        lines.append(
            f"| {row['case']} | {row['optimizer']} | {_fmt(row['lr'], 'lr')} | {error} | "
            f"{_fmt(row['time_to_1e-2_s'], 's')} ({row['reached_1e-2']}) | "
            f"{_fmt(row['time_to_1e-3_s'], 's')} ({row['reached_1e-3']}) | "
            f"{_fmt(row['iterations_per_s'], 'int')} | {row['runs']} ({row['failed']}) |")
    lines += ["", "Times are training seconds (median over seeds; in brackets, how many seeds reached the level).",
              f"Machine: {machine or machine_description()}"]
    return "\n".join(lines) + "\n"


def write_markdown(rows: Sequence[dict[str, Any]], path: str | Path, *, machine: str | None = None,
                   title: str | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, machine=machine)
    path.write_text((f"# {title}\n\n" if title else "") + text)
    return path


def machine_description() -> str:
    """CPU model (from ``lscpu``), usable cores, torch version and threads, and any CUDA device."""

    import torch

    from pinn_lam.machine import cpu_model, usable_cores

    text = f"{cpu_model()}, {usable_cores()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}, " \
           f"torch {torch.__version__}"
    if torch.cuda.is_available():
        text += f", CUDA device {torch.cuda.get_device_name(0)}"
    return text
