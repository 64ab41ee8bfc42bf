r"""Forward-mode (Taylor) derivatives of an MLP's output with respect to its inputs.

A PINN residual needs :math:`u`, :math:`\partial_i u` and pure second derivatives
:math:`\partial_i^2 u` at every collocation point. Nested ``autograd.grad`` gets them with one
backward pass per derivative, each building a graph that the parameter gradient then
differentiates again. For a plain MLP the same numbers follow exactly from pushing a truncated
Taylor expansion along each input direction forward through the layers, with the parameter
gradient written out by hand (:mod:`pinn_lam.nn.taylor` has the rules). This is exact (it is the
chain rule, checked against nested autograd in the tests) and takes far fewer kernels and
passes over memory than differentiating a graph twice.

:func:`evaluate` also carries the values at further points (those of Dirichlet conditions) in
the same pass, so a whole PINN loss is one propagation and one hand-written backward.

A hard constraint :math:`u = a(x) + b(x)\,r(x)` (:class:`pinn_lam.pde.problem.HardConstraint`) is
handled by the product rule, :math:`u_i = a_i + b_i r + b r_i` and
:math:`u_{ii} = a_{ii} + b_{ii} r + 2 b_i r_i + b r_{ii}`, with the derivatives of :math:`a`
and :math:`b` taken by autograd on the points (they may depend on the points only). A caller
that evaluates the same points many times may compute them once with :func:`constraint_terms`
(and :func:`constraint_values`) and pass them in.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from pinn_lam.nn.mlp import MLP
from pinn_lam.nn.networks import FeatureNetwork
from pinn_lam.pde.problem import HardConstraint
from pinn_lam.nn.taylor import ACTIVATION_DERIVATIVES, taylor_block

__all__ = ["ACTIVATION_DERIVATIVES", "Plan", "constraint_terms", "constraint_values", "derivatives", "evaluate", "prepare",
           "run", "supports"]


def _is_pure_key(key: object) -> bool:
    return isinstance(key, str) and 1 <= len(key) <= 2 and len(set(key)) == 1


def _parse_keys(variables: Sequence[str], keys: Sequence[str]) -> tuple[list[int], int]:
    """Variable indices needing a first derivative, ordered so that the ``n2`` needing a pure
    second derivative come first (their rows then form one slice), and ``n2``."""
    first: list[int] = []
    second: list[int] = []
    for key in keys:
        if not _is_pure_key(key):
            raise ValueError(f"fast path supports derivative keys like 'x' or 'xx', got {key!r}")
        if key[0] not in variables:
            raise ValueError(f"derivative key {key!r} names no variable of {tuple(variables)}")
        index = variables.index(key[0])
        if index not in first:
            first.append(index)
        if len(key) == 2 and index not in second:
            second.append(index)
    return second + [i for i in first if i not in second], len(second)


def supports(model: torch.nn.Module, keys: Sequence[str]) -> bool:
    """True when :func:`derivatives` can compute ``keys`` for ``model``: a
    :class:`~pinn_lam.nn.mlp.MLP` (or a :class:`~pinn_lam.nn.networks.FeatureNetwork`, whose
    Taylor jets :mod:`pinn_lam.nn.jets` propagates) with an activation in :data:`ACTIVATION_DERIVATIVES`, an
    output transform that is ``None`` or a :class:`~pinn_lam.pde.problem.HardConstraint` (of a
    one-output network), and
    derivative keys of order at most 2 that are pure (``"x"``, ``"t"``, ``"xx"``; not ``"xt"``)."""
    if type(model) not in (MLP, FeatureNetwork) or model.activation not in ACTIVATION_DERIVATIVES:
        return False
    if model.output_transform is not None and (not isinstance(model.output_transform, HardConstraint)
                                               or model.layers[-1].out_features != 1):
        return False
    return all(_is_pure_key(key) for key in keys)


def constraint_terms(transform: HardConstraint, points: Tensor, variables: Sequence[str],
                     keys: Sequence[str]) -> dict[str, Tensor]:
    r"""Values and derivatives of a hard constraint's offset :math:`a` and factor :math:`b`.

    Returns ``{"a": a, "b": b, "a_x": ..., "b_x": ..., "a_xx": ..., "b_xx": ...}`` for the
    variables ``keys`` need, each ``(N, 1)`` and detached: :math:`a` and :math:`b` must depend on
    the points only (as :class:`~pinn_lam.pde.problem.HardConstraint` requires). Computed by autograd
    on a copy of the points; the result can be reused for as long as the points stay the same.
    """
    cols, n2 = _parse_keys(variables, keys)
    with torch.enable_grad():
        x = points.detach().requires_grad_(True)
        terms: dict[str, Tensor] = {}
        for label, fn in (("a", transform.offset), ("b", transform.factor)):
            value = _column(fn, x)
            terms[label] = value.detach()
            if not cols:
                continue
            if value.requires_grad:
                grad = torch.autograd.grad(value.sum(), x, create_graph=n2 > 0, retain_graph=True)[0]
            else:  # a constant offset or factor
                grad = torch.zeros_like(x)
            for rank, i in enumerate(cols):
                column = grad[:, i:i + 1]
                name = f"{label}_{variables[i]}"
                terms[name] = column.detach()
                if rank < n2:
                    hess = (torch.autograd.grad(column.sum(), x, retain_graph=True)[0][:, i:i + 1]
                            if column.requires_grad else torch.zeros_like(column))
                    terms[name + variables[i]] = hess.detach()
    return terms


def constraint_values(transform: HardConstraint, points: Tensor) -> dict[str, Tensor]:
    """``{"a": a, "b": b}`` of a hard constraint at ``points``, each ``(N, 1)`` and detached:
    what :func:`evaluate` needs at points where only the value of ``u`` is wanted."""
    with torch.no_grad():
        return {"a": _column(transform.offset, points), "b": _column(transform.factor, points)}


def _column(fn, points: Tensor) -> Tensor:
    """``fn(points)`` as an ``(N, 1)`` tensor of the points' dtype and device (a constant is
    broadcast to every point)."""
    value = torch.as_tensor(fn(points), dtype=points.dtype, device=points.device)
    return value.reshape(-1, 1).expand(points.shape[0], 1) if value.numel() == 1 else value.reshape(-1, 1)


@dataclass
class Plan:
    """What :func:`run` needs besides the parameters, computed once by :func:`prepare`: the
    parsed keys, the scaled points of every set stacked in one tensor, and the hard
    constraint's terms. Valid for as long as the points, and the model's dtype and device, stay
    the same."""

    variables: tuple[str, ...]
    keys: tuple[str, ...]
    cols: list[int]
    n2: int
    sizes: list[int]  # rows of ``points``, then of each of ``values``
    inputs: Tensor  # every point set stacked, unscaled
    scaled: Tensor | None  # ``model.scale_inputs(inputs)`` when it needs no graph, else None
    scale: Tensor  # the input scales of ``cols``
    terms: Mapping[str, Tensor] | None
    value_terms: list[Mapping[str, Tensor]] | None


def prepare(model: MLP, points: Tensor, variables: Sequence[str], keys: Sequence[str], *,
            values: Sequence[Tensor] = (), terms: Mapping[str, Tensor] | None = None,
            value_terms: Sequence[Mapping[str, Tensor]] | None = None) -> Plan:
    """Check the arguments of :func:`evaluate` and precompute what does not depend on the
    parameters, so that a caller evaluating the same points every step (a training loop) can
    call :func:`run` with the plan."""
    if not supports(model, keys):
        raise ValueError(f"fast path does not support this model/keys (keys={tuple(keys)}, "
                         f"activation={getattr(model, 'activation', None)!r}); use pinn_lam.pde.operators")
    variables = tuple(variables)
    for name, p in [("points", points)] + [(f"values[{j}]", v) for j, v in enumerate(values)]:
        if p.dim() != 2 or p.shape[1] != len(variables):
            raise ValueError(f"{name} must have shape (N, {len(variables)}), got {tuple(p.shape)}")
    if value_terms is not None and len(value_terms) != len(values):
        raise ValueError(f"value_terms must have one entry per values entry ({len(values)}), got {len(value_terms)}")
    cols, n2 = _parse_keys(variables, keys)
    inputs = torch.cat((points, *values)) if values else points
    transform = model.output_transform
    if transform is not None:
        terms = constraint_terms(transform, points, variables, keys) if terms is None else terms
        value_terms = [constraint_values(transform, v) for v in values] if value_terms is None else list(value_terms)
    scaled = None if inputs.requires_grad and torch.is_grad_enabled() else model.scale_inputs(inputs).detach()
    return Plan(variables, tuple(keys), cols, n2, [points.shape[0]] + [v.shape[0] for v in values], inputs,
                scaled, model.input_scale[cols], terms, value_terms)


def run(model: MLP, plan: Plan) -> tuple[Tensor, dict[str, Tensor], list[Tensor]]:
    """:func:`evaluate` with the arguments :func:`prepare` checked and precomputed."""
    cols, n2 = plan.cols, plan.n2
    n1 = len(cols)
    if isinstance(model, FeatureNetwork):
        pieces = model.taylor(plan.inputs, cols, n2, plan.sizes)
    else:
        params = [p for layer in model.layers for p in (layer.weight, layer.bias)]
        scaled = model.scale_inputs(plan.inputs) if plan.scaled is None else plan.scaled
        pieces = taylor_block(model.activation, cols, n2, plan.sizes, scaled, plan.scale, params)
    raw, extra, rows = pieces[0], list(pieces[1:len(plan.sizes)]), pieces[len(plan.sizes):]
    if model.output_transform is None:
        u = raw
    else:
        c = plan.terms
        u = c["a"] + c["b"] * raw
        extra = [t["a"] + t["b"] * r for t, r in zip(plan.value_terms, extra)]
    result: dict[str, Tensor] = {}
    for key in plan.keys:
        rank = cols.index(plan.variables.index(key[0]))
        row = rows[rank] if len(key) == 1 else rows[n1 + rank]
        if model.output_transform is None:
            result[key] = row
        elif len(key) == 1:
            v = key
            result[key] = c[f"a_{v}"] + c[f"b_{v}"] * raw + c["b"] * row
        else:
            v = key[0]
            result[key] = (c[f"a_{key}"] + c[f"b_{key}"] * raw
                           + 2 * c[f"b_{v}"] * rows[rank] + c["b"] * row)
    return u, result, extra


def evaluate(model: MLP, points: Tensor, variables: Sequence[str], keys: Sequence[str], *,
             values: Sequence[Tensor] = (), terms: Mapping[str, Tensor] | None = None,
             value_terms: Sequence[Mapping[str, Tensor]] | None = None
             ) -> tuple[Tensor, dict[str, Tensor], list[Tensor]]:
    """``u`` and its derivatives ``keys`` at ``points``, and ``u`` alone at each of ``values``,
    in one forward-mode pass (one matrix product per layer for all of them).

    Args:
        model: an MLP for which :func:`supports` is True.
        points: (N, d) inputs in the order of ``variables``; they need not require grad.
        variables: single-character names of the input columns.
        keys: derivative names like ``"x"``, ``"t"``, ``"xx"``.
        values: further (N_j, d) point sets where only ``u`` is needed (e.g. the points of
            Dirichlet conditions).
        terms: optional precomputed :func:`constraint_terms` of the model's hard constraint at
            ``points`` (saves a few autograd calls per step).
        value_terms: optional precomputed :func:`constraint_values` at each of ``values``.

    Returns ``(u, {key: derivative}, [u_j for each of values])``, each ``(N, m)``. Everything is
    differentiable (once) with respect to the model's parameters (and, without a hard
    constraint, the points); it cannot be differentiated twice (use :mod:`pinn_lam.pde.operators`).
    Equivalent to ``run(model, prepare(model, points, ...))``.
    """
    return run(model, prepare(model, points, variables, keys, values=values, terms=terms, value_terms=value_terms))


def derivatives(model: MLP, points: Tensor, variables: Sequence[str], keys: Sequence[str], *,
                terms: Mapping[str, Tensor] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """``u = model(points)`` (N, m) and ``{key: derivative}`` as
    :func:`pinn_lam.pde.operators.derivatives` gives them, by forward-mode propagation: :func:`evaluate`
    without extra value points."""
    u, result, _ = evaluate(model, points, variables, keys, terms=terms)
    return u, result
