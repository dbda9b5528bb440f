"""A thin NumPy multilayer perceptron and its empirical CK and NTK (docs/reference.rst §3).

Network::

    Σ_0 = X,   H_ℓ = W_ℓ Σ_{ℓ−1},   Σ_ℓ = σ̄_ℓ(H_ℓ)/√d_ℓ  (ℓ = 1..L),   f(x) = wᵀ Σ_L(x),

with ``σ̄_ℓ = σ_ℓ − c_ℓ`` (a constant per layer, docs/reference.rst §1 "Centering"),
``W_ℓ ∈ ℝ^{d_ℓ×d_{ℓ−1}}`` with zero-mean unit-variance entries and ``w ~ N(0, I)``.

Empirical kernels.  ``CK_ℓ = Σ_ℓᵀ Σ_ℓ``.  The NTK is the Gram matrix of
``∇_θ f`` over ``θ = (W_1, …, W_L, w)``.  With ``δ_ℓ(x) = ∂f/∂H_ℓ ∈ ℝ^{d_ℓ}``::

    ∂f/∂w   = Σ_L(x),
    ∂f/∂W_ℓ = δ_ℓ(x) Σ_{ℓ−1}(x)ᵀ,
    δ_L     = w ⊙ σ_L'(H_L) / √d_L,
    δ_ℓ     = σ_ℓ'(H_ℓ) ⊙ (W_{ℓ+1}ᵀ δ_{ℓ+1}) / √d_ℓ,

(the centering constant has no derivative, and the ``1/√d_ℓ`` of layer ℓ's output
multiplies both the forward signal and the back-propagated one).  Because
``⟨a bᵀ, a' b'ᵀ⟩_F = (aᵀa')(bᵀb')``, stacking ``G_ℓ = [δ_ℓ(x_1) … δ_ℓ(x_n)]`` gives

    K_NTK = CK_L + Σ_ℓ (G_ℓᵀ G_ℓ) ⊙ CK_{ℓ−1},

a handful of matrix products and no per-sample Jacobian.  Forward and backward passes
run over chunks of samples (samples are independent); the Gram matrices are tiled into
``syrk`` (diagonal) and ``gemm`` (off-diagonal) blocks of their upper triangle.  Chunks
and tiles are independent tasks run on one thread per CPU with single-threaded BLAS
(details in :meth:`MLP.kernels`).  :func:`per_sample_jacobian` is the naive baseline
used by the tests and the benchmark.

Staircase activations have a zero almost-everywhere derivative, so their ``δ`` vanish:
the empirical NTK then counts only the layers above the last staircase (see
:mod:`ntk_theory.exact` for the Dirac-delta limit).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._dense import usable_cpus
from .activations import Activation, parse_activation
from .errors import ParameterError, ResourceError
from .exact import MEMORY_LIMIT_BYTES, derivative_function, layer_scales

__all__ = [
    "MLP",
    "EmpiricalKernels",
    "ntk_memory_bytes",
    "ntk_flops",
    "per_sample_jacobian",
    "gaussian_weights",
]

WeightSampler = Callable[[np.random.Generator, tuple[int, int], Any], Any]


def gaussian_weights(rng: np.random.Generator, shape: tuple[int, int], dtype: Any) -> np.ndarray:
    """i.i.d. N(0, 1) entries in ``dtype``."""
    return rng.standard_normal(shape, dtype=dtype)


def _itemsize(dtype: Any) -> int:
    return int(np.dtype(dtype).itemsize)


def ntk_memory_bytes(n: int, p: int, widths: Sequence[int], dtype: Any = np.float64,
                     chunk: int | None = None, workers: int = 1, ck: bool = True) -> int:
    """Peak memory estimate of :meth:`MLP.kernels` (bytes).

    Weights ``Σ d_ℓ d_{ℓ−1}``; the input copy ``p n``; stored ``Σ_ℓ`` and ``G_ℓ``
    (``2 n Σ d_ℓ``); the kernels — ``L + 1`` conjugate kernels and the NTK, or with
    ``ck=False`` the NTK alone — and the workers' tile temporaries (one ``b × b`` tile
    per worker, two without the conjugate kernels, ``b = ⌈n / n_b⌉`` for the tile grid of
    :meth:`MLP.kernels`); per worker and chunk of samples, the back-propagation buffer and
    the activation's temporaries (``3 chunk max d_ℓ``).
    """
    dims = [int(p), *[int(d) for d in widths]]
    L = len(widths)
    n, workers = int(n), max(1, int(workers))
    chunk = n if chunk is None else min(int(chunk), n)
    b = -(-n // _tile_grid(n, workers))
    entries = (
        sum(a * b for a, b in zip(dims[1:], dims[:-1])) + dims[-1]
        + p * n
        + 2 * n * sum(dims[1:])
        + ((L + 2) * n * n + workers * b * b if ck else n * n + 2 * workers * b * b)
        + 3 * workers * chunk * max(dims[1:])
    )
    return int(entries * _itemsize(dtype))


def _tile_grid(n: int, workers: int) -> int:
    """Tiles per side of the ``n × n`` Gram grid: one for one worker; else at least
    ``2·workers`` per row, so that a worker the shared machine deschedules leaves tiles
    for the others, and at most 2048 rows per tile."""
    return 1 if workers == 1 else min(n, max(2 * workers, -(-n // 2048)))


def ntk_flops(n: int, p: int, widths: Sequence[int]) -> dict[str, int]:
    """Floating-point operations of :meth:`MLP.kernels`, counted explicitly.

    * forward: ``2 n d_ℓ d_{ℓ−1}`` per layer;
    * backward: ``2 n d_{ℓ+1} d_ℓ`` for ``ℓ = 1..L−1``;
    * Gram matrices: a symmetric product ``AᵀA`` of a ``d×n`` matrix is one BLAS
      ``syrk`` (NumPy dispatches ``A.T @ A`` to it), i.e. one triangle of
      ``n(n+1)/2`` entries × ``d`` multiply-adds = ``n(n+1)d`` flops, for
      ``CK_0..CK_L`` and ``G_1ᵀG_1..G_LᵀG_L``;
    * Hadamard products and sums: ``2 n²`` per layer.

    Element-wise activation work (``O(n Σ d_ℓ)``) is not counted.
    """
    dims = [int(p), *[int(d) for d in widths]]
    L = len(widths)
    fwd = sum(2 * n * a * b for a, b in zip(dims[1:], dims[:-1]))
    bwd = sum(2 * n * dims[l + 1] * dims[l] for l in range(1, L))
    gram = sum(n * (n + 1) * d for d in dims) + sum(n * (n + 1) * d for d in dims[1:])
    had = 2 * n * n * L
    return {"forward": fwd, "backward": bwd, "gram": gram, "hadamard": had,
            "total": fwd + bwd + gram + had}


@dataclass(frozen=True, eq=False)
class EmpiricalKernels:
    """Empirical kernels of one network on one data set.

    Attributes
    ----------
    ck : tuple of ndarray
        ``CK_0 = XᵀX, CK_1, …, CK_L`` (n×n).
    ntk : ndarray or None
        ``K_NTK`` (n×n), ``None`` when only the CKs were asked for.
    seconds : float
        Wall time of the computation.
    flops : int
        Operations counted by :func:`ntk_flops` (forward and CK Grams only when ``ntk`` is None).
    """

    ck: tuple[np.ndarray, ...]
    ntk: np.ndarray | None
    seconds: float
    flops: int


class MLP:
    """A dense (or user-weighted) fully connected network in NumPy (docs/reference.rst §3).

    Parameters
    ----------
    activations : sequence of Activation or spec strings
        ``σ_1, …, σ_L``.
    widths : sequence of int
        ``d_1, …, d_L``.
    p : int
        Input dimension ``d_0``.
    seed : int
        Seed of the weights and of the readout ``w``.
    dtype : numpy float dtype
        ``np.float64`` (default) or ``np.float32``; every array of the computation.
        With a kinked activation (ReLU and its kin) the NTK depends on the sign of each
        pre-activation, so in float32 a pre-activation within rounding of zero can come
        out with either derivative depending on the order of the sums (BLAS blocking,
        thread count): such a flip moves that sample's row of the NTK by about ``1/d_ℓ``
        relative, ~1e-3 for widths in the thousands, where float64 stays at ~1e-15.
    centering : sequence of float, "none" or None
        Constants ``c_ℓ``.  ``None`` (default): the theory's ``c_ℓ = E[σ_ℓ(τ_{ℓ−1} ξ)]``
        from :func:`ntk_theory.exact.layer_scales` at ``tau0``, or — when ``tau0`` is
        also ``None`` — at ``τ_0 = √(mean_i ‖x_i‖²)`` of the data each kernel call gets
        (the same default as :func:`ntk_theory.exact.exact_kernels`).
    tau0 : float, optional
        Input scale for the default centering.
    weights : sequence of matrices, optional
        ``W_1, …, W_L`` to use instead of sampled ones (dense arrays or anything with
        ``shape``, ``@`` and ``.T``, e.g. scipy sparse ternary matrices); shapes are checked.
    readout : array, optional
        ``w`` (length ``d_L``); default N(0, I) from ``seed``.
    weight_sampler : callable, optional
        ``(rng, shape, dtype) -> matrix`` used for the weights that are not given;
        default :func:`gaussian_weights`.
    """

    def __init__(
        self,
        activations: Sequence[Activation | str],
        widths: Sequence[int],
        p: int,
        seed: int = 0,
        dtype: Any = np.float64,
        centering: Sequence[float] | str | None = None,
        tau0: float | None = None,
        weights: Sequence[Any] | None = None,
        readout: np.ndarray | None = None,
        weight_sampler: WeightSampler | None = None,
    ) -> None:
        acts = tuple(parse_activation(a) for a in activations)
        ws = tuple(int(d) for d in widths)
        if not acts or len(acts) != len(ws):
            raise ParameterError(f"need one width per activation, got {len(acts)} activations "
                                 f"and {len(ws)} widths")
        if int(p) < 1 or any(d < 1 for d in ws):
            raise ParameterError(f"p and widths must be positive, got p={p}, widths={list(ws)}")
        dt = np.dtype(dtype)
        if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ParameterError(f"dtype must be float32 or float64, got {dt}")
        self.activations = acts
        self._derivs = tuple(derivative_function(a) for a in acts)
        self.widths = ws
        self.p = int(p)
        self.dtype = dt
        self.seed = seed
        dims = (self.p, *ws)
        need = sum(a * b for a, b in zip(dims[1:], dims[:-1])) * dt.itemsize
        if need > MEMORY_LIMIT_BYTES:
            raise ResourceError.memory("the weights alone", need)
        rng = np.random.default_rng(seed)
        sampler = weight_sampler or gaussian_weights
        mats = []
        for l in range(len(ws)):
            shape = (dims[l + 1], dims[l])
            if weights is not None and weights[l] is not None:
                W = weights[l]
                if tuple(W.shape) != shape:
                    raise ParameterError(f"W_{l + 1} must have shape {shape}, got {tuple(W.shape)}")
                if isinstance(W, np.ndarray):
                    W = W.astype(dt, copy=False)
            else:
                W = sampler(rng, shape, dt)
            mats.append(W)
        if weights is not None and len(weights) != len(ws):
            raise ParameterError(f"weights must list {len(ws)} matrices (None to sample one)")
        self.weights = tuple(mats)
        w = rng.standard_normal(ws[-1]) if readout is None else np.asarray(readout, dtype=float)
        if w.shape != (ws[-1],):
            raise ParameterError(f"readout must have length {ws[-1]}, got shape {w.shape}")
        self.readout = w.astype(dt)
        if isinstance(centering, str):
            if centering != "none":
                raise ParameterError(f"centering must be numbers, 'none' or None, got '{centering}'")
            self._centering: tuple[float, ...] | None = tuple(0.0 for _ in acts)
        elif centering is not None:
            cs = tuple(float(c) for c in centering)
            if len(cs) != len(acts) or not all(math.isfinite(c) for c in cs):
                raise ParameterError(f"centering needs {len(acts)} finite numbers")
            self._centering = cs
        elif tau0 is not None:
            self._centering = layer_scales(acts, float(tau0)).centering
        else:
            self._centering = None

    # ------------------------------------------------------------------ #
    @property
    def L(self) -> int:
        return len(self.widths)

    def centering_for(self, X: np.ndarray) -> tuple[float, ...]:
        """The constants ``c_ℓ`` used on data ``X`` (fixed ones, or from ``√(mean ‖x_i‖²)``)."""
        if self._centering is not None:
            return self._centering
        tau0 = float(np.sqrt(np.mean(np.sum(np.asarray(X, dtype=float) ** 2, axis=0))))
        return layer_scales(self.activations, tau0).centering

    def _check_X(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] != self.p:
            raise ParameterError(f"X must be a {self.p}×n matrix, got shape {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ParameterError("X contains non-finite values")
        return X.astype(self.dtype, copy=False)

    def _act(self, l: int, H: np.ndarray, center: float) -> np.ndarray:
        """``(σ_l(H) − c)/√d_l`` in the network's dtype."""
        act = self.activations[l]
        scale = 1.0 / math.sqrt(self.widths[l])
        fast = act.kernel.apply_inplace if act.kernel is not None else None
        if fast is not None:  # the registry's NumPy path, on a copy in H's dtype
            out = np.array(H, copy=True)
            fast(out)
        else:
            out = act(H).astype(self.dtype, copy=False)
        if center != 0.0:
            out -= self.dtype.type(center)
        out *= self.dtype.type(scale)
        return out

    def _dact(self, l: int, H: np.ndarray) -> np.ndarray:
        act = self.activations[l]
        fast = act.kernel.derivative_into if act.kernel is not None else None
        if fast is not None:
            out = np.empty(H.shape, dtype=self.dtype)
            fast(H, out)
            return out
        return self._derivs[l](H).astype(self.dtype, copy=False)

    def _act_inplace(self, l: int, H: np.ndarray, center: float) -> None:
        """``H ← (σ_l(H) − c)/√d_l`` in place (same arithmetic as :meth:`_act`)."""
        act = self.activations[l]
        fast = act.kernel.apply_inplace if act.kernel is not None else None
        if fast is not None:
            fast(H)
        else:
            H[...] = act(H)
        if center != 0.0:
            H -= self.dtype.type(center)
        H *= self.dtype.type(1.0 / math.sqrt(self.widths[l]))

    def _dact_into(self, l: int, H: np.ndarray, out: np.ndarray) -> None:
        """``out ← σ_l'(H)`` (almost-everywhere derivative)."""
        act = self.activations[l]
        fast = act.kernel.derivative_into if act.kernel is not None else None
        if fast is not None:
            fast(H, out)
        else:
            out[...] = self._derivs[l](H)

    def forward(self, X: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(Σ_0, Σ_1, …, Σ_L)``, each ``d_ℓ × n``."""
        X = self._check_X(X)
        cs = self.centering_for(X)
        out = [X]
        for l, W in enumerate(self.weights):
            out.append(self._act(l, np.asarray(W @ out[-1]), cs[l]))
        return tuple(out)

    def output(self, X: np.ndarray) -> np.ndarray:
        """``f(x_i) = wᵀ Σ_L(x_i)`` for every column."""
        return self.readout @ self.forward(X)[-1]

    def conjugate_kernels(self, X: np.ndarray, chunk: int | None = None) -> tuple[np.ndarray, ...]:
        """``CK_0 = XᵀX, CK_1, …, CK_L``."""
        return self.kernels(X, ntk=False, chunk=chunk).ck

    def ntk(self, X: np.ndarray, chunk: int | None = None) -> np.ndarray:
        """The empirical NTK by the structured formula (no per-sample Jacobian).

        The conjugate kernels it needs exist only tile by tile (``kernels(X, ck=False)``),
        so the only ``n × n`` array is the result."""
        res = self.kernels(X, ntk=True, ck=False, chunk=chunk).ntk
        assert res is not None
        return res

    def kernels(self, X: np.ndarray, *, ntk: bool = True, ck: bool = True, chunk: int | None = None,
                progress: bool | None = None, workers: int | None = None) -> EmpiricalKernels:
        """All conjugate kernels and (optionally) the NTK in one pass.

        Parameters
        ----------
        X : ndarray, shape (p, n)
        ntk : bool
            Also back-propagate and form the NTK.
        ck : bool
            Return the conjugate kernels.  With ``ck=False`` (and ``ntk=True``) each tile
            of a conjugate kernel lives only in a worker's scratch while the NTK tile is
            accumulated: the NTK costs the same flops and ``L + 1`` fewer ``n × n`` arrays,
            and ``EmpiricalKernels.ck`` is empty.
        chunk : int, optional
            Largest number of samples per forward/backward task; default: as many as the
            memory estimate of :func:`ntk_memory_bytes` allows.
        progress : bool, optional
            tqdm bar over the tasks (default: only on a TTY).
        workers : int, optional
            Threads; default: the CPUs this process may use.  With more than one, every
            BLAS call runs single-threaded inside one worker (see Notes); ``workers=1``
            leaves BLAS threading as it is.

        Raises
        ------
        ParameterError
            For ``ntk=False, ck=False`` (nothing to compute) or ``workers < 1``.
        ResourceError
            When even a chunk of one sample does not fit in :data:`MEMORY_LIMIT_BYTES`.

        Notes
        -----
        Implementation (the algebra is in the module docstring).

        * Layout: every per-layer array is stored sample-major (``n × d_ℓ``, i.e. ``Σ_ℓᵀ``
          and ``G_ℓᵀ``), so a chunk of samples is a contiguous block of rows that BLAS
          writes in place (``np.matmul(..., out=)``): no temporaries and no copies.
        * The derivative ``σ_ℓ'(H_ℓ)`` is written into ``G_ℓ``'s storage during the
          forward pass, so no pre-activation is kept, and multiplied by the
          back-propagated signal afterwards.  The factors ``1/√d_ℓ`` of the backward
          recursion are not applied to ``G_ℓ``: they multiply out to
          ``g_ℓ = Π_{k≥ℓ} 1/d_k`` in ``G_ℓᵀG_ℓ`` and are applied to the ``n×n`` blocks.
        * Parallelism is by tasks, not inside BLAS: the forward/backward pass is split
          into chunks of samples (independent), and each Gram matrix into ``b×b`` tiles of
          its upper triangle (``syrk`` on the diagonal, ``gemm`` off it); one task forms
          the tile of every Gram matrix and accumulates the NTK tile right away (while
          the tiles are in cache).  Each worker thread runs single-threaded
          BLAS and its own element-wise NumPy work (which releases the GIL), so the
          element-wise passes run in parallel too, and no BLAS call waits at an internal
          barrier for a thread the (shared) machine has descheduled.  Diagonal tiles come
          back complete from ``syrk`` (see ``_gram_tile``); the lower triangles' other
          tiles are filled by transposed tile copies.
        * Memory: the large arrays are allocated first, as a phase of tasks, on populated
          anonymous mappings in 4 KiB pages (``_populated_empty``: one system call per
          array instead of a page fault per page, and no huge pages, which cost 7–11×
          more system time on a virtual machine that hands free memory back to its
          host, docs/BENCHMARKS.md); per-worker scratch is allocated once per call, not per task.  With
          ``ck=False`` the conjugate-kernel tiles are formed in that scratch and consumed
          at once, so the NTK alone touches ``L + 1`` fewer ``n × n`` arrays.
        """
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        X = self._check_X(X)
        n = X.shape[1]
        nw = usable_cpus() if workers is None else int(workers)
        if nw < 1:
            raise ParameterError(f"workers must be positive, got {workers}")
        if not (ntk or ck):
            raise ParameterError("kernels(ntk=False, ck=False) asks for nothing; keep at least one")
        nw = min(nw, n)
        need_min = ntk_memory_bytes(n, self.p, self.widths, self.dtype, chunk=1, workers=nw, ck=ck)
        if need_min > MEMORY_LIMIT_BYTES:
            raise ResourceError.memory(f"kernels for n={n}, p={self.p}, widths={list(self.widths)} ({self.dtype})",
                                       need_min, MEMORY_LIMIT_BYTES)
        # samples per task: one task per worker (the largest GEMMs: 3–6% faster at n = 2000
        # than two tasks per worker, docs/BENCHMARKS.md; the tiles of the next phase are the
        # ones that balance the load), at most what fits in memory, never more than asked for
        size = -(-n // nw)
        if chunk is not None:
            size = min(size, max(1, int(chunk)))
        while size > 1 and ntk_memory_bytes(n, self.p, self.widths, self.dtype, size, nw, ck) > MEMORY_LIMIT_BYTES:
            size //= 2
        cs = self.centering_for(X)
        L, dt = self.L, self.dtype
        # Σ_ℓᵀ, G̃_ℓᵀ (unscaled) and the kernels CK_0..CK_L, K: mapped and populated by the
        # workers before any arithmetic (see _populated_empty); the tasks below find them here
        nck = L + 1 if ck else 0
        shapes = [(n, d) for d in self.widths] * (2 if ntk else 1) + [(n, n)] * (nck + int(ntk))
        big: list[np.ndarray] = [np.empty(0, dtype=dt)] * len(shapes)
        S: list[np.ndarray] = []
        G: list[np.ndarray] = []
        CK: list[np.ndarray] = []
        K: np.ndarray | None = None
        Xt = X.T

        def allocate(k: int) -> None:
            big[k] = _populated_empty(shapes[k], dt)

        # per-thread scratch (the back-propagation buffer, the tile temporary), allocated
        # once per worker and call rather than once per task: fresh memory costs page faults
        local = threading.local()

        def scratch(name: str, shape: tuple[int, int], capacity: int = 0) -> np.ndarray:
            """This worker's buffer ``name`` viewed as ``shape`` (at least ``capacity``
            entries, so that later, larger requests reuse it)."""
            entries = shape[0] * shape[1]
            buf = getattr(local, name, None)
            if buf is None or buf.size < entries:
                buf = _populated_empty((max(entries, capacity),), dt)
                setattr(local, name, buf)
            return buf[:entries].reshape(shape)

        def pass_rows(j0: int) -> None:
            rows = slice(j0, min(n, j0 + size))
            m = rows.stop - rows.start
            prev = Xt[rows]
            for l, W in enumerate(self.weights):
                out = S[l][rows]
                _times_transpose(prev, W, out)                  # H_ℓᵀ
                if ntk:
                    self._dact_into(l, out, G[l][rows])         # σ_ℓ'(H_ℓ)ᵀ
                self._act_inplace(l, out, cs[l])                # Σ_ℓᵀ
                prev = out
            if ntk:
                G[L - 1][rows] *= self.readout                  # G̃_L = w ⊙ σ_L'
                for l in range(L - 2, -1, -1):
                    back = scratch("back", (m, self.widths[l]), size * max(self.widths[:-1]))
                    _times(G[l + 1][rows], self.weights[l + 1], back)  # (W_{ℓ+1}ᵀ G̃_{ℓ+1})ᵀ
                    G[l][rows] *= back

        # tiles of the n×n upper triangle: nb×nb grid, gemm tiles first (twice the work of a
        # diagonal one)
        nb = _tile_grid(n, nw)
        edges = [round(k * n / nb) for k in range(nb + 1)]
        blocks = [(slice(edges[i], edges[i + 1]), slice(edges[j], edges[j + 1]))
                  for i in range(nb) for j in range(i, nb)]
        blocks.sort(key=lambda b: b[0] == b[1])
        gfac = []
        g = 1.0
        for d in reversed(self.widths):
            g /= d
            gfac.append(g)
        gfac.reverse()                                          # g_ℓ = Π_{k≥ℓ} 1/d_k

        def tile(I: slice, J: slice) -> None:
            A = [Xt, *S]
            if K is None:
                for k in range(L + 1):
                    _gram_tile(A[k], I, J, CK[k][I, J])
                return
            out = K[I, J]
            if ck:
                _gram_tile(A[L], I, J, CK[L][I, J])
                out[...] = CK[L][I, J]
            else:
                _gram_tile(A[L], I, J, out)                     # CK_L
            shape = (I.stop - I.start, J.stop - J.start)
            T = scratch("tile", shape)
            for l in range(L):
                C = CK[l][I, J] if ck else scratch("ck", shape)
                _gram_tile(A[l], I, J, C)                       # CK_{ℓ−1}
                _gram_tile(G[l], I, J, T)
                T *= C
                T *= dt.type(gfac[l])
                out += T

        def mirror(k: int, I: slice, J: slice) -> None:
            C = CK[k] if k < nck else K
            assert C is not None
            C[J, I] = C[I, J].T

        phases: list[list[tuple[Callable[..., None], tuple]]] = [
            [(allocate, (k,)) for k in range(len(shapes))],
            [(pass_rows, (j0,)) for j0 in range(0, n, size)],
            [(tile, (I, J)) for I, J in blocks],
            [(mirror, (k, I, J)) for I, J in blocks if I != J for k in range(nck + int(ntk))],
        ]
        bar = tqdm(total=sum(len(ph) for ph in phases), desc="network", leave=False,
                   disable=(not _isatty()) if progress is None else not progress)
        with _TaskRunner(nw) as run:
            run(phases[0], bar)
            S = big[:L]
            G = big[L:2 * L] if ntk else []
            CK = big[len(S) + len(G): len(S) + len(G) + nck]
            K = big[-1] if ntk else None
            for ph in phases[1:]:
                run(ph, bar)
        bar.close()
        flops = ntk_flops(n, self.p, self.widths)
        if ntk:
            total = flops["total"]
        else:
            dims = [self.p, *self.widths]
            total = flops["forward"] + sum(n * (n + 1) * d for d in dims)
        return EmpiricalKernels(ck=tuple(CK), ntk=K, seconds=time.perf_counter() - t0, flops=int(total))

    # ------------------------------------------------------------------ #
    def parameter_count(self) -> int:
        dims = [self.p, *self.widths]
        return sum(a * b for a, b in zip(dims[1:], dims[:-1])) + dims[-1]


def _times_transpose(A: np.ndarray, W: Any, out: np.ndarray) -> None:
    """``out ← A Wᵀ`` (BLAS straight into ``out`` for dense ``W``; any matrix type otherwise)."""
    if isinstance(W, np.ndarray):
        np.matmul(A, W.T, out=out)
    else:
        out[...] = np.asarray(W @ A.T).T


def _times(A: np.ndarray, W: Any, out: np.ndarray) -> None:
    """``out ← A W``."""
    if isinstance(W, np.ndarray):
        np.matmul(A, W, out=out)
    else:
        out[...] = np.asarray(W.T @ A.T).T


def _gram_tile(A: np.ndarray, I: slice, J: slice, out: np.ndarray) -> None:
    """``out ← A[I] A[J]ᵀ`` for a sample-major ``A`` (``n × k``), one BLAS call.

    Off-diagonal tiles are a ``gemm`` written straight into ``out``.  For a diagonal tile
    (``I == J``) the two operands are one buffer and its transpose, which NumPy's matmul
    detects: it calls ``syrk`` (half the flops) and copies the triangle across itself, so
    the tile comes back complete — about 15% faster than SciPy's ``syrk`` wrapper, whose
    freshly allocated Fortran result must then be copied and mirrored.
    """
    np.matmul(A[I], A[J].T, out=out)


def _populated_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array on its own anonymous mapping, pages already populated.

    Why not ``np.empty``: NumPy asks the kernel for transparent huge pages on every
    allocation of 4 MiB or more.  On a virtual machine whose host reclaims the guest's free
    huge pages (free-page reporting), touching them again costs far more than the
    arithmetic: measured here (``benchmarks/bench_empirical_ntk.py --numpy-alloc``, the
    NTK alone at n = 2000 in float64), 0.94–1.06 s of system time per call with
    ``np.empty`` and 0.11–0.14 s in 4 KiB pages populated by ``MAP_POPULATE`` (one system
    call instead of a fault per page).  The mapping is released with the array.  Where
    ``MAP_POPULATE`` does not exist (not Linux), plain ``np.empty``.
    """
    import mmap

    flags = getattr(mmap, "MAP_POPULATE", None)
    nbytes = math.prod(shape) * dtype.itemsize
    if flags is None or nbytes == 0:
        return np.empty(shape, dtype=dtype)
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | flags)
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


