"""Convection: physics on the exact solution, the periodic method-of-lines reference at its order, bad parameters."""
import math

import numpy as np
import pytest
import torch

from problems import Convection
from problems.convection import periodic_derivative


def _points(n=200, seed=0):
    generator = torch.Generator().manual_seed(seed)
    p = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    return (p * torch.tensor([2 * math.pi, 1.0], dtype=torch.float64)).requires_grad_()


def test_residual_vanishes_on_the_exact_solution_and_conditions_hold():
    convection = Convection(beta=30.0)
    p = _points()
    assert convection.residual(p, convection.exact_torch(p)).abs().max().item() < 1e-11
    assert Convection(beta=20.0).residual(p, convection.exact_torch(p)).abs().max().item() > 1.0
    rng = np.random.default_rng(0)
    for name in ("ic", "periodic_x"):
        q = torch.as_tensor(convection.condition_map()[name].sample(convection.domain, 100,
                                                                    lambda n, k: rng.random((n, k))))
        assert convection.condition_residual(name, q, convection.exact_torch).abs().max().item() < 1e-12


def test_periodic_stencil_is_eighth_order():
    errors = []
    for n in (32, 64):
        x = 2 * math.pi * np.arange(n) / n
        errors.append(np.abs(periodic_derivative(n, 2 * math.pi) @ np.sin(3 * x) - 3 * np.cos(3 * x)).max())
    assert abs(math.log2(errors[0] / errors[1]) - 8.0) < 0.3


def test_reference_converges_and_meets_its_target(tmp_path):
    convection = Convection(beta=30.0)
    errors = [convection.reference(n, cache_dir=tmp_path).error_estimate for n in (16, 32, 64)]
    # the stencil is 8th order, the quintic spline through the nodes 6th: at least 6 per halving
    assert all(math.log2(a / b) > 6.0 for a, b in zip(errors, errors[1:])), errors
    ref = convection.reference(cache_dir=tmp_path)
    assert ref.error_estimate <= 1e-9 and ref.u.shape == (256, 101)
    points = np.random.default_rng(1).random((2000, 2)) * [2 * math.pi, 1.0]
    exact = np.sin(points[:, 0] - 30.0 * points[:, 1])
    assert np.abs(ref(points) - exact).max() < 1e-7


@pytest.mark.parametrize("beta", [0.0, -1.0, math.nan, "30"])
def test_bad_beta_raises_value_error(beta):
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        Convection(beta=beta)
