"""Fourier building blocks: ETDRK4 and the fourth-order split step against exact solutions, at their orders."""
import math

import numpy as np
import pytest
import scipy.fft as sfft

from pinn_lam.pde.spectral import etdrk4, split_step, wavenumbers


def test_wavenumbers_differentiate_a_sine_exactly():
    x = 2.0 * np.arange(16) / 16  # period 2
    derivative = sfft.ifft(1j * wavenumbers(16, 2.0) * sfft.fft(np.sin(3 * math.pi * x))).real
    np.testing.assert_allclose(derivative, 3 * math.pi * np.cos(3 * math.pi * x), atol=1e-12)


def _logistic_error(steps):
    """u' = -u + u^2 (the same at every node), from u0 = 0.5: exact u = 1 / (1 + e^t)."""
    u0 = np.full(8, 0.5)
    states = etdrk4(u0, np.full(8, -1.0), lambda v: sfft.fft(sfft.ifft(v).real ** 2), 2.0 / steps, steps, steps)
    return abs(states[-1, 0] - 1.0 / (1.0 + math.exp(2.0)))


def test_etdrk4_is_fourth_order_on_a_stiff_free_nonlinear_ode():
    errors = np.array([_logistic_error(n) for n in (10, 20, 40)])
    orders = np.log2(errors[:-1] / errors[1:])
    assert np.all(np.abs(orders - 4.0) < 0.3), orders


def test_etdrk4_integrates_the_linear_part_exactly_even_for_imaginary_stiff_modes():
    n = 32
    x = 2 * math.pi * np.arange(n) / n
    k = wavenumbers(n, 2 * math.pi)
    u0 = np.exp(5j * x)  # i u_t = -u_xx/2: u = exp(i (5x - 12.5 t))
    states = etdrk4(u0, -0.5j * k ** 2, lambda v: np.zeros_like(v), 0.3, 3, 3)
    np.testing.assert_allclose(states[-1], np.exp(1j * (5 * x - 12.5 * 0.9)), atol=1e-12)


def _soliton_error(steps, n=256, length=40.0, duration=1.0):
    """The soliton sech(x) e^{it/2} of i h_t + h_xx/2 + |h|^2 h = 0 (exact to 1e-8 on [-20, 20))."""
    x = -length / 2 + length * np.arange(n) / n
    flow = lambda h, tau: h * np.exp(1j * np.abs(h) ** 2 * tau)  # noqa: E731
    states = split_step(1 / np.cosh(x) + 0j, -0.5j * wavenumbers(n, length) ** 2, flow, duration / steps, steps,
                        steps)
    return np.abs(states[-1] - np.exp(0.5j * duration) / np.cosh(x)).max()


def test_split_step_is_fourth_order_on_the_soliton():
    errors = np.array([_soliton_error(n) for n in (5, 10, 20)])
    orders = np.log2(errors[:-1] / errors[1:])
    assert np.all(orders > 3.6), (errors, orders)


@pytest.mark.parametrize("steps, save_every", [(0, 1), (10, 3), (10, 0)])
def test_bad_step_counts_raise_one_line_errors(steps, save_every):
    with pytest.raises(ValueError, match="save_every dividing steps"):
        etdrk4(np.zeros(4), np.zeros(4), lambda v: v, 0.1, steps, save_every)
    with pytest.raises(ValueError, match="save_every dividing steps"):
        split_step(np.zeros(4), np.zeros(4), lambda h, tau: h, 0.1, steps, save_every)
