r"""Guards around the training loop: divergence detection and stop signals.

**Divergence.** A loss that stays finite can still explode (a learning rate far too large sends
it to :math:`10^{29}`). With :math:`L_i` the loss logged at iteration :math:`i`,
:math:`L^\ast_i = \min_{j \le i} L_j` its best so far and :math:`L_0` the first loss the run
logged, iteration :math:`i` is *above bounds* when

.. math::
    L_i > \max\bigl(F\,L^\ast_i,\ L_0\bigr),

and the run has diverged when the loss has been above bounds at every logged iteration of a
stretch of at least :math:`P` iterations (``factor`` :math:`F = 10^4`, ``patience``
:math:`P = 50`). The second bound keeps legitimate jumps quiet: resampling and residual-based
redraws can raise a small loss by orders of magnitude, but not above the untrained network's.

**Signals.** :class:`StopSignals` turns SIGINT and SIGTERM into a request that the trainer polls
after every step, so the checkpoint it then writes holds a consistent state (never a half-done
step); a second signal of the same kind restores the default handling and re-delivers itself.
"""
from __future__ import annotations

import math
import signal
import threading
from dataclasses import dataclass
from typing import Any

#: the conventional exit status of a process stopped by a signal: 128 + its number
SIGNAL_EXIT_BASE = 128


@dataclass
class DivergenceGuard:
    """Watches the logged losses for divergence (see the module docstring for the rule)."""

    factor: float = 1e4
    patience: int = 50
    first: float | None = None
    best: float | None = None
    best_iteration: int | None = None
    above_since: int | None = None

    def __post_init__(self) -> None:
        if not self.factor > 1:
            raise ValueError(f"divergence factor must be above 1, got {self.factor!r}")
        if self.patience < 1:
            raise ValueError(f"divergence patience must be a positive number of iterations, got {self.patience!r}")

    def bound(self) -> float:
        """The loss above which an iteration counts toward divergence (``inf`` before any loss)."""
        if self.best is None:
            return math.inf
        return max(self.factor * self.best, self.first)

    def update(self, iteration: int, loss: float) -> bool:
        """Record the finite ``loss`` logged at ``iteration``; return whether the run has diverged."""
        if self.first is None:
            self.first = loss
        if loss > self.bound():
            if self.above_since is None:
                self.above_since = iteration
            return iteration - self.above_since >= self.patience
        self.above_since = None
        if self.best is None or loss < self.best:
            self.best, self.best_iteration = loss, iteration
        return False

    @property
    def suspicious(self) -> bool:
        """Whether the latest loss was above bounds (a checkpoint then would not be a good one)."""
        return self.above_since is not None

    def describe(self, iteration: int, loss: float) -> str:
        """Why the run counts as diverged, for the error message."""
        return (f"loss {loss:.3e} has stayed above {self.bound():.3e} (the larger of {self.factor:g} x its best "
                f"{self.best:.3e} at iteration {self.best_iteration} and its first {self.first:.3e}) "
                f"since iteration {self.above_since}")

    def state_dict(self) -> dict[str, Any]:
        return {"first": self.first, "best": self.best, "best_iteration": self.best_iteration,
                "above_since": self.above_since}

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        for key, value in (state or {}).items():
            setattr(self, key, value)


class StopSignals:
    """Context manager that records SIGINT/SIGTERM instead of dying at once.

    >>> with StopSignals() as signals:                 # doctest: +SKIP
    ...     solve("heat", stop_requested=signals.requested)

    Outside the main thread (where Python cannot install handlers) it records nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, number: int, frame) -> None:
        if self.received == number:  # asked twice: stop now, the default way
            signal.signal(number, self._previous.get(number, signal.SIG_DFL))
            signal.raise_signal(number)
            return
        self.received = number

    def requested(self) -> int | None:
        """The number of the signal received, or ``None``."""
        return self.received

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()


def signal_name(number: int) -> str:
    """``"SIGINT"`` for 2, and so on."""
    return signal.Signals(number).name


def exit_status(number: int) -> int:
    """The shell's status for a process stopped by signal ``number`` (130 for SIGINT, 143 for SIGTERM)."""
    return SIGNAL_EXIT_BASE + number