class _TaskRunner:
    """Run phases of independent tasks on ``workers`` threads with single-threaded BLAS.

    With one worker the tasks run inline and BLAS threading is left alone.  With more,
    BLAS is limited to one thread (threadpoolctl) for the duration — process-wide, so
    other threads of the caller see single-threaded BLAS meanwhile — and each phase is
    drained completely before the next starts (phases depend on each other).  Without
    threadpoolctl the tasks run inline.
    """

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: Any = None
        self._limits: Any = None

    def __enter__(self) -> _TaskRunner:
        if self.workers > 1:
            from concurrent.futures import ThreadPoolExecutor

            try:
                from threadpoolctl import threadpool_limits
            except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
                return self  # run inline with multi-threaded BLAS: correct, only slower
            self._limits = threadpool_limits(limits=1, user_api="blas")
            self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ntk")
        return self

    def __call__(self, tasks: Sequence[tuple[Callable[..., None], tuple]], bar: Any) -> None:
        if self._pool is None:
            for fn, args in tasks:
                fn(*args)
                bar.update()
            return
        from concurrent.futures import FIRST_EXCEPTION, wait

        futures = [self._pool.submit(fn, *args) for fn, args in tasks]
        for f in futures:
            f.add_done_callback(lambda _f: bar.update())
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        for f in futures:
            if f.done() and not f.cancelled() and f.exception() is not None:
                raise f.exception()

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._limits is not None:
            self._limits.restore_original_limits()


