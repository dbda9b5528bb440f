"""What can match what: Hermite-budget bounds and feasibility maps (docs/reference.rst §6).

Three tools back the "Feasibility" facts of docs/reference.rst §6 with reproducible numbers:

* :func:`staircase_hermite_sup` — the largest fraction of its variance that a
  K-level staircase can put in the first two Hermite terms,
  ``sup (τ²m1² + τ⁴m2²/2)/Var``.  For fixed thresholds the levels enter a ratio of
  quadratic forms, so the best levels are an eigenvector and the fraction is the top
  eigenvalue of a 2×2 matrix (:func:`hermite_capture`); the supremum over the
  thresholds is a (K−1)-dimensional maximization.  An activation whose two-term
  fraction exceeds it cannot be α-matched *exactly* by any K-level staircase at any
  scale, since α-matching fixes the scale-free triple and hence the fraction.
* :func:`best_staircase_match` — the best relative residual to a scale-free triple
  over the full K-level staircase parameter space (thresholds and levels), and
  :func:`residual_lower_bound`, the bound the Hermite supremum implies for it.
* :func:`feasibility_cell` / :func:`delta_zero_cell` — one entry of a family ×
  activation × τ feasibility map, with the bound that rules a failure out.

The scale-free triple of an activation at scale τ is
``t = (τ²m1²/Var, τ⁴m2²/Var, τ²w̄2/Var)`` (docs/reference.rst §6); its residual to a target
``T`` is the Euclidean norm of the componentwise relative errors,
``‖(t − T)/T‖₂``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import mpmath as mp
import numpy as np
from scipy import optimize
from scipy import special as sps

from ..activations import Activation, parse_activation
from ..errors import InfeasibleError, ParameterError
from .families import stair_moments_np
from .network import DenseLayer, compress_network, dense_layer_moments
from .solve import solve_alpha

__all__ = [
    "HermiteSup",
    "StaircaseMatch",
    "FeasibilityCell",
    "hermite_capture",
    "hermite_capture_mp",
    "staircase_hermite_sup",
    "scale_free_triple",
    "two_term_fraction",
    "residual_lower_bound",
    "best_staircase_match",
    "BOUND_LABELS",
    "bound_label",
    "feasibility_cell",
    "delta_zero_cell",
]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# --------------------------------------------------------------------------- #
# Hermite budget of a staircase
# --------------------------------------------------------------------------- #
def _interval_vectors(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per interval ``I_k`` of the thresholds: ``(E[h1 1_k], E[h2 1_k])`` rows and ``P(I_k)``.

    ``h1 = ξ`` and ``h2 = (ξ² − 1)/√2`` are the first two normalized Hermite
    polynomials; ``E[ξ 1_(a,b)] = φ(a) − φ(b)`` and ``E[(ξ² − 1) 1_(a,b)] = aφ(a) − bφ(b)``.
    """
    e = np.concatenate([[-np.inf], np.sort(np.asarray(z, dtype=float)), [np.inf]])
    fin = np.isfinite(e)
    ef = np.where(fin, e, 0.0)
    phi = np.where(fin, np.exp(-0.5 * ef * ef) * _INV_SQRT_2PI, 0.0)
    zphi = ef * phi
    p = np.diff(sps.ndtr(e))
    v = np.stack([phi[:-1] - phi[1:], (zphi[:-1] - zphi[1:]) / math.sqrt(2.0)], axis=1)
    return v, p


def hermite_capture(thresholds: Sequence[float]) -> tuple[float, np.ndarray]:
    """Best two-term Hermite fraction over the levels, for fixed scale-free thresholds.

    For ``σ = Σ_k l_k 1_{I_k}`` at τ = 1, ``c1 = E[σ h1] = τm1`` and
    ``√2·c2 = E[σ (ξ²−1)] = τ²m2``, so ``(τ²m1² + τ⁴m2²/2)/Var = (c1² + c2²)/Var``:
    the squared norm of the projection of the centered σ on ``span(h1, h2)`` over its
    squared norm.  Maximizing over the levels (a Rayleigh quotient on the step
    functions of this partition) gives the top eigenvalue of
    ``M = Σ_k v_k v_kᵀ / P(I_k)``; the optimal levels are ``l_k = (u·v_k)/P(I_k)`` for
    its top eigenvector ``u`` (the conditional means of ``u1 h1 + u2 h2``).

    Returns
    -------
    (fraction, levels)
        ``levels`` has ``len(thresholds) + 1`` entries (NaN when an interval is empty).
    """
    v, p = _interval_vectors(np.asarray(thresholds, dtype=float))
    if np.any(p <= 0):
        return 0.0, np.full(len(p), np.nan)
    M = (v / p[:, None]).T @ v
    w, U = np.linalg.eigh(M)
    u = U[:, -1]
    return float(w[-1]), (v @ u) / p


