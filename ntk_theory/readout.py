"""Linear readouts on frozen random features: ridge in closed form, softmax regression by
gradient descent, accuracy (docs/reference.rst §6 "ridge shift", §7 Experiment 2).

Features are stored as the columns of ``Φ ∈ ℝ^{d×n}`` (the network's ``Σ_L``), as
everywhere in the toolkit.

**Ridge.**  With targets ``Y ∈ ℝ^{n×C}`` (one-hot for classification) the readout
``W = argmin ‖Φᵀ W − Y‖_F² + λ ‖W‖_F²`` is, in primal and dual (kernel) form,

    W = (Φ Φᵀ + λ I_d)^{-1} Φ Y = Φ (K + λ I_n)^{-1} Y,     K = Φᵀ Φ,

and the prediction on new features ``Φ_*`` is ``Φ_*ᵀ W = K_{*,·} (K + λ I)^{-1} Y``.
:func:`ridge_fit` picks whichever of the two linear systems is smaller.

**Ridge shift.**  In dual form only the training kernel's diagonal carries the ridge,
and an identity shift of the *training* kernel leaves the cross-kernel ``K_{*,·}``
between distinct points untouched.  So for any δ

    kernel_ridge(K + δ I, λ)  ≡  kernel_ridge(K, λ + δ)

exactly (same dual coefficients, same predictions).  NTK-LC's compressed network has
the theory kernel ``K̃ + δ I`` (docs/reference.rst §6), hence *the compressed readout with λ
equals the dense readout with λ + δ*; to reproduce the dense readout with ``λ`` use
``λ − δ`` on the compressed features (possible when ``λ > δ``).
:func:`kernel_ridge_fit` is the form in which this is an algebraic identity;
:mod:`ntk_theory.verify` checks it and its finite-width counterpart.

**Softmax regression** minimizes ``(1/n) Σ_i CE(softmax(Wᵀφ_i + b), y_i) + (λ/2)‖W‖_F²``
by Nesterov-accelerated gradient descent (with adaptive restart) and the fixed step ``1/L``,
``L = ‖[Φ; 1]‖₂²/(2n) + λ`` a Lipschitz bound of the gradient (the Hessian of
log-sum-exp has operator norm ≤ 1/2).  Deterministic: zero start, no sampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla

from .errors import NumericalError, ParameterError

__all__ = [
    "RidgeReadout",
    "KernelRidge",
    "SoftmaxReadout",
    "one_hot",
    "accuracy",
    "ridge_fit",
    "kernel_ridge_fit",
    "softmax_fit",
    "RidgeCV",
    "ridge_grid",
    "centered_kernel",
    "kernel_ridge_cv",
    "kernel_ridge_accuracy",
    "ridge_cv",
]


def _features(Phi: np.ndarray, name: str = "Phi") -> np.ndarray:
    Phi = np.asarray(Phi, dtype=float)
    if Phi.ndim != 2 or Phi.shape[1] < 1 or Phi.shape[0] < 1:
        raise ParameterError(f"{name} must be a d×n feature matrix, got shape {Phi.shape}")
    if not np.all(np.isfinite(Phi)):
        raise ParameterError(f"{name} contains non-finite values")
    return Phi


def _labels(labels: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or (n and y.min() < 0):
        raise ParameterError(f"labels must be {n} non-negative integers, got shape {y.shape}, dtype {y.dtype}")
    return y.astype(int)


def _ridge_parameter(lam: float) -> float:
    lam = float(lam)
    if not (math.isfinite(lam) and lam > 0):
        raise ParameterError(f"the ridge parameter must be finite and > 0, got {lam}")
    return lam


def one_hot(labels: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """``n × C`` class indicators of integer labels ``0..C−1``."""
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise ParameterError("labels must be a vector of non-negative integers")
    C = int(y.max()) + 1 if n_classes is None else int(n_classes)
    if y.size and y.max() >= C:
        raise ParameterError(f"label {int(y.max())} outside 0..{C - 1}")
    out = np.zeros((y.size, C))
    out[np.arange(y.size), y] = 1.0
    return out


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows of ``scores`` (n × C) whose arg-max is the label."""
    s = np.asarray(scores, dtype=float)
    y = _labels(labels, s.shape[0])
    if s.ndim != 2:
        raise ParameterError(f"scores must be n×C, got shape {s.shape}")
    return float(np.mean(np.argmax(s, axis=1) == y))


