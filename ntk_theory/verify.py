"""Verification of an NTK-LC compression (docs/reference.rst §4–§6).

Given a :class:`~ntk_theory.compress.CompressionResult` (dense activations, the solved
quantized activations at the compressed network's own scales, and δ):

(a) :func:`verify_coefficients` — α and β of the compressed network, recomputed by the
    lead's coefficient engine (:func:`ntk_theory.coefficients.coefficients`, i.e. from
    the compressed activations' *own* Gaussian moments, independently of the solver),
    equal the dense network's.
(b) δ = τ'_L² − τ_L² and the ridge shift are carried by the result and reported by
    :class:`CoefficientCheck` next to the same scales recomputed by the engine.
(c) :func:`verify_kernels` — the exact limiting CK (docs/reference.rst §3) of the compressed
    network minus δI against the dense network's exact CK: the relative operator-norm
    error is the theory's approximation error of *both* networks, so it must be small
    and shrink as n, p grow.  :func:`empirical_spectra` does the same with wide NumPy
    networks (Gaussian dense weights vs sparse ternary weights), comparing spectra
    because a finite-width CK is only O(√(n/d)) close to its limit (docs/reference.rst §3).
(d) :func:`verify_ridge_shift` — on the theory kernels (docs/reference.rst §5) the compressed
    kernel is the dense one plus δI, so kernel ridge on the compressed kernel with λ is
    *identical* to kernel ridge on the dense kernel with λ + δ
    (:mod:`ntk_theory.readout`); and on finite-width features of wide networks the
    shifted dense readout is much closer to the compressed one than the unshifted one.
(e) :func:`verify_lattice` — the realised scales of a finite compressed network whose
    staircase layers feed sparse ternary weights: the pre-activations are lattice
    variables, and the exact lattice law gives the deviation of every ``τ'_ℓ²`` from
    the plan (docs/reference.rst §6).

The staircase activations of the compressed network have E[σ'²] = ∞ (a squared Dirac
delta, docs/reference.rst §1), so κ' and the compressed NTK are infinite: the kernel items
compare conjugate kernels only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .activations import Activation
from .coefficients import NetworkCoefficients, coefficients
from .compress import CompressionResult, ternary_weights
from .data import DataStatistics
from .errors import ParameterError
from .exact import exact_kernels
from .network import MLP
from .readout import kernel_ridge_fit
from .spectral import relative_errors
from .theory import theory_kernels

__all__ = [
    "CoefficientCheck",
    "KernelCheck",
    "EmpiricalSpectra",
    "RidgeShiftCheck",
    "compressed_activations",
    "compressed_centering",
    "verify_coefficients",
    "verify_kernels",
    "empirical_spectra",
    "dense_network",
    "compressed_network",
    "verify_ridge_shift",
    "spectra_overlay_figure",
    "verify_lattice",
]


def compressed_activations(result: CompressionResult) -> list[Activation]:
    """The compressed layers' (uncentered) registry activations σ'_1 … σ'_L."""
    return [fit.activation for fit in result.layers]


def compressed_centering(result: CompressionResult) -> list[float]:
    """The compressed network's centering constants ``E[σ'_ℓ(τ'_{ℓ−1}ξ)]`` (docs/reference.rst §1)."""
    return [float(fit.mean) for fit in result.layers]


def _rel(a: float, b: float, scale: float) -> float:
    return abs(a - b) / scale if scale > 0 else abs(a - b)


