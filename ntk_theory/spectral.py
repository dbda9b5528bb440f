"""Spectral comparison of two kernel matrices (THEORY.md §3, §5, §7 Experiment 1).

The equivalence theorems (THEORY.md §5) say ``‖K − K̃‖ → 0`` in operator norm; finite
width empirical kernels are only ``O(√(n/d))`` close to their limits (§3), so
empirical checks compare spectra.  :func:`compare_kernels` reports, for a matrix ``A``
against a reference ``B``:

* relative operator-norm and Frobenius errors ``‖A − B‖/‖B‖``;
* eigenvalue quantiles of both and the Wasserstein-1 distance between the two empirical
  spectral distributions (:func:`scipy.stats.wasserstein_distance`);
* isolated eigenvalues of both (criterion in :func:`isolated_count`) and the alignment
  ``|⟨u_i(A), u_i(B)⟩|`` of the corresponding eigenvectors, plus the subspace alignment
  ``‖U_Aᵀ U_B‖_F² / k`` that is insensitive to rotations inside near-degenerate spikes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import scipy.linalg as sla
from scipy.stats import wasserstein_distance

from .errors import DomainError, ParameterError

__all__ = [
    "SpectralComparison",
    "Spectrum",
    "spectrum",
    "compare_kernels",
    "isolated_count",
    "relative_errors",
    "DEFAULT_QUANTILES",
]

DEFAULT_QUANTILES: tuple[float, ...] = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)


def _check(A: np.ndarray, name: str) -> np.ndarray:
    A = np.asarray(A, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ParameterError(f"{name} must be a square matrix, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise DomainError(f"{name} has non-finite entries (e.g. the infinite diagonal of a staircase NTK)")
    return A


def isolated_count(eigenvalues: np.ndarray, *, gap_factor: float = 0.25, max_count: int | None = None) -> int:
    """Number of eigenvalues isolated above the bulk.

    Criterion: with ``λ_1 ≥ λ_2 ≥ …`` and ``IQR`` the interquartile range of the whole
    spectrum (a width of the bulk that spikes cannot move), ``λ_1..λ_k`` are isolated
    where ``k`` is the largest index ``≤ max_count`` (default ``min(50, n/10)``) with
    ``λ_k − λ_{k+1} > gap_factor · IQR`` (default 0.25).  Near a square-root bulk edge consecutive
    eigenvalues are ``O(n^{−2/3})`` apart relative to the bulk width, far below
    ``0.25·IQR`` for ``n ≳ 200`` (a Marchenko–Pastur bulk of width w has IQR ≈ w/3 and
    edge spacings ≈ w n^{−2/3}), while a spike at a fixed distance from the edge has an
    ``O(1)`` gap.
    """
    lam = np.sort(np.asarray(eigenvalues, dtype=float))[::-1]
    n = lam.size
    if n < 4:
        return 0
    kmax = min(50, max(1, n // 10)) if max_count is None else int(max_count)
    kmax = min(kmax, n - 1)
    q75, q25 = np.percentile(lam, [75, 25])
    iqr = q75 - q25
    if iqr <= 0:
        iqr = max(lam[0] - lam[-1], 1e-300) / 2
    gaps = lam[:kmax] - lam[1:kmax + 1]
    big = np.flatnonzero(gaps > gap_factor * iqr)
    return int(big[-1] + 1) if big.size else 0


@dataclass(frozen=True, eq=False)
class Spectrum:
    """Eigenvalues (ascending) and the leading eigenvectors (columns, descending order)."""

    eigenvalues: np.ndarray
    top_vectors: np.ndarray


def spectrum(A: np.ndarray, k: int = 10) -> Spectrum:
    """All eigenvalues of the symmetric ``A`` and its ``k`` leading eigenvectors."""
    A = _check(A, "matrix")
    n = A.shape[0]
    k = max(0, min(int(k), n))
    lam = sla.eigvalsh(A)
    if k:
        _, U = sla.eigh(A, subset_by_index=[n - k, n - 1])
        U = U[:, ::-1]
    else:
        U = np.zeros((n, 0))
    return Spectrum(eigenvalues=lam, top_vectors=U)


def _opnorm(S: np.ndarray) -> float:
    """Spectral norm of a symmetric matrix from its two extreme eigenvalues only."""
    n = S.shape[0]
    lo = sla.eigvalsh(S, subset_by_index=[0, 0])[0]
    hi = sla.eigvalsh(S, subset_by_index=[n - 1, n - 1])[0]
    return float(max(abs(lo), abs(hi)))


def relative_errors(A: np.ndarray, B: np.ndarray) -> tuple[float, float]:
    """``(‖A − B‖₂/‖B‖₂, ‖A − B‖_F/‖B‖_F)``."""
    A, B = _check(A, "A"), _check(B, "B")
    D = A - B
    op = _opnorm(D) / _opnorm(B)
    fro = float(np.linalg.norm(D) / np.linalg.norm(B))
    return op, fro


@dataclass(frozen=True, eq=False)
class SpectralComparison:
    """Result of :func:`compare_kernels` for a matrix ``A`` against a reference ``B``.

    Attributes
    ----------
    names : tuple of str
        ``(name_A, name_B)``.
    n : int
    rel_opnorm, rel_frobenius : float
        ``‖A − B‖/‖B‖`` in operator and Frobenius norm.
    w1 : float
        Wasserstein-1 distance between the eigenvalue distributions.
    w1_relative : float
        ``w1`` divided by the mean absolute eigenvalue of ``B``.
    quantiles : tuple of float
        Probability levels.
    quantiles_a, quantiles_b : tuple of float
        Eigenvalue quantiles.
    top_a, top_b : tuple of float
        Leading eigenvalues (descending).
    isolated_a, isolated_b : int
        Isolated eigenvalue counts (:func:`isolated_count`).
    alignment : tuple of float
        ``|⟨u_i(A), u_i(B)⟩|`` for ``i = 1..k``, ``k = max(isolated_b, 1)`` (≤ ``n_top``).
    subspace_alignment : float
        ``‖U_Aᵀ U_B‖_F² / k`` for the same ``k``.
    eigenvalues_a, eigenvalues_b : ndarray
        Full spectra (ascending), for plots.
    vectors_a, vectors_b : ndarray
        Leading eigenvectors (``n × n_top``), for plots.
    """

    names: tuple[str, str]
    n: int
    rel_opnorm: float
    rel_frobenius: float
    w1: float
    w1_relative: float
    quantiles: tuple[float, ...]
    quantiles_a: tuple[float, ...]
    quantiles_b: tuple[float, ...]
    top_a: tuple[float, ...]
    top_b: tuple[float, ...]
    isolated_a: int
    isolated_b: int
    alignment: tuple[float, ...]
    subspace_alignment: float
    eigenvalues_a: np.ndarray
    eigenvalues_b: np.ndarray
    vectors_a: np.ndarray
    vectors_b: np.ndarray

    def to_dict(self, *, spectra: bool = False) -> dict[str, Any]:
        """JSON-ready dict (floats and lists); full spectra only with ``spectra=True``."""
        d = asdict(self)
        for key in ("eigenvalues_a", "eigenvalues_b", "vectors_a", "vectors_b"):
            d.pop(key)
        d["names"] = list(self.names)
        for key, val in list(d.items()):
            if isinstance(val, tuple):
                d[key] = [float(v) for v in val]
        if spectra:
            d["eigenvalues_a"] = self.eigenvalues_a.tolist()
            d["eigenvalues_b"] = self.eigenvalues_b.tolist()
        return d


def compare_kernels(
    A: np.ndarray,
    B: np.ndarray,
    *,
    names: Sequence[str] = ("a", "b"),
    n_top: int = 10,
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    gap_factor: float = 0.25,
    spectra: tuple[Spectrum, Spectrum] | None = None,
) -> SpectralComparison:
    """Compare a kernel ``A`` with a reference ``B`` (both symmetric n×n).

    ``spectra`` may pass precomputed :func:`spectrum` results (eigendecompositions are
    the expensive part for large ``n``: ``O(n³)``).
    """
    A, B = _check(A, "A"), _check(B, "B")
    if A.shape != B.shape:
        raise ParameterError(f"kernels have different shapes {A.shape} and {B.shape}")
    if len(names) != 2:
        raise ParameterError("names must hold two strings")
    qs = tuple(float(q) for q in quantiles)
    if any(not 0 <= q <= 1 for q in qs):
        raise ParameterError("quantiles must lie in [0, 1]")
    n = A.shape[0]
    k_top = max(1, min(int(n_top), n))
    sa, sb = spectra if spectra is not None else (spectrum(A, k_top), spectrum(B, k_top))
    op, fro = relative_errors(A, B)
    la, lb = sa.eigenvalues, sb.eigenvalues
    w1 = float(wasserstein_distance(la, lb))
    scale = float(np.mean(np.abs(lb))) or 1.0
    iso_a = isolated_count(la, gap_factor=gap_factor)
    iso_b = isolated_count(lb, gap_factor=gap_factor)
    k = max(1, min(iso_b, sa.top_vectors.shape[1], sb.top_vectors.shape[1]))
    Ua, Ub = sa.top_vectors[:, :k], sb.top_vectors[:, :k]
    align = tuple(float(abs(Ua[:, i] @ Ub[:, i])) for i in range(k))
    sub = float(np.sum((Ua.T @ Ub) ** 2) / k)
    return SpectralComparison(
        names=(str(names[0]), str(names[1])),
        n=n,
        rel_opnorm=op,
        rel_frobenius=fro,
        w1=w1,
        w1_relative=w1 / scale,
        quantiles=qs,
        quantiles_a=tuple(float(v) for v in np.quantile(la, qs)),
        quantiles_b=tuple(float(v) for v in np.quantile(lb, qs)),
        top_a=tuple(float(v) for v in la[::-1][:k_top]),
        top_b=tuple(float(v) for v in lb[::-1][:k_top]),
        isolated_a=iso_a,
        isolated_b=iso_b,
        alignment=align,
        subspace_alignment=sub,
        eigenvalues_a=la,
        eigenvalues_b=lb,
        vectors_a=sa.top_vectors,
        vectors_b=sb.top_vectors,
    )
