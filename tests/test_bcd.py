"""NN-BCD (ntk_theory.bcd): the method's guarantees as properties, checked independently.

* every block update is the exact minimizer of its subproblem — compared with
  scipy.optimize on the *objective function* (a separate code path from the update
  formulas) on tiny instances;
* the full objective never increases, after every block and every iteration, for
  any positive (γ, ρ, α, τ);
* pruning keeps exactly ``N − round(εN)`` entries and is the Euclidean projection
  (brute force over all supports);
* TT reconstruction is exact at full ranks and its error lies between the largest
  and the root-sum-square of the unfoldings' truncated singular-value tails;
* the CLI: JSON schema, determinism, atomic ``--out``, one-line errors.
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import json
import math
import os

import numpy as np
import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from scipy import optimize

from ntk_theory import bcd
from ntk_theory.bcd import (
    BCDHyperparameters,
    BCDState,
    bcd_iteration,
    init_state,
    n_kept,
    objective,
    prune,
    relu_prox,
    train_bcd,
    tt_modes,
    tt_project,
)
from ntk_theory.cli import main
from ntk_theory.errors import ParameterError, ResourceError
from ntk_theory.testing import bcd_hyperparameters, bcd_problems, sparsities, weight_matrices

FEW = settings(max_examples=max(5, settings.default.max_examples // 2))

# Rounding tolerance of the monotone decrease.  F is a sum of squared residuals; each
# block minimizer is computed by a Cholesky solve whose result is exact up to a
# relative error ~ cond·u (u = 1.1e-16, cond ≤ 1 + ρ‖V‖²/min(γ, α+τ) ≲ 1e4 on these
# instances), and F is flat at a minimizer, so F(computed) − F(exact) is second order
# in that error; the evaluation of F itself carries a relative error ≲ N·u with N the
# number of summed squares (< 1e3 here).  1e-11·(1 + F) bounds both with margin.
MONO_RTOL = 1e-11


def _one_hot(labels: np.ndarray, K: int) -> np.ndarray:
    Y = np.zeros((K, labels.size))
    Y[labels, np.arange(labels.size)] = 1.0
    return Y


def _random_state(prob, h, rng: np.random.Generator, sparsity: float = 0.5) -> BCDState:
    """A generic (not forward-consistent) state, so every term of F is active."""
    st0 = init_state(prob.X, prob.widths, sparsity=sparsity, seed=prob.seed)
    for lst in (st0.W, st0.U, st0.V):
        for i, A in enumerate(lst):
            lst[i] = A + rng.standard_normal(A.shape)
    st0.Wt = [prune(W + 0.3 * rng.standard_normal(W.shape), sparsity) for W in st0.W]
    return st0


# --------------------------------------------------------------------------- #
# Exact block minimizers
# --------------------------------------------------------------------------- #
def _block_check(F, x_star: np.ndarray, seed: int) -> None:
    """``x_star`` minimizes the strongly convex ``F``: L-BFGS-B from a random start
    reaches no lower value, and lands next to ``x_star``."""
    x0 = x_star.ravel() + np.random.default_rng(seed).standard_normal(x_star.size)
    r = optimize.minimize(lambda v: F(v.reshape(x_star.shape)), x0, method="L-BFGS-B",
                          options={"ftol": 1e-15, "gtol": 1e-11, "maxiter": 20000, "maxfun": 200000})
    f_star, f_num = F(x_star), r.fun
    note(f"F(closed form) = {f_star!r}, F(L-BFGS-B) = {f_num!r}, |dx| = {np.abs(r.x - x_star.ravel()).max()}")
    # the closed form is at least as good as the numeric optimizer (up to rounding of F)
    assert f_star <= f_num + 1e-12 * (1 + abs(f_num))
    # and the numeric optimizer converged next to it: strongly convex with modulus
    # μ ≥ min weight, so |x − x*|² ≤ 2 (F(x) − F*)/μ; the optimizer stops at a relative
    # decrease of 1e-15, i.e. F − F* ≲ 1e-12(1+F) after finite-difference-free L-BFGS
    assert np.allclose(r.x, x_star.ravel(), atol=1e-4 * (1 + np.abs(x_star).max()))


@FEW
@given(prob=bcd_problems(depth=(1, 2), n=(3, 6), widths=(2, 4)), h=bcd_hyperparameters(0.2, 20.0),
       block=st.sampled_from(["V_out", "U_out", "W", "V_hidden"]))
def test_quadratic_blocks_are_exact_minimizers(prob, h, block):
    rng = np.random.default_rng(prob.seed)
    s = _random_state(prob, h, rng)
    X, Y = prob.X, _one_hot(prob.labels, prob.K)
    L = len(s.W)

    def with_block(setter):
        def F(x):
            t = copy.deepcopy(s)
            setter(t, x)
            return F_extra(t, x)
        return F

    old = copy.deepcopy(s)
    if block == "V_out":
        x_star = bcd.update_output_v(Y, s.U[-1], s.V[-1], h)
        F_extra = lambda t, x: objective(t, X, Y, h) + 0.5 * h.alpha * np.sum((x - old.V[-1]) ** 2)
        F = with_block(lambda t, x: t.V.__setitem__(-1, x))
    elif block == "U_out":
        x_star = bcd.update_output_u(s.V[-1], s.W[-1], s.V[-2], h)
        F_extra = lambda t, x: objective(t, X, Y, h)
        F = with_block(lambda t, x: t.U.__setitem__(-1, x))
    elif block == "W":
        l = int(rng.integers(0, L))
        Vp = X if l == 0 else s.V[l - 1]
        x_star = bcd.update_weights(s.U[l], Vp, s.W[l], s.Wt[l], h)
        F_extra = lambda t, x: objective(t, X, Y, h) + 0.5 * h.alpha * np.sum((x - old.W[l]) ** 2)
        F = with_block(lambda t, x: t.W.__setitem__(l, x))
    else:
        l = int(rng.integers(0, L - 1))
        x_star = bcd.update_hidden_v(s.U[l], s.U[l + 1], s.W[l + 1], h)
        F_extra = lambda t, x: objective(t, X, Y, h)
        F = with_block(lambda t, x: t.V.__setitem__(l, x))
    _block_check(F, x_star, prob.seed)


def _scalar_global_min(f, half: float) -> float:
    """Global minimum of a 1-D function on [−half, half] that is a convex quadratic on
    each side of 0 (a ReLU kink at 0): scipy's bounded Brent search on each half-line,
    and a coarse grid as a sanity floor."""
    best = min(float(f(u)) for u in np.linspace(-half, half, 201))
    for lo, hi in ((-half, 0.0), (0.0, half)):
        r = optimize.minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
        best = min(best, float(r.fun), float(f(lo)), float(f(hi)))
    return best


@FEW
@given(v=st.floats(-5, 5), b=st.floats(-5, 5), c=st.floats(0.01, 100))
def test_relu_prox_is_the_global_minimizer(v, b, c):
    f = lambda u: 0.5 * (v - max(u, 0.0)) ** 2 + 0.5 * c * (u - b) ** 2
    u = float(relu_prox(np.array(v), np.array(b), c))
    # every minimizer lies within |u| <= 2|b| + |v| + 1 (the quadratic term dominates beyond)
    best = _scalar_global_min(f, 2 * abs(b) + abs(v) + 1.0)
    assert f(u) <= best + 1e-12 * (1 + abs(best))


@FEW
@given(prob=bcd_problems(depth=(1, 2), n=(2, 3), widths=(2, 3), p=(2, 3)), h=bcd_hyperparameters(0.2, 20.0))
def test_hidden_u_block_is_the_exact_minimizer(prob, h):
    """The (nonconvex, separable) U-block: every entry globally minimal on the full F."""
    rng = np.random.default_rng(prob.seed)
    s = _random_state(prob, h, rng)
    X, Y = prob.X, _one_hot(prob.labels, prob.K)
    l = int(rng.integers(0, len(s.W) - 1))
    Vp = X if l == 0 else s.V[l - 1]
    U_old = s.U[l].copy()
    U_star = bcd.update_hidden_u(s.V[l], s.W[l], Vp, U_old, h)
    t = copy.deepcopy(s)
    t.U[l] = U_star.copy()

    def F(u, i, j):
        t.U[l][i, j] = u
        val = objective(t, X, Y, h) + 0.5 * h.alpha * np.sum((t.U[l] - U_old) ** 2)
        t.U[l][i, j] = U_star[i, j]
        return val

    entries = list(itertools.product(range(U_star.shape[0]), range(U_star.shape[1])))
    for i, j in entries[:6]:
        f = lambda u: F(u, i, j)
        half = abs(U_star[i, j]) + abs(U_old[i, j]) + np.abs(s.V[l]).max() + np.abs(s.W[l] @ Vp).max() + 1
        best = _scalar_global_min(f, half)
        assert f(U_star[i, j]) <= best + 1e-11 * (1 + abs(best)), (i, j)


# --------------------------------------------------------------------------- #
# Monotone decrease
# --------------------------------------------------------------------------- #
@FEW
@given(prob=bcd_problems(), h=bcd_hyperparameters(), eps=sparsities(0.9),
       mode=st.sampled_from(["prune", "tt"]), rank=st.integers(1, 3))
def test_objective_never_increases(prob, h, eps, mode, rank):
    X, Y = prob.X, _one_hot(prob.labels, prob.K)
    kw = dict(tt_rank=rank) if mode == "tt" else dict(sparsity=eps)
    if mode == "prune" and any(n_kept(a * b, eps) < 1 for a, b in zip(prob.widths, prob.widths[1:])):
        return
    s = init_state(X, prob.widths, seed=prob.seed, **kw)
    trace = [objective(s, X, Y, h)]
    for _ in range(4):
        bcd_iteration(s, X, Y, h, trace=trace, **kw)
    d = np.diff(trace)
    note(f"objective after every block: {trace}")
    assert np.all(d <= MONO_RTOL * (1 + np.asarray(trace[:-1]))), d.max()


def test_objective_strictly_decreases_on_digits_sized_run():
    """A real-sized check (digits, 300-100, ε = 0.9): every iteration decreases F."""
    from ntk_theory.experiment2 import load_split

    Xtr, ytr, Xte, yte = load_split("digits", 600, 200, seed=1)
    r = train_bcd(Xtr, ytr, [60, 30], sparsity=0.9, iterations=8, seed=3, X_test=Xte, labels_test=yte)
    F = np.array((r.objective_initial,) + r.objective)
    assert np.all(np.diff(F) < 0)
    assert r.nonzeros == sum(n_kept(a * b, 0.9) for a, b in zip(r.widths, r.widths[1:]))


# --------------------------------------------------------------------------- #
# Pruning and tensor trains
# --------------------------------------------------------------------------- #
@given(W=weight_matrices(), eps=sparsities())
def test_pruning_has_exactly_the_requested_sparsity(W, eps):
    k = n_kept(W.size, eps)
    if k < 1:
        with pytest.raises(ParameterError):
            prune(W, eps)
        return
    P = prune(W, eps)
    kept = P != 0
    # exactly k entries survive (fewer non-zeros only where W itself had zeros among them)
    assert np.count_nonzero(kept) == min(k, np.count_nonzero(W)) or np.count_nonzero(W) < k
    assert np.count_nonzero(kept) <= k
    assert np.all(P[kept] == W[kept])
    # every dropped magnitude is <= every kept magnitude
    if kept.any() and (~kept).any():
        assert np.abs(W[~kept]).max() <= np.abs(W[kept]).min()


@given(W=weight_matrices(distinct=True), eps=sparsities())
def test_pruning_of_distinct_entries_is_exact_and_optimal(W, eps):
    k = n_kept(W.size, eps)
    if k < 1:
        return
    P = prune(W, eps)
    assert np.count_nonzero(P) == k and W.size - np.count_nonzero(P) == int(round(eps * W.size))
    if W.size <= 12:  # the projection: no support of size k is closer (brute force)
        flat = W.ravel()
        best = min(float(np.sum(flat ** 2) - np.sum(flat[list(S)] ** 2))
                   for S in itertools.combinations(range(flat.size), k))
        assert math.isclose(float(np.sum((W - P) ** 2)), best, rel_tol=1e-12, abs_tol=1e-12)


def _unfolding_tails(T: np.ndarray, ranks: list[int]) -> list[float]:
    """‖tail‖ of the k-th unfolding's singular values beyond rank r_k, k = 1..d−1."""
    out = []
    for k in range(1, T.ndim):
        A = T.reshape(int(np.prod(T.shape[:k])), -1)
        sv = np.linalg.svd(A, compute_uv=False)
        out.append(float(np.sqrt(np.sum(sv[ranks[k - 1]:] ** 2))))
    return out


