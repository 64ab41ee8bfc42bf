"""The problem interface end to end: a problem of one's own, several outputs, unknowns, no
reference, figures of every dimension, and one-line errors for bad definitions."""
import math

import numpy as np
import pytest
import torch

from pinn_lam import (PDE, Box, Data, Dirichlet, Disk, InitialValue, Periodic, Problem, Reference, SpaceTime,
                      solve)
from pinn_lam.errors import ProblemError
from pinn_lam.nn.mlp import MLP
from pinn_lam.training.loss import PINNLoss

TINY = dict(optimizer="lam+lbfgs", iterations=[150, 150], width=12, depth=2, n_collocation=256, n_boundary=64,
            eval_every=50, seed=0)


class Rod(Problem):
    """-u'' = pi^2 sin(pi x) on [0, 1], u = 0 at both ends: a problem class of one's own."""

    name = "rod"
    domain = Box(x=(0.0, 1.0))

    def pde(self, d):
        return -d["u_xx"] - math.pi ** 2 * torch.sin(math.pi * d["x"])

    def conditions(self):
        return [Dirichlet(0.0)]

    def exact(self, d):
        return torch.sin(math.pi * d["x"])


def test_a_problem_class_of_ones_own_trains_to_its_exact_solution(tmp_path):
    result = solve(Rod(), output_dir=tmp_path, **TINY)
    assert result.metrics["rel_l2"] < 1e-3 and result.metrics["reference"] == "exact solution"
    assert (tmp_path / "solution.png").exists() and "figure" not in result.metrics


def system():
    """u_t + v_x = 0, v_t + u_x = 0 (the wave equation as a system), periodic, exact solution known."""
    return PDE(Box(x=(0.0, 2 * math.pi), t=(0.0, 0.5)),
               lambda d: (d["u_t"] + d["v_x"], d["v_t"] + d["u_x"]),
               [InitialValue(lambda d: torch.cat([torch.sin(d["x"]), torch.zeros_like(d["x"])], 1), output=("u", "v")),
                Periodic("x", derivatives=0)],
               outputs=("u", "v"),
               exact=lambda d: (0.5 * (torch.sin(d["x"] - d["t"]) + torch.sin(d["x"] + d["t"])),
                                0.5 * (torch.sin(d["x"] - d["t"]) - torch.sin(d["x"] + d["t"]))),
               name="wave-system")