def hermite_capture_mp(thresholds: Sequence[float], dps: int = 40) -> mp.mpf:
    """:func:`hermite_capture`'s fraction recomputed in mpmath (closed-form 2×2 eigenvalue)."""
    with mp.workdps(dps):
        e = [mp.ninf] + sorted(mp.mpf(float(z)) for z in thresholds) + [mp.inf]
        m11 = m12 = m22 = mp.mpf(0)
        for a, b in zip(e[:-1], e[1:]):
            pa = mp.npdf(a) if a != mp.ninf else mp.mpf(0)
            pb = mp.npdf(b) if b != mp.inf else mp.mpf(0)
            za = a * pa if a != mp.ninf else mp.mpf(0)
            zb = b * pb if b != mp.inf else mp.mpf(0)
            p = (mp.ncdf(b) if b != mp.inf else 1) - (mp.ncdf(a) if a != mp.ninf else 0)
            x, y = pa - pb, (za - zb) / mp.sqrt(2)
            m11 += x * x / p
            m12 += x * y / p
            m22 += y * y / p
        tr, det = m11 + m22, m11 * m22 - m12 * m12
        return +(tr / 2 + mp.sqrt(tr * tr / 4 - det))


@dataclass(frozen=True)
class HermiteSup:
    """The supremum of the two-term Hermite fraction over K-level staircases.

    Attributes
    ----------
    K : int
        Number of levels.
    sup : float
        ``max (τ²m1² + τ⁴m2²/2)/Var`` found (a lower estimate of the true supremum
        by construction; see :func:`staircase_hermite_sup` for the checks).
    sup_mp : float
        The same fraction at the optimum recomputed in mpmath.
    thresholds, levels : tuple of float
        The maximizing staircase (scale-free, τ = 1).
    method : str
    """

    K: int
    sup: float
    sup_mp: float
    thresholds: tuple[float, ...]
    levels: tuple[float, ...]
    method: str


def _neg_capture(x: np.ndarray) -> float:
    return -hermite_capture(np.sort(x))[0]


@functools.lru_cache(maxsize=64)
def staircase_hermite_sup(K: int, *, method: str = "multistart", seed: int = 0,
                          bound: float = 6.0) -> HermiteSup:
    """``sup`` over K-level staircases of ``(τ²m1² + τ⁴m2²/2)/Var`` (docs/reference.rst §6, Hermite budget).

    Parameters
    ----------
    K : int
        Number of levels (≥ 2): ``K − 1`` thresholds are optimized in ``[−bound, bound]``
        (beyond ±6 an interval has probability < 1e−9 and merging it changes nothing
        visible; fewer levels are the special case of coincident thresholds).
    method : {"multistart", "de"}
        ``multistart``: L-BFGS-B from deterministic starts (Gaussian-quantile thresholds,
        shifted by ``c`` and scaled by ``s`` on a fixed grid); ``de``: scipy
        ``differential_evolution`` with the given seed and polishing — an independent
        global search used to check the first.

    Deterministic, so results are cached (the result is a frozen dataclass).
    """
    if not (isinstance(K, int) and K >= 2):
        raise ParameterError(f"staircase_hermite_sup needs an integer K >= 2, got {K!r}")
    n = K - 1
    bounds = [(-bound, bound)] * n
    if method == "de":
        r = optimize.differential_evolution(_neg_capture, bounds, seed=seed, tol=1e-12,
                                            maxiter=3000, polish=True)
        best_x, best_f = np.sort(r.x), r.fun
    elif method == "multistart":
        q = sps.ndtri(np.arange(1, K) / K)
        best_x, best_f = None, math.inf
        for c in np.linspace(-1.5, 1.5, 7):
            for s in (0.6, 0.8, 1.0, 1.25):
                x0 = np.clip(c + s * q, -bound, bound)
                r = optimize.minimize(_neg_capture, x0, method="L-BFGS-B", bounds=bounds,
                                      options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 500})
                if r.fun < best_f - 1e-15:
                    best_x, best_f = np.sort(r.x), float(r.fun)
    else:
        raise ParameterError(f"method must be 'multistart' or 'de', got {method!r}")
    frac, levels = hermite_capture(best_x)
    return HermiteSup(K, frac, float(hermite_capture_mp(best_x)), tuple(float(v) for v in best_x),
                      tuple(float(v) for v in levels), method)


