"""``ntk-theory moments``: output formats and the exit-status-2 rule for bad input."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import pytest

from ntk_theory.cli import main
from ntk_theory.jump import MOMENT_KEYS


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ntk_theory", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "NTK_THEORY_DEBUG": ""})


def test_json_schema_and_values(capsys):
    assert main(["moments", "relu", "sigma_T:s1=-1,s2=0.5,a=2", "tanh", "--json", "--tau", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [o["activation"] for o in out] == ["relu", "sigma_T:s1=-1,s2=0.5,a=2", "tanh"]
    for o in out:
        assert {"activation", "tau", "closed_form", "moments", "latex"} <= set(o)
        assert list(o["moments"]) == list(MOMENT_KEYS) and list(o["latex"]) == list(MOMENT_KEYS)
        assert o["tau"] == 2.0
    relu, sig, tanh = out
    assert relu["closed_form"] is True and relu["moments"]["E[s^2]"] == 2.0
    assert relu["latex"]["E[s^2]"] == r"\frac{\tau^{2}}{2}"
    assert sig["moments"]["E[s'^2]"] == "inf" and sig["latex"]["E[s'^2]"] == r"\infty"
    assert sig["closed_form"] is True
    assert tanh["closed_form"] is False and tanh["latex"]["E[s']"] is None
    assert tanh["latex"]["E[s]"] == "0"  # parity gives an exact zero
    assert math.isclose(relu["moments"]["E[s]"], 2 / math.sqrt(2 * math.pi), rel_tol=1e-15)


def test_expression_and_parameter_specs(capsys):
    assert main(["moments", "x*erf(x)", "Heaviside(x-1)", "Max(x, 0.1*x)", "leaky_relu:slope=0.1",
                 "sigma_Q:r1=-2,r2=-0.5,r3=0.5,r4=2,b1=1,b2=-1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    # Max(x, 0.1 x) is leaky ReLU with slope 0.1: identical moments
    assert out[2]["moments"] == out[3]["moments"]
    assert all(o["closed_form"] for o in out)


def test_centered_and_digits(capsys):
    assert main(["moments", "relu", "--centered", "--json", "--digits", "30"]) == 0
    o = json.loads(capsys.readouterr().out)[0]
    assert o["moments"]["E[s]"] == 0.0
    assert math.isclose(o["moments"]["E[s^2]"], 0.5 - 1 / (2 * math.pi), rel_tol=1e-15)
    assert o["moments_text"]["E[s^2]"].startswith("0.34084505690810466423")  # 1/2 − 1/(2π)


def test_text_table(capsys):
    assert main(["moments", "relu", "tanh"]) == 0
    out = capsys.readouterr().out
    assert "0.398942280401" in out and "(numeric)" in out


def test_latex_table_structure(capsys):
    assert main(["moments", "relu", "sign", "gelu", "--latex"]) == 0
    tex = capsys.readouterr().out
    assert tex.count(r"\toprule") == 1 and tex.count(r"\bottomrule") == 1
    assert r"\infty" in tex and r"\texttt{relu}" in tex
    assert tex.count(r"\\") == 4  # header + three rows


@pytest.mark.skipif(shutil.which("pdflatex") is None,
                    reason="pdflatex is not installed here; .ci/run installs TeX Live to compile tables")
def test_latex_table_compiles(tmp_path, capsys):
    assert main(["moments", "relu", "sign", "sigma_T:s1=-1,s2=0.5,a=2", "--latex"]) == 0
    body = capsys.readouterr().out
    # exactly the packages the fragment's first line declares (issue 12)
    first = body.splitlines()[0]
    assert first.startswith("% requires: ")
    pkgs = [p.strip() for p in first.split(":", 1)[1].split(",")]
    doc = ("\\documentclass{article}\n" + "".join(f"\\usepackage{{{p}}}\n" for p in pkgs)
           + "\\begin{document}\n" + body + "\n\\end{document}\n")
    (tmp_path / "t.tex").write_text(doc)
    r = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:]
    log = (tmp_path / "t.log").read_text(errors="replace")
    overfull = [l for l in log.splitlines() if l.startswith("Overfull")]
    assert not overfull, overfull  # the table fits the text width of a standard article


BAD = [
    ["moments", "nosuchact"],
    ["moments", "x +"],
    ["moments", "y*x"],
    ["moments", "relu", "--tau", "0"],
    ["moments", "relu", "--tau", "-1"],
    ["moments", "relu", "--tau", "inf"],
    ["moments", "relu", "--tau", "nan"],
    ["moments", "relu", "--tau", "abc"],
    ["moments", "sigma_T:s1=1,s2=0"],
    ["moments", "leaky_relu:slope=x"],
    ["moments", "exp(x**2)"],
    ["moments", "1/x"],
    ["moments", "relu", "--digits", "0"],
    ["moments", "relu", "--digits", "500"],
    ["moments"],
    ["nosuchcommand"],
    [],
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a) or "<none>" for a in BAD])
def test_bad_input_exits_2_with_one_line(argv):
    r = run_cli(*argv)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and "error" in lines[0]
    assert r.stdout == ""


def test_python_dash_m_matches_console_script():
    r = run_cli("moments", "relu", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["activation"] == "relu"
