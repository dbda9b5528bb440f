"""Quantized activation families in scale-free coordinates ``z = s/τ`` (docs/reference.rst §6).

A compressed layer replaces the dense activation by a staircase.  Its kernel
coefficients depend on three numbers taken at the layer's own input scale τ
(docs/reference.rst §4): ``m1 = E[σ']``, ``m2 = E[σ'']`` and the centered
``w̄2 = E[(σ̄²)'']``.  In scale-free coordinates every staircase moment is a function
of the thresholds ``z_j = t_j/τ`` times a power of τ and a quadratic (or linear)
form in the levels (jump formula, docs/reference.rst §1)::

    τ  m1  = Σ_j Δ_j φ(z_j)
    τ² m2  = Σ_j Δ_j z_j φ(z_j)
    τ² w̄2 = Σ_j Δ(σ²)_j z_j φ(z_j) − 2 E[σ] Σ_j Δ_j z_j φ(z_j)

so the *amplitude* of a family factors out and can be eliminated analytically.
This module describes each family: its registry parameters, the staircase built
from scale-free shape parameters and amplitudes, and a vectorized NumPy evaluator
of staircase moments used for grid scans (the exact, any-precision evaluation is
:func:`ntk_theory.jump.staircase_moments_mp`).

Families
--------
``ternary``
    Odd ternary ``b(1_{t>s} − 1_{t<−s})``: one shape parameter ``z = s/τ``.
``sigma_T``
    NTK-LC's ``a(1_{t<s1} + 1_{t>s2})``: shape ``(z1, z2)``, amplitude ``a``.
``three_level``
    ``a1 1_{t<s1} + a2 1_{t>s2}``, solved on the symmetric-threshold slice
    ``s1 = −s2`` (the levels carry an odd and an even part, see
    :class:`SymmetricQuantizer`).
``staircase:K``
    A K-level quantizer with equally spaced thresholds ``s·(j − (K−2)/2)`` and
    jumps ``u + v·sign(j − (K−2)/2)`` (uniform odd part plus an even part).
``sigma_Q``
    NTK-LC's last-layer family ``b1(1_{t<r1} + 1_{t>r4}) + b2 1_{r2≤t≤r3}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import mpmath as mp
import numpy as np
from scipy import special as sps

from ..activations import Activation, Staircase, activation
from ..errors import ParameterError
from ..jump import staircase_moments_mp

__all__ = [
    "AlphaTargets",
    "StairMoments",
    "stair_moments_mp",
    "stair_moments_np",
    "Family",
    "TernaryFamily",
    "SigmaTFamily",
    "SymmetricQuantizer",
    "ThreeLevelFamily",
    "StaircaseKFamily",
    "SigmaQFamily",
    "parse_family",
    "AUTO_ORDER",
]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# --------------------------------------------------------------------------- #
# Targets and moments
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class AlphaTargets:
    """The three numbers α-matching must reproduce for one layer (docs/reference.rst §6).

    Attributes
    ----------
    m1, m2 : float
        ``E[σ']`` and ``E[σ'']`` of the dense layer at the dense input scale.  Only
        their squares enter α and β; their signs fix the sign convention of the
        compressed activation (so it "looks like" the dense one).
    w2_bar : float
        The centered ``E[(σ̄²)'']`` of the dense layer.
    """

    m1: float
    m2: float
    w2_bar: float

    def scaled(self, tau: Any) -> tuple[Any, Any, Any]:
        """``(A1, A2, W) = (τ²m1², τ⁴m2², τ²w̄2)``: all three in units of σ²."""
        t2 = tau * tau
        return (t2 * self.m1 * self.m1, t2 * t2 * self.m2 * self.m2, t2 * self.w2_bar)

    def as_dict(self) -> dict[str, float]:
        return {"m1^2": float(self.m1) ** 2, "m2^2": float(self.m2) ** 2,
                "w2_bar": float(self.w2_bar)}


@dataclass(frozen=True)
class StairMoments:
    """Moments of a staircase at one scale (mpmath numbers or floats)."""

    m0: Any
    m1: Any
    m2: Any
    v0: Any
    w2: Any

    @property
    def w2_bar(self) -> Any:
        """Centered ``E[(σ̄²)''] = E[(σ²)''] − 2 E[σ] E[σ'']`` (docs/reference.rst §1)."""
        return self.w2 - 2 * self.m0 * self.m2

    @property
    def variance(self) -> Any:
        return self.v0 - self.m0 * self.m0

    def alpha_dict(self) -> dict[str, float]:
        return {"m1^2": float(self.m1) ** 2, "m2^2": float(self.m2) ** 2,
                "w2_bar": float(self.w2_bar)}


def stair_moments_mp(stair: Staircase, tau: Any) -> StairMoments:
    """Exact staircase moments at the current mpmath precision (wraps :mod:`ntk_theory.jump`)."""
    d = staircase_moments_mp(stair, tau)
    return StairMoments(d["E[s]"], d["E[s']"], d["E[s'']"], d["E[s^2]"], d["E[(s^2)'']"])


def stair_moments_np(z: np.ndarray, levels: np.ndarray) -> dict[str, np.ndarray]:
    """Vectorized staircase moments at τ = 1 (scale-free), for grid scans.

    Parameters
    ----------
    z : array (..., m)
        Non-decreasing thresholds along the last axis.
    levels : array (..., m+1)

    Returns
    -------
    dict with arrays ``m0, m1, m2, v0, w2, w2_bar, var`` (shape ``...``).  Float64
    accuracy only: used to find starting points, never for reported results.
    """
    z = np.asarray(z, dtype=float)
    lv = np.asarray(levels, dtype=float)
    cdf = sps.ndtr(z)
    edges_lo = np.concatenate([np.zeros(z.shape[:-1] + (1,)), cdf], axis=-1)
    edges_hi = np.concatenate([cdf, np.ones(z.shape[:-1] + (1,))], axis=-1)
    prob = edges_hi - edges_lo
    phi = np.exp(-0.5 * z * z) * _INV_SQRT_2PI
    jumps = np.diff(lv, axis=-1)
    sq_jumps = np.diff(lv * lv, axis=-1)
    m0 = np.sum(lv * prob, axis=-1)
    v0 = np.sum(lv * lv * prob, axis=-1)
    m1 = np.sum(jumps * phi, axis=-1)
    m2 = np.sum(jumps * z * phi, axis=-1)
    w2 = np.sum(sq_jumps * z * phi, axis=-1)
    return {"m0": m0, "m1": m1, "m2": m2, "v0": v0, "w2": w2,
            "w2_bar": w2 - 2 * m0 * m2, "var": v0 - m0 * m0}


# --------------------------------------------------------------------------- #
# Families
# --------------------------------------------------------------------------- #
class Family:
    """A quantized activation family.

    Subclasses define ``name`` (as accepted by ``--family``), ``registry`` (the
    activation registry name), ``cost`` (floats stored per layer) and
    :meth:`params_to_activation`.
    """

    name: str = ""
    registry: str = ""
    cost: int = 0

    def params_to_activation(self, params: Mapping[str, Any]) -> Activation:
        """The registry :class:`~ntk_theory.activations.Activation` with these (float) parameters."""
        return activation(self.registry, **{k: _as_float(v) for k, v in params.items()})

    def staircase(self, params: Mapping[str, Any]) -> Staircase:
        """The staircase, kept at full precision (mpmath numbers allowed)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<family {self.name}>"


def _as_float(v: Any) -> Any:
    if isinstance(v, (tuple, list)):
        return tuple(float(u) for u in v)
    return float(v)


class _MpStaircase(Staircase):
    """A :class:`Staircase` whose thresholds/levels may be mpmath numbers (no float rounding)."""

    def __post_init__(self) -> None:  # validation done by the family
        return None


def _mp_stair(thresholds: list[Any], levels: list[Any]) -> Staircase:
    return _MpStaircase(tuple(thresholds), tuple(levels))


class TernaryFamily(Family):
    """Odd ternary ``b(1_{t>s} − 1_{t<−s})`` (docs/reference.rst §6): matches odd activations."""

    name = "ternary"
    registry = "ternary"
    cost = 2

    def staircase(self, params: Mapping[str, Any]) -> Staircase:
        s, b = params["s"], params["b"]
        return _mp_stair([-s, s], [-b, 0 * b, b])


class SigmaTFamily(Family):
    """NTK-LC's hidden-layer family ``a(1_{t<s1} + 1_{t>s2})``, ``s1 < s2`` (docs/reference.rst §6)."""

    name = "sigma_T"
    registry = "sigma_T"
    cost = 3

    def staircase(self, params: Mapping[str, Any]) -> Staircase:
        a = params["a"]
        return _mp_stair([params["s1"], params["s2"]], [a, 0 * a, a])

    @staticmethod
    def shape_np(z1: np.ndarray, z2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Unit-amplitude ``(g1, g2, h, P)``: ``τm1 = a g1``, ``τ²m2 = a g2``, ``τ²w̄2 = a² h``."""
        p1 = np.exp(-0.5 * z1 * z1) * _INV_SQRT_2PI
        p2 = np.exp(-0.5 * z2 * z2) * _INV_SQRT_2PI
        P = sps.ndtr(z1) + sps.ndtr(-z2)
        g1 = p2 - p1
        g2 = z2 * p2 - z1 * p1
        return g1, g2, (1 - 2 * P) * g2, P


@dataclass(frozen=True)
class SymmetricQuantizer:
    """Staircases with thresholds ``z·c_j`` and jumps ``u + v·sign(c_j)`` (docs/reference.rst §6).

    The offsets ``c_j`` are symmetric about 0, so the staircase splits into an odd
    part (uniform jumps, weight ``u``) and an even part (antisymmetric jumps,
    weight ``v``).  Parity decouples the moments: ``τm1 = u G1(z)``,
    ``τ²m2 = v G2(z)`` and ``τ²w̄2 = u² Wo(z) + v² We(z)`` (the odd×even cross
    term of σ² is odd, so its second-derivative expectation vanishes).  With the
    amplitudes eliminated, α-matching is the single equation
    ``A1 Wo/G1² + A2 We/G2² = W`` in the one shape parameter ``z``.
    """

    offsets: tuple[float, ...]

    @property
    def odd_jumps(self) -> tuple[float, ...]:
        return tuple(1.0 for _ in self.offsets)

    @property
    def even_jumps(self) -> tuple[float, ...]:
        return tuple(float(np.sign(c)) for c in self.offsets)

    def levels(self, u: Any, v: Any) -> list[Any]:
        """Levels from the jumps, shifted so the level(s) around 0 are centered."""
        lv = [0 * u]
        for c in self.offsets:
            sgn = 1 if c > 0 else (-1 if c < 0 else 0)
            lv.append(lv[-1] + u + v * sgn)
        n_neg = sum(1 for c in self.offsets if c < 0)
        if any(c == 0 for c in self.offsets):
            shift = (lv[n_neg] + lv[n_neg + 1]) / 2
        else:
            shift = lv[n_neg]
        return [x - shift for x in lv]

    def staircase(self, z: Any, u: Any, v: Any, tau: Any = 1) -> Staircase:
        return _mp_stair([tau * z * c for c in self.offsets], self.levels(u, v))

    def parts_mp(self, z: Any) -> tuple[Any, Any, Any, Any, Any, Any]:
        """``(G1, G2, Wo, We, Vo, Ve)`` at τ = 1: unit odd/even parts' moments and variances."""
        mo = stair_moments_mp(self.staircase(z, mp.mpf(1), mp.mpf(0)), 1)
        me = stair_moments_mp(self.staircase(z, mp.mpf(0), mp.mpf(1)), 1)
        return mo.m1, me.m2, mo.w2_bar, me.w2_bar, mo.variance, me.variance

    def parts_np(self, z: np.ndarray) -> tuple[np.ndarray, ...]:
        """Vectorized ``(G1, G2, Wo, We, Vo, Ve)`` for an array of ``z`` (float64)."""
        z = np.asarray(z, dtype=float)[..., None]
        c = np.asarray(self.offsets, dtype=float)
        th = z * c
        lo = np.asarray(self.levels(1.0, 0.0), dtype=float)
        le = np.asarray(self.levels(0.0, 1.0), dtype=float)
        mo = stair_moments_np(th, np.broadcast_to(lo, th.shape[:-1] + lo.shape))
        me = stair_moments_np(th, np.broadcast_to(le, th.shape[:-1] + le.shape))
        return mo["m1"], me["m2"], mo["w2_bar"], me["w2_bar"], mo["var"], me["var"]


class ThreeLevelFamily(Family):
    """``a1 1_{t<s1} + a2 1_{t>s2}`` solved on the slice ``s1 = −s2 = −s`` (docs/reference.rst §6)."""

    name = "three_level"
    registry = "three_level"
    cost = 3
    quantizer = SymmetricQuantizer((-1.0, 1.0))

    def staircase(self, params: Mapping[str, Any]) -> Staircase:
        a1, a2 = params["a1"], params["a2"]
        return _mp_stair([params["s1"], params["s2"]], [a1, 0 * a1, a2])

    def params_from(self, z: Any, u: Any, v: Any, tau: Any) -> dict[str, Any]:
        lv = self.quantizer.levels(u, v)
        return {"s1": -z * tau, "s2": z * tau, "a1": lv[0], "a2": lv[2]}


class StaircaseKFamily(Family):
    """A K-level quantizer ``staircase:K`` with equally spaced symmetric thresholds."""

    registry = "staircase"

    def __init__(self, K: int) -> None:
        if K < 3:
            raise ParameterError(f"staircase:K needs K >= 3 levels, got {K}")
        self.K = int(K)
        self.name = f"staircase:{self.K}"
        self.cost = self.K + 1  # K levels and one spacing
        self.quantizer = SymmetricQuantizer(
            tuple(j - (self.K - 2) / 2 for j in range(self.K - 1)))

    def staircase(self, params: Mapping[str, Any]) -> Staircase:
        return _mp_stair(list(params["thresholds"]), list(params["levels"]))

    def params_from(self, z: Any, u: Any, v: Any, tau: Any) -> dict[str, Any]:
        st = self.quantizer.staircase(z, u, v, tau)
        return {"thresholds": tuple(st.thresholds), "levels": tuple(st.levels)}


class SigmaQFamily(Family):
    """NTK-LC's last-layer family ``b1(1_{t<r1} + 1_{t>r4}) + b2 1_{r2≤t≤r3}``."""

    name = "sigma_Q"
    registry = "sigma_Q"
    cost = 6

    def staircase(self, params: Mapping[str, Any]) -> Staircase:
        b1, b2 = params["b1"], params["b2"]
        return _mp_stair([params["r1"], params["r2"], params["r3"], params["r4"]],
                         [b1, 0 * b1, b2, 0 * b1, b1])


#: ``--family auto`` tries these, cheapest first (floats stored per layer).
AUTO_ORDER: tuple[str, ...] = ("ternary", "sigma_T", "three_level",
                               "staircase:4", "staircase:5", "staircase:6")


def parse_family(text: str | Family) -> Family:
    """``"ternary" | "sigma_T" | "three_level" | "staircase:K" | "sigma_Q"`` → a :class:`Family`."""
    if isinstance(text, Family):
        return text
    t = text.strip()
    if t in ("ternary", "odd_ternary"):
        return TernaryFamily()
    if t == "sigma_T":
        return SigmaTFamily()
    if t == "three_level":
        return ThreeLevelFamily()
    if t == "sigma_Q":
        return SigmaQFamily()
    if t.startswith("staircase:"):
        try:
            K = int(t.split(":", 1)[1])
        except ValueError:
            raise ParameterError(f"staircase:K needs an integer K, got '{t}'") from None
        if not 3 <= K <= 64:
            raise ParameterError(f"staircase:K needs 3 <= K <= 64, got {K}")
        return StaircaseKFamily(K)
    raise ParameterError(
        f"unknown compression family '{t}' (known: auto, ternary, sigma_T, three_level, "
        "staircase:K, sigma_Q)")