# --------------------------------------------------------------------------- #
# (a), (b): coefficients
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class CoefficientCheck:
    """Items (a) and (b): coefficients of the dense and the compressed network.

    Attributes
    ----------
    alpha_dense, alpha_compressed : tuple of 4-tuples
        α_{ℓ,1..4} per layer.
    beta_dense, beta_compressed : tuple of 3-tuples
    max_rel_diff : float
        ``max |c' − c| / max|c|`` over all α and β of all layers (scale per layer).
    tau_dense, tau_compressed : tuple of float
        τ_0…τ_L and τ'_0…τ'_L as recomputed by the coefficient engine.
    delta : float
        ``τ'_L² − τ_L²`` from the recomputed scales.
    delta_reported : float
        δ as reported by the compression result (must agree with ``delta``).
    ridge_shift : float
        ``−δ``: dense ridge λ ↔ compressed ridge ``λ + ridge_shift``.
    """

    alpha_dense: tuple[tuple[float, ...], ...]
    alpha_compressed: tuple[tuple[float, ...], ...]
    beta_dense: tuple[tuple[float, ...], ...]
    beta_compressed: tuple[tuple[float, ...], ...]
    max_rel_diff: float
    tau_dense: tuple[float, ...]
    tau_compressed: tuple[float, ...]
    delta: float
    delta_reported: float
    ridge_shift: float

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def verify_coefficients(result: CompressionResult) -> CoefficientCheck:
    """Recompute α, β, τ of both networks with :func:`~ntk_theory.coefficients.coefficients`.

    The compressed network's coefficients come from its own activations' Gaussian
    moments at its own scales (the engine's staircase jump formula), not from the
    solver's residuals — an independent check of the α-matching.
    """
    tau0 = result.tau_dense[0]
    dense = coefficients(list(result.activations), tau0)
    comp = coefficients(compressed_activations(result), tau0)
    worst = 0.0
    for cd, cc in zip(dense.layers, comp.layers):
        scale = max(max(map(abs, cd.alpha)), max(map(abs, cd.beta)))
        for x, y in zip(cd.alpha + cd.beta, cc.alpha + cc.beta):
            worst = max(worst, _rel(y, x, scale))
    delta = comp.last.tau ** 2 - dense.last.tau ** 2
    return CoefficientCheck(
        alpha_dense=tuple(c.alpha for c in dense.layers),
        alpha_compressed=tuple(c.alpha for c in comp.layers),
        beta_dense=tuple(c.beta for c in dense.layers),
        beta_compressed=tuple(c.beta for c in comp.layers),
        max_rel_diff=worst,
        tau_dense=dense.taus,
        tau_compressed=comp.taus,
        delta=delta,
        delta_reported=result.delta,
        ridge_shift=result.ridge_shift,
    )


# --------------------------------------------------------------------------- #
# (c): exact limiting kernels
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, eq=False)
class KernelCheck:
    """Item (c): exact CK of the compressed net minus δI vs the dense net's exact CK.

    Attributes
    ----------
    n, p : int
    delta : float
    rel_opnorm, rel_frobenius : float
        ``‖K' − δI − K‖/‖K‖`` (operator, Frobenius).
    rel_opnorm_unshifted : float
        ``‖K' − K‖₂/‖K‖₂``: what the comparison gives without removing δI.
    opnorm_dense : float
        ``‖K‖₂``.
    K_dense, K_compressed : ndarray or None
        The exact kernels (kept when ``keep=True``).
    """

    n: int
    p: int
    delta: float
    rel_opnorm: float
    rel_frobenius: float
    rel_opnorm_unshifted: float
    opnorm_dense: float
    K_dense: np.ndarray | None = None
    K_compressed: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("n", "p", "delta", "rel_opnorm", "rel_frobenius",
                                               "rel_opnorm_unshifted", "opnorm_dense")}


def _check_X(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] < 2:
        raise ParameterError(f"X must be a p×n matrix with n ≥ 2, got shape {X.shape}")
    return X


def verify_kernels(X: np.ndarray, result: CompressionResult, *, keep: bool = False) -> KernelCheck:
    """Exact limiting CKs (docs/reference.rst §3) of the dense and the compressed network on ``X``.

    Both networks are centered with their theory constants at ``τ_0 = result.tau_dense[0]``
    (the dense one by :func:`~ntk_theory.exact.layer_scales`, the compressed one with the
    solver's ``E[σ'_ℓ(τ'_{ℓ−1}ξ)]``).
    """
    X = _check_X(X)
    tau0 = result.tau_dense[0]
    Kd = exact_kernels(X, list(result.activations), tau0=tau0, ntk=False).ck
    Kc = exact_kernels(X, compressed_activations(result), centering=compressed_centering(result),
                       ntk=False).ck
    n = X.shape[1]
    shifted = Kc - result.delta * np.eye(n)
    op, fro = relative_errors(shifted, Kd)
    op_raw, _ = relative_errors(Kc, Kd)
    return KernelCheck(n=n, p=X.shape[0], delta=result.delta, rel_opnorm=op, rel_frobenius=fro,
                       rel_opnorm_unshifted=op_raw, opnorm_dense=float(np.linalg.norm(Kd, 2)),
                       K_dense=Kd if keep else None, K_compressed=Kc if keep else None)


# --------------------------------------------------------------------------- #
# Networks
# --------------------------------------------------------------------------- #
def dense_network(result: CompressionResult, p: int, widths: Sequence[int], *, seed: int = 0,
                  dtype: Any = np.float64) -> MLP:
    """The dense NumPy network (Gaussian weights) centered at the theory's constants."""
    return MLP(list(result.activations), widths, p, seed=seed, dtype=dtype, tau0=result.tau_dense[0])