@given(m=st.sampled_from([2, 4, 6, 8, 9, 12, 10]), n=st.sampled_from([2, 3, 4, 6, 8, 12]),
       rank=st.integers(1, 6), seed=st.integers(0, 10**6))
def test_tt_reconstruction_error_matches_the_ranks(m, n, rank, seed):
    W = np.random.default_rng(seed).standard_normal((m, n))
    rec, cores = tt_project(W, rank)
    modes = tt_modes(W.shape)
    assert [c.shape[1] for c in cores] == list(modes)
    ranks = [c.shape[2] for c in cores[:-1]]
    assert all(r <= rank for r in ranks)
    err = float(np.linalg.norm(W - rec))
    tails = _unfolding_tails(W.reshape(modes), ranks)
    scale = 1e-12 * np.linalg.norm(W)  # rounding of the SVDs
    # lower bound: a TT of ranks r_k has unfoldings of rank <= r_k (Eckart–Young);
    # upper bound: TT-SVD's quasi-optimality (Oseledets 2011, Thm 2.2)
    assert max(tails) - scale <= err <= math.sqrt(sum(t * t for t in tails)) + scale
    full = tt_project(W, m * n)[0]
    assert np.allclose(full, W, rtol=0, atol=1e-12 * np.abs(W).max())


