"""pinn-lam: physics-informed neural networks trained with LAM (Layer-wise Adaptive Moments).

Importing the package sets no global state; heavier pieces load on first use.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it (loaded lazily, so `import pinn_lam` stays cheap)
_LAZY = {
    "LAM": "optim",
    "lam": "optim",
    "MLP": "models",
    "Problem": "problem",
    "Condition": "problem",
    "Reference": "problem",
    "solve": "solve",
    "Result": "solve",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
