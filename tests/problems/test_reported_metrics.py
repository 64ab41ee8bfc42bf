"""What a run reports from two optional problem attributes: the coefficient errors of an inverse problem
(``true_unknowns``) and the modulus error of a complex pair of outputs (``complex_outputs``)."""
import math

import numpy as np
import pytest
import torch

from pinn_lam import PDE, Box, Data, InitialValue, Periodic, solve
from pinn_lam.cli.solve import summary

TINY = dict(optimizer="lam+lbfgs", iterations=[3, 2], width=8, depth=2, n_collocation=64, n_boundary=16,
            eval_every=100, seed=0)


def test_true_unknowns_give_the_relative_errors_of_the_identified_values():
    rng = np.random.default_rng(0)
    points = rng.random((100, 2))
    values = np.exp(-0.2 * math.pi ** 2 * points[:, 1]) * np.sin(math.pi * points[:, 0])
    problem = PDE(Box(x=(0.0, 1.0), t=(0.0, 1.0)), lambda d: d["u_t"] - d["a"] * d["u_xx"], [Data(points, values)],
                  unknowns={"a": 1.0}, exact=lambda d: torch.exp(-0.2 * math.pi ** 2 * d["t"]) * torch.sin(
                      math.pi * d["x"]))
    problem.true_unknowns = {"a": 0.2}
    result = solve(problem, **TINY)
    metrics = result.metrics
    a = metrics["unknowns"]["a"]
    assert metrics["unknown_errors"] == {"a": pytest.approx(abs(a / 0.2 - 1))}
    assert f"unknown a = {a:.6g} (relative error {abs(a / 0.2 - 1):.2e})" in summary(result)


def test_complex_outputs_add_the_error_of_the_modulus():
    problem = PDE(Box(x=(0.0, 2 * math.pi), t=(0.0, 0.5)),
                  lambda d: {"real": d["u_t"] + d["v_xx"], "imaginary": d["v_t"] - d["u_xx"]},
                  [InitialValue(lambda d: torch.cat([torch.cos(d["x"]), torch.sin(d["x"])], 1), output=("u", "v")),
                   Periodic("x")],
                  outputs=("u", "v"), exact=lambda d: (torch.cos(d["x"] - d["t"]), torch.sin(d["x"] - d["t"])))
    problem.complex_outputs = ("u", "v")
    result = solve(problem, **TINY)
    reference = result.reference
    prediction = result.predict(reference.points())
    modulus = np.hypot(prediction[:, 0], prediction[:, 1])
    # |h| = 1 everywhere on the exact solution
    assert result.metrics["rel_l2_abs"] == pytest.approx(np.linalg.norm(modulus - 1) / math.sqrt(len(modulus)),
                                                         rel=1e-8)
    assert result.metrics["max_abs_abs"] == pytest.approx(np.abs(modulus - 1).max(), rel=1e-8)
    assert f"|u+iv|: relative L2 error {result.metrics['rel_l2_abs']:.3e}" in summary(result)
    plain = PDE(problem.domain, problem.pde, problem.conditions(), outputs=("u", "v"), exact=problem.exact)
    assert "rel_l2_abs" not in solve(plain, **TINY).metrics