# --------------------------------------------------------------------------- #
# train_bcd: determinism, shapes, refusals
# --------------------------------------------------------------------------- #
def test_train_is_deterministic_and_reports_consistently():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 40)) / math.sqrt(6)
    y = np.arange(40) % 3
    a = train_bcd(X, y, [8], sparsity=0.5, iterations=3, seed=2, X_test=X, labels_test=y)
    b = train_bcd(X, y, [8], sparsity=0.5, iterations=3, seed=2, X_test=X, labels_test=y)
    assert a.objective == b.objective and all(np.array_equal(u, v) for u, v in zip(a.weights, b.weights))
    assert a.train_accuracy == a.test_accuracy
    assert a.nonzeros == n_kept(48, 0.5) + n_kept(24, 0.5) and a.n_weights == 72
    assert a.components["total"] == pytest.approx(a.objective[-1], rel=1e-14)
    c = train_bcd(X, y, [8], tt_rank=2, iterations=2, seed=2)
    assert math.isnan(c.test_accuracy) and c.stored_numbers < c.n_weights
    assert c.bits()["packed"] == 32 * c.stored_numbers + 64 * sum(len(tt_modes(W.shape)) for W in c.weights)


@pytest.mark.parametrize("kw, err", [
    (dict(hidden=[0]), ParameterError), (dict(sparsity=1.0), ParameterError),
    (dict(iterations=0), ParameterError), (dict(tt_rank=0, sparsity=None), ParameterError),
    (dict(hidden=[10**6, 10**6]), ResourceError), (dict(seed=-1), ParameterError),
])
def test_train_refuses_bad_input(kw, err):
    X = np.ones((3, 4))
    args = dict(hidden=[2], sparsity=0.5, iterations=1)
    args.update(kw)
    with pytest.raises(err):
        train_bcd(X, np.array([0, 1, 0, 1]), args.pop("hidden"), **args)
    with pytest.raises(ParameterError):
        BCDHyperparameters(gamma=float("nan"))
    with pytest.raises(ParameterError):
        train_bcd(X, np.array([0, 1, 0]), [2])


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


