"""What the stiff-loss study leaves behind (:mod:`pinn_lam.studies.stiff_study`).

Into ``<folder>/<case>/`` (every figure as PNG and vector PDF):

* ``convergence_iteration`` / ``convergence_time``: relative error of every optimizer with its
  best weighting (lowest median final error), median and min--max band over seeds; a dotted
  line marks the equal time of the table;
* ``lr_sensitivity``: final error against learning rate of every first-order optimizer (stage 1);
* ``weighting_heatmap``: median final error per weighting x optimizer;
* ``stiffness``: per-term gradient norms and the Hessian's top eigenvalue, runs with fixed weights;
* ``results.md``: the case's table (:func:`pinn_lam.studies.stiff_tables.markdown`);

and ``<folder>/results.md`` with every case's table, the chosen rates and the machine.
"""
from __future__ import annotations

from pathlib import Path
from pinn_lam.plots.comparison import lr_sensitivity_figure, stiffness_figure
from pinn_lam.plots.stiff_study import best_weighting_figure, heatmap_figure
from pinn_lam.plots.style import paper_style, save_figure
from pinn_lam.studies import stiff_tables
from pinn_lam.studies.stiff_study import StudyResult, cases_of, weightings_of
from pinn_lam.studies.tables import machine_description


def write_case(result: StudyResult, case: str, folder: str | Path) -> list[Path]:
    """The figures and ``results.md`` of one case into ``folder``."""
    folder, budget = Path(folder), result.budget
    records = result.stage2.get(case, [])
    weightings = weightings_of(budget, next(c for c in cases_of(budget) if c.name == case))
    rows = stiff_tables.cell_rows(records, budget.optimizers, weightings)
    groups = []
    for label in budget.optimizers:
        weighting = stiff_tables.best_weighting(rows, label)
        groups.append((label, weighting, [r for r in records if r["spec"]["label"] == label
                                          and stiff_tables.weighting_of(r) == weighting]))
    fixed = [r for r in records if stiff_tables.weighting_of(r) == "fixed"]
    paths: list[Path] = []
    with paper_style():
        for x in ("iteration", "time"):
            fig = best_weighting_figure(groups, x=x, title=f"{case}: best weighting per optimizer",
                                        mark=stiff_tables.equal_time(records) if x == "time" else None)
            paths += save_figure(fig, folder / f"convergence_{x}")
        paths += save_figure(lr_sensitivity_figure(result.stage1.get(case, []), title=f"{case}: stage 1, fixed weights"),
                             folder / "lr_sensitivity")
        median, failed, present = stiff_tables.heatmap_data(rows, list(budget.optimizers), list(weightings))
        paths += save_figure(heatmap_figure(median, failed, present, budget.optimizers, weightings,
                                            runs=budget.seeds, title=case), folder / "weighting_heatmap")
        if any(r.get("stiffness") for r in fixed):
            paths += save_figure(stiffness_figure(fixed, title=f"{case}: fixed weights"), folder / "stiffness")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.md").write_text(stiff_tables.markdown(case, rows, budget.iterations))
    return paths + [folder / "results.md"]


def _seeds(count: int) -> str:
    return "seed 0" if count == 1 else f"seeds 0-{count - 1}"


def results_markdown(result: StudyResult, *, machine: str | None = None, level: int = 1) -> str:
    """Every case's table, with how the study was run; headings start at ``level``."""
    budget = result.budget
    head = "#" * level
    lines = [f"{head} Stiff-loss study, budget {budget.name}", "",
             f"{budget.iterations} iterations per run, {_seeds(budget.seeds)}, soft constraints, "
             f"{budget.network} {budget.width}x{budget.depth}, {budget.n_collocation} collocation points, "
             f"{budget.dtype}. Learning rates chosen from {', '.join(f'{lr:g}' for lr in budget.lrs)} "
             f"with fixed weights on {_seeds(budget.lr_seeds)} (lowest median final error). "
             "The equal time of a case is its shortest stage-2 training time. Generated; do not edit by hand.", ""]
    for case in cases_of(budget):
        weightings = weightings_of(budget, case)
        rows = stiff_tables.cell_rows(result.stage2.get(case.name, []), budget.optimizers, weightings)
        lines += [stiff_tables.markdown(case.name, rows, budget.iterations, level=level + 1),
                  f"Learning rates (stage 1, fixed weights, {_seeds(budget.lr_seeds)}): median final rel. L2", "",
                  stiff_tables.rate_markdown(result.stage1.get(case.name, []), budget.lrs)]
    lines += [f"Machine: {machine or machine_description()}", ""]
    return "\n".join(lines)


def write_study(result: StudyResult, folder: str | Path, *, machine: str | None = None) -> list[Path]:
    """Every case's figures and tables, and ``folder/results.md``."""
    folder = Path(folder)
    paths: list[Path] = []
    for case in result.budget.cases:
        paths += write_case(result, case, folder / case)
    (folder / "results.md").write_text(results_markdown(result, machine=machine))
    return paths + [folder / "results.md"]
