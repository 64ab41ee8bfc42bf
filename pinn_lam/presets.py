"""Per-problem training defaults, and the ``"quick"`` preset for demos and smoke tests.

Every option of :func:`pinn_lam.solve.solve` left at ``None`` takes its value from
:func:`resolve`: first the problem's defaults (:data:`DEFAULTS` merged with
:data:`PROBLEM_DEFAULTS`), then the named preset's overrides (:data:`PRESETS`), then whatever
the caller set explicitly. The defaults are what the accuracy targets in ``docs/solve.md``
were measured with (``python -m pinn_lam.benchmarks.accuracy``).
"""
from __future__ import annotations

from typing import Any

#: defaults shared by every problem
DEFAULTS: dict[str, Any] = {
    "optimizer": "lam+lbfgs",
    "iterations": [2000, 2000],
    "lr": 1e-3,
    "lr_decay": 0.1,
    "width": 32,
    "depth": 4,
    "activation": "tanh",
    "n_collocation": 4096,
    "n_boundary": 256,
    "sampler": "sobol",
    "resample_every": None,
    "adaptive_every": None,
    "adaptive_pool": 65536,
    "hard_constraints": True,
    "dtype": "float64",
    "eval_every": 100,
    "checkpoint_every": 500,
    "weights": None,
}

#: problem name -> overrides of :data:`DEFAULTS`
PROBLEM_DEFAULTS: dict[str, dict[str, Any]] = {
    "heat": {"iterations": [1000, 1000], "width": 32, "depth": 3},
    "poisson": {"iterations": [1000, 1000], "width": 32, "depth": 3},
    "burgers": {"iterations": [3000, 4000], "width": 32, "depth": 5, "n_collocation": 8192},
}

#: preset name -> overrides applied on top of the problem defaults
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"iterations": [500, 300], "n_collocation": 1024, "width": 24, "depth": 3,
              "eval_every": 50, "checkpoint_every": 200},
}

#: per-problem overrides of a preset (applied after :data:`PRESETS`)
PROBLEM_PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("burgers", "quick"): {"iterations": [800, 600], "n_collocation": 2048, "width": 32, "depth": 3},
}


def resolve(problem: str, preset: str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings for ``problem`` under ``preset`` with explicit ``overrides`` (``None`` values
    in ``overrides`` mean "use the default")."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
    settings = dict(DEFAULTS)
    settings.update(PROBLEM_DEFAULTS.get(problem, {}))
    if preset is not None:
        settings.update(PRESETS[preset])
        settings.update(PROBLEM_PRESETS.get((problem, preset), {}))
    for key, value in (overrides or {}).items():
        if value is not None:
            settings[key] = value
    return settings
