"""Exceptions that the command line turns into a one-line message instead of a traceback."""


class PinnLamError(Exception):
    """Base class of pinn-lam's own errors."""


class NonFiniteLossError(PinnLamError):
    """Training produced a NaN or infinite loss; the message names the iteration and loss term."""


class ProblemError(PinnLamError, ValueError):
    """A problem definition is wrong; the message names the part at fault (an equation, a
    condition, the reference, a data file) and what is allowed."""
