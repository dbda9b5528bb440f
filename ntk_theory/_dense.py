"""Dense kernel-assembly helpers shared by :mod:`ntk_theory.theory` and :mod:`ntk_theory.exact`.

Internal: the n×n matrices of Experiment 1 hold 64 million entries at n = 8000, so every
full-size temporary costs half a gigabyte and a pass over memory.  These helpers build
them with the arithmetic the formulas need and no more.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

import numpy as np
import scipy.linalg.blas as blas

__all__ = ["gram", "add_low_rank", "mirror_upper", "for_each_block", "usable_cpus"]

_ROWS = 256


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def for_each_block(fn: Callable[[int], None], starts: Iterable[int]) -> None:
    """``fn(i0)`` for every block start, on one thread per CPU this process may use.

    For element-wise work on disjoint row blocks of large arrays: NumPy releases the GIL
    inside its loops, so the blocks run in parallel (the first ones first: callers pass
    the largest blocks first).  Exceptions propagate; one CPU or one block runs inline.
    """
    starts = list(starts)
    cpus = usable_cpus()
    if cpus <= 1 or len(starts) <= 1:
        for i0 in starts:
            fn(i0)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(cpus, len(starts))) as pool:
        for _ in pool.map(fn, starts):
            pass


def mirror_upper(K: np.ndarray, tile: int = _ROWS) -> np.ndarray:
    """Copy the upper triangle of the square C-ordered ``K`` onto its lower triangle, in place,
    tile by tile (a transposed copy of a ``tile × tile`` block stays in cache); row tiles
    write disjoint parts of the lower triangle and run in parallel."""
    n = K.shape[0]

    def row_tile(i0: int) -> None:
        i1 = min(n, i0 + tile)
        blk = K[i0:i1, i0:i1]
        r, c = np.triu_indices(i1 - i0, 1)
        blk[c, r] = blk[r, c]
        for j0 in range(i1, n, tile):
            j1 = min(n, j0 + tile)
            K[j0:j1, i0:i1] = K[i0:i1, j0:j1].T

    for_each_block(row_tile, range(0, n, tile))
    return K


def gram(X: np.ndarray) -> np.ndarray:
    """``XᵀX`` (n×n, float64, C order) for ``X`` of shape (p, n).

    A symmetric rank-p update (BLAS ``dsyrk``: half the flops of the general product
    ``X.T @ X``) fills one triangle; it is mirrored in place tile by tile.  Agrees with
    ``X.T @ X`` to rounding (tests/test_theory.py).
    """
    X = np.asarray(X, dtype=np.float64)
    p, n = X.shape
    if n < 2 * _ROWS or p == 0:
        return X.T @ X
    # X.T is a Fortran-ordered (n, p) array: dsyrk(trans=0) forms X.T X.T ᵀ = XᵀX without a
    # copy; the result is Fortran ordered with the upper triangle set, so its transpose is
    # C ordered with the lower triangle set, i.e. the C array's upper triangle is the
    # Fortran array's lower one: mirror the transposed view's lower part up
    G = blas.dsyrk(1.0, X.T, trans=0, lower=1).T
    return mirror_upper(G)


def add_low_rank(K: np.ndarray, V: np.ndarray, S: np.ndarray) -> np.ndarray:
    """``K += V S Vᵀ`` in place, row block by row block (``V`` is n×r with small r): no n×n
    temporary."""
    VS = V @ S
    n = K.shape[0]
    for i0 in range(0, n, _ROWS):
        i1 = min(n, i0 + _ROWS)
        K[i0:i1] += VS[i0:i1] @ V.T
    return K
