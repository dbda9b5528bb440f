"""NN-BCD: gradient-free training of pruned or tensor-train MLPs by block coordinate descent.

The method of Li et al., *On Model Compression for Neural Networks: Framework,
Algorithm, and Convergence Guarantee*: compression is one nonconvex objective with
auxiliary variables per layer, minimized block by block, every block in closed form.
It is the trained compression baseline that NTK-LC (docs/reference.rst §6) is
compared with in Experiment 2 (docs/reference.rst §7).

Network and objective
---------------------
An MLP with ReLU hidden layers and a linear output, no biases, weights
``W_ℓ ∈ ℝ^{d_ℓ×d_{ℓ−1}}`` (``ℓ = 1..L``), inputs ``V_0 = X ∈ ℝ^{p×n}`` and one-hot
labels ``Y ∈ ℝ^{K×n}``.  Auxiliary pre-activations ``U_ℓ`` and activations ``V_ℓ``
(``V_L`` is the output) and a *compressed copy* ``W̃_ℓ`` of every weight matrix enter

    F = ½‖V_L − Y‖² + (γ/2)‖V_L − U_L‖² + Σ_{ℓ<L} (γ/2)‖V_ℓ − relu(U_ℓ)‖²
        + Σ_ℓ (ρ/2)‖U_ℓ − W_ℓ V_{ℓ−1}‖² + Σ_ℓ (τ/2)‖W_ℓ − W̃_ℓ‖²,

with ``W̃_ℓ`` constrained to the compressed set 𝒞_ℓ: matrices with at most
``N_ℓ − round(ε N_ℓ)`` non-zeros (pruning at sparsity ε), or the matrices whose
tensorization has tensor-train ranks at most ``R`` (TT).  The trained network is the
compressed one, ``x ↦ W̃_L relu(⋯ relu(W̃_1 x))``.

One iteration (backward over the layers, as the method does)
-------------------------------------------------------------
* ``V_L ← argmin ½‖V − Y‖² + (γ/2)‖V − U_L‖² + (α/2)‖V − V_L^old‖²``
  (:func:`update_output_v`);
* ``U_L ← argmin (γ/2)‖V_L − U‖² + (ρ/2)‖U − W_L V_{L−1}‖²`` (:func:`update_output_u`);
* for ``ℓ = L, L−1, …, 1``, after the activations of layer ℓ:
  ``W_ℓ ← argmin (ρ/2)‖U_ℓ − W V_{ℓ−1}‖² + (τ/2)‖W − W̃_ℓ‖² + (α/2)‖W − W_ℓ^old‖²``
  (:func:`update_weights`, one SPD solve) then ``W̃_ℓ ← Π_𝒞(W_ℓ)``
  (:func:`prune` — exact; :func:`tt_project` — TT-SVD, see below);
* for hidden ``ℓ``: ``V_ℓ ← argmin (γ/2)‖V − relu(U_ℓ)‖² + (ρ/2)‖U_{ℓ+1} − W_{ℓ+1} V‖²``
  (:func:`update_hidden_v`, one SPD solve) and
  ``U_ℓ ← argmin (γ/2)‖V_ℓ − relu(U)‖² + (ρ/2)‖U − W_ℓ V_{ℓ−1}‖² + (α/2)‖U − U_ℓ^old‖²``
  (:func:`update_hidden_u`, the entrywise ReLU proximal map :func:`relu_prox`).

Every block is the exact minimizer of F in that block plus a proximal term, so
``F`` never increases: this is the monotone decrease behind the method's
Kurdyka–Łojasiewicz convergence proof, and it holds for the **full** objective ``F``
(penalty terms included), which is what :attr:`BCDResult.objective` records.  The one
block without a closed-form minimizer is the TT projection: TT-SVD (tensorly) is only
quasi-optimal, so the new ``W̃_ℓ`` is kept only when it is at least as close to
``W_ℓ`` as the previous one (which has the same TT ranks) — otherwise the block is
left unchanged and ``F`` still does not increase.

Defaults
--------
``γ = 5, ρ = 5, α = 1, τ = 0.1`` are the authors' settings for their MNIST
experiment (a small network on 28×28 digits); the initialization ``W_ℓ ~ 0.25 ×
Kaiming normal`` (``N(0, 0.125/d_{ℓ−1})``) is the one of their LeNet-300-100 pruning
code, whose ``γ = 100, ρ = 1, τ = 200`` it runs for 1000 iterations: at 40 iterations
that setting leaves the output far from the labels (``V_L`` moves ``1/(1+γ+α)`` of
the way to ``Y`` per sweep), see docs/bcd.rst for the validation grid behind the
choice.  Their code left its output layer dense; here every layer is compressed
(``compress_output=True``) so that the whole network has exactly the requested
sparsity.  Biases are absent (the authors' code computes them but multiplies them by
zero).  At the start ``W_ℓ = W̃_ℓ = Π_𝒞(W_ℓ^init)`` and ``U, V`` are the forward pass of
that compressed network, so the initial objective is ``½‖f(X) − Y‖²``.

Tensor trains
-------------
A ``d_ℓ × d_{ℓ−1}`` matrix is reshaped (row-major) into the tensor whose modes are the
prime factors of ``d_ℓ`` followed by those of ``d_{ℓ−1}`` (:func:`tt_modes`), as the
authors tensorize their layers, and decomposed by
:func:`tensorly.decomposition.tensor_train` with ranks ``(1, R, …, R, 1)`` clipped to
what each unfolding allows.  A layer with a prime output and input size (one mode
each) is a plain rank-``R`` matrix factorization.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import ParameterError, ResourceError

__all__ = [
    "BCDHyperparameters",
    "BCDState",
    "BCDResult",
    "relu_prox",
    "prune",
    "n_kept",
    "tt_modes",
    "tt_project",
    "tt_parameters",
    "update_output_v",
    "update_output_u",
    "update_weights",
    "update_hidden_v",
    "update_hidden_u",
    "objective",
    "init_state",
    "bcd_iteration",
    "train_bcd",
    "bcd_memory_bytes",
    "sparse_bits",
    "tt_bits",
    "save_bcd_npz",
]

#: Refuse problems whose working set would exceed this many bytes (the machine has 24 GiB).
MEMORY_LIMIT = 16 * 2**30


# --------------------------------------------------------------------------- #
# Hyperparameters
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class BCDHyperparameters:
    """The method's weights of the objective (module docstring).

    Attributes
    ----------
    gamma : float
        γ, weight of the activation-consistency terms ``‖V_ℓ − relu(U_ℓ)‖²``.
    rho : float
        ρ, weight of the pre-activation terms ``‖U_ℓ − W_ℓ V_{ℓ−1}‖²``.
    alpha : float
        α, proximal weight of the ``V_L``, ``U_ℓ`` and ``W_ℓ`` updates.
    tau : float
        τ, weight of the pull ``‖W_ℓ − W̃_ℓ‖²`` toward the compressed set.
    """

    gamma: float = 5.0
    rho: float = 5.0
    alpha: float = 1.0
    tau: float = 0.1

    def __post_init__(self) -> None:
        for name in ("gamma", "rho", "alpha", "tau"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.floating, np.integer)) or isinstance(v, bool) \
                    or not math.isfinite(float(v)) or float(v) <= 0:
                raise ParameterError(f"{name} must be a finite number > 0, got {v!r}")
            object.__setattr__(self, name, float(v))


# --------------------------------------------------------------------------- #
# Proximal maps and projections
# --------------------------------------------------------------------------- #
def relu_prox(v: np.ndarray, b: np.ndarray, c: float) -> np.ndarray:
    """Entrywise ``argmin_u ½(v − relu(u))² + (c/2)(u − b)²`` (``c > 0``).

    On ``u ≥ 0`` the minimizer is ``max((v + c b)/(1 + c), 0)``, on ``u ≤ 0`` it is
    ``min(b, 0)``; the smaller of the two objective values wins (ties go to ``u ≥ 0``).
    """
    v = np.asarray(v, dtype=float)
    b = np.asarray(b, dtype=float)
    up = np.maximum((v + c * b) / (1.0 + c), 0.0)
    um = np.minimum(b, 0.0)
    fp = 0.5 * (v - up) ** 2 + 0.5 * c * (up - b) ** 2
    fm = 0.5 * v ** 2 + 0.5 * c * (um - b) ** 2
    return np.where(fp <= fm, up, um)


def n_kept(size: int, sparsity: float) -> int:
    """Entries a ``size``-entry layer keeps at sparsity ε: ``size − round(ε·size)``."""
    return int(size) - int(round(float(sparsity) * int(size)))


def _check_sparsity(sparsity: float) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float, np.floating, np.integer)) \
            or not (0 <= float(sparsity) < 1):
        raise ParameterError(f"sparsity must lie in [0, 1), got {sparsity!r}")
    return float(sparsity)


def prune(W: np.ndarray, sparsity: float) -> np.ndarray:
    """Magnitude pruning: the Euclidean projection of ``W`` onto the matrices with at
    most :func:`n_kept` non-zeros — keep that many largest-magnitude entries, zero the rest.

    Exactly ``round(ε·N)`` entries are set to zero (ties in magnitude are broken by
    position, so the result is deterministic).  Raises :class:`ParameterError` when
    no entry would be kept.
    """
    eps = _check_sparsity(sparsity)
    W = np.asarray(W, dtype=float)
    k = n_kept(W.size, eps)
    if k < 1:
        raise ParameterError(f"sparsity {eps} keeps no entry of a {'x'.join(map(str, W.shape))} layer")
    flat = W.ravel()
    keep = np.argsort(-np.abs(flat), kind="stable")[:k]
    out = np.zeros_like(flat)
    out[keep] = flat[keep]
    return out.reshape(W.shape)


def _prime_factors(n: int) -> list[int]:
    out, q = [], 2
    while q * q <= n:
        while n % q == 0:
            out.append(q)
            n //= q
        q += 1
    if n > 1:
        out.append(n)
    return out


def tt_modes(shape: tuple[int, int]) -> tuple[int, ...]:
    """Mode sizes of a matrix's tensorization: prime factors of the rows, then of the columns
    (a size-1 side contributes no mode)."""
    m, n = (int(s) for s in shape)
    modes = tuple(_prime_factors(m) + _prime_factors(n))
    return modes if modes else (1,)


def tt_parameters(cores: Sequence[np.ndarray]) -> int:
    """Numbers stored by a tensor train (the entries of its cores)."""
    return int(sum(c.size for c in cores))


def tt_project(W: np.ndarray, rank: int) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Tensor-train reconstruction of ``W`` at TT ranks ``(1, R, …, R, 1)`` (TT-SVD by tensorly).

    Returns the reconstructed matrix and the TT cores (``r_{k−1} × n_k × r_k``).
    TT-SVD is quasi-optimal: its error is at least the largest and at most the
    root-sum-square of the truncated singular-value tails of the unfoldings
    (Oseledets 2011, Thm. 2.2).
    """
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ParameterError(f"TT rank must be a positive integer, got {rank!r}")
    import tensorly as tl
    from tensorly.decomposition import tensor_train

    W = np.asarray(W, dtype=float)
    modes = tt_modes(W.shape)
    if len(modes) == 1:  # a 1x1 or vector-free case: nothing to decompose
        return W.copy(), (W.reshape(1, -1, 1).copy(),)
    with _numpy_backend(tl):
        tt = tensor_train(W.reshape(modes), rank=int(rank))
        cores = tuple(np.asarray(f, dtype=float) for f in tt.factors)
        rec = np.asarray(tl.tt_to_tensor(cores), dtype=float).reshape(W.shape)
    return rec, cores


