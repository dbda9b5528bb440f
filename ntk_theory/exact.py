"""Exact limiting kernels K_ℓ and Θ_ℓ of an infinitely wide network (docs/reference.rst §3).

Recursion (widths → ∞ first), with ``K_0 = Θ_0 = XᵀX``::

    K_ℓ(x,x')  = E[σ̄_ℓ(u) σ̄_ℓ(v)],
    K̇_ℓ(x,x')  = E[σ_ℓ'(u) σ_ℓ'(v)],
    Θ_ℓ        = K_ℓ + Θ_{ℓ−1} ⊙ K̇_ℓ,
    (u, v) ~ N(0, [[K_{ℓ−1}(x,x), K_{ℓ−1}(x,x')], [K_{ℓ−1}(x,x'), K_{ℓ−1}(x',x')]]).

Centering (docs/reference.rst §1 "Centering").  ``σ̄_ℓ = σ_ℓ − c_ℓ`` with the *constant*
``c_ℓ = E[σ_ℓ(τ_{ℓ−1} ξ)]``, the same for every data point, where ``τ_ℓ² = Var σ_ℓ(τ_{ℓ−1} ξ)``
is the theory's scale recursion started at ``τ_0``.  Hence::

    K_ℓ(x,x') = E[σ(u)σ(v)] − c_ℓ (E[σ(u)] + E[σ(v)]) + c_ℓ²,

which is *not* the covariance ``E[σ(u)σ(v)] − E[σ(u)]E[σ(v)]``: the two differ by
``(E σ(u) − c_ℓ)(E σ(v) − c_ℓ)``, a rank-one matrix with ``O(1/p)`` entries and an
``O(n/p)`` operator norm — exactly the ``¼ m2² ψψᵀ`` part of ``α_{ℓ,2}`` in docs/reference.rst §4
— so the constant convention is the one the theory kernels of §5 approximate, and the one
:class:`ntk_theory.network.MLP` uses.

Closed forms (``ρ = c/√(ab)``, ``θ = arccos ρ`` for a pair with variances ``a, b`` and
covariance ``c``):

* ReLU (arc-cosine): ``E[σσ] = √(ab)(sin θ + (π − θ) cos θ)/(2π)``, ``K̇ = (π − θ)/(2π)``;
  leaky ReLU ``s t + (1−s) relu(t)``: ``E[σσ] = s c + (1−s)² k_relu``,
  ``K̇ = s + (1−s)²(π−θ)/(2π)``; ``|t| = 2 relu(t) − t``: ``E[σσ] = 4 k_relu − c``,
  ``K̇ = (2/π) arcsin ρ``; linear ``s t``: ``s² c`` and ``s²``; ``t²``: ``ab + 2c²`` and ``4c``.
* erf (arcsine): ``E[σσ] = (2/π) arcsin(2c/√((1+2a)(1+2b)))``,
  ``K̇ = (4/π) / √((1+2a)(1+2b) − 4c²)``.
* Staircases (sign, step, σ_T, σ_Q, ternary, three-level, K-level): with
  ``σ = l_0 + Σ_j Δ_j 1_{t > t_j}``, ``E[σσ]`` is a sum of bivariate normal orthant
  probabilities ``P(u > t_j, v > t_k)`` evaluated with Owen's T function
  (:func:`bivariate_normal_cdf`).

* GELU ``t Φ(t)``: closed form of :func:`_gelu_pair` (derived in its docstring, checked
  against mpmath); ``sin``/``cos``: ``e^{−(a+b)/2} sinh c`` / ``cosh c``; the Gaussian bump
  ``e^{−t²/2}``: ``1/√((1+a)(1+b) − c²)``.

The family-specific formulas (mean, pair and derivative-pair maps) are fields of the
registry entries (:class:`ntk_theory.activations.KernelMaps`); this module evaluates
them, the arc-cosine maps of any slopes ``(p, q)`` and the staircase maps, and never
looks at an activation's name.

Any other activation (tanh, swish, softplus, ELU, expressions) uses certified
quadrature (:func:`layer_map`): Mehler's expansion ``Σ_k ρ^k A_k(a) A_k(b)`` with per-point
orthonormal Hermite coefficients ``A_k`` and the diagonal from
:func:`certified_coefficients`.  The truncation after ``M`` terms is bounded, by
Cauchy–Schwarz, by ``|ρ|^{M+1} √(T(a) T(b))`` with ``T = Σ_{k>M} A_k²`` the Parseval tail
of each point (at most ``E f²``); a pair uses the series when that bound is at most
``tol = 1e−12`` relative to ``√(E f(u)² E f(v)²)``.  With ``T ≤ E f²`` this covers every
``|ρ| ≤ 0.8`` at ``M = 123``; for an activation without kinks the coefficients are
computed to order 512 and ``T = E f² − Σ_{k≤M} A_k²`` is certified (quadrature error and
rounding added), which for tanh at variances up to about 3 and swish up to about 10 covers
*every* correlation, ``ρ → ±1`` included, and at larger variances all but the nearest
duplicates (tanh at variance 50: ``|ρ| ≲ 0.97``).  The remaining pairs take
:func:`certified_pairs`.  Both rules are composite Gauss–Legendre with panels at most 1
wide in the activation's argument and 2 in the Gaussian variable (split at kinks), each
result computed with 12 and with 20 nodes per panel and the panels halved until the two
agree to 1e−14 relative; disagreement beyond 4096 panels or a non-finite value is a
:class:`~ntk_theory.errors.NumericalError`, never a silent number, and a CPU-time
``budget`` that runs out is a :class:`~ntk_theory.errors.ResourceError`.  Tested
(``tests/test_exact.py``): K, K̇ and Θ of tanh, swish and the closed forms within 1e−10
of independent adaptive quadrature (and mpmath) at squared input norms up to 50, ``ρ`` up
to ±0.9999, and norms down to 0.01.  (A fixed 200-node Gauss–Hermite rule is not
enough on the diagonal: it is 11 % low for tanh's NTK at squared norm 39.)  Cost:
``O(M n²)`` for the series (``M`` ≈ 100–500) plus a 1-D rule per point; a pair left to
the 2-D rule costs ``10⁴–10⁶`` activation calls.

The scales and centering constants (:func:`layer_scales`) use adaptive quadrature
split at the kinks.

Derivatives of staircases.  ``σ'`` is a sum of Dirac deltas, so
``K̇(x,x') = Σ_jk Δ_j Δ_k φ₂(t_j, t_k; Σ)`` with ``φ₂`` the bivariate normal density
— finite for ``x ≠ x'`` but ``+∞`` on the diagonal (``Σ`` singular, a squared delta).
``staircase_derivative="dirac"`` (default) returns exactly that: ``Θ`` then has an
infinite diagonal, and the NTK of a staircase network does not exist as a finite
matrix.  ``staircase_derivative="ae"`` uses the almost-everywhere derivative (zero),
which is what back-propagation through :class:`ntk_theory.network.MLP` computes; then
``K̇ = 0`` and ``Θ_ℓ = K_ℓ``.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.special as sps
import sympy as sp

from ._dense import for_each_block, gram, mirror_upper
from .activations import Activation, Staircase, X, parse_activation, to_piecewise
from .errors import DomainError, NumericalError, ParameterError, ResourceError

__all__ = [
    "ExactKernels",
    "LayerScales",
    "exact_kernels",
    "layer_map",
    "layer_scales",
    "gaussian_mean",
    "pair_expectation",
    "bivariate_normal_cdf",
    "gauss_hermite_expectation",
    "exact_memory_bytes",
    "closed_form_name",
    "derivative_function",
    "hermite_coefficients",
    "certified_coefficients",
    "certified_pairs",
    "mehler_order",
    "split_rule",
    "piecewise_linear_slopes",
    "activation_breakpoints",
    "MEMORY_LIMIT_BYTES",
]

#: Requests whose estimated peak memory exceeds this are refused up front (24 GiB machine).
MEMORY_LIMIT_BYTES = 22 * 2**30

_TWO_PI = 2.0 * math.pi
#: :func:`closed_form_name` of a piecewise linear expression (arc-cosine maps)
PIECEWISE_LINEAR_FORM = "piecewise_linear"


def derivative_function(act: Activation) -> Callable[[np.ndarray], np.ndarray]:
    """σ' as a reusable vectorized function.

    ``Activation.derivative`` re-lambdifies the SymPy derivative on every call for
    expression activations (no cached NumPy derivative); inside quadrature loops that
    dominates the cost, so the derivative is compiled once here.
    """
    if act._deriv is not None:
        return act.derivative
    from .activations import derivative_expr, lambdify_numpy

    d_expr = derivative_expr(act.expr)
    if d_expr.has(sp.Derivative):
        # e.g. floor(x): SymPy leaves the derivative unevaluated (a train of Dirac deltas).
        # Refused when it is *used* (K̇, the NTK, back-propagation), so that the conjugate
        # kernel, which needs no derivative, still works.
        message = (f"the derivative of {act.spec} is not a function (SymPy leaves "
                   f"{sp.sstr(d_expr)[:60]} unevaluated): its K̇ and NTK do not exist as "
                   "finite kernels; use the conjugate kernel")

        def refuse(t: np.ndarray) -> np.ndarray:
            raise DomainError(message, hint=("kernel", "ck"))

        return refuse
    fn = lambdify_numpy(d_expr)

    def dfn(t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=float)
        out = np.asarray(fn(t), dtype=float)
        return np.broadcast_to(out, t.shape).copy() if out.shape != t.shape else out

    return dfn


def closed_form_name(act: Activation) -> str | None:
    """The registry family's name when its kernel maps are closed forms
    (:class:`~ntk_theory.activations.KernelMaps`), ``"staircase"`` for a staircase, else ``None``.

    Any activation that is piecewise linear with its only kink at 0 (``p t`` for
    ``t > 0``, ``q t`` for ``t < 0``; e.g. the expression ``Abs(x)/2`` or
    ``Max(x, x/4)``) gets the arc-cosine closed form too: ``"piecewise_linear"``.
    """
    if act.staircase is not None:
        return Staircase.form
    if act.kernel is not None and act.kernel.has_closed_form:
        return act.name
    return PIECEWISE_LINEAR_FORM if piecewise_linear_slopes(act) is not None else None


def _closed_slopes(act: Activation) -> tuple[float, float] | None:
    """``(p, q)`` of the arc-cosine closed form for ``act`` (registry slopes first), else None."""
    if act.kernel is not None and act.kernel.slopes is not None:
        return act.kernel.slopes
    if act.kernel is not None and act.kernel.has_closed_form:
        return None
    return piecewise_linear_slopes(act)


def piecewise_linear_slopes(act: Activation) -> tuple[float, float] | None:
    """``(p, q)`` when ``σ(t) = p t`` for ``t > 0`` and ``σ(t) = q t`` for ``t < 0``, else ``None``.

    Decided symbolically (σ restricted to a positive, then to a negative symbol must
    simplify to a constant multiple of it), so the closed forms are used only when
    they are exact.  ReLU is ``(1, 0)``, leaky ReLU ``(1, s)``, ``|t|`` is ``(1, −1)``.
    """
    if act.staircase is not None:
        return None
    return _slopes_of(act.expr)


@lru_cache(maxsize=256)
def _slopes_of(expr: sp.Expr) -> tuple[float, float] | None:
    out = []
    for assumption in ({"positive": True}, {"negative": True}):
        t = sp.Symbol("t", real=True, **assumption)
        try:
            e = sp.expand(sp.piecewise_fold(to_piecewise(expr).subs(X, t)))
            slope = sp.simplify(e / t)
        except Exception:  # noqa: BLE001 — anything SymPy cannot decide is "not piecewise linear"
            return None
        if slope.free_symbols or not slope.is_real or not slope.is_finite:
            return None
        out.append(float(slope))
    return out[0], out[1]


@lru_cache(maxsize=256)
def _breakpoints_of(expr: sp.Expr) -> tuple[float, ...]:
    """Finite kinks/jumps of an expression activation (empty when none or unknown)."""
    from .expectation import breakpoints

    try:
        return tuple(b for b in breakpoints(expr) if math.isfinite(b))
    except Exception:  # noqa: BLE001 — no breakpoints known: the plain Gauss–Hermite rule
        return ()


def activation_breakpoints(act: Activation) -> tuple[float, ...]:
    """The points where ``act`` (or its derivative) is not smooth, as far as SymPy can tell."""
    if act.staircase is not None:
        return tuple(float(t) for t in act.staircase.thresholds)
    return _breakpoints_of(act.expr)


#: at most this many jumps of floor/ceiling inside the integration range are split at
_MAX_JUMPS = 60


def _jump_points(act: Activation, t_max: float) -> tuple[float, ...]:
    """The jumps of ``floor``/``ceiling`` of a linear argument ``a·t + b`` in ``|t| ≤ t_max``
    (``t = (k − b)/a`` for integers ``k``), which SymPy does not report as breakpoints.

    A quadrature across a jump converges only like the panel width, so the certified
    rules split there.  Refused (:class:`~ntk_theory.errors.NumericalError`) when there
    are more than 60 such jumps in range, or when the argument is not linear.
    """
    if act.staircase is not None or act.expr is None:
        return ()
    atoms = act.expr.atoms(sp.floor, sp.ceiling, sp.frac)
    out: set[float] = set()
    for atom in atoms:
        arg = sp.expand(atom.args[0])
        try:
            poly = sp.Poly(arg, X)
        except sp.PolynomialError:
            poly = None
        if poly is None or poly.degree() != 1 or poly.free_symbols - {X}:
            raise NumericalError(f"{act.spec}: {atom} jumps at points that are not evenly spaced; "
                                 f"its exact kernel is not supported")
        a, b = (float(v) for v in poly.all_coeffs())
        lo, hi = sorted((b - abs(a) * t_max, b + abs(a) * t_max))
        count = math.floor(hi) - math.ceil(lo) + 1
        if count > _MAX_JUMPS:
            raise NumericalError(f"{act.spec}: {atom} has {count} jumps where the inputs' Gaussians "
                                 f"live (more than {_MAX_JUMPS}); its exact kernel is not supported")
        out.update((k - b) / a for k in range(math.ceil(lo), math.floor(hi) + 1))
    return tuple(sorted(out))


# --------------------------------------------------------------------------- #
# Bivariate normal probabilities
# --------------------------------------------------------------------------- #
def bivariate_normal_cdf(h: np.ndarray, k: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """``P(ξ1 < h, ξ2 < k)`` for standard normals with correlation ``rho`` (vectorized).

    Uses Owen's formula
    ``Φ₂(h,k;ρ) = ½Φ(h) + ½Φ(k) − T(h, a_h) − T(k, a_k) − β`` with
    ``a_h = (k − ρh)/(h√(1−ρ²))``, ``a_k = (h − ρk)/(k√(1−ρ²))`` and ``β = ½`` when
    ``h k < 0`` or (``h k = 0`` and ``h + k < 0``), else 0; ``T`` is
    :func:`scipy.special.owens_t`.  Limits: ``h = 0`` gives ``T = sign(k)/4``;
    ``h = k = 0`` gives ``¼ + arcsin(ρ)/(2π)``; ``ρ = ±1`` the degenerate laws.
    ``h, k`` may be ``±∞``.
    """
    h, k, rho = np.broadcast_arrays(np.asarray(h, float), np.asarray(k, float),
                                    np.clip(np.asarray(rho, float), -1.0, 1.0))
    out = np.empty(h.shape)
    Ph, Pk = sps.ndtr(h), sps.ndtr(k)
    one = rho >= 1.0 - 1e-15
    mone = rho <= -1.0 + 1e-15
    out[one] = np.minimum(Ph, Pk)[one]
    out[mone] = np.maximum(Ph + Pk - 1.0, 0.0)[mone]
    gen = ~(one | mone)
    if np.any(gen):
        hh, kk, rr = h[gen], k[gen], rho[gen]
        s = np.sqrt((1.0 - rr) * (1.0 + rr))
        with np.errstate(divide="ignore", invalid="ignore"):
            ah = (kk - rr * hh) / (hh * s)
            ak = (hh - rr * kk) / (kk * s)
            Th = np.where(hh == 0, np.sign(kk) / 4.0, sps.owens_t(hh, ah))
            Tk = np.where(kk == 0, np.sign(hh) / 4.0, sps.owens_t(kk, ak))
        # infinite bounds: T(±∞, a) = 0
        Th = np.where(np.isinf(hh), 0.0, Th)
        Tk = np.where(np.isinf(kk), 0.0, Tk)
        hk = hh * kk
        with np.errstate(invalid="ignore"):
            beta = np.where((hk > 0) | ((hk == 0) & (hh + kk >= 0)), 0.0, 0.5)
        val = 0.5 * (sps.ndtr(hh) + sps.ndtr(kk)) - Th - Tk - beta
        both0 = (hh == 0) & (kk == 0)
        val = np.where(both0, 0.25 + np.arcsin(rr) / _TWO_PI, val)
        # an infinite bound makes the event one-dimensional
        val = np.where(np.isposinf(hh), sps.ndtr(kk), val)
        val = np.where(np.isposinf(kk), sps.ndtr(hh), val)
        val = np.where(np.isneginf(hh) | np.isneginf(kk), 0.0, val)
        out[gen] = np.clip(val, 0.0, 1.0)
    return out


# --------------------------------------------------------------------------- #
# One-dimensional means E[σ(√s ξ)]
# --------------------------------------------------------------------------- #
def _gh_rule(nodes: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.hermite_e.hermegauss(int(nodes))
    return x, w / math.sqrt(_TWO_PI)


#: Fixed ξ-splits of :func:`split_rule` (the outer ends are ``±(10 + 2√s)``): short
#: pieces where the Gaussian weight lives, so 16 Gauss–Legendre nodes per piece are
#: exact to rounding for the analytic pieces of an activation of moderate growth.
_SPLITS = (-8.0, -5.0, -3.0, -1.5, 0.0, 1.5, 3.0, 5.0, 8.0)
_PIECE_NODES = 16


def split_rule(s: np.ndarray | float, breaks: Sequence[float] = (), nodes: int = 24
               ) -> tuple[np.ndarray, np.ndarray]:
    """Points ``t`` and weights ``w`` with ``Σ w f(t) ≈ E[f(√s ξ)]`` for every variance in ``s``.

    Without ``breaks``: the ``nodes``-point Gauss–Hermite rule, ``t = √s x``.  With the
    activation's kinks/jumps ``breaks`` (in t): composite Gauss–Legendre on ξ ∈
    ``[−(10 + 2√s), 10 + 2√s]`` split at fixed points and at every ``b/√s``, so no
    piece straddles a kink — Gauss–Hermite across a kink converges only algebraically
    (about 1% error for ``|t|`` at 48 nodes), the split rule to rounding.  Shapes:
    ``s.shape + (N,)``.
    """
    s = np.asarray(s, dtype=float)
    sd = np.sqrt(s)[..., None]
    if not breaks:
        x, w = _gh_rule(nodes)
        return sd * x, np.broadcast_to(w, sd.shape[:-1] + w.shape)
    L = 10.0 + 2.0 * sd
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = np.where(sd > 0, np.asarray(breaks, dtype=float) / sd, 0.0)
    edges = np.concatenate([-L, np.broadcast_to(np.asarray(_SPLITS), sd.shape[:-1] + (len(_SPLITS),)),
                            np.clip(beta, -L, L), L], axis=-1)
    edges.sort(axis=-1)
    lo, hi = edges[..., :-1, None], edges[..., 1:, None]
    g, gw = np.polynomial.legendre.leggauss(_PIECE_NODES)
    half = 0.5 * (hi - lo)
    xi = (lo + hi) * 0.5 + half * g
    w = half * gw * np.exp(-0.5 * xi * xi) / math.sqrt(_TWO_PI)
    shape = sd.shape[:-1] + (-1,)
    return (sd[..., None] * xi).reshape(shape), w.reshape(shape)


def _staircase_mean(st: Staircase, s: np.ndarray) -> np.ndarray:
    sd = np.sqrt(s)
    out = np.full(s.shape, st.levels[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        for t, d in zip(st.thresholds, st.jumps):
            z = np.where(sd > 0, -t / sd, np.where(t < 0, np.inf, -np.inf))
            out = out + d * sps.ndtr(z)
    return out


def gaussian_mean(act: Activation, s: np.ndarray | float, *, quad_nodes: int = 24) -> np.ndarray:
    """``E[σ(√s ξ)]`` for an array of variances ``s ≥ 0`` (closed form or 1-D Gauss–Hermite)."""
    s = np.asarray(s, dtype=float)
    if act.staircase is not None:
        return _staircase_mean(act.staircase, s)
    pq = _closed_slopes(act)
    if pq is not None:
        p, q = pq
        return (p - q) * np.sqrt(s / _TWO_PI)  # E[p u⁺ − q u⁻] = (p − q) E[u⁺]
    if act.kernel is not None and act.kernel.has_closed_form:
        return act.kernel.mean(s)  # type: ignore[misc]
    x, w = split_rule(s, activation_breakpoints(act), quad_nodes)
    return np.sum(act(x) * w, axis=-1)


# --------------------------------------------------------------------------- #
# Pair expectations E[f(u) g(v)]
# --------------------------------------------------------------------------- #
def _rho(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    ab = a * b
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(ab > 0, c / np.sqrt(ab), 0.0)
    return np.clip(r, -1.0, 1.0)


def _relu_kernel(a: np.ndarray, b: np.ndarray, rho: np.ndarray) -> np.ndarray:
    th = np.arccos(rho)
    return np.sqrt(a * b) * (np.sqrt((1.0 - rho) * (1.0 + rho)) + (math.pi - th) * rho) / _TWO_PI


def gauss_hermite_expectation(
    f: Callable[[np.ndarray], np.ndarray],
    g: Callable[[np.ndarray], np.ndarray],
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    nodes: int = 24,
) -> np.ndarray:
    """``E[f(u) g(v)]`` for ``(u,v) ~ N(0, [[a,c],[c,b]])`` by a tensor Gauss–Hermite rule.

    Writes ``u = √a ξ1`` and ``v = √b (ρ ξ1 + √(1−ρ²) ξ2)`` and applies the
    ``nodes``-point probabilists' Hermite rule in each of ``ξ1, ξ2`` (exact for
    polynomials of degree ``≤ 2·nodes − 1`` in each variable).  ``a, b, c`` broadcast;
    cost ``nodes²`` evaluations of ``g`` per pair.
    """
    a, b, c = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float), np.asarray(c, float))
    rho = _rho(a, b, c)
    x, w = _gh_rule(nodes)
    sb = np.sqrt(b)
    beta1 = sb * rho
    beta2 = sb * np.sqrt((1.0 - rho) * (1.0 + rho))
    sa = np.sqrt(a)
    acc = np.zeros(np.broadcast_shapes(a.shape, b.shape, c.shape))
    for xk, wk in zip(x, w):
        inner = np.zeros_like(acc)
        base = beta1 * xk
        for xl, wl in zip(x, w):
            inner += wl * g(base + beta2 * xl)
        acc += wk * f(sa * xk) * inner
    return acc


def _staircase_pair(st: Staircase, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``E[σ(u)σ(v)]`` for a staircase (orthant probabilities via Owen's T)."""
    l0 = st.levels[0]
    rho = _rho(a, b, c)
    sa, sb = np.sqrt(a), np.sqrt(b)
    out = np.full(np.broadcast_shapes(a.shape, b.shape, c.shape), l0 * l0)
    mean_u = _staircase_mean(st, a) - l0
    mean_v = _staircase_mean(st, b) - l0
    out = out + l0 * (mean_u + mean_v)
    with np.errstate(divide="ignore", invalid="ignore"):
        hs = [np.where(sa > 0, t / sa, np.sign(t) * np.inf) for t in st.thresholds]
        ks = [np.where(sb > 0, t / sb, np.sign(t) * np.inf) for t in st.thresholds]
    # P(u > t_j, v > t_k) = P(−u < −t_j, −v < −t_k) = Φ₂(−t_j/√a, −t_k/√b; ρ)
    for dj, hj in zip(st.jumps, hs):
        for dk, kk in zip(st.jumps, ks):
            out = out + dj * dk * bivariate_normal_cdf(-hj, -kk, rho)
    return out


