"""Fourier building blocks: ETDRK4 and the fourth-order split step against exact solutions, at their orders."""
import math

import numpy as np
import pytest
import scipy.fft as sfft

from pinn_lam.pde.spectral import differentiation_matrix, etdrk4, split_step, wavenumbers


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


@pytest.mark.parametrize("order", [1, 2, 3])
def test_the_fourier_differentiation_matrix_is_exact_on_a_trigonometric_polynomial(order):
    n, length = 16, 10.0
    x = -5.0 + length * np.arange(n) / n
    k = 2 * math.pi / length
    u = np.sin(3 * k * x) + np.cos(7 * k * x)  # degree 7 < n/2
    # d^j/dx^j sin(ax) = a^j sin(ax + j pi/2)
    exact = (3 * k) ** order * np.sin(3 * k * x + order * math.pi / 2) + \
        (7 * k) ** order * np.cos(7 * k * x + order * math.pi / 2)
    assert np.abs(differentiation_matrix(n, length, order) @ u - exact).max() < 1e-12 * (7 * k) ** order


def test_the_method_of_lines_jacobian_matches_finite_differences_of_its_right_hand_side():
    import problems
    from pinn_lam.pde import auto_evolution
    from pinn_lam.pde.auto_jacobian import jacobian
    from pinn_lam.pde.auto_reference import _initial, checked_plan

    schrodinger = problems.get("schrodinger")
    plan = checked_plan(schrodinger)
    system = auto_evolution.Semidiscrete(schrodinger, plan, 16, 7, spectral=True)
    y = auto_evolution.initial_state(system, _initial(schrodinger, plan))
    y = y + 0.1 * np.random.default_rng(0).standard_normal(len(y))
    step = 1e-6
    columns = [(system.rhs(0.3, y + step * e) - system.rhs(0.3, y - step * e)) / (2 * step) for e in np.eye(len(y))]
    analytic = jacobian(system, 0.3, y)
    assert np.abs(analytic - np.stack(columns, axis=1)).max() < 1e-7 * np.abs(analytic).max()


def test_fourier_differentiation_is_refused_for_a_bad_grid():
    with pytest.raises(ValueError, match="n >= 2"):
        differentiation_matrix(1, 1.0, 1)


def test_the_fourier_method_of_lines_solves_periodic_advection_to_the_time_tolerance():
    import torch

    from pinn_lam import PDE, Box, InitialValue, Periodic
    from pinn_lam.pde import auto_evolution
    from pinn_lam.pde.auto_reference import _initial, checked_plan

    advection = PDE(Box(x=(0.0, 2.0), t=(0.0, 0.5)), lambda d: d["u_t"] + 3.0 * d["u_x"],
                    [InitialValue(lambda d: torch.sin(math.pi * d["x"]) + 0.5 * torch.cos(3 * math.pi * d["x"])),
                     Periodic("x")])
    plan = checked_plan(advection)
    times = np.linspace(0.0, 0.5, 6)
    x, u = auto_evolution.solve(advection, plan, 16, 7, times, 1e-10, _initial(advection, plan), spectral=True)
    xx, tt = np.meshgrid(x, times, indexing="ij")
    exact = np.sin(math.pi * (xx - 3 * tt)) + 0.5 * np.cos(3 * math.pi * (xx - 3 * tt))
    assert np.abs(u[..., 0] - exact).max() < 1e-7  # 16 nodes resolve both modes exactly: the time error is left
