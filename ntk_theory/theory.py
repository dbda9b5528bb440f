"""Theory kernels K̃_CK,ℓ and K̃_NTK,ℓ of the equivalence theorems (docs/reference.rst §5)::

    K̃_CK,ℓ  = α_{ℓ,1} XᵀX + V A_ℓ Vᵀ + (τ_ℓ² − τ_0² α_{ℓ,1}) I_n,
    A_ℓ     = [[α_{ℓ,2} t tᵀ + α_{ℓ,3} T,  α_{ℓ,2} t],
               [α_{ℓ,2} tᵀ,                α_{ℓ,2}  ]],

with ``V = [J/√p, ψ]`` and the data statistics of docs/reference.rst §2.  K̃_NTK,ℓ is the same
with β for α, B_ℓ for A_ℓ and κ_ℓ² for τ_ℓ².

**Identity term.**  NTK-LC prints the identity coefficient as
``τ_ℓ² − τ_0² α_{ℓ,1} − τ_0⁴ α_{ℓ,3}``.  docs/reference.rst §5 asks the toolkit to settle the
question with its own evidence; the project's check (``tests/test_theory.py`` and
the docs page *The identity term*) compares both against the exact limiting kernel.
The default, ``identity="diagonal"``, is the convention that check supports
(``τ_ℓ² − τ_0² α_{ℓ,1}``: the diagonal of K̃ then equals the exact kernel's diagonal
to leading order); ``identity="printed"`` reproduces the paper's formula.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._dense import add_low_rank, gram
from .activations import Activation
from .coefficients import NetworkCoefficients, coefficients
from .data import DataStatistics
from .errors import ParameterError, ResourceError

__all__ = ["TheoryKernels", "theory_kernels", "structure_matrix", "IDENTITY_CONVENTIONS"]

IdentityConvention = Literal["diagonal", "printed"]
IDENTITY_CONVENTIONS: tuple[str, ...] = ("diagonal", "printed")

_MEMORY_LIMIT = 22 * 2**30


@dataclass(frozen=True, eq=False)
class TheoryKernels:
    """K̃_CK,ℓ and K̃_NTK,ℓ for ℓ = 1..L.

    Attributes
    ----------
    CK : tuple of ndarray
        K̃_CK,1 … K̃_CK,L.
    NTK : tuple of ndarray
        K̃_NTK,1 … K̃_NTK,L (empty when not requested; ``+inf`` identity after a
        staircase layer, whose κ is infinite).
    coefficients : NetworkCoefficients
    identity : str
        The identity-term convention used.
    """

    CK: tuple[np.ndarray, ...]
    NTK: tuple[np.ndarray, ...]
    coefficients: NetworkCoefficients
    identity: str

    @property
    def ck(self) -> np.ndarray:
        return self.CK[-1]

    @property
    def ntk(self) -> np.ndarray:
        return self.NTK[-1]


def structure_matrix(c2: float, c3: float, t: np.ndarray, T: np.ndarray) -> np.ndarray:
    """``[[c2 t tᵀ + c3 T, c2 t], [c2 tᵀ, c2]]``, the (K+1)×(K+1) matrix A_ℓ (or B_ℓ)."""
    t = np.asarray(t, dtype=float).reshape(-1)
    K = t.size
    A = np.empty((K + 1, K + 1))
    A[:K, :K] = c2 * np.outer(t, t) + c3 * np.asarray(T, dtype=float)
    A[:K, K] = A[K, :K] = c2 * t
    A[K, K] = c2
    return A


def _identity_coefficient(scale2: float, tau0: float, c1: float, c3: float, identity: str) -> float:
    base = scale2 - tau0**2 * c1
    if identity == "printed":
        return base - tau0**4 * c3
    return base


def theory_kernels(
    X: np.ndarray,
    stats: DataStatistics,
    acts: Sequence[Activation | str] | NetworkCoefficients,
    *,
    ntk: bool = True,
    identity: IdentityConvention = "diagonal",
    layers: Literal["all", "last"] = "last",
) -> TheoryKernels:
    """The theory kernels of docs/reference.rst §5 on data ``X`` (p×n, already divided by √p).

    Parameters
    ----------
    X : ndarray, shape (p, n)
    stats : DataStatistics
        ``t, T, J, ψ`` and ``τ_0`` (population values or plug-in estimates).
    acts : activations or precomputed NetworkCoefficients
        Coefficients are computed at ``stats.tau0`` when activations are given.
    ntk : bool
        Also compute K̃_NTK.
    identity : {"diagonal", "printed"}
        Identity-term convention (see the module docstring).
    layers : {"last", "all"}
        Return only layer L (default, saves memory) or every layer.
    """
    if identity not in IDENTITY_CONVENTIONS:
        raise ParameterError(f"identity must be one of {IDENTITY_CONVENTIONS}, got {identity!r}")
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ParameterError(f"X must be a p×n matrix, got shape {X.shape}")
    p, n = X.shape
    if stats.n != n or stats.p != p:
        raise ParameterError(f"statistics are for n={stats.n}, p={stats.p} but X is {p}×{n}")
    copies = (2 if ntk else 1) * (1 if layers == "last" else 2 * 3) + 2
    need = copies * 8 * n * n
    if need > _MEMORY_LIMIT:
        raise ResourceError.memory(f"theory kernels for n={n}", need, _MEMORY_LIMIT)
    coefs = acts if isinstance(acts, NetworkCoefficients) else coefficients(acts, stats.tau0)
    # every kernel is c1·G + V S Vᵀ + c0·I: one n×n allocation each, built in place (the Gram
    # matrix by a symmetric rank-p update, the rank-(K+1) term row block by row block), and
    # the last one reuses G's memory
    G = gram(X)
    V = stats.V
    tau0 = coefs.tau0
    chosen = coefs.layers if layers == "all" else coefs.layers[-1:]
    specs = []
    for c in chosen:
        a1, a2, a3, _a4 = c.alpha
        specs.append(("ck", a1, structure_matrix(a2, a3, stats.t, stats.T),
                      _identity_coefficient(c.tau**2, tau0, a1, a3, identity)))
        if ntk:
            b1, b2, b3 = c.beta
            specs.append(("ntk", b1, structure_matrix(b2, b3, stats.t, stats.T),
                          _identity_coefficient(c.kappa**2, tau0, b1, b3, identity)))
    CK: list[np.ndarray] = []
    NTK: list[np.ndarray] = []
    diag = np.diag_indices(n)
    for i, (kind, c1, S, c0) in enumerate(specs):
        if i == len(specs) - 1:
            K = G
            K *= c1
        else:
            K = np.multiply(G, c1)
        add_low_rank(K, V, S)
        K[diag] += c0
        (CK if kind == "ck" else NTK).append(K)
    return TheoryKernels(tuple(CK), tuple(NTK), coefs, identity)