# --------------------------------------------------------------------------- #
# Scale-free triples and the best K-level match
# --------------------------------------------------------------------------- #
def scale_free_triple(act: Activation | str, tau: float = 1.0) -> tuple[float, float, float]:
    """``(τ²m1²/Var, τ⁴m2²/Var, τ²w̄2/Var)`` of an activation at scale τ (docs/reference.rst §6)."""
    d = dense_layer_moments(parse_activation(act), tau)
    v = d.variance
    return (tau**2 * d.m1**2 / v, tau**4 * d.m2**2 / v, tau**2 * d.w2_bar / v)


def two_term_fraction(triple: Sequence[float]) -> float:
    """``t1 + t2/2``: the share of the variance in the first two Hermite terms."""
    return float(triple[0] + triple[1] / 2)


def residual_lower_bound(target: Sequence[float], sup: float) -> float:
    """Lower bound on ``‖(t − T)/T‖₂`` over staircases whose fraction is ≤ ``sup``.

    With ``r_i = (t_i − T_i)/T_i``: ``t1 + t2/2 − (T1 + T2/2) = T1 r1 + (T2/2) r2 ≤
    sup − (T1 + T2/2)``, and Cauchy–Schwarz gives
    ``‖r‖₂ ≥ (T1 + T2/2 − sup)/√(T1² + T2²/4)`` (0 when the target's fraction is ≤ sup).
    """
    T1, T2 = float(target[0]), float(target[1])
    gap = T1 + T2 / 2 - sup
    return max(gap, 0.0) / math.hypot(T1, T2 / 2)


@dataclass(frozen=True)
class StaircaseMatch:
    """Best K-level staircase found for a scale-free triple.

    ``residual`` is ``‖(t − T)/T‖₂`` (see the module docstring); ``thresholds`` and
    ``levels`` describe the staircase at τ = 1 (levels shifted so the first is 0).
    """

    K: int
    residual: float
    triple: tuple[float, float, float]
    thresholds: tuple[float, ...]
    levels: tuple[float, ...]
    starts: int


def _stair_triple(z: np.ndarray, levels: np.ndarray) -> np.ndarray:
    m = stair_moments_np(z[None, :], levels[None, :])
    v = m["var"][0]
    if not v > 1e-300:
        return np.full(3, np.nan)
    return np.array([m["m1"][0] ** 2, m["m2"][0] ** 2, m["w2_bar"][0]]) / v


def best_staircase_match(target: Sequence[float], K: int, *, starts: int = 16, seed: int = 0
                         ) -> StaircaseMatch:
    """Minimize ``‖(t − T)/T‖₂`` over **all** K-level staircases (thresholds and levels).

    The triple is scale-free (τ = 1) and invariant under adding a constant to, or
    scaling, the levels, so the parameters are the ``K − 1`` sorted thresholds and the
    levels ``l_1 … l_{K−1}`` with ``l_0 = 0``.  ``scipy.optimize.least_squares``
    (trust-region reflective) runs from ``starts`` deterministic starting points: the
    Hermite-optimal staircase of :func:`staircase_hermite_sup` and seeded random
    staircases (thresholds uniform in [−3, 3], levels uniform in [−1, 1]).
    """
    T = np.asarray(target, dtype=float)
    if T.shape != (3,) or np.any(T == 0):
        raise ParameterError("target must be a scale-free triple with nonzero entries")
    n = K - 1

    def resid(x: np.ndarray) -> np.ndarray:
        z = np.sort(x[:n])
        lv = np.concatenate([[0.0], x[n:]])
        t = _stair_triple(z, lv)
        return np.where(np.isfinite(t), (t - T) / T, 1e3)

    hs = staircase_hermite_sup(K)
    lv0 = np.asarray(hs.levels) - hs.levels[0]
    x_starts = [np.concatenate([hs.thresholds, lv0[1:] / np.max(np.abs(lv0[1:]))])]
    rng = np.random.default_rng(seed)
    for _ in range(starts - 1):
        x_starts.append(np.concatenate([np.sort(rng.uniform(-3, 3, n)), rng.uniform(-1, 1, n)]))
    best = None
    for x0 in x_starts:
        r = optimize.least_squares(resid, x0, method="trf", xtol=1e-14, ftol=1e-14, gtol=1e-14,
                                   max_nfev=400 * len(x0))
        val = float(np.linalg.norm(r.fun))
        if best is None or val < best[0] - 1e-15:
            best = (val, r.x)
    val, x = best
    z = np.sort(x[:n])
    lv = np.concatenate([[0.0], x[n:]])
    return StaircaseMatch(K, val, tuple(float(v) for v in _stair_triple(z, lv)),
                          tuple(float(v) for v in z), tuple(float(v) for v in lv), len(x_starts))


