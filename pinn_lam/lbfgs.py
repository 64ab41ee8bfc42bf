r"""L-BFGS for PINNs that says why it stopped and does not stall silently.

:class:`torch.optim.LBFGS` with a strong-Wolfe line search is run in *chunks* of a few
iterations (one ``step`` call each), so the trainer can log, evaluate, checkpoint and honour a
time limit in between. After each chunk :func:`diagnose` classifies the outcome:

* ``None``: the chunk did all its iterations;
* ``"converged"``: the gradient's largest entry fell below ``tolerance_grad``;
* ``"line search failed"``: the step ended early without convergence (zero step, or a direction
  that is not a descent direction), or the loss did not decrease over a whole chunk.

A failed line search in float32 is usually round-off, not a minimum: the trainer then continues
in float64, or restarts L-BFGS (dropping its curvature pairs) before giving up, see
:class:`pinn_lam.train.Trainer`.

Two choices differ from PyTorch's defaults, for PINN losses that reach :math:`10^{-8}` and below:
``tolerance_change=0`` (PyTorch's :math:`10^{-9}` test on the change of the loss ends float32
runs after a few iterations), and the objective is multiplied by ``scale`` (the reciprocal of the
loss when the optimizer is created), because PyTorch keeps a curvature pair only when
:math:`y^\top s > 10^{-10}`, an absolute threshold that a small loss would never pass.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch

#: defaults for :class:`torch.optim.LBFGS` in pinn-lam (overridable through optimizer options)
DEFAULTS: dict[str, Any] = {
    "lr": 1.0,
    "history_size": 50,
    "line_search_fn": "strong_wolfe",
    "tolerance_grad": 1e-9,
    "tolerance_change": 0.0,
}

#: L-BFGS iterations per ``step`` call
CHUNK = 10


def make_lbfgs(params: Iterable[torch.Tensor], **options: Any) -> torch.optim.LBFGS:
    """A :class:`torch.optim.LBFGS` with pinn-lam's :data:`DEFAULTS` (``max_iter`` is set per chunk)."""
    settings = {**DEFAULTS, **options}
    if settings.get("line_search_fn") not in (None, "strong_wolfe"):
        raise ValueError(f"line_search_fn must be 'strong_wolfe' or None, got {settings['line_search_fn']!r}")
    if settings["lr"] <= 0:
        raise ValueError(f"Invalid learning rate for L-BFGS: {settings['lr']}")
    return torch.optim.LBFGS(params, max_iter=CHUNK, max_eval=25 * CHUNK, **settings)


def set_chunk(optimizer: torch.optim.LBFGS, iterations: int) -> None:
    """Make the next ``step`` do at most ``iterations`` iterations."""
    for group in optimizer.param_groups:
        group["max_iter"] = int(iterations)
        group["max_eval"] = 25 * int(iterations)


def iterations_done(optimizer: torch.optim.LBFGS) -> int:
    """Total L-BFGS iterations this optimizer has done."""
    param = optimizer.param_groups[0]["params"][0]
    return int(optimizer.state.get(param, {}).get("n_iter", 0))


def max_abs_grad(optimizer: torch.optim.LBFGS) -> float:
    """Largest absolute gradient entry of the optimizer's parameters (as last computed)."""
    largest = 0.0
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                largest = max(largest, float(p.grad.detach().abs().max()))
    return largest


def diagnose(optimizer: torch.optim.LBFGS, requested: int, done: int) -> str | None:
    """Why a chunk of ``requested`` iterations that did ``done`` stopped (``None``: it did not)."""
    if done >= requested:
        return None
    if max_abs_grad(optimizer) <= optimizer.param_groups[0]["tolerance_grad"]:
        return "converged"
    return "line search failed"
