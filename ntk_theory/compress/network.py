"""Per-network compression plan (docs/reference.rst §4, §6).

The dense network's scales follow ``τ_ℓ² = Var σ_ℓ(τ_{ℓ−1}ξ)`` and its layer
targets ``(m1, m2, w̄2)`` are taken at ``τ_{ℓ−1}``.  The compressed network starts
from the same data (``τ'_0 = τ_0``) and layer by layer solves α-matching **at its
own input scale** ``τ'_{ℓ−1}``; its scale then follows its own variances.  Since
every ``m1², m2², w̄2`` agree, every ``α_{ℓ,k}`` and ``β_{ℓ,k}`` agree, and the
compressed theory kernel is the dense one plus ``δ I`` with
``δ = τ'_L² − τ_L²`` (docs/reference.rst §6).  For a ridge readout this is a change of
the ridge parameter: the compressed readout with ``λ`` equals the dense readout
with ``λ + δ``; equivalently the dense readout with ``λ`` is reproduced by the
compressed one with ``λ + ridge_shift``, ``ridge_shift = −δ`` (needs ``λ > δ``).

Optionally the last layer uses ``sigma_Q`` with the extra equation
``Var σ_Q(τ'_{L−1}ξ) = τ_L²`` (δ = 0); its solutions form a 2-D manifold, and a
deterministic member is found on an ordered list of slices (:func:`q_slices`).
δ = 0 is impossible once ``τ'_{L−1}² m1_L² > τ_L²`` (Cauchy–Schwarz) or, sharper,
``τ'_{L−1}² m1_L² + τ'_{L−1}⁴ m2_L²/2 > τ_L²`` (the first two Hermite terms of the
variance), and the error says so with the numbers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mpmath as mp
import numpy as np
from scipy import special as sps

from ..activations import Activation, parse_activation
from ..errors import DomainError, InfeasibleError, NumericalError, ParameterError
from .families import AlphaTargets, SigmaQFamily, stair_moments_mp
from .solve import LayerFit, finish_fit, local_minima_mask, residual_tolerance, solve_alpha, solve_auto

__all__ = ["DenseLayer", "CompressionResult", "compress_network", "dense_layer_moments",
           "solve_last_layer_sigma_q", "q_slices"]


@dataclass(frozen=True)
class DenseLayer:
    """Moments of one dense layer at its input scale ``tau_in`` (docs/reference.rst §4)."""

    tau_in: float
    mean: float
    m1: float
    m2: float
    w2_bar: float
    variance: float
    v1: float

    @property
    def targets(self) -> AlphaTargets:
        return AlphaTargets(self.m1, self.m2, self.w2_bar)


def dense_layer_moments(act: Activation, tau: float, *, digits: int = 15) -> DenseLayer:
    """The dense layer's moments, from the lead's engine ``gaussian_moments``.

    Staircases go straight to the jump formula; when ``ntk_theory.moments`` is not
    importable the general expectation engine is used directly.
    """
    if act.staircase is not None:
        with mp.workdps(max(30, digits + 15)):
            m = stair_moments_mp(act.staircase, tau)
            return DenseLayer(float(tau), float(m.m0), float(m.m1), float(m.m2),
                              float(m.w2_bar), float(m.variance), math.inf)
    try:
        from ..moments import gaussian_moments  # lead's engine (docs/reference.rst §1)
    except ImportError:  # pragma: no cover - only before the engine lands
        gaussian_moments = None
    if gaussian_moments is not None:
        gm = gaussian_moments(act, tau, digits=digits)
        return DenseLayer(float(tau), gm.m0, gm.m1, gm.m2, gm.w2_bar, gm.variance, gm.v1)
    from ..expectation import gaussian_expectation  # pragma: no cover

    f = act.expr  # pragma: no cover
    e = [float(gaussian_expectation(f, tau, k, digits=digits)) for k in (0, 1, 2)]
    s2 = [float(gaussian_expectation(f**2, tau, k, digits=digits)) for k in (0, 2)]
    return DenseLayer(float(tau), e[0], e[1], e[2], s2[1] - 2 * e[0] * e[2], s2[0] - e[0] ** 2,
                      math.nan)


@dataclass(frozen=True)
class CompressionResult:
    """A compressed network's plan: per-layer fits, scales, δ and the ridge shift.

    Attributes
    ----------
    activations : tuple of str
        The dense activations' specifications.
    dense : tuple of DenseLayer
        Dense moments per layer (at ``tau_dense[ℓ−1]``).
    layers : tuple of LayerFit
        Compressed layers (at ``tau_compressed[ℓ−1]``).
    tau_dense, tau_compressed : tuple of float
        ``τ_0 … τ_L`` and ``τ'_0 … τ'_L``.
    delta : float
        ``δ = τ'_L² − τ_L²``: the identity shift of the compressed CK theory kernel.
    ridge_shift : float
        ``−δ``: add it to the dense ridge parameter to get the compressed one
        giving the same readout.
    solve_seconds : float
    """

    activations: tuple[str, ...]
    dense: tuple[DenseLayer, ...]
    layers: tuple[LayerFit, ...]
    tau_dense: tuple[float, ...]
    tau_compressed: tuple[float, ...]
    delta: float
    ridge_shift: float
    solve_seconds: float
    last_family: str | None = None
    digits: int = 15
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def depth(self) -> int:
        return len(self.layers)

    def centered_activations(self) -> list[Callable[[np.ndarray], np.ndarray]]:
        """The compressed σ̄_ℓ = σ_ℓ − E[σ_ℓ(τ'_{ℓ−1}ξ)] as vectorized functions."""
        return [(lambda t, a=fit.activation, c=fit.mean: a(t) - c) for fit in self.layers]

    def _repr_html_(self) -> str:
        """Notebook display: one table row per layer (:func:`ntk_theory.display.compression_html`)."""
        from ..display import compression_html

        return compression_html(self)

    def to_dict(self) -> dict[str, Any]:
        """The JSON layout of ``ntk-theory compress`` (without ``bits``)."""
        return {
            "layers": [
                {"layer": i + 1, "family": f.family, "params": f.params, "tau_in": f.tau_in,
                 "targets": f.targets, "achieved": f.achieved, "residuals": f.residuals,
                 "max_rel_residual": f.max_rel_residual, "variance": f.variance, "mean": f.mean}
                for i, f in enumerate(self.layers)
            ],
            "tau_dense": list(self.tau_dense),
            "tau_compressed": list(self.tau_compressed),
            "delta": self.delta,
            "ridge_shift": self.ridge_shift,
            "solve_seconds": self.solve_seconds,
        }


def compress_network(
    activations: Sequence[str | Activation],
    tau0: float,
    *,
    family: str = "auto",
    last_family: str | None = None,
    digits: int = 15,
) -> CompressionResult:
    """Compress a dense network of the given activations (docs/reference.rst §6).

    Parameters
    ----------
    activations : sequence of str or Activation
        σ_1 … σ_L of the dense network.
    tau0 : float
        Input scale ``τ_0`` (``τ_0² = tr C°/p``).
    family : str
        ``auto`` (cheapest exact family per layer) or a family name for every layer.
    last_family : {None, "none", "sigma_Q"}
        ``sigma_Q`` also asks the last layer for δ = 0.
    digits : int
        15 (float64, residual ≤ 1e−12) or more (mpmath precision).

    Raises
    ------
    InfeasibleError
        A layer cannot be matched; the message names the bound and the layer.
    """
    if not activations:
        raise ParameterError("compress needs at least one activation")
    if not (math.isfinite(tau0) and tau0 > 0):
        raise DomainError(f"tau0 must be finite and > 0, got {tau0}")
    if last_family in ("none", None, ""):
        last_family = None
    elif last_family != "sigma_Q":
        raise ParameterError(f"must be none or sigma_Q, got '{last_family}'", option="last_family")
    acts = [parse_activation(a) for a in activations]
    t_start = time.perf_counter()
    dense: list[DenseLayer] = []
    tau_d = [float(tau0)]
    for act in acts:
        d = dense_layer_moments(act, tau_d[-1], digits=digits)
        if not (d.variance > 0 and math.isfinite(d.variance)):
            raise DomainError(f"activation {act.spec} has variance {d.variance} at τ = {tau_d[-1]:.6g}")
        dense.append(d)
        tau_d.append(math.sqrt(d.variance))
    fits: list[LayerFit] = []
    tau_c = [float(tau0)]
    L = len(acts)
    for ell, d in enumerate(dense, start=1):
        try:
            if ell == L and last_family == "sigma_Q":
                fit = solve_last_layer_sigma_q(d.targets, tau_c[-1], tau_d[-1] ** 2, digits=digits)
            elif family == "auto":
                fit = solve_auto(d.targets, tau_c[-1], digits=digits)
            else:
                fit = solve_alpha(family, d.targets, tau_c[-1], digits=digits)
        except InfeasibleError as exc:
            raise exc.at_layer(ell, acts[ell - 1].spec) from None
        fits.append(fit)
        tau_c.append(math.sqrt(fit.variance))
    delta = tau_c[-1] ** 2 - tau_d[-1] ** 2
    return CompressionResult(
        activations=tuple(a.spec for a in acts),
        dense=tuple(dense),
        layers=tuple(fits),
        tau_dense=tuple(tau_d),
        tau_compressed=tuple(tau_c),
        delta=delta,
        ridge_shift=-delta,
        solve_seconds=time.perf_counter() - t_start,
        last_family=last_family,
        digits=digits,
    )


# --------------------------------------------------------------------------- #
# sigma_Q: α-matching plus δ = 0 at the last layer
# --------------------------------------------------------------------------- #
#: The first slice tried: the middle bump occupies the middle third of ``[r1, r4]``.
_Q_FRACTIONS = (1.0 / 3.0, 2.0 / 3.0)
#: Resolution of the fallback slices: ``f1 = i/8 < f2 = j/8``.
_Q_SLICE_STEP = 8
_SQRT2 = math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)


def q_slices(step: int = _Q_SLICE_STEP) -> list[tuple[float, float]]:
    """The ordered σ_Q slices ``(f1, f2)``: ``r2 = r1 + f1(r4 − r1)``, ``r3 = r1 + f2(r4 − r1)``.

    σ_Q has six parameters for four equations, so its δ = 0 solutions form a
    2-dimensional manifold (in scale-free shape space, after the amplitudes are
    eliminated).  A slice fixes the bump's relative position and leaves the outer
    thresholds ``(z1, z4)`` as a square 2×2 system.  The member returned is the one on
    the first slice of this list that has a root: the middle third first, then the
    grid ``0 ≤ f1 < f2 ≤ 1`` of step ``1/step`` ordered by L1 distance from it (ties by
    ``(f1, f2)``) — deterministic.  Every σ_Q lies on the slice of its own fractions,
    so the union of all slices is the whole family.
    """
    first = _Q_FRACTIONS
    grid = [(i / step, j / step) for i in range(step) for j in range(i + 1, step + 1)]
    grid.sort(key=lambda f: (round(abs(f[0] - first[0]) + abs(f[1] - first[1]), 12), f))
    return [first] + [f for f in grid if not (math.isclose(f[0], first[0]) and math.isclose(f[1], first[1]))]


def solve_last_layer_sigma_q(targets: AlphaTargets, tau: float, variance: float, *,
                             digits: int = 15) -> LayerFit:
    """``sigma_Q`` at the last layer: α-matching and ``Var σ_Q(τ'ξ) = τ_L²`` (δ = 0).

    Four equations (``m1², m2², w̄2`` and the variance) for six parameters: the
    solutions form a 2-D manifold and one deterministic member is returned (see
    :func:`q_slices`).  On a slice the thresholds are ``(z1, z4)`` plus the fixed
    fractions; ``τm1`` and ``τ²m2`` are linear in ``(b1, b2)``, so the two linear
    equations give ``(b1, b2)`` (for each sign choice of ``m1, m2``), and the remaining
    two equations ``τ²w̄2 = W`` and ``Var = τ_L²`` are solved for ``(z1, z4)`` by Newton
    from the grid's near-roots, then polished with ``mpmath.findroot``.

    Raises
    ------
    InfeasibleError
        Cauchy–Schwarz (``τ'²m1² > τ_L²``) or the two-term Hermite budget
        (``τ'²m1² + τ'⁴m2²/2 > τ_L²``) rule δ = 0 out, or no slice has a root.
    """
    A1, A2, W = (float(x) for x in targets.scaled(tau))
    V = float(variance)
    if A1 > V:
        raise InfeasibleError(
            family="sigma_Q", bound="cauchy_schwarz",
            reason=(f"δ = 0 violates Cauchy–Schwarz, τ'²m1² = {A1:.3f} > τ_L² = {V:.3f} "
                    "(Var σ(τξ) ≥ τ²E[σ']² for every σ, docs/reference.rst §6)"),
            residual=(A1 - V) / V, suggestion="none", option="last_family",
            note="(δ reported as a ridge shift)")
    if A1 + A2 / 2 > V:
        raise InfeasibleError(
            family="sigma_Q", bound="two_term_budget",
            reason=(f"δ = 0 violates the Hermite budget, τ'²m1² + τ'⁴m2²/2 = {A1 + A2 / 2:.3f} > "
                    f"τ_L² = {V:.3f} (Var = Σ_k (τ^k E[σ^(k)])²/k!, docs/reference.rst §6)"),
            residual=(A1 + A2 / 2 - V) / V, suggestion="none", option="last_family")
    best = math.inf
    for fr in q_slices():
        fit, b = _q_solve_slice(fr, targets, tau, V, digits)
        best = min(best, b)
        if fit is not None:
            return fit
    raise InfeasibleError(
        family="sigma_Q", bound="sigma_q_slices",
        reason=f"no root of the δ = 0 system on any of {len(q_slices())} slices of sigma_Q (Hermite budget)",
        residual=best, suggestion="none", option="last_family")


def _q_solve_slice(fr: tuple[float, float], targets: AlphaTargets, tau: float, V: float,
                   digits: int) -> tuple[LayerFit | None, float]:
    """The δ = 0 σ_Q on one slice ``fr = (f1, f2)`` (or None) and the slice's best grid residual."""
    A1, A2, W = (float(x) for x in targets.scaled(tau))
    D = max(A1, A2, abs(W), V)
    zs = np.linspace(-6.0, 6.0, 241)
    Z1, Z4 = np.meshgrid(zs, zs, indexing="ij")
    valid = Z4 > Z1 + 1e-3
    sgn1 = 1.0 if targets.m1 >= 0 else -1.0
    sgn2 = 1.0 if targets.m2 >= 0 else -1.0
    best = math.inf
    candidates: list[tuple[float, float, float, float]] = []
    for s1 in (sgn1, -sgn1):
        for s2 in (sgn2, -sgn2):
            lv_var, lv_w = _q_var_w(Z1, Z4, fr, s1 * math.sqrt(A1), s2 * math.sqrt(A2))
            with np.errstate(all="ignore"):
                R = np.hypot(lv_w - W, lv_var - V) / D
            R = np.where(valid & np.isfinite(R), R, np.inf)
            if np.isfinite(R).any():
                best = min(best, float(R.min()))
            for i, j in _local_minima(R, 10):
                if np.isfinite(R[i, j]):
                    candidates.append((float(R[i, j]), float(Z1[i, j]), float(Z4[i, j]), s1 * 10 + s2))
    candidates.sort()
    fam = SigmaQFamily()
    f1, f2 = fr

    def eqs_mp(z1: mp.mpf, z4: mp.mpf, code: float) -> tuple[list[mp.mpf], mp.mpf, mp.mpf]:
        s1 = 1 if code > 0 else -1
        s2 = 1 if (code - s1 * 10) > 0 else -1
        th = [z1, z1 + f1m * (z4 - z1), z1 + f2m * (z4 - z1), z4]
        mo = stair_moments_mp(fam.staircase({"r1": th[0], "r2": th[1], "r3": th[2], "r4": th[3],
                                             "b1": mp.mpf(1), "b2": mp.mpf(0)}), 1)
        mb = stair_moments_mp(fam.staircase({"r1": th[0], "r2": th[1], "r3": th[2], "r4": th[3],
                                             "b1": mp.mpf(0), "b2": mp.mpf(1)}), 1)
        det = mo.m1 * mb.m2 - mo.m2 * mb.m1
        r1, r2 = s1 * mp.sqrt(A1m), s2 * mp.sqrt(A2m)
        b1 = (r1 * mb.m2 - r2 * mb.m1) / det
        b2 = (mo.m1 * r2 - mo.m2 * r1) / det
        m = stair_moments_mp(fam.staircase({"r1": th[0], "r2": th[1], "r3": th[2], "r4": th[3],
                                            "b1": b1, "b2": b2}), 1)
        return [(m.w2_bar - Wm) / Dm, (m.variance - Vm) / Dm], b1, b2

    from scipy.optimize import root

    with mp.workdps(max(30, digits + 15)):
        t = mp.mpf(tau)
        f1m, f2m = mp.mpf(f1), mp.mpf(f2)
        A1m, A2m, Wm = (mp.mpf(t) ** 2 * mp.mpf(targets.m1) ** 2, mp.mpf(t) ** 4 * mp.mpf(targets.m2) ** 2,
                        mp.mpf(t) ** 2 * mp.mpf(targets.w2_bar))
        Vm, Dm = mp.mpf(V), max(A1m, A2m, abs(Wm), mp.mpf(V))
        tol = mp.mpf(10) ** (-(mp.mp.dps - 6))
        for _, z1, z4, code in candidates:
            def fun(x: np.ndarray, code: float = code) -> np.ndarray:
                return _q_residual_np(x[0], x[1], code, A1, A2, W, V, D, fr)

            sol = root(fun, np.array([z1, z4]), method="hybr")
            if not sol.success or sol.x[1] <= sol.x[0] or np.max(np.abs(fun(sol.x))) > 1e-8:
                continue
            try:
                x = mp.findroot(lambda a, c, code=code: eqs_mp(a, c, code)[0],
                                (mp.mpf(sol.x[0]), mp.mpf(sol.x[1])), tol=tol, maxsteps=20,
                                verify=False)
            except (ValueError, ZeroDivisionError):
                continue
            res, b1, b2 = eqs_mp(x[0], x[1], code)
            if max(abs(v) for v in res) > tol:
                continue
            z1r, z4r = x[0], x[1]
            params = {"r1": z1r * t, "r2": (z1r + f1m * (z4r - z1r)) * t,
                      "r3": (z1r + f2m * (z4r - z1r)) * t, "r4": z4r * t, "b1": b1, "b2": b2}
            try:
                fit = finish_fit(fam, params, t, targets, digits)
            except NumericalError:
                continue  # float64 rounding of an ill-conditioned root: try the next one
            if abs(fit.variance - V) > residual_tolerance(digits) * V:
                continue
            return fit, best
    return None, best


def _local_minima(R: np.ndarray, keep: int) -> list[tuple[int, int]]:
    """Indices of the ``keep`` smallest 8-neighbourhood local minima of a 2-D array."""
    is_min = local_minima_mask(R)
    idx = np.argwhere(is_min)
    order = np.lexsort((idx[:, 1], idx[:, 0], R[is_min]))
    return [(int(idx[k][0]), int(idx[k][1])) for k in order[:keep]]


def _q_var_w(z1: Any, z4: Any, fr: tuple[float, float], r1: float, r2: float) -> tuple[Any, Any]:
    """Variance and centered ``w̄2`` of the σ_Q with ``τm1 = r1``, ``τ²m2 = r2`` (τ = 1).

    Jump formula on the slice ``fr`` (arrays or scalars): σ_Q = b1·outer + b2·bump with
    ``outer = 1 − 1_{[r1, r4]}`` (jumps −1, +1) and ``bump = 1_{[r2, r3]}`` (jumps +1, −1);
    ``(b1, b2)`` solve the two linear equations for ``m1, m2`` (Cramer's rule), and the
    disjoint supports give ``σ² = b1²·outer + b2²·bump``.  NaN where the 2×2 system is
    singular.
    """
    f1, f2 = fr
    scalar = isinstance(z1, float)  # math for scalars: the Newton stage calls this ~10⁴ times
    exp, ndtr = (math.exp, _ndtr_scalar) if scalar else (np.exp, sps.ndtr)
    z2, z3 = z1 + f1 * (z4 - z1), z1 + f2 * (z4 - z1)
    p1, p2, p3, p4 = (exp(-0.5 * z * z) / _SQRT_2PI for z in (z1, z2, z3, z4))
    o_m0 = ndtr(z1) + ndtr(-z4)
    o_m1, o_m2 = p4 - p1, z4 * p4 - z1 * p1
    b_m0 = ndtr(z3) - ndtr(z2)
    b_m1, b_m2 = p2 - p3, z2 * p2 - z3 * p3
    with np.errstate(all="ignore"):
        det = o_m1 * b_m2 - o_m2 * b_m1
        if scalar and det == 0:
            return math.nan, math.nan
        b1 = (r1 * b_m2 - r2 * b_m1) / det
        b2 = (o_m1 * r2 - o_m2 * r1) / det
        m0 = b1 * o_m0 + b2 * b_m0
        m2 = b1 * o_m2 + b2 * b_m2
        var = b1 * b1 * o_m0 + b2 * b2 * b_m0 - m0 * m0
        w = b1 * b1 * o_m2 + b2 * b2 * b_m2 - 2 * m0 * m2
    return var, w


def _ndtr_scalar(z: float) -> float:
    return 0.5 * math.erfc(-z / _SQRT2)


def _q_residual_np(z1: float, z4: float, code: float, A1: float, A2: float, W: float,
                   V: float, D: float, fr: tuple[float, float] = _Q_FRACTIONS) -> np.ndarray:
    """Float64 residuals ``(τ²w̄2 − W, Var − V)/D`` with ``(b1, b2)`` eliminated (sign ``code``)."""
    s1 = 1.0 if code > 0 else -1.0
    s2 = 1.0 if (code - s1 * 10) > 0 else -1.0
    var, w = _q_var_w(float(z1), float(z4), fr, s1 * math.sqrt(A1), s2 * math.sqrt(A2))
    out = np.array([(w - W) / D, (var - V) / D])
    return out if np.all(np.isfinite(out)) else np.array([1e3, 1e3])
