"""LaTeX fragments: declared packages, row labels, decimal alignment, text width (issue 12, item 7)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from reference import cli

from ntk_theory.latex import NumberFormat, decimal_aligned, required_packages, standalone_document

PDFLATEX = shutil.which("pdflatex")
needs_pdflatex = pytest.mark.skipif(PDFLATEX is None, reason=".ci/run installs TeX Live")


FRAGMENTS = [
    ("moments", "relu", "sign", "sigma_T:s1=-1,s2=0.5,a=2", "tanh", "x*erf(x)", "--latex"),
    ("moments", "relu", "sigma_T:s1=-1,s2=0.5,a=2", "--latex", "--labels", r"ReLU,$\sigma_T$ ($a = 2$)"),
    ("table", "moments", "relu", "sign", "tanh", "--columns",
     "activation,m0,m1,m2,v0,v1,w2,w2_bar,var", "--digits", "12", "--format", "sci"),
    ("table", "coefficients", "relu", "relu", "relu", "--tau0", "1"),
    ("coefficients", "relu", "sign", "--tau0", "1", "--latex"),
]


@pytest.mark.parametrize("argv", FRAGMENTS, ids=lambda a: " ".join(a[:2]))
def test_first_line_declares_exactly_the_packages(argv):
    rc, out, err = cli(*argv)
    assert rc == 0, err
    first, body = out.split("\n", 1)
    assert first.startswith("% requires: ")
    declared = [p.strip() for p in first.split(":", 1)[1].split(",")]
    assert "booktabs" in declared and declared == required_packages(body)
    if r"\mathbb" in body:
        assert "amssymb" in declared


@needs_pdflatex
@pytest.mark.parametrize("argv", FRAGMENTS, ids=lambda a: " ".join(a[:2]))
def test_fragment_compiles_with_exactly_its_packages_and_fits_the_text(argv, tmp_path):
    rc, out, err = cli(*argv)
    assert rc == 0, err
    doc = standalone_document(out)  # \usepackage of exactly the declared list
    declared = out.split("\n", 1)[0].split(":", 1)[1]
    assert re.findall(r"\\usepackage\{([^}]*)\}", doc) == [p.strip() for p in declared.split(",")]
    (tmp_path / "t.tex").write_text(doc)
    r = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:]
    log = (tmp_path / "t.log").read_text(errors="replace")
    overfull = [l for l in log.splitlines() if l.startswith(("Overfull", "Underfull \\hbox"))]
    assert not overfull, overfull


def test_labels_replace_the_first_column_and_are_checked():
    rc, out, _ = cli("moments", "relu", "tanh", "--latex", "--labels", "ReLU,tanh 50%")
    assert rc == 0
    rows = out.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0].strip().splitlines()
    assert rows[0].startswith("ReLU & ") and rows[1].startswith(r"tanh 50\% & ")
    assert cli("moments", "relu", "--latex", "--labels", "a,b")[0] == 2
    assert cli("moments", "relu", "--labels", "a")[0] == 2  # text output has no labels
    rc, out, _ = cli("table", "coefficients", "relu", "relu", "--tau0", "1", "--labels", "first,second")
    assert rc == 0 and "\nfirst & " in out and "\nsecond & " in out


def test_decimal_alignment_pads_to_equal_width_right_of_the_point():
    fmt = NumberFormat(4)
    cells = decimal_aligned([0.5, 12.25, 3.0, 1.5e-7, float("inf"), None], fmt)
    assert cells[-1] is None

    def right_of_point(c: str) -> str:
        """Characters right of the decimal point, phantoms expanded (digits equally wide)."""
        c = c.strip("$")
        c = c.replace(r"\infty", "I")
        head, dot, tail = c.partition(".")
        if not dot:  # no visible point: the phantom carries it
            m = re.search(r"\\phantom\{\.", c)
            tail = c[m.end():]
        tail = re.sub(r"\\phantom\{((?:[^{}]|\{[^{}]*\})*)\}", r"\1", tail)
        return re.sub(r"\\times10\^|[{}.]", "", tail).replace("-", "m")

    widths = {len(right_of_point(c)) for c in cells[:-1]}
    assert len(widths) == 1, [right_of_point(c) for c in cells[:-1]]
    assert cells[0].startswith("$0.5\\phantom{") and cells[3].startswith("$1.5\\phantom{0}\\times10^{-7}")
