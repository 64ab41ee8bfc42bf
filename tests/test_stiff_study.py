"""The stiff-loss study: budgets and their run counts, the learning-rate stage's choice, equal-time
errors, the heat map's cells, the command's errors, and a tiny study end to end."""
from __future__ import annotations

import argparse
import dataclasses
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

from pinn_lam.studies import stiff_study
from pinn_lam.studies.stiff_study import (BUDGETS, StudyBudget, best_learning_rates, learning_rate_of, run_count,
                                          stage1_specs, stage2_specs)
from pinn_lam.studies.stiff_tables import cell_rows, equal_time, error_at_time, heatmap_data, rate_markdown, rate_table


def record(case="wave", label="lam", lr=1e-3, seed=0, error=0.1, weighting="fixed", seconds=2.0, ok=True,
           history=None):
    spec = {"case": case, "problem": case, "label": label, "lr": lr, "seed": seed,
            "solve_options": [["hard_constraints", False], ["weighting", weighting]]}
    return {"spec": spec, "status": "ok" if ok else "failed", "metrics": {"rel_l2": error, "iterations": 100} if ok else {},
            "history": history or [], "train_seconds": seconds if ok else None}


def test_best_rate_has_the_lowest_median_error_over_seeds_failed_runs_left_out():
    records = [record(lr=1e-3, seed=0, error=0.2), record(lr=1e-3, seed=1, error=0.4),     # median 0.3
               record(lr=1e-2, seed=0, error=0.05), record(lr=1e-2, seed=1, error=0.9),    # median 0.475
               record(lr=3e-3, seed=0, error=0.25), record(lr=3e-3, seed=1, ok=False),    # 0.25: the failure is left out
               record(label="adam", lr=1e-3, ok=False), record(label="adam", lr=1e-2, ok=False),  # every run failed
               record(label="rmsprop", lr=1e-2, error=0.5), record(label="rmsprop", lr=1e-3, error=0.5),  # a tie
               record(case="helmholtz", lr=1e-2, error=math.nan), record(case="helmholtz", lr=1e-3, error=2.0)]
    best = best_learning_rates(records)
    assert best == {("wave", "lam"): 3e-3, ("wave", "adam"): 1e-3, ("wave", "rmsprop"): 1e-3,
                    ("helmholtz", "lam"): 1e-3}
    assert learning_rate_of("lam+lbfgs", "wave", best) == 3e-3  # a phase sequence takes LAM's rate
    assert learning_rate_of("lbfgs", "wave", best) is None
    with pytest.raises(ValueError, match="takes the rate of lam-bc"):
        learning_rate_of("lam-bc+lbfgs", "wave", best)


def test_rate_table_gives_each_rates_median_and_the_worst_over_best_spread():
    records = [record(lr=1e-3, seed=0, error=0.2), record(lr=1e-3, seed=1, error=0.4),    # median 0.3
               record(lr=1e-2, seed=0, error=0.06), record(lr=1e-2, seed=1, ok=False),    # 0.06, the failure left out
               record(label="adam", lr=1e-3, ok=False), record(label="adam", lr=1e-2, error=0.5)]
    table = rate_table(records, [1e-3, 3e-3, 1e-2])
    assert [row[0] for row in table] == ["lam", "adam"]
    lam, adam = table
    assert lam[1][0] == pytest.approx(0.3) and math.isnan(lam[1][1]) and lam[1][2] == 0.06
    assert lam[2] == pytest.approx(5.0) and math.isnan(adam[2])  # adam has one rate with a median
    assert rate_markdown(records, [1e-3, 3e-3, 1e-2]).splitlines()[2] == "| lam | 3.00e-01 | - | 6.00e-02 | 5.00 |"


def test_error_at_time_is_the_last_finite_error_recorded_by_then():
    history = [{"iteration": 0, "time": 0.0, "rel_l2": 1.0}, {"iteration": 5, "time": 0.6, "loss": 3.0},
               {"iteration": 10, "time": 1.0, "rel_l2": 0.5}, {"iteration": 20, "time": 2.0, "rel_l2": math.nan},
               {"iteration": 30, "time": 3.0, "rel_l2": 0.1}]
    assert error_at_time(history, 2.5) == 0.5  # the NaN at 2 s and the loss-only row are skipped
    assert error_at_time(history, 3.0) == 0.1 and error_at_time(history, 0.99) == 1.0
    assert math.isnan(error_at_time(history, -1.0)) and math.isnan(error_at_time([], 1.0))
    assert equal_time([record(seconds=4.0), record(seconds=1.5), record(ok=False)]) == 1.5


