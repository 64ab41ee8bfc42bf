"""Comparison figures from synthetic run records."""
from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from pinn_lam.plots.comparison import (band, convergence_figure, lr_sensitivity_figure,  # noqa: E402
                                       stiffness_figure)
from pinn_lam.plots.style import COLUMN_WIDTH, optimizer_style, paper_style, save_figure  # noqa: E402


def synthetic(label: str, seed: int, rate: float, *, lr=None, status="ok", iterations=200):
    """A record whose loss decays like exp(-rate * it) and error like 0.5 exp(-rate * it / 2)."""
    history = []
    for it in range(iterations + 1):
        row = {"iteration": it, "time": it * 0.01 * (1 + 0.1 * seed), "loss": math.exp(-rate * it) * (1 + seed),
               "loss_pde": math.exp(-rate * it)}
        if it % 20 == 0:
            row["rel_l2"] = 0.5 * math.exp(-rate * it / 2) * (1 + 0.1 * seed)
        history.append(row)
    stiffness = [{"iteration": it, "time": it * 0.01, "grad_norm_pde": 10 * math.exp(-rate * it),
                  "grad_norm_ic": math.exp(-rate * it / 3), **({"hessian_top": 100.0 / (1 + it), "hessian_converged": it > 0} if it % 100 == 0 else {})}
                 for it in range(0, iterations + 1, 10)]
    return {"spec": {"problem": "burgers", "case": "burgers", "label": label, "seed": seed, "lr": lr},
            "status": status, "error": None if status == "ok" else "NonFiniteLossError: nan",
            "metrics": {"rel_l2": history[-1]["rel_l2"] if status == "ok" else math.nan, "seconds": 2.0,
                        "iterations": iterations},
            "history": history if status == "ok" else [], "stiffness": stiffness if status == "ok" else []}


def test_band_is_median_min_max_of_step_held_curves():
    a = (np.array([0.0, 2.0, 4.0]), np.array([4.0, 2.0, 1.0]))
    b = (np.array([0.0, 1.0, 2.0]), np.array([8.0, 6.0, 3.0]))  # ends early at x = 2
    c = (np.array([1.0, 4.0]), np.array([5.0, 0.5]))            # starts late at x = 1
    grid, median, low, high = band([a, b, c], points=9)         # grid step 0.5
    assert grid.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    # x = 0.5: a = 4 (held), b = 8, c absent
    assert (median[1], low[1], high[1]) == (6.0, 4.0, 8.0)
    # x = 1.5: a = 4, b = 6, c = 5
    assert (median[3], low[3], high[3]) == (5.0, 4.0, 6.0)
    # x = 3: a = 2, b gone, c = 5
    assert (median[6], low[6], high[6]) == (3.5, 2.0, 5.0)
    # x = 4: a = 1, c = 0.5
    assert (median[8], low[8], high[8]) == (0.75, 0.5, 1.0)


def test_convergence_figure_draws_one_median_per_optimizer_in_its_colour(tmp_path):
    records = [synthetic(label, seed, rate) for label, rate in (("lam", 0.03), ("adam", 0.02)) for seed in range(3)]
    records.append(synthetic("adam", 9, 0.02, status="failed"))  # no history: ignored
    with paper_style():
        fig = convergence_figure(records, x="time")
        loss_ax, error_ax = fig.axes
        assert loss_ax.get_yscale() == "log" and error_ax.get_yscale() == "log"
        assert error_ax.get_xlabel() == "wall time [s]"
        lines = {line.get_label(): line for line in loss_ax.get_lines()}
        assert set(lines) == {"LAM (3 seeds)", "Adam (3 seeds)"}
        assert lines["LAM (3 seeds)"].get_color() == optimizer_style("lam")["color"]
        # LAM's median loss at its start is the seed-1 value 2.0 (seeds give 1, 2, 3)
        assert lines["LAM (3 seeds)"].get_ydata()[0] == pytest.approx(2.0)
        assert fig.get_size_inches()[0] == pytest.approx(COLUMN_WIDTH)
        paths = save_figure(fig, tmp_path / "convergence")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)


def test_lr_sensitivity_marks_diverged_learning_rates(tmp_path):
    records = [synthetic(label, seed, rate * lr / 1e-3, lr=lr)
               for label, rate in (("lam", 0.02), ("adam", 0.01)) for lr in (1e-4, 1e-3, 1e-2) for seed in range(2)]
    records.append(synthetic("adam", 5, 0.01, lr=1e-2, status="failed"))
    with paper_style():
        fig = lr_sensitivity_figure(records)
        ax = fig.axes[0]
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        crosses = [line for line in ax.get_lines() if line.get_marker() == "x"]
        assert len(crosses) == 1 and list(crosses[0].get_xdata()) == [1e-2]
        save_figure(fig, tmp_path / "lr")
    assert (tmp_path / "lr.pdf").exists()


def test_stiffness_figure_has_norms_per_term_and_hessian_points(tmp_path):
    records = [synthetic(label, seed, 0.02) for label in ("lam", "adam") for seed in range(2)]
    with paper_style():
        fig = stiffness_figure(records)
        grad_ax, hess_ax = fig.axes
        assert len(grad_ax.get_lines()) == 4  # 2 optimizers x 2 terms
        lines = [line for line in hess_ax.get_lines() if line.get_linestyle() != "None"]
        assert len(lines) == 2 and list(lines[0].get_xdata()) == [0, 100, 200]
        assert list(lines[0].get_ydata()) == pytest.approx([100.0, 100 / 101, 100 / 201])
        # the unconverged first estimate of each optimizer gets an open marker
        loose = [line for line in hess_ax.get_lines() if line.get_linestyle() == "None"]
        assert [list(line.get_xdata()) for line in loose] == [[0], [0]]
        assert all(line.get_markerfacecolor() == "white" for line in loose)
        save_figure(fig, tmp_path / "stiffness")
    assert (tmp_path / "stiffness.png").exists()