SMALL = ("bcd", "--data", "digits", "--hidden", "20", "--iterations", "3", "--n-train", "300",
         "--n-test", "100", "--json")


def test_cli_json_schema_determinism_and_atomic_out(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    from ntk_theory.schemas import load_schema

    out = tmp_path / "m.npz"
    rc, text, err = _cli(*SMALL, "--out", str(out))
    assert rc == 0, err
    doc = json.loads(text)
    v = jsonschema.Draft202012Validator(load_schema("bcd"))
    assert not list(v.iter_errors(doc))
    for mutate in ("drop", "add"):
        bad = copy.deepcopy(doc)
        if mutate == "drop":
            del bad["objective"]
        else:
            bad["no_such_key"] = 1
        assert not v.is_valid(bad)
    assert len(doc["objective"]) == 3 and doc["nonzeros"] == sum(n_kept(a * b, 0.9) for a, b in
                                                                  zip(doc["widths"], doc["widths"][1:]))
    # same seed -> identical JSON except the timing
    rc2, text2, _ = _cli(*SMALL)
    doc2 = json.loads(text2)
    for d in (doc, doc2):
        d.pop("seconds")
        d.pop("out", None)
    assert doc == doc2
    # the saved model reproduces the network's weights (float32 storage)
    assert sorted(os.listdir(tmp_path)) == ["m.npz"]  # no temporary left behind
    with np.load(out) as z:
        widths = [int(w) for w in z["widths"]]
        assert z["objective"].tolist() == doc["objective"]
        nnz = sum(z[f"indices_{l}"].size for l in range(len(widths) - 1))
        assert nnz == doc["nonzeros"]
    rc, text, err = _cli(*SMALL[:-1], "--tt-rank", "2")
    assert rc == 0, err and "TT rank 2" in text


@pytest.mark.parametrize("argv", [
    ("--sparsity", "1"), ("--sparsity", "0.5", "--tt-rank", "2"), ("--n-train", "1700"),
    ("--out", "/nonexistent-dir/m.npz"), ("--out", "/"), ("--hidden", "100000000"),
    ("--data", "gmm", "--gmm-classes", "1"), ("--gamma", "0"),
])
def test_cli_bad_input_is_one_line_exit_2(argv):
    base = ["bcd", "--hidden", "5", "--iterations", "1"]
    rc, out, err = _cli(*base, *argv)
    assert rc == 2 and len(err.splitlines()) == 1 and "internal error" not in err, err


@pytest.mark.slow
def test_must_show_digits_300_100():
    """The issue's check: test accuracy >= 0.93, exactly 10% non-zero, F non-increasing."""
    rc, text, err = _cli("bcd", "--data", "digits", "--hidden", "300", "100", "--sparsity", "0.9",
                         "--iterations", "40", "--seed", "0", "--json")
    assert rc == 0, err
    d = json.loads(text)
    assert d["test_accuracy"] >= 0.93
    assert d["nonzeros"] * 10 == d["weights"]
    F = [d["objective_initial"]] + d["objective"]
    assert all(b <= a for a, b in zip(F, F[1:]))


def test_experiment2_bcd_rows_fit_in_the_ntk_lc_memory():
    from ntk_theory.bcd import tt_parameters
    from ntk_theory.experiment2 import _tt_size, markdown_table, run_experiment2

    # _tt_size (used to choose the TT rank) counts what tensorly actually returns
    for shape, R in [((300, 64), 8), ((10, 100), 3), ((7, 13), 2), ((12, 8), 40)]:
        _, cores = tt_project(np.random.default_rng(0).standard_normal(shape), R)
        assert tt_parameters(cores) == _tt_size(tt_modes(shape), R)
    r = run_experiment2("gmm", n_train=120, n_test=60, widths=(60,), activations=("relu",), epsilons=(0.9,),
                        lam=1.0, softmax_steps=20, bcd=True, bcd_hidden=(20,), bcd_iterations=3)
    lc = [x for x in r.rows if x.method == "ntk-lc"][0]
    bcd_rows = [x for x in r.rows if x.method == "nn-bcd"]
    assert {x.family.split(":")[0] for x in bcd_rows} == {"prune", "tt"}
    for x in bcd_rows:
        assert x.bits <= lc.bits and 0 <= x.network_accuracy <= 1
    assert "nn-bcd prune" in markdown_table(r)
