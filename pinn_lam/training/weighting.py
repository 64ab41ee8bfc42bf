r"""Adaptive weights of a PINN loss :math:`L = \sum_k \lambda_k L_k`: balancing by gradient norms
or by NTK traces, and causal weights in time.

**Balancing** (``grad-norm``, ``ntk``): every ``every`` iterations of a first-order phase, new
weights :math:`\hat\lambda_k` are measured and averaged into the current ones,
:math:`\lambda_k \leftarrow \alpha \lambda_k + (1 - \alpha) \hat\lambda_k`:

* ``grad-norm`` (learning-rate annealing; Wang, Teng & Perdikaris 2021, "Understanding and
  mitigating gradient pathologies in physics-informed neural networks", in the norm form of
  Wang et al. 2023, "An expert's guide to training physics-informed neural networks"):
  :math:`\hat\lambda_k = \sum_j \|\nabla_\theta L_j\| / \|\nabla_\theta L_k\|`, with the unweighted
  terms :math:`L_j`, so every weighted term pulls with the same gradient norm;
* ``ntk`` (Wang, Yu & Perdikaris 2022, "When and why PINNs fail to train: a neural tangent
  kernel perspective"): :math:`\hat\lambda_k = \sum_j T_j / T_k` with :math:`T_k` the trace of
  term :math:`k`'s NTK block per point, :math:`T_k = \frac{1}{m}\sum_{p}\|\partial r_k(x_p)/\partial
  \theta\|^2` (summed over the residual's columns), estimated on ``points`` points of the
  term's set drawn afresh at each update (a generator seeded by the iteration). Per point
  rather than summed, so a term's weight does not depend on how many points it has.

**Causal weights** (``causal``; Wang, Sankaran & Perdikaris 2022, "Respecting causality is all you
need for training physics-informed neural networks"): the time interval is cut into
:math:`M` equal chunks, each equation's loss becomes

.. math::
    L_r = \frac{1}{M}\sum_{i=1}^{M} w_i L_r^{(i)}, \qquad
    w_i = \exp\Big(-\varepsilon \sum_{k<i} L_r^{(k)}\Big),

with :math:`L_r^{(i)}` the mean square residual of the collocation points in chunk :math:`i`
(empty chunks are left out of the mean) and the weights :math:`w_i` not differentiated: a
later time is trained once the earlier ones fit. It is applied by scaling each point's
residual by :math:`\sqrt{w_i N / (M N_i)}`, so the fast path, L-BFGS and the residual vector see
the same loss.

Within a quasi-Newton (L-BFGS) phase the causal weights are frozen, and both they and the
balance are refreshed only every ``every`` iterations, between the optimizer's chunks; the
trainer then tells the optimizer that its objective changed
(:meth:`pinn_lam.optim.lbfgs.LBFGS.objective_changed`), so that no curvature pair spans two
objectives. A least-squares phase keeps every weight fixed. The weights, the iterations of the
last balance and refresh, and the frozen causal weights are state
(:meth:`LossWeighting.state_dict`), checkpointed with the run, so a resumed run is bit-identical.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from pinn_lam.studies.stiffness import gradient_norms

BALANCES = ("grad-norm", "ntk")
_OPTIONS = {"grad-norm": {"every": int, "alpha": float}, "ntk": {"every": int, "alpha": float, "points": int},
            "causal": {"eps": float, "chunks": int}}


@dataclass(frozen=True)
class WeightingSpec:
    """What :func:`parse_weighting` reads."""

    balance: str | None = None  # "grad-norm", "ntk" or None (fixed weights)
    every: int = 100
    alpha: float = 0.9
    points: int = 32  # NTK trace sample per term
    causal: float | None = None  # epsilon, or None for no causal weights
    chunks: int = 16

    @property
    def fixed(self) -> bool:
        return self.balance is None and self.causal is None

    def label(self) -> str:
        """The canonical name, e.g. ``grad-norm(every=100,α=0.9)+causal(ε=1,M=16)``."""
        parts = []
        if self.balance == "grad-norm":
            parts.append(f"grad-norm(every={self.every},α={self.alpha:g})")
        elif self.balance == "ntk":
            parts.append(f"ntk(every={self.every},α={self.alpha:g},points={self.points})")
        if self.causal is not None:
            parts.append(f"causal(ε={self.causal:g},M={self.chunks})")
        return "+".join(parts) or "fixed"


def parse_weighting(text: str | None) -> WeightingSpec:
    """Read ``fixed``, or ``+``-joined parts ``grad-norm[:every=K,alpha=A]``,
    ``ntk[:every=K,alpha=A,points=P]`` and ``causal[:eps=E,chunks=M]`` (at most one of
    ``grad-norm``/``ntk``). Defaults: ``every=100, alpha=0.9, points=32, eps=1, chunks=16``."""
    if text is None or isinstance(text, WeightingSpec):
        return text or WeightingSpec()
    allowed = "fixed, or grad-norm[:every=K,alpha=A] / ntk[:every=K,alpha=A,points=P], and/or causal[:eps=E,chunks=M]"
    fields: dict = {}
    if str(text).strip() == "fixed":
        return WeightingSpec()
    for part in str(text).strip().split("+"):
        name, _, rest = part.partition(":")
        if name not in _OPTIONS or (name in BALANCES and "balance" in fields) or (name == "causal" and "causal" in fields):
            raise ValueError(f"unknown or repeated weighting {part!r} in {text!r}; use {allowed}")
        if name in BALANCES:
            fields["balance"] = name
        else:
            fields["causal"] = 1.0
        for item in filter(None, rest.split(",")):
            key, _, value = item.partition("=")
            if key not in _OPTIONS[name]:
                raise ValueError(f"weighting {name} has no option {key!r}; options: {', '.join(_OPTIONS[name])}")
            try:
                number = _OPTIONS[name][key](value)
            except ValueError:
                raise ValueError(f"weighting option {item!r} needs a number") from None
            fields["causal" if key == "eps" else key] = number
    spec = WeightingSpec(**fields)
    if spec.every < 1 or spec.points < 1 or spec.chunks < 1:
        raise ValueError(f"weighting {text!r}: every, points and chunks must be positive integers")
    if not 0 <= spec.alpha < 1:
        raise ValueError(f"weighting {text!r}: alpha must be in [0, 1), got {spec.alpha}")
    if spec.causal is not None and not (spec.causal >= 0 and math.isfinite(spec.causal)):
        raise ValueError(f"weighting {text!r}: eps must be finite and non-negative, got {spec.causal}")
    return spec


# -- the formulas ------------------------------------------------------------------------------
def balanced_weights(magnitudes: Mapping[str, float]) -> dict[str, float]:
    r""":math:`\hat\lambda_k = \sum_j m_j / m_k` for the terms with :math:`m_k > 0` (others are left out)."""
    total = sum(magnitudes.values())
    return {name: total / m for name, m in magnitudes.items() if m > 0}


def moving_average(current: Mapping[str, float], measured: Mapping[str, float], alpha: float) -> dict[str, float]:
    r""":math:`\alpha \lambda_k + (1 - \alpha)\hat\lambda_k` where :math:`\hat\lambda_k` was measured."""
    return {name: alpha * w + (1 - alpha) * measured[name] if name in measured else w for name, w in current.items()}


def causal_weights(chunk_losses: Tensor, epsilon: float) -> Tensor:
    r""":math:`w_i = \exp(-\varepsilon \sum_{k<i} L^{(k)})`, detached."""
    losses = chunk_losses.detach()
    before = torch.cumsum(losses, 0) - losses
    return torch.exp(-epsilon * before)


def time_chunks(times: Tensor, low: float, high: float, chunks: int) -> Tensor:
    """The chunk index (0 .. ``chunks - 1``) of each time in ``[low, high]``."""
    index = torch.floor((times - low) * (chunks / (high - low))).long()
    return index.clamp_(0, chunks - 1)


def chunk_mean_squares(residual: Tensor, index: Tensor, chunks: int) -> tuple[Tensor, Tensor]:
    """Each chunk's mean square residual over its entries, and its number of points."""
    per_point = residual.square().sum(1) / residual.shape[1]
    counts = torch.bincount(index, minlength=chunks).to(residual.dtype)
    sums = torch.zeros(chunks, dtype=residual.dtype, device=residual.device).index_add_(0, index, per_point)
    return sums / counts.clamp(min=1), counts


