"""Per-problem training defaults, the ``"quick"`` preset for demos and smoke tests, and the
``"sprint"`` preset for the shortest time to a relative error of 1e-3, and the ``"accurate"``
preset for the lowest error (LAM, then Levenberg-Marquardt on a small float64 network).

Every option of :func:`pinn_lam.training.solve.solve` left at ``None`` takes its value from
:func:`resolve`: first the problem's defaults (:data:`DEFAULTS` merged with the problem's own
``defaults``), then the named preset's overrides (:data:`PRESETS`, then the problem's own
``presets``), then whatever the caller set explicitly. The defaults are what the accuracy targets in ``docs/solve.md``
were measured with (``python -m pinn_lam.benchmarks.accuracy``).

``"sprint"`` trains in float32 (about half the cost of an iteration on a CPU; the trainer
continues in float64 by itself if an L-BFGS line search fails in float32) and, on Burgers, with
the defaults' network and points but a shorter L-BFGS budget (see ``docs/solve.md``). Like the
defaults it is a budget of iterations with no time limit, so a seed gives the same run on every
machine; how fast it reaches 1e-3 is measured with ``pinn-lam bench train burgers --accuracy
--preset sprint``.
"""
from __future__ import annotations

from typing import Any

#: defaults shared by every problem
DEFAULTS: dict[str, Any] = {
    "optimizer": "lam+lbfgs",
    "iterations": [1000, 3000],
    "lr": 1e-2,
    "lr_decay": 0.1,
    "width": 32,
    "depth": 4,
    "activation": "tanh",
    "n_collocation": 2048,
    "n_boundary": 256,
    "sampler": "sobol",
    "resample_every": None,
    "adaptive_every": None,
    "adaptive_pool": 65536,
    "hard_constraints": True,
    "dtype": "float64",
    "eval_every": 250,
    "checkpoint_every": 500,
    "time_limit": None,
    "weights": None,
    "network": None,  # the plain MLP (pinn_lam.nn.networks.parse_network)
    "weighting": None,  # fixed weights (pinn_lam.training.weighting.parse_weighting)
}

#: preset name -> overrides applied on top of the problem defaults
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"iterations": [300, 500], "n_collocation": 1024, "width": 20, "depth": 3,
              "eval_every": 50, "checkpoint_every": 200, "time_limit": 300.0},
    # float32 halves the cost of an iteration; no time limit (an iteration budget only)
    "sprint": {"dtype": "float32", "eval_every": 50, "checkpoint_every": 1000},
    # the lowest error: LAM to a basin, then Levenberg-Marquardt on a small float64 network
    # (its cost per step grows with the parameters squared); see docs/optimizers.md
    "accurate": {"optimizer": "lam+lm", "iterations": [300, 700], "width": 20, "depth": 3, "n_collocation": 2048,
                 "dtype": "float64", "eval_every": 50, "checkpoint_every": 100},
}

def resolve(problem, preset: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings for ``problem`` (a :class:`~pinn_lam.pde.problem.Problem`, a library
    problem's name, or ``"script.py:name"``) under ``preset`` with explicit ``overrides`` (``None`` values in ``overrides``
    mean "use the default"): :data:`DEFAULTS`, then the problem's own ``defaults``, then the
    preset's overrides and the problem's overrides of that preset, then ``overrides``."""
    if isinstance(problem, str):
        from pinn_lam.training.setup import make_problem

        problem = make_problem(problem)
    own_presets = dict(getattr(problem, "presets", {}) or {})
    if preset is not None and preset not in PRESETS and preset not in own_presets:
        raise ValueError(f"unknown preset {preset!r}; available: {', '.join(dict.fromkeys([*PRESETS, *own_presets]))}")
    settings = dict(DEFAULTS)
    settings.update(getattr(problem, "defaults", {}) or {})
    if preset is not None:
        settings.update(PRESETS.get(preset, {}))
        settings.update(own_presets.get(preset, {}))
    for key, value in (overrides or {}).items():
        if value is not None:
            settings[key] = value
    return settings
