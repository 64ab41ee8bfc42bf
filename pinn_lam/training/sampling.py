"""Seeded point sampling: uniform, Latin hypercube and Sobol in the unit cube, and in boxes.

A *unit sampler* ``unit(n, k)`` returns an ``(n, k)`` float64 array in :math:`[0, 1]^k`; it is
what a domain (:mod:`pinn_lam.pde.domains`) draws its randomness from, so one seeded
:class:`numpy.random.Generator` drives every point of a run. Quasi-random methods
(``"lhs"``, ``"sobol"``) build a fresh scrambled engine per call, seeded from that generator,
so each call is a new, independent, well-spread set (this is what resampling wants).

:class:`PointSampler` draws the collocation points (in the problem's domain) and the points of every
condition, and exposes its generator state so that a resumed run draws the same points.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

from pinn_lam.pde.domains import Unit as UnitSampler
from pinn_lam.pde.problem import Problem

#: sampler name -> description (for --help and ``pinn-lam list``)
METHODS: dict[str, str] = {
    "uniform": "independent uniform points",
    "lhs": "Latin hypercube (scipy.stats.qmc.LatinHypercube, scrambled)",
    "sobol": "scrambled Sobol sequence (scipy.stats.qmc.Sobol)",
}


def _check_method(method: str) -> str:
    key = str(method).lower()
    if key not in METHODS:
        raise ValueError(f"unknown sampler {method!r}; choose one of {', '.join(METHODS)}")
    return key


def _engine(cls, k: int, rng: np.random.Generator):
    # SciPy may draw from a generator through ``spawn``, which its ``bit_generator.state`` does
    # not record; a fresh generator seeded from ours keeps every draw a function of that state
    rng = np.random.default_rng(int(rng.integers(2**63)))
    try:
        return cls(d=k, scramble=True, rng=rng)
    except TypeError:  # SciPy < 1.15 names the argument `seed`
        return cls(d=k, scramble=True, seed=rng)


def unit_points(method: str, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` points in :math:`[0, 1]^k` by ``method``, drawing randomness only from ``rng``."""
    from scipy.stats import qmc

    method = _check_method(method)
    if not isinstance(n, (int, np.integer)) or n < 0 or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"need n >= 0 points in k >= 1 dimensions, got n={n!r}, k={k!r}")
    if n == 0:
        return np.zeros((0, k))
    if method == "uniform":
        return rng.random((n, k))
    if method == "lhs":
        return _engine(qmc.LatinHypercube, k, rng).random(n)
    with warnings.catch_warnings():
        # the first n points of a scrambled Sobol sequence are still low-discrepancy;
        # the warning only concerns exact balance when n is not a power of two
        warnings.simplefilter("ignore", UserWarning)
        return _engine(qmc.Sobol, k, rng).random(n)


def unit_sampler(method: str, seed: int | np.random.Generator) -> UnitSampler:
    """A seeded ``unit(n, k)`` sampler (the type :mod:`pinn_lam.pde.domains` draws from).

    ``seed`` is an int or a :class:`numpy.random.Generator`, which the sampler then advances.
    """
    method = _check_method(method)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return lambda n, k: unit_points(method, n, k, rng)


def box_points(bounds: Sequence[Sequence[float]], n: int, unit: UnitSampler) -> np.ndarray:
    r"""``n`` points in the box :math:`\prod_i [lo_i, hi_i]`, mapped affinely from ``unit``."""
    low = np.array([float(b[0]) for b in bounds])
    high = np.array([float(b[1]) for b in bounds])
    return low + (high - low) * unit(n, len(bounds))


class PointSampler:
    """Draws the points of every loss term of a problem from one seeded generator.

    Args:
        problem: the problem whose domain and conditions are sampled.
        terms: point sets to draw, ``"pde"`` (collocation points in the domain) and condition names.
        n_collocation: number of collocation points.
        n_boundary: number of points per condition (a condition with fixed points, such as
            data, keeps its own).
        method: ``"uniform"``, ``"lhs"`` or ``"sobol"``.
        seed: int seed of the :class:`numpy.random.Generator`.
    """

    def __init__(self, problem: Problem, terms: Sequence[str], *, n_collocation: int, n_boundary: int,
                 method: str = "sobol", seed: int = 0) -> None:
        for label, value in (("number of collocation points", n_collocation),
                             ("number of boundary points", n_boundary)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        conditions = problem.condition_map()
        unknown = [t for t in terms if t != "pde" and t not in conditions]
        if unknown:
            raise ValueError(f"unknown loss term(s) {unknown}; the problem has {', '.join(conditions)}")
        self.problem = problem
        self.terms = tuple(terms)
        self.n_collocation = int(n_collocation)
        self.n_boundary = int(n_boundary)
        self.method = _check_method(method)
        self.rng = np.random.default_rng(seed)
        self._conditions = conditions

    def sample(self) -> dict[str, np.ndarray]:
        """Fresh points for every term, as float64 ``(N, d)`` arrays."""
        unit = unit_sampler(self.method, self.rng)
        points = {}
        for term in self.terms:
            if term == "pde":
                points[term] = self.problem.domain.sample(self.n_collocation, unit)
            else:
                points[term] = self._conditions[term].sample(self.problem.domain, self.n_boundary, unit)
        return points

    def adaptive(self, residual, pool: int) -> np.ndarray:
        """``n_collocation`` points by RAD (:func:`residual_adaptive_points`) from ``pool``
        fresh candidates in the domain; ``residual(points (N, d) array) -> (N,)`` evaluates the PDE."""
        unit = unit_sampler(self.method, self.rng)
        candidates = self.problem.domain.sample(max(pool, self.n_collocation), unit)
        return residual_adaptive_points(candidates, residual(candidates), self.n_collocation, self.rng)

    def state_dict(self) -> dict[str, Any]:
        return {"method": self.method, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.method = _check_method(state["method"])
        self.rng.bit_generator.state = state["rng"]


def residual_adaptive_points(candidates: np.ndarray, residual: np.ndarray, n: int, rng: np.random.Generator,
                             k: float = 1.0, c: float = 1.0) -> np.ndarray:
    r"""``n`` of the ``candidates`` drawn without replacement with probability

    .. math:: p(x) \propto \frac{|r(x)|^k}{\operatorname{mean}|r|^k} + c,

    the residual-based adaptive distribution (RAD) of Wu et al., *A comprehensive study of
    non-adaptive and residual-based adaptive sampling for physics-informed neural networks*,
    CMAME 403 (2023): points gather where the PDE residual is large (a shock), while ``c`` keeps
    some everywhere. ``residual`` holds the residual at each candidate.
    """
    r = np.abs(np.asarray(residual, dtype=np.float64).reshape(-1)) ** k
    if len(r) != len(candidates) or n > len(candidates):
        raise ValueError(f"need at least n={n} candidates with one residual each, got "
                         f"{len(candidates)} candidates and {len(r)} residuals")
    mean = r.mean()
    weights = (r / mean if mean > 0 and np.isfinite(mean) else np.zeros_like(r)) + c
    index = rng.choice(len(candidates), size=n, replace=False, p=weights / weights.sum())
    return candidates[np.sort(index)]
