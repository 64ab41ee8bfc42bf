r"""Self-scaled quasi-Newton methods (SSBFGS, SSBroyden) with a dense inverse Hessian.

The self-scaled Broyden family updates the inverse-Hessian approximation :math:`H_k` from the
step :math:`s = \theta_{k+1} - \theta_k` and the gradient change :math:`y = g_{k+1} - g_k`, scaling
the old :math:`H_k` by :math:`1/\tau_k` before the update (Oren & Luenberger 1974). With
:math:`h = y^\top H y / y^\top s`, :math:`b = s^\top B s / y^\top s` where :math:`B = H^{-1}`
(after a step :math:`s = -t H g_k`, :math:`s^\top B s = -t\, s^\top g_k`), :math:`a = bh - 1 \ge 0` and
:math:`v = s/y^\top s - Hy/y^\top H y`,

.. math::
    H_{k+1} = \frac{1}{\tau_k}\Big(H - \frac{H y\, y^\top H}{y^\top H y}
              + \phi_k\,(y^\top H y)\, v v^\top\Big) + \frac{s s^\top}{y^\top s},
    \qquad \phi_k = \frac{1 - \vartheta_k}{1 + a\,\vartheta_k},

where :math:`\vartheta_k` is the Broyden parameter of the direct update (:math:`\vartheta = 0`,
:math:`\phi = 1`: BFGS; :math:`\vartheta = 1`: DFP).

* ``"ssbfgs"``: :math:`\vartheta = 0` and Al-Baali's scaling :math:`\tau_k = \min(1, 1/b)`
  (Al-Baali 1998), which scales only when :math:`H` overestimates the curvature along :math:`s`.
* ``"ssbroyden"``: :math:`\vartheta` and :math:`\tau` chosen per step within Al-Baali's
  self-scaling Broyden class (Al-Baali 1998; Al-Baali, Spedicato & Maggioni 2014) by the rule
  Urbán, Stefanou & Pons (2025) use for PINNs (the method they call "SSBroyden2"): with
  :math:`\rho^- = \min(1, h(1 - \sqrt{a/(1+a)}))`, :math:`\vartheta^- = (\rho^- - 1)/a`,
  :math:`\vartheta^+ = 1/\rho^-`,

  .. math::
      \vartheta = \max\big(\vartheta^-, \min(\vartheta^+, (1 - b)/b)\big),\quad
      \sigma = 1 + a\vartheta,\quad \sigma_n = \sigma^{1/(1-n)},\quad
      \tau = \begin{cases} \min\big(\min(1, 1/b)\,\sigma_n,\ \sigma\big) & \vartheta \le 0\\
                            \min(1, 1/b)\,\min(\sigma_n, 1/\vartheta) & \vartheta > 0\end{cases}

  (:math:`n` parameters; :math:`\vartheta = 0` when :math:`a = 0`, where every member coincides).

:math:`H_0 = I`, scaled by the first update like every other. A pair with
:math:`y^\top s \le \epsilon\,\|y\|\,\|s\|` (:math:`\epsilon` the dtype's machine epsilon) leaves
:math:`H` unchanged. The loop, the strong-Wolfe line search (``torch.optim.lbfgs._strong_wolfe``),
the stopping tests, the first step :math:`\min(1, 1/\|g\|_1)` and the state keys ``n_iter`` and
``func_evals`` are those of :class:`pinn_lam.optim.lbfgs.LBFGS`, so the trainer drives both alike
(chunks, :func:`pinn_lam.optim.lbfgs.diagnose`). ``H`` is dense, :math:`n^2` numbers (152 MB in
float64 for the 4353 parameters of the Burgers defaults' 32x5 network); an iteration costs two
passes over it (the products :math:`H[y, g]` and one rank-3 update).

References:
    S. S. Oren, D. G. Luenberger, "Self-scaling variable metric (SSVM) algorithms", Management
    Science 20 (1974) 845-862. M. Al-Baali, "Numerical experience with a class of self-scaling
    quasi-Newton algorithms", J. Optim. Theory Appl. 96 (1998) 533-553. M. Al-Baali,
    E. Spedicato, F. Maggioni, "Broyden's quasi-Newton methods for a nonlinear system of
    equations and unconstrained optimization: a review and open problems", Optim. Methods Softw.
    29 (2014) 937-954. J. F. Urbán, P. Stefanou, J. A. Pons, "Unveiling the
    optimization process of physics informed neural networks: how accurate and competitive can
    PINNs be?", J. Comput. Phys. 523 (2025) 113656.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor
from pinn_lam.optim.lbfgs import CHUNK, DEFAULTS, strong_wolfe_step

METHODS = ("ssbfgs", "ssbroyden")
#: the most parameters the dense inverse Hessian is built for (n^2 numbers)
DENSE_LIMIT = 20000


def scaling(method: str, b: float, h: float, n: int) -> tuple[float, float]:
    r"""``(tau, phi)`` of ``method`` for the scalars :math:`b`, :math:`h` (module docstring)."""
    if method == "ssbfgs":
        return min(1.0, 1.0 / b), 1.0
    a = max(b * h - 1.0, 0.0)
    if a <= 1e-14:
        theta = 0.0
    else:
        rho_minus = min(1.0, h * (1.0 - math.sqrt(a / (1.0 + a))))
        theta = max((rho_minus - 1.0) / a, min(1.0 / rho_minus, (1.0 - b) / b))
    sigma = 1.0 + a * theta
    sigma_n = sigma ** (1.0 / (1.0 - n)) if n > 1 else 1.0
    shrink = min(1.0, 1.0 / b)
    tau = min(shrink * sigma_n, sigma) if theta <= 0 else shrink * min(sigma_n, 1.0 / theta)
    return tau, (1.0 - theta) / sigma


def self_scaled_update(H: Tensor, s: Tensor, y: Tensor, step_times_gtd: Tensor, method: str,
                       products: Tensor | None = None) -> tuple[Tensor, Tensor, float]:
    r"""Update ``H`` in place by the self-scaled formula of ``method`` (module docstring).

    ``step_times_gtd``: :math:`t\,s^\top g_k`, so that :math:`s^\top B s = -t\,s^\top g_k`;
    ``products``: :math:`Hy` if already known. Returns ``(left, right, tau)`` with
    :math:`H_{k+1} = H_k/\tau + \mathrm{left}\,\mathrm{right}^\top`, so that a product
    :math:`H_{k+1}g` follows from :math:`H_k g` without another pass over :math:`H`.
    """
    ys = float(y.dot(s))
    Hy = torch.mv(H, y) if products is None else products
    yHy = float(y.dot(Hy))
    b = -float(step_times_gtd) / ys
    h = yHy / ys
    tau, phi = scaling(method, b, h, s.numel())
    v = s / ys - Hy / yHy
    # H <- (H - Hy Hy^T / yHy + phi yHy v v^T) / tau + s s^T / ys as one rank-3 update
    left = torch.stack((Hy, v, s), dim=1)
    right = torch.stack((Hy * (-1.0 / (tau * yHy)), v * (phi * yHy / tau), s / ys), dim=1)
    H.addmm_(left, right.T, beta=1.0 / tau)
    return left, right, tau


class SelfScaledQuasiNewton(torch.optim.Optimizer):
    r"""SSBFGS or SSBroyden (``method``) with :class:`pinn_lam.optim.lbfgs.LBFGS`'s loop and line search.

    Args:
        params: the parameters (one group).
        method: ``"ssbfgs"`` or ``"ssbroyden"`` (module docstring).
        lr, max_iter, max_eval, tolerance_grad, tolerance_change, line_search_fn: as
            :class:`torch.optim.LBFGS` (``max_iter`` iterations per :meth:`step`).
        c1, c2: the strong Wolfe constants (sufficient decrease, curvature); a small ``c2``
            makes the line search nearly exact.

    **State** (on the first parameter): ``n_iter``, ``func_evals``, ``d``, ``t``, ``prev_flat_grad``,
    ``prev_loss``, ``gtd`` and ``H`` (``None`` until the first pair).
    """

    def __init__(self, params: Iterable[Tensor], method: str = "ssbfgs", lr: float = 1.0, max_iter: int = CHUNK,
                 max_eval: int | None = None, tolerance_grad: float = 1e-9, tolerance_change: float = 0.0,
                 line_search_fn: str | None = "strong_wolfe", c1: float = 1e-4, c2: float = 0.9) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown self-scaled method {method!r}; choose from {', '.join(METHODS)}")
        if not 0.0 < lr < math.inf:
            raise ValueError(f"Invalid learning rate: {lr}")
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"line_search_fn must be 'strong_wolfe' or None, got {line_search_fn!r}")
        if not 0.0 < c1 < c2 < 1.0:
            raise ValueError(f"Invalid Wolfe constants c1={c1}, c2={c2} (need 0 < c1 < c2 < 1)")
        max_eval = max_iter * 5 // 4 if max_eval is None else max_eval
        defaults = dict(method=method, lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                        tolerance_change=tolerance_change, line_search_fn=line_search_fn, c1=c1, c2=c2)
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError(f"{method} doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]
        n = sum(p.numel() for p in self._params)
        if n > DENSE_LIMIT:
            raise ValueError(f"{method} keeps a dense {n} x {n} inverse Hessian; at most {DENSE_LIMIT} parameters "
                             "are allowed (use lbfgs)")

    def objective_changed(self) -> None:
        """New points: keep ``H`` but form no pair across the change (as L-BFGS)."""
        state = self.state[self._params[0]]
        if state.get("n_iter", 0):
            state["objective_changed"] = True

    def _gather_flat_grad(self) -> Tensor:
        return torch.cat([torch.zeros_like(p).view(-1) if p.grad is None else p.grad.view(-1) for p in self._params])

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor]) -> Tensor:  # type: ignore[override]
        """At most ``max_iter`` iterations; ``closure()`` returns the loss after ``backward()``."""
        closure = torch.enable_grad()(closure)
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        if flat_grad.abs().max() <= tolerance_grad:
            return orig_loss

        targets = [p.view(-1) for p in self._params]
        numels = [p.numel() for p in targets]
        d, t, H, gtd = state.get("d"), state.get("t"), state.get("H"), state.get("gtd")
        prev_flat_grad, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d, H = flat_grad.neg(), None
            elif state.pop("objective_changed", False):
                d = flat_grad.neg() if H is None else torch.mv(H, flat_grad).neg_()
            else:
                y, s = flat_grad.sub(prev_flat_grad), d.mul(t)
                if float(y.dot(s)) > torch.finfo(y.dtype).eps * float(y.norm() * s.norm()):
                    if H is None:
                        H = torch.eye(y.numel(), dtype=y.dtype, device=y.device)
                    products = torch.mm(H, torch.stack((y, flat_grad), dim=1))  # H y and H g in one pass
                    left, right, tau = self_scaled_update(H, s, y, gtd * t * t, group["method"], products[:, 0])
                    d = products[:, 1].div(tau).addmv_(left, torch.mv(right.T, flat_grad)).neg_()
                else:
                    d = flat_grad.neg() if H is None else torch.mv(H, flat_grad).neg_()

            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.clone(memory_format=torch.contiguous_format)
            else:
                prev_flat_grad.copy_(flat_grad)
            prev_loss = loss
            t = min(1.0, 1.0 / float(flat_grad.abs().sum())) * lr if state["n_iter"] == 1 else lr
            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:
                break

            ls_func_evals = 0
            d_parts = d.split(numels)
            if group["line_search_fn"] == "strong_wolfe":
                loss, flat_grad, t, ls_func_evals = strong_wolfe_step(
                    closure, targets, self._gather_flat_grad, d, t, loss, flat_grad, gtd,
                    max_ls=max(max_eval - current_evals, 1), c1=group["c1"], c2=group["c2"])
            else:
                torch._foreach_add_(targets, d_parts, alpha=t)
                loss = float(closure())
                flat_grad = self._gather_flat_grad()
                ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals
            if n_iter == max_iter or current_evals >= max_eval or flat_grad.abs().max() <= tolerance_grad:
                break
            if d.mul(t).abs().max() <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break

        state.update(d=d, t=t, H=H, gtd=gtd, prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss


def make_ssbfgs(params: Iterable[Tensor], **options: Any) -> SelfScaledQuasiNewton:
    """SSBFGS with pinn-lam's L-BFGS defaults (strong Wolfe, ``tolerance_grad``, ``tolerance_change``)."""
    return _make(params, "ssbfgs", options)


def make_ssbroyden(params: Iterable[Tensor], **options: Any) -> SelfScaledQuasiNewton:
    """SSBroyden with pinn-lam's L-BFGS defaults."""
    return _make(params, "ssbroyden", options)


def _make(params, method: str, options: dict[str, Any]) -> SelfScaledQuasiNewton:
    settings = {k: v for k, v in DEFAULTS.items() if k != "history_size"}
    settings.update(options)
    return SelfScaledQuasiNewton(params, method=method, max_iter=CHUNK, max_eval=25 * CHUNK, **settings)
