"""Lattice effects: quantized activations feeding sparse ternary weights (docs/reference.rst §6).

The limiting kernels assume Gaussian pre-activations.  In a compressed network layer ℓ
outputs, per neuron, one of the K levels of its staircase minus the centering constant,
``y_j = v_{k(j)} − c_ℓ``, and layer ℓ+1 multiplies these by sparse ternary weights
``W_ij = (1−ε)^{−1/2} η_ij`` with ``η ∈ {−1, 0, 1}``.  Its pre-activation at one input,

    h = (d (1−ε))^{−1/2} Σ_{j=1}^{d} η_j y_j ,        d = d_ℓ (the fan-in),

is a sum of d i.i.d. discrete steps ``η_j y_j`` (the neurons of layer ℓ are i.i.d. given
the previous layer, and the weights are independent of them).  If the distinct
non-zero levels are integer multiples ``q_k b`` of one base ``b``, every step is
``η (q_k, 1)`` in the integer coordinates ``(S, T)`` with ``h = (b S − c T)/√(d(1−ε))``:
the law of h is the d-fold convolution of a two-dimensional integer law — a
**lattice** law, not a Gaussian one, although its variance is exactly
``E y² = E(σ_ℓ(u) − c_ℓ)²``.  (Incommensurate levels need one coordinate per level; up
to three coordinates are supported.)  The convolution is computed exactly, up to
rounding, by the multidimensional FFT of the step law raised to the power d, on a grid
wide enough that the probability outside it is below 1e−15 (Bernstein's inequality,
:func:`lattice_window`).

The next staircase is then evaluated on that law: its realised scale
``E(σ_{ℓ+1}(h) − c_{ℓ+1})²`` — the diagonal of the compressed network's CK — and its
level probabilities, which start the same computation for the layer after.  Lattice
points lying on a threshold (to 1e−9 relative) are split evenly between the two
levels: the network's floating-point sum lands on either side.

:func:`lattice_layer_moments` follows a :class:`~ntk_theory.compress.CompressionResult`
through every layer and reports, per layer, the plan ``τ'_ℓ²``, the realised lattice
scale and a Gaussian reference with the *same* variance, so the deviation caused by
the lattice shape is separated from the one carried over from earlier layers.  The
first layer sees the (continuous) data and is taken to be Gaussian.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import fft as sfft
from scipy import special as sps

from ..errors import ParameterError, ResourceError

__all__ = ["DiscreteLaw", "LatticeLayer", "LatticeReport", "lattice_preactivation",
           "staircase_on_law", "lattice_layer_moments", "lattice_window"]

#: probability left outside the FFT window, per coordinate (Bernstein bound)
_TAIL = 1e-15
_MAX_GRID = 2**24  # complex128 cells of the FFT grid (256 MiB)


@dataclass(frozen=True)
class DiscreteLaw:
    """A law on finitely many real points (sorted, probabilities summing to 1)."""

    values: np.ndarray
    probs: np.ndarray

    @property
    def variance(self) -> float:
        m = float(self.probs @ self.values)
        return float(self.probs @ (self.values - m) ** 2)


def lattice_window(var_step: float, max_step: float, d: int, tail: float = _TAIL) -> int:
    """Half-width m with ``P(|Σ_{j≤d} X_j| > m) ≤ tail`` for i.i.d. centred integer steps.

    Bernstein: ``P(|S| ≥ m) ≤ 2 exp(−m² / (2(d σ² + M m/3)))`` with ``σ² = var_step`` and
    ``|X_j| ≤ M = max_step``; solved for m.
    """
    L = math.log(2.0 / tail)
    a = L * max_step / 3.0
    m = a + math.sqrt(a * a + 2.0 * L * d * var_step)
    return int(min(math.ceil(m), d * max_step))


def _integer_coordinates(levels: np.ndarray, max_den: int = 64) -> tuple[float, np.ndarray]:
    """Base b and integers q with ``levels ≈ q b`` (relative 1e−12), or ``(nan, [])``."""
    nz = levels[np.abs(levels) > 0]
    if nz.size == 0:
        return 1.0, np.zeros(levels.size, dtype=np.int64)
    ref = nz[np.argmin(np.abs(nz))]
    fr = [Fraction(float(v / ref)).limit_denominator(max_den) for v in levels]
    if any(abs(float(f) - v / ref) > 1e-12 * max(1.0, abs(v / ref)) for f, v in zip(fr, levels)):
        return math.nan, np.array([], dtype=np.int64)
    lcm = 1
    for f in fr:
        lcm = lcm * f.denominator // math.gcd(lcm, f.denominator)
    q = np.array([int(f * lcm) for f in fr], dtype=np.int64)
    return float(ref) / lcm, q


def lattice_preactivation(levels: Sequence[float], probs: Sequence[float], center: float,
                          fan_in: int, sparsity: float) -> DiscreteLaw:
    """The law of ``h = (d(1−ε))^{−1/2} Σ_{j≤d} η_j (v_{k(j)} − c)`` (module docstring).

    Parameters
    ----------
    levels, probs : sequences
        The previous layer's distinct levels ``v_k`` and their probabilities.
    center : float
        Its centering constant c.
    fan_in : int
        d, the previous layer's width.
    sparsity : float
        ε in [0, 1).
    """
    v = np.asarray(levels, dtype=float)
    p = np.asarray(probs, dtype=float)
    if v.ndim != 1 or v.shape != p.shape or v.size == 0:
        raise ParameterError("levels and probs must be non-empty 1-D sequences of equal length")
    if not (0.0 <= sparsity < 1.0):
        raise ParameterError(f"sparsity must be in [0, 1), got {sparsity}")
    if fan_in < 1:
        raise ParameterError(f"fan_in must be >= 1, got {fan_in}")
    if np.any(p < 0) or abs(p.sum() - 1.0) > 1e-9:
        raise ParameterError("probs must be a probability vector")
    p = p / p.sum()
    keep = p > 0
    v, p = v[keep], p[keep]
    base, q = _integer_coordinates(v)
    # coordinates of one non-zero step η·(coords): commensurate levels give (q_k, 1)
    if math.isfinite(base):
        coords = np.stack([q, np.ones_like(q)], axis=1)
        weights = np.array([base, -center])
    else:  # one coordinate per level (its count), plus nothing else: h = Σ_k (v_k − c) M_k
        coords = np.eye(v.size, dtype=np.int64)
        weights = v - center
    if center == 0.0 and math.isfinite(base):
        coords, weights = coords[:, :1], weights[:1]
    D = coords.shape[1]
    if D > 3:
        raise ResourceError(f"lattice of dimension {D} (incommensurate levels {list(v)}): "
                            "at most 3 coordinates are supported")
    nonzero = 1.0 - sparsity
    half = []
    for i in range(D):
        var = nonzero * float(p @ coords[:, i].astype(float) ** 2)
        half.append(lattice_window(var, float(np.max(np.abs(coords[:, i]))), fan_in))
    shape = [sfft.next_fast_len(2 * m + 1) for m in half]
    if math.prod(shape) > _MAX_GRID:
        raise ResourceError(f"lattice grid {shape} too large (fan-in {fan_in}, {D} coordinates)")
    step = np.zeros(shape)
    step[(0,) * D] += sparsity
    for k in range(v.size):
        for sgn in (1, -1):
            idx = tuple(int(sgn * c) % n for c, n in zip(coords[k], shape))
            step[idx] += nonzero * p[k] / 2.0
    pmf = sfft.ifftn(sfft.fftn(step) ** fan_in).real
    pmf[pmf < 1e-300] = 0.0  # FFT rounding leaves ±1e−17 noise; negative values are noise
    pmf /= pmf.sum()
    # signed integer coordinates of every grid cell
    axes = [np.where(np.arange(n) <= n // 2, np.arange(n), np.arange(n) - n) for n in shape]
    mesh = np.meshgrid(*axes, indexing="ij")
    h = sum(w * m for w, m in zip(weights, mesh)) / math.sqrt(fan_in * nonzero)
    sel = pmf > 0
    vals, pr = h[sel], pmf[sel]
    order = np.argsort(vals, kind="stable")
    return DiscreteLaw(vals[order], pr[order])


def staircase_on_law(thresholds: Sequence[float], levels: Sequence[float], law: DiscreteLaw,
                     *, rtol: float = 1e-9) -> np.ndarray:
    """Probability of each level of a staircase under a discrete law.

    Points within ``rtol`` (relative to the law's standard deviation) of a threshold
    count half for each neighbouring level.
    """
    t = np.asarray(thresholds, dtype=float)
    nlev = len(levels)
    out = np.zeros(nlev)
    k = np.searchsorted(t, law.values, side="right")  # level index of each point
    np.add.at(out, k, law.probs)
    scale = math.sqrt(max(law.variance, 1e-300))
    for j, tj in enumerate(t):
        on = np.abs(law.values - tj) <= rtol * scale
        if np.any(on):
            m = float(law.probs[on].sum())
            # searchsorted put them on level j+1 (or j if below by rounding): re-split evenly
            for kk in np.unique(k[on]):
                out[kk] -= float(law.probs[on & (k == kk)].sum())
            out[j] += m / 2
            out[j + 1] += m / 2
    return out


def _gaussian_level_probs(thresholds: Sequence[float], tau: float) -> np.ndarray:
    z = np.concatenate([[-np.inf], np.asarray(thresholds, dtype=float) / tau, [np.inf]])
    cdf = sps.ndtr(z)
    return np.diff(cdf)


@dataclass(frozen=True)
class LatticeLayer:
    """Realised vs planned scale of one compressed layer.

    Attributes
    ----------
    layer : int
    planned_scale2 : float
        ``τ'_ℓ²`` of the plan (Gaussian pre-activations at ``τ'_{ℓ−1}``).
    realised_scale2 : float
        ``E(σ_ℓ(h) − c_ℓ)²`` under the lattice law of h (layer 1: Gaussian).
    gaussian_scale2 : float
        The same with a Gaussian h of the lattice law's variance.
    preactivation_variance : float
        ``Var h`` (equals ``τ'_{ℓ−1}²`` when the previous layer is as planned).
    atoms : int
        Lattice points carrying the pre-activation law (0 for layer 1).
    """

    layer: int
    planned_scale2: float
    realised_scale2: float | None
    gaussian_scale2: float | None
    preactivation_variance: float | None
    atoms: int
    note: str = ""

    @property
    def deviation(self) -> float | None:
        """Realised / planned − 1 (``None`` when not computed, see ``note``)."""
        if self.realised_scale2 is None:
            return None
        return self.realised_scale2 / self.planned_scale2 - 1.0

    @property
    def lattice_deviation(self) -> float | None:
        """Realised / Gaussian-with-the-same-variance − 1: the lattice shape alone."""
        if self.realised_scale2 is None or self.gaussian_scale2 is None:
            return None
        return self.realised_scale2 / self.gaussian_scale2 - 1.0

    def to_dict(self) -> dict:
        return {"layer": self.layer, "planned_scale2": self.planned_scale2,
                "realised_scale2": self.realised_scale2, "gaussian_scale2": self.gaussian_scale2,
                "deviation": self.deviation, "lattice_deviation": self.lattice_deviation,
                "preactivation_variance": self.preactivation_variance, "atoms": self.atoms,
                "note": self.note}


@dataclass(frozen=True)
class LatticeReport:
    """Per-layer lattice effects of a compressed network at given widths and sparsity."""

    sparsity: float
    widths: tuple[int, ...]
    layers: tuple[LatticeLayer, ...]

    @property
    def last_deviation(self) -> float | None:
        """Realised / planned − 1 of the last layer's scale τ'_L² (``None`` if not computed)."""
        return self.layers[-1].deviation

    def to_dict(self) -> dict:
        return {"sparsity": self.sparsity, "widths": list(self.widths),
                "layers": [l.to_dict() for l in self.layers],
                "last_deviation": self.last_deviation}


def lattice_layer_moments(result, widths: Sequence[int], sparsity: float) -> LatticeReport:
    """Follow a compression plan through sparse ternary layers on the exact lattice laws.

    Parameters
    ----------
    result : CompressionResult
        Every compressed layer must be a staircase (all compression families are).
    widths : sequence of int
        ``d_0, d_1, …, d_L``; layer ℓ+1's fan-in is ``d_ℓ``.
    sparsity : float
        ε of the ternary weights.
    """
    L = len(result.layers)
    widths = tuple(int(w) for w in widths)
    if len(widths) != L + 1:
        raise ParameterError(f"widths needs {L + 1} numbers (d_0 ... d_L), got {len(widths)}")
    out: list[LatticeLayer] = []
    law: DiscreteLaw | None = None
    prev: tuple[np.ndarray, np.ndarray, float] | None = None
    for ell, fit in enumerate(result.layers, start=1):
        st = fit.activation.staircase
        if st is None:
            raise ParameterError(f"layer {ell} ({fit.activation.spec}) is not a staircase")
        th, lv = np.asarray(st.thresholds, float), np.asarray(st.levels, float)
        c = float(fit.mean)
        planned = float(fit.variance)
        if prev is None:  # first layer: continuous data, Gaussian pre-activation at τ'_0
            tau = float(result.tau_compressed[0])
            probs = _gaussian_level_probs(th, tau)
            var_h, atoms = tau**2, 0
        else:
            levels, lprobs, center = prev
            try:
                law = lattice_preactivation(levels, lprobs, center, widths[ell - 1], sparsity)
            except ResourceError as exc:
                # incommensurate levels: the lattice is too fine-grained to enumerate (and its
                # effect correspondingly small); this and later layers are not computed
                note = f"not computed: {exc}"
                out.extend(LatticeLayer(k, float(f.variance), None, None, None, 0, note)
                           for k, f in enumerate(result.layers[ell - 1:], start=ell))
                break
            probs = staircase_on_law(th, lv, law)
            var_h, atoms = law.variance, int(law.values.size)
        realised = float(probs @ (lv - c) ** 2)
        gprobs = _gaussian_level_probs(th, math.sqrt(var_h))
        gaussian = float(gprobs @ (lv - c) ** 2)
        out.append(LatticeLayer(ell, planned, realised, gaussian, float(var_h), atoms))
        # distinct levels and their probabilities start the next layer
        uniq, inv = np.unique(lv, return_inverse=True)
        up = np.zeros(uniq.size)
        np.add.at(up, inv, probs)
        prev = (uniq, up, c)
    return LatticeReport(float(sparsity), widths, tuple(out))
