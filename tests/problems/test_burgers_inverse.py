"""Burgers' inverse problem: observations from the reference, noise, the residual with the true coefficients,
the reported coefficient errors, bad parameters."""
import math

import numpy as np
import pytest
import torch

from pinn_lam import solve
from problems import BurgersInverse


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("PINN_LAM_CACHE", str(tmp_path_factory.getbasetemp() / "burgers-cache"))


def test_observations_are_reference_values_at_distinct_grid_points():
    inverse = BurgersInverse(observations=500, seed=3)
    points, values = inverse.observed()
    reference = inverse.reference()
    assert points.shape == (500, 2) and len(np.unique(points, axis=0)) == 500
    np.testing.assert_allclose(values, reference(points), atol=1e-12)
    again, _ = BurgersInverse(observations=500, seed=3).observed()
    other, _ = BurgersInverse(observations=500, seed=4).observed()
    assert np.array_equal(points, again) and not np.array_equal(points, other)


def test_noise_is_relative_to_the_spread_of_the_observations():
    clean = BurgersInverse()
    noisy = BurgersInverse(noise=0.01)
    points, exact = clean.observed()
    same_points, values = noisy.observed()
    assert np.array_equal(points, same_points) and len(points) == 2000
    # 1 % of the observations' standard deviation, within sampling error over 2000 draws
    assert np.std(values - exact) / np.std(exact) == pytest.approx(0.01, rel=0.1)


def test_residual_vanishes_with_the_true_coefficients_only():
    inverse = BurgersInverse()
    p = (torch.rand(100, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
         * torch.tensor([2.0, 0.9], dtype=torch.float64) + torch.tensor([-1.0, 0.1], dtype=torch.float64))
    p.requires_grad_()
    u = inverse.exact_torch(p)
    true = {name: torch.tensor(value, dtype=torch.float64) for name, value in inverse.true_unknowns.items()}
    assert inverse.residual(p, u, true).abs().max().item() < 1e-8
    wrong = dict(true, lambda1=torch.tensor(0.9, dtype=torch.float64))
    assert inverse.residual(p, u, wrong).abs().max().item() > 0.1
    assert inverse.true_unknowns == {"lambda1": 1.0, "lambda2": 0.01 / math.pi}
    assert set(inverse.condition_map()) == {"data"}


@pytest.mark.parametrize("kwargs, message", [
    ({"noise": -0.1}, "noise must be a number >= 0 and < 1"),
    ({"noise": 1.0}, "noise must be a number >= 0 and < 1"),
    ({"observations": 5}, "observations must be an integer >= 10"),
    ({"observations": 100.0}, "observations must be an integer >= 10"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"nu": 0.0}, "nu must be a finite number > 0"),
])
def test_bad_parameters_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BurgersInverse(**kwargs)


def test_too_many_observations_for_the_grid_raise_value_error():
    with pytest.raises(ValueError, match="observations must be at most 25600"):
        BurgersInverse(observations=30000).observed()


def test_a_small_run_recovers_both_coefficients():
    # the smooth case (nu = 0.1/pi), 1000 clean observations, a small network: LAM then 60 LM steps
    result = solve("burgers-inverse", optimizer="lam+lm", iterations=[200, 60], width=16, depth=3,
                   n_collocation=1024, params={"nu": 0.1 / math.pi, "observations": 1000}, seed=0,
                   figure=False, device="cpu")
    found, errors = result.metrics["unknowns"], result.metrics["unknown_errors"]
    assert found["lambda1"] == pytest.approx(1.0, rel=5e-3)
    assert found["lambda2"] == pytest.approx(0.1 / math.pi, rel=5e-3)
    assert errors["lambda1"] == pytest.approx(abs(found["lambda1"] - 1.0), abs=1e-12)
    assert errors["lambda2"] == pytest.approx(abs(found["lambda2"] * math.pi / 0.1 - 1.0), rel=1e-9)
