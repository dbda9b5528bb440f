"""The centering identities of docs/reference.rst §1 ("Centering"), for any number type.

With ``σ̄ = σ − E[σ(τξ)]`` (a constant shift):

* ``Var σ(τξ) = E[σ²] − E[σ]²``;
* ``w̄2 = E[(σ̄²)''] = E[(σ²)''] − 2 E[σ] E[σ'']`` (``(σ − c)² = σ² − 2cσ + c²``, and the
  constant has no second derivative).

Plain arithmetic, so the same function serves floats, NumPy arrays, mpmath numbers and
SymPy expressions (closed forms stay symbolic).
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["centered_w2", "centered_variance"]

T = TypeVar("T")


def centered_w2(w2: T, m0: T, m2: T) -> T:
    """``w̄2 = w2 − 2·m0·m2``: ``E[(σ̄²)'']`` from ``E[(σ²)'']``, ``E[σ]`` and ``E[σ'']``."""
    return w2 - 2 * m0 * m2  # type: ignore[operator]


def centered_variance(v0: T, m0: T) -> T:
    """``Var σ = v0 − m0²`` from ``E[σ²]`` and ``E[σ]``."""
    return v0 - m0 * m0  # type: ignore[operator]
