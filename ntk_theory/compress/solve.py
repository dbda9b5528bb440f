"""Per-layer α-matching solvers (docs/reference.rst §6), in mpmath.

Given the dense layer's ``(m1, m2, w̄2)`` (at the dense input scale) and the
compressed network's own input scale τ', find a quantized activation whose
``m1², m2², w̄2`` at τ' are the same.  Work in scale-free coordinates ``z = s/τ'``
with the targets ``(A1, A2, W) = (τ'²m1², τ'⁴m2², τ'²w̄2)`` (all in units of σ²):

* the amplitudes enter ``A1, A2`` quadratically through linear forms and ``W``
  through a quadratic form, so they are eliminated analytically;
* ``ternary``, ``three_level`` and ``staircase:K`` then reduce to **one** equation
  in one shape parameter, solved by a sign-change scan and a bracketing root
  finder (``mpmath.findroot``, Anderson–Björck);
* ``sigma_T`` is a square 3×3 system in ``(z1, z2, a²)``, solved by multidimensional
  Newton (``mpmath.findroot`` with the analytic Jacobian) from the local minima of
  the residual on a fixed grid — structured, deterministic starting points.

When several exact solutions exist, the one with the **smallest output variance**
is returned: it inflates the compressed network's scale least (docs/reference.rst §6,
Cauchy–Schwarz), which keeps δ and the later layers' targets smallest.

Every result is re-evaluated from float64-rounded parameters (or the mpmath
parameters when ``digits > 15``) at high precision, and its relative residual
must be ≤ 1e−12 (resp. ``10^(5−digits)``) or :class:`NumericalError` is raised.
When no solution exists :class:`InfeasibleError` names the bound ruling it out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import mpmath as mp
import numpy as np
from scipy import special as sps

from ..activations import Activation
from ..errors import DomainError, InfeasibleError, NumericalError, ParameterError
from .families import (
    AUTO_ORDER,
    AlphaTargets,
    Family,
    SigmaQFamily,
    SigmaTFamily,
    StaircaseKFamily,
    SymmetricQuantizer,
    TernaryFamily,
    ThreeLevelFamily,
    parse_family,
    stair_moments_mp,
)

__all__ = ["LayerFit", "solve_alpha", "solve_auto", "relative_residuals", "residual_tolerance"]

#: A target below this fraction of the largest one counts as an exact zero.
_ZERO = 1e-20
_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class LayerFit:
    """One solved compressed layer.

    Attributes
    ----------
    family : str
        Family name (``sigma_T``, ``ternary``, ...).
    params : dict
        Registry parameters of the activation, in absolute (not scale-free) units.
    tau_in : float
        The compressed network's input scale τ' at which the moments were matched.
    targets, achieved : dict
        ``{"m1^2", "m2^2", "w2_bar"}`` of the dense layer and of the solution at τ'.
    residuals : dict
        Relative residual of every equation.
    max_rel_residual : float
    mean, variance : float
        ``E[σ(τ'ξ)]`` (the centering constant) and ``Var σ(τ'ξ) = τ'_ℓ²``.
    activation : Activation
        The registry activation (uncentered).
    exact_params : dict
        Parameters as decimal strings at the working precision (``digits > 15``).
    """

    family: str
    params: dict[str, Any]
    tau_in: float
    targets: dict[str, float]
    achieved: dict[str, float]
    residuals: dict[str, float]
    max_rel_residual: float
    mean: float
    variance: float
    activation: Activation = field(repr=False, compare=False)
    exact_params: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def residual_tolerance(digits: int) -> float:
    """Required relative residual: 1e−12 in float64, ``10^(5−digits)`` at higher precision."""
    return 1e-12 if digits <= 15 else 10.0 ** (5 - digits)


def _dps(digits: int) -> int:
    return max(30, digits + 15)


def relative_residuals(stair: Any, tau: Any, targets: AlphaTargets) -> tuple[dict[str, float], dict[str, float]]:
    """Achieved ``(m1², m2², w̄2)`` and per-equation relative residuals, in mpmath.

    Residuals compare ``(τ²m1², τ⁴m2², τ²w̄2)`` (same units); a target that is
    zero (e.g. ``m2`` of an odd activation) is compared with the largest target.
    """
    tau = mp.mpf(tau)
    m = stair_moments_mp(stair, tau)
    A = targets.scaled(tau)
    A = tuple(mp.mpf(a) for a in A)
    got = (tau**2 * m.m1**2, tau**4 * m.m2**2, tau**2 * m.w2_bar)
    D = max(abs(a) for a in A)
    keys = ("m1^2", "m2^2", "w2_bar")
    res = {}
    for k, g, a in zip(keys, got, A):
        den = abs(a) if abs(a) > _ZERO * D else D
        res[k] = float(abs(g - a) / den) if den > 0 else float(abs(g))
    achieved = {"m1^2": float(m.m1**2), "m2^2": float(m.m2**2), "w2_bar": float(m.w2_bar)}
    return achieved, res


def _sign(x: float) -> int:
    return -1 if x < 0 else 1


# --------------------------------------------------------------------------- #
# 1-D families: ternary, three_level, staircase:K
# --------------------------------------------------------------------------- #
def _solve_symmetric(q: SymmetricQuantizer, A1: mp.mpf, A2: mp.mpf, W: mp.mpf,
                     odd_only: bool, fam_name: str) -> list[tuple[mp.mpf, mp.mpf, mp.mpf, mp.mpf]]:
    """All roots ``(z, u, v, variance)`` of ``A1 Wo/G1² + A2 We/G2² = W`` (see SymmetricQuantizer).

    Raises InfeasibleError with the best residual when none exists.
    """
    D = max(A1, A2, abs(W))
    use1 = A1 > _ZERO * D
    use2 = (A2 > _ZERO * D) and not odd_only
    if not use1 and not use2:
        raise InfeasibleError(
            family=fam_name, bound="no_signal",
            reason=(f"the targets need E[σ'] = E[σ''] = 0 with E[(σ̄²)''] = {float(W):.3g} != 0, "
                    "which no staircase with these parts reaches"),
            residual=1.0,
            remark="a dense layer without first- and second-order signal cannot be α-matched by any family")
    A1f, A2f, Wf, Df = float(A1), float(A2), float(W), float(D)
    cmax = max(abs(c) for c in q.offsets)
    grid = np.geomspace(1e-8, 30.0 / cmax, 600)
    G1, G2, Wo, We, _, _ = q.parts_np(grid)
    with np.errstate(all="ignore"):
        F = -Wf * np.ones_like(grid)
        if use1:
            F = F + A1f * Wo / (G1 * G1)
        if use2:
            F = F + A2f * We / (G2 * G2)
        F = F / Df
    ok = np.isfinite(F)

    def f_mp(z: mp.mpf) -> mp.mpf:
        g1, g2, wo, we, _, _ = q.parts_mp(z)
        val = -W
        if use1:
            val += A1 * wo / g1**2
        if use2:
            val += A2 * we / g2**2
        return val / D

    brackets = []
    for i in range(len(grid) - 1):
        if ok[i] and ok[i + 1] and (F[i] == 0 or F[i] * F[i + 1] < 0):
            brackets.append((grid[i], grid[i + 1]))
    roots: list[mp.mpf] = []
    for a, b in brackets:
        try:
            z = mp.findroot(f_mp, (mp.mpf(a), mp.mpf(b)), solver="anderson")
        except (ValueError, ZeroDivisionError):
            continue
        if a * 0.999 <= z <= b * 1.001 and abs(f_mp(z)) < mp.mpf(10) ** (-(mp.mp.dps - 8)):
            roots.append(z)
    if not roots:
        best = float(np.nanmin(np.abs(F[ok]))) if ok.any() else 1.0
        bound, reason = _symmetric_bound(fam_name, odd_only, Wf, A1f)
        raise InfeasibleError(family=fam_name, bound=bound, reason=reason, residual=best,
                              scan=f"over the scan z in [1e-8, {30.0 / cmax:g}]",
                              suggestion=_suggest_after(fam_name))
    out = []
    for z in roots:
        g1, g2, _, _, vo, ve = q.parts_mp(z)
        u = mp.sqrt(A1) / g1 if use1 else mp.mpf(0)
        v = mp.sqrt(A2) / g2 if use2 else mp.mpf(0)
        out.append((z, u, v, u * u * vo + v * v * ve))
    return out


def _symmetric_bound(fam_name: str, odd_only: bool, W: float, A1: float) -> tuple[str, str]:
    """``(bound, reason)`` of a symmetric family without a root (InfeasibleError fields)."""
    if odd_only and W <= 0:
        return "ternary_w2", ("an odd ternary has E[(σ̄²)''] = 2b²zφ(z)/τ² > 0, but the target "
                              f"τ²w̄2 = {W:.3g} <= 0")
    return "hermite_budget", ("no root of the scale-free matching equation A1·Wo/G1² + A2·We/G2² = W "
                              "(Hermite budget: the staircase's variance is spread over all Hermite orders)")


def _suggest_after(fam_name: str) -> str:
    if fam_name == "ternary":
        return "three_level"
    if fam_name == "sigma_T":
        return "three_level"
    if fam_name == "three_level":
        return "staircase:4"
    if fam_name.startswith("staircase:"):
        return f"staircase:{int(fam_name.split(':')[1]) + 1}"
    return "three_level"


# --------------------------------------------------------------------------- #
# sigma_T: the matching curve, one bracketed equation along it, mpmath polish
# --------------------------------------------------------------------------- #
def local_minima_mask(R: np.ndarray) -> np.ndarray:
    """Finite entries of a 2-D array that are ≤ all 8 neighbours (edges padded with +inf)."""
    n0, n1 = R.shape
    P = np.pad(R, 1, constant_values=np.inf)
    is_min = np.isfinite(R)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                is_min &= R <= P[1 + di:1 + di + n0, 1 + dj:1 + dj + n1]
    return is_min


#: Gaps ``d = z2 − z1`` of the σ_T curve scan: log-spaced from 1e−9 to the float64 tail.
_SIGMA_T_GAP_MIN = 1e-9
_SIGMA_T_GRID = 400
#: Below this ``A1/A2`` (|ρ| > 1e4) the σ_T roots are seeded from the symmetric curve.
_SIGMA_T_SYMMETRIC = 1e-8
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _sigma_t_inner_u(d: np.ndarray, rho: float, iters: int = 64) -> np.ndarray:
    """``u = z1 − ρ > 0`` on the positive branch of the σ_T matching curve, for gaps ``d > 0``.

    The curve is ``(z1 − ρ)φ(z1) = (z2 − ρ)φ(z2)``; with ``z2 = z1 + d`` and ``u = z1 − ρ``
    it reads ``G(u) = log1p(d/u)/d − ρ − u − d/2 = 0`` (no cancellation at any gap).  ``G``
    decreases strictly from +∞ at ``u → 0`` and ``G(u_max) < 0`` at
    ``u_max = (√((ρ + d/2)² + 4) − (ρ + d/2))/2`` because ``log1p(x) < x``: one root,
    found by vectorized bisection in ``log u`` on ``[e^−690, u_max]`` (64 halvings of a
    width ≤ 700 reach float64 resolution).
    """
    d = np.asarray(d, dtype=float)
    b = rho + d / 2
    root = np.sqrt(b * b + 4)
    hi = np.log(np.where(b > 0, 2.0 / (root + b), (root - b) / 2))  # both forms cancellation-free
    lo = np.full_like(d, -690.0)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        u = np.exp(mid)
        pos = np.log1p(d / u) / d - b - u > 0
        lo = np.where(pos, mid, lo)
        hi = np.where(pos, hi, mid)
    return np.exp(0.5 * (lo + hi))


def _sigma_t_branch(d: np.ndarray, rho: float, k1: float, W: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(F, z1, z2, g1)`` along the positive branch of the curve, parametrized by the gap ``d``.

    On the curve ``g2 = ρ g1``; eliminating the amplitude (``a g1 = √A1``) turns
    ``a² h = W`` into ``F = k1 (1 − 2P) − W g1 = 0`` with ``k1 = ρA1 = c√(A1A2)``.
    ``g1 = φ(z1)·expm1(−d(z1 + d/2))`` has no cancellation for small gaps and
    ``1 − 2P = −erf(z1/√2) − erfc(z2/√2)`` none in the tails.
    """
    u = _sigma_t_inner_u(d, rho)
    z1 = rho + u
    z2 = z1 + d
    g1 = np.exp(-0.5 * z1 * z1) * _INV_SQRT_2PI * np.expm1(-d * (z1 + d / 2))
    one_m_2p = -sps.erf(z1 / _SQRT2) - sps.erfc(z2 / _SQRT2)
    return k1 * one_m_2p - W * g1, z1, z2, g1


def _sigma_t_curve_roots(A1: float, A2: float, W: float) -> tuple[list[tuple[float, float, float, int]], float]:
    """Float64 roots ``(z1, z2, a, c)`` of the σ_T system, and the smallest scanned ``|F|``.

    With the amplitude eliminated the first two equations say that ``(g1, g2)`` is
    parallel to ``(√A1, c√A2)``, ``c = ±1``: ``g2 = ρ g1`` with ``ρ = c√(A2/A1)``, i.e.
    ``χ(z1) = χ(z2)`` for ``χ(z) = (z − ρ)φ(z)``.  ``χ`` has one minimum at
    ``z₋ = (ρ − √(ρ²+4))/2`` and one maximum at ``z₊ = (ρ + √(ρ²+4))/2``, so the pairs
    ``z1 < z2`` on a level set form two curves: the positive branch
    ``ρ < z1 < z₊ < z2`` and the negative one ``z1 < z₋ < z2 < ρ``.  The mirror
    ``(z1, z2) → (−z2, −z1)`` maps ``(g1, g2, P)`` to ``(−g1, g2, P)``, so the negative
    branch for ``ρ`` is the mirrored positive branch for ``−ρ``.  Each branch is one
    curve parametrized by its gap ``d = z2 − z1 ∈ (0, ∞)`` (``d → 0``: coincident
    thresholds at ``z₊``; ``d → ∞``: a single step at ``ρ``); the third equation is a
    1-D function along it, scanned on a log grid of gaps and solved by ``brentq`` in
    every sign-change bracket.  When ``A1 = 0`` (``E[σ'] = 0``) the curve is
    ``z1 = −z2`` and the equation ``A2(1 − 2P) = W g2`` is solved along ``z2 > 0``;
    the same roots seed the nearly-even case ``A1 < 1e−8 A2``.
    """
    from scipy.optimize import brentq

    D = max(A1, A2, abs(W))
    out: list[tuple[float, float, float, int]] = []
    best = math.inf
    if A1 <= _SIGMA_T_SYMMETRIC * A2 or A1 <= _ZERO * D:
        # symmetric curve z1 = −z2 = −z: exact for A1 = 0; for 0 < A1 ≪ A2 (|ρ| > 1e4,
        # where z1 = ρ + u would lose digits to cancellation) it gives the seeds and the
        # mpmath Newton step moves them onto the exact system
        def fz(z: np.ndarray) -> np.ndarray:
            g2 = 2 * z * np.exp(-0.5 * z * z) * _INV_SQRT_2PI
            return (A2 * (sps.erf(z / _SQRT2) - sps.erfc(z / _SQRT2)) - W * g2) / D

        zs = np.geomspace(1e-6, 37.0, _SIGMA_T_GRID)
        F = fz(zs)
        best = float(np.min(np.abs(F)))
        for i in np.flatnonzero(np.sign(F[:-1]) * np.sign(F[1:]) <= 0):
            z = brentq(lambda x: float(fz(np.array(x))), zs[i], zs[i + 1], xtol=1e-300, rtol=1e-15)
            g2 = 2 * z * math.exp(-0.5 * z * z) * _INV_SQRT_2PI
            for c in ((1,) if A1 <= _ZERO * D else (1, -1)):
                out.append((-z, z, c * math.sqrt(A2) / g2, c))
        return out, best
    rho0 = math.sqrt(A2 / A1)
    for c in ((1, -1) if A2 > _ZERO * D else (1,)):
        rho = c * rho0
        k1 = c * math.sqrt(A1 * A2)
        # z2 ≈ ρ + d stays where φ is a normal float64 number (z2 ≲ 37)
        d_max = max(-rho + 37.0, 1.0)
        ds = np.geomspace(_SIGMA_T_GAP_MIN, d_max, _SIGMA_T_GRID)
        F, Z1, Z2, G1 = _sigma_t_branch(ds, rho, k1, W)
        ok = np.isfinite(F) & (G1 != 0)
        if ok.any():
            best = min(best, float(np.min(np.abs(F[ok]))) / D)
        for i in np.flatnonzero(ok[:-1] & ok[1:] & (np.sign(F[:-1]) * np.sign(F[1:]) <= 0)):
            def f_log(s: float) -> float:
                return float(_sigma_t_branch(np.array([math.exp(s)]), rho, k1, W)[0][0])

            s = brentq(f_log, math.log(ds[i]), math.log(ds[i + 1]), xtol=1e-15, rtol=1e-15)
            _, z1, z2, g1 = (float(v[0]) for v in _sigma_t_branch(np.array([math.exp(s)]), rho, k1, W))
            a = math.sqrt(A1) / g1
            out.append((z1, z2, a, c))
            out.append((-z2, -z1, -a, -c))  # the mirror: a root of the other sign pattern
    return out, best


def _solve_sigma_t(A1: mp.mpf, A2: mp.mpf, W: mp.mpf) -> list[tuple[mp.mpf, mp.mpf, mp.mpf, mp.mpf]]:
    """All distinct roots ``(z1, z2, a, variance)`` of the σ_T system (docs/reference.rst §6).

    The float64 roots of :func:`_sigma_t_curve_roots` are polished by Newton
    (``mpmath.findroot`` with the analytic Jacobian) on the unsquared system
    ``a g1 = √A1``, ``a g2 = c√A2``, ``a² h = W`` — signed amplitude, so small targets
    (``m2 → 0``) are not double roots.
    """
    D = max(A1, A2, abs(W))
    if A2 <= _ZERO * D and abs(W) > _ZERO * D:
        raise InfeasibleError(
            family="sigma_T", bound="odd_target",
            reason=("odd activation vs sigma_T — the target has E[σ''] = 0, and "
                    "sigma_T has E[σ''] = 0 only when z1φ(z1) = z2φ(z2), which forces "
                    f"E[(σ̄²)''] = 0, but the target τ²w̄2 = {float(W):.3g} (docs/reference.rst §6)"),
            residual=abs(float(W)) / float(D), suggestion="ternary")
    S = mp.sqrt(A1 + A2 + abs(W))
    sols: list[tuple[mp.mpf, mp.mpf, mp.mpf, mp.mpf]] = []
    tol = mp.mpf(10) ** (-(mp.mp.dps - 6))
    accept = mp.mpf(10) ** (-(mp.mp.dps - 12))
    with np.errstate(all="ignore"):  # degenerate grid ends give inf/nan, masked inside
        roots, best = _sigma_t_curve_roots(float(A1), float(A2), float(W))
    for z1f, z2f, af, c in roots:
        r1, r2 = mp.sqrt(A1), c * mp.sqrt(A2)

        def F(z1: mp.mpf, z2: mp.mpf, a: mp.mpf) -> list[mp.mpf]:
            p1, p2 = mp.npdf(z1), mp.npdf(z2)
            P = mp.ncdf(z1) + mp.ncdf(-z2)
            g1, g2 = p2 - p1, z2 * p2 - z1 * p1
            return [(a * g1 - r1) / S, (a * g2 - r2) / S, (a * a * (1 - 2 * P) * g2 - W) / S**2]

        def J(z1: mp.mpf, z2: mp.mpf, a: mp.mpf) -> list[list[mp.mpf]]:
            p1, p2 = mp.npdf(z1), mp.npdf(z2)
            P = mp.ncdf(z1) + mp.ncdf(-z2)
            g1, g2 = p2 - p1, z2 * p2 - z1 * p1
            h = (1 - 2 * P) * g2
            dg1 = (z1 * p1, -z2 * p2)
            dg2 = (-(1 - z1 * z1) * p1, (1 - z2 * z2) * p2)
            dh = (-2 * p1 * g2 + (1 - 2 * P) * dg2[0], 2 * p2 * g2 + (1 - 2 * P) * dg2[1])
            return [[a * dg1[0] / S, a * dg1[1] / S, g1 / S],
                    [a * dg2[0] / S, a * dg2[1] / S, g2 / S],
                    [a * a * dh[0] / S**2, a * a * dh[1] / S**2, 2 * a * h / S**2]]

        if any(abs(z1f - float(s[0])) + abs(z2f - float(s[1])) < 1e-9 for s in sols):
            continue
        try:
            r = mp.findroot(F, (mp.mpf(z1f), mp.mpf(z2f), mp.mpf(af)), J=J, tol=tol,
                            maxsteps=20, verify=False)
        except (ValueError, ZeroDivisionError, TypeError, OverflowError):
            continue
        z1r, z2r, ar = r[0], r[1], r[2]
        if not z2r > z1r or max(abs(v) for v in F(z1r, z2r, ar)) > accept:
            continue
        if any(abs(z1r - s[0]) + abs(z2r - s[1]) < mp.mpf(10) ** -12 for s in sols):
            continue
        P = mp.ncdf(z1r) + mp.ncdf(-z2r)
        sols.append((z1r, z2r, ar, ar * ar * P * (1 - P)))
    if not sols:
        raise InfeasibleError(
            family="sigma_T", bound="hermite_budget",
            reason=("the third α-matching equation has no root along the curves "
                    "where (E[σ'], E[σ'']) has the target's direction (Hermite budget of sigma_T's "
                    "two-threshold shape)"),
            residual=best, suggestion="three_level")
    return sols


# --------------------------------------------------------------------------- #
# Public entry points
# --------------------------------------------------------------------------- #
def solve_alpha(family: str | Family, targets: AlphaTargets, tau: float, *, digits: int = 15) -> LayerFit:
    """α-match one layer: parameters of ``family`` whose moments at ``tau`` equal ``targets``.

    Parameters
    ----------
    family : str or Family
        ``ternary``, ``sigma_T``, ``three_level`` or ``staircase:K``.
    targets : AlphaTargets
        Dense ``(m1, m2, w̄2)``; α-matching reproduces ``m1², m2², w̄2``.
    tau : float
        The compressed network's own input scale τ' (> 0).
    digits : int
        15 for float64 results (residual ≤ 1e−12), more for mpmath-precision results.

    Raises
    ------
    InfeasibleError
        No solution; the message names the bound, the best residual and a family that works.
    NumericalError
        A solution was found but its residual misses the tolerance (never expected).
    """
    fam = parse_family(family)
    if isinstance(fam, SigmaQFamily):
        raise ParameterError("sigma_Q is a last-layer family: use solve_last_layer (δ = 0 matching)")
    if not (isinstance(tau, (int, float, mp.mpf)) and float(tau) > 0 and math.isfinite(float(tau))):
        raise DomainError(f"the compressed input scale must be finite and > 0, got {tau!r}")
    for name, v in (("m1", targets.m1), ("m2", targets.m2), ("w2_bar", targets.w2_bar)):
        if not math.isfinite(float(v)):
            raise DomainError(f"target {name} must be finite, got {v!r}")
    with mp.workdps(_dps(digits)):
        t = mp.mpf(tau)
        A1, A2, W = _scaled_mp(targets, t)
        if isinstance(fam, SigmaTFamily):
            sols = _solve_sigma_t(A1, A2, W)
            # least variance; exact ties (the mirror branch z -> -z) go to the larger z1
            z1, z2, a, _ = min(sols, key=lambda s: (float(mp.nstr(s[3], 10)), -float(s[0])))
            # overall sign: make E[σ'] (or E[σ''] when m1 = 0) carry the dense sign
            g1 = mp.npdf(z2) - mp.npdf(z1)
            g2 = z2 * mp.npdf(z2) - z1 * mp.npdf(z1)
            ref, m_ref = (a * g1, targets.m1) if A1 > _ZERO * max(A1, A2) else (a * g2, targets.m2)
            if _sign(float(ref)) != _sign(float(m_ref)):
                a = -a
            params = {"s1": z1 * t, "s2": z2 * t, "a": a}
        else:
            if isinstance(fam, TernaryFamily):
                q, odd_only = ThreeLevelFamily.quantizer, True
                D = max(A1, A2, abs(W))
                if A2 > _ZERO * D:
                    raise InfeasibleError(
                        family="ternary", bound="not_odd",
                        reason=("an odd ternary has E[σ''] = 0 but the target "
                                f"m2² = {float(targets.m2) ** 2:.3g} is not (the dense activation is not odd)"),
                        residual=float(A2 / D), suggestion="sigma_T or three_level")
            elif isinstance(fam, (ThreeLevelFamily, StaircaseKFamily)):
                q, odd_only = fam.quantizer, False
            else:  # pragma: no cover - parse_family only builds the families above
                raise ParameterError(f"no α-matching solver for family {fam.name}")
            sols = _solve_symmetric(q, A1, A2, W, odd_only, fam.name)
            z, u, v, _ = min(sols, key=lambda s: s[3])
            u = u * _sign(float(targets.m1))
            v = v * _sign(float(targets.m2))
            if isinstance(fam, TernaryFamily):
                params = {"s": z * t, "b": u}
            else:
                params = fam.params_from(z, u, v, t)
        return finish_fit(fam, params, t, targets, digits)


def _scaled_mp(targets: AlphaTargets, t: mp.mpf) -> tuple[mp.mpf, mp.mpf, mp.mpf]:
    m1, m2, w = mp.mpf(targets.m1), mp.mpf(targets.m2), mp.mpf(targets.w2_bar)
    return t * t * m1 * m1, t**4 * m2 * m2, t * t * w


def finish_fit(fam: Family, params_mp: dict[str, Any], t: mp.mpf, targets: AlphaTargets,
            digits: int) -> LayerFit:
    """Round (or not), re-evaluate at high precision, check the residual, build the result."""
    def conv(v: Any, f: Any) -> Any:
        return tuple(f(x) for x in v) if isinstance(v, (tuple, list)) else f(v)

    params_f = {k: conv(v, float) for k, v in params_mp.items()}
    used = params_mp if digits > 15 else {k: conv(v, mp.mpf) for k, v in params_f.items()}
    with mp.workdps(_dps(digits) + 10):
        tt = mp.mpf(t) if digits > 15 else mp.mpf(float(t))
        stair = fam.staircase(used)
        achieved, res = relative_residuals(stair, tt, targets)
        m = stair_moments_mp(stair, tt)
        mean, var = float(m.m0), float(m.variance)
    worst = max(res.values())
    tol = residual_tolerance(digits)
    if not worst <= tol:
        raise NumericalError(
            f"{fam.name}: solution found but its relative residual {worst:.3g} exceeds {tol:.0e} "
            "(ill-conditioned parameters)")
    act = fam.params_to_activation(params_f)
    exact = ({k: conv(v, lambda x: mp.nstr(x, digits + 5)) for k, v in params_mp.items()}
             if digits > 15 else {})
    return LayerFit(fam.name, params_f, float(t), targets.as_dict(), achieved, res, worst,
                    mean, var, act, exact)


def solve_auto(targets: AlphaTargets, tau: float, *, digits: int = 15,
               order: tuple[str, ...] = AUTO_ORDER) -> LayerFit:
    """The first family of ``order`` (cheapest first) that solves exactly.

    Raises InfeasibleError listing every family's reason when none does.
    """
    causes = []
    for name in order:
        try:
            return solve_alpha(name, targets, tau, digits=digits)
        except InfeasibleError as exc:
            causes.append(exc)
    raise InfeasibleError(family="auto", causes=tuple(causes))
