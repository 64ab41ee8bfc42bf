r"""The PINN loss: a weighted sum of mean-square residuals, each term logged by name.

For a problem with equations :math:`r_e` and conditions :math:`c_k`,

.. math::
    L(\theta) = \sum_e w_e \frac{1}{N_f}\sum_{i} r_e(x_i; u_\theta)^2
              + \sum_k w_k \frac{1}{N_k}\sum_{j} \|c_k(x^k_j; u_\theta)\|^2 ,

where the collocation points :math:`x_i` (shared by every equation) and the condition points
:math:`x^k_j` are fixed until :meth:`PINNLoss.set_points` replaces them. Conditions that the
model's hard constraint (:class:`~pinn_lam.pde.problem.HardConstraint`) enforces exactly are
dropped. Unknown parameters of an inverse problem live on the model (``model.unknowns``, an
``nn.ParameterDict``) and reach every residual as ``d["name"]``.

Derivatives come from the forward-mode fast path (:mod:`pinn_lam.nn.fastpath`) for every term
whose derivatives it supports (pure, of order at most two, any number of outputs) and from
nested autograd for the rest; :attr:`PINNLoss.paths` says which served each term. On the fast
path the values at the points of value-only conditions ride in the PDE's pass, and a target
that depends on the coordinates only is computed once per :meth:`PINNLoss.set_points`.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from pinn_lam.pde.fields import AutogradFields, Fields, TensorFields
from pinn_lam.pde.problem import HardConstraint, Problem
from pinn_lam.pde.spec import ProblemSpec, describe, equation_residuals
from pinn_lam.training.mean_squares import weighted_mean_squares


def _fastpath():
    """The fast-path module, or ``None`` while it is unavailable."""
    try:
        return importlib.import_module("pinn_lam.nn.fastpath")
    except ImportError:
        return None


def covered_conditions(model: nn.Module) -> tuple[str, ...]:
    """Names of the conditions the model enforces exactly: through a :class:`HardConstraint`, or
    by construction (``model.exact_conditions``, e.g. periodic conditions of a periodic embedding)."""
    transform = getattr(model, "output_transform", None)
    covers = tuple(transform.covers) if isinstance(transform, HardConstraint) else ()
    return covers + tuple(getattr(model, "exact_conditions", ()))


def loss_terms(problem: Problem, model: nn.Module, spec: ProblemSpec | None = None) -> tuple[str, ...]:
    """The loss terms of ``problem`` for ``model``: the equations, then every uncovered condition."""
    spec = spec or describe(problem)
    covered = set(covered_conditions(model))
    return spec.equations + tuple(name for name in spec.conditions if name not in covered)


def unknown_parameters(model: nn.Module) -> dict[str, Tensor]:
    """The unknown scalars of an inverse problem that ``model`` carries (``model.unknowns``)."""
    unknowns = getattr(model, "unknowns", None)
    return dict(unknowns.items()) if isinstance(unknowns, nn.ParameterDict) else {}


class PINNLoss:
    """Weighted mean-square residuals of ``model`` on ``problem``.

    Args:
        problem: the problem (:class:`pinn_lam.pde.problem.Problem`).
        model: the network; ``model(points) -> (N, m)``, one column per output.
        points: ``{"pde": collocation points, name: points of condition name, ...}`` as
            ``(N, d)`` tensors on the model's device and dtype (:meth:`point_sets` lists the keys).
        weights: optional ``{term: weight}``; unnamed terms weigh 1.
        fast: ``None`` uses the fast path where it supports a term, ``True`` requires it for the
            equations (``ValueError`` otherwise), ``False`` uses autograd everywhere.
        spec: the problem's :func:`~pinn_lam.pde.spec.describe` (computed when not given).

    Example::

        loss = PINNLoss(problem, model, {"pde": x_f, "ic": x_ic, "bc": x_bc})
        total, terms = loss()          # terms == {"pde": ..., "ic": ..., "bc": ...}
        total.backward()
    """

    def __init__(self, problem: Problem, model: nn.Module, points: Mapping[str, Tensor],
                 weights: Mapping[str, float] | None = None, fast: bool | None = None,
                 spec: ProblemSpec | None = None) -> None:
        self.problem, self.model = problem, model
        self.spec = spec or describe(problem)
        self._variables, self._time = tuple(problem.variables), problem.domain.time
        self._terms = loss_terms(problem, model, self.spec)
        self._conditions = {name: self.spec.conditions[name] for name in self._terms if name in self.spec.conditions}
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(self._terms))
        if unknown:
            raise ValueError(f"unknown loss weight(s) {', '.join(unknown)}; terms are {', '.join(self._terms)}")
        for name, value in weights.items():
            if not float(value) >= 0.0 or value == float("inf"):
                raise ValueError(f"loss weight {name}={value!r} must be finite and non-negative")
        self.weights = {name: float(weights.get(name, 1.0)) for name in self._terms}
        self.weighting = None  # adaptive weights (:class:`pinn_lam.training.weighting.LossWeighting`)
        # what each term reads, found once: the derivatives' direction keys
        self._keys = {name: self.spec.derivatives(name) for name in ("pde",) + tuple(self._conditions)}
        self.paths = self._choose_paths(fast)
        self.fast = self.paths["pde"] == "fast"
        # value-only conditions on the fast path ride in the equations' pass
        self._shared = [name for name in self._conditions
                        if self.paths[name] == "fast" and self.spec.value_only(name)]
        # the output columns a value condition is on (None: all of them, in order)
        self._columns = {name: None if condition.outputs == problem.outputs
                         else [problem.outputs.index(o) for o in condition.outputs]
                         for name, condition in self._conditions.items()}
        self.set_points(points)

    def _choose_paths(self, fast: bool | None) -> dict[str, str]:
        """``"fast"`` or ``"autograd"`` for ``"pde"`` (every equation) and each condition."""
        module = None if fast is False else _fastpath()

        def supported(term: str) -> bool:
            return module is not None and bool(module.supports(self.model, self._keys[term]))

        paths = {"pde": "fast" if supported("pde") else "autograd"}
        if fast is True and paths["pde"] != "fast":
            raise ValueError("fast=True but the fast path does not support this model/problem; use fast=None or False")
        for name in self._conditions:
            paths[name] = "fast" if paths["pde"] == "fast" and supported(name) else "autograd"
        return paths

    def terms(self) -> tuple[str, ...]:
        """Names of the loss terms, the equations first."""
        return self._terms

    def point_sets(self) -> tuple[str, ...]:
        """Keys of :attr:`points`: ``"pde"`` (shared by the equations) and each condition."""
        return ("pde",) + tuple(self._conditions)

    def set_points(self, points: Mapping[str, Tensor]) -> None:
        """Replace the points of every term (e.g. after resampling)."""
        keys = self.point_sets()
        missing = [name for name in keys if name not in points]
        extra = sorted(set(points) - set(keys))
        if missing or extra:
            raise ValueError(f"points must have exactly the keys {', '.join(keys)}; "
                             f"missing {missing or 'none'}, unexpected {extra or 'none'}")
        d = len(self.problem.variables)
        for name, value in points.items():
            if not isinstance(value, Tensor) or value.ndim != 2 or value.shape[1] != d or value.shape[0] < 1:
                shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"points[{name!r}] must be a non-empty (N, {d}) tensor, got {shape}")
        self.points = {name: points[name].detach() for name in keys}
        self._extras = {}  # normals and partner points of the conditions, when first needed
        self._plans = {}  # the fast path's precomputed inputs for these points, when first needed
        self._targets = None

    # -- fields ------------------------------------------------------------------------------
    def _context(self, name: str) -> tuple[Tensor | None, Tensor | None]:
        """The outward normals and the partner points of condition ``name`` at its points."""
        if name not in self._extras:
            condition, points = self._conditions[name], self.points[name]
            host = points.detach().cpu().double().numpy()
            normals = condition.normals(self.problem.domain, host)
            partner = None if condition.partner is None else condition.partner(host, self.problem.domain)
            self._extras[name] = tuple(None if a is None else torch.as_tensor(a).to(points) for a in (normals, partner))
        return self._extras[name]

    def _autograd_fields(self, points: Tensor, normal: Tensor | None = None) -> Fields:
        points = points.detach().requires_grad_(True)
        return AutogradFields(points, self.model(points), self.problem.variables, self.problem.outputs,
                              unknown_parameters(self.model), normal=normal, time=self.problem.domain.time)

    def _fast_fields(self, points: Tensor, keys, normal: Tensor | None = None, plan: str | None = None) -> Fields:
        """Fields by the fast path; ``plan`` names a point set whose precomputed inputs are kept
        until the points, or the model's dtype or device, change."""
        fast = _fastpath()
        if not keys:  # values only: a plain forward pass
            values, d = self.model(points), {}
        elif plan is None:
            values, d = fast.derivatives(self.model, points, self.problem.variables, keys)
        else:
            prepared = self._plans.get(plan)
            if self._stale(prepared):
                prepared = self._plans[plan] = fast.prepare(self.model, points, self.problem.variables, keys)
            values, d, _ = fast.run(self.model, prepared)
        return TensorFields(points, values, d, self.problem.variables, self.problem.outputs,
                            unknown_parameters(self.model), normal=normal, time=self.problem.domain.time)

    def _stale(self, plan) -> bool:
        """Whether a fast-path plan is missing or was made for another dtype or device."""
        parameter = next(self.model.parameters())
        return plan is None or plan.inputs.dtype != parameter.dtype or plan.inputs.device != parameter.device

    def pde_fields(self, points: Tensor | None = None) -> Fields:
        """The fields of the equations at ``points`` (default: the collocation points)."""
        points = self.points["pde"] if points is None else points
        if self.fast:
            return self._fast_fields(points, self._keys["pde"])
        return self._autograd_fields(points)

    def pde_residual(self, points: Tensor | None = None) -> Tensor:
        """The pointwise residuals ``(N, e)`` of the ``e`` equations at ``points`` (default: the
        collocation points)."""
        d = self.pde_fields(points)
        residuals = equation_residuals(self.problem.pde(d), self.spec.equations, d.points.shape[0])
        return torch.cat(list(residuals.values()), dim=1)

    def condition_residual(self, name: str, points: Tensor | None = None) -> Tensor:
        """The pointwise residual ``(N, k)`` of condition ``name`` at its own points (or at
        ``points``, for a condition without normals or partner)."""
        condition = self._conditions[name]
        own = points is None
        points = self.points[name] if own else points
        normal, partner = self._context(name) if own else (None, None)
        if self.paths[name] == "fast":
            keys = self._keys[name]
            stacked = points if partner is None else torch.cat((points, partner))
            fields = self._fast_fields(stacked, keys, normal if partner is None else None,
                                       plan=name if own else None)
            return condition.residual(fields) if partner is None else condition.residual(*_split(fields, len(points)))
        d = self._autograd_fields(points, normal)
        if partner is None:
            return condition.residual(d)
        return condition.residual(d, self._autograd_fields(partner))

    # -- the whole loss ------------------------------------------------------------------------
    def _fast_residuals(self) -> dict[str, tuple[Tensor, Tensor | None]]:
        """Every term's residual as ``(x, t)`` with residual ``x - t`` (``t`` may be ``None``):
        the equations and the value-only conditions in one pass."""
        problem, model, points = self.problem, self.model, self.points
        shared = self._shared
        fast, plan = _fastpath(), self._plans.get("pde")
        parameter = next(model.parameters())
        if self._stale(plan):
            plan = self._plans["pde"] = fast.prepare(model, points["pde"], problem.variables,
                                                     self._keys["pde"],
                                                     values=[points[name] for name in shared])
            self._targets = None
        if self._targets is None:
            with torch.no_grad():
                self._targets = {}
                for name in shared:
                    if name in self.spec.fixed_targets:
                        d = problem.fields(points[name])
                        self._targets[name] = self._conditions[name].target(d).to(parameter.dtype).detach()
        values, derivatives, extra = fast.run(model, plan)
        unknowns = unknown_parameters(model)
        d = TensorFields(points["pde"], values, derivatives, self._variables, problem.outputs, unknowns,
                         time=self._time)
        residuals: dict[str, tuple[Tensor, Tensor | None]] = {
            name: (r, None) for name, r in equation_residuals(problem.pde(d), self.spec.equations,
                                                             len(points["pde"])).items()}
        for name, value in zip(shared, extra):
            condition = self._conditions[name]
            target = self._targets.get(name)
            columns = self._columns[name]
            if target is not None and condition.outputs:
                selected = value if columns is None else value[:, columns]
                residuals[name] = (selected, target)
            else:
                e = TensorFields(points[name], value, {}, problem.variables, problem.outputs, unknowns,
                                 time=problem.domain.time)
                residuals[name] = (condition.residual(e), None)
        for name in self._conditions:
            if name not in residuals:
                residuals[name] = (self.condition_residual(name), None)
        return residuals

    def residuals(self) -> dict[str, tuple[Tensor, Tensor | None]]:
        """Every term's pointwise residual as ``(x, t)``, the residual being ``x - t``."""
        if self.fast:
            return self._fast_residuals()
        d = self.pde_fields()
        residuals = {name: (r, None) for name, r in equation_residuals(
            self.problem.pde(d), self.spec.equations, len(self.points["pde"])).items()}
        residuals.update({name: (self.condition_residual(name), None) for name in self._conditions})
        return residuals

    def __call__(self) -> tuple[Tensor, dict[str, Tensor]]:
        return self.loss()

    def loss(self) -> tuple[Tensor, dict[str, Tensor]]:
        """The total weighted loss and every term's mean square residual by name."""
        residuals = self.residuals()
        if self.weighting is not None:
            residuals = self.weighting.reweight(residuals)
        return weighted_mean_squares([residuals[name] for name in self._terms],
                                     [self.weights[name] for name in self._terms], self._terms)

    def residual_vector(self) -> Tensor:
        r"""Every term's residuals as one vector :math:`R`, the terms in :meth:`terms` order (each
        term's points in order, a point's columns together), each scaled by :math:`\sqrt{w_k/N_k}`
        with :math:`N_k` its number of entries, so that :math:`\|R\|^2` is the total of
        :meth:`loss` (for least-squares optimizers, :mod:`pinn_lam.optim.lm`)."""
        residuals = self.residuals()
        if self.weighting is not None:
            residuals = self.weighting.reweight(residuals)
        parts = []
        for name in self._terms:
            value, target = residuals[name]
            r = (value if target is None else value - target).reshape(-1)
            parts.append(r * (self.weights[name] / max(r.numel(), 1)) ** 0.5)
        return torch.cat(parts)


def _split(fields: Fields, n: int) -> tuple[Fields, Fields]:
    """Fields of the first ``n`` points and of the rest, from fields of both stacked."""
    def part(rows: slice) -> Fields:
        values = fields.values[rows]
        derivatives = {k: v[rows] for k, v in fields.derivatives.items()}
        return TensorFields(fields.points[rows], values, derivatives, fields.variables, fields.outputs,
                            fields.unknowns, time=fields.time)

    return part(slice(0, n)), part(slice(n, None))
