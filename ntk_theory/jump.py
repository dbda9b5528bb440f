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
:func:`step_expectation_mp` extends them to polynomials in x and in
``floor``/``ceiling``/``frac`` of linear arguments (thousands of jumps, polynomial
pieces), summing exact Gaussian integrals interval by interval.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mpmath as mp
import sympy as sp

from .activations import Staircase

__all__ = [
    "MAX_STEP_DEGREE",
    "MAX_STEP_JUMPS",
    "MOMENT_KEYS",
    "interval_probability_mp",
    "interval_probability_expr",
    "staircase_moments_mp",
    "staircase_moment_exprs",
    "step_expectation_mp",
    "step_polynomial",
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


# --------------------------------------------------------------------------- #
# Polynomials in x and floor/ceiling/frac of linear arguments
# --------------------------------------------------------------------------- #
#: Most jumps (inside the window where the Gaussian weight matters) the step sum
#: walks through; beyond it the call is refused with a typed error.  Each interval
#: costs two erfc/exp evaluations and a short polynomial recurrence, done twice
#: (at two precisions): 20 000 intervals are about 2 CPU seconds at 20 digits, which a
#: machine at load 20 stretched past a minute of wall-clock time; 8 000 keeps the worst
#: case under one CPU second.
MAX_STEP_JUMPS = 8_000
#: Highest total degree (in x and the step functions) the step sum accepts.
MAX_STEP_DEGREE = 12
_STEP_ATOMS = (sp.floor, sp.ceiling, sp.frac)


def _linear_coefficients(arg: sp.Expr, x: sp.Symbol) -> tuple[sp.Expr, sp.Expr] | None:
    """``(a, b)`` with ``arg = a·x + b``, both real numbers and ``a ≠ 0``; else None."""
    if arg.has(*_STEP_ATOMS):
        return None
    try:
        p = sp.Poly(arg, x)
    except sp.PolynomialError:
        return None
    if p.degree() != 1 or not all(c.is_number and c.is_real for c in p.all_coeffs()):
        return None
    a, b = p.all_coeffs()
    return (a, b) if a != 0 else None


def step_polynomial(f: sp.Expr, x: sp.Symbol) -> tuple[sp.Poly, list[tuple[type, sp.Expr, sp.Expr]]] | None:
    """Recognise ``f`` as a polynomial in ``x`` and in ``floor``/``ceiling`` of linear arguments.

    ``frac(y)`` is rewritten as ``y − floor(y)``.  Returns ``(P, steps)`` where ``P`` is a
    polynomial in ``x, u_1, …, u_r`` with real numeric coefficients and ``steps[j] =
    (floor or ceiling, a_j, b_j)`` says that ``u_j`` stands for ``step(a_j·x + b_j)``; or
    None when ``f`` is not of that form (other functions of x, non-linear arguments,
    negative or symbolic powers, total degree above :data:`MAX_STEP_DEGREE`).
    """
    atoms = f.atoms(*_STEP_ATOMS)
    if not atoms:
        return None
    g = f.xreplace({t: t.args[0] - sp.floor(t.args[0]) for t in atoms if isinstance(t, sp.frac)})
    steps: list[tuple[type, sp.Expr, sp.Expr]] = []
    subs: dict[sp.Expr, sp.Symbol] = {}
    for t in sorted(g.atoms(sp.floor, sp.ceiling), key=sp.default_sort_key):
        ab = _linear_coefficients(t.args[0], x)
        if ab is None:
            return None
        subs[t] = sp.Dummy(f"u{len(steps)}")
        steps.append((type(t), *ab))
    g = g.xreplace(subs)
    gens = (x, *subs.values())
    # the degree is bounded before any expansion (``(floor(x) + x)**10**6`` is refused, not expanded)
    for sub in sp.preorder_traversal(g):
        if isinstance(sub, sp.Pow) and sub.base.has(*gens):
            if not (sub.exp.is_Integer and 0 <= sub.exp <= MAX_STEP_DEGREE):
                return None
        elif isinstance(sub, sp.Function):
            return None
    try:
        P = sp.Poly(g, *gens)
    except sp.PolynomialError:
        return None
    if P.total_degree() > MAX_STEP_DEGREE or not all(c.is_number and c.is_real for c in P.coeffs()):
        return None
    return P, steps


def _upper_tail_moments(w: mp.mpf, top: int) -> list[mp.mpf]:
    """``T_m = ∫_w^∞ z^m φ(z) dz`` for ``m = 0 … top`` (``w ≥ 0``)."""
    phi_w = _phi_mp(w)
    T = [mp.erfc(w / mp.sqrt(2)) / 2, phi_w]
    for m in range(2, top + 1):
        T.append(w ** (m - 1) * phi_w + (m - 1) * T[m - 2])
    return T[: top + 1]


def _hermite_coefficients(order: int) -> list[int]:
    return {0: [1], 1: [0, 1], 2: [-1, 0, 1]}[order]


def _step_sum(P: sp.Poly, steps, tau: mp.mpf, order: int, w: mp.mpf) -> tuple[mp.mpf, mp.mpf]:
    """``∫_{−w}^{w} f(τz) He_order(z) φ(z) dz`` summed interval by interval at the
    current precision, and the sum of the absolute values of the intervals' terms."""
    terms = [(tuple(int(e) for e in mono), mp.mpf(sp.Float(c, mp.mp.dps + 5)))
             for mono, c in zip(P.monoms(), P.coeffs())]
    coeffs = [(kind, mp.mpf(sp.Float(a, mp.mp.dps + 5)), mp.mpf(sp.Float(b, mp.mp.dps + 5)))
              for kind, a, b in steps]
    xw = tau * w
    cuts = {-xw, xw}
    for _kind, a, b in coeffs:
        lo, hi = sorted((-a * xw + b, a * xw + b))
        cuts.update((k - b) / a for k in range(int(mp.ceil(lo)), int(mp.floor(hi)) + 1))
    pts = sorted(c for c in cuts if -xw <= c <= xw)
    deg_x = max(m[0] for m, _c in terms) if terms else 0
    top = deg_x + order
    he = _hermite_coefficients(order)
    r2 = mp.sqrt(2)
    zs = [p / tau for p in pts]
    dens = [_phi_mp(z) for z in zs]
    # tail-accurate cumulative probabilities: Q(z) = P(ξ > z) for z ≥ 0, L(z) = P(ξ < z) for z < 0
    tails = [mp.erfc(z / r2) / 2 if z >= 0 else mp.erfc(-z / r2) / 2 for z in zs]
    total = mp.mpf(0)
    size = mp.mpf(0)
    for i in range(len(pts) - 1):
        za, zb = zs[i], zs[i + 1]
        if za >= 0:
            m0 = tails[i] - tails[i + 1]
        elif zb <= 0:
            m0 = tails[i + 1] - tails[i]
        else:
            m0 = 1 - tails[i] - tails[i + 1]
        M = [m0, dens[i] - dens[i + 1]]
        for m in range(2, top + 1):
            M.append((m - 1) * M[m - 2] + za ** (m - 1) * dens[i] - zb ** (m - 1) * dens[i + 1])
        mid = (pts[i] + pts[i + 1]) / 2
        u = [mp.floor(a * mid + b) if kind is sp.floor else mp.ceil(a * mid + b) for kind, a, b in coeffs]
        # the piece's polynomial in x: c_i
        cx = [mp.mpf(0)] * (deg_x + 1)
        for mono, c in terms:
            v = c
            for j, e in enumerate(mono[1:]):
                if e:
                    v *= u[j] ** e
            cx[mono[0]] += v
        # in z (x = τz) times He_order(z): Σ_m d_m z^m
        for i_x, c in enumerate(cx):
            if not c:
                continue
            c = c * tau ** i_x
            for k, h in enumerate(he):
                if h:
                    t = c * h * M[i_x + k]
                    total += t
                    size += abs(t)
    return total, size


def step_expectation_mp(f: sp.Expr, x: sp.Symbol, tau: float, order: int,
                        digits: int) -> tuple[mp.mpf, float] | None:
    """``E[f^{(order)}(τξ)]`` for a polynomial in x and floor/ceiling/frac of linear
    arguments (:func:`step_polynomial`), by exact sums over the intervals between jumps.

    Between two jumps ``f`` is a polynomial, whose Gaussian integral against
    ``He_order`` is a combination of incomplete moments ``∫ z^m φ`` (an erfc and a
    recurrence); the weak derivatives of the jumps are included through Stein's
    lemma ``E[f^{(k)}(τξ)] = E[f(τξ) He_k(ξ)]/τ^k`` (docs/reference.rst §1).

    Certified: outside ``|ξ| ≤ w`` the integrand is bounded by a polynomial in ``|ξ|``
    with non-negative coefficients (``|floor(y)|, |ceiling(y)| ≤ |y| + 1``), whose
    Gaussian tail integral is exact; ``w`` is chosen so that this bound is below
    ``10^−(digits+5)`` of the integrand's size.  The sum is done at two precisions
    (``digits + 15 + log10(intervals)`` and 15 digits more) and their difference, plus
    the tail bound, is the reported error.

    Returns ``(value, abs_error)``, or None when ``f`` is not of this form.

    Raises
    ------
    ResourceError
        More than :data:`MAX_STEP_JUMPS` jumps where the Gaussian weight matters
        (``floor(10**6*x)``), checked before any summation.
    """
    from .errors import ResourceError

    rec = step_polynomial(f, x)
    if rec is None:
        return None
    P, steps = rec
    with mp.workdps(30):
        t = mp.mpf(tau)
        # bound |f(x)| ≤ B(|x|): |u_j| ≤ |a_j||x| + |b_j| + 1 for u_j = floor/ceiling(a_j x + b_j)
        bound = sp.Poly(0, x)
        for mono, c in zip(P.monoms(), P.coeffs()):
            term = sp.Poly(abs(c) * x ** mono[0], x)
            for (_kind, a, b), e in zip(steps, mono[1:]):
                if e:
                    term *= sp.Poly(abs(a) * x + abs(b) + 1, x) ** e
            bound += term
        beta = {m[0]: mp.mpf(sp.Float(c, 30)) for m, c in zip(bound.monoms(), bound.coeffs())}
        he_abs = [abs(h) for h in _hermite_coefficients(order)]
        # B(τ|z|)·|He_order(z)| ≤ Σ_m γ_m |z|^m
        gamma: dict[int, mp.mpf] = {}
        for i, c in beta.items():
            for k, h in enumerate(he_abs):
                if h:
                    gamma[i + k] = gamma.get(i + k, mp.mpf(0)) + c * t ** i * h
        top = max(gamma) if gamma else 0
        T0 = _upper_tail_moments(mp.mpf(0), top)
        size = 2 * mp.fsum(g * T0[m] for m, g in gamma.items()) or mp.mpf(1)
        target = size * mp.mpf(10) ** (-(digits + 5))
        w = tail = None
        for cand in (4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40):
            T = _upper_tail_moments(mp.mpf(cand), top)
            tb = 2 * mp.fsum(g * T[m] for m, g in gamma.items())
            if tb <= target:
                w, tail = mp.mpf(cand), tb
                break
        if w is None:  # polynomial growth is always beaten by the Gaussian by |ξ| = 40
            w, tail = mp.mpf(40), tb
        count = 0
        for _kind, a, b in steps:
            a, b = abs(float(a)), float(b)
            count += math.floor(a * float(t * w) + b) - math.ceil(-a * float(t * w) + b) + 1
    if count > MAX_STEP_JUMPS:
        raise ResourceError(
            f"{f} jumps about {count} times where the Gaussian weight matters at tau={tau:g} "
            f"(|x| ≤ {float(w) * tau:.3g}); more than the {MAX_STEP_JUMPS} intervals the exact "
            "step sum walks through")
    # digits lost to the number of terms and to jump locations (k − b)/a with large k
    reach = max(abs(float(a)) * float(w) * tau + abs(float(b)) for _k, a, b in steps)
    extra = len(str(max(count, 1))) + max(0, int(math.log10(reach + 1)))
    wp = digits + 15 + extra
    results = []
    for dps in (wp, wp + 15):
        with mp.workdps(dps):
            results.append(_step_sum(P, steps, mp.mpf(tau), order, w))
    (v1, s1), (v2, _s2) = results
    with mp.workdps(wp + 15):
        err = abs(v2 - v1) + tail + s1 * mp.mpf(10) ** (-(wp + 10))
        value = v2 / mp.mpf(tau) ** order
        err = err / mp.mpf(tau) ** order
        if abs(value) <= err:
            value = mp.mpf(0)
        return value, float(err)
