"""``pinn-lam bench second-order`` on a tiny network: every optimizer is timed, memory is counted
from the tensor sizes, and the two Jacobians agree."""
from __future__ import annotations

from pinn_lam.benchmarks import second_order as bench
from pinn_lam.cli.main import main

TINY = dict(pretrain=2, fill=2, iterations=2, lm_iterations=1, autograd_rows=4, rounds=2, width=6, depth=2,
            n_collocation=64)


def test_measure_times_every_optimizer_and_counts_their_memory(capsys):
    result = bench.measure("heat", **TINY)
    n, m = result["params"], result["residuals"]
    assert n == 2 * 6 + 6 + 6 * 6 + 6 + 6 + 1 and m == 64  # hard constraints: the PDE term only
    rows = result["rows"]
    assert list(rows) == ["lbfgs", "ssbfgs", "lm"] and all(row["ms"] > 0 for row in rows.values())
    assert rows["lbfgs"]["memory"] == 2 * 50 * n * 8 and rows["ssbfgs"]["memory"] == n * n * 8
    assert rows["lm"]["memory"] == (m * n + min(m, n) ** 2) * 8
    assert result["jacobian"]["agreement"] < 1e-12 and result["jacobian"]["fast-path rows"] > 0
    print(bench.format_result(result))
    out = capsys.readouterr().out
    assert "median of 2 rounds" in out and "Jacobian: torch.func" in out


def test_bad_options_are_one_line_errors(capsys):
    assert main(["bench", "second-order", "--lm-iterations", "0"]) == 2
    assert "--lm-iterations must be a positive integer" in capsys.readouterr().err