def test_heat_map_cells_hold_the_median_final_error_of_their_runs():
    history = [{"time": 0.0, "rel_l2": 1.0}, {"time": 1.0, "rel_l2": 0.3}, {"time": 3.0, "rel_l2": 0.01}]
    records = [record(label="lam", weighting="fixed", seed=s, error=e, seconds=t, history=history)
               for s, (e, t) in enumerate([(0.01, 3.0), (0.03, 4.0), (0.02, 5.0)])]
    records += [record(label="lam", weighting="ntk", error=0.5, seconds=1.0, history=history[:2]),
                record(label="lam", weighting="ntk", seed=1, ok=False),
                record(label="lbfgs", lr=None, weighting="fixed", ok=False)]
    optimizers, weightings = ["lam", "lbfgs"], ["fixed", "ntk", "causal"]
    rows = cell_rows(records, optimizers, weightings)
    assert [(r["optimizer"], r["weighting"], r["runs"], r["failed"]) for r in rows] == \
        [("lam", "fixed", 3, 0), ("lam", "ntk", 2, 1), ("lbfgs", "fixed", 1, 1)]
    assert rows[0]["final"] == (0.02, 0.01, 0.03) and rows[1]["final"] == (0.5, 0.5, 0.5)
    # equal time = the shortest training time (1 s): every run's error recorded by then
    assert rows[0]["seconds"] == 1.0 and rows[0]["at_time"] == (0.3, 0.3, 0.3)
    assert rows[0]["iterations_per_s"] == pytest.approx(100 / 4.0)
    median, failed, present = heatmap_data(rows, optimizers, weightings)
    assert median.shape == (3, 2) and median[0, 0] == 0.02 and median[1, 0] == 0.5
    assert np.isnan(median[0, 1]) and failed[0, 1] == 1 and present[0, 1]  # every L-BFGS run failed
    assert failed[1, 0] == 1 and not present[1, 1] and not present[2].any()  # never run


def by_label(specs, label):
    return [s for s in specs if s.label == label]


def test_small_budget_runs_each_first_order_optimizer_at_its_own_rate_with_soft_constraints():
    budget = BUDGETS["small"]
    first = stage1_specs(budget)
    assert len(first) == 4 * 5 * 3 and {s.seed for s in first} == {0}
    best = {(c, label): 1e-2 if label == "adam" else 1e-3 for c in budget.cases
            for label in ("lam", "lam-bc", "lam-layerwise", "adam", "rmsprop")}
    second = stage2_specs(budget, best)
    assert len(second) == 3 * 7 * 4 * 2 + 7 * 3 * 2 + 4 * 2  # lam+lm with fixed weights only
    assert run_count(budget) == len({s.key for s in first + second}) == 258
    assert {dict(s.solve_options)["weighting"] for s in second if s.label == "lam+lm"} == {"fixed"}
    assert by_label(second, "lam+lm")[0].lr == 1e-3  # LAM's rate for its LAM phase
    assert all(dict(s.solve_options)["hard_constraints"] is False and s.iterations == 1000 for s in first + second)
    assert not any(s.case == "helmholtz" and dict(s.solve_options)["weighting"] == "causal" for s in second)
    by = {(s.case, s.label, dict(s.solve_options)["weighting"], s.seed): s for s in second}
    assert by[("wave", "adam", "ntk", 1)].lr == 1e-2 and by[("wave", "lam+lbfgs", "causal", 0)].lr == 1e-3
    assert by[("wave", "lbfgs", "fixed", 0)].lr is None
    # the stage-2 run with fixed weights on seed 0 is the stage-1 run at the chosen rate (one key)
    assert by[("wave", "lam", "fixed", 0)] in first and by[("wave", "lam", "fixed", 0)].hessian_at == (0, 500)
    assert by[("wave", "lam", "ntk", 0)].hessian_at == () and by[("wave", "lam", "fixed", 1)].hessian_at == ()
    from pinn_lam.studies import paper_figures

    assert paper_figures.Budget().study == budget  # pinn-lam figures trains the same runs
    full = BUDGETS["full"]
    assert len(full.cases) == 6 and full.seeds >= 3 and full.iterations >= 2000
    assert run_count(full) == 6 * 5 * 5 * 3 + (5 * 7 * 4 + 7 * 3 + 6) * 3 - 6 * 5 * 3


