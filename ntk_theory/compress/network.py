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

The dense side is :func:`ntk_theory.coefficients.coefficients` (the one scale
recursion): its per-layer moments are the targets.  Optionally the last layer is solved
with the extra equation ``Var σ(τ'_{L−1}ξ) = τ_L²`` (δ = 0) by
:func:`ntk_theory.compress.solve.solve_last_layer_sigma_q`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mpmath as mp
import numpy as np

from ..activations import Activation, parse_activation
from ..coefficients import coefficients
from ..errors import DomainError, InfeasibleError, ParameterError
from ..moments import GaussianMoments, gaussian_moments
from .families import AlphaTargets, stair_moments_mp
from .solve import LAST_LAYER_SOLVERS, LayerFit, q_slices, solve_alpha, solve_auto, solve_last_layer_sigma_q

__all__ = ["DenseLayer", "CompressionResult", "compress_network", "dense_layer_moments"]

#: The σ_Q solver lives in :mod:`ntk_theory.compress.solve`; these names stay importable from here.
_REEXPORTED = (solve_last_layer_sigma_q, q_slices)


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

    @classmethod
    def from_moments(cls, g: GaussianMoments) -> DenseLayer:
        """The layer's moments from the moment engine's result at its input scale."""
        return cls(float(g.tau), g.m0, g.m1, g.m2, g.w2_bar, g.variance, g.v1)


def dense_layer_moments(act: Activation, tau: float, *, digits: int = 15) -> DenseLayer:
    """One dense layer's moments at input scale ``tau``.

    From :func:`~ntk_theory.moments.gaussian_moments`, except for a staircase: its jump
    formula is evaluated here at the binary float64 thresholds and levels, as the
    solvers' residual check sees them (the moment engine reads a float parameter as its
    shortest decimal, ``0.1 → 1/10``; near-coincident thresholds make the two differ in
    the 12th digit).  ``v1 = inf`` for a staircase.
    """
    if act.staircase is not None:
        with mp.workdps(max(30, digits + 15)):
            m = stair_moments_mp(act.staircase, tau)
            return DenseLayer(float(tau), float(m.m0), float(m.m1), float(m.m2),
                              float(m.w2_bar), float(m.variance), math.inf)
    return DenseLayer.from_moments(gaussian_moments(act, tau, digits=digits))


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
    elif last_family not in LAST_LAYER_SOLVERS:
        raise ParameterError(f"must be none or {' or '.join(LAST_LAYER_SOLVERS)}, got '{last_family}'",
                             option="last_family")
    acts = [parse_activation(a) for a in activations]
    t_start = time.perf_counter()
    coefs = coefficients(acts, float(tau0), digits=digits)
    dense = [DenseLayer.from_moments(c.moments) for c in coefs.layers]
    tau_d = list(coefs.taus)
    fits: list[LayerFit] = []
    tau_c = [float(tau0)]
    L = len(acts)
    for ell, d in enumerate(dense, start=1):
        try:
            if ell == L and last_family is not None:
                fit = LAST_LAYER_SOLVERS[last_family](d.targets, tau_c[-1], tau_d[-1] ** 2, digits=digits)
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
