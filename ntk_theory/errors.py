"""One exception hierarchy for the whole toolkit.

Every error a user can provoke with bad input is a subclass of
:class:`NTKTheoryError`.  The command-line interface catches exactly this class,
prints its message on one line to stderr and exits with status 2.
"""

from __future__ import annotations

__all__ = [
    "NTKTheoryError",
    "ParseError",
    "UnknownActivationError",
    "ParameterError",
    "DomainError",
    "DivergenceError",
    "InfeasibleError",
    "ResourceError",
    "NumericalError",
]


class NTKTheoryError(Exception):
    """Base class of every error raised on purpose by ntk-theory."""


class ParseError(NTKTheoryError, ValueError):
    """An activation specification or expression could not be parsed."""


class UnknownActivationError(ParseError):
    """A registry name that does not exist."""


class ParameterError(NTKTheoryError, ValueError):
    """A parameter is missing, unknown, not finite or violates a constraint."""


class DomainError(NTKTheoryError, ValueError):
    """A numerical argument lies outside its domain (e.g. ``tau <= 0``)."""


class DivergenceError(NTKTheoryError, ArithmeticError):
    """A Gaussian expectation does not exist (non-integrable growth or singularity)."""


class InfeasibleError(NTKTheoryError):
    """A compression equation has no solution; the message names the bound."""


class ResourceError(NTKTheoryError, MemoryError):
    """A request would exceed the memory or time available; refused up front."""


class NumericalError(NTKTheoryError, ArithmeticError):
    """A numerical method failed to reach its accuracy target."""
