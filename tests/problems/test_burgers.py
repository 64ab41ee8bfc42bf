"""Burgers: physics on a manufactured solution, the method-of-lines reference against the published
data set and the exact Cole-Hopf solution, its convergence order and error estimate, bad parameters."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from problems import Burgers
from problems.burgers import STANDARD_T, STANDARD_X, auto_intervals, cole_hopf

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "burgers_shock.mat"
NU = 0.01 / math.pi


def _unit(seed):
    rng = np.random.default_rng(seed)
    return lambda n, k: rng.random((n, k))


def _subgrid():
    """Every 4th standard x and 3rd standard t: the standard grid's shape at a fraction of the cost."""
    mesh = np.meshgrid(STANDARD_X[::4], STANDARD_T[::3], indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def _relative_l2(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def standard_data():
    if not DATA.exists():
        pytest.skip(f"shared data set not found at {DATA}")
    from scipy.io import loadmat

    data = loadmat(DATA)
    return data["x"].ravel(), data["t"].ravel(), data["usol"]


def test_residual_vanishes_on_the_steady_viscous_shock():
    # u = -tanh(x / (2 nu)) solves u u_x = nu u_xx, and u_t = 0
    burgers = Burgers(nu=0.05)
    p = (torch.rand(300, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1).requires_grad_()
    u = -torch.tanh(p[:, :1] / (2 * 0.05)) + 0 * p[:, 1:2]
    assert burgers.residual(p, u).abs().max().item() < 1e-10
    assert Burgers(nu=0.04).residual(p, u).abs().max().item() > 0.1


def test_residual_vanishes_on_the_exact_cole_hopf_solution():
    burgers = Burgers()
    assert burgers.has_exact
    generator = torch.Generator().manual_seed(1)
    p = torch.rand(300, 2, generator=generator, dtype=torch.float64) * torch.tensor([2.0, 0.95]) + torch.tensor([-1.0, 0.05])
    p.requires_grad_()
    # u_x reaches -1/(2 nu) ~ -160 at the shock, so 1e-9 is round-off level
    assert burgers.residual(p, burgers.exact_torch(p)).abs().max().item() < 1e-9
    assert Burgers(nu=0.02 / math.pi).residual(p, burgers.exact_torch(p)).abs().max().item() > 0.1


def test_exact_solution_works_in_float32_and_at_t_zero():
    burgers = Burgers()
    p = torch.rand(500, 2, generator=torch.Generator().manual_seed(2)) * torch.tensor([2.0, 1.0]) - torch.tensor([1.0, 0.0])
    assert burgers.exact_torch(p).dtype == torch.float32
    torch.testing.assert_close(burgers.exact_torch(p).double(), burgers.exact_torch(p.double()), atol=1e-5, rtol=0)
    start = torch.tensor([[0.3, 0.0], [-0.7, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(burgers.exact_torch(start), -torch.sin(math.pi * start[:, :1]), atol=1e-12, rtol=0)


def test_conditions_sample_where_they_apply_and_the_hard_constraint_meets_them():
    burgers = Burgers()
    conditions = burgers.condition_map()
    transform = burgers.output_transform()
    assert set(conditions) == {"ic", "bc"} == set(transform.covers)
    ic = conditions["ic"].sample(burgers.domain, 200, _unit(0))
    bc = conditions["bc"].sample(burgers.domain, 200, _unit(1))
    assert np.all(ic[:, 1] == 0) and ic[:, 0].min() >= -1 and ic[:, 0].max() <= 1
    assert set(np.unique(bc[:, 0])) == {-1.0, 1.0} and bc[:, 1].min() >= 0 and bc[:, 1].max() <= 1
    for name, points in (("ic", ic), ("bc", bc)):
        p = torch.as_tensor(points)
        raw = torch.randn(len(p), 1, dtype=torch.float64)
        assert burgers.condition_residual(name, p, lambda q: transform(q, raw)).abs().max().item() < 1e-15
        # the exact solution meets them too: residual(p, u) = u - g, so g = -residual(p, 0)
        zero = lambda q: torch.zeros(len(q), 1, dtype=torch.float64)  # noqa: E731
        target = -burgers.condition_residual(name, p, zero).detach().numpy().ravel()
        assert np.abs(cole_hopf(points, NU) - target).max() < 1e-12


def test_cole_hopf_matches_the_published_data(standard_data):
    x, t, usol = standard_data
    points = _subgrid()
    data = usol[::4, ::3].ravel()
    assert _relative_l2(cole_hopf(points, NU), data) < 1e-10
    # the quadrature has converged: 4x the nodes changes nothing visible
    assert _relative_l2(cole_hopf(points, NU), cole_hopf(points, NU, nodes=1601)) < 1e-13


def test_reference_matches_the_published_data_from_scratch(standard_data, tmp_path):
    x, t, usol = standard_data
    ref = Burgers().reference(cache_dir=tmp_path)
    assert not ref.info["cached"]  # computed here (`pinn-lam reference --table` times it)
    np.testing.assert_array_equal(ref.grid[0], x)
    np.testing.assert_allclose(ref.grid[1], t, atol=1e-15)
    error = _relative_l2(ref.u, usol)
    assert error <= 1e-5
    # the estimate from grid refinement is honest (not below the true error) and meets the target
    assert error <= ref.error_estimate <= 1e-5
    # calling it at the data's points interpolates the fine solution, adding no error
    assert _relative_l2(ref(ref.points()), usol.ravel()) <= 1e-5


def test_reference_interpolates_near_the_shock_without_losing_accuracy(tmp_path):
    ref = Burgers().reference(cache_dir=tmp_path)
    rng = np.random.default_rng(3)
    points = np.column_stack([rng.uniform(-0.02, 0.02, 300), rng.uniform(0.4, 1.0, 300)])
    assert _relative_l2(ref(points), cole_hopf(points, NU)) <= 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("nu", [0.1 / math.pi, 0.003 / math.pi])
def test_other_viscosities_meet_the_same_accuracy(nu, tmp_path):
    ref = Burgers(nu=nu).reference(cache_dir=tmp_path)
    assert ref.info["intervals"] == auto_intervals(nu)
    points = _subgrid()
    exact = cole_hopf(points, nu)
    error = _relative_l2(ref(points), exact)
    assert error <= 1e-5
    assert error <= ref.error_estimate <= 1e-5


def test_thinner_shocks_get_finer_grids():
    assert auto_intervals(0.1 / math.pi) <= auto_intervals(0.01 / math.pi) < auto_intervals(0.003 / math.pi)


def test_reference_converges_at_sixth_order(tmp_path):
    burgers = Burgers(nu=0.1 / math.pi)
    points = _subgrid()
    exact = cole_hopf(points, burgers.nu)
    errors = np.array([_relative_l2(burgers.reference(n, cache_dir=tmp_path)(points), exact) for n in (64, 128)])
    order = np.log2(errors[0] / errors[1])
    assert abs(order - 6.0) < 0.7, (errors, order)


@pytest.mark.parametrize("nu", [0.0, -0.01, math.inf, math.nan, "0.01", True])
def test_bad_viscosity_raises_value_error(nu):
    with pytest.raises(ValueError, match="nu must be a finite number > 0"):
        Burgers(nu=nu)


@pytest.mark.parametrize("resolution", [16, 130, 256.0, "fine", (256, 100)])
def test_bad_resolution_raises_value_error(resolution, tmp_path):
    with pytest.raises(ValueError, match="resolution"):
        Burgers().reference(resolution, cache_dir=tmp_path)


def test_construction_solves_nothing(monkeypatch):
    """Building the problem only validates its parameter: the reference and the exact solution
    are computed when asked for."""
    import problems.burgers as module

    def refuse(*args, **kwargs):
        raise AssertionError("computed at construction")

    for name in ("cached_reference", "cole_hopf", "cole_hopf_torch", "auto_intervals", "stretching"):
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(module.fd, "method_of_lines", refuse)
    assert Burgers(nu=0.02).parameters() == {"nu": 0.02}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["burgers", "heat", "poisson"])
def test_physics_runs_on_cuda_like_on_cpu(name):
    import problems

    problem = problems.get(name)
    low = torch.tensor([b[0] for b in problem.bounds], dtype=torch.float64)
    high = torch.tensor([b[1] for b in problem.bounds], dtype=torch.float64)
    cpu = (low + (high - low) * torch.rand(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    values = {}
    for device in ("cpu", "cuda"):
        p = cpu.to(device).requires_grad_()
        u = problem.exact_torch(p)
        raw = torch.ones_like(u)
        values[device] = [problem.residual(p, u), u, problem.output_transform()(p, raw)]
    for a, b in zip(values["cpu"], values["cuda"]):
        assert b.device.type == "cuda"
        torch.testing.assert_close(b.cpu(), a, rtol=1e-9, atol=1e-9)
