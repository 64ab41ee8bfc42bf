r"""Fourier building blocks on ``scipy.fft`` for the periodic problems' reference solvers.

* :func:`wavenumbers`: the angular wave numbers of ``n`` equispaced nodes on a period;
* :func:`differentiation_matrix`: the dense Fourier collocation matrix of a derivative on them;
* :func:`etdrk4`: exponential time differencing with fourth-order Runge–Kutta (Cox & Matthews
  2002) for :math:`\hat u' = L\hat u + \hat N(\hat u)` with diagonal :math:`L`, its coefficients
  by the contour integrals of Kassam & Trefethen (2005, *SIAM J. Sci. Comput.* 26:1214), which
  avoid the cancellation of :math:`(e^z - 1)/z` near :math:`z = 0`;
* :func:`split_step`: Strang splitting of :math:`h' = A h + B(h)` (linear :math:`A` diagonal in
  Fourier space, :math:`B` solvable exactly in physical space), composed into fourth order by
  the triple jump (Yoshida 1990).
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import scipy.fft as sfft


def wavenumbers(n: int, length: float) -> np.ndarray:
    r"""The angular wave numbers :math:`2\pi m/L` of ``n`` nodes on a period ``length``, in
    ``scipy.fft.fft`` order: ``(n,)``."""
    return 2 * math.pi * sfft.fftfreq(n, d=length / n)


def differentiation_matrix(n: int, length: float, order: int) -> np.ndarray:
    r"""The dense ``(n, n)`` matrix of the ``order``-th derivative by Fourier collocation on ``n``
    equispaced nodes of a period ``length``: :math:`D^{(k)} = F^{-1}\operatorname{diag}((i\kappa)^k) F`.

    Exact (to round-off) on trigonometric polynomials of degree below ``n/2``. For odd ``order``
    and even ``n`` the Nyquist mode's derivative is set to zero, which keeps :math:`D` real.
    """
    if n < 2 or length <= 0 or order < 1:
        raise ValueError(f"need n >= 2 nodes, length > 0 and order >= 1, got n={n}, length={length}, order={order}")
    symbol = (1j * wavenumbers(n, length)) ** order
    if order % 2 and n % 2 == 0:
        symbol[n // 2] = 0.0
    return np.ascontiguousarray(sfft.ifft(symbol[:, None] * sfft.fft(np.eye(n), axis=0), axis=0).real)


def etdrk4(u0: np.ndarray, linear: np.ndarray, nonlinear: Callable[[np.ndarray], np.ndarray], dt: float,
           steps: int, save_every: int = 1, contour_points: int = 64) -> np.ndarray:
    r"""Integrate :math:`\hat u' = L\hat u + \hat N(\hat u)` from the physical ``u0`` with ``steps``
    ETDRK4 steps of size ``dt``.

    ``linear`` holds :math:`L` per Fourier mode (``fft`` order); ``nonlinear(u_hat)`` returns
    :math:`\hat N`. Fourth order in ``dt``. Returns the physical states at steps ``0, save_every,
    ...``: ``(steps // save_every + 1, n)``.
    """
    if steps < 1 or dt <= 0 or save_every < 1 or steps % save_every:
        raise ValueError(f"need steps >= 1, dt > 0 and save_every dividing steps, "
                         f"got steps={steps}, dt={dt}, save_every={save_every}")
    hl = dt * np.asarray(linear, dtype=np.complex128)
    e, e2 = np.exp(hl), np.exp(hl / 2)
    # the whole unit circle around each h L (a half circle and the real part suffice only for real L)
    roots = np.exp(2j * math.pi * (np.arange(1, contour_points + 1) - 0.5) / contour_points)
    z = hl[:, None] + roots[None, :]
    ez = np.exp(z)
    q = dt * np.mean((np.exp(z / 2) - 1) / z, axis=1)
    f1 = dt * np.mean((-4 - z + ez * (4 - 3 * z + z ** 2)) / z ** 3, axis=1)
    f2 = dt * np.mean((2 + z + ez * (z - 2)) / z ** 3, axis=1)
    f3 = dt * np.mean((-4 - 3 * z - z ** 2 + ez * (4 - z)) / z ** 3, axis=1)
    if np.isrealobj(linear):
        q, f1, f2, f3 = q.real, f1.real, f2.real, f3.real
    v = sfft.fft(np.asarray(u0))
    real = np.isrealobj(u0)
    saved = [np.asarray(u0).copy()]
    for step in range(1, steps + 1):
        nv = nonlinear(v)
        a = e2 * v + q * nv
        na = nonlinear(a)
        b = e2 * v + q * na
        nb = nonlinear(b)
        c = e2 * a + q * (2 * nb - nv)
        nc = nonlinear(c)
        v = e * v + f1 * nv + 2 * f2 * (na + nb) + f3 * nc
        if step % save_every == 0:
            u = sfft.ifft(v)
            saved.append(u.real if real else u)
    return np.array(saved)


#: the triple-jump weights that compose a symmetric second-order step into fourth order
TRIPLE_JUMP = (1 / (2 - 2 ** (1 / 3)), -2 ** (1 / 3) / (2 - 2 ** (1 / 3)), 1 / (2 - 2 ** (1 / 3)))


def split_step(h0: np.ndarray, linear: np.ndarray, nonlinear_flow: Callable[[np.ndarray, float], np.ndarray],
               dt: float, steps: int, save_every: int = 1) -> np.ndarray:
    r"""Integrate :math:`h' = A h + B(h)` with ``steps`` fourth-order split steps of size ``dt``.

    ``linear`` holds :math:`A` per Fourier mode (the linear flow is :math:`e^{\tau A}` on
    :math:`\hat h`); ``nonlinear_flow(h, tau)`` is the exact flow of :math:`h' = B(h)` over
    :math:`\tau` in physical space. Each step is the triple jump of Strang steps
    :math:`e^{\tau A/2}\,\Phi^B_\tau\,e^{\tau A/2}`. Returns the states at steps ``0, save_every,
    ...``: ``(steps // save_every + 1, n)``.
    """
    if steps < 1 or dt <= 0 or save_every < 1 or steps % save_every:
        raise ValueError(f"need steps >= 1, dt > 0 and save_every dividing steps, "
                         f"got steps={steps}, dt={dt}, save_every={save_every}")
    half_flows = [np.exp(0.5 * w * dt * np.asarray(linear)) for w in TRIPLE_JUMP]
    h = np.asarray(h0, dtype=np.complex128).copy()
    saved = [h.copy()]
    for step in range(1, steps + 1):
        for w, half in zip(TRIPLE_JUMP, half_flows):
            h = sfft.ifft(half * sfft.fft(h))
            h = nonlinear_flow(h, w * dt)
            h = sfft.ifft(half * sfft.fft(h))
        if step % save_every == 0:
            saved.append(h.copy())
    return np.array(saved)