# --------------------------------------------------------------------------- #
# Ridge
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, eq=False)
class RidgeReadout:
    """A fitted ridge readout ``x ↦ Wᵀ(φ(x) − φ̄) + ȳ``.

    Attributes
    ----------
    W : ndarray, shape (d, C)
    feature_mean : ndarray, shape (d,)
        ``φ̄`` (zeros when ``fit_intercept`` was False).
    target_mean : ndarray, shape (C,)
    lam : float
        The ridge parameter λ.
    form : str
        ``"primal"`` (solved a d×d system) or ``"dual"`` (n×n).
    """

    W: np.ndarray
    feature_mean: np.ndarray
    target_mean: np.ndarray
    lam: float
    form: str

    def predict(self, Phi: np.ndarray) -> np.ndarray:
        """Scores ``n × C`` for features ``Φ`` (d × n)."""
        Phi = _features(Phi)
        if Phi.shape[0] != self.W.shape[0]:
            raise ParameterError(f"features have dimension {Phi.shape[0]}, the readout {self.W.shape[0]}")
        return (Phi - self.feature_mean[:, None]).T @ self.W + self.target_mean


def _spd_solve(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    try:
        return sla.solve(A, B, assume_a="pos")
    except (sla.LinAlgError, ValueError) as exc:
        raise NumericalError(f"ridge system is not positive definite: {exc}") from None


def ridge_fit(Phi: np.ndarray, Y: np.ndarray, lam: float, *, fit_intercept: bool = True) -> RidgeReadout:
    """Ridge regression of targets ``Y`` (n × C, or a label vector → one-hot) on ``Φ`` (d × n).

    ``fit_intercept`` centers features and targets with their training means (an
    unpenalized intercept).  Solves ``(ΦΦᵀ + λI)W = ΦY`` when ``d ≤ n`` and
    ``W = Φ(ΦᵀΦ + λI)^{-1}Y`` otherwise — the same ``W`` (module docstring).
    """
    Phi = _features(Phi)
    lam = _ridge_parameter(lam)
    d, n = Phi.shape
    Y = np.asarray(Y)
    if Y.ndim == 1:
        Y = one_hot(_labels(Y, n))
    Y = np.asarray(Y, dtype=float)
    if Y.shape[0] != n:
        raise ParameterError(f"targets have {Y.shape[0]} rows for {n} samples")
    mu = Phi.mean(axis=1) if fit_intercept else np.zeros(d)
    ym = Y.mean(axis=0) if fit_intercept else np.zeros(Y.shape[1])
    Pc = Phi - mu[:, None]
    Yc = Y - ym
    if d <= n:
        A = Pc @ Pc.T
        A[np.diag_indices(d)] += lam
        W = _spd_solve(A, Pc @ Yc)
        form = "primal"
    else:
        K = Pc.T @ Pc
        K[np.diag_indices(n)] += lam
        W = Pc @ _spd_solve(K, Yc)
        form = "dual"
    return RidgeReadout(W=W, feature_mean=mu, target_mean=ym, lam=lam, form=form)


@dataclass(frozen=True, eq=False)
class KernelRidge:
    """Kernel ridge in dual form: ``coef = (K + λI)^{-1} Y``; scores ``K_{*,train} coef``."""

    coef: np.ndarray
    lam: float

    def predict(self, K_cross: np.ndarray) -> np.ndarray:
        """Scores for the rows of ``K_cross`` (n_* × n_train)."""
        Kc = np.asarray(K_cross, dtype=float)
        if Kc.ndim != 2 or Kc.shape[1] != self.coef.shape[0]:
            raise ParameterError(f"cross kernel must have {self.coef.shape[0]} columns, got shape {Kc.shape}")
        return Kc @ self.coef


def kernel_ridge_fit(K: np.ndarray, Y: np.ndarray, lam: float) -> KernelRidge:
    """Kernel ridge on the training kernel ``K`` (n × n, symmetric PSD) with ``λ > 0``.

    ``kernel_ridge_fit(K + δI, Y, λ)`` and ``kernel_ridge_fit(K, Y, λ + δ)`` solve the
    same linear system (module docstring): that is the "ridge shift" of docs/reference.rst §6.
    """
    K = np.asarray(K, dtype=float)
    lam = _ridge_parameter(lam)
    if K.ndim != 2 or K.shape[0] != K.shape[1] or not np.all(np.isfinite(K)):
        raise ParameterError(f"K must be a finite square matrix, got shape {K.shape}")
    n = K.shape[0]
    Y = np.asarray(Y)
    if Y.ndim == 1 and np.issubdtype(Y.dtype, np.integer):
        Y = one_hot(_labels(Y, n))
    Y = np.asarray(Y, dtype=float)
    if Y.shape[0] != n:
        raise ParameterError(f"targets have {Y.shape[0]} rows for a {n}×{n} kernel")
    A = K.copy()
    A[np.diag_indices(n)] += lam
    return KernelRidge(coef=_spd_solve(A, Y), lam=lam)


# --------------------------------------------------------------------------- #
# Ridge parameter chosen by validation
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, eq=False)
class RidgeCV:
    """λ chosen by k-fold cross-validation on the training set.

    Attributes
    ----------
    lam : float
        The chosen ridge parameter: highest mean validation accuracy, ties broken by the
        lower mean validation squared error of the one-hot targets.
    grid : ndarray
        The candidate λ.
    cv_accuracy, cv_mse : ndarray
        Mean validation accuracy and squared error per candidate.
    folds : int
    """

    lam: float
    grid: np.ndarray
    cv_accuracy: np.ndarray
    cv_mse: np.ndarray
    folds: int


