r"""An exponential integrator for periodic evolution problems: ETDRK4 on the method of lines.

On a periodic grid, an equation whose coefficients do not depend on :math:`x` or :math:`t` has
a block-circulant linearization: the Jacobian :math:`L = \partial f/\partial y` of the
semi-discrete system :math:`y' = f(t, y)` (:class:`~pinn_lam.pde.auto_evolution.Semidiscrete`)
at a constant state couples node :math:`p` of output :math:`j` with node :math:`q` of output
:math:`i` by :math:`c_{ji}[p - q]` only, so the discrete Fourier transform turns it into one
:math:`B \times B` matrix :math:`\hat L_k` per wavenumber (:math:`B` outputs, or values and rates
for an equation second order in time). :func:`linear_symbol` finds :math:`c_{ji}` by central
differences of :math:`f` (any :math:`L` gives a consistent method; this one takes the stiff
part: the differences with large eigenvalues, e.g. :math:`\tfrac i2 \partial_{xx}` of the
Schrödinger equation, whose spectrum up to :math:`k_{\max}^2/2` on the imaginary axis limits
BDF's steps by stability), and says ``None`` where the Jacobian is not block-circulant.

With :math:`N(t, y) = f(t, y) - L y`, the fourth-order scheme of Cox and Matthews (2002), in
Fourier space with :math:`E = e^{hL}`, :math:`E_2 = e^{hL/2}`, :math:`\varphi_j` the functions
:math:`\varphi_0 = e^z`, :math:`\varphi_{j+1}(z) = (\varphi_j(z) - 1/j!)/z`:

.. math::

    a &= E_2 y_n + \tfrac h2 \varphi_1(\tfrac h2 L) N(t_n, y_n), \qquad
    b = E_2 y_n + \tfrac h2 \varphi_1(\tfrac h2 L) N(t_n + \tfrac h2, a), \\
    c &= E_2 a + \tfrac h2 \varphi_1(\tfrac h2 L) \bigl(2 N(t_n + \tfrac h2, b) - N(t_n, y_n)\bigr), \\
    y_{n+1} &= E y_n + h(\varphi_1 - 3\varphi_2 + 4\varphi_3) N_n + 2h(\varphi_2 - 2\varphi_3)(N_a + N_b)
              + h(4\varphi_3 - \varphi_2) N_c,

the :math:`\varphi_j(hL)` of each block from one matrix exponential of the augmented matrix
:math:`\begin{pmatrix} hL & I & 0 & 0\\ 0 & 0 & I & 0\\ 0&0&0&I\\0&0&0&0\end{pmatrix}`, whose
first block row is :math:`(e^{hL}, \varphi_1, \varphi_2, \varphi_3)` (no cancellation for small
:math:`hL`, unlike the closed forms). :func:`solve` doubles the number of fixed steps until the
time error estimated from three runs (``S/4``, ``S/2`` and ``S`` steps, Richardson with their
observed rate) meets a tolerance, and returns the finest run with that estimate.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from scipy.linalg import expm

from pinn_lam.pde.auto_evolution import Semidiscrete, initial_state

#: relative size of the central-difference probes, and how closely the Jacobian must be block-circulant
PROBE, CIRCULANT = 1e-4, 1e-7
#: changes below this fraction of the tolerance count as converged, whatever their ratio
NEGLIGIBLE = 1e-3
#: the fewest and most fixed steps over the time interval
MIN_STEPS, MAX_STEPS = 400, 204800
#: how many times the steps are doubled after a run that blew up before the grid is blamed
MAX_BLOWUPS = 2
#: the most output times per time interval of ``times`` a run keeps (for the spline in time)
MAX_DENSE = 16


def _blocks(system: Semidiscrete) -> int:
    return system.m * system.plan.time_order


def _jacobian_column(system: Semidiscrete, t: float, base: np.ndarray, block: int, node: int) -> np.ndarray:
    """Column ``(block, node)`` of the Jacobian at ``base`` by central differences, ``(n, B)``."""
    n, step = system.size, PROBE * max(1.0, float(np.abs(base).max()))
    plus, minus = base.copy(), base.copy()
    plus[block * n + node] += step
    minus[block * n + node] -= step
    column = (system.rhs(t, plus) - system.rhs(t, minus)) / (2 * step)
    return column.reshape(_blocks(system), n).T


def linear_symbol(system: Semidiscrete, y0: np.ndarray, times: tuple[float, ...]) -> np.ndarray | None:
    r"""The Fourier symbol :math:`\hat L_k` ``(n // 2 + 1, B, B)`` of the Jacobian at the constant
    state of ``y0``'s block means, or ``None`` unless ``system`` is periodic and that Jacobian is
    block-circulant and the same at each of ``times``."""
    if not system.plan.periodic:
        return None
    n, blocks = system.size, _blocks(system)
    base = np.repeat(y0.reshape(blocks, n).mean(axis=1), n)
    with np.errstate(all="ignore"):
        first = np.stack([_jacobian_column(system, times[0], base, i, 0) for i in range(blocks)], axis=2)
        if not np.isfinite(first).all():
            return None
        scale = max(float(np.abs(first).max()), 1e-300)
        shift = n // 3
        for t in times:
            shifted = np.stack([_jacobian_column(system, t, base, i, shift) for i in range(blocks)], axis=2)
            if not np.allclose(shifted, np.roll(first, shift, axis=0), rtol=0, atol=CIRCULANT * scale):
                return None
    # (C y)[p] = sum_q c[p - q] y[q]: the DFT of each block's first column is its symbol
    return np.fft.rfft(first, axis=0)  # [k, j (row block), i (column block)]


def phi_functions(z: np.ndarray) -> tuple[np.ndarray, ...]:
    r""":math:`(e^z, \varphi_1(z), \varphi_2(z), \varphi_3(z))` of a batch of square matrices
    ``z`` ``(K, B, B)``, from the exponential of the augmented ``(K, 4B, 4B)`` matrix."""
    k, b = z.shape[0], z.shape[1]
    augmented = np.zeros((k, 4 * b, 4 * b), dtype=np.complex128)
    augmented[:, :b, :b] = z
    for j in range(3):
        augmented[:, j * b:(j + 1) * b, (j + 1) * b:(j + 2) * b] = np.eye(b)
    top = expm(augmented)[:, :b, :]
    return tuple(top[:, :, j * b:(j + 1) * b] for j in range(4))


def etdrk4(system: Semidiscrete, symbol: np.ndarray, y0: np.ndarray, t0: float, t1: float, steps: int,
           every: int, deadline: float = math.inf) -> np.ndarray:
    """The states at ``t0`` and after every ``every``-th of ``steps`` equal steps to ``t1``
    (``(steps // every + 1, len(y0))``); ``RuntimeError`` past ``deadline`` (``time.perf_counter()``)."""
    n, blocks, h = system.size, _blocks(system), (t1 - t0) / steps
    e, p1, p2, p3 = phi_functions(h * symbol)
    e2, q, _, _ = phi_functions(0.5 * h * symbol)
    q = 0.5 * h * q
    f1, f2, f3 = h * (p1 - 3 * p2 + 4 * p3), h * (p2 - 2 * p3), h * (4 * p3 - p2)

    def apply(matrix: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.einsum("kji,ki->kj", matrix, v)

    def to_state(v: np.ndarray) -> np.ndarray:
        return np.fft.irfft(v, n, axis=0).T.ravel()

    def nonlinear(t: float, v: np.ndarray) -> np.ndarray:
        return np.fft.rfft(system.rhs(t, to_state(v)).reshape(blocks, n).T, axis=0) - apply(symbol, v)

    v = np.fft.rfft(y0.reshape(blocks, n).T, axis=0)
    out = [y0.copy()]
    for step in range(steps):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the exponential integrator on {n} nodes ran past its time budget")
        t = t0 + step * h
        nv = nonlinear(t, v)
        a = apply(e2, v) + apply(q, nv)
        na = nonlinear(t + h / 2, a)
        b = apply(e2, v) + apply(q, na)
        nb = nonlinear(t + h / 2, b)
        c = apply(e2, a) + apply(q, 2 * nb - nv)
        nc = nonlinear(t + h, c)
        v = apply(e, v) + apply(f1, nv) + 2 * apply(f2, na + nb) + apply(f3, nc)
        if (step + 1) % every == 0:
            out.append(to_state(v))
    return np.array(out)


@dataclass
class Run:
    """A solution on ``n`` periodic nodes ``x``: ``u`` ``(len(x), len(times), m)`` at the output
    times, ``dense`` at every ``(steps // intervals)``-th step (``dense_times``), and the time
    error estimated from the runs with half and a quarter as many steps."""

    x: np.ndarray
    u: np.ndarray
    dense_times: np.ndarray
    dense: np.ndarray
    steps: int
    time_error: float


def solve(problem, plan, n: int, width: int, times: np.ndarray, initial, tolerance: float, steps: int,
          deadline: float = math.inf) -> Run:
    r"""ETDRK4 on ``n`` periodic nodes with :math:`S` fixed steps (``times`` equally spaced; :math:`S`
    from ``steps`` up, a multiple of ``4 (len(times) - 1)`` times a power of two), doubled until the
    time error meets ``tolerance``. The time error is estimated from the changes
    :math:`c_1 = |u_{S/2} - u_{S/4}|`, :math:`c_2 = |u_S - u_{S/2}|` (relative L2 at ``times``) as
    :math:`c_2/(\rho - 1)` with :math:`\rho = \min(c_1/c_2, 16)` (order 4 at most), or taken as
    unknown while :math:`\rho \le 5/4` (unless both changes are below :data:`NEGLIGIBLE` times
    ``tolerance``: rounding): with high modes :math:`hL` far beyond 1 (fine grids), the
    scheme's error falls more slowly than :math:`h^4` until the steps resolve them. ``RuntimeError``
    where the Jacobian is not block-circulant, past ``deadline``, beyond :data:`MAX_STEPS`, or
    when the finest run still blows up after :data:`MAX_BLOWUPS` doublings (an unresolved grid,
    which the refinement then refines)."""
    system = Semidiscrete(problem, plan, n, width)
    y0 = initial_state(system, initial)
    t0, t1 = float(times[0]), float(times[-1])
    symbol = linear_symbol(system, y0, (t0, t1))
    if symbol is None:
        raise RuntimeError("the linearization is not block-circulant: no exponential integrator")
    intervals = len(times) - 1
    count = 4 * intervals
    while count < max(steps, MIN_STEPS):
        count *= 2

    def run(count: int) -> np.ndarray:
        dense = min(count, MAX_DENSE * intervals)
        with np.errstate(all="ignore"):
            return etdrk4(system, symbol, y0, t0, t1, count, count // dense, deadline)

    def at_times(states: np.ndarray) -> np.ndarray:
        return states[::(len(states) - 1) // intervals]

    def change(fine: np.ndarray, coarse: np.ndarray) -> float:
        fine, coarse = at_times(fine), at_times(coarse)
        if not (np.isfinite(fine).all() and np.isfinite(coarse).all()):
            return math.inf
        return float(np.linalg.norm(fine - coarse) / max(np.linalg.norm(fine), 1e-300))

    runs = [run(count // 4), run(count // 2), run(count)]
    blown_up = 0
    while True:
        c1, c2 = change(runs[1], runs[0]), change(runs[2], runs[1])
        if max(c1, c2) <= NEGLIGIBLE * tolerance:  # rounding: no rate to be seen, and none needed
            error = c2
        elif math.isfinite(c1) and math.isfinite(c2) and c1 / c2 > 1.25:
            error = c2 / (min(c1 / c2, 16.0) - 1)
        else:
            error = math.inf
        if error <= tolerance:
            break
        blown_up = blown_up + 1 if not np.isfinite(runs[2]).all() else 0
        if blown_up > MAX_BLOWUPS:  # four times the steps did not help: the grid, not the step, is the cause
            raise RuntimeError(f"the exponential integrator on {n} nodes blew up with up to {count} steps")
        if 2 * count > MAX_STEPS:
            raise RuntimeError(f"the exponential integrator on {n} nodes needs more than {MAX_STEPS} steps")
        count *= 2
        runs = runs[1:] + [run(count)]
    states = runs[2]
    dense_times = np.linspace(t0, t1, len(states))
    dense = np.stack([system.full(t, y)[:, :system.m] for t, y in zip(dense_times, states)], axis=1)
    return Run(system.x, dense[:, ::(len(states) - 1) // intervals], dense_times, dense, count, error)


def eligible(problem, plan, width: int, initial, times: np.ndarray, n: int = 32) -> bool:
    """Whether ``problem`` is periodic with a block-circulant linearization (checked on ``n`` nodes)."""
    if not plan.periodic:
        return False
    system = Semidiscrete(problem, plan, n, width)
    return linear_symbol(system, initial_state(system, initial), (float(times[0]), float(times[-1]))) is not None