def compressed_network(result: CompressionResult, p: int, widths: Sequence[int], *, sparsity: float,
                       seed: int = 0, dtype: Any = np.float64) -> MLP:
    """The compressed NumPy network: sparse ternary weights (exact sparsity, seeded) and the
    solved staircase activations centered per layer (docs/reference.rst §6)."""
    tw = ternary_weights([int(p), *[int(d) for d in widths]], sparsity, seed)
    return MLP(compressed_activations(result), widths, p, seed=seed, dtype=dtype,
               weights=tw.matrices(dtype), centering=compressed_centering(result))


@dataclass(frozen=True, eq=False)
class EmpiricalSpectra:
    """Eigenvalues of finite-width CKs (ascending) and of the exact dense CK.

    Attributes
    ----------
    dense : ndarray
        Eigenvalues of the dense network's empirical ``CK_L``.
    compressed_shifted : ndarray
        Eigenvalues of the compressed network's empirical ``CK_L − δI``.
    exact : ndarray or None
        Eigenvalues of the dense exact limiting CK (when computed).
    widths : tuple of int
    sparsity : float
    rel_opnorm : float
        ``‖CK'_L − δI − CK_L‖₂/‖CK_L‖₂`` between the two finite networks.
    """

    dense: np.ndarray
    compressed_shifted: np.ndarray
    exact: np.ndarray | None
    widths: tuple[int, ...]
    sparsity: float
    rel_opnorm: float


def empirical_spectra(X: np.ndarray, result: CompressionResult, widths: Sequence[int], *,
                      sparsity: float = 0.9, seed: int = 0, exact: bool = True) -> EmpiricalSpectra:
    """CK spectra of a wide dense network and a wide compressed network (a figure)."""
    X = _check_X(X)
    p, n = X.shape
    dn = dense_network(result, p, widths, seed=seed)
    cn = compressed_network(result, p, widths, sparsity=sparsity, seed=seed + 1)
    Kd = dn.kernels(X, ntk=False).ck[-1]
    Kc = cn.kernels(X, ntk=False).ck[-1] - result.delta * np.eye(n)
    op, _ = relative_errors(Kc, Kd)
    ex = None
    if exact:
        ex = np.linalg.eigvalsh(exact_kernels(X, list(result.activations), tau0=result.tau_dense[0],
                                              ntk=False).ck)
    return EmpiricalSpectra(dense=np.linalg.eigvalsh(Kd), compressed_shifted=np.linalg.eigvalsh(Kc),
                            exact=ex, widths=tuple(int(d) for d in widths), sparsity=float(sparsity),
                            rel_opnorm=op)


def spectra_overlay_figure(spec: EmpiricalSpectra, *, title: str | None = None):
    """Overlaid eigenvalue histograms of :class:`EmpiricalSpectra` (Agg figure)."""
    from .plotting import spectra_figure

    curves = {}
    if spec.exact is not None:
        curves["dense, exact limit"] = spec.exact
    curves["dense, Gaussian weights"] = spec.dense
    curves[f"compressed (ε={spec.sparsity:g}) − δI"] = spec.compressed_shifted
    return spectra_figure(curves, title=title or f"CK spectra, widths {list(spec.widths)}")


# --------------------------------------------------------------------------- #
# (d): ridge shift
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class RidgeShiftCheck:
    """Item (d): readouts on the compressed kernel with λ vs the dense kernel with λ + δ.

    Attributes
    ----------
    lam, delta : float
    theory_rel_diff : float
        Relative (Frobenius) difference of the test predictions, kernel ridge on the compressed
        theory kernel (λ) vs on the dense theory kernel (λ + δ): an algebraic identity
        up to the 1e−10 α-matching.
    theory_rel_diff_unshifted : float
        The same against the dense theory kernel with λ (no shift).
    empirical_rel_diff : float or None
        Same as ``theory_rel_diff`` on the empirical CKs of finite wide networks.
    empirical_rel_diff_unshifted : float or None
    accuracy : dict
        Test accuracy per readout (``theory_compressed``, ``theory_dense_shifted``, ...).
    """

    lam: float
    delta: float
    theory_rel_diff: float
    theory_rel_diff_unshifted: float
    empirical_rel_diff: float | None
    empirical_rel_diff_unshifted: float | None
    accuracy: dict

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    m = max(1, int(round(test_fraction * n)))
    return np.sort(perm[m:]), np.sort(perm[:m])


