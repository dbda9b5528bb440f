"""Monte Carlo estimates of the six Gaussian moments with confidence intervals.

An independent check of the engine (docs/reference.rst §1): it uses only the activation's
vectorized NumPy function and its a.e. derivative.  Derivative moments use the
Stein forms ``E[σ'] = E[ξσ(τξ)]/τ``, ``E[σ''] = E[(ξ²−1)σ(τξ)]/τ²`` and
``E[(σ²)''] = E[(ξ²−1)σ(τξ)²]/τ²``, with the deterministic control variate
``c = σ(0)`` subtracted (``E[ξ] = E[ξ²−1] = 0``, so no bias) to keep the variance
bounded.  ``E[σ'²]`` is ``+inf`` for activations with a jump.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from .activations import Activation, parse_activation
from .errors import ParameterError
from .expectation import validate_tau
from .jump import MOMENT_KEYS
from .moments import has_jump

__all__ = ["MonteCarloEstimate", "monte_carlo_moments"]


@dataclass(frozen=True)
class MonteCarloEstimate:
    """A Monte Carlo mean with its standard error (CLT)."""

    key: str
    mean: float
    stderr: float
    n: int

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """Two-sided normal confidence interval at ``level``."""
        if math.isinf(self.mean):
            return (self.mean, self.mean)
        z = float(stats.norm.ppf(0.5 + level / 2))
        return (self.mean - z * self.stderr, self.mean + z * self.stderr)

    def within(self, value: float, n_se: float = 5.0) -> bool:
        """Whether ``value`` lies within ``n_se`` standard errors of the mean."""
        if math.isinf(self.mean) or math.isinf(value):
            return self.mean == value
        return abs(value - self.mean) <= n_se * self.stderr


def monte_carlo_moments(
    act: Activation | str,
    tau: float = 1.0,
    *,
    n: int = 2_000_000,
    seed: int = 0,
    centered: bool = False,
    batch: int = 500_000,
) -> dict[str, MonteCarloEstimate]:
    """Monte Carlo estimates of the six moments of :func:`~ntk_theory.moments.gaussian_moments`.

    Parameters
    ----------
    act : Activation or str
        The activation.
    tau : float
        Input scale (> 0).
    n : int
        Number of Gaussian samples (streamed in batches of ``batch``).
    seed : int
        Seed of the NumPy generator; the same seed gives bit-identical results.
    centered : bool
        Estimate the centered moments (plug-in sample mean; its O(1/n) bias is far
        below the standard error).
    """
    a = parse_activation(act)
    tau = validate_tau(tau)
    if not isinstance(n, int) or n < 100:
        raise ParameterError(f"n must be an integer >= 100, got {n!r}")
    rng = np.random.default_rng(seed)
    jump = a.staircase is not None or has_jump(a.expr)
    c = float(a(np.zeros(1))[0])
    c2 = c * c
    # running sums of each estimator and of its square
    keys = ("s", "xs", "hs", "s2", "d2", "hs2")
    tot = {k: 0.0 for k in keys}
    tot_sq = {k: 0.0 for k in keys}
    done = 0
    while done < n:
        m = min(batch, n - done)
        xi = rng.standard_normal(m)
        s = a(tau * xi)
        h = xi * xi - 1
        est = {
            "s": s,
            "xs": xi * (s - c) / tau,
            "hs": h * (s - c) / tau**2,
            "s2": s * s,
            "d2": a.derivative(tau * xi) ** 2 if not jump else np.zeros(m),
            "hs2": h * (s * s - c2) / tau**2,
        }
        for k in keys:
            tot[k] += float(np.sum(est[k]))
            tot_sq[k] += float(np.sum(est[k] ** 2))
        done += m
    mean = {k: tot[k] / n for k in keys}
    se = {k: math.sqrt(max(tot_sq[k] / n - mean[k] ** 2, 0.0) / n) for k in keys}
    out = {
        "E[s]": MonteCarloEstimate("E[s]", mean["s"], se["s"], n),
        "E[s']": MonteCarloEstimate("E[s']", mean["xs"], se["xs"], n),
        "E[s'']": MonteCarloEstimate("E[s'']", mean["hs"], se["hs"], n),
        "E[s^2]": MonteCarloEstimate("E[s^2]", mean["s2"], se["s2"], n),
        "E[s'^2]": (MonteCarloEstimate("E[s'^2]", math.inf, 0.0, n) if jump
                    else MonteCarloEstimate("E[s'^2]", mean["d2"], se["d2"], n)),
        "E[(s^2)'']": MonteCarloEstimate("E[(s^2)'']", mean["hs2"], se["hs2"], n),
    }
    if centered:
        m0 = out["E[s]"]
        m2 = out["E[s'']"]
        # Var = E[s²] − m0²; its standard error is that of (s − m0)², bounded here by the
        # sum of the two terms' errors (conservative, first-order delta method).
        out["E[s^2]"] = MonteCarloEstimate(
            "E[s^2]", out["E[s^2]"].mean - m0.mean**2,
            out["E[s^2]"].stderr + 2 * abs(m0.mean) * m0.stderr, n)
        w2 = out["E[(s^2)'']"]
        out["E[(s^2)'']"] = MonteCarloEstimate(
            "E[(s^2)'']", w2.mean - 2 * m0.mean * m2.mean,
            w2.stderr + 2 * abs(m2.mean) * m0.stderr + 2 * abs(m0.mean) * m2.stderr, n)
        out["E[s]"] = MonteCarloEstimate("E[s]", 0.0, 0.0, n)
    return {k: out[k] for k in MOMENT_KEYS}
