"""``pinn-lam bench accuracy``: its table, its JSON and its verdict against the targets, on tiny runs."""
import json

import pytest

from pinn_lam.benchmarks import accuracy
from pinn_lam.cli.main import main
from pinn_lam.training import solve as solve_module


@pytest.fixture
def tiny_solves(monkeypatch):
    """``solve`` as the benchmark calls it, on a budget of a fraction of a second."""
    real, calls = solve_module.solve, []

    def tiny(name, **kwargs):
        calls.append((name, kwargs))
        kwargs.pop("params")
        return real(name, **kwargs, iterations=[10, 10], width=8, depth=2, n_collocation=64, n_boundary=8,
                    params={"modes": [[1, 1.0]]}, reference_resolution=(32, 32), device="cpu")

    monkeypatch.setattr(solve_module, "solve", tiny)
    return calls


def test_accuracy_benchmark_reports_every_run_and_judges_it_against_the_target(tiny_solves, tmp_path, capsys,
                                                                               monkeypatch):
    out = tmp_path / "accuracy.json"
    argv = ["bench", "accuracy", "--problems", "heat", "--seeds", "0", "1", "--quick", "--output", str(out)]
    monkeypatch.setitem(accuracy.TARGETS, "quick", (1e-12, 60.0))  # an error no tiny run reaches
    assert main(argv) == 1
    text = capsys.readouterr().out
    assert [(name, kwargs["seed"], kwargs["preset"]) for name, kwargs in tiny_solves] == [("heat", 0, "quick"),
                                                                                       ("heat", 1, "quick")]
    runs = json.loads(out.read_text())["runs"]
    assert [(r["problem"], r["seed"], r["preset"]) for r in runs] == [("heat", 0, "quick"), ("heat", 1, "quick")]
    errors = [r["metrics"]["rel_l2"] for r in runs]
    assert errors[0] != errors[1] and all(r["metrics"]["iterations"] == 20 for r in runs)
    for seed, run in enumerate(runs):
        m = run["metrics"]
        row = f"| heat | {seed} | {m['rel_l2']:.2e} |  | {m['max_abs']:.2e} | {m['seconds']:.0f} | "
        assert row in text and text.split(row)[1].splitlines()[0].endswith(" MISSED |")
    assert "targets: heat: rel. L2 <= 1e-12 in <= 60 s: NOT met by every run" in text

    monkeypatch.setitem(accuracy.TARGETS, "quick", (1.0, 600.0))  # one every run meets
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "MISSED" not in text and "targets: heat: rel. L2 <= 1 in <= 600 s: met by every run" in text
    assert [r["metrics"]["rel_l2"] for r in json.loads(out.read_text())["runs"]] == errors  # seeded: the same runs


def test_each_problem_and_recipe_is_judged_by_its_own_target():
    from pinn_lam.benchmarks.accuracy import target_for

    assert target_for("helmholtz", None).describe() == "rel. L2 <= 0.001 in <= 300 s"
    assert target_for("poisson-lshape", None).describe() == "rel. L2 <= 0.01 in <= 300 s"
    assert target_for("schrodinger", None).describe() == "rel. L2 of |h| <= 0.002 in <= 600 s"
    assert target_for("burgers-inverse", None).bound == 5e-3
    assert target_for("burgers-inverse", None, {"noise": 0.01}).bound == 2e-2
    assert target_for("burgers", "accurate").describe() == "rel. L2 <= 1e-05 in <= 600 s"
    assert target_for("heat", "accurate").bound == target_for("poisson", "accurate").bound == 1e-6
    assert target_for("heat", None).bound == 1e-3 and target_for("burgers", "quick").bound == 5e-2
    assert target_for("allen-cahn", None).describe() == "rel. L2 <= 0.005 in <= 600 s"
    assert target_for("wave", None).describe() == "rel. L2 <= 0.005 in <= 600 s"
    assert target_for("convection", None).describe() == "rel. L2 <= 0.005 in <= 300 s"
    assert target_for("convection", None, {"beta": 50}).describe() == "rel. L2 <= 0.01 in <= 300 s"
    assert target_for("convection", None, {"beta": 40}) is None and target_for("allen-cahn", "quick") is None
    inverse = target_for("burgers-inverse", None)
    assert inverse.measure({"unknown_errors": {"lambda1": -0.004, "lambda2": 0.003}}) == 0.004
    assert target_for("schrodinger", None).measure({"rel_l2": 0.1, "rel_l2_abs": 0.002}) == 0.002