def _ridge_predictions(K: np.ndarray, Y: np.ndarray, tr: np.ndarray, te: np.ndarray,
                       lam: float) -> np.ndarray:
    fit = kernel_ridge_fit(K[np.ix_(tr, tr)], Y[tr], lam)
    return fit.predict(K[np.ix_(te, tr)])


def _maxrel(A: np.ndarray, B: np.ndarray) -> float:
    """``‖A − B‖_F/‖B‖_F``."""
    return float(np.linalg.norm(A - B) / np.linalg.norm(B))


def verify_ridge_shift(X: np.ndarray, labels: np.ndarray, stats: DataStatistics,
                       result: CompressionResult, lam: float, *, widths: Sequence[int] | None = None,
                       sparsity: float = 0.9, seed: int = 0, test_fraction: float = 0.25
                       ) -> RidgeShiftCheck:
    """Item (d) on the theory kernels (exact identity) and, when ``widths`` is given, on the
    empirical CKs of finite dense and compressed networks.

    Targets are the centered one-hot labels; the same random train/test split is used
    for every readout.
    """
    from .readout import accuracy, one_hot

    X = _check_X(X)
    lam = float(lam)
    if not (math.isfinite(lam) and lam > 0):
        raise ParameterError(f"the ridge parameter must be > 0, got {lam}")
    p, n = X.shape
    y = np.asarray(labels)
    Y = one_hot(y)
    Y = Y - Y.mean(axis=0)
    tr, te = _split(n, test_fraction, seed)
    tau0 = result.tau_dense[0]
    if not math.isclose(stats.tau0, tau0, rel_tol=1e-12):
        raise ParameterError(f"statistics have τ_0 = {stats.tau0}, the compression τ_0 = {tau0}")
    dense_coefs: NetworkCoefficients = coefficients(list(result.activations), tau0)
    comp_coefs: NetworkCoefficients = coefficients(compressed_activations(result), tau0)
    Kd = theory_kernels(X, stats, dense_coefs, ntk=False).ck
    Kc = theory_kernels(X, stats, comp_coefs, ntk=False).ck
    delta = result.delta
    pc = _ridge_predictions(Kc, Y, tr, te, lam)
    ps = _ridge_predictions(Kd, Y, tr, te, lam + delta)
    pu = _ridge_predictions(Kd, Y, tr, te, lam)
    acc = {"theory_compressed": accuracy(pc, y[te]), "theory_dense_shifted": accuracy(ps, y[te]),
           "theory_dense_unshifted": accuracy(pu, y[te])}
    emp, emp_u = None, None
    if widths is not None:
        Ed = dense_network(result, p, widths, seed=seed).kernels(X, ntk=False).ck[-1]
        Ec = compressed_network(result, p, widths, sparsity=sparsity, seed=seed + 1).kernels(
            X, ntk=False).ck[-1]
        qc = _ridge_predictions(Ec, Y, tr, te, lam)
        qs = _ridge_predictions(Ed, Y, tr, te, lam + delta)
        qu = _ridge_predictions(Ed, Y, tr, te, lam)
        emp, emp_u = _maxrel(qc, qs), _maxrel(qc, qu)
        acc.update({"empirical_compressed": accuracy(qc, y[te]),
                    "empirical_dense_shifted": accuracy(qs, y[te]),
                    "empirical_dense_unshifted": accuracy(qu, y[te])})
    return RidgeShiftCheck(lam=lam, delta=delta, theory_rel_diff=_maxrel(pc, ps),
                           theory_rel_diff_unshifted=_maxrel(pc, pu), empirical_rel_diff=emp,
                           empirical_rel_diff_unshifted=emp_u, accuracy=acc)


def verify_lattice(result: CompressionResult, widths: Sequence[int], sparsity: float):
    """(e) The realised per-layer scales on the exact lattice laws (docs/reference.rst §6).

    A staircase layer feeding sparse ternary weights makes the next pre-activation a
    lattice variable; the realised scale ``E(σ_ℓ(h) − c_ℓ)²`` can differ from the planned
    ``τ'_ℓ²`` by far more than the Gaussian theory's finite-width error (e.g. +11.9 % for
    two ternary-compressed tanh layers of width 500 at ε = 0.9, confirmed by Monte Carlo
    networks in ``tests/test_lattice.py``).  ``widths`` are ``d_0, …, d_L``.  Returns
    :class:`ntk_theory.compress.LatticeReport`; its ``last_deviation`` is the relative
    error of the realised ``τ'_L²``, hence of δ's reference point.
    """
    from .compress.lattice import lattice_layer_moments

    return lattice_layer_moments(result, widths, sparsity)

