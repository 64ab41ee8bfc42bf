"""Exceptions that the command line turns into a one-line message instead of a traceback."""


class PinnLamError(Exception):
    """Base class of pinn-lam's own errors."""


class DivergenceError(PinnLamError):
    """Training diverged; the message names the iteration, the loss term and the last good checkpoint."""


class NonFiniteLossError(DivergenceError):
    """Training produced a NaN or infinite loss; the message names the iteration and loss term."""


class TrainingInterrupted(PinnLamError):
    """A signal (SIGINT, SIGTERM) stopped training after a checkpoint of the current state.

    Attributes: ``signal_number``, ``iteration`` and ``checkpoint`` (the path, or ``None``).
    """

    def __init__(self, message: str, signal_number: int, iteration: int, checkpoint=None) -> None:
        super().__init__(message)
        self.signal_number, self.iteration, self.checkpoint = signal_number, iteration, checkpoint


class RunFolderError(PinnLamError):
    """An output folder holds another run's files or is in use by another process."""


class ProblemError(PinnLamError, ValueError):
    """A problem definition is wrong; the message names the part at fault (an equation, a
    condition, the reference, a data file) and what is allowed."""
