"""Heat: physics on the exact solution, the Crank-Nicolson reference, its order, and bad parameters."""
import math

import numpy as np
import pytest
import torch

from problems import Heat


def _points(n=200, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 2, generator=generator, dtype=torch.float64).requires_grad_()


def test_residual_vanishes_on_the_exact_solution():
    heat = Heat(alpha=0.3, modes=((1, 1.0), (3, -0.4)))
    p = _points()
    residual = heat.residual(p, heat.exact_torch(p))
    assert residual.shape == (200, 1)
    assert residual.abs().max().item() < 1e-11
    # and it is not trivially zero: a wrong alpha leaves a residual
    assert Heat(alpha=0.2, modes=heat.modes).residual(p, heat.exact_torch(p)).abs().max().item() > 0.1


def test_conditions_hold_for_the_exact_solution_and_sample_where_they_apply():
    heat = Heat()
    rng = np.random.default_rng(0)
    unit = lambda n, k: rng.random((n, k))  # noqa: E731
    for name, condition in heat.condition_map().items():
        points = condition.sample(heat.domain, 100, unit)
        assert points.shape == (100, 2)
        if name == "ic":
            assert np.all(points[:, 1] == 0) and np.all((0 <= points[:, 0]) & (points[:, 0] <= 1))
        else:
            assert set(np.unique(points[:, 0])) == {0.0, 1.0}
        p = torch.as_tensor(points)
        assert heat.condition_residual(name, p, heat.exact_torch).abs().max().item() < 1e-14


def test_hard_constraint_satisfies_the_conditions_exactly():
    heat = Heat()
    transform = heat.output_transform()
    assert set(transform.covers) == {"ic", "bc"}
    rng = np.random.default_rng(1)
    unit = lambda n, k: rng.random((n, k))  # noqa: E731
    for name in transform.covers:
        p = torch.as_tensor(heat.condition_map()[name].sample(heat.domain, 50, unit))
        raw = torch.randn(50, 1, dtype=torch.float64)
        assert heat.condition_residual(name, p, lambda q: transform(q, raw)).abs().max().item() < 1e-15


def _heat_by_hand(points):
    """The default problem's solution written out: sin(pi x) e^{-0.1 pi^2 t} + 0.5 sin(4 pi x) e^{-1.6 pi^2 t}."""
    x, t = points[:, 0], points[:, 1]
    return np.sin(np.pi * x) * np.exp(-0.1 * np.pi**2 * t) + 0.5 * np.sin(4 * np.pi * x) * np.exp(-1.6 * np.pi**2 * t)


def test_reference_is_within_1e_5_of_exact_at_default_resolution(tmp_path):
    ref = Heat().reference(cache_dir=tmp_path)
    exact = _heat_by_hand(ref.points()).reshape(ref.u.shape)
    on_grid = np.linalg.norm(ref.u - exact) / np.linalg.norm(exact)
    assert on_grid <= 1e-5 and ref.error_estimate == pytest.approx(on_grid, rel=1e-6)
    # between grid points (the cubic spline) the error is the same size: the estimate holds there too
    points = np.random.default_rng(2).random((2000, 2))
    values = _heat_by_hand(points)
    between = np.linalg.norm(ref(points) - values) / np.linalg.norm(values)
    assert 0.5 * ref.error_estimate <= between <= 2 * ref.error_estimate
    assert np.abs(ref(points) - values).max() < 1e-5


def test_reference_converges_at_second_order(tmp_path):
    heat = Heat(alpha=0.2, modes=((2, 1.0),))
    errors = [heat.reference((n, n), cache_dir=tmp_path).error_estimate for n in (32, 64, 128)]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - 2.0) < 0.1), orders


def test_parameters_key_the_reference_and_repr():
    assert Heat(alpha=0.5, modes=[(2, 1)]).parameters() == {"alpha": 0.5, "modes": [[2, 1.0]]}
    assert "alpha=0.1" in repr(Heat())


@pytest.mark.parametrize("kwargs, message", [
    ({"alpha": 0.0}, "alpha must be a finite number > 0"),
    ({"alpha": -1.0}, "alpha must be a finite number > 0"),
    ({"alpha": math.nan}, "alpha must be a finite number > 0"),
    ({"modes": ()}, "non-empty"),
    ({"modes": ((1.5, 1.0),)}, "positive integer"),
    ({"modes": ((0, 1.0),)}, "positive integer"),
    ({"modes": ((-2, 1.0),)}, "positive integer"),
    ({"modes": ((1, 1.0, 2.0),)}, r"\(k, a_k\) pair"),
    ({"modes": ((1, math.inf),)}, "finite"),
])
def test_bad_parameters_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Heat(**kwargs)


@pytest.mark.parametrize("resolution", [4, (4, 100), (100, 2), (64,), "fine", (64.0, 64)])
def test_bad_resolution_raises_value_error(resolution, tmp_path):
    with pytest.raises(ValueError, match="resolution"):
        Heat().reference(resolution, cache_dir=tmp_path)


def test_automatic_resolution_keeps_other_parameters_within_1e_7(tmp_path):
    assert Heat().auto_resolution() == 256
    heat = Heat(alpha=0.2, modes=((2, 1.0), (5, -0.3)))
    n = heat.auto_resolution()
    assert n > 256
    ref = heat.reference(cache_dir=tmp_path)
    assert ref.info["resolution"] == [n, n] and ref.error_estimate <= 1e-7
    points = np.random.default_rng(4).random((2000, 2))
    exact = heat.exact_values(points)
    assert np.linalg.norm(ref(points) - exact) / np.linalg.norm(exact) <= 1e-7


def test_the_extrapolated_reference_converges_at_fourth_order():
    errors = np.array([Heat()._extrapolated(n)[1]["error_estimate"] for n in (32, 64, 128)])
    np.testing.assert_allclose(np.log2(errors[:-1] / errors[1:]), 4.0, atol=0.3)
