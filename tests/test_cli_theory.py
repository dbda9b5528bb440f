"""``ntk-theory coefficients`` and ``ntk-theory spectrum``: layouts, reproducibility, bad input."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from ntk_theory.cli import main
from ntk_theory.coefficients import coefficients
from ntk_theory.data import gmm, population_statistics, sample
from ntk_theory.exact import exact_kernels
from ntk_theory.spectral import relative_errors
from ntk_theory.theory import theory_kernels

SIGMA_T = "sigma_T:s1=-1,s2=0.5,a=2"
SMALL = ["--n", "120", "--width", "300", "--quiet"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ntk_theory", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NTK_THEORY_DEBUG": ""})


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


# --------------------------------------------------------------------------- #
# coefficients
# --------------------------------------------------------------------------- #
def test_coefficients_json_layout_and_values(capsys):
    out = _json(capsys, ["coefficients", "relu", SIGMA_T, "tanh", "--tau0", "1.5", "--json"])
    assert list(out) == ["tau0", "layers"] and out["tau0"] == 1.5
    ref = coefficients(["relu", SIGMA_T, "tanh"], 1.5)
    for i, (lay, r) in enumerate(zip(out["layers"], ref.layers), start=1):
        assert list(lay) == ["layer", "activation", "tau", "alpha", "beta", "kappa"]
        assert lay["layer"] == i and lay["activation"] == r.activation.spec
        assert lay["tau"] == r.tau and lay["alpha"] == list(r.alpha) and lay["beta"] == list(r.beta)
    assert out["layers"][0]["kappa"] == ref.layers[0].kappa
    # after the staircase layer E[σ'²] = ∞: κ is reported as the JSON string "inf"
    assert out["layers"][1]["kappa"] == "inf" and out["layers"][2]["kappa"] == "inf"
    # τ is the positive root of τ² (ReLU: τ1² = τ0²(π − 1)/(2π))
    assert out["layers"][0]["tau"] == pytest.approx(1.5 * math.sqrt((math.pi - 1) / (2 * math.pi)), rel=1e-14)


def test_coefficients_latex_and_text(capsys):
    assert main(["coefficients", "relu", "sign", "--tau0", "1", "--latex"]) == 0
    tex = capsys.readouterr().out
    assert tex.count(r"\toprule") == 1 and tex.count(r"\midrule") == 1 and tex.count(r"\bottomrule") == 1
    assert tex.count(r"\\") == 3  # header + two layers
    assert r"\infty" in tex and r"\texttt{relu}" in tex and r"\alpha_{\ell,4}" in tex
    # α_{1,1} = E[relu']² = 1/4 (the cell may carry decimal-alignment \phantom padding)
    assert re.search(r"\$0\.25(\\phantom\{[^}]*\})?\$", tex), tex
    assert main(["coefficients", "relu", "--tau0", "2"]) == 0
    text = capsys.readouterr().out
    assert "tau0 = 2" in text and "alpha1" in text and "0.25" in text


# --------------------------------------------------------------------------- #
# spectrum
# --------------------------------------------------------------------------- #
REQUIRED = {"rel_opnorm_theory_vs_exact", "rel_opnorm_empirical_vs_exact", "w1_spectrum_theory_vs_empirical",
            "top_eigenvalues", "n", "p", "widths"}


def _strip_seconds(d):
    return {k: v for k, v in d.items() if "seconds" not in k}


def test_spectrum_json_keys_and_independent_recomputation(capsys):
    out = _json(capsys, ["spectrum", "relu", "--seed", "5", "--json", *SMALL])
    assert REQUIRED <= set(out)
    assert out["n"] == 120 and out["p"] == 80 and out["widths"] == [300] and out["classes"] == 2
    assert set(out["top_eigenvalues"]) == {"theory", "exact", "empirical"}
    assert all(len(v) == 10 for v in out["top_eigenvalues"].values())
    secs = [k for k in out if "seconds" in k]
    assert "seconds_total" in secs and all(out[k] >= 0 for k in secs)
    # recompute the theory-vs-exact error through the API with the documented seeds
    data = sample(gmm(80, 2, seed=5), 120, seed=6)
    st = population_statistics(data)
    th = theory_kernels(data.X, st, ["relu"], ntk=False)
    ex = exact_kernels(data.X, ["relu"], tau0=st.tau0, ntk=False)
    assert out["rel_opnorm_theory_vs_exact"] == pytest.approx(relative_errors(th.ck, ex.ck)[0], rel=1e-12)
    assert out["tau0"] == st.tau0
    # largest eigenvalue of the exact kernel
    assert out["top_eigenvalues"]["exact"][0] == pytest.approx(np.linalg.eigvalsh(ex.ck)[-1], rel=1e-12)


def test_spectrum_same_seed_same_numbers(capsys):
    argv = ["spectrum", "relu", "tanh", "--kernel", "ntk", "--json", "--width", "200,150", "--n", "90", "--quiet"]
    a = _json(capsys, [*argv, "--seed", "3"])
    b = _json(capsys, [*argv, "--seed", "3"])
    c = _json(capsys, [*argv, "--seed", "4"])
    assert _strip_seconds(a) == _strip_seconds(b)
    assert a["widths"] == [200, 150] and a["kernel"] == "ntk"
    assert a["rel_opnorm_empirical_vs_exact"] != c["rel_opnorm_empirical_vs_exact"]


def test_spectrum_identity_option_and_staircase_ck(capsys):
    d = _json(capsys, ["spectrum", "relu", "--json", "--seed", "1", *SMALL])
    p = _json(capsys, ["spectrum", "relu", "--json", "--seed", "1", "--identity", "printed", *SMALL])
    assert d["identity"] == "diagonal" and p["identity"] == "printed"
    # the printed convention is off by τ0⁴α3 on the diagonal (see tests/test_theory.py)
    assert p["rel_opnorm_theory_vs_exact"] > d["rel_opnorm_theory_vs_exact"]
    assert p["rel_opnorm_empirical_vs_exact"] == d["rel_opnorm_empirical_vs_exact"]
    s = _json(capsys, ["spectrum", SIGMA_T, "relu", "--json", *SMALL])
    assert all(math.isfinite(s[k]) for k in REQUIRED - {"top_eigenvalues", "widths"})


def test_spectrum_plot_and_text(tmp_path, capsys):
    png = tmp_path / "spec.png"
    assert main(["spectrum", "erf", "--plot", str(png), *SMALL]) == 0
    captured = capsys.readouterr()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "theory vs exact" in captured.out and str(png) in captured.out
    assert captured.err == ""  # --quiet and no TTY: no progress bar


def test_spectrum_digits(capsys):
    pytest.importorskip("sklearn")
    out = _json(capsys, ["spectrum", "relu", "--data", "digits", "--classes", "3", "--json", *SMALL])
    assert out["p"] == 64 and out["classes"] == 3 and out["statistics"] == "estimate"
    assert 0 < out["rel_opnorm_theory_vs_exact"] < 1


BAD = [
    (["coefficients", "relu"], "--tau0"),
    (["coefficients", "relu", "--tau0", "0"], "must be > 0"),
    (["coefficients", "nosuch", "--tau0", "1"], "unknown activation"),
    (["coefficients", "relu", "--tau0", "1", "--json", "--latex"], "not allowed"),
    (["spectrum", SIGMA_T, "--kernel", "ntk"], "infinite diagonal"),
    (["spectrum", "relu", "relu", "--width", "10,20,30"], "--width"),
    (["spectrum", "relu", "--width", "0"], "positive"),
    (["spectrum", "relu", "--data", "digits", "--p", "10"], "fixed to 64"),
    (["spectrum", "relu", "--n", "60000"], "GiB"),
    (["spectrum", "relu", "--n", "3", "--classes", "2"], "too small"),
    (["spectrum", "relu", "--plot", "x.txt", "--n", "50"], ".png"),
    (["spectrum", "relu", "--kernel", "both"], "invalid choice"),
]


@pytest.mark.parametrize("argv,needle", BAD, ids=lambda v: v if isinstance(v, str) else None)
def test_bad_input_exit_2_one_line(argv, needle, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors exit through the one-line parser
        code = exc.code
    cap = capsys.readouterr()
    assert code == 2 and cap.out == ""
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in cap.err, cap.err
    assert needle in lines[0]


@pytest.mark.parametrize("argv,needle", [BAD[4], BAD[8], BAD[3]], ids=["domain", "memory", "usage"])
def test_bad_input_in_a_real_process(argv, needle):
    """The installed entry point: exit status 2, one line on stderr, nothing on stdout."""
    r = run_cli(*argv)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr and needle in lines[0], r.stderr
