"""The jump formula: Gaussian moments of piecewise-constant activations (docs/reference.rst §1, §6).

For a staircase σ with thresholds ``t_j``, jumps ``Δ_j`` and ``z_j = t_j/τ``:

* ``E[σ(τξ)]   = Σ_k v_k P(z_k < ξ < z_{k+1})``
* ``E[σ'(τξ)]  = (1/τ)  Σ_j Δ_j φ(z_j)``
* ``E[σ''(τξ)] = (1/τ²) Σ_j Δ_j z_j φ(z_j)``
* ``E[σ²(τξ)]  = Σ_k v_k² P(z_k < ξ < z_{k+1})``
* ``E[(σ²)''(τξ)] = (1/τ²) Σ_j Δ(σ²)_j z_j φ(z_j)``
* ``E[σ'(τξ)²] = +∞`` as soon as one jump is non-zero (a squared Dirac delta).

Interval probabilities use the complementary error function on the side of the
tail they live in, so thresholds tens of standard deviations out keep full
relative accuracy (no ``1 − Φ`` cancellation).

Two evaluators share these formulas: :func:`staircase_moments_mp` (mpmath, any
precision; used by the engine and by the compression solvers) and
:func:`staircase_moment_exprs` (SymPy closed forms in a positive symbol τ).
"""

from __future__ import annotations

from collections.abc import Callable

import mpmath as mp
import sympy as sp

from .activations import Staircase

__all__ = [
    "MOMENT_KEYS",
    "interval_probability_mp",
    "interval_probability_expr",
    "staircase_moments_mp",
    "staircase_moment_exprs",
]

#: The six moment names of docs/reference.rst §1, in canonical order.
MOMENT_KEYS: tuple[str, ...] = ("E[s]", "E[s']", "E[s'']", "E[s^2]", "E[s'^2]", "E[(s^2)'']")


def interval_probability_mp(a: mp.mpf, b: mp.mpf) -> mp.mpf:
    """``P(a < ξ < b)`` for ξ ~ N(0,1), without cancellation in either tail.

    ``a`` may be ``-inf`` and ``b`` may be ``+inf``.
    """
    r2 = mp.sqrt(2)
    if a >= 0:
        return (mp.erfc(a / r2) - (mp.erfc(b / r2) if b != mp.inf else 0)) / 2
    if b <= 0:
        return (mp.erfc(-b / r2) - (mp.erfc(-a / r2) if a != -mp.inf else 0)) / 2
    left = mp.erfc(-a / r2) / 2 if a != -mp.inf else mp.mpf(0)
    right = mp.erfc(b / r2) / 2 if b != mp.inf else mp.mpf(0)
    return 1 - left - right


def _phi_mp(z: mp.mpf) -> mp.mpf:
    return mp.exp(-z * z / 2) / mp.sqrt(2 * mp.pi)


def staircase_moments_mp(stair: Staircase, tau: mp.mpf | float) -> dict[str, mp.mpf]:
    """The six moments of a staircase at scale ``tau``, at the current mpmath precision.

    Returns a dict keyed by :data:`MOMENT_KEYS`; ``E[s'^2]`` is ``mp.inf`` when the
    staircase has a jump and ``0`` for a constant function.
    """
    tau = mp.mpf(tau)
    z = [mp.mpf(t) / tau for t in stair.thresholds]
    edges = [-mp.inf, *z, mp.inf]
    probs = [interval_probability_mp(edges[k], edges[k + 1]) for k in range(len(stair.levels))]
    lv = [mp.mpf(v) for v in stair.levels]
    dens = [_phi_mp(zj) for zj in z]
    jumps = [lv[k + 1] - lv[k] for k in range(len(z))]
    sq_jumps = [lv[k + 1] ** 2 - lv[k] ** 2 for k in range(len(z))]
    return {
        "E[s]": mp.fsum(v * p for v, p in zip(lv, probs)),
        "E[s']": mp.fsum(d * f for d, f in zip(jumps, dens)) / tau,
        "E[s'']": mp.fsum(d * zj * f for d, zj, f in zip(jumps, z, dens)) / tau**2,
        "E[s^2]": mp.fsum(v * v * p for v, p in zip(lv, probs)),
        "E[s'^2]": mp.inf if any(d != 0 for d in jumps) else mp.mpf(0),
        "E[(s^2)'']": mp.fsum(d * zj * f for d, zj, f in zip(sq_jumps, z, dens)) / tau**2,
    }


def interval_probability_expr(a: sp.Expr, b: sp.Expr, sign_a: int, sign_b: int) -> sp.Expr:
    """SymPy form of ``P(a < ξ < b)``; ``sign_a``/``sign_b`` are the signs of the bounds.

    The form is chosen by the bounds' signs (known from numeric thresholds, τ > 0)
    so that the expression evaluates without cancellation in the tails.
    """
    r2 = sp.sqrt(2)

    def up(v: sp.Expr) -> sp.Expr:  # P(ξ > v)
        return sp.S.Zero if v == sp.oo else sp.erfc(v / r2) / 2

    def low(v: sp.Expr) -> sp.Expr:  # P(ξ < v)
        return sp.S.Zero if v == -sp.oo else sp.erfc(-v / r2) / 2

    if sign_a >= 0 and a != -sp.oo:
        return up(a) - up(b)
    if sign_b <= 0 and b != sp.oo:
        return low(b) - low(a)
    return 1 - low(a) - up(b)


def staircase_moment_exprs(stair: Staircase, tau: sp.Symbol) -> dict[str, sp.Expr]:
    """Closed forms in ``tau`` of the six moments of a staircase (exact rationals).

    The thresholds' signs fix which tail form each probability takes; the
    expressions are valid for every ``tau > 0``.
    """
    conv: Callable[[float], sp.Expr] = lambda v: sp.Rational(repr(float(v)))  # noqa: E731
    ts = [conv(t) for t in stair.thresholds]
    lv = [conv(v) for v in stair.levels]
    z = [t / tau for t in ts]
    signs = [int(sp.sign(t)) for t in ts]
    edges = [(-sp.oo, -1), *zip(z, signs), (sp.oo, 1)]
    probs = [
        interval_probability_expr(edges[k][0], edges[k + 1][0], edges[k][1], edges[k + 1][1])
        for k in range(len(lv))
    ]
    phi = lambda v: sp.exp(-v**2 / 2) / sp.sqrt(2 * sp.pi)  # noqa: E731
    jumps = [lv[k + 1] - lv[k] for k in range(len(z))]
    sq_jumps = [lv[k + 1] ** 2 - lv[k] ** 2 for k in range(len(z))]
    return {
        "E[s]": sp.Add(*[v * p for v, p in zip(lv, probs)]),
        "E[s']": sp.Add(*[d * phi(zj) for d, zj in zip(jumps, z)]) / tau,
        "E[s'']": sp.Add(*[d * zj * phi(zj) for d, zj in zip(jumps, z)]) / tau**2,
        "E[s^2]": sp.Add(*[v * v * p for v, p in zip(lv, probs)]),
        "E[s'^2]": sp.oo if any(d != 0 for d in jumps) else sp.S.Zero,
        "E[(s^2)'']": sp.Add(*[d * zj * phi(zj) for d, zj in zip(sq_jumps, z)]) / tau**2,
    }
