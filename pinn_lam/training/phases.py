"""A run's phases and what a callback sees: :class:`Phase` (an optimizer, its iterations and
options), :func:`split_iterations` and :class:`TrainState`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from torch import nn


def split_iterations(iterations: int | Sequence[int], phases: Sequence[str]) -> list[int]:
    """Iterations per phase: a list is taken as is; an int is split evenly, remainder to the first."""
    if isinstance(iterations, (int, np.integer)) and not isinstance(iterations, bool):
        per, extra = divmod(int(iterations), len(phases))
        counts = [per + (extra if k == 0 else 0) for k in range(len(phases))]
    else:
        counts = [int(n) for n in iterations]
        if len(counts) != len(phases):
            raise ValueError(f"got {len(counts)} iteration counts for {len(phases)} phases ({'+'.join(phases)})")
    if any(n < 1 for n in counts):
        raise ValueError(f"iterations must be positive for every phase, got {counts} for {'+'.join(phases)}")
    return counts


@dataclass
class Phase:
    """One optimizer phase: its name, iterations, learning rate and extra optimizer options."""

    optimizer: str
    iterations: int
    lr: float | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainState:
    """What ``callback(state)`` sees after every step (after every chunk for L-BFGS)."""

    iteration: int
    phase: str
    phase_index: int
    model: nn.Module
    loss: Any  # the run's PINNLoss
    optimizer: Any
    elapsed: float
    total: int
    values: dict[str, float]
    rel_l2: float | None
    time_limit: float | None = None
