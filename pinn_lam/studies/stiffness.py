r"""Stiffness diagnostics of a PINN loss: per-term gradient norms and the Hessian's top eigenvalue.

A PINN loss :math:`L(\theta) = \sum_k w_k L_k(\theta)` is *stiff* when its terms pull with very
different strengths (Wang, Teng & Perdikaris 2021: :math:`\|\nabla_\theta L_{\mathrm{pde}}\|` dwarfs
:math:`\|\nabla_\theta L_{\mathrm{bc}}\|`) and when its curvature is large: plain gradient descent
is only stable for a step :math:`\eta < 2/\lambda_{\max}(\nabla^2_\theta L)`. This module measures
both:

* :func:`gradient_norms` -- :math:`\|\partial L_k/\partial\theta\|_2` for every named term, over all
  parameters together;
* :func:`hessian_top_eigenvalue` -- the dominant eigenvalue of :math:`\nabla^2_\theta L` by power
  iteration on Hessian-vector products :math:`Hv = \nabla_\theta(\nabla_\theta L\cdot v)` (double
  backward), never forming :math:`H`;
* :class:`StiffnessMonitor` -- a ``solve(callback=...)`` callback that records both during training.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor


def _trainable(params: Iterable[Tensor]) -> list[Tensor]:
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no parameter requires grad; pass the model's trainable parameters")
    return params


def gradient_norms(terms: Mapping[str, Tensor], params: Iterable[Tensor]) -> dict[str, float]:
    r"""The 2-norm :math:`\|\partial L_k/\partial\theta\|_2` of each loss term's gradient.

    Args:
        terms: term name -> scalar loss tensor (sharing one graph is fine: it is retained).
        params: the parameters :math:`\theta`; the norm is taken over all of them concatenated.

    A term that does not depend on the parameters has norm 0. The parameters' ``.grad`` are
    left untouched.
    """
    params = _trainable(params)
    names = list(terms)
    norms: dict[str, float] = {}
    for i, name in enumerate(names):
        term = terms[name]
        if term.dim() != 0:
            raise ValueError(f"loss term {name!r} must be a scalar, got shape {tuple(term.shape)}")
        if not term.requires_grad:
            norms[name] = 0.0
            continue
        grads = torch.autograd.grad(term, params, retain_graph=i < len(names) - 1, allow_unused=True)
        squares = [g.detach().pow(2).sum() for g in grads if g is not None]
        norms[name] = math.sqrt(float(sum(squares))) if squares else 0.0
    return norms


@dataclass(frozen=True)
class Eigenvalue:
    """Result of :func:`hessian_top_eigenvalue`: the estimate, Hessian-vector products used, and
    whether every power iteration met its tolerance. ``dominant`` is the eigenvalue of largest
    magnitude found on the way (equal to ``value`` unless that one is negative)."""

    value: float
    iterations: int
    converged: bool
    dominant: float = math.nan


def _power_iteration(hvp: Callable[[list[Tensor]], list[Tensor]], v: list[Tensor], shift: float,
                     iterations: int, tol: float) -> tuple[float, int, bool]:
    r"""Dominant eigenvalue of :math:`H - \mathrm{shift}\,I` from the unit start vector ``v``."""
    estimate = math.nan
    for step in range(1, iterations + 1):
        w = [h - shift * x for h, x in zip(hvp(v), v)] if shift else hvp(v)
        rayleigh = float(sum((a * b).sum() for a, b in zip(w, v)))
        norm = float(torch.sqrt(sum(a.pow(2).sum() for a in w)))
        if norm == 0.0:
            return 0.0, step, True
        previous, estimate = estimate, rayleigh
        if abs(estimate - previous) <= tol * abs(estimate):
            return estimate, step, True
        v = [a / norm for a in w]
    return estimate, iterations, False


def hessian_top_eigenvalue(loss_fn: Callable[[], Tensor], params: Iterable[Tensor], *,
                           iterations: int = 20, tol: float = 1e-3, seed: int = 0,
                           which: str = "largest") -> Eigenvalue:
    r"""The largest eigenvalue of the loss Hessian :math:`H = \nabla^2_\theta L` by power iteration.

    Starting from a seeded Gaussian unit vector :math:`v_0`, repeat

    .. math:: w = H v_k, \quad \lambda_k = v_k^\top w, \quad v_{k+1} = w / \|w\|

    where :math:`Hv = \nabla_\theta\big((\nabla_\theta L)^\top v\big)` is one double-backward pass
    through the graph of :math:`\nabla_\theta L` (built once, reused). The Rayleigh quotient
    :math:`\lambda_k` converges to the eigenvalue :math:`\lambda_d` of largest *magnitude* at the
    rate :math:`(\lambda_2/\lambda_d)^{2k}`. Away from a minimum that one can be negative (the loss
    curves down more steeply than up); then, with ``which="largest"``, a second power iteration on
    :math:`H - \lambda_d I` (whose eigenvalues :math:`\lambda_i - \lambda_d \ge 0` are led by
    :math:`\lambda_{\max} - \lambda_d`) gives the largest algebraic eigenvalue
    :math:`\lambda_{\max}`, the curvature that bounds the stable step of gradient descent,
    :math:`\eta < 2/\lambda_{\max}`.

    Args:
        loss_fn: returns the scalar loss; called once.
        params: the parameters :math:`\theta` (all of them form one vector).
        iterations: at most this many Hessian-vector products per power iteration.
        tol: stop when :math:`|\lambda_k - \lambda_{k-1}| \le \mathrm{tol}\,|\lambda_k|`.
        seed: seeds the start vector (a CPU generator, so the estimate does not depend on device).
        which: ``"largest"`` (algebraic) or ``"magnitude"`` (the dominant eigenvalue, one pass).
    """
    if iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    if tol < 0:
        raise ValueError(f"tol must be non-negative, got {tol!r}")
    if which not in ("largest", "magnitude"):
        raise ValueError(f"which must be 'largest' or 'magnitude', got {which!r}")
    params = _trainable(params)
    loss = loss_fn()
    if loss.dim() != 0:
        raise ValueError(f"the loss must be a scalar, got shape {tuple(loss.shape)}")
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    # a gradient that is None or constant has a zero Hessian block: it adds nothing to H v
    live = [i for i, g in enumerate(grads) if g is not None and g.requires_grad]
    if not live:
        return Eigenvalue(0.0, 0, True, 0.0)

    def hvp(v: list[Tensor]) -> list[Tensor]:
        hv = torch.autograd.grad([grads[i] for i in live], params, grad_outputs=[v[i] for i in live],
                                 retain_graph=True, allow_unused=True)
        if all(h is None for h in hv):
            # e.g. a custom autograd.Function marked once_differentiable (the derivative fast path)
            raise ValueError("the loss is not twice differentiable with respect to the parameters; "
                             "compute it without once-differentiable functions (PINNLoss(fast=False))")
        return [torch.zeros_like(p) if h is None else h.detach() for h, p in zip(hv, params)]

    generator = torch.Generator().manual_seed(int(seed))
    v = [torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p) for p in params]
    norm = torch.sqrt(sum(x.pow(2).sum() for x in v))
    v = [x / norm for x in v]
    dominant, steps, converged = _power_iteration(hvp, v, 0.0, iterations, tol)
    if which == "magnitude" or dominant >= 0:
        return Eigenvalue(dominant, steps, converged, dominant)
    gap, more, converged_gap = _power_iteration(hvp, v, dominant, iterations, tol)
    return Eigenvalue(dominant + gap, steps + more, converged and converged_gap, dominant)


def twice_differentiable(loss: Any) -> Any:
    """``loss`` itself, or for a :class:`pinn_lam.training.loss.PINNLoss` on the derivative fast path
    (whose hand-written backward is once-differentiable) the same loss through nested autograd."""
    if not getattr(loss, "fast", False):
        return loss
    from pinn_lam.training.loss import PINNLoss

    return PINNLoss(loss.problem, loss.model, loss.points, weights=loss.weights, fast=False)


class StiffnessMonitor:
    """A ``solve(callback=...)`` callback recording stiffness diagnostics during training.

    Every ``every`` iterations it appends a row ``{"iteration", "time", "grad_norm_<term>"...}`` to
    :attr:`rows`. At the first call at or after each iteration in ``hessian_at`` and each training
    time in ``hessian_times`` (L-BFGS reports chunks of iterations) the row also gets
    ``hessian_top`` (:func:`hessian_top_eigenvalue` with ``power_iterations`` steps, seeded by
    ``seed``). :meth:`finish` adds a last row for the trained model (with ``hessian_top`` if any
    checkpoint was asked for). ``time`` is the training time
    reported by ``solve`` *minus* the time spent here, so wall-time comparisons are not skewed by
    the diagnostics (:attr:`seconds` holds that overhead, :attr:`overhead` its running total by
    iteration). The callback never asks training to stop.

    The state passed by ``solve`` must have ``.iteration``, ``.elapsed``, ``.model`` and ``.loss``
    (a :class:`pinn_lam.training.loss.PINNLoss`, whose ``loss()`` returns ``(total, terms)``).
    """

    def __init__(self, *, every: int = 0, hessian_at: Sequence[int] = (), hessian_times: Sequence[float] = (),
                 power_iterations: int = 20, tol: float = 1e-3, seed: int = 0,
                 elapsed_includes_callback: bool = True) -> None:
        if every < 0:
            raise ValueError(f"every must be >= 0 (0 records no gradient norms), got {every!r}")
        self.every = int(every)
        self.hessian_at = sorted(int(i) for i in hessian_at)
        self.hessian_times = sorted(float(t) for t in hessian_times)
        self.final_hessian = bool(self.hessian_at or self.hessian_times)
        self.power_iterations = power_iterations
        self.tol = tol
        self.seed = seed
        self.elapsed_includes_callback = elapsed_includes_callback
        self.rows: list[dict[str, Any]] = []
        self.seconds = 0.0
        #: ``(iteration, cumulative diagnostic seconds)`` after each record
        self.overhead: list[tuple[int, float]] = []
        self._last_recorded: int | None = None
        self._last: tuple[int, float, Any, Any] | None = None

    def training_time(self, elapsed: float) -> float:
        """Training seconds without the diagnostics, from the ``elapsed`` that ``solve`` reports."""
        return elapsed - self.seconds if self.elapsed_includes_callback else elapsed

    def record(self, iteration: int, time_s: float, model: torch.nn.Module, loss: Any, *, hessian: bool) -> None:
        """Append one row for the model in its current state."""
        start = time.perf_counter()
        params = [p for p in model.parameters() if p.requires_grad]
        row: dict[str, Any] = {"iteration": int(iteration), "time": float(time_s)}
        _, terms = loss.loss()
        row.update({f"grad_norm_{k}": v for k, v in gradient_norms(terms, params).items()})
        if hessian:
            curvature = twice_differentiable(loss)
            eig = hessian_top_eigenvalue(lambda: curvature.loss()[0], params, iterations=self.power_iterations,
                                         tol=self.tol, seed=self.seed)
            row["hessian_top"] = eig.value
            row["hessian_power_steps"] = eig.iterations
            row["hessian_converged"] = eig.converged
        self.rows.append(row)
        self._last_recorded = int(iteration)
        self.seconds += time.perf_counter() - start
        self.overhead.append((int(iteration), self.seconds))

    def __call__(self, state: Any) -> bool:
        iteration, elapsed = int(state.iteration), float(state.elapsed)
        time_s = self.training_time(elapsed)
        self._last = (iteration, time_s, state.model, state.loss)
        hessian = False
        # at the first call at or after each checkpoint (L-BFGS reports chunks of iterations)
        while self.hessian_at and iteration >= self.hessian_at[0]:
            self.hessian_at.pop(0)
            hessian = True
        while self.hessian_times and time_s >= self.hessian_times[0]:
            self.hessian_times.pop(0)
            hessian = True
        due = self.every > 0 and (self._last_recorded is None or iteration - self._last_recorded >= self.every)
        if hessian or due:
            self.record(iteration, time_s, state.model, state.loss, hessian=hessian)
        return False

    def finish(self) -> None:
        """Record the model after the last iteration unless already recorded, with the Hessian
        if any Hessian checkpoint was asked for."""
        if self._last is None:
            return
        iteration, time_s, model, loss = self._last
        last = self.rows[-1] if self.rows and self.rows[-1]["iteration"] == iteration else None
        if last is not None and ("hessian_top" in last or not self.final_hessian):
            return
        if last is not None:
            self.rows.pop()
        self.record(iteration, time_s, model, loss, hessian=self.final_hessian)
