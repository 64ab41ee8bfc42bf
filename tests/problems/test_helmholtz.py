"""Helmholtz: physics on the exact solution, the extrapolated 5-point reference at its orders, bad parameters."""
import math

import numpy as np
import pytest
import torch

from problems import Helmholtz


def _points(n=200, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (2 * torch.rand(n, 2, generator=generator, dtype=torch.float64) - 1).requires_grad_()


def test_residual_vanishes_on_the_exact_solution():
    helmholtz = Helmholtz(k=2.5, a1=2, a2=3)
    p = _points()
    assert helmholtz.residual(p, helmholtz.exact_torch(p)).abs().max().item() < 1e-10
    # the default forcing is (1 - 17 pi^2) sin(pi x) sin(4 pi y): written out by hand
    default = Helmholtz()
    x, y = p[:, :1].detach(), p[:, 1:].detach()
    q = (1 - 17 * math.pi ** 2) * torch.sin(math.pi * x) * torch.sin(4 * math.pi * y)
    assert torch.allclose(default.source(p.detach()), q, atol=1e-12)
    assert default.residual(p, 2 * default.exact_torch(p)).abs().max().item() > 10.0


def test_boundary_condition_and_hard_constraint_hold_exactly():
    helmholtz = Helmholtz()
    rng = np.random.default_rng(0)
    points = torch.as_tensor(helmholtz.condition_map()["bc"].sample(helmholtz.domain, 200,
                                                                    lambda n, k: rng.random((n, k))))
    assert np.all(np.isclose(np.abs(points.numpy()), 1.0).any(axis=1))
    assert helmholtz.condition_residual("bc", points, helmholtz.exact_torch).abs().max().item() < 1e-14
    transform = helmholtz.output_transform()
    assert transform.covers == ("bc",)
    assert transform(points, torch.randn(200, 1, dtype=torch.float64)).abs().max().item() < 1e-15


def test_five_point_is_second_order_and_the_extrapolation_fourth(tmp_path):
    helmholtz = Helmholtz()
    plain = []
    for n in (32, 64):
        axis, u = helmholtz.five_point(n)
        exact = helmholtz.exact_values(np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2))
        plain.append(np.linalg.norm(u.ravel() - exact) / np.linalg.norm(exact))
    assert abs(math.log2(plain[0] / plain[1]) - 2.0) < 0.05
    errors = np.array([helmholtz.reference(n, cache_dir=tmp_path).error_estimate for n in (32, 64)])
    assert abs(math.log2(errors[0] / errors[1]) - 4.0) < 0.2


def test_default_reference_meets_its_target_between_grid_points(tmp_path):
    helmholtz = Helmholtz()
    assert helmholtz.auto_resolution() == 128
    ref = helmholtz.reference(cache_dir=tmp_path)
    assert ref.info["resolution"] == [128] and ref.error_estimate <= 1e-5
    points = np.random.default_rng(3).uniform(-1, 1, (3000, 2))
    exact = np.sin(np.pi * points[:, 0]) * np.sin(4 * np.pi * points[:, 1])
    assert np.linalg.norm(ref(points) - exact) / np.linalg.norm(exact) <= 1e-5


@pytest.mark.parametrize("kwargs, message", [
    ({"k": -1.0}, "k must be a finite number >= 0"),
    ({"k": math.inf}, "k must be a finite number >= 0"),
    ({"k": math.pi / math.sqrt(2)}, "eigenvalue"),
    ({"a1": 0}, "positive integer"),
    ({"a2": 1.5}, "positive integer"),
])
def test_bad_parameters_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Helmholtz(**kwargs)


@pytest.mark.parametrize("resolution", [4, "fine", (64, 64)])
def test_bad_resolution_raises_value_error(resolution, tmp_path):
    with pytest.raises(ValueError, match="resolution"):
        Helmholtz().reference(resolution, cache_dir=tmp_path)


def test_a_reference_that_misses_its_target_says_so(tmp_path):
    """Modes too high for the automatic resolution's cap of 512 intervals: a warning, not silence."""
    helmholtz = Helmholtz(a1=1, a2=40)
    helmholtz.auto_resolution = lambda: 64  # the cap, scaled down so that the test stays fast
    with pytest.warns(UserWarning, match="above 1e-05"):
        ref = helmholtz.reference(cache_dir=tmp_path)
    assert ref.error_estimate > 1e-5
