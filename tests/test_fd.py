"""Finite-difference helpers: exact weights, eigenvalues, convergence orders, time steppers."""
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.linalg import expm

from pinn_lam.pde import fd


def test_laplacian_1d_has_the_known_eigenvalues_of_sine_modes():
    n, k = 63, 3
    h = 1.0 / (n + 1)
    x = np.arange(1, n + 1) * h
    v = np.sin(k * np.pi * x)
    eigenvalue = -4.0 / h**2 * np.sin(k * np.pi * h / 2) ** 2
    np.testing.assert_allclose(fd.laplacian_1d(n, h) @ v, eigenvalue * v, atol=1e-9)


def test_laplacian_2d_orders_x_fastest_and_is_second_order():
    errors = []
    for n in (16, 32, 64):
        h = 1.0 / n
        x = np.arange(1, n) * h
        y = np.arange(1, n) * h
        ux, uy = np.meshgrid(x, y, indexing="xy")  # (ny, nx): x varies fastest when raveled
        u = np.sin(np.pi * ux) * np.sin(2 * np.pi * uy)
        exact = -5 * np.pi**2 * u
        lap = fd.laplacian_2d(n - 1, n - 1, h, h)
        assert sp.issparse(lap) and lap.nnz <= 5 * (n - 1) ** 2
        errors.append(np.abs(lap @ u.ravel() - exact.ravel()).max())
    orders = np.log2(np.array(errors[:-1]) / errors[1:])
    np.testing.assert_allclose(orders, 2.0, atol=0.05)


def test_fornberg_weights_reproduce_the_classic_stencils():
    c = fd.fornberg_weights(0.0, np.array([-2.0, -1.0, 0.0, 1.0, 2.0]), 2)
    np.testing.assert_allclose(c[:, 1], [1 / 12, -2 / 3, 0, 2 / 3, -1 / 12], atol=1e-14)
    np.testing.assert_allclose(c[:, 2], [-1 / 12, 4 / 3, -5 / 2, 4 / 3, -1 / 12], atol=1e-13)
    np.testing.assert_allclose(c[:, 0], [0, 0, 1, 0, 0], atol=1e-15)
    # one-sided first derivative: -3/2, 2, -1/2
    np.testing.assert_allclose(fd.fornberg_weights(0.0, np.array([0.0, 1.0, 2.0]), 1)[:, 1],
                               [-1.5, 2.0, -0.5], atol=1e-14)


@pytest.mark.parametrize("derivative, width, order", [(1, 7, 6), (2, 7, 5), (1, 5, 4)])
def test_difference_matrix_on_a_stretched_grid_converges_at_its_order(derivative, width, order):
    # order: width - derivative on a non-uniform grid (the shifted end stencils limit it)
    errors = []
    for n in (256, 512):
        xi = np.linspace(-1, 1, n + 1)
        x = np.sinh(2.0 * xi) / np.sinh(2.0)
        f = np.exp(np.sin(2 * x))
        exact = {1: 2 * np.cos(2 * x) * f,
                 2: (4 * np.cos(2 * x) ** 2 - 4 * np.sin(2 * x)) * f}[derivative]
        errors.append(np.abs(fd.difference_matrix(x, derivative, width) @ f - exact).max())
    observed = np.log2(errors[0] / errors[1])
    assert abs(observed - order) < 0.3, observed


def test_difference_matrix_is_banded():
    matrix = fd.difference_matrix(np.linspace(0, 1, 40), 1, 7)
    rows, cols = matrix.nonzero()
    assert np.abs(rows - cols).max() <= 6


def test_crank_nicolson_is_second_order_with_a_source():
    # u' = -u + cos(t), u(0) = 1: u = (sin t + cos t)/2 + exp(-t)/2
    a = sp.csr_matrix([[-1.0]])
    exact = (np.sin(1) + np.cos(1)) / 2 + np.exp(-1) / 2
    errors = []
    for steps in (10, 20, 40):
        states = fd.crank_nicolson(a, np.array([1.0]), 1.0 / steps, steps,
                                   source=lambda t: np.array([np.cos(t)]), save_every=steps // 10)
        assert states.shape == (11, 1)
        errors.append(abs(states[-1, 0] - exact))
    np.testing.assert_allclose(np.log2(np.array(errors[:-1]) / errors[1:]), 2.0, atol=0.05)


def test_method_of_lines_matches_the_matrix_exponential():
    n = 20
    a = fd.laplacian_1d(n, 1.0 / (n + 1))
    u0 = np.random.default_rng(0).random(n)
    times = np.array([0.0, 0.01, 0.05])
    out = fd.method_of_lines(lambda t, u: a @ u, u0, times, jac=lambda t, u: a, rtol=1e-10, atol=1e-12)
    assert out.shape == (3, n)
    np.testing.assert_allclose(out[-1], expm(0.05 * a.toarray()) @ u0, atol=1e-8)
    sparse = fd.method_of_lines(lambda t, u: a @ u, u0, times, jac_sparsity=a != 0, method="Radau",
                                rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sparse[-1], out[-1], atol=1e-8)


@pytest.mark.parametrize("call", [
    lambda: fd.laplacian_1d(0, 0.1),
    lambda: fd.laplacian_1d(5, 0.0),
    lambda: fd.difference_matrix(np.linspace(0, 1, 10), 1, 4),
    lambda: fd.difference_matrix(np.linspace(0, 1, 5), 2, 7),
    lambda: fd.crank_nicolson(sp.identity(2), np.zeros(2), 0.1, 10, save_every=3),
])
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


def test_centred_end_rows_keep_the_second_derivatives_eigenvalues_real_and_negative():
    n = 64
    x = np.linspace(0.0, 1.0, n + 1)
    shifted = fd.difference_matrix(x, 2, 7).toarray()[1:-1, 1:-1]
    centred = fd.difference_matrix(x, 2, 7, centred=True).toarray()[1:-1, 1:-1]
    assert np.abs(np.linalg.eigvals(shifted).imag).max() > 100.0     # the wave equation's growing modes
    eigenvalues = np.linalg.eigvals(centred)
    assert np.abs(eigenvalues.imag).max() < 1e-6 and eigenvalues.real.max() < 0
    assert np.sort(-eigenvalues.real)[0] == pytest.approx(np.pi ** 2, rel=1e-6)   # the lowest mode of -d2/dx2
    # the rows are centred: the 3-point stencil next to each end, the 7-point one from the third node in
    row1, row3 = fd.difference_matrix(x, 2, 7, centred=True).toarray()[[1, 3]]
    assert np.nonzero(row1)[0].tolist() == [0, 1, 2]
    assert np.allclose(row1[:3], np.array([1.0, -2.0, 1.0]) * n ** 2)
    assert np.nonzero(row3)[0].tolist() == list(range(0, 7))
    u = np.sin(np.pi * x)
    assert np.abs((fd.difference_matrix(x, 2, 7, centred=True) @ u + np.pi ** 2 * u)[1:-1]).max() < 1e-3
