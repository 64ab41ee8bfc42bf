"""The network and weighting options from the command lines to the run's metrics."""
import json

import pytest

from pinn_lam.cli import compare as compare_cli
from pinn_lam.cli.main import build_parser, main
from pinn_lam.cli.solve import options_from


def test_solve_and_compare_pass_network_and_weighting_on():
    parser = build_parser()
    args = parser.parse_args(["solve", "convection", "--network", "mlp+periodic", "--weighting", "causal:eps=2"])
    options = options_from(args)
    assert options["network"] == "mlp+periodic" and options["weighting"] == "causal:eps=2"
    args = parser.parse_args(["compare", "convection", "--optimizers", "adam", "--seeds", "1",
                              "--network", "modified-mlp+fourier:1", "--weighting", "grad-norm"])
    (plan,) = compare_cli.plans_from_args(args)
    options = dict(plan.main[0].solve_options)
    assert options["network"] == "modified-mlp+fourier:1" and options["weighting"] == "grad-norm"


def test_a_run_names_its_network_and_weighting_and_skips_the_periodic_condition_it_covers(tmp_path, capsys):
    code = main(["solve", "convection", "--optimizer", "lam+lbfgs", "--quick", "--iterations", "3,2", "--network", "mlp+periodic+rwf",
                 "--weighting", "causal:eps=0.5,chunks=4", "--threads", "1", "--no-progress", "--no-figure",
                 "-o", str(tmp_path)])
    assert code == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    assert metrics["network"] == "mlp+periodic+rwf(μ=1,σ=0.1)" and metrics["weighting"] == "causal(ε=0.5,M=4)"
    # convection's defaults keep the initial condition soft: it stays a loss term, the embedding covers periodic_x
    assert metrics["exact_conditions"] == ["periodic_x"] and metrics["derivative_paths"] == {"pde": "fast", "ic": "fast"}
    assert 0.0 <= metrics["causal_weight_min"] <= 1.0
    assert "network mlp+periodic+rwf" in capsys.readouterr().out


@pytest.mark.parametrize("option, value, message", [("--network", "resnet", "unknown network"),
                                                    ("--weighting", "softadapt", "unknown or repeated weighting"),
                                                    ("--network", "mlp+periodic", "needs a periodic condition")])
def test_bad_specs_are_one_line_errors(tmp_path, capsys, option, value, message):
    code = main(["solve", "poisson", option, value, "--no-progress", "-o", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code != 0 and message in err and "\n" not in err
