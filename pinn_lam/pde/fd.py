r"""Finite-difference building blocks on SciPy, used by the problems' reference solvers.

* :func:`laplacian_1d`, :func:`laplacian_2d`: the 3-point and 5-point Laplacians on the interior
  nodes of a uniform grid with homogeneous Dirichlet ends, as sparse matrices (``diags``/``kron``);
* :func:`fornberg_weights`, :func:`difference_matrix`: finite-difference weights of any order on
  arbitrary (e.g. stretched) nodes, assembled into a banded sparse matrix;
* :func:`crank_nicolson`: the A-stable, second-order :math:`\theta = 1/2` scheme for
  :math:`u' = A u + g(t)`, one sparse LU factorisation for all steps;
* :func:`method_of_lines`: ``solve_ivp`` with a stiff method and a sparse Jacobian (or its sparsity).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy.integrate import solve_ivp


def laplacian_1d(n: int, h: float) -> sp.csr_matrix:
    r"""The 3-point Laplacian :math:`(u_{i-1} - 2u_i + u_{i+1})/h^2` on ``n`` interior nodes
    with :math:`u = 0` at both ends: an ``(n, n)`` tridiagonal matrix (second-order accurate)."""
    if n < 1 or h <= 0:
        raise ValueError(f"need n >= 1 interior nodes and spacing h > 0, got n={n}, h={h}")
    ones = np.ones(n)
    return sp.diags([ones[:-1], -2.0 * ones, ones[:-1]], [-1, 0, 1], format="csr") / h**2


def laplacian_2d(nx: int, ny: int, hx: float, hy: float) -> sp.csr_matrix:
    r"""The 5-point Laplacian on the ``nx`` × ``ny`` interior nodes of a rectangle with
    :math:`u = 0` on its boundary, :math:`L = I_y \otimes L_x + L_y \otimes I_x`.

    Unknowns are ordered with ``x`` varying fastest, i.e. ``U.ravel()`` of a ``(ny, nx)`` array.
    """
    lx, ly = laplacian_1d(nx, hx), laplacian_1d(ny, hy)
    return (sp.kron(sp.identity(ny, format="csr"), lx) + sp.kron(ly, sp.identity(nx, format="csr"))).tocsr()


def fornberg_weights(z: float, x: np.ndarray, m: int) -> np.ndarray:
    r"""Weights :math:`c_{j,k}` with :math:`u^{(k)}(z) \approx \sum_j c_{j,k}\,u(x_j)` for
    :math:`k = 0..m` (Fornberg 1988, *Math. Comp.* 51:699); shape ``(len(x), m + 1)``.

    Exact for polynomials of degree ``len(x) - 1``, so ``n`` nodes give order ``n - k`` for the
    ``k``-th derivative (one more for centred stencils on uniform nodes).
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    c = np.zeros((n, m + 1))
    c1, c4 = 1.0, x[0] - z
    c[0, 0] = 1.0
    for i in range(1, n):
        mn = min(i, m)
        c2, c5, c4 = 1.0, c4, x[i] - z
        for j in range(i):
            c3 = x[i] - x[j]
            c2 *= c3
            if j == i - 1:
                for k in range(mn, 0, -1):
                    c[i, k] = c1 * (k * c[i - 1, k - 1] - c5 * c[i - 1, k]) / c2
                c[i, 0] = -c1 * c5 * c[i - 1, 0] / c2
            for k in range(mn, 0, -1):
                c[j, k] = (c4 * c[j, k] - k * c[j, k - 1]) / c3
            c[j, 0] = c4 * c[j, 0] / c3
        c1 = c2
    return c