def ntk_trace(residual: Tensor, params: Sequence[Tensor]) -> float:
    r""":math:`\frac{1}{m}\sum_p \sum_c \|\partial r_{pc}/\partial\theta\|^2` for a residual ``(m, c)``:
    the trace of the term's NTK block per point (one backward pass per entry)."""
    total = 0.0
    flat = residual.reshape(residual.shape[0], -1)
    for p in range(flat.shape[0]):
        for c in range(flat.shape[1]):
            grads = torch.autograd.grad(flat[p, c], params, retain_graph=True, allow_unused=True)
            total += float(sum(g.detach().square().sum() for g in grads if g is not None))
    return total / max(flat.shape[0], 1)


# -- the state ---------------------------------------------------------------------------------
class LossWeighting:
    """The adaptive weights of one :class:`~pinn_lam.training.loss.PINNLoss` (see the module
    docstring). :meth:`attach` makes the loss use them: it reads ``loss.weights`` (updated in
    place) and calls :meth:`reweight` on its residuals."""

    def __init__(self, spec: WeightingSpec | str | None) -> None:
        self.spec = parse_weighting(spec)
        self.loss = None
        self.updated_at: int | None = None  # iteration of the last balance
        self.refreshed_at: int | None = None  # iteration the frozen causal weights were last recomputed
        self.frozen = False
        self.frozen_causal: dict[str, Tensor] | None = None
        self.last_causal: dict[str, Tensor] = {}

    def attach(self, loss) -> LossWeighting:
        if self.spec.causal is not None and loss.problem.domain.time is None:
            raise ValueError(f"causal weighting needs a time-dependent problem; {loss.problem.name} has no time variable")
        self.loss = loss
        loss.weighting = self
        variables = tuple(loss.problem.variables)
        if self.spec.causal is not None:
            self._time = variables.index(loss.problem.domain.time)
            self._time_bounds = tuple(float(b) for b in loss.problem.bounds[self._time])
        return self

    def label(self) -> str:
        return self.spec.label()

    # -- hooks of the trainer and the loss -----------------------------------------------------
    def update(self, iteration: int, mode: str = "first-order") -> bool:
        """Called before the loss is evaluated at ``iteration`` in a phase of kind ``mode``:
        ``"first-order"`` (causal weights follow every evaluation), ``"quasi-newton"`` (causal
        weights frozen, refreshed with the balance every ``every`` iterations) or ``"fixed"``
        (nothing changes: a least-squares phase). Returns whether a quasi-Newton phase's
        objective changed (its optimizer must then form no curvature pair across the change)."""
        if mode not in ("first-order", "quasi-newton", "fixed"):
            raise ValueError(f"unknown phase kind {mode!r}; use first-order, quasi-newton or fixed")
        frozen = mode != "first-order"
        if frozen != self.frozen:
            self.frozen, self.frozen_causal, self.refreshed_at = frozen, None, iteration
        if mode == "fixed":
            return False
        changed = False
        if self.spec.balance is not None and self._due(iteration, self.updated_at):
            measured = balanced_weights(self._magnitudes(iteration))
            self.loss.weights.update(moving_average(self.loss.weights, measured, self.spec.alpha))
            self.updated_at, changed = iteration, True
        if frozen and self.frozen_causal is not None and self._due(iteration, self.refreshed_at):
            self.frozen_causal, self.refreshed_at, changed = None, iteration, True  # recomputed when next used
        return changed and frozen

    def _due(self, iteration: int, last: int | None) -> bool:
        every = self.spec.every
        return last is None or iteration // every > last // every

    def _magnitudes(self, iteration: int) -> dict[str, float]:
        loss = self.loss
        params = [p for p in loss.model.parameters() if p.requires_grad]
        if self.spec.balance == "grad-norm":
            _, terms = loss.loss()
            return gradient_norms(terms, params)
        generator = torch.Generator().manual_seed(int(iteration))
        points = {name: p[torch.randperm(p.shape[0], generator=generator)[:self.spec.points].to(p.device)]
                  for name, p in loss.points.items()}
        sample = type(loss)(loss.problem, loss.model, points, fast=None if loss.fast else False, spec=loss.spec)
        residuals = sample.residuals()
        traces = {}
        for name in loss.terms():
            x, t = residuals[name]
            traces[name] = ntk_trace(x if t is None else x - t, params)
        return traces

    def reweight(self, residuals: dict[str, tuple[Tensor, Tensor | None]]) -> dict[str, tuple[Tensor, Tensor | None]]:
        """The residuals with each equation's points scaled by their causal weights."""
        if self.spec.causal is None:
            return residuals
        points = self.loss.points["pde"]
        chunks = self.spec.chunks
        index = time_chunks(points[:, self._time], *self._time_bounds, chunks)
        out = dict(residuals)
        frozen = self.frozen_causal
        if self.frozen and frozen is None:
            frozen = self.frozen_causal = {}
        for name in self.loss.spec.equations:
            r, _ = residuals[name]
            with torch.no_grad():
                losses, counts = chunk_mean_squares(r.detach(), index, chunks)
                if frozen is not None and name in frozen:
                    w = frozen[name].to(r)
                else:
                    w = causal_weights(losses, self.spec.causal)
                    if frozen is not None:
                        frozen[name] = w.clone()
                self.last_causal[name] = w
                filled = int((counts > 0).sum())
                factor = w * r.shape[0] / (filled * counts.clamp(min=1))
            out[name] = (r * factor.sqrt()[index].unsqueeze(1), None)
        return out

    def metrics(self) -> dict[str, object]:
        """What a run reports: the scheme, the final weights, and the smallest causal weight."""
        report: dict[str, object] = {"weighting": self.label(), "loss_weights": dict(self.loss.weights)}
        if self.last_causal:
            report["causal_weight_min"] = min(float(w.min()) for w in self.last_causal.values())
        return report

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, object]:
        return {"weights": dict(self.loss.weights), "updated_at": self.updated_at, "frozen": self.frozen,
                "refreshed_at": self.refreshed_at,
                "frozen_causal": None if self.frozen_causal is None
                else {k: v.detach().cpu().clone() for k, v in self.frozen_causal.items()}}

    def load_state_dict(self, state: Mapping[str, object]) -> None:
        self.loss.weights.update(state["weights"])
        self.updated_at, self.frozen, self.refreshed_at = state["updated_at"], state["frozen"], state["refreshed_at"]
        self.frozen_causal = None if state["frozen_causal"] is None else dict(state["frozen_causal"])
