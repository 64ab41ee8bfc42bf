"""One table of every optimizer a run can use: adding an optimizer is one :data:`REGISTRY` entry.

Each :class:`OptimizerInfo` says how to build the optimizer, whether it steps with a closure in
chunks of iterations (the quasi-Newton kind, driven by :mod:`pinn_lam.optim.lbfgs`'s helpers), with
a closure returning the residual vector (the least-squares kind, :mod:`pinn_lam.optim.lm`) or
once per iteration with a learning rate (the first-order kind), which options its constructor
accepts, and how figures show it. Variants (:data:`VARIANTS`) are an optimizer with preset
options, such as LAM with bias correction; phases join names with ``+`` (``"lam+lbfgs"``).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from pinn_lam.optim import lbfgs
from pinn_lam.optim.lam import LAM
from pinn_lam.optim.lam_fast import _FUSED_DEVICES, _FUSED_DTYPES
from pinn_lam.optim.lm import LevenbergMarquardt
from pinn_lam.optim.ssbfgs import SelfScaledQuasiNewton, make_ssbfgs, make_ssbroyden


@dataclass(frozen=True)
class OptimizerInfo:
    """One optimizer: ``factory(params, **options)`` builds it; ``closure`` optimizers take no
    learning rate from a run and step in chunks (:mod:`pinn_lam.optim.lbfgs`)."""

    name: str
    description: str
    factory: Callable[..., torch.optim.Optimizer]
    label: str
    color: str
    linestyle: str = "-"
    closure: bool = False
    #: the closure returns the residual vector of a least-squares loss, not the loss
    #: (:mod:`pinn_lam.optim.lm`); the trainer passes the residuals' Jacobian with it
    residuals: bool = False
    #: constructor options a run may pass besides ``params`` and ``lr``
    extra_options: frozenset[str] = field(default_factory=frozenset)

    def options(self) -> set[str]:
        """Every keyword the constructor accepts, less ``params``, ``lr`` and chunking ones."""
        accepted = set(inspect.signature(self.factory).parameters) | set(self.extra_options)
        return accepted - {"params", "lr", "max_iter", "max_eval", "options", "kwargs"}


def _adam(params, **kwargs):
    if not {"fused", "foreach"} & set(kwargs) and _fused_supported(params):
        # torch's Adam takes its per-tensor for-loop on CPU by default; the fused kernel is the
        # same algorithm in one pass, as LAM's default is, so that wall-time comparisons compare
        # the algorithms, not their implementations
        kwargs["fused"] = True
    return torch.optim.Adam(params, **kwargs)


def _signature_of(cls) -> frozenset[str]:
    return frozenset(inspect.signature(cls).parameters)


def _fused_supported(params: Sequence[Tensor]) -> bool:
    params = list(params)
    return bool(params) and all(p.device.type in _FUSED_DEVICES and p.dtype in _FUSED_DTYPES for p in params)


REGISTRY: dict[str, OptimizerInfo] = {info.name: info for info in (
    OptimizerInfo("lam", "LAM, layer-wise adaptive moments (pinn_lam.LAM)", LAM, "LAM", "#d62728"),
    OptimizerInfo("adam", "Adam (torch.optim.Adam)", _adam, "Adam", "#1f77b4",
                  extra_options=_signature_of(torch.optim.Adam)),
    OptimizerInfo("rmsprop", "RMSprop (torch.optim.RMSprop)", torch.optim.RMSprop, "RMSprop", "#2ca02c"),
    OptimizerInfo("sgd", "stochastic gradient descent (torch.optim.SGD)", torch.optim.SGD, "SGD", "#7f7f7f", ":"),
    OptimizerInfo("lbfgs", "L-BFGS with strong-Wolfe line search (pinn_lam.optim.lbfgs), reports why it stops",
                  lbfgs.make_lbfgs, "L-BFGS", "#9467bd", closure=True,
                  extra_options=_signature_of(torch.optim.LBFGS) | frozenset(lbfgs.DEFAULTS)),
    OptimizerInfo("ssbfgs", "self-scaled BFGS, dense inverse Hessian, strong-Wolfe line search (pinn_lam.optim.ssbfgs)",
                  make_ssbfgs, "SSBFGS", "#637939", closure=True,
                  extra_options=_signature_of(SelfScaledQuasiNewton) - {"method"}),
    OptimizerInfo("ssbroyden", "self-scaled Broyden, dense inverse Hessian, strong-Wolfe line search "
                  "(pinn_lam.optim.ssbfgs)", make_ssbroyden, "SSBroyden", "#8c6d31", closure=True,
                  extra_options=_signature_of(SelfScaledQuasiNewton) - {"method"}),
    OptimizerInfo("lm", "Levenberg-Marquardt (damped Gauss-Newton) on the residual vector (pinn_lam.optim.lm), "
                  "reports why it stops", LevenbergMarquardt, "Levenberg-Marquardt", "#393b79", closure=True,
                  residuals=True),
)}

#: figure label -> (optimizer name, preset options, legend name, colour, line style)
VARIANTS: dict[str, tuple[str, dict[str, Any], str, str, str]] = {
    "lam-bc": ("lam", {"bias_correction": True}, "LAM, bias corr.", "#ff7f0e", "--"),
    "lam-layerwise": ("lam", {"layerwise": True}, "LAM, layer-wise", "#8c564b", "-."),
}
#: colours of common phase sequences (others are grey dashes)
PHASE_STYLES: dict[str, tuple[str, str, str]] = {
    "lam+lbfgs": ("LAM then L-BFGS", "#e377c2", "-"),
    "adam+lbfgs": ("Adam then L-BFGS", "#17becf", "-"),
    "lam+lm": ("LAM then Levenberg-Marquardt", "#843c39", "-"),
}


def get(name: str) -> OptimizerInfo:
    """The registry entry of ``name`` (case-insensitive), with a one-line error naming the choices."""
    key = str(name).strip().lower()
    if key not in REGISTRY:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(REGISTRY)}, "
                         "or phases joined by '+' such as lam+lbfgs")
    return REGISTRY[key]


def parse_phases(optimizer: str | Sequence[str]) -> list[str]:
    """``"lam+lbfgs"`` (or ``["lam", "lbfgs"]``) -> ``["lam", "lbfgs"]``, validated."""
    names = optimizer.split("+") if isinstance(optimizer, str) else list(optimizer)
    names = [str(n).strip().lower() for n in names]
    if not names or not all(names):
        raise ValueError(f"unknown optimizer {optimizer!r}; choose from {', '.join(REGISTRY)}, "
                         "or phases joined by '+' such as lam+lbfgs")
    return [get(n).name for n in names]


def make_optimizer(name: str, params: Sequence[Tensor], lr: float | None, options: dict[str, Any]):
    """The optimizer ``name`` over ``params`` (``lr=None`` keeps the optimizer's default)."""
    info = get(name)
    if lr is not None and not lr > 0:
        raise ValueError(f"Invalid learning rate: {lr}")
    kwargs = dict(options)
    if lr is not None and not info.closure:
        kwargs["lr"] = lr
    return info.factory(params, **kwargs)


def split_options(phases: Sequence[str], options: dict[str, Any]) -> list[dict[str, Any]]:
    """Split ``options`` over the phases by what each optimizer accepts; one line names any
    option no phase accepts."""
    keys = [get(name).options() for name in phases]
    unused = sorted(k for k in options if not any(k in ks for ks in keys))
    if unused:
        raise ValueError(f"optimizer option(s) {', '.join(unused)} are not accepted by {'+'.join(phases)}")
    return [{k: v for k, v in options.items() if k in ks} for ks in keys]


def resolve_label(label: str) -> tuple[str, dict[str, Any]]:
    """``(optimizer, options)`` for a figure label: a variant or phases ``solve`` accepts."""
    key = label.strip().lower()
    if key in VARIANTS:
        name, options, *_ = VARIANTS[key]
        return name, dict(options)
    try:
        return "+".join(parse_phases(key)), {}
    except ValueError:
        raise ValueError(f"unknown optimizer {label!r}; choose from {', '.join(list(REGISTRY) + list(VARIANTS))} "
                         "or phases such as lam+lbfgs") from None


def display_name(label: str) -> str:
    """The legend name of an optimizer, variant or phase sequence."""
    key = label.strip().lower()
    if key in VARIANTS:
        return VARIANTS[key][2]
    if key in PHASE_STYLES:
        return PHASE_STYLES[key][0]
    if key in REGISTRY:
        return REGISTRY[key].label
    return label


def style(label: str) -> tuple[str, str]:
    """``(colour, line style)`` of an optimizer, variant or phase sequence (grey dashes if unknown)."""
    key = label.strip().lower()
    if key in VARIANTS:
        return VARIANTS[key][3], VARIANTS[key][4]
    if key in PHASE_STYLES:
        return PHASE_STYLES[key][1], PHASE_STYLES[key][2]
    if key in REGISTRY:
        return REGISTRY[key].color, REGISTRY[key].linestyle
    return "#bcbd22", "--"
