"""Schrodinger: the two residuals by hand, the split-step reference's estimate, the published data, bad parameters."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pinn_lam.pde.reference import load_reference
from problems import Schrodinger

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "NLS.mat"


@pytest.fixture(scope="module")
def coarse(tmp_path_factory):
    """The reference at (512 modes, 3200 steps): about 1e-5, two seconds on two cores."""
    return Schrodinger().reference((512, 3200), cache_dir=tmp_path_factory.mktemp("cache"))


def test_residuals_vanish_on_the_amplitude_one_soliton():
    """sech(x) e^{it/2} solves the equation on the whole line: both residuals vanish on it."""
    nls = Schrodinger(amplitude=1.0)
    p = (torch.rand(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * torch.tensor(
        [10.0, 1.5], dtype=torch.float64) - torch.tensor([5.0, 0.0], dtype=torch.float64)).requires_grad_()
    x, t = p[:, :1], p[:, 1:]
    soliton = torch.cat([torch.cos(t / 2) / torch.cosh(x), torch.sin(t / 2) / torch.cosh(x)], dim=1)
    residuals = nls.residual(p, soliton)
    assert set(residuals) == {"real", "imaginary"}
    assert max(r.abs().max().item() for r in residuals.values()) < 1e-12
    # a wrong phase speed leaves both residuals of the size of the solution
    slow = torch.cat([torch.cos(t / 4) / torch.cosh(x), torch.sin(t / 4) / torch.cosh(x)], dim=1)
    assert nls.residual(p, slow)["real"].abs().max().item() > 0.1


def test_initial_condition_and_periodicity_of_the_reference(coarse):
    x = coarse.grid[0]
    np.testing.assert_allclose(coarse.u[:, 0, 0], 2 / np.cosh(x), atol=1e-14)
    np.testing.assert_allclose(coarse.u[:, 0, 1], 0.0, atol=1e-14)
    assert np.array_equal(coarse.u[0], coarse.u[-1])
    # the mass (the L2 norm of h) is conserved: exactly on the 512 nodes, to 1e-6 on every other one
    h = coarse.u[:-1, :, 0] + 1j * coarse.u[:-1, :, 1]
    mass = (np.abs(h) ** 2).sum(axis=0) * (x[1] - x[0])
    np.testing.assert_allclose(mass, mass[0], rtol=1e-5)


def test_reference_estimate_and_the_order_in_time(coarse):
    info = coarse.info
    assert info["space_order"] == 1.5 and coarse.error_estimate < 2e-5
    nls = Schrodinger()
    fine = nls.spectral_solution(256, 3200)
    errors = [np.linalg.norm(nls.spectral_solution(256, s) - fine) for s in (800, 1600)]
    assert 3.5 < math.log2(errors[0] / errors[1]) < 5.0


@pytest.mark.skipif(not DATA.is_file(), reason="the published data set (../shared/data/NLS.mat) is absent")
def test_reference_agrees_with_the_published_data_to_its_accuracy(coarse):
    published = load_reference(DATA, ("x", "t"), ("u", "v"), keys={"t": "tt", "u": "uu.real", "v": "uu.imag"})
    ours = coarse(published.points())
    values = published.values()
    modulus = np.hypot(values[:, 0], values[:, 1])
    difference = np.linalg.norm(np.hypot(ours[:, 0], ours[:, 1]) - modulus) / np.linalg.norm(modulus)
    # the data set used 256 modes, which resolve the kink of 2 sech x at x = +-5 only to about 1e-5
    assert 3e-6 < difference < 3e-5
    assert np.linalg.norm(ours - values) / np.linalg.norm(values) < 5e-5


def test_complex_outputs_name_the_real_and_imaginary_parts():
    assert Schrodinger().complex_outputs == ("u", "v") and Schrodinger().outputs == ("u", "v")


@pytest.mark.parametrize("amplitude", [0.0, -2.0, math.inf])
def test_bad_amplitude_raises_value_error(amplitude):
    with pytest.raises(ValueError, match="amplitude must be a finite number > 0"):
        Schrodinger(amplitude=amplitude)


@pytest.mark.parametrize("resolution", [(256, 400), (600, 400), (512, 500)])
def test_bad_resolution_raises_value_error(resolution, tmp_path):
    with pytest.raises(ValueError, match="resolution"):
        Schrodinger().reference(resolution, cache_dir=tmp_path)
