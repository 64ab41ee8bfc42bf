"""Seeded sampling: reproducible, in range, stratified (LHS), low-discrepancy (Sobol), resumable."""
import numpy as np
import pytest
from scipy.stats import qmc

from pinn_lam.training.sampling import (METHODS, PointSampler, box_points, residual_adaptive_points, unit_points,
                               unit_sampler)
from problems import Heat


@pytest.mark.parametrize("method", sorted(METHODS))
def test_unit_points_are_in_the_unit_cube_and_follow_the_seed(method):
    a = unit_points(method, 100, 3, np.random.default_rng(7))
    b = unit_points(method, 100, 3, np.random.default_rng(7))
    c = unit_points(method, 100, 3, np.random.default_rng(8))
    assert a.shape == (100, 3) and a.dtype == np.float64
    assert a.min() >= 0.0 and a.max() < 1.0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_latin_hypercube_puts_one_point_in_each_stratum_of_every_axis():
    n = 50
    points = unit_points("lhs", n, 2, np.random.default_rng(0))
    for axis in range(2):
        np.testing.assert_array_equal(np.sort(np.floor(points[:, axis] * n)), np.arange(n))


def test_sobol_is_more_uniform_than_independent_draws():
    rng = np.random.default_rng(0)
    sobol = unit_points("sobol", 256, 2, rng)
    uniform = unit_points("uniform", 256, 2, rng)
    assert qmc.discrepancy(sobol) < 0.2 * qmc.discrepancy(uniform)


def test_unit_sampler_advances_its_generator_so_calls_differ():
    unit = unit_sampler("sobol", 3)
    first, second = unit(16, 2), unit(16, 2)
    assert not np.array_equal(first, second)
    again = unit_sampler("sobol", 3)
    np.testing.assert_array_equal(again(16, 2), first)


def test_box_points_map_the_unit_cube_affinely():
    points = box_points([(-1.0, 1.0), (2.0, 5.0)], 3, lambda n, k: np.array([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]]))
    np.testing.assert_allclose(points, [[-1.0, 2.0], [0.0, 3.5], [1.0, 5.0]])


def test_point_sampler_draws_every_term_where_its_condition_holds():
    sampler = PointSampler(Heat(), ("pde", "ic", "bc"), n_collocation=64, n_boundary=32, method="lhs", seed=0)
    points = sampler.sample()
    assert points["pde"].shape == (64, 2) and points["ic"].shape == (32, 2) and points["bc"].shape == (32, 2)
    assert np.all(points["ic"][:, 1] == 0.0)
    assert set(np.unique(points["bc"][:, 0])) <= {0.0, 1.0}
    assert points["pde"].min() >= 0.0 and points["pde"].max() <= 1.0


def test_point_sampler_state_round_trip_repeats_the_next_draw():
    sampler = PointSampler(Heat(), ("pde",), n_collocation=32, n_boundary=8, seed=1)
    sampler.sample()
    state = sampler.state_dict()
    expected = sampler.sample()["pde"]
    other = PointSampler(Heat(), ("pde",), n_collocation=32, n_boundary=8, seed=99)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.sample()["pde"], expected)


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "halton"}, "unknown sampler"),
    ({"n_collocation": 0}, "collocation points must be a positive integer"),
    ({"n_boundary": -3}, "boundary points must be a positive integer"),
])
def test_bad_sampler_options_raise_one_line_value_errors(kwargs, match):
    options = {"n_collocation": 8, "n_boundary": 8, **kwargs}
    with pytest.raises(ValueError, match=match):
        PointSampler(Heat(), ("pde",), **options)


def test_residual_adaptive_points_follow_the_residual_density():
    # p ∝ |r|/mean|r| + 1 with r = 100 on x < 0.1 and 0 elsewhere: mean |r| = 10, so a point
    # lands in x < 0.1 with probability 0.1 * 11 / (0.1 * 11 + 0.9 * 1) = 0.55
    rng = np.random.default_rng(0)
    candidates = np.linspace(0.0, 1.0, 20000, endpoint=False)[:, None]
    residual = np.where(candidates[:, 0] < 0.1, 100.0, 0.0)
    chosen = residual_adaptive_points(candidates, residual, 400, rng)
    assert chosen.shape == (400, 1) and len(np.unique(chosen)) == 400
    assert 0.55 - 0.08 < np.mean(chosen[:, 0] < 0.1) < 0.55 + 0.08
    # a zero residual gives uniform sampling
    flat = residual_adaptive_points(candidates, np.zeros(20000), 400, rng)
    assert 0.1 - 0.05 < np.mean(flat[:, 0] < 0.1) < 0.1 + 0.05
    with pytest.raises(ValueError, match="need at least n=10 candidates"):
        residual_adaptive_points(candidates[:5], residual[:5], 10, rng)