def difference_matrix(x: np.ndarray, derivative: int, width: int, centred: bool = False) -> sp.csr_matrix:
    r"""The sparse ``(n, n)`` matrix of the ``derivative``-th derivative on the nodes ``x``.

    Each row uses ``width`` consecutive nodes (odd ``width``: centred in the interior, shifted
    inwards near the ends, so the matrix is banded with half-bandwidth ``width - 1`` at most).

    ``centred=True`` keeps the interior rows centred near the ends instead, narrowing the stencil
    to the ``2i + 1`` nodes that fit (never below ``derivative + 1`` points, where the shifted
    stencil is used; the two end rows are always shifted). For a second derivative with fixed
    ends this keeps the eigenvalues real and negative, which a time-reversible equation such as
    the wave equation needs: the shifted high-order end rows give eigenvalues with large
    imaginary parts, whose square roots grow without bound.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if width < derivative + 1 or width % 2 == 0 or width > n:
        raise ValueError(f"stencil width must be odd, > derivative ({derivative}) and <= {n} nodes, got {width}")
    half = width // 2
    rows, cols, vals = [], [], []
    for i in range(n):
        reach = min(half, i, n - 1 - i)
        if centred and 2 * reach + 1 >= derivative + 1 and 0 < i < n - 1:
            stencil = np.arange(i - reach, i + reach + 1)
        else:
            start = min(max(i - half, 0), n - width)
            stencil = np.arange(start, start + width)
        rows.append(np.full(len(stencil), i))
        cols.append(stencil)
        vals.append(fornberg_weights(x[i], x[stencil], derivative)[:, derivative])
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def crank_nicolson(a: sp.spmatrix, u0: np.ndarray, dt: float, steps: int,
                   source: Callable[[float], np.ndarray] | None = None,
                   save_every: int = 1) -> np.ndarray:
    r"""Integrate :math:`u' = A u + g(t)` from :math:`t = 0` with ``steps`` Crank–Nicolson steps:
    :math:`(I - \tfrac{\Delta t}{2}A)\,u^{n+1} = (I + \tfrac{\Delta t}{2}A)\,u^n + \tfrac{\Delta t}{2}(g^n + g^{n+1})`.

    Second order in :math:`\Delta t` and unconditionally stable. Returns the states at steps
    ``0, save_every, 2*save_every, ...`` as rows of an array of shape ``(steps // save_every + 1, n)``.
    """
    if steps < 1 or dt <= 0 or save_every < 1 or steps % save_every:
        raise ValueError(f"need steps >= 1, dt > 0 and save_every dividing steps, "
                         f"got steps={steps}, dt={dt}, save_every={save_every}")
    identity = sp.identity(a.shape[0], format="csc")
    solve = spla.factorized((identity - 0.5 * dt * a).tocsc())
    explicit = (identity + 0.5 * dt * a).tocsr()
    u = np.array(u0, dtype=np.float64)
    saved = [u.copy()]
    g_old = None if source is None else source(0.0)
    for step in range(1, steps + 1):
        rhs = explicit @ u
        if source is not None:
            g_new = source(step * dt)
            rhs += 0.5 * dt * (g_old + g_new)
            g_old = g_new
        u = solve(rhs)
        if step % save_every == 0:
            saved.append(u.copy())
    return np.array(saved)


def method_of_lines(rhs: Callable[[float, np.ndarray], np.ndarray], u0: np.ndarray,
                    t_eval: np.ndarray, *, jac: Callable | sp.spmatrix | None = None,
                    jac_sparsity: sp.spmatrix | None = None, method: str = "BDF",
                    rtol: float = 1e-8, atol: float = 1e-10, **options) -> np.ndarray:
    r"""Integrate the semi-discrete system :math:`u' = f(t, u)` with ``solve_ivp``'s stiff ``method``.

    Give ``jac`` (a callable returning a sparse matrix) when the Jacobian is known, else its
    ``jac_sparsity`` so that SciPy estimates it with few grouped differences. Returns the
    solution at ``t_eval`` as an array of shape ``(len(t_eval), n)``; raises ``RuntimeError``
    if the integrator fails.
    """
    t_eval = np.asarray(t_eval, dtype=np.float64)
    extra = {} if jac is None else {"jac": jac}
    if jac is None and jac_sparsity is not None:
        extra["jac_sparsity"] = jac_sparsity
    result = solve_ivp(rhs, (float(t_eval[0]), float(t_eval[-1])), np.asarray(u0, dtype=np.float64),
                       method=method, t_eval=t_eval, rtol=rtol, atol=atol, **extra, **options)
    if not result.success:
        raise RuntimeError(f"solve_ivp ({method}) failed: {result.message}")
    return result.y.T


def grid_spline(grid: tuple[np.ndarray, np.ndarray], u: np.ndarray,
                degree: int = 3) -> Callable[[np.ndarray], np.ndarray]:
    r"""An interpolating tensor-product spline of ``u`` on a 2-D ``grid``, called on ``(N, 2)``
    points: error :math:`O(h^{\mathrm{degree}+1})`, so it adds nothing visible to a second-order
    solution (unlike ``RegularGridInterpolator``'s cubic, whose end conditions lose accuracy
    near the edges)."""
    from scipy.interpolate import RectBivariateSpline

    spline = RectBivariateSpline(grid[0], grid[1], u, kx=degree, ky=degree, s=0)
    return lambda points: spline.ev(points[:, 0], points[:, 1])
