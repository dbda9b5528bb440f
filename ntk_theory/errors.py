"""One exception hierarchy for the whole toolkit.

Every error a user can provoke with bad input is a subclass of
:class:`NTKTheoryError`.  The command-line interface catches exactly this class,
prints :meth:`NTKTheoryError.cli_message` on one line to stderr and exits with status 2.

Errors that carry data expose it as attributes, and their message is built from
them: an :class:`InfeasibleError` names the ``family``, the ``bound`` that rules a
solution out, the best ``residual`` found, the ``layer`` and a ``suggestion``; any
error may name the ``option`` (a keyword argument of the public API) it is about.
Library messages speak of keyword arguments (``last_family='none'``); the CLI
renders the same error with its flags (``--last-family none``).  Every field is
keyword-optional, so ``raise ParameterError("message")`` keeps working.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

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
    "INFEASIBILITY_BOUNDS",
    "cli_flag",
]


def cli_flag(option: str, flags: Mapping[str, str] | None = None) -> str:
    """The command-line flag of a keyword argument: ``flags[option]`` or ``--`` + dashed name."""
    if flags and option in flags:
        return flags[option]
    return "--" + option.replace("_", "-")


class NTKTheoryError(Exception):
    """Base class of every error raised on purpose by ntk-theory.

    Parameters
    ----------
    message : str
        The message.  With ``option`` it is the predicate of a sentence whose subject
        is the option: ``ParameterError("must be > 0, got -1", option="tau0")`` reads
        ``tau0 must be > 0, got -1`` (``--tau0 must be …`` from the CLI).
    option : str, optional
        The keyword argument of the public API the error is about.
    hint : (str, str), optional
        ``(option, value)``: a setting that avoids the error, appended to the message as
        ``(option='value')`` (``(--option value)`` from the CLI).
    """

    def __init__(self, message: str = "", *, option: str | None = None,
                 hint: tuple[str, str] | None = None) -> None:
        self.message = message
        self.option = option
        self.hint = hint
        super().__init__(self._render(None, cli=False))

    def _render(self, flags: Mapping[str, str] | None, *, cli: bool) -> str:
        text = self.message
        if self.option is not None:
            subject = cli_flag(self.option, flags) if cli else self.option
            text = f"{subject} {text}" if text else subject
        if self.hint is not None:
            opt, value = self.hint
            text += f" ({cli_flag(opt, flags)} {value})" if cli else f" ({opt}={value!r})"
        return text

    def __str__(self) -> str:
        return self._render(None, cli=False)

    def cli_message(self, flags: Mapping[str, str] | None = None) -> str:
        """The message as the command line prints it: options named by their flags.

        ``flags`` maps an option to its flag where the flag is not ``--`` + the
        option's name with dashes.
        """
        return self._render(flags, cli=True)


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


class ResourceError(NTKTheoryError, MemoryError):
    """A request would exceed the memory or time available; refused up front.

    Memory refusals built with :meth:`memory` carry their data as fields: ``what`` (the
    request), ``needed`` and ``limit`` (bytes; ``limit`` may be None when only the need is
    known) and ``suggestion``; the message is built from them.
    """

    def __init__(self, message: str = "", *, what: str | None = None, needed: float | None = None,
                 limit: float | None = None, suggestion: str | None = None,
                 option: str | None = None, hint: tuple[str, str] | None = None) -> None:
        self.what = what
        self.needed = needed
        self.limit = limit
        self.suggestion = suggestion
        super().__init__(message, option=option, hint=hint)

    @classmethod
    def memory(cls, what: str, needed: float, limit: float | None = None, *,
               suggestion: str | None = None, option: str | None = None,
               hint: tuple[str, str] | None = None) -> ResourceError:
        """A refusal of ``what`` (e.g. ``"exact kernels for n=9000"``), which needs about
        ``needed`` bytes where ``limit`` bytes are allowed."""
        text = f"{what} would need about {needed / 2**30:.1f} GiB"
        if limit is not None:
            text += f" (limit {limit / 2**30:.0f} GiB)"
        if suggestion:
            text += f": {suggestion}"
        return cls(text, what=what, needed=needed, limit=limit, suggestion=suggestion,
                   option=option, hint=hint)


class NumericalError(NTKTheoryError, ArithmeticError):
    """A numerical method failed to reach its accuracy target."""


#: Bound names of :attr:`InfeasibleError.bound`, most specific first: a combined error
#: (``family="auto"``) reports the first of these that one of its causes names.
INFEASIBILITY_BOUNDS = (
    "odd_target",        # σ_T cannot match an odd target with E[(σ̄²)''] != 0
    "not_odd",           # an odd ternary cannot match a non-odd target
    "ternary_w2",        # an odd ternary has E[(σ̄²)''] > 0
    "cauchy_schwarz",    # δ = 0 needs τ'²m1² <= τ_L²
    "two_term_budget",   # δ = 0 needs τ'²m1² + τ'⁴m2²/2 <= τ_L²
    "no_signal",         # E[σ'] = E[σ''] = 0 with E[(σ̄²)''] != 0
    "sigma_q_slices",    # no δ = 0 root on any slice of σ_Q
    "hermite_budget",    # no root of the scale-free matching equation
)


class InfeasibleError(NTKTheoryError):
    """A compression equation has no solution; the fields name the bound ruling it out.

    Attributes
    ----------
    family : str or None
        The family that cannot match (``"auto"`` when every family of a search failed).
    bound : str or None
        The bound's short name, one of :data:`INFEASIBILITY_BOUNDS`.
    reason : str or None
        The bound explained, with the numbers that violate it.
    residual : float or None
        The best relative residual found (``None``: not measured).
    scan : str or None
        Where that residual was searched (e.g. ``over the scan z in [1e-8, 20]``).
    suggestion : str or None
        A value that works: a family name, or a value of ``option``.
    option : str or None
        The keyword argument ``suggestion`` is a value of (``None``: a family).
    note : str or None
        A remark on the suggestion (printed after it).
    remark : str or None
        A remark printed after the residual when there is no suggestion.
    layer : int or None
        The 1-based layer of a network that failed, with its ``activation`` spec.
    causes : tuple of InfeasibleError
        The failures of the families a search tried (``family="auto"``).
    """

    def __init__(self, message: str | None = None, *, family: str | None = None,
                 bound: str | None = None, reason: str | None = None, residual: float | None = None,
                 scan: str | None = None, suggestion: str | None = None, option: str | None = None,
                 note: str | None = None, remark: str | None = None, layer: int | None = None,
                 activation: str | None = None, causes: tuple[InfeasibleError, ...] = ()) -> None:
        self.family = family
        self.bound = bound
        self.reason = reason
        self.residual = None if residual is None else float(residual)
        self.scan = scan
        self.suggestion = suggestion
        self.note = note
        self.remark = remark
        self.layer = layer
        self.activation = activation
        self.causes = tuple(causes)
        super().__init__(message or "", option=option)

    @property
    def best_residual(self) -> float:
        """:attr:`residual`, or the least of the causes' residuals; NaN when unknown."""
        if self.residual is not None:
            return self.residual
        found = [c.best_residual for c in self.causes]
        found = [r for r in found if not math.isnan(r)]
        return min(found) if found else math.nan

    @property
    def bound_name(self) -> str | None:
        """:attr:`bound`, or for a search the most specific bound one of its causes names."""
        if self.bound is not None or not self.causes:
            return self.bound
        names = {c.bound_name for c in self.causes}
        return next((b for b in INFEASIBILITY_BOUNDS if b in names), None)

    def at_layer(self, layer: int, activation: str) -> InfeasibleError:
        """The same failure, located at ``layer`` (1-based) of a network of ``activation``."""
        err = InfeasibleError(self.message or None, family=self.family, bound=self.bound,
                              reason=self.reason, residual=self.residual, scan=self.scan,
                              suggestion=self.suggestion, option=self.option, note=self.note,
                              remark=self.remark, layer=layer, activation=activation,
                              causes=self.causes)
        return err

    def _render(self, flags: Mapping[str, str] | None, *, cli: bool) -> str:
        where = f"layer {self.layer} ({self.activation}): " if self.layer is not None else ""
        if self.family is None:  # a plain message
            return where + self.message
        if self.causes:
            reason = "every family failed: " + " | ".join(c._render(flags, cli=cli) for c in self.causes)
        else:
            reason = self.reason or "no solution"
        text = f"{self.family} infeasible: {reason}"
        if self.residual is not None:
            text += f"; best residual {self.residual:.3g}"
            if self.scan:
                text += f" {self.scan}"
        if self.remark:
            text += f"; {self.remark}"
        if self.suggestion:
            if self.option is None:
                works = self.suggestion
            elif cli:
                works = f"{cli_flag(self.option, flags)} {self.suggestion}"
            else:
                works = f"{self.option}={self.suggestion!r}"
            text += f"; would work: {works}" + (f" {self.note}" if self.note else "")
        return where + text