def ridge_grid(scale: float, *, lo: float = 1e-4, hi: float = 1e2, num: int = 25) -> np.ndarray:
    """Candidate λ: ``scale · logspace(lo, hi)`` with ``scale`` the mean squared feature norm
    (``tr K / n``), so that every network gets the same *relative* range."""
    scale = float(scale)
    if not (math.isfinite(scale) and scale > 0):
        raise ParameterError(f"the ridge grid needs a positive feature scale, got {scale}")
    return scale * np.geomspace(lo, hi, int(num))


def centered_kernel(G: np.ndarray, train: np.ndarray) -> np.ndarray:
    """The Gram matrix of features centered with their *training* mean.

    If ``G = ΦᵀΦ`` then the result is ``(Φ − φ̄ 1ᵀ)ᵀ(Φ − φ̄ 1ᵀ)`` with ``φ̄`` the mean over the
    columns ``train``: kernel ridge on it with an unpenalized target mean is exactly
    :func:`ridge_fit` with ``fit_intercept=True``.
    """
    G = np.asarray(G, dtype=float)
    m = G[:, train].mean(axis=1)
    return G - m[:, None] - m[None, :] + m[train].mean()


def _kernel_scores(G: np.ndarray, Y: np.ndarray, tr: np.ndarray, te: np.ndarray,
                   lams: np.ndarray) -> list[np.ndarray]:
    """Test scores of centered kernel ridge for every λ (one eigendecomposition)."""
    Gc = centered_kernel(G, tr)
    w, V = np.linalg.eigh(Gc[np.ix_(tr, tr)])
    w = np.maximum(w, 0.0)  # a Gram matrix is PSD; clip rounding
    ym = Y[tr].mean(axis=0)
    R = V.T @ (Y[tr] - ym)
    B = Gc[np.ix_(te, tr)] @ V
    return [B @ (R / (w + lam)[:, None]) + ym for lam in lams]


