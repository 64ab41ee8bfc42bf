"""From a problem and options to what the trainer runs: resolved settings, the network, the
points and the loss.

* :func:`make_problem`: a problem object from a library name, a ``file.py:name`` of a script,
  or the object itself;
* :func:`configure`: every setting resolved (defaults, preset, explicit options) and validated;
* :func:`build`: the network (one output per problem output, the problem's unknowns as
  ``model.unknowns``), the point sampler and the loss.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pinn_lam.nn.networks import parse_network
from pinn_lam.optim import registry
from pinn_lam.optim.registry import parse_phases
from pinn_lam.pde.problem import Problem
from pinn_lam.pde.spec import ProblemSpec, describe
from pinn_lam.training import presets
from pinn_lam.training.loss import PINNLoss, loss_terms
from pinn_lam.training.models import make_model
from pinn_lam.training.sampling import PointSampler
from pinn_lam.training.weighting import LossWeighting, parse_weighting
from pinn_lam.training.trainer import split_iterations


def default_device() -> str:
    """``"cuda"`` when a CUDA device is present, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _dtype(value) -> torch.dtype:
    names = {"float32": torch.float32, "float64": torch.float64, "double": torch.float64, "float": torch.float32}
    if isinstance(value, torch.dtype) and value in (torch.float32, torch.float64):
        return value
    if str(value) in names:
        return names[str(value)]
    raise ValueError(f"unknown dtype {value!r}; choose float32 or float64")


def _device(value) -> torch.device:
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {value!r}; use cpu, cuda or cuda:N") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {value!r} requested but CUDA is not available; use device='cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {value!r} does not exist; this machine has {torch.cuda.device_count()} "
                         f"CUDA device(s): cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return device


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def make_problem(problem: str | Problem, params: dict[str, Any] | None = None) -> Problem:
    """A problem object from a library name (built with ``params``), a ``path/to/script.py:name``
    naming a :class:`Problem` (or a function returning one, called with ``params``) in a script,
    or the object itself."""
    if isinstance(problem, Problem):
        if params:
            raise ValueError("params can only be given with a problem name, not a problem object")
        return problem
    if isinstance(problem, str) and ".py:" in problem:
        return _from_script(problem, params)
    if not isinstance(problem, str):
        raise ValueError(f"problem must be a name, 'script.py:name' or a Problem object, got {type(problem).__name__}")
    import problems

    return problems.get(problem, **(params or {}))


def _from_script(spec: str, params: dict[str, Any] | None) -> Problem:
    path, _, name = spec.rpartition(":")
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"no script {path} (from {spec!r}; give 'path/to/script.py:name')")
    module_spec = importlib.util.spec_from_file_location(f"pinn_lam_user_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, name):
        raise ValueError(f"{path} defines no {name!r}")
    value = getattr(module, name)
    if isinstance(value, type) and issubclass(value, Problem) or (callable(value) and not isinstance(value, Problem)):
        value = value(**(params or {}))
    elif params:
        raise ValueError(f"{spec} is a problem object; params need a class or a function")
    if not isinstance(value, Problem):
        raise ValueError(f"{spec} is a {type(value).__name__}, not a Problem")
    return value


def configure(problem: Problem, preset: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """Resolve every setting (presets, then explicit options) and validate it."""
    explicit_iterations = options.get("iterations") is not None
    config = presets.resolve(problem, preset, options)
    phases = parse_phases(config["optimizer"])
    iterations = config["iterations"]
    if not explicit_iterations and not isinstance(iterations, int) and len(iterations) != len(phases):
        iterations = sum(iterations)  # the preset's budget, split over the requested phases
    config["optimizer"] = "+".join(phases)
    config["iterations"] = split_iterations(iterations, phases)
    for name in ("width", "depth", "n_collocation", "n_boundary", "adaptive_pool"):
        config[name] = _positive_int(name, config[name])
    for name in ("eval_every", "checkpoint_every", "resample_every", "adaptive_every"):
        if config[name] is not None:
            config[name] = _positive_int(name, config[name])
    if config["time_limit"] is not None and not float(config["time_limit"]) > 0:
        raise ValueError(f"time_limit must be positive seconds, got {config['time_limit']!r}")
    config["lr"] = float(config["lr"])
    if not config["lr"] > 0 or not math.isfinite(config["lr"]):
        raise ValueError(f"Invalid learning rate: {config['lr']} (must be positive and finite)")
    config["network"] = None if parse_network(config.get("network")).plain else config["network"]
    weighting = parse_weighting(config.get("weighting"))
    config["weighting"] = None if weighting.fixed else config["weighting"]
    if weighting.causal is not None and any(registry.get(name).residuals for name in phases):
        raise ValueError(f"causal weighting needs first-order or L-BFGS phases, not {config['optimizer']!r} "
                         "(a least-squares phase builds its Jacobian without the causal weights)")
    config["dtype"] = str(_dtype(config["dtype"])).removeprefix("torch.")
    config["device"] = str(_device(config.get("device") or default_device()))
    config["problem"], config["params"] = problem.name, problem.parameters()
    return config


def build(problem: Problem, config: dict[str, Any], spec: ProblemSpec | None = None):
    """The model, sampler and loss for a resolved ``config`` (see :func:`configure`)."""
    spec = spec or describe(problem)
    transform = problem.output_transform() if config["hard_constraints"] else None
    generator = torch.Generator().manual_seed(int(config["seed"]))
    model = make_model(problem, spec, config, transform, generator)
    if problem.unknowns:
        model.unknowns = nn.ParameterDict({k: nn.Parameter(torch.tensor(float(v))) for k, v in problem.unknowns.items()})
    device, dtype = torch.device(config["device"]), _dtype(config["dtype"])
    model = model.to(device=device, dtype=dtype)
    sampler = PointSampler(problem, ("pde",) + tuple(t for t in loss_terms(problem, model, spec) if t in spec.conditions),
                           n_collocation=config["n_collocation"], n_boundary=config["n_boundary"],
                           method=config["sampler"], seed=int(config["seed"]))
    points = {k: torch.as_tensor(v, device=device, dtype=dtype) for k, v in sampler.sample().items()}
    loss = PINNLoss(problem, model, points, weights=config["weights"], fast=config["fast"], spec=spec)
    if not parse_weighting(config.get("weighting")).fixed:
        LossWeighting(config["weighting"]).attach(loss)
    return model, sampler, loss