def _staircase_dirac(st: Staircase, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """``Σ_jk Δ_j Δ_k φ₂(t_j, t_k; [[a,c],[c,b]])``; ``+∞`` where the covariance is singular."""
    det = a * b - c * c
    shape = np.broadcast_shapes(a.shape, b.shape, c.shape)
    out = np.zeros(shape)
    ok = det > 1e-14 * np.maximum(a * b, 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = 1.0 / (_TWO_PI * np.sqrt(np.where(ok, det, 1.0)))
        for tj, dj in zip(st.thresholds, st.jumps):
            for tk, dk in zip(st.thresholds, st.jumps):
                q = (b * tj * tj - 2.0 * c * tj * tk + a * tk * tk) / np.where(ok, det, 1.0)
                out = out + dj * dk * norm * np.exp(-0.5 * q)
    any_jump = any(d != 0 for d in st.jumps)
    return np.where(ok, out, np.inf if any_jump else 0.0)


def pair_expectation(
    act: Activation,
    a: np.ndarray,
    b: np.ndarray,
    c: np.ndarray,
    *,
    derivative: bool = False,
    staircase_derivative: str = "dirac",
    quad_nodes: int = 24,
) -> np.ndarray:
    """``E[σ(u)σ(v)]`` (or ``E[σ'(u)σ'(v)]`` with ``derivative=True``), uncentered.

    ``(u, v) ~ N(0, [[a, c], [c, b]])``; arrays broadcast.  Closed forms where
    available (module docstring), else :func:`gauss_hermite_expectation`.
    """
    a, b, c = (np.asarray(v, dtype=float) for v in (a, b, c))
    st = act.staircase
    if st is not None:
        if not derivative:
            return _staircase_pair(st, a, b, c)
        if staircase_derivative == "ae":
            return np.zeros(np.broadcast_shapes(a.shape, b.shape, c.shape))
        if staircase_derivative != "dirac":
            raise ParameterError(f"staircase_derivative must be 'dirac' or 'ae', got '{staircase_derivative}'")
        return _staircase_dirac(st, a, b, c)
    pq = _closed_slopes(act)
    if pq is not None:
        # σ = q t + (p − q) relu(t) and E[u relu(v)] = c/2, so
        # E[σσ] = p q c + (p − q)² k_relu and E[σ'σ'] = p q + (p − q)² (π − θ)/(2π)
        p, q = pq
        shape = np.broadcast_shapes(a.shape, b.shape, c.shape)
        if p == q:  # no kink (and ρ undefined at a zero variance does not matter)
            return np.full(shape, p * q) if derivative else np.broadcast_to(p * q * c, shape).copy()
        rho = _rho(a, b, c)
        if derivative:
            return p * q + (p - q) ** 2 * (math.pi - np.arccos(rho)) / _TWO_PI
        return p * q * c + (p - q) ** 2 * _relu_kernel(a, b, rho)
    maps = act.kernel
    if maps is not None and maps.has_closed_form:
        return (maps.d_pair if derivative else maps.pair)(a, b, c)  # type: ignore[misc]
    fn = derivative_function(act) if derivative else act
    return gauss_hermite_expectation(fn, fn, a, b, c, quad_nodes)


def hermite_coefficients(
    fn: Callable[[np.ndarray], np.ndarray], s: np.ndarray, order: int, nodes: int = 200,
    breaks: Sequence[float] = (),
) -> np.ndarray:
    """Orthonormal Hermite coefficients ``A_k(s) = E[fn(√s ξ) h_k(ξ)]``, ``k = 0..order``.

    ``h_k = He_k/√k!`` (orthonormal for N(0,1)), evaluated by the stable recurrence
    ``h_{k+1} = (x h_k − √k h_{k−1})/√(k+1)``; the expectation is a ``nodes``-point
    Gauss–Hermite rule, or with ``breaks`` (the activation's kinks) the split rule of
    :func:`split_rule`.  Returns an array of shape ``(order + 1, len(s))``.
    """
    s = np.atleast_1d(np.asarray(s, dtype=float))
    if breaks:
        # per-point split rule (:func:`split_rule`): h_k at each point's own ξ nodes
        t, w = split_rule(s, breaks)
        with np.errstate(divide="ignore", invalid="ignore"):
            xi = np.where(s[:, None] > 0, t / np.sqrt(s)[:, None], 0.0)
        F = fn(t) * w
        out = np.empty((order + 1, s.size))
        h_prev, h = np.zeros_like(xi), np.ones_like(xi)
        out[0] = F.sum(axis=1)
        for k in range(order):
            h_prev, h = h, (xi * h - math.sqrt(k) * h_prev) / math.sqrt(k + 1)
            out[k + 1] = np.einsum("ij,ij->i", F, h)
        return out
    x, w = _gh_rule(nodes)
    F = fn(np.sqrt(s)[:, None] * x[None, :]) * w[None, :]
    return _hermite_table(x, order) @ F.T


def _hermite_table(x: np.ndarray, order: int) -> np.ndarray:
    """``h_k(x)`` for ``k = 0..order`` (rows), by the orthonormal three-term recurrence."""
    H = np.empty((order + 1, x.size))
    H[0] = 1.0
    if order >= 1:
        H[1] = x
    for k in range(1, order):
        H[k + 1] = (x * H[k] - math.sqrt(k) * H[k - 1]) / math.sqrt(k + 1)
    return H


def mehler_order(rho_max: float, tol: float) -> int:
    """Smallest ``M`` with ``rho_max^{M+1} ≤ tol``: the truncation bound of :func:`_mehler_block`."""
    return max(1, int(math.ceil(math.log(tol) / math.log(rho_max))) - 1)


def _mehler_block(Ai: np.ndarray, Aj: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """``Σ_{k≤M} ρ^k A_k(i) A_k(j)`` (Mehler's formula, truncated).

    Truncation error, by Cauchy–Schwarz and Parseval:
    ``|Σ_{k>M} ρ^k A_k(i) A_k(j)| ≤ |ρ|^{M+1} √(E f(u)²) √(E f(v)²)``.
    """
    acc = np.multiply.outer(Ai[0], Aj[0])
    P = np.ones_like(rho)
    tmp = np.empty_like(rho)
    for k in range(1, Ai.shape[0]):
        P *= rho
        np.multiply.outer(Ai[k], Aj[k], out=tmp)
        tmp *= P
        acc += tmp
    return acc


@dataclass(frozen=True)
class _LayerRule:
    """How one layer's expectations are evaluated for activations without a closed form."""

    rho_max: float = 0.8
    tol: float = 1e-12
    breaks: tuple[float, ...] = ()
    #: ``time.process_time()`` after which the layer is refused (None: no limit)
    deadline: float | None = None
    #: tqdm bar over the tensor-rule pairs (None: when stderr is a terminal)
    progress: bool | None = None


# --------------------------------------------------------------------------- #
# Certified quadrature (activations without a closed form)
# --------------------------------------------------------------------------- #
#: Panel widths of the composite Gauss–Legendre rules: at most ``_H_T`` in the
#: activation's argument t (tanh's poles lie π/2 off the real axis, so a width-1 panel
#: with 12 nodes is already exact to ~1e−19) and at most ``_H_XI`` = 2 in the standard normal
#: variable ξ (the Gaussian weight).  Both are only starting points: every result is
#: recomputed with a higher-order rule and the panels are halved until the two agree.
_H_T = 1.0
_H_XI = 2.0
#: Gauss–Legendre orders per panel of the two rules that are compared.
_M_COARSE, _M_FINE = 12, 20
#: Absolute accuracy asked of every quadrature, relative to ``1 + √(E f²)`` (1-D) or
#: ``1 + √(E f(u)² E f(v)²)`` (pairs); far below the Mehler truncation ``tol``.
_QUAD_TOL = 1e-14
#: Refinement stops (NumericalError) beyond this many panels per direction.
_MAX_PANELS = 4096
#: Elements per work array of the vectorized rules (about 32 MB of float64).
_WORK = 4_000_000


@lru_cache(maxsize=8)
def _gl(m: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(m)


def _panel_count(scale: float, half_range: float) -> int:
    """Uniform panels on ``[−half_range, half_range]`` in ξ so that a panel is at most
    ``_H_XI`` wide in ξ and ``_H_T`` wide in ``t = scale·ξ``."""
    width = min(_H_XI, _H_T / scale) if scale > 0 else _H_XI
    return max(2, int(math.ceil(2.0 * half_range / width)))


def _gl_nodes(edges: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (Gaussian density included) of ``m``-point Gauss–Legendre on every
    panel between consecutive ``edges`` (last axis); shapes ``edges.shape[:-1] + (P·m,)``."""
    g, gw = _gl(m)
    lo, hi = edges[..., :-1, None], edges[..., 1:, None]
    half = 0.5 * (hi - lo)
    xi = 0.5 * (lo + hi) + half * g
    w = half * gw * np.exp(-0.5 * xi * xi) / math.sqrt(_TWO_PI)
    shape = edges.shape[:-1] + (-1,)
    return xi.reshape(shape), w.reshape(shape)


def _xi_edges(sd: np.ndarray, breaks: Sequence[float], panels: int) -> np.ndarray:
    """Panel edges in ξ per row: ``panels`` uniform panels on ``[−L, L]``, ``L = 10 + 2√s``
    (the weight ``f(√s ξ)² φ(ξ)`` of an activation growing like ``e^t`` peaks at ``ξ = 2√s``;
    ``φ(10) ≈ 8e−23``), split at the activation's kinks ``b/√s``."""
    L = 10.0 + 2.0 * sd
    edges = L * np.linspace(-1.0, 1.0, panels + 1)
    if breaks:
        with np.errstate(divide="ignore", invalid="ignore"):
            bx = np.where(sd > 0, np.asarray(breaks, float) / sd, 0.0)
        edges = np.sort(np.concatenate([edges, np.clip(bx, -L, L)], axis=-1), axis=-1)
    return edges


def _one_dim(fn, sd: np.ndarray, breaks: Sequence[float], panels: int, m: int, order: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Hermite coefficients ``A_k = E[fn(√s ξ) h_k(ξ)]`` (k ≤ order) and ``E[fn(√s ξ)²]``
    with one composite rule; rows of ``sd`` (shape (r, 1)) are the points."""
    if not breaks:
        return _one_dim_shared(fn, sd, panels, m, order)
    xi, w = _gl_nodes(_xi_edges(sd, breaks, panels), m)
    F = np.asarray(fn(sd * xi), dtype=float)
    F = np.broadcast_to(F, xi.shape)
    diag = np.einsum("ij,ij->i", F * F, w)
    Fw = F * w
    out = np.empty((order + 1, xi.shape[0]))
    h_prev, h = np.zeros_like(xi), np.ones_like(xi)
    out[0] = Fw.sum(axis=1)
    for k in range(order):
        h_prev, h = h, (xi * h - math.sqrt(k) * h_prev) / math.sqrt(k + 1)
        out[k + 1] = np.einsum("ij,ij->i", Fw, h)
    return out, diag


def _one_dim_shared(fn, sd: np.ndarray, panels: int, m: int, order: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_one_dim` for an activation without kinks: every row uses the same ξ nodes
    (``panels`` uniform panels on ``[−L, L]``, ``L = 10 + 2 max √s``, wide enough for every
    row), so the Hermite functions ``h_k(ξ)`` are evaluated once and the coefficients of
    all rows are one matrix product ``(F·w) Hᵀ`` instead of a recurrence per row."""
    L = 10.0 + 2.0 * float(sd.max())
    xi, w = _gl_nodes(L * np.linspace(-1.0, 1.0, panels + 1), m)       # (N,)
    H = _hermite_table(xi, order)
    F = np.asarray(fn(sd * xi[None, :]), dtype=float)
    F = np.broadcast_to(F, (sd.shape[0], xi.size))
    Fw = F * w
    return H @ Fw.T, np.einsum("ij,ij->i", F, Fw)


def certified_coefficients(
    fn: Callable[[np.ndarray], np.ndarray], s: np.ndarray, order: int, *,
    breaks: Sequence[float] = (), rho_max: float = 0.8, spec: str = "activation",
    max_panels: int = _MAX_PANELS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hermite coefficients and second moments with a certified error, for every variance in ``s``.

    Returns ``A`` (shape ``(order+1, len(s))``, ``A_k(s) = E[fn(√s ξ) h_k(ξ)]``),
    ``second = E[fn(√s ξ)²]`` and ``err``: per point, the estimated error
    ``Σ_k rho_max^k |δA_k| + |δ second|`` — what enters the Mehler sums of :func:`layer_map`.

    Method: composite Gauss–Legendre on ``ξ ∈ [−(10 + 2√s), 10 + 2√s]``, panels at most 1
    wide in ξ and in ``t = √s ξ``, split at the activation's kinks.  Each result is
    computed with 12 and with 20 nodes per panel; the panels are halved until the two
    agree to ``1e−14 (1 + √second)`` (the 20-node values, returned, are then far more
    accurate still).  Work is in row chunks of bounded memory.

    Raises
    ------
    NumericalError
        No agreement with up to 4096 panels (e.g. an activation oscillating too fast), or
        non-finite values (the activation overflows at these variances).
    """
    s = np.atleast_1d(np.asarray(s, dtype=float))
    n = s.size
    A = np.empty((order + 1, n))
    second = np.empty(n)
    err = np.empty(n)
    weights = rho_max ** np.arange(order + 1)
    sd_all = np.sqrt(s)
    order_idx = np.argsort(s)  # chunks of similar variance share a panel count
    per_row = (_panel_count(float(sd_all.max()), 10.0 + 2.0 * float(sd_all.max())) + len(breaks)) * _M_FINE
    rows_per_chunk = max(1, _WORK // per_row)
    for i in range(0, n, rows_per_chunk):
        idx = order_idx[i:i + rows_per_chunk]
        smax = float(sd_all[idx].max())
        panels = _panel_count(smax, 10.0 + 2.0 * smax)
        sd = sd_all[idx, None]
        while True:
            with np.errstate(all="ignore"):
                Ac, dc = _one_dim(fn, sd, breaks, panels, _M_COARSE, order)
                Af, df = _one_dim(fn, sd, breaks, panels, _M_FINE, order)
            if not (np.all(np.isfinite(Af)) and np.all(np.isfinite(df))):
                raise NumericalError(f"E[f(√s ξ)²] of {spec} is not finite in float64 for variances "
                                     f"up to {smax**2:.4g}: the activation overflows")
            e = weights @ np.abs(Af - Ac) + np.abs(df - dc)
            if np.all(e <= _QUAD_TOL * (1.0 + np.sqrt(df))):
                break
            panels *= 2
            if panels > max_panels:
                raise NumericalError(f"Gaussian expectations of {spec} at variances up to {smax**2:.4g}: "
                                     f"quadrature did not converge with {max_panels} panels "
                                     f"(error estimate {float(e.max()):.2g})")
        A[:, idx], second[idx], err[idx] = Af, df, e
    return A, second, err


def _pair_rule(f, a, b, rho, breaks, panels_s, panels_d, m):
    """``E[f(u) f(v)]`` for pairs (1-D arrays) with ``|ρ| < 1`` by a tensor rule in the
    symmetric coordinates ``ξ₁ = αS + βD``, ``ξ₂ = ±(αS − βD)``, ``α = √((1+|ρ|)/2)``,
    ``β = √((1−|ρ|)/2)`` (S, D independent standard normals): for ``|ρ| → 1`` the integrand
    varies slowly in D (scale β) and like a 1-D expectation in S.  Composite
    Gauss–Legendre in both, with the D-panels split where ``u`` or ``v`` crosses a kink."""
    sgn = np.where(rho < 0, -1.0, 1.0)[:, None, None]
    r = np.abs(rho)
    al = np.sqrt(0.5 * (1.0 + r))[:, None, None]
    be = np.sqrt(0.5 * (1.0 - r))[:, None, None]
    sa, sb = np.sqrt(a)[:, None, None], np.sqrt(b)[:, None, None]
    Ls = 10.0 + 2.0 * float(max(sa.max(), sb.max()))
    S, wS = _gl_nodes(Ls * np.linspace(-1.0, 1.0, panels_s + 1), m)      # (nS,)
    d_edges = np.broadcast_to(10.0 * np.linspace(-1.0, 1.0, panels_d + 1), (r.size, S.size, panels_d + 1))
    if breaks:
        Sx = S[None, :, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            kinks = [(t / sa - al * Sx) / be for t in breaks] + [(al * Sx - sgn * t / sb) / be for t in breaks]
        kinks = np.concatenate([np.broadcast_to(np.nan_to_num(k, nan=0.0, posinf=10.0, neginf=-10.0),
                                                (r.size, S.size, 1)) for k in kinks], axis=-1)
        d_edges = np.sort(np.concatenate([d_edges, np.clip(kinks, -10.0, 10.0)], axis=-1), axis=-1)
    D, wD = _gl_nodes(np.ascontiguousarray(d_edges), m)                    # (P, nS, nD)
    Sx = S[None, :, None]
    u = sa * (al * Sx + be * D)
    v = sgn * sb * (al * Sx - be * D)
    inner = np.sum(np.asarray(f(u), float) * np.asarray(f(v), float) * wD, axis=-1)  # (P, nS)
    return inner @ wS


def certified_pairs(
    fn: Callable[[np.ndarray], np.ndarray], a: np.ndarray, b: np.ndarray, c: np.ndarray, *,
    breaks: Sequence[float] = (), scale: np.ndarray | None = None, spec: str = "activation",
    deadline: float | None = None, progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``E[fn(u) fn(v)]`` for ``(u, v) ~ N(0, [[a, c], [c, b]])`` (1-D arrays of pairs) with an
    error estimate; meant for strongly correlated pairs, where Mehler's series is slow.

    Tensor composite Gauss–Legendre rule of :func:`_pair_rule` (panels ≤ 2 wide in ξ and ≤ 1 in
    t per direction), computed with 12 and 20 nodes per panel; the panels of the pairs whose
    two values differ by more than ``1e−14 (1 + scale)`` are halved until they agree
    (``scale``: per pair, e.g. ``√(E fn(u)² E fn(v)²)``; default 0).  Returns the 20-node
    values and the estimates ``|coarse − fine|``.

    ``deadline`` (a ``time.process_time()`` value) refuses the work once passed;
    ``progress`` shows a tqdm bar over the pairs on stderr (default: for 64 pairs or more
    when stderr is a terminal).

    Raises
    ------
    NumericalError
        No agreement with up to 4096 panels per direction, or non-finite values.
    ResourceError
        The ``deadline`` passed before every pair was certified.
    """
    a, b, c = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (a, b, c))
    from tqdm.auto import tqdm

    show = (sys.stderr.isatty() and a.size >= 64) if progress is None else bool(progress)
    with tqdm(total=a.size, desc=f"exact kernel pairs ({spec})", unit="pair", leave=False,
              disable=not show, file=sys.stderr) as bar:
        return _certified_pairs(fn, a, b, c, breaks, scale, spec, deadline, bar)


def _certified_pairs(fn, a, b, c, breaks, scale, spec, deadline, bar) -> tuple[np.ndarray, np.ndarray]:
    """The refinement loop of :func:`certified_pairs`."""
    rho = _rho(a, b, c)
    scale = np.zeros(a.size) if scale is None else np.asarray(scale, float)
    out = np.empty(a.size)
    err = np.empty(a.size)
    todo = np.arange(a.size)
    refine, certified = 1, 0
    while todo.size:
        sa = np.sqrt(np.maximum(a[todo], b[todo]))
        r = np.abs(rho[todo])
        # group pairs by their panel counts (similar variances / correlations)
        ps = np.array([_panel_count(float(x) * math.sqrt(0.5 * (1 + y)), 10.0 + 2.0 * float(x))
                       for x, y in zip(sa, r)]) * refine
        pd = np.array([_panel_count(float(x) * math.sqrt(0.5 * (1 - y)), 10.0) for x, y in zip(sa, r)]) * refine
        failed = []
        for key in sorted(set(zip(ps.tolist(), pd.tolist()))):
            sel = todo[(ps == key[0]) & (pd == key[1])]
            if max(key) > _MAX_PANELS:
                raise NumericalError(f"E[f(u)f(v)] of {spec}: quadrature did not converge with "
                                     f"{_MAX_PANELS} panels (variances up to "
                                     f"{float(max(a[sel].max(), b[sel].max())):.4g})")
            nS = (key[0]) * _M_FINE
            nD = (key[1] + 2 * len(breaks)) * _M_FINE
            chunk = max(1, _WORK // (nS * nD))
            for j0 in range(0, sel.size, chunk):
                p = sel[j0:j0 + chunk]
                if deadline is not None and time.process_time() > deadline:
                    raise ResourceError(f"E[f(u)f(v)] of {spec}: the time budget ran out with "
                                        f"{a.size - certified} of {a.size} strongly correlated pairs "
                                        f"not yet certified; raise the budget")
                with np.errstate(all="ignore"):
                    vc = _pair_rule(fn, a[p], b[p], rho[p], breaks, key[0], key[1], _M_COARSE)
                    vf = _pair_rule(fn, a[p], b[p], rho[p], breaks, key[0], key[1], _M_FINE)
                if not np.all(np.isfinite(vf)):
                    raise NumericalError(f"E[f(u)f(v)] of {spec} is not finite in float64: the activation "
                                         f"overflows at variances up to {float(max(a[p].max(), b[p].max())):.4g}")
                e = np.abs(vf - vc)
                ok = e <= _QUAD_TOL * (1.0 + scale[p])
                out[p], err[p] = vf, e
                failed.append(p[~ok])
                certified += int(ok.sum())
                bar.update(int(ok.sum()))
        todo = np.concatenate(failed) if failed else np.array([], dtype=int)
        refine *= 2
    return out, err


#: Largest Mehler order used for activations without kinks (their Hermite coefficients
#: decay fast: tanh's Parseval tail falls below 1e−12 of ``E f²`` by k ≈ 100 at variance 1
#: and by k ≈ 400 at variance 5; swish's by k ≈ 190 at variance 10).
_M_CAP = 512
#: Panel limit of that order-``_M_CAP`` attempt (its ``H_k(ξ)`` table is
#: ``(_M_CAP + 1) × 20·panels`` floats: 21 MB at 256 panels).
_MAX_PANELS_TAIL = 256


def _mehler_coefficients(fn, d: np.ndarray, rule: _LayerRule, spec: str
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hermite coefficients ``A`` (``M + 1`` rows), second moments and certified Parseval tails.

    Returns ``(A, second, tail)`` with ``tail_i ≥ Σ_{k>M} A_k(i)²`` for every point, the
    quantity that bounds the Mehler truncation error of :func:`_quadrature_block` at *any*
    correlation, ``ρ = 1`` included.  For an activation with kinks the coefficients decay only
    algebraically: ``M = mehler_order(rho_max, tol)`` and the trivial bound ``tail = second``
    (the Mehler series is then used for ``|ρ| ≤ rho_max`` only, as before).  Without kinks the
    coefficients are computed to order ``_M_CAP`` and the tail is
    ``T_M = E f² − Σ_{k≤M} A_k²`` (Parseval, both sides from one quadrature rule) plus a
    margin for the certified quadrature errors ``δ`` (``|δ Σ A_k²| ≤ 2√(E f²) Σ|δA_k|``) and
    for rounding in the sum (``4(M+2)·eps·E f²``).  ``M`` is the smallest order (at least
    ``mehler_order(rho_max, tol)``) at which every point that reaches ``T ≤ tol·E f²`` at all
    does so; such points need no tensor rule at any correlation (their pairs' bound is at most
    ``tol √(E f(u)² E f(v)²)``).  If some point never gets there (large variance), ``M = _M_CAP``
    so that the factor ``|ρ|^{M+1}`` covers as many of its pairs as possible.
    """
    M0 = mehler_order(rule.rho_max, rule.tol)
    if rule.breaks or M0 >= _M_CAP:
        A, second, _ = certified_coefficients(fn, d, M0, breaks=rule.breaks, rho_max=rule.rho_max, spec=spec)
        return A, second, second
    try:
        A, second, err = certified_coefficients(fn, d, _M_CAP, rho_max=1.0, spec=spec,
                                                max_panels=_MAX_PANELS_TAIL)
    except NumericalError:
        # Σ_k |δA_k| over all _M_CAP + 1 coefficients cannot be certified (rounding in
        # E f² at large variance, or a fast-oscillating activation): the rule of kinked ones
        A, second, _ = certified_coefficients(fn, d, M0, rho_max=rule.rho_max, spec=spec)
        return A, second, second
    k = np.arange(_M_CAP + 1)[:, None]
    margin = (2.0 * np.sqrt(second) + 1.0) * err + 4.0 * (k + 2) * np.finfo(float).eps * second
    T = np.minimum(np.maximum(second - np.cumsum(A * A, axis=0), 0.0) + margin, second + err)
    good = T <= rule.tol * second                                   # (M_CAP + 1, n)
    reached = good[-1]
    if np.all(reached):
        M = max(M0, int(np.argmax(good, axis=0).max()))
    else:
        M = _M_CAP
    return A[:M + 1], second, T[M]


def _deadline(budget: float | None) -> float | None:
    """The ``time.process_time()`` value at which a ``budget`` of CPU seconds runs out."""
    if budget is None:
        return None
    if not (isinstance(budget, (int, float)) and math.isfinite(budget) and budget > 0):
        raise ParameterError(f"budget must be a positive number of seconds, got {budget!r}")
    return time.process_time() + float(budget)


def _check_deadline(rule: _LayerRule, spec: str) -> None:
    if rule.deadline is not None and time.process_time() > rule.deadline:
        raise ResourceError(f"exact kernel of {spec}: the time budget ran out before the layer was "
                            f"certified; raise the budget")


def _quadrature_block(
    fn: Callable[[np.ndarray], np.ndarray],
    A: np.ndarray,
    second: np.ndarray,
    i0: int,
    i1: int,
    d: np.ndarray,
    c: np.ndarray,
    rule: _LayerRule,
    spec: str,
    tail: np.ndarray | None = None,
) -> np.ndarray:
    """``E[fn(u) fn(v)]`` on rows ``i0:i1``, columns ``i0:``: Mehler's series where its
    truncation is certified, the certified 1-D second moments on the diagonal, and the
    certified tensor rule (:func:`certified_pairs`) on the remaining pairs.

    With ``M + 1 = len(A)`` terms the truncation error of a pair is at most
    ``|ρ|^{M+1} √(T_i T_j)`` (Cauchy–Schwarz), ``T`` = ``tail``, a bound on the Parseval
    tail ``Σ_{k>M} A_k²`` of each point (default: the second moment, which bounds it
    trivially — then exactly the pairs with ``|ρ| > rho_max`` exceed ``tol``).  A pair
    takes the tensor rule when that bound exceeds ``tol·√(E fn(u)² E fn(v)²)``."""
    a = d[i0:i1, None]
    b = d[None, i0:]
    rho = _rho(a, b, c)
    out = _mehler_block(A[:, i0:i1], A[:, i0:], rho)
    T = second if tail is None else tail
    with np.errstate(under="ignore"):
        bound = np.abs(rho) ** A.shape[0] * np.sqrt(np.multiply.outer(T[i0:i1], T[i0:]))
    hi = bound > rule.tol * np.sqrt(np.multiply.outer(second[i0:i1], second[i0:]))
    diag = np.arange(i1 - i0)
    out[diag, diag] = second[i0:i1]
    hi[diag, diag] = False
    if np.any(hi):
        aa, bb = np.broadcast_arrays(a, b)
        sc = np.sqrt(np.multiply.outer(second[i0:i1], second[i0:]))[hi]
        out[hi], _ = certified_pairs(fn, aa[hi], bb[hi], c[hi], breaks=rule.breaks, scale=sc, spec=spec,
                                     deadline=rule.deadline, progress=rule.progress)
    return out


# --------------------------------------------------------------------------- #
# --------------------------------------------------------------------------- #
# Scales and centering constants
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class LayerScales:
    """The theory's scale recursion and centering constants (docs/reference.rst §1, §4).

    Attributes
    ----------
    taus : tuple of float
        ``τ_0, …, τ_L`` (positive roots), ``τ_ℓ² = Var σ_ℓ(τ_{ℓ−1} ξ)``.
    centering : tuple of float
        ``c_ℓ = E[σ_ℓ(τ_{ℓ−1} ξ)]`` for ``ℓ = 1..L``.
    """

    taus: tuple[float, ...]
    centering: tuple[float, ...]


def _mean_variance_quad(act: Activation, tau: float) -> tuple[float, float]:
    """``E[σ(τξ)]`` and ``Var σ(τξ)`` by adaptive QUADPACK, split at the activation's kinks.

    A fixed Gauss–Hermite rule is not good enough here: across a kink it converges only
    algebraically (1% for ``|t|/2`` at 48 nodes) and for ``tanh(τξ)`` at ``τ = 2`` (poles
    at ``±iπ/4`` in ξ) 48 nodes leave a 4e−4 error in the variance.  The variance is
    integrated as ``E[(σ − c)²]`` (no cancellation).
    """
    from scipy.integrate import IntegrationWarning, quad

    # ξ beyond ±38.6 has φ(ξ) = 0 in float64; a finite range also keeps QUADPACK from
    # evaluating σ at ±∞ (inf·0 = nan for growing activations such as softplus)
    cuts = sorted({0.0, *(b / tau for b in activation_breakpoints(act) if abs(b / tau) < _XI_MAX)})
    edges = [-_XI_MAX, *cuts, _XI_MAX]

    def integrate(g: Callable[[float], float]) -> float:
        total, err = 0.0, 0.0
        for lo, hi in zip(edges[:-1], edges[1:]):
            with warnings.catch_warnings():  # QUADPACK's own warnings: the error estimate is checked below
                warnings.simplefilter("ignore", IntegrationWarning)
                v, e = quad(g, lo, hi, epsabs=1e-15, epsrel=1e-13, limit=200)
            total, err = total + v, err + e
        if not (math.isfinite(total) and err <= 1e-9 * max(1.0, abs(total))):
            raise NumericalError(f"E[σ(τξ)] of {act.spec} at tau={tau:.6g}: quadrature did not converge "
                                 f"(value {total:.6g}, error estimate {err:.2g})")
        return total

    def weighted(x: float, power: int, shift: float) -> float:
        w = _npdf(x)
        if w == 0.0:
            return 0.0
        return (float(act(np.array([tau * x]))[0]) - shift) ** power * w

    c = integrate(lambda x: weighted(x, 1, 0.0))
    var = integrate(lambda x: weighted(x, 2, c))
    return c, var


#: |ξ| beyond which the standard normal density underflows to 0 in float64
_XI_MAX = 38.6


def _npdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(_TWO_PI)


def layer_scales(activations: Sequence[Activation | str], tau0: float) -> LayerScales:
    """``τ_ℓ`` and ``c_ℓ`` layer by layer, from the same one-layer maps as the kernels.

    ``c_ℓ = E[σ_ℓ(τ_{ℓ−1} ξ)]`` and ``τ_ℓ² = Var σ_ℓ(τ_{ℓ−1} ξ)``: the kernel maps'
    closed forms on the diagonal (``a = b = c = τ²``) where they exist, otherwise
    adaptive quadrature split at the activation's kinks (:func:`_mean_variance_quad`).
    Independent of the moment engine (:mod:`ntk_theory.moments`), against which
    ``tests/test_exact.py`` checks it.
    """
    if not (math.isfinite(tau0) and tau0 > 0):
        raise DomainError(f"tau0 must be positive and finite, got {tau0}")
    from .coefficients import scale_recursion

    def mean_variance(act: Activation, tau: float) -> tuple[float, float]:
        if closed_form_name(act) is None:
            return _mean_variance_quad(act, tau)
        s = np.array(tau * tau)
        c = float(gaussian_mean(act, s))
        return c, float(pair_expectation(act, s, s, s)) - c * c

    layers = scale_recursion([parse_activation(a) for a in activations], float(tau0), mean_variance)
    return LayerScales(taus=(float(tau0), *(t for _, _, t in layers)),
                       centering=tuple(c for _, c, _ in layers))


# --------------------------------------------------------------------------- #
# Kernels
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, eq=False)
class ExactKernels:
    """Exact limiting kernels of docs/reference.rst §3.

    Attributes
    ----------
    K : tuple of ndarray
        ``K_0 = XᵀX, K_1, …, K_L`` (n×n).
    Theta : tuple of ndarray
        ``Θ_0 = XᵀX, Θ_1, …, Θ_L``; may contain ``+∞`` for staircases with
        ``staircase_derivative="dirac"``.
    Kdot : tuple of ndarray
        ``K̇_1, …, K̇_L``.
    centering : tuple of float
        The constants ``c_ℓ`` subtracted at every layer.
    methods : tuple of str
        ``"closed:<family>"`` or ``"gauss-hermite(<nodes>)"`` per layer.
    """

    K: tuple[np.ndarray, ...]
    Theta: tuple[np.ndarray, ...]
    Kdot: tuple[np.ndarray, ...]
    centering: tuple[float, ...]
    methods: tuple[str, ...]

    @property
    def ck(self) -> np.ndarray:
        """The last layer's ``K_L``."""
        return self.K[-1]

    @property
    def ntk(self) -> np.ndarray:
        """The last layer's ``Θ_L``."""
        return self.Theta[-1]


def _cache_rows(n: int) -> int:
    """Rows of an ``n``-column block of about 2^20 entries (8 MiB in float64): element-wise
    passes over such blocks stay in cache."""
    return max(1, 2**20 // max(n, 1))


def exact_memory_bytes(n: int, L: int, *, block_bytes: int = 256 * 2**20) -> int:
    """Peak memory estimate of :func:`exact_kernels`: ``3L + 2`` stored n×n float64 matrices,
    one temporary, and the row-block work space."""
    return int((3 * L + 3) * 8 * n * n + 4 * block_bytes)


def _block_rows(n: int, block_bytes: int, per_entry_arrays: int) -> int:
    return max(1, min(n, int(block_bytes // (8 * max(n, 1) * per_entry_arrays))))


def _centered_closed(act: Activation, a, b, c, center: float) -> np.ndarray:
    """``E[(σ(u) − c)(σ(v) − c)]`` with a constant ``c``, from the closed forms."""
    raw = pair_expectation(act, a, b, c)
    if center == 0.0:
        return raw
    return raw - center * (gaussian_mean(act, a) + gaussian_mean(act, b)) + center * center


def _arccos_block(p: float, q: float, center: float, d_i: np.ndarray, d_j: np.ndarray,
                  m_i: np.ndarray, m_j: np.ndarray, c: np.ndarray, derivative: bool,
                  out_k: np.ndarray | None = None, out_kd: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Centred ``E[σσ]`` and ``E[σ'σ']`` of ``σ = p t⁺ − q t⁻`` on one block, fused.

    The same closed forms as :func:`pair_expectation` (``ρ``, ``θ = arccos ρ`` computed once
    for both kernels) evaluated in place on three block-sized buffers: the arithmetic of
    the formula and nothing else (no per-call broadcasting temporaries, no second
    ``arccos``).  ``d_i``/``d_j`` are the variances ``K(x,x)`` of the rows and columns,
    ``m_i``/``m_j`` the means ``E σ`` (for the centring), ``c`` the covariances;
    ``out_k``/``out_kd`` receive the results (views of the kernels being built: no copy).
    Agrees with the unfused path to rounding (tests/test_exact.py).
    """
    s = np.multiply(d_i[:, None], d_j[None, :])
    np.sqrt(s, out=s)                                      # √(ab), exactly a on the diagonal:
    rho = np.divide(c, s)                                  # ρ = 1 there, θ = 0 (arccos is
    #                                                        ill-conditioned at 1)
    np.clip(rho, -1.0, 1.0, out=rho)
    th = np.arccos(rho, out=out_kd if derivative else None)
    np.subtract(math.pi, th, out=th)                       # π − θ
    w = np.subtract(1.0, rho, out=out_k)
    t = np.add(1.0, rho)
    np.multiply(w, t, out=w)
    np.sqrt(w, out=w)                                      # sin θ = √((1 − ρ)(1 + ρ))
    np.multiply(th, rho, out=t)
    w += t                                                 # sin θ + (π − θ) cos θ
    w *= s
    w *= (p - q) ** 2 / _TWO_PI
    if p * q != 0.0:
        np.multiply(c, p * q, out=t)
        w += t
    if center != 0.0:
        w -= (center * m_i)[:, None]
        w -= (center * m_j)[None, :]
        w += center * center
    if not derivative:
        return w, None
    th *= (p - q) ** 2 / _TWO_PI
    if p * q != 0.0:
        th += p * q
    return w, th


def layer_map(
    act: Activation,
    K_prev: np.ndarray,
    center: float,
    *,
    derivative: bool = True,
    staircase_derivative: str = "dirac",
    rho_max: float = 0.8,
    tol: float = 1e-12,
    block_bytes: int = 256 * 2**20,
    budget: float | None = None,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """One layer: ``(K_ℓ, K̇_ℓ)`` from ``K_{ℓ−1}`` with centering constant ``center``.

    Closed forms where available.  Otherwise (docs/reference.rst §3 "otherwise 2-D quadrature"):
    Mehler's formula ``E[f(u)f(v)] = Σ_k ρ^k A_k(a) A_k(b)`` with per-point Hermite
    coefficients (:func:`certified_coefficients`) for pairs with ``|ρ| ≤ rho_max``,
    truncated at ``M = mehler_order(rho_max, tol)`` so that the truncation error is at
    most ``tol·√(E f(u)² E f(v)²)``; the diagonal from the same certified 1-D rule, and
    the pairs with ``|ρ| > rho_max`` (near-duplicates) from :func:`certified_pairs`.
    Cost: ``O(M n²)`` for the Mehler part.

    Works on row blocks of the upper triangle and mirrors them, so the work space is
    about ``block_bytes`` whatever ``n``.
    """
    n = K_prev.shape[0]
    d = np.diag(K_prev).copy()
    if np.any(~np.isfinite(d)) or np.any(d <= 0):
        raise DomainError("a layer input has a zero or non-finite variance K(x,x); "
                          "remove zero samples or check the previous layer")
    if not (0 < rho_max < 1 and 0 < tol < 1):
        raise ParameterError("need 0 < rho_max < 1 and 0 < tol < 1")
    K = np.empty((n, n))
    Kd = np.empty((n, n)) if derivative else None
    closed = closed_form_name(act)
    breaks: tuple[float, ...] = ()
    if closed is None:
        smax = float(np.sqrt(d.max()))
        breaks = activation_breakpoints(act) + _jump_points(act, smax * (10.0 + 2.0 * smax))
    rule = _LayerRule(rho_max=rho_max, tol=tol, breaks=breaks, progress=progress,
                      deadline=_deadline(budget))
    if closed is None:
        f = lambda t: act(t) - center  # noqa: E731  (centred before integrating: no cancellation)
        A, A2, T = _mehler_coefficients(f, d, rule, act.spec)
        dfn = derivative_function(act) if derivative else None
        if derivative:
            Ad, Ad2, Td = _mehler_coefficients(dfn, d, rule, f"the derivative of {act.spec}")
    fused = None
    pq = _closed_slopes(act) if closed is not None and act.staircase is None else None
    if pq is not None and pq[0] != pq[1]:  # (p = q has no kink and its own branch)
        fused = (pq[0], pq[1], gaussian_mean(act, d))
    B = _block_rows(n, block_bytes, 12 if closed is not None else 6)
    if fused is not None:
        B = max(1, min(B, _cache_rows(n)))  # the block's buffers stay in cache
        p_, q_, mean = fused

        def arccos_rows(i0: int) -> None:
            # upper-triangle row blocks, written in place (blocks are independent and run
            # in parallel, the widest first); mirrored tile by tile below
            i1 = min(n, i0 + B)
            _arccos_block(p_, q_, center, d[i0:i1], d[i0:], mean[i0:i1], mean[i0:],
                          K_prev[i0:i1, i0:], Kd is not None, out_k=K[i0:i1, i0:],
                          out_kd=None if Kd is None else Kd[i0:i1, i0:])

        for_each_block(arccos_rows, range(0, n, B))
        mirror_upper(K)
        if Kd is not None:
            mirror_upper(Kd)
        return K, Kd
    for i0 in range(0, n, B):
        i1 = min(n, i0 + B)
        a = d[i0:i1, None]
        b = d[None, i0:]
        c = K_prev[i0:i1, i0:]
        if closed is None:
            _check_deadline(rule, act.spec)
            blk = _quadrature_block(f, A, A2, i0, i1, d, c, rule, act.spec, tail=T)
        else:
            blk = _centered_closed(act, a, b, c, center)
        K[i0:i1, i0:] = blk
        K[i0:, i0:i1] = blk.T
        if Kd is not None:
            if closed is None:
                bd = _quadrature_block(dfn, Ad, Ad2, i0, i1, d, c, rule, act.spec, tail=Td)
            else:
                bd = pair_expectation(act, a, b, c, derivative=True,
                                      staircase_derivative=staircase_derivative)
            Kd[i0:i1, i0:] = bd
            Kd[i0:, i0:i1] = bd.T
    return K, Kd


def exact_kernels(
    X: np.ndarray,
    activations: Sequence[Activation | str],
    *,
    centering: Sequence[float] | str | None = None,
    tau0: float | None = None,
    ntk: bool = True,
    staircase_derivative: str = "dirac",
    rho_max: float = 0.8,
    tol: float = 1e-12,
    block_bytes: int = 256 * 2**20,
    budget: float | None = None,
    progress: bool | None = None,
) -> ExactKernels:
    """Exact limiting CK and NTK of docs/reference.rst §3 for the data ``X`` (p×n, scaled as in §2).

    Parameters
    ----------
    X : ndarray, shape (p, n)
    activations : sequence of Activation or spec strings
        ``σ_1, …, σ_L``.
    centering : sequence of float, "none" or None
        Constants ``c_ℓ``; ``"none"`` for uncentered activations; ``None`` (default) for
        the theory's ``c_ℓ = E[σ_ℓ(τ_{ℓ−1} ξ)]`` from :func:`layer_scales` at ``tau0``.
    tau0 : float, optional
        Scale of the data for the default centering; default ``√(mean_i ‖x_i‖²)``
        (pass ``DataStatistics.tau0`` for the population value ``√(tr C°/p)``).
    ntk : bool
        Also compute ``K̇_ℓ`` and ``Θ_ℓ`` (default).
    staircase_derivative : {"dirac", "ae"}
        See the module docstring.
    rho_max, tol :
        Mehler settings for activations without closed form (see :func:`layer_map`).
    block_bytes : int
        Work space per row block.
    budget : float, optional
        CPU seconds allowed for each layer computed by quadrature (activations without a
        closed form); past it the layer is refused with a
        :class:`~ntk_theory.errors.ResourceError` instead of returning uncertified numbers.
    progress : bool, optional
        A tqdm bar on stderr over the pairs that need the 2-D tensor rule (default: when
        stderr is a terminal).

    Raises
    ------
    ResourceError
        When the estimated peak memory exceeds :data:`MEMORY_LIMIT_BYTES`.
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ParameterError(f"X must be a p×n matrix, got shape {X.shape}")
    acts = [parse_activation(a) for a in activations]
    if not acts:
        raise ParameterError("need at least one activation")
    n = X.shape[1]
    need = exact_memory_bytes(n, len(acts), block_bytes=block_bytes)
    if need > MEMORY_LIMIT_BYTES:
        raise ResourceError.memory(f"exact kernels for n={n}, L={len(acts)}", need, MEMORY_LIMIT_BYTES)
    if not np.all(np.isfinite(X)):
        raise ParameterError("X contains non-finite values")
    K0 = gram(X)  # XᵀX by a symmetric rank-p update (half the flops of X.T @ X)
    if isinstance(centering, str):
        if centering != "none":
            raise ParameterError(f"centering must be a list of numbers, 'none' or None, got '{centering}'")
        cs = tuple(0.0 for _ in acts)
    elif centering is None:
        t0 = float(np.sqrt(np.mean(np.diag(K0)))) if tau0 is None else float(tau0)
        cs = layer_scales(acts, t0).centering
    else:
        cs = tuple(float(v) for v in centering)
        if len(cs) != len(acts) or not all(math.isfinite(v) for v in cs):
            raise ParameterError(f"centering needs {len(acts)} finite numbers, got {list(centering)}")
    Ks, Ths, Kds, methods = [K0], [K0], [], []
    maybe_inf = False
    for act, c in zip(acts, cs):
        K, Kd = layer_map(act, Ks[-1], c, derivative=ntk, staircase_derivative=staircase_derivative,
                          rho_max=rho_max, tol=tol, block_bytes=block_bytes, budget=budget,
                          progress=progress)
        name = closed_form_name(act)
        methods.append(f"closed:{name}" if name else
                       f"mehler(rho<={rho_max},tol={tol:g})+certified-gauss-legendre")
        Ks.append(K)
        if Kd is not None:
            # Θ_ℓ = K_ℓ + Θ_{ℓ−1} ⊙ K̇_ℓ with a single n×n allocation, row blocks in parallel
            Th = np.empty_like(K)
            rows = _cache_rows(n)

            def theta_rows(i0: int, Th=Th, T_prev=Ths[-1], K=K, Kd=Kd, fix=maybe_inf) -> None:
                r = slice(i0, min(n, i0 + rows))
                with np.errstate(invalid="ignore"):
                    np.multiply(T_prev[r], Kd[r], out=Th[r])
                if fix:  # only a staircase's Dirac K̇ puts infinities into Θ: 0·∞ from an
                    blk = Th[r]  # infinite Θ diagonal is 0 where K̇ vanishes
                    blk[Kd[r] == 0] = 0.0
                Th[r] += K[r]

            for_each_block(theta_rows, range(0, n, rows))
            Ths.append(Th)
            Kds.append(Kd)
            maybe_inf = maybe_inf or act.staircase is not None
    return ExactKernels(K=tuple(Ks), Theta=tuple(Ths) if ntk else (), Kdot=tuple(Kds),
                        centering=cs, methods=tuple(methods))