def _folds(train: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    if int(folds) < 2 or int(folds) > train.size:
        raise ParameterError(f"cross-validation needs 2 ≤ folds ≤ {train.size}, got {folds}")
    perm = np.random.default_rng(seed).permutation(train)
    return [np.sort(f) for f in np.array_split(perm, int(folds))]


def _select(acc: np.ndarray, mse: np.ndarray, grid: np.ndarray, folds: int) -> RidgeCV:
    best = np.flatnonzero(acc >= acc.max() - 1e-12)
    k = int(best[np.argmin(mse[best])])
    return RidgeCV(lam=float(grid[k]), grid=grid, cv_accuracy=acc, cv_mse=mse, folds=int(folds))


def kernel_ridge_cv(G: np.ndarray, labels: np.ndarray, train: np.ndarray, *,
                    lams: np.ndarray | None = None, folds: int = 5, seed: int = 0) -> RidgeCV:
    """Choose λ for centered kernel ridge on ``G`` by ``folds``-fold CV inside ``train``.

    ``G`` is the full Gram matrix (training and other points); only ``train`` rows and
    columns are used.  Default grid: :func:`ridge_grid` at the training points' ``tr G/n``.
    """
    G = np.asarray(G, dtype=float)
    train = np.asarray(train)
    y = _labels(labels, G.shape[0])
    Y = one_hot(y)
    grid = ridge_grid(float(np.mean(np.diag(centered_kernel(G, train))[train]))) if lams is None \
        else np.asarray(lams, dtype=float)
    acc = np.zeros(grid.size)
    mse = np.zeros(grid.size)
    for f in _folds(train, folds, seed):
        t = np.setdiff1d(train, f)
        for k, S in enumerate(_kernel_scores(G, Y, t, f, grid)):
            acc[k] += np.mean(np.argmax(S, axis=1) == y[f]) / folds
            mse[k] += np.mean((S - Y[f]) ** 2) / folds
    return _select(acc, mse, grid, folds)


def kernel_ridge_accuracy(G: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray,
                          lam: float) -> float:
    """Test accuracy of centered kernel ridge (≡ feature ridge with intercept) on ``G``."""
    y = _labels(labels, np.asarray(G).shape[0])
    S = _kernel_scores(np.asarray(G, dtype=float), one_hot(y), np.asarray(train), np.asarray(test),
                       np.array([_ridge_parameter(lam)]))[0]
    return float(np.mean(np.argmax(S, axis=1) == y[test]))


def ridge_cv(Phi: np.ndarray, labels: np.ndarray, *, lams: np.ndarray | None = None, folds: int = 5,
             seed: int = 0) -> RidgeCV:
    """Choose λ for :func:`ridge_fit` (with intercept) on features ``Φ`` (d × n) by k-fold CV.

    Each fold is solved in the smaller form: primal (eigendecomposition of the d×d
    ``Φ_c Φ_cᵀ``) when ``d`` is at most the fold's training size, dual otherwise; all λ of
    the grid share that decomposition.  Default grid: :func:`ridge_grid` at the mean
    squared norm of the centered features.
    """
    Phi = _features(Phi)
    d, n = Phi.shape
    y = _labels(labels, n)
    Y = one_hot(y)
    if lams is None:
        Pc = Phi - Phi.mean(axis=1, keepdims=True)
        grid = ridge_grid(float(np.sum(Pc * Pc)) / n)
    else:
        grid = np.asarray(lams, dtype=float)
    acc = np.zeros(grid.size)
    mse = np.zeros(grid.size)
    idx = np.arange(n)
    for f in _folds(idx, folds, seed):
        t = np.setdiff1d(idx, f)
        if d <= t.size:
            mu = Phi[:, t].mean(axis=1, keepdims=True)
            A = Phi[:, t] - mu
            s, U = np.linalg.eigh(A @ A.T)
            s = np.maximum(s, 0.0)
            ym = Y[t].mean(axis=0)
            R = U.T @ (A @ (Y[t] - ym))
            B = (Phi[:, f] - mu).T @ U
            scores = [B @ (R / (s + lam)[:, None]) + ym for lam in grid]
        else:
            G = Phi[:, np.concatenate([t, f])]
            G = G.T @ G
            loc_t, loc_f = np.arange(t.size), np.arange(t.size, t.size + f.size)
            scores = _kernel_scores(G, Y[np.concatenate([t, f])], loc_t, loc_f, grid)
        for k, S in enumerate(scores):
            acc[k] += np.mean(np.argmax(S, axis=1) == y[f]) / folds
            mse[k] += np.mean((S - Y[f]) ** 2) / folds
    return _select(acc, mse, grid, folds)


# --------------------------------------------------------------------------- #
# Softmax regression
# --------------------------------------------------------------------------- #
@dataclass(frozen=True, eq=False)
class SoftmaxReadout:
    """Multinomial logistic regression ``softmax(Wᵀφ + b)`` fitted by gradient descent.

    Attributes
    ----------
    W : ndarray, shape (d, C)
    b : ndarray, shape (C,)
    lam : float
    steps : int
        Iterations run.
    step_size : float
        The fixed step ``1/L``.
    loss : float
        Final regularized training objective.
    grad_norm : float
        Final gradient norm ``‖∇‖_F`` (relative to the starting one in ``grad_ratio``).
    grad_ratio : float
    """

    W: np.ndarray
    b: np.ndarray
    lam: float
    steps: int
    step_size: float
    loss: float
    grad_norm: float
    grad_ratio: float

    def predict(self, Phi: np.ndarray) -> np.ndarray:
        """Logits ``n × C``."""
        Phi = _features(Phi)
        return Phi.T @ self.W + self.b

    def probabilities(self, Phi: np.ndarray) -> np.ndarray:
        return _softmax(self.predict(Phi))


def _softmax(Z: np.ndarray) -> np.ndarray:
    Z = Z - Z.max(axis=1, keepdims=True)
    E = np.exp(Z)
    return E / E.sum(axis=1, keepdims=True)


def _objective_and_grad(Phi: np.ndarray, Y: np.ndarray, W: np.ndarray, b: np.ndarray,
                        lam: float) -> tuple[float, np.ndarray, np.ndarray]:
    n = Phi.shape[1]
    Z = Phi.T @ W + b
    Z -= Z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(Z).sum(axis=1))
    loss = float(np.mean(lse - np.sum(Z * Y, axis=1)) + 0.5 * lam * np.sum(W * W))
    P = np.exp(Z - lse[:, None])
    R = (P - Y) / n
    return loss, Phi @ R + lam * W, R.sum(axis=0)