class _numpy_backend:
    """Run tensorly on its NumPy backend (the global backend may have been changed)."""

    def __init__(self, tl: Any) -> None:
        self.tl = tl

    def __enter__(self) -> None:
        self.ctx = self.tl.backend_context("numpy")
        self.ctx.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.ctx.__exit__(*exc)


# --------------------------------------------------------------------------- #
# Closed-form block updates
# --------------------------------------------------------------------------- #
def _spd_solve(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``A⁻¹ B`` for symmetric positive definite ``A`` (Cholesky; every system here has
    ``A ⪰ c I`` with ``c ≥ min(γ, α + τ) > 0``)."""
    from scipy.linalg import cho_factor, cho_solve

    return cho_solve(cho_factor(A, lower=True, check_finite=False), B, check_finite=False)


def update_output_v(Y: np.ndarray, U_L: np.ndarray, V_old: np.ndarray, h: BCDHyperparameters) -> np.ndarray:
    """``argmin_V ½‖V − Y‖² + (γ/2)‖V − U_L‖² + (α/2)‖V − V_old‖²``."""
    return (Y + h.gamma * U_L + h.alpha * V_old) / (1.0 + h.gamma + h.alpha)


def update_output_u(V_L: np.ndarray, W_L: np.ndarray, V_prev: np.ndarray, h: BCDHyperparameters) -> np.ndarray:
    """``argmin_U (γ/2)‖V_L − U‖² + (ρ/2)‖U − W_L V_{L−1}‖²``."""
    return (h.gamma * V_L + h.rho * (W_L @ V_prev)) / (h.gamma + h.rho)


def update_weights(U: np.ndarray, V_prev: np.ndarray, W_old: np.ndarray, W_tilde: np.ndarray,
                   h: BCDHyperparameters, gram: np.ndarray | None = None) -> np.ndarray:
    """``argmin_W (ρ/2)‖U − W V_prev‖² + (τ/2)‖W − W̃‖² + (α/2)‖W − W_old‖²``.

    ``W ((α+τ) I + ρ V Vᵀ) = α W_old + τ W̃ + ρ U Vᵀ``; ``gram`` may pass ``V Vᵀ``
    (constant for the first layer).
    """
    G = V_prev @ V_prev.T if gram is None else gram
    A = h.rho * G
    A[np.diag_indices_from(A)] += h.alpha + h.tau
    B = h.alpha * W_old + h.tau * W_tilde + h.rho * (U @ V_prev.T)
    return _spd_solve(A, B.T).T


def update_hidden_v(U: np.ndarray, U_next: np.ndarray, W_next: np.ndarray, h: BCDHyperparameters) -> np.ndarray:
    """``argmin_V (γ/2)‖V − relu(U)‖² + (ρ/2)‖U_next − W_next V‖²``."""
    A = h.rho * (W_next.T @ W_next)
    A[np.diag_indices_from(A)] += h.gamma
    return _spd_solve(A, h.rho * (W_next.T @ U_next) + h.gamma * np.maximum(U, 0.0))


def update_hidden_u(V: np.ndarray, W: np.ndarray, V_prev: np.ndarray, U_old: np.ndarray,
                    h: BCDHyperparameters) -> np.ndarray:
    """``argmin_U (γ/2)‖V − relu(U)‖² + (ρ/2)‖U − W V_prev‖² + (α/2)‖U − U_old‖²``.

    The two quadratics combine into ``((ρ+α)/2)‖U − B‖²`` with
    ``B = (ρ W V_prev + α U_old)/(ρ + α)``, so ``U = relu_prox(V, B, (ρ+α)/γ)``.
    """
    B = (h.rho * (W @ V_prev) + h.alpha * U_old) / (h.rho + h.alpha)
    return relu_prox(V, B, (h.rho + h.alpha) / h.gamma)


# --------------------------------------------------------------------------- #
# State, objective, iteration
# --------------------------------------------------------------------------- #
@dataclass
class BCDState:
    """The variables of the objective (mutable: one iteration updates them in place).

    ``W[ℓ], Wt[ℓ], U[ℓ], V[ℓ]`` for ``ℓ = 0..L−1`` are layer ``ℓ+1``'s weights, their
    compressed copy, pre-activations and activations (``V[L−1]`` is the output).
    ``cores[ℓ]`` are ``Wt[ℓ]``'s TT cores (TT mode only).
    """

    W: list[np.ndarray]
    Wt: list[np.ndarray]
    U: list[np.ndarray]
    V: list[np.ndarray]
    cores: list[tuple[np.ndarray, ...] | None] = field(default_factory=list)


def objective(state: BCDState, X: np.ndarray, Y: np.ndarray, h: BCDHyperparameters,
              components: bool = False) -> float | dict[str, float]:
    """The full objective ``F`` of the module docstring (penalty terms included).

    With ``components=True`` a dict of its parts: ``loss`` (½‖V_L − Y‖²),
    ``activation`` (the γ terms), ``preactivation`` (the ρ terms), ``compression``
    (the τ terms) and ``total``.
    """
    L = len(state.W)
    loss = 0.5 * _sq(state.V[-1] - Y)
    act = 0.5 * h.gamma * _sq(state.V[-1] - state.U[-1])
    act += sum(0.5 * h.gamma * _sq(state.V[l] - np.maximum(state.U[l], 0.0)) for l in range(L - 1))
    pre = sum(0.5 * h.rho * _sq(state.U[l] - state.W[l] @ (X if l == 0 else state.V[l - 1]))
              for l in range(L))
    comp = sum(0.5 * h.tau * _sq(state.W[l] - state.Wt[l]) for l in range(L))
    total = loss + act + pre + comp
    if components:
        return {"loss": loss, "activation": act, "preactivation": pre, "compression": comp, "total": total}
    return total


def _sq(A: np.ndarray) -> float:
    a = A.ravel()
    return float(a @ a)


def _draw_weights(widths: Sequence[int], seed: int) -> list[np.ndarray]:
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    # 0.25 × Kaiming normal (fan-in, ReLU gain √2): std 0.25·√(2/d_in)
    return [rng.standard_normal((d_out, d_in)) * (0.25 * math.sqrt(2.0 / d_in))
            for d_in, d_out in zip(widths[:-1], widths[1:])]


def _project(W: np.ndarray, sparsity: float | None, tt_rank: int | None
             ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
    if tt_rank is not None:
        return tt_project(W, tt_rank)
    return prune(W, sparsity if sparsity is not None else 0.0), None


def _forward(weights: Sequence[np.ndarray], X: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    U, V = [], []
    A = X
    for l, W in enumerate(weights):
        Z = W @ A
        U.append(Z)
        A = Z if l == len(weights) - 1 else np.maximum(Z, 0.0)
        V.append(A.copy() if l == len(weights) - 1 else A)
    return U, V


def init_state(X: np.ndarray, widths: Sequence[int], *, sparsity: float | None = None,
               tt_rank: int | None = None, seed: int = 0, compress_output: bool = True) -> BCDState:
    """The method's start: ``W = W̃ = Π_𝒞(0.25 × Kaiming normal)``, ``U, V`` its forward pass."""
    W0 = _draw_weights(widths, seed)
    Wt, cores = [], []
    for l, W in enumerate(W0):
        if l == len(W0) - 1 and not compress_output:
            Wt.append(W.copy())
            cores.append(None)
            continue
        P, c = _project(W, sparsity, tt_rank)
        Wt.append(P)
        cores.append(c)
    U, V = _forward(Wt, X)
    return BCDState(W=[w.copy() for w in Wt], Wt=Wt, U=U, V=V, cores=cores)


def bcd_iteration(state: BCDState, X: np.ndarray, Y: np.ndarray, h: BCDHyperparameters, *,
                  sparsity: float | None = None, tt_rank: int | None = None,
                  compress_output: bool = True, gram0: np.ndarray | None = None,
                  trace: list[float] | None = None) -> None:
    """One NN-BCD sweep (module docstring), in place.

    ``trace``, if given, receives the objective after every block (for tests).
    """
    L = len(state.W)

    def mark() -> None:
        if trace is not None:
            trace.append(objective(state, X, Y, h))

    def prev(l: int) -> np.ndarray:
        return X if l == 0 else state.V[l - 1]

    state.V[-1] = update_output_v(Y, state.U[-1], state.V[-1], h)
    mark()
    state.U[-1] = update_output_u(state.V[-1], state.W[-1], prev(L - 1), h)
    mark()
    for l in range(L - 1, -1, -1):
        if l < L - 1:
            state.V[l] = update_hidden_v(state.U[l], state.U[l + 1], state.W[l + 1], h)
            mark()
            state.U[l] = update_hidden_u(state.V[l], state.W[l], prev(l), state.U[l], h)
            mark()
        compressed = l < L - 1 or compress_output
        if compressed:
            state.W[l] = update_weights(state.U[l], prev(l), state.W[l], state.Wt[l], h,
                                        gram=gram0 if l == 0 else None)
            mark()
            if tt_rank is not None:
                rec, cores = tt_project(state.W[l], tt_rank)
                # TT-SVD is quasi-optimal only: keep it when it does not move away from W
                if _sq(state.W[l] - rec) <= _sq(state.W[l] - state.Wt[l]):
                    state.Wt[l], state.cores[l] = rec, cores
            else:
                state.Wt[l] = prune(state.W[l], sparsity if sparsity is not None else 0.0)
            mark()
        else:
            # an uncompressed output layer: the τ term is absent (W̃ follows W)
            state.W[l] = _update_weights_free(state.U[l], prev(l), state.W[l], h)
            state.Wt[l] = state.W[l]
            mark()


def _update_weights_free(U: np.ndarray, V_prev: np.ndarray, W_old: np.ndarray,
                         h: BCDHyperparameters) -> np.ndarray:
    """``argmin_W (ρ/2)‖U − W V_prev‖² + (α/2)‖W − W_old‖²`` (no compression pull)."""
    A = h.rho * (V_prev @ V_prev.T)
    A[np.diag_indices_from(A)] += h.alpha
    return _spd_solve(A, (h.alpha * W_old + h.rho * (U @ V_prev.T)).T).T


# --------------------------------------------------------------------------- #
# Training
# --------------------------------------------------------------------------- #
def bcd_memory_bytes(p: int, n: int, hidden: Sequence[int], K: int) -> int:
    """Bytes of the working set of :func:`train_bcd` (float64).

    Data ``X, Y``; ``U, V`` and one temporary per layer (``3 d_ℓ n``); per layer
    ``W, W̃``, the previous ``W`` and the right-hand side (``4 d_ℓ d_{ℓ−1}``); the
    Gram matrices and their Cholesky factors (``2 max d²``); the predictions on the
    data (``K n``).
    """
    widths = [int(p)] + [int(d) for d in hidden] + [int(K)]
    n = int(n)
    floats = n * (widths[0] + 2 * widths[-1]) + 3 * n * sum(widths[1:])
    floats += 4 * sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    floats += 2 * max(d * d for d in widths)
    return 8 * floats


@dataclass(frozen=True, eq=False)
class BCDResult:
    """A trained compressed network and its training record.

    Attributes
    ----------
    widths : tuple of int
        ``(p, d_1, …, d_{L−1}, K)``.
    weights : tuple of ndarray
        The compressed weights ``W̃_ℓ`` (what the network uses), float64.
    tt_cores : tuple or None
        Per layer the TT cores of ``W̃_ℓ`` (TT mode), else None.
    objective : tuple of float
        The full objective ``F`` after every iteration.
    objective_initial : float
        ``F`` at the start.
    components : dict
        The parts of ``F`` after the last iteration (:func:`objective`).
    train_accuracy, test_accuracy : float
        Accuracy of the compressed network (``test_accuracy`` is NaN without test data).
    sparsity : float or None
        ε (pruning mode).
    tt_rank : int or None
        R (TT mode).
    compress_output : bool
    hyper : BCDHyperparameters
    seed : int
    iterations : int
    seconds : float
        Wall-clock training time (iterations only, not data loading).
    """

    widths: tuple[int, ...]
    weights: tuple[np.ndarray, ...]
    tt_cores: tuple[tuple[np.ndarray, ...] | None, ...] | None
    objective: tuple[float, ...]
    objective_initial: float
    components: dict
    train_accuracy: float
    test_accuracy: float
    sparsity: float | None
    tt_rank: int | None
    compress_output: bool
    hyper: BCDHyperparameters
    seed: int
    iterations: int
    seconds: float

    @property
    def n_weights(self) -> int:
        """Total weight entries ``Σ d_ℓ d_{ℓ−1}``."""
        return int(sum(W.size for W in self.weights))

    @property
    def nonzeros(self) -> int:
        """Non-zero entries of the compressed weights."""
        return int(sum(np.count_nonzero(W) for W in self.weights))

    @property
    def stored_numbers(self) -> int:
        """Numbers stored: the non-zeros (pruning) or the TT core entries (TT; an
        uncompressed output layer counts all its entries)."""
        if self.tt_cores is None:
            return self.nonzeros
        return int(sum(W.size if c is None else tt_parameters(c) for W, c in zip(self.weights, self.tt_cores)))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Scores ``n × K`` of the compressed network on the columns of ``X`` (``p × n``)."""
        A = np.asarray(X, dtype=float)
        if A.ndim != 2 or A.shape[0] != self.widths[0]:
            raise ParameterError(f"X must be {self.widths[0]} x n, got shape {A.shape}")
        for l, W in enumerate(self.weights):
            A = W @ A
            if l < len(self.weights) - 1:
                A = np.maximum(A, 0.0)
        return A.T

    def bits(self) -> dict[str, float]:
        """Weight memory (:func:`sparse_bits` or :func:`tt_bits`)."""
        if self.tt_cores is None:
            return sparse_bits([W.size for W in self.weights], [int(np.count_nonzero(W)) for W in self.weights])
        return tt_bits([W.size for W in self.weights],
                       [W.size if c is None else tt_parameters(c) for W, c in zip(self.weights, self.tt_cores)],
                       [len(tt_modes(W.shape)) for W in self.weights])


def _binary_entropy(r: float) -> float:
    if r <= 0 or r >= 1:
        return 0.0
    return -r * math.log2(r) - (1 - r) * math.log2(1 - r)


def sparse_bits(sizes: Sequence[int], nonzeros: Sequence[int]) -> dict[str, float]:
    """Bits of pruned float32 weights, in the forms and under the names of
    :func:`ntk_theory.compress.bit_accounting`.

    * ``dense_float32`` — 32 bits per weight (as ``compress``);
    * ``packed`` — a 1-bit-per-weight mask plus the kept values as float32;
    * ``entropy`` — the mask at its Shannon bound ``N·h(ρ)`` (``ρ`` the layer's
      non-zero fraction, ``h`` the binary entropy) plus the values: the accounting
      Experiment 2 uses for magnitude pruning, so equal-memory comparisons hold;
    * ``ratio_packed``, ``ratio_entropy`` — dense over compressed.
    """
    N = float(sum(sizes))
    dense = 32.0 * N
    packed = float(sum(n + 32 * k for n, k in zip(sizes, nonzeros)))
    entropy = float(sum(n * _binary_entropy(k / n) + 32 * k for n, k in zip(sizes, nonzeros)))
    return {"dense_float32": dense, "packed": packed, "entropy": entropy,
            "ratio_packed": dense / packed if packed else math.inf,
            "ratio_entropy": dense / entropy if entropy else math.inf}


def tt_bits(sizes: Sequence[int], parameters: Sequence[int], orders: Sequence[int]) -> dict[str, float]:
    """Bits of tensor-train float32 weights: the core entries at 32 bits each plus, per
    layer, its mode sizes and ranks as 32-bit integers (``2·order`` of them).  ``packed``
    and ``entropy`` are equal (no entropy coding of float cores); names as :func:`sparse_bits`."""
    dense = 32.0 * float(sum(sizes))
    stored = float(sum(32 * q + 64 * o for q, o in zip(parameters, orders)))
    return {"dense_float32": dense, "packed": stored, "entropy": stored,
            "ratio_packed": dense / stored, "ratio_entropy": dense / stored}


def _isatty() -> bool:
    import sys

    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _check_data(X: np.ndarray, labels: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=float)
    y = np.asarray(labels)
    if X.ndim != 2 or X.shape[1] < 1:
        raise ParameterError(f"{name} X must be a p x n matrix with n >= 1, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ParameterError(f"{name} X has non-finite entries")
    if y.ndim != 1 or y.size != X.shape[1] or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise ParameterError(f"{name} labels must be {X.shape[1]} non-negative integers")
    return X, y.astype(np.int64)


def train_bcd(
    X: np.ndarray,
    labels: np.ndarray,
    hidden: Sequence[int],
    *,
    sparsity: float | None = 0.9,
    tt_rank: int | None = None,
    iterations: int = 40,
    seed: int = 0,
    hyper: BCDHyperparameters | None = None,
    X_test: np.ndarray | None = None,
    labels_test: np.ndarray | None = None,
    n_classes: int | None = None,
    compress_output: bool = True,
    progress: bool | None = None,
) -> BCDResult:
    """Train a pruned (``sparsity``) or tensor-train (``tt_rank``) ReLU MLP by NN-BCD.

    Parameters
    ----------
    X, labels : ndarray
        Training inputs ``p × n`` (columns are samples) and integer labels ``0..K−1``;
        the targets are their one-hot vectors (squared loss).
    hidden : sequence of int
        Hidden widths ``d_1 … d_{L−1}`` (may be empty: a linear model).
    sparsity : float in [0, 1), optional
        ε of the pruning projection (ignored in TT mode).
    tt_rank : int, optional
        TT rank ``R``: compress by tensor-train reconstruction instead of pruning.
    iterations : int
        Number of BCD sweeps.
    seed : int
        Seed of the initial weights; everything else is deterministic.
    hyper : BCDHyperparameters, optional
        γ, ρ, α, τ (default: the method's).
    X_test, labels_test : ndarray, optional
        Held-out data, used only to report :attr:`BCDResult.test_accuracy`.
    n_classes : int, optional
        K (default: the largest label + 1 over train and test).
    compress_output : bool
        Compress the output layer too (default; the whole network then has the
        requested sparsity).
    progress : bool, optional
        tqdm bar over the iterations (default: only when stderr is a TTY).

    Raises
    ------
    ParameterError
        Bad shapes, labels, widths, hyperparameters, sparsity, rank or iterations.
    ResourceError
        The working set (:func:`bcd_memory_bytes`) would exceed :data:`MEMORY_LIMIT`.
    """
    h = BCDHyperparameters() if hyper is None else hyper
    X, y = _check_data(X, labels, "training")
    hidden = tuple(hidden)
    if any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in hidden):
        raise ParameterError(f"hidden widths must be positive integers, got {list(hidden)}")
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ParameterError(f"iterations must be a positive integer, got {iterations!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(f"seed must be a non-negative integer, got {seed!r}")
    if tt_rank is None:
        sparsity = _check_sparsity(0.0 if sparsity is None else sparsity)
    elif isinstance(tt_rank, bool) or not isinstance(tt_rank, (int, np.integer)) or tt_rank < 1:
        raise ParameterError(f"TT rank must be a positive integer, got {tt_rank!r}")
    has_test = X_test is not None
    if has_test != (labels_test is not None):
        raise ParameterError("X_test and labels_test go together")
    if has_test:
        X_test, y_test = _check_data(X_test, labels_test, "test")
        if X_test.shape[0] != X.shape[0]:
            raise ParameterError(f"test inputs have dimension {X_test.shape[0]}, training {X.shape[0]}")
    K = int(max(y.max(), y_test.max() if has_test else 0)) + 1 if n_classes is None else int(n_classes)
    if K < 1 or y.max() >= K or (has_test and y_test.max() >= K):
        raise ParameterError(f"labels must lie in 0..{K - 1}")
    p, n = X.shape
    widths = (p,) + tuple(int(d) for d in hidden) + (K,)
    need = bcd_memory_bytes(p, n, hidden, K)
    if need > MEMORY_LIMIT:
        raise ResourceError.memory(f"NN-BCD with widths {list(widths)} on {n} samples", need, MEMORY_LIMIT,
                                   suggestion="use fewer samples or smaller layers")
    if tt_rank is None:
        for a, b in zip(widths[:-1], widths[1:]):
            if n_kept(a * b, sparsity) < 1:
                raise ParameterError(f"sparsity {sparsity} keeps no weight of a {b}x{a} layer")
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        import contextlib

        limit: Any = contextlib.nullcontext()
    else:
        # one BLAS thread: the solves are small (a few hundred rows) and a multithreaded
        # BLAS spends far more CPU spinning than computing, worst on a loaded machine
        limit = threadpool_limits(1)
    with limit:
        return _train(X, y, has_test, X_test if has_test else None, y_test if has_test else None, K,
                      widths, sparsity, tt_rank, int(iterations), int(seed), h, compress_output, progress)


def _train(X, y, has_test, X_test, y_test, K, widths, sparsity, tt_rank, iterations, seed, h,
           compress_output, progress) -> BCDResult:
    n = X.shape[1]
    Y = np.zeros((K, n))
    Y[y, np.arange(n)] = 1.0
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    state = init_state(X, widths, sparsity=sparsity, tt_rank=tt_rank, seed=seed,
                       compress_output=compress_output)
    gram0 = X @ X.T
    F0 = float(objective(state, X, Y, h))
    values: list[float] = []
    bar = tqdm(range(int(iterations)), desc="nn-bcd", leave=False,
               disable=(not _isatty()) if progress is None else not progress)
    for _ in bar:
        bcd_iteration(state, X, Y, h, sparsity=sparsity, tt_rank=tt_rank,
                      compress_output=compress_output, gram0=gram0)
        F = float(objective(state, X, Y, h))
        if not math.isfinite(F):  # cannot happen for finite data and positive weights
            from .errors import NumericalError

            raise NumericalError("NN-BCD objective became non-finite")
        values.append(F)
        bar.set_postfix(objective=f"{F:.6g}", refresh=False)
    bar.close()
    seconds = time.perf_counter() - t0
    comps = objective(state, X, Y, h, components=True)
    weights = tuple(np.array(W, dtype=float) for W in state.Wt)
    cores = tuple(state.cores) if tt_rank is not None else None
    res = BCDResult(widths=widths, weights=weights, tt_cores=cores, objective=tuple(values),
                    objective_initial=F0, components=comps, train_accuracy=math.nan,
                    test_accuracy=math.nan, sparsity=None if tt_rank is not None else sparsity,
                    tt_rank=None if tt_rank is None else int(tt_rank), compress_output=compress_output,
                    hyper=h, seed=int(seed), iterations=int(iterations), seconds=seconds)
    tr = float(np.mean(np.argmax(res.predict(X), axis=1) == y))
    te = float(np.mean(np.argmax(res.predict(X_test), axis=1) == y_test)) if has_test else math.nan
    object.__setattr__(res, "train_accuracy", tr)
    object.__setattr__(res, "test_accuracy", te)
    return res


# --------------------------------------------------------------------------- #
# Saving
# --------------------------------------------------------------------------- #
def save_bcd_npz(path: str, result: BCDResult, **extra: Any) -> None:
    """Write the compressed network to ``path`` (.npz) atomically.

    Pruned layers are stored sparsely: ``indices_ℓ`` (flat row-major positions,
    int64) and ``values_ℓ`` (float32); TT layers as their cores ``core_ℓ_k``
    (float32).  Also ``widths``, ``objective``, the hyperparameters, ``sparsity`` or
    ``tt_rank``, ``seed``, and ``extra_<name>`` entries.  The file is written to a
    temporary file in the same directory and renamed over ``path``, so a reader
    never sees a partial file.
    """
    import os

    from .io import atomic_savez

    arrays: dict[str, Any] = {
        "widths": np.asarray(result.widths, dtype=np.int64),
        "objective": np.asarray(result.objective, dtype=np.float64),
        "hyper": np.asarray([result.hyper.gamma, result.hyper.rho, result.hyper.alpha, result.hyper.tau]),
        "seed": np.int64(result.seed),
        "sparsity": np.float64(math.nan if result.sparsity is None else result.sparsity),
        "tt_rank": np.int64(0 if result.tt_rank is None else result.tt_rank),
    }
    for l, W in enumerate(result.weights):
        cores = None if result.tt_cores is None else result.tt_cores[l]
        if cores is None:
            idx = np.flatnonzero(W)
            arrays[f"indices_{l}"] = idx.astype(np.int64)
            arrays[f"values_{l}"] = W.ravel()[idx].astype(np.float32)
        else:
            for k, c in enumerate(cores):
                arrays[f"core_{l}_{k}"] = np.asarray(c, dtype=np.float32)
    for k, v in extra.items():
        arrays[f"extra_{k}"] = np.asarray(v)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ParameterError(f"cannot write {path}: directory {directory} does not exist")
    atomic_savez(path, arrays, what=path)