def _isatty() -> bool:
    import sys

    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def per_sample_jacobian(net: MLP, X: np.ndarray) -> np.ndarray:
    """The naive baseline: ``∇_θ f(x_i)`` for every sample as rows of an ``n × P`` matrix.

    Parameters are ordered ``vec(W_1), …, vec(W_L), w`` (row-major ``vec``).  Each row
    is built from one sample's own forward and backward pass (outer products
    ``δ_ℓ Σ_{ℓ−1}ᵀ``); ``J Jᵀ`` is then the NTK.  Memory ``n P``: tests and benchmarks only.
    """
    X = net._check_X(X)
    cs = net.centering_for(X)
    n = X.shape[1]
    P = net.parameter_count()
    if n * P * net.dtype.itemsize > MEMORY_LIMIT_BYTES:
        raise ResourceError.memory(f"a per-sample Jacobian of {n}×{P}", n * P * net.dtype.itemsize)
    J = np.empty((n, P), dtype=net.dtype)
    L = net.L
    for i in range(n):
        x = X[:, i:i + 1]
        sig, Hs = [x], []
        for l, W in enumerate(net.weights):
            H = np.asarray(W @ sig[-1])
            Hs.append(H)
            sig.append(net._act(l, H, cs[l]))
        deltas: list[np.ndarray] = [np.empty(0)] * L
        delta = net._dact(L - 1, Hs[-1]) * (net.readout / math.sqrt(net.widths[-1]))[:, None]
        deltas[L - 1] = delta
        for l in range(L - 2, -1, -1):
            delta = np.asarray(net.weights[l + 1].T @ delta) * net._dact(l, Hs[l]) / math.sqrt(net.widths[l])
            deltas[l] = delta
        off = 0
        for l in range(L):
            g = np.outer(deltas[l][:, 0], sig[l][:, 0])
            J[i, off:off + g.size] = g.ravel()
            off += g.size
        J[i, off:] = sig[L][:, 0]
    return J