def softmax_fit(Phi: np.ndarray, labels: np.ndarray, lam: float = 1e-4, *, steps: int = 300,
                n_classes: int | None = None, tol: float = 1e-6) -> SoftmaxReadout:
    """Softmax regression on ``Φ`` (d × n) by accelerated gradient descent (module docstring).

    Parameters
    ----------
    Phi : ndarray, shape (d, n)
    labels : ndarray of int, shape (n,)
    lam : float
        L2 penalty on ``W`` (> 0; the bias is unpenalized).
    steps : int
        Maximum number of iterations.
    tol : float
        Stop when ``‖∇‖_F ≤ tol · ‖∇_0‖_F``.
    """
    Phi = _features(Phi)
    lam = _ridge_parameter(lam)
    if int(steps) < 1:
        raise ParameterError(f"steps must be >= 1, got {steps}")
    d, n = Phi.shape
    y = _labels(labels, n)
    Y = one_hot(y, n_classes)
    C = Y.shape[1]
    # ‖[Φ; 1ᵀ]‖₂² ≤ ‖Φ‖₂² + n; the largest singular value from the smaller Gram matrix
    G = Phi @ Phi.T if d <= n else Phi.T @ Phi
    s2 = float(sla.eigvalsh(G, subset_by_index=[G.shape[0] - 1, G.shape[0] - 1])[0])
    Lip = 0.5 * (s2 + n) / n + lam
    eta = 1.0 / Lip
    W = np.zeros((d, C))
    b = np.zeros(C)
    Wm, bm = W.copy(), b.copy()
    _, gW, gb = _objective_and_grad(Phi, Y, W, b, lam)
    g0 = math.sqrt(float(np.sum(gW * gW) + np.sum(gb * gb)))
    k = 0
    gnorm = g0
    t_prev = 1.0
    for _ in range(1, int(steps) + 1):
        _, gW, gb = _objective_and_grad(Phi, Y, Wm, bm, lam)
        W_new = Wm - eta * gW
        b_new = bm - eta * gb
        # gradient-based adaptive restart (O'Donoghue & Candès): drop the momentum when
        # it points uphill, which keeps the linear rate on strongly convex directions
        if float(np.sum(gW * (W_new - W)) + np.sum(gb * (b_new - b))) > 0:
            t_prev = 1.0
        t_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t_prev * t_prev))
        beta = (t_prev - 1.0) / t_next
        Wm = W_new + beta * (W_new - W)
        bm = b_new + beta * (b_new - b)
        W, b, t_prev = W_new, b_new, t_next
        gnorm = math.sqrt(float(np.sum(gW * gW) + np.sum(gb * gb)))
        if gnorm <= tol * g0:
            break
    loss, gW, gb = _objective_and_grad(Phi, Y, W, b, lam)
    gnorm = math.sqrt(float(np.sum(gW * gW) + np.sum(gb * gb)))
    if not math.isfinite(loss):
        raise NumericalError("softmax regression diverged (non-finite loss)")
    return SoftmaxReadout(W=W, b=b, lam=lam, steps=k, step_size=eta, loss=loss, grad_norm=gnorm,
                          grad_ratio=gnorm / g0 if g0 > 0 else 0.0)