def test_two_outputs_fast_and_autograd_losses_agree_and_errors_are_per_output(tmp_path):
    problem = system()
    model = MLP(2, 2, width=10, depth=2, bounds=problem.bounds, generator=torch.Generator().manual_seed(0)).double()
    g = torch.Generator().manual_seed(1)
    box = torch.tensor([2 * math.pi, 0.5], dtype=torch.float64)
    points = {"pde": torch.rand(64, 2, generator=g, dtype=torch.float64) * box,
              "ic": torch.rand(16, 2, generator=g, dtype=torch.float64) * box * torch.tensor([1.0, 0.0]),
              "periodic_x": torch.rand(16, 2, generator=g, dtype=torch.float64) * box * torch.tensor([0.0, 1.0])}
    fast, slow = PINNLoss(problem, model, points, fast=True), PINNLoss(problem, model, points, fast=False)
    assert fast.terms() == ("pde1", "pde2", "ic", "periodic_x") and fast.paths["pde"] == "fast"
    (total_f, terms_f), (total_s, terms_s) = fast(), slow()
    for name in terms_s:
        torch.testing.assert_close(terms_f[name], terms_s[name], rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(total_f, total_s, rtol=1e-10, atol=1e-13)
    result = solve(problem, output_dir=tmp_path, **TINY)
    m = result.metrics
    assert m["rel_l2"] < 0.05
    reference = result.reference
    prediction = result.predict(reference.points())
    for k, name in enumerate(("u", "v")):
        values = reference.values()[:, k]
        by_hand = np.linalg.norm(prediction[:, k] - values) / np.linalg.norm(values)
        assert m[f"rel_l2_{name}"] == pytest.approx(by_hand, rel=1e-10)
    assert (tmp_path / "solution.pdf").exists()


def test_unknowns_are_trained_logged_and_reported():
    rng = np.random.default_rng(0)
    points = rng.random((200, 2))
    values = np.exp(-0.2 * math.pi ** 2 * points[:, 1]) * np.sin(math.pi * points[:, 0])
    problem = PDE(Box(x=(0.0, 1.0), t=(0.0, 1.0)), lambda d: d["u_t"] - d["a"] * d["u_xx"],
                  [Data(points, values)], unknowns={"a": 1.0})
    result = solve(problem, **dict(TINY, iterations=[300, 100]))
    a = result.metrics["unknowns"]["a"]
    assert abs(a - 0.2) < 0.05  # moved from 1.0 towards the truth
    logged = [row["a"] for row in result.history if "a" in row]
    assert logged[0] == 1.0 and logged[-1] == a
    assert result.metrics["rel_l2"] is None and result.metrics["residual_rms"] < 0.1


def test_without_a_reference_a_run_trains_and_says_so(tmp_path):
    problem = PDE(Box(x=(0.0, 1.0), y=(0.0, 1.0)) - Disk(center=(0.5, 0.5), radius=0.2),
                  lambda d: d["u_xx"] + d["u_yy"] + 1.0, [Dirichlet(0.0)], name="plate")
    result = solve(problem, output_dir=tmp_path, **TINY)
    m = result.metrics
    assert m["rel_l2"] is None and "none given" in m["reference"]
    first = next(row["residual_rms"] for row in result.history if "residual_rms" in row)
    assert m["residual_rms"] < 0.2 * first
    assert (tmp_path / "solution.png").exists()
    from pinn_lam.cli.solve import summary

    assert "no reference: none given" in summary(result)


def test_three_variables_get_a_slice_figure(tmp_path):
    problem = PDE(SpaceTime(Disk(), t=(0.0, 1.0)), lambda d: d["u_t"] - 0.1 * (d["u_xx"] + d["u_yy"]),
                  [InitialValue(lambda d: 1 - d["x"] ** 2 - d["y"] ** 2), Dirichlet(0.0)],
                  exact=lambda d: (1 - d["x"] ** 2 - d["y"] ** 2) * torch.exp(-d["t"]), name="cylinder")
    result = solve(problem, output_dir=tmp_path, **dict(TINY, iterations=[5, 5]))
    assert (tmp_path / "solution.png").exists() and "figure" not in result.metrics


@pytest.mark.parametrize("make, message", [
    (lambda: PDE(Box(x=(0, 1)), lambda d: d["u_xx"][:, 0]), None),
    (lambda: PDE(Box(x=(0, 1)), lambda d: d["u_yy"]), "the equation reads unknown name 'u_yy'"),
    (lambda: PDE(Box(x=(0, 1)), lambda d: d["u_xx"].sum()), r"equation 'pde' gives shape \(\); a residual"),
    (lambda: PDE(Box(x=(0, 1)), lambda d: 1 / 0), "the equation failed: ZeroDivisionError"),
    (lambda: PDE(Box(x=(0, 1)), lambda d: d["u"], [Dirichlet(0.0), Dirichlet(1.0)]), "two loss terms are named 'bc'"),
    (lambda: PDE(Box(x=(0, 1)), lambda d: {"bc": d["u"]}, [Dirichlet(0.0)]), "used by an equation and a condition"),
    (lambda: PDE(Box(x=(0, 1)), lambda d: d["u"], outputs=("u", "u_x")), "outputs must be names"),
    (lambda: PDE(Box(x=(0, 1)), lambda d: d["u"], exact=lambda d: torch.zeros(3, 2)), "the exact solution"),
])
def test_bad_definitions_fail_before_training_in_one_line(make, message):
    if message is None:  # an (N,) residual is accepted as (N, 1)
        solve(make(), **dict(TINY, iterations=[2, 2]))
        return
    with pytest.raises(ProblemError, match=message) as error:
        solve(make(), **dict(TINY, iterations=[2, 2]))
    assert "\n" not in str(error.value)


def test_a_reference_that_does_not_fit_the_problem_is_refused():
    grid = (np.linspace(0, 1, 4), np.linspace(0, 1, 4), np.linspace(0, 1, 4))
    problem = PDE(Box(x=(0, 1), t=(0, 1)), lambda d: d["u_t"], reference=Reference(grid, np.zeros((4, 4, 4))))
    with pytest.raises(ProblemError, match=r"the reference is in 3 variable\(s\); the problem has 2 \(x, t\)"):
        solve(problem, **dict(TINY, iterations=[2, 2]))
    two = Reference(grid[:2], np.zeros((4, 4, 2)), outputs=("u", "v"))
    with pytest.raises(ProblemError, match=r"the reference has 2 output\(s\); the problem has 1 \(u\)"):
        solve(PDE(Box(x=(0, 1), t=(0, 1)), lambda d: d["u_t"], reference=two), **dict(TINY, iterations=[2, 2]))
