r"""Levenberg–Marquardt (damped Gauss–Newton) for least-squares losses :math:`L(\theta) = \|R(\theta)\|^2`.

A PINN loss :math:`\sum_k w_k\,\mathrm{mean}(r_k^2)` is :math:`\|R\|^2` with :math:`R` the
concatenation of :math:`\sqrt{w_k/N_k}\,r_k` (:meth:`pinn_lam.training.loss.PINNLoss.residual_vector`).
With the Jacobian :math:`J = \partial R/\partial\theta` (rows: residuals, columns: parameters),
the gradient is :math:`\nabla L = 2J^\top R` and Gauss–Newton replaces the Hessian by
:math:`2J^\top J`. An iteration solves the damped normal equations

.. math::
    (J^\top J + \lambda I)\,\delta = -J^\top R

for the step :math:`\delta` (Levenberg 1944; Marquardt 1963 scales the damping by
:math:`\operatorname{diag} J^\top J`, here :math:`D = I`, Levenberg's form). :math:`\lambda \to 0`
gives the Gauss–Newton step, a large :math:`\lambda` a short gradient step :math:`-\nabla L/(2\lambda)`.
For a PINN, :math:`J^\top J` is the Gram matrix of the tangent vectors
:math:`\partial R/\partial\theta_j`, and the Gauss–Newton step is Müller & Zeinhofer's energy
natural gradient (ICML 2023) for the quadratic PINN energy; damping keeps it well posed.

**Solving** (:mod:`pinn_lam.optim.least_squares`). Dense (:func:`damped_solver`): the Gram matrix
is formed once per iteration in float64 and each trial :math:`\lambda` is one Cholesky factorisation
(``torch.linalg.cholesky_ex``); with fewer residuals than parameters (:math:`m < n`) the same step
comes from the :math:`m\times m` system, :math:`\delta = -J^\top (JJ^\top + \lambda I)^{-1} R`
(push-through identity). Matrix-free (:func:`conjugate_gradient`): conjugate gradients on
:math:`(J^\top J + \lambda I)` with products :math:`Jv` and :math:`J^\top u` only.

**Acceptance and damping** (Nielsen 1999; Madsen, Nielsen & Tingleff 2004, §3.2). With the
linear model :math:`\|R + J\delta\|^2`, the predicted and actual reductions and the gain ratio are

.. math::
    \mathrm{pred} = -2\,\delta^\top J^\top R - \|J\delta\|^2,\qquad
    \mathrm{actual} = \|R(\theta)\|^2 - \|R(\theta + \delta)\|^2,\qquad
    \rho = \mathrm{actual}/\mathrm{pred}.

The step is accepted when :math:`\rho >` ``accept_ratio`` (and the new loss is finite); then
:math:`\lambda \leftarrow \lambda\,\max(1/3,\ 1 - (2\rho - 1)^3)`, :math:`\nu \leftarrow 2`.
Otherwise the parameters are restored and :math:`\lambda \leftarrow \nu\lambda`,
:math:`\nu \leftarrow 2\nu` (a rejected :math:`\lambda = 0` becomes :math:`10^{-3}\sigma`), and
the same Jacobian is tried again. :math:`\sigma = \max_j (J^\top J)_{jj}` (matrix-free: the
Rayleigh quotient :math:`\|Jg\|^2/\|g\|^2` along :math:`g = J^\top R`) sets the scale: the first
:math:`\lambda` is :math:`10^{-3}\sigma` unless ``damping`` is given (Madsen et al.'s
:math:`\tau = 10^{-3}`).

**One iteration** is one Jacobian and as many trials as it takes to accept a step. It stops, with
``state["stop_reason"]``, when

* ``"converged (gradient below tolerance)"``: :math:`\max|\nabla L| \le` ``tolerance_grad``
  :math:`\cdot L_0` (:math:`L_0` the loss at the first iteration, the scale the trainer gives
  L-BFGS's test);
* ``"damping above its maximum: no decrease possible"``: a rejection pushed :math:`\lambda` above
  ``max_damping`` :math:`\cdot\,\sigma`; the step is then a gradient step too short to change the
  loss beyond round-off.

References:
    K. Levenberg, "A method for the solution of certain non-linear problems in least squares",
    Quart. Appl. Math. 2 (1944) 164-168. D. W. Marquardt, "An algorithm for least-squares
    estimation of nonlinear parameters", J. SIAM 11 (1963) 431-441. H. B. Nielsen, "Damping
    parameter in Marquardt's method", IMM-REP-1999-05, DTU (1999). K. Madsen, H. B. Nielsen,
    O. Tingleff, "Methods for non-linear least squares problems", IMM, DTU (2004).
    J. Müller, M. Zeinhofer, "Achieving high accuracy with PINNs via energy natural gradient
    descent", ICML 2023.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from pinn_lam.optim.least_squares import (JacobianProducts, autograd_jacobian, autograd_products,
                                          conjugate_gradient, damped_solver)

__all__ = ["LevenbergMarquardt", "gain_ratio", "update_damping"]

#: initial damping relative to sigma when ``damping`` is not given (Madsen et al.'s tau)
INITIAL_DAMPING = 1e-3
CONVERGED = "converged (gradient below tolerance)"
NO_DECREASE = "damping above its maximum: no decrease possible"


def update_damping(damping: float, nu: float, ratio: float, accepted: bool) -> tuple[float, float]:
    r"""Nielsen's rule: ``(damping, nu)`` after a trial with gain ratio ``ratio``.

    Accepted: :math:`\lambda\max(1/3, 1-(2\rho-1)^3)` and :math:`\nu = 2`; rejected: :math:`\nu\lambda`
    and :math:`2\nu`.
    """
    if accepted:
        return damping * max(1.0 / 3.0, 1.0 - (2.0 * ratio - 1.0) ** 3), 2.0
    return damping * nu, 2.0 * nu


def gain_ratio(actual: float, predicted: float) -> float:
    """``actual / predicted``; ``-inf`` when the model predicts no decrease or the loss is not finite."""
    if not predicted > 0 or not math.isfinite(actual):
        return -math.inf
    return actual / predicted


class LevenbergMarquardt(torch.optim.Optimizer):
    r"""Levenberg–Marquardt on :math:`\|R(\theta)\|^2` (equations, acceptance rule and sources in
    the module docstring).

    Args:
        params: the parameters :math:`\theta` (one group).
        damping: the first :math:`\lambda` (``None``: :math:`10^{-3}\sigma`).
        accept_ratio: accept a step when the gain ratio exceeds this (:math:`0 \le` it :math:`< 1`).
        max_damping: stop when :math:`\lambda > ` ``max_damping`` :math:`\cdot\sigma` after a rejection.
        tolerance_grad: stop when :math:`\max|\nabla L| \le` ``tolerance_grad`` :math:`\cdot L_0`.
        matrix_free: ``None`` chooses dense for at most ``dense_limit`` parameters, conjugate
            gradients above; ``True``/``False`` force it.
        dense_limit: the largest number of parameters solved densely when ``matrix_free=None``.
        cg_tolerance, cg_max_iter: relative residual and iteration cap of conjugate gradients.
        max_iter: iterations per :meth:`step` call.

    **State** (on the first parameter, as :class:`torch.optim.LBFGS`): ``damping``
    (:math:`\lambda`, ``None`` until the first iteration), ``nu``, ``n_iter`` (accepted
    iterations), ``func_evals`` (closure calls), ``jacobian_evals``, ``rejected`` (trials),
    ``initial_loss`` (:math:`L_0`) and ``stop_reason`` (``None`` while it may go on; a stopped
    optimizer's :meth:`step` does nothing). All are Python numbers, so a ``state_dict`` resumes
    bit for bit.

    Example::

        optimizer = LevenbergMarquardt(model.parameters())
        optimizer.step(lambda: model(x).reshape(-1) - y)   # R with an autograd graph
    """

    def __init__(self, params: Iterable[Tensor], damping: float | None = None, accept_ratio: float = 1e-4,
                 max_damping: float = 1e12, tolerance_grad: float = 1e-9, matrix_free: bool | None = None,
                 dense_limit: int = 5000, cg_tolerance: float = 1e-10, cg_max_iter: int = 500,
                 max_iter: int = 1) -> None:
        if damping is not None and not 0.0 <= damping < math.inf:
            raise ValueError(f"Invalid damping: {damping} (must be finite and >= 0, or None)")
        if not 0.0 <= accept_ratio < 1.0:
            raise ValueError(f"Invalid accept_ratio: {accept_ratio} (must be in [0, 1))")
        for name, value in (("max_damping", max_damping), ("cg_tolerance", cg_tolerance)):
            if not 0.0 < value < math.inf:
                raise ValueError(f"Invalid {name}: {value} (must be positive and finite)")
        if not 0.0 <= tolerance_grad < math.inf:
            raise ValueError(f"Invalid tolerance_grad: {tolerance_grad} (must be finite and >= 0)")
        if matrix_free not in (None, True, False):
            raise ValueError(f"Invalid matrix_free: {matrix_free!r} (must be None, True or False)")
        for name, value in (("dense_limit", dense_limit), ("cg_max_iter", cg_max_iter), ("max_iter", max_iter)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Invalid {name}: {value!r} (must be a positive integer)")
        defaults = dict(damping=damping, accept_ratio=accept_ratio, max_damping=max_damping,
                        tolerance_grad=tolerance_grad, matrix_free=matrix_free, dense_limit=dense_limit,
                        cg_tolerance=cg_tolerance, cg_max_iter=cg_max_iter, max_iter=max_iter)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LevenbergMarquardt doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    @property
    def global_state(self) -> dict[str, Any]:
        """The optimizer's state (damping, counters, stop reason)."""
        return self.state[self._params[0]]

    def objective_changed(self) -> None:
        """New points: nothing to drop, every iteration builds its own Jacobian (the trainer's
        interface for closure optimizers, :meth:`pinn_lam.optim.lbfgs.LBFGS.objective_changed`)."""

    def uses_matrix_free(self) -> bool:
        """Whether iterations solve by conjugate gradients (see ``matrix_free``, ``dense_limit``)."""
        group = self.param_groups[0]
        if group["matrix_free"] is not None:
            return bool(group["matrix_free"])
        return sum(p.numel() for p in self._params) > group["dense_limit"]

    def step(self, closure: Callable[[], Tensor],  # type: ignore[override]
             jacobian: Callable[[bool], Tensor | JacobianProducts] | None = None) -> Tensor:
        r"""At most ``max_iter`` iterations; returns :math:`\|R\|^2` at the start.

        Args:
            closure: ``closure() -> R``, the residual vector (1-D) at the current parameters. It
                is called with autograd enabled; without ``jacobian``, ``R`` must carry its graph
                to the parameters, which the optimizer differentiates (:func:`autograd_jacobian`,
                :func:`autograd_products`).
            jacobian: ``jacobian(matrix_free) -> J`` (a ``(m, n)`` tensor, columns in the order of
                the flattened parameters) or, when ``matrix_free``, :class:`JacobianProducts`, at
                the current parameters (e.g. :mod:`pinn_lam.training.jacobian`'s per-point
                ``torch.func`` Jacobian of a PINN).
        """
        group, state = self.param_groups[0], self.global_state
        for key, value in (("damping", group["damping"]), ("nu", 2.0), ("n_iter", 0), ("func_evals", 0),
                           ("jacobian_evals", 0), ("rejected", 0), ("initial_loss", None), ("stop_reason", None)):
            state.setdefault(key, value)
        params = self._params
        residuals = self._evaluate(closure)
        loss = float(residuals.detach().double().square().sum())
        start_loss = torch.tensor(loss, dtype=torch.float64)
        if state["stop_reason"] is not None:
            return start_loss
        if state["initial_loss"] is None:
            state["initial_loss"] = loss
        matrix_free = self.uses_matrix_free()
        for _ in range(group["max_iter"]):
            linear = self._linearize(residuals, jacobian, matrix_free)
            state["jacobian_evals"] += 1
            r = residuals.detach().double().reshape(-1)
            if matrix_free:
                jvp, vjp = self._float64_products(linear)
                g = vjp(r)
                gg = float(g.dot(g))
                sigma = float(jvp(g).square().sum()) / gg if gg > 0 else 0.0
            else:
                J = linear.double()
                if J.shape != (r.numel(), sum(p.numel() for p in params)):
                    raise ValueError(f"the Jacobian has shape {tuple(J.shape)}, expected ({r.numel()}, "
                                     f"{sum(p.numel() for p in params)}) (residuals, parameters)")
                g = J.T @ r
                sigma = float(J.square().sum(0).max()) if J.numel() else 0.0
                solve = damped_solver(J, r)
            if float(g.abs().max()) * 2.0 <= group["tolerance_grad"] * state["initial_loss"]:
                state["stop_reason"] = CONVERGED
                break
            if state["damping"] is None:
                state["damping"] = INITIAL_DAMPING * sigma
            start = [p.detach().clone() for p in params]
            while True:
                damping = state["damping"]
                if matrix_free:
                    def apply(v: Tensor, damping=damping) -> Tensor:
                        return vjp(jvp(v)).add_(v, alpha=damping)
                    step = conjugate_gradient(apply, -g, group["cg_tolerance"], group["cg_max_iter"])
                    predicted = -(2.0 * float(g.dot(step)) + float(jvp(step).square().sum()))
                else:
                    step = solve(damping)
                    predicted = -math.inf if step is None else \
                        -(2.0 * float(g.dot(step)) + float((J @ step).square().sum()))
                trial_loss, trial = math.nan, None
                if step is not None and predicted > 0:
                    self._add(step)
                    trial = self._evaluate(closure)
                    trial_loss = float(trial.detach().double().square().sum())
                ratio = gain_ratio(loss - trial_loss, predicted)
                accepted = ratio > group["accept_ratio"] and math.isfinite(trial_loss)
                state["damping"], state["nu"] = update_damping(damping, state["nu"], ratio, accepted)
                if accepted:
                    residuals, loss = trial, trial_loss
                    state["n_iter"] += 1
                    break
                state["rejected"] += 1
                with torch.no_grad():
                    torch._foreach_copy_(list(params), start)
                if state["damping"] == 0.0:
                    state["damping"] = INITIAL_DAMPING * sigma
                if not state["damping"] <= group["max_damping"] * sigma:
                    state["stop_reason"] = NO_DECREASE
                    break
                if matrix_free and jacobian is None:
                    # restoring the parameters in place invalidated the graph that the products differentiate
                    residuals = self._evaluate(closure)
                    jvp, vjp = self._float64_products(self._linearize(residuals, None, True))
                    state["jacobian_evals"] += 1
            if state["stop_reason"] is not None:
                break
        return start_loss

    def _evaluate(self, closure: Callable[[], Tensor]) -> Tensor:
        with torch.enable_grad():
            residuals = closure()
        self.global_state["func_evals"] += 1
        if not isinstance(residuals, Tensor):
            raise TypeError(f"the closure must return the residual vector as a tensor, got {type(residuals).__name__}")
        return residuals

    def _linearize(self, residuals: Tensor, jacobian, matrix_free: bool) -> Tensor | JacobianProducts:
        if jacobian is not None:
            return jacobian(matrix_free)
        if not residuals.requires_grad:
            raise ValueError("without a jacobian callable, the closure's residuals must carry an autograd graph "
                             "to the parameters (compute them with grad enabled, not detached)")
        if matrix_free:
            return autograd_products(residuals, self._params)
        return autograd_jacobian(residuals, self._params)

    def _float64_products(self, products: JacobianProducts) -> tuple[Callable, Callable]:
        """``(jvp, vjp)`` on float64 vectors, whatever the parameters' dtype."""
        dtype = self._params[0].dtype
        return (lambda v: products.jvp(v.to(dtype)).double().reshape(-1),
                lambda u: products.vjp(u.to(dtype)).double().reshape(-1))

    @torch.no_grad()
    def _add(self, step: Tensor) -> None:
        offset = 0
        for p in self._params:
            n = p.numel()
            p.add_(step[offset:offset + n].view_as(p).to(p.dtype))
            offset += n


def iterations_done(optimizer: LevenbergMarquardt) -> int:
    """Accepted iterations this optimizer has done."""
    return int(optimizer.global_state.get("n_iter", 0))


def stop_reason(optimizer: LevenbergMarquardt) -> str | None:
    """Why the optimizer stopped (``None``: it may go on)."""
    return optimizer.global_state.get("stop_reason")
