"""Per-layer coefficients τ_ℓ, α_ℓ, β_ℓ, κ_ℓ of the equivalence theorems (docs/reference.rst §4).

Layer ℓ's moments are taken at its own input scale τ_{ℓ−1} (:mod:`ntk_theory.moments`):
``m1 = E[σ_ℓ']``, ``m2 = E[σ_ℓ'']``, ``v1 = E[σ_ℓ'²]``, ``w̄2 = E[(σ̄_ℓ²)'']``, and

* ``τ_ℓ² = Var σ_ℓ(τ_{ℓ−1}ξ)``
* ``α_{ℓ,1} = m1² α_{ℓ−1,1}``
* ``α_{ℓ,2} = m1² α_{ℓ−1,2} + ¼ m2² α_{ℓ−1,4}²``
* ``α_{ℓ,3} = m1² α_{ℓ−1,3} + ½ m2² α_{ℓ−1,1}²``
* ``α_{ℓ,4} = ½ w̄2 α_{ℓ−1,4}``
* ``β_{ℓ,1} = α_{ℓ,1} + m1² β_{ℓ−1,1}``
* ``β_{ℓ,2} = α_{ℓ,2} + m1² β_{ℓ−1,2}``
* ``β_{ℓ,3} = α_{ℓ,3} + m1² β_{ℓ−1,3} + m2² α_{ℓ−1,1} β_{ℓ−1,1}``
* ``κ_ℓ² = τ_ℓ² + v1 κ_{ℓ−1}²``

from ``α_0 = (1, 0, 0, 1)``, ``β_0 = (1, 0, 0)``, ``κ_0² = τ_0²``.  κ is ``+inf`` after a
staircase layer (``E[σ'²] = ∞``).  :func:`coefficient_closed_forms` composes the
engine's closed forms layer by layer into expressions in τ_0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import mpmath as mp
import sympy as sp

from .activations import Activation, parse_activation
from .errors import DomainError, ParameterError
from .expectation import TAU, BudgetExceeded, time_budget, validate_tau
from .moments import GaussianMoments, gaussian_moments, moment_closed_forms

__all__ = [
    "LayerCoefficients",
    "NetworkCoefficients",
    "coefficients",
    "coefficient_recursion",
    "coefficient_closed_forms",
    "TAU0",
]

#: Symbol of the input scale in closed forms of the coefficients.
TAU0 = sp.Symbol("tau0", positive=True)


@dataclass(frozen=True)
class LayerCoefficients:
    """Coefficients of one layer.

    Attributes
    ----------
    layer : int
        1-based index ℓ.
    activation : Activation
    tau_in : float
        τ_{ℓ−1}, the scale at which the moments are taken.
    tau : float
        τ_ℓ (positive root of the variance).
    alpha : tuple of 4 floats
    beta : tuple of 3 floats
    kappa : float
        κ_ℓ (positive root); ``inf`` after a staircase layer.
    moments : GaussianMoments
        The layer's moments at ``tau_in``.
    """

    layer: int
    activation: Activation
    tau_in: float
    tau: float
    alpha: tuple[float, float, float, float]
    beta: tuple[float, float, float]
    kappa: float
    moments: GaussianMoments = field(repr=False)

    @property
    def centering(self) -> float:
        """The constant E[σ_ℓ(τ_{ℓ−1}ξ)] subtracted by the network (docs/reference.rst §1)."""
        return self.moments.m0

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "activation": self.activation.spec, "tau": self.tau,
                "alpha": list(self.alpha), "beta": list(self.beta), "kappa": self.kappa}


@dataclass(frozen=True)
class NetworkCoefficients:
    """τ_0 and the coefficients of every layer."""

    tau0: float
    layers: tuple[LayerCoefficients, ...]

    @property
    def L(self) -> int:
        return len(self.layers)

    @property
    def taus(self) -> tuple[float, ...]:
        """τ_0, …, τ_L."""
        return (self.tau0, *(c.tau for c in self.layers))

    @property
    def last(self) -> LayerCoefficients:
        return self.layers[-1]

    def _repr_html_(self) -> str:
        """Notebook display: one table row per layer (:func:`ntk_theory.display.coefficients_html`)."""
        from .display import coefficients_html

        return coefficients_html(self)

    def to_dict(self) -> dict[str, Any]:
        return {"tau0": self.tau0, "layers": [c.to_dict() for c in self.layers]}


def coefficient_recursion(
    prev_alpha: Sequence[Any], prev_beta: Sequence[Any], prev_kappa2: Any,
    tau2: Any, m1: Any, m2: Any, v1: Any, w2_bar: Any,
) -> tuple[tuple[Any, ...], tuple[Any, ...], Any]:
    """One step of docs/reference.rst §4 (works for floats, mpmath numbers and SymPy expressions).

    Returns ``(alpha, beta, kappa2)`` of the new layer.
    """
    a1, a2, a3, a4 = prev_alpha
    b1, b2, b3 = prev_beta
    m1s, m2s = m1 * m1, m2 * m2
    alpha = (
        m1s * a1,
        m1s * a2 + m2s * a4 * a4 / 4,
        m1s * a3 + m2s * a1 * a1 / 2,
        w2_bar * a4 / 2,
    )
    beta = (
        alpha[0] + m1s * b1,
        alpha[1] + m1s * b2,
        alpha[2] + m1s * b3 + m2s * a1 * b1,
    )
    kappa2 = tau2 + v1 * prev_kappa2
    return alpha, beta, kappa2


def _as_acts(acts: Sequence[Activation | str] | Activation | str) -> list[Activation]:
    if isinstance(acts, (str, Activation)):
        acts = [acts]
    out = [parse_activation(a) for a in acts]
    if not out:
        raise ParameterError("a network needs at least one layer")
    return out


def coefficients(acts: Sequence[Activation | str] | Activation | str, tau0: float, *,
                 digits: int = 15, budget: float = 2.0) -> NetworkCoefficients:
    """The coefficients of every layer of a network (docs/reference.rst §4).

    Parameters
    ----------
    acts : sequence of activations (or specifications)
        σ_1, …, σ_L.
    tau0 : float
        τ_0 > 0 (e.g. :attr:`ntk_theory.data.DataStatistics.tau0`).
    digits, budget
        Passed to :func:`~ntk_theory.moments.gaussian_moments`.

    Raises
    ------
    DomainError
        ``tau0`` not finite or ≤ 0, or a layer whose output has zero variance
        (every later scale would vanish).
    """
    tau0 = validate_tau(tau0)
    layers: list[LayerCoefficients] = []
    alpha: tuple[Any, ...] = (1.0, 0.0, 0.0, 1.0)
    beta: tuple[Any, ...] = (1.0, 0.0, 0.0)
    kappa2 = tau0 * tau0
    tau_in = tau0
    for ell, act in enumerate(_as_acts(acts), start=1):
        g = gaussian_moments(act, tau_in, digits=digits, budget=budget)
        var = g.variance
        if math.isinf(var) or (var > 0 and not math.isfinite(var)):
            raise DomainError(f"layer {ell} ({act.spec}) has a variance beyond float64 at tau={tau_in:g} "
                              f"({mp.nstr(g.centered_moments['E[s^2]'].value, 6)}): later layers cannot be "
                              "computed in double precision")
        if not (var > 0 and math.isfinite(var)):
            raise DomainError(f"layer {ell} ({act.spec}) has zero variance at tau={tau_in:g}: "
                              "every later layer would be constant")
        alpha, beta, kappa2 = coefficient_recursion(alpha, beta, kappa2, var, g.m1, g.m2, g.v1, g.w2_bar)
        tau = math.sqrt(var)
        kappa = math.sqrt(kappa2) if math.isfinite(kappa2) else math.inf
        layers.append(LayerCoefficients(ell, act, tau_in, tau, tuple(float(a) for a in alpha),
                                        tuple(float(b) for b in beta), kappa, g))
        tau_in = tau
    return NetworkCoefficients(tau0, tuple(layers))


def coefficient_closed_forms(acts: Sequence[Activation | str] | Activation | str, *,
                             budget: float = 5.0) -> list[dict[str, sp.Expr]] | None:
    """Closed forms in :data:`TAU0` of τ_ℓ², α_ℓ, β_ℓ, κ_ℓ² for every layer, or None.

    Available when every layer's moments have closed forms in τ (the engine's
    ``closed_form`` flag, κ excepted after staircases where it is ``oo``).  Each
    layer's closed forms are substituted with the previous layer's τ_ℓ expression.
    Returns None when a moment is numeric or the composition exceeds ``budget``.
    """
    out: list[dict[str, sp.Expr]] = []
    alpha: tuple[Any, ...] = (sp.S.One, sp.S.Zero, sp.S.Zero, sp.S.One)
    beta: tuple[Any, ...] = (sp.S.One, sp.S.Zero, sp.S.Zero)
    kappa2: Any = TAU0**2
    tau_in: sp.Expr = TAU0
    try:
        with time_budget(budget):
            for act in _as_acts(acts):
                # symbolic work only: a numeric-only activation returns None here at once,
                # instead of after the quadrature of all six moments
                forms = moment_closed_forms(act)
                if forms is None:
                    return None
                exprs = {key: (e if e == sp.oo else e.subs(TAU, tau_in)) for key, e in forms.items()}
                m0, m1, m2 = exprs["E[s]"], exprs["E[s']"], exprs["E[s'']"]
                var = exprs["E[s^2]"] - m0**2
                w2_bar = exprs["E[(s^2)'']"] - 2 * m0 * m2
                alpha, beta, kappa2 = coefficient_recursion(alpha, beta, kappa2, var, m1, m2,
                                                            exprs["E[s'^2]"], w2_bar)
                out.append({"tau2": var, "alpha": alpha, "beta": beta, "kappa2": kappa2})
                tau_in = sp.sqrt(var)
    except BudgetExceeded:
        return None
    return out