# --------------------------------------------------------------------------- #
# Feasibility map cells
# --------------------------------------------------------------------------- #
#: Short labels of the bounds :attr:`InfeasibleError.bound` names.
BOUND_LABELS = {
    "odd_target": "odd target: σ_T has E[σ'']=0 ⇒ E[(σ̄²)'']=0",
    "not_odd": "ternary is odd, target is not",
    "ternary_w2": "ternary needs E[(σ̄²)''] > 0",
    "cauchy_schwarz": "Cauchy–Schwarz: τ'²m1² > τ_L²",
    "two_term_budget": "two-term Hermite budget > τ_L²",
    "no_signal": "no first/second-order signal",
    "sigma_q_slices": "σ_Q: no root on any slice",
    "hermite_budget": "Hermite budget (no root)",
}


def bound_label(bound: InfeasibleError | str | None) -> str:
    """The short label of the bound an :class:`InfeasibleError` (or a bound name) names.

    A search over families (``auto``) reports the most specific bound among its
    causes; an error without a known bound is ``"no root"``.
    """
    name = bound.bound_name if isinstance(bound, InfeasibleError) else bound
    return BOUND_LABELS.get(name or "", "no root")


@dataclass(frozen=True)
class FeasibilityCell:
    """One cell of a feasibility map.

    Attributes
    ----------
    activation, family : str
    tau : float
        The input scale (the compressed layer's own scale equals the dense one here).
    feasible : bool
    bound : str
        ``""`` when feasible, else the short label of the bound (:func:`bound_label`).
    residual : float
        The solver's max relative residual (feasible) or the best residual it reports.
    """

    activation: str
    family: str
    tau: float
    feasible: bool
    bound: str
    residual: float


def feasibility_cell(act: Activation | str, family: str, tau: float, *,
                     dense: DenseLayer | None = None) -> FeasibilityCell:
    """Can ``family`` α-match one layer of ``act`` at input scale ``tau`` (docs/reference.rst §6)?

    ``dense`` (the layer's moments at ``tau``) may be passed to reuse one moment
    computation across families.
    """
    a = parse_activation(act)
    d = dense if dense is not None else dense_layer_moments(a, tau)
    try:
        fit = solve_alpha(family, d.targets, tau)
    except InfeasibleError as exc:
        return FeasibilityCell(a.spec, family, float(tau), False, bound_label(exc), exc.best_residual)
    return FeasibilityCell(a.spec, family, float(tau), True, "", fit.max_rel_residual)


def delta_zero_cell(act: Activation | str, family: str, tau: float) -> FeasibilityCell:
    """δ = 0 after one compressed layer: ``[act, act]`` with ``family`` then ``sigma_Q``.

    The first layer is α-matched by ``family`` at ``τ_0 = tau``; the last layer asks
    ``sigma_Q`` for α-matching at the compressed scale ``τ'_1`` *and*
    ``Var = τ_2²`` (δ = 0).  ``family`` infeasible at layer 1 is reported as such.
    """
    a = parse_activation(act)
    try:
        res = compress_network([a, a], tau, family=family, last_family="sigma_Q")
    except InfeasibleError as exc:
        label = bound_label(exc)
        if exc.layer == 1:
            label = f"layer 1: {label}"
        return FeasibilityCell(a.spec, family + "+sigma_Q", float(tau), False, label, exc.best_residual)
    worst = max(f.max_rel_residual for f in res.layers)
    return FeasibilityCell(a.spec, family + "+sigma_Q", float(tau), True, "", worst)
