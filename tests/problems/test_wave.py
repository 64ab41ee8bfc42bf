"""Wave: physics on the exact solution, the method-of-lines reference at its order, bad parameters."""
import math

import numpy as np
import pytest
import torch

from problems import Wave
from problems.wave import odd_reflection_second_derivative


def _points(n=200, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 2, generator=generator, dtype=torch.float64).requires_grad_()


def test_residual_vanishes_on_the_exact_solution_and_conditions_hold():
    wave = Wave()
    p = _points()
    assert wave.residual(p, wave.exact_torch(p)).abs().max().item() < 1e-9
    assert Wave(c=1.0).residual(p, wave.exact_torch(p)).abs().max().item() > 1.0
    rng = np.random.default_rng(0)
    for name in ("ic", "ic_rate", "bc"):
        q = torch.as_tensor(wave.condition_map()[name].sample(wave.domain, 100, lambda n, k: rng.random((n, k))))
        assert wave.condition_residual(name, q, wave.exact_torch).abs().max().item() < 1e-12


def test_hard_constraint_covers_both_initial_conditions_and_the_ends():
    wave = Wave()
    transform = wave.output_transform()
    raw = torch.randn(100, 1, dtype=torch.float64)
    rng = np.random.default_rng(1)
    for name in transform.covers:
        q = torch.as_tensor(wave.condition_map()[name].sample(wave.domain, 100, lambda n, k: rng.random((n, k))))
        assert wave.condition_residual(name, q, lambda r: transform(r, torch.sin(3 * r[:, :1] + r[:, 1:]))) \
            .abs().max().item() < 1e-14
    assert set(transform.covers) == {"ic", "ic_rate", "bc"} and raw.shape == (100, 1)


def test_reflected_operator_is_symmetric_negative_definite_and_sixth_order():
    matrix = odd_reflection_second_derivative(32).toarray()
    assert np.allclose(matrix, matrix.T) and np.linalg.eigvalsh(matrix).max() < 0
    errors = []
    for n in (16, 32):
        x = np.linspace(0, 1, n + 1)[1:-1]
        errors.append(np.abs(odd_reflection_second_derivative(n) @ np.sin(2 * np.pi * x)
                             + 4 * np.pi ** 2 * np.sin(2 * np.pi * x)).max())
    assert abs(math.log2(errors[0] / errors[1]) - 6.0) < 0.3


def test_reference_converges_at_sixth_order_and_meets_its_target(tmp_path):
    wave = Wave()
    errors = np.array([wave.reference(n, cache_dir=tmp_path).error_estimate for n in (32, 64, 128)])
    assert np.all(np.abs(np.log2(errors[:-1] / errors[1:]) - 6.0) < 0.3), errors
    ref = wave.reference(cache_dir=tmp_path)
    assert ref.error_estimate <= 1e-9
    points = np.random.default_rng(2).random((2000, 2))
    x, t = points[:, 0], points[:, 1]
    exact = np.sin(np.pi * x) * np.cos(2 * np.pi * t) + 0.5 * np.sin(4 * np.pi * x) * np.cos(8 * np.pi * t)
    assert np.abs(ref(points) - exact).max() < 1e-7


@pytest.mark.parametrize("kwargs, message", [
    ({"c": 0.0}, "c must be a finite number > 0"),
    ({"modes": ()}, "non-empty"),
    ({"modes": ((0, 1.0),)}, "positive integer"),
    ({"modes": ((1, math.nan),)}, "finite"),
])
def test_bad_parameters_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Wave(**kwargs)


def test_a_mode_too_high_for_the_grid_is_said_not_hidden(tmp_path):
    import warnings

    from problems import Wave

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reference = Wave(modes=((120, 1.0),)).reference(cache_dir=tmp_path)
    assert reference.error_estimate > 1e-5
    assert any("above 1e-05" in str(w.message) for w in caught)
