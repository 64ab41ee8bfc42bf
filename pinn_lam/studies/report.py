"""What a comparison leaves behind: its figures, ``results.csv`` and ``results.md``.

:func:`write_report` takes a :class:`pinn_lam.studies.compare.Plan` and the run records and writes,
into one folder:

* ``convergence_iteration`` / ``convergence_time``: loss and error against iteration and wall
  time, median and min--max band over seeds, one line per optimizer (main study);
* ``stiffness``: per-term gradient norms and the Hessian's top eigenvalue (main study);
* ``lr_sensitivity``: final error against learning rate, LAM against Adam (if a grid was given);
* ``variants``: LAM's variants (plain, bias correction, layer-wise) against iteration (if asked);
* ``results.csv`` and ``results.md``: the table of :mod:`pinn_lam.studies.tables`.

Every figure is a PNG and a vector PDF (:func:`pinn_lam.plots.style.save_figure`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from pinn_lam.studies.compare import Plan
from pinn_lam.plots.comparison import convergence_figure, lr_sensitivity_figure, stiffness_figure
from pinn_lam.studies.tables import summarize, write_csv, write_markdown
from pinn_lam.plots.style import paper_style, save_figure


def _select(records: dict[str, dict[str, Any]], specs) -> list[dict[str, Any]]:
    return [records[spec.key] for spec in specs if spec.key in records]


def budget_text(plan: Plan) -> str:
    spec = plan.main[0]
    parts = ([f"{spec.iterations} iterations"] if spec.iterations else []) + \
            ([f"{spec.time_limit:g} s"] if spec.time_limit else [])
    return " or ".join(parts)


def write_figures(plan: Plan, records: dict[str, dict[str, Any]], folder: str | Path,
                  title: str | None = None) -> list[Path]:
    """The comparison figures of ``plan`` from ``records`` (run key -> record) into ``folder``."""
    folder = Path(folder)
    title = title if title is not None else plan.case
    main = _select(records, plan.main)
    paths: list[Path] = []
    with paper_style():
        for x in ("iteration", "time"):
            paths += save_figure(convergence_figure(main, x=x, title=title), folder / f"convergence_{x}")
        if any(r.get("stiffness") for r in main):
            paths += save_figure(stiffness_figure(main, title=title), folder / "stiffness")
        if plan.lr:
            paths += save_figure(lr_sensitivity_figure(_select(records, plan.lr), title=title),
                                 folder / "lr_sensitivity")
        if plan.variants:
            fig = convergence_figure(_select(records, plan.variants), x="iteration", title=f"{title}: LAM variants")
            paths += save_figure(fig, folder / "variants")
    return paths


def write_tables(records: Sequence[dict[str, Any]], folder: str | Path, *, title: str | None = None,
                 machine: str | None = None, stem: str = "results") -> list[Path]:
    """``<stem>.csv`` and ``<stem>.md`` summarising ``records`` (see :func:`pinn_lam.studies.tables.summarize`)."""
    folder = Path(folder)
    rows = summarize(records)
    return [write_csv(rows, folder / f"{stem}.csv"),
            write_markdown(rows, folder / f"{stem}.md", machine=machine, title=title)]


def write_report(plan: Plan, records: dict[str, dict[str, Any]], folder: str | Path, *,
                 machine: str | None = None) -> list[Path]:
    """Figures and tables of one comparison; returns the paths written."""
    paths = write_figures(plan, records, folder)
    title = f"{plan.case}: optimizer comparison, budget {budget_text(plan)}"
    paths += write_tables(_select(records, plan.runs), folder, title=title, machine=machine)
    return paths
