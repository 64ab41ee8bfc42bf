"""The network of a run from its ``network`` option (:func:`pinn_lam.nn.networks.parse_network`).

The plain MLP (:class:`~pinn_lam.nn.mlp.MLP`) unless the option asks for more, else a
:class:`~pinn_lam.nn.networks.FeatureNetwork`. A periodic embedding covers the problem's periodic
conditions (:func:`~pinn_lam.pde.conditions.Periodic`) along the embedded variables: the
conditions that the built network satisfies to round-off at 16 test points (with its output
transform, whose offset and factor must be periodic too) are left out of the loss
(``model.exact_conditions``); one it does not satisfy (e.g. a condition on :math:`u_x` with an
offset whose slope differs at the two ends) stays in the loss.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from pinn_lam.nn.mlp import MLP
from pinn_lam.nn.networks import FeatureNetwork, parse_network
from pinn_lam.pde.problem import Problem
from pinn_lam.pde.spec import ProblemSpec


def periodic_conditions(problem: Problem, spec: ProblemSpec) -> dict[str, int]:
    """Condition name -> index of its variable, for the periodic conditions of ``problem``
    (conditions with a partner drawn ``on`` a variable's low end)."""
    found = {}
    for name, condition in spec.conditions.items():
        on = condition.on if isinstance(condition.on, str) else ""
        variable, _, end = on.partition("=")
        if condition.partner is not None and end == "low" and variable in problem.variables:
            found[name] = tuple(problem.variables).index(variable)
    return found


def make_model(problem: Problem, spec: ProblemSpec, config: dict[str, Any],
               transform: Callable[[Tensor, Tensor], Tensor] | None, generator: torch.Generator) -> nn.Module:
    """The network for a resolved ``config`` (``width``, ``depth``, ``activation``, ``network``)."""
    network = parse_network(config.get("network"))
    sizes = dict(width=config["width"], depth=config["depth"], activation=config["activation"],
                 bounds=problem.bounds, output_transform=transform, generator=generator)
    if network.plain:
        return MLP(len(problem.variables), len(problem.outputs), **sizes)
    periodic = periodic_conditions(problem, spec) if network.periodic else {}
    periods = {i: float(problem.bounds[i][1] - problem.bounds[i][0]) for i in periodic.values()}
    if network.periodic and not periods:
        raise ValueError(f"network {config['network']!r}: a periodic embedding needs a periodic condition; "
                         f"{problem.name} has none")
    # float64 for the check below (the caller casts to the run's dtype; float32 weights survive the round trip)
    model = FeatureNetwork(len(problem.variables), len(problem.outputs), spec=network, periods=periods,
                           **sizes).to(torch.float64)
    model.exact_conditions = tuple(name for name in periodic if _holds(problem, spec, model, name))
    return model


def _holds(problem: Problem, spec: ProblemSpec, model: nn.Module, name: str) -> bool:
    """Whether ``model`` satisfies periodic condition ``name`` to round-off at 16 points."""
    from pinn_lam.training.loss import PINNLoss, loss_terms

    low = torch.tensor([float(b[0]) for b in problem.bounds], dtype=torch.float64)
    high = torch.tensor([float(b[1]) for b in problem.bounds], dtype=torch.float64)
    base = low + (high - low) * torch.rand((16, len(low)), generator=torch.Generator().manual_seed(0),
                                           dtype=torch.float64)
    index = periodic_conditions(problem, spec)[name]
    on_low = base.clone()
    on_low[:, index] = low[index]
    dtype = torch.float64
    terms = [t for t in loss_terms(problem, model, spec) if t in spec.conditions]
    points = {"pde": base.to(dtype), **{t: (on_low if t == name else base).to(dtype) for t in terms}}
    with torch.enable_grad():
        residual = PINNLoss(problem, model, points, fast=False, spec=spec).condition_residual(name).detach()
        scale = 1.0 + float(model(base.to(dtype)).detach().abs().max())
    return float(residual.abs().max()) <= 1e3 * torch.finfo(dtype).eps * scale
