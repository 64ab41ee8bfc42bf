"""``python -m pinn_lam.benchmarks.lbfgs`` on a tiny network: both optimizers are timed and the table is complete."""
from __future__ import annotations

from pinn_lam.benchmarks import lbfgs as bench


def test_measure_times_both_optimizers_and_prints_the_table(capsys):
    result = bench.measure(20, width=8, depth=2, pretrain=2, fill=3, iterations=4, rounds=2)
    assert list(result["rows"]) == list(bench.FACTORIES) and result["params"] == 2 * 8 + 8 + 8 * 8 + 8 + 8 + 1
    for row in result["rows"].values():
        assert row["overhead"] > 0 and row["closure"] > 0 and row["evals"] >= 1 and 1 <= row["iterations"] <= 4
    assert set(result["paired_ratio"]) == {"overhead", "closure", "total"}
    assert bench.main(["--points", "20", "--width", "8", "--depth", "2", "--pretrain", "2", "--fill", "3",
                       "--iterations", "4", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "| " not in out and "torch.optim.LBFGS" in out and "pinn_lam / torch, paired within rounds" in out


def test_bad_options_are_one_line_errors_before_any_timing(capsys):
    import pytest

    from pinn_lam.cli.main import main

    for option, value in (("--rounds", "0"), ("--iterations", "0"), ("--points", "0"), ("--fill", "-1"),
                          ("--threads", "0")):
        assert main(["bench", "lbfgs", option, value]) == 2
        err = capsys.readouterr()
        assert f"{option} must be" in err.err and "L-BFGS overhead" not in err.out
    with pytest.raises(SystemExit):
        main(["bench", "lbfgs", "--dtype", "float16"])