def test_budget_rejects_what_the_study_cannot_run():
    small = BUDGETS["small"]
    with pytest.raises(ValueError, match="unknown or no cases \\['heat'\\]"):
        dataclasses.replace(small, cases=("heat",))
    with pytest.raises(ValueError, match="first weighting must be 'fixed'"):
        dataclasses.replace(small, weightings=("ntk", "fixed"))
    with pytest.raises(ValueError, match="lr_seeds <= seeds"):
        dataclasses.replace(small, lr_seeds=3)
    with pytest.raises(ValueError, match="unknown study budget 'tiny'; available: small, full"):
        stiff_study.get_budget("tiny")


def compare_args(*argv):
    from pinn_lam.cli import compare

    parser = argparse.ArgumentParser()
    compare.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("argv, message", [
    (("heat", "--budget", "small"), "give --suite stiff and no problem"),
    (("--suite", "other", "--budget", "small"), "for --suite stiff only, not 'other'"),
    (("--suite", "stiff", "--budget", "small", "--seeds", "4", "--soft-constraints"),
     "drop --seeds, --soft-constraints"),
    (("--suite", "stiff", "--budget", "full", "--hessian-points", "1"), "drop --hessian-points"),
    (("--suite", "stiff", "--budget", "small", "--workers", "0"), "--workers must be a positive integer"),
])
def test_budget_options_are_refused_with_one_line(argv, message):
    from pinn_lam.cli.stiff_study import check_args

    with pytest.raises(ValueError, match=message):
        check_args(compare_args(*argv))


def test_a_tiny_study_writes_every_figure_and_table_and_resumes(tmp_path, capsys, monkeypatch):
    from pinn_lam.cli.main import main

    tiny = StudyBudget("small", cases=("convection-beta30",), optimizers=("lam", "lbfgs"),
                       weightings=("fixed", "causal"), seeds=1, iterations=3, lrs=(1e-3, 1e-2), width=6, depth=1,
                       n_collocation=64, hessian_points=1)
    monkeypatch.setitem(stiff_study.BUDGETS, "small", tiny)
    argv = ["compare", "--suite", "stiff", "--budget", "small", "--output", str(tmp_path), "--workers", "1",
            "--no-warm-up"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "stage 1, 2 runs" in out and "stage 2, 4 runs" in out
    folder = tmp_path / "convection-beta30"
    for stem in ("convergence_iteration", "convergence_time", "lr_sensitivity", "weighting_heatmap", "stiffness"):
        assert (folder / f"{stem}.png").stat().st_size > 0 and (folder / f"{stem}.pdf").stat().st_size > 0
    table = (tmp_path / "results.md").read_text()
    assert (folder / "results.md").exists() and "Machine: " in table
    rows = [line for line in table.splitlines() if line.startswith("| lam") or line.startswith("| lbfgs")]
    assert [line.split(" | ")[:2] for line in rows[:4]] == [["| lam", "fixed"], ["| lam", "causal"],
                                                           ["| lbfgs", "fixed"], ["| lbfgs", "causal"]]
    assert len(rows) == 5 and rows[4].count(" | ") == 3  # stage 1: lam's one rate and its spread
    assert len(list((tmp_path / "runs").glob("*.json"))) == 5  # 2 + 4 runs, one of them shared
    lines: list[str] = []  # run again: both stages come from disk, the same rates, no training
    again = stiff_study.run_study(tiny, tmp_path, workers=1, warm=False, log=lines.append)
    assert [line for line in lines if line.startswith("resuming")] == [
        f"resuming: 2 of 2 runs already finished in {tmp_path}", f"resuming: 4 of 4 runs already finished in {tmp_path}"]
    assert len(lines) == 4 and again.best_lrs.keys() == {("convection-beta30", "lam")}


def test_heat_map_writes_each_cell_and_marks_failed_and_missing_ones():
    from pinn_lam.plots.stiff_study import heatmap_figure

    median = np.array([[2e-3, np.nan], [0.4, 0.05]])
    failed, present = np.array([[0, 2], [1, 0]]), np.array([[True, True], [True, False]])
    fig = heatmap_figure(median, failed, present, ("lam", "adam"), ("fixed", "ntk"), runs=2)
    texts = {(round(t.get_position()[0]), round(t.get_position()[1])): t.get_text() for t in fig.axes[0].texts}
    assert texts == {(0, 0): "2.0e-03", (1, 0): "failed", (0, 1): "4.0e-01\n(1 failed)", (1, 1): "n/a"}
    norm = fig.axes[0].images[0].norm
    assert (norm.vmin, norm.vmax) == (2e-3, 0.4)  # the colour scale spans the finite medians
    plt.close(fig)
