"""Tables (issue 6): the Table model, ``ntk-theory table``, ``--latex`` outputs and notebook HTML.

Numbers printed in a table are parsed back and compared with the API's values:
with ``d`` significant digits a correctly rounded number is within half a unit in
the ``d``-th significant digit, ``|printed − value| ≤ 0.5·10^(e−d+1)`` where
``10^e ≤ |value| < 10^(e+1)``; the tests allow exactly that (plus 1e−300 for
exact zeros).
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import shutil
import subprocess

import mpmath as mp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ntk_theory.cli import main
from ntk_theory.coefficients import coefficients
from ntk_theory.compress import compress_network
from ntk_theory.display import coefficients_html, compression_html, moments_html, table_html
from ntk_theory.errors import ParameterError
from ntk_theory.latex import (
    COEFFICIENTS_COLUMNS,
    COMPRESSION_COLUMNS,
    MOMENTS_COLUMNS,
    NumberFormat,
    coefficients_table,
    compression_table,
    latex_text,
    moments_table,
)
from ntk_theory.moments import gaussian_moments

SIGMA_T = "sigma_T:s1=-1,s2=0.5,a=2"
PDFLATEX = shutil.which("pdflatex")
needs_pdflatex = pytest.mark.skipif(
    PDFLATEX is None,
    reason="pdflatex is not installed on this machine; .ci/run installs TeX Live (Debian "
           "texlive-latex-base/-recommended) so that CI really compiles every kind of table")


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
_NUM = re.compile(r"\$(-?)(?:\\infty|([0-9.]+)(?:\\times10\^\{(-?[0-9]+)\})?)\$")


def parse_latex_number(cell: str) -> float:
    """Inverse of NumberFormat.latex for one cell (``$-1.2\\times10^{-5}$``, ``$\\infty$``)."""
    # decimal alignment pads with invisible \phantom{...} groups (one level of braces inside)
    cell = re.sub(r"\\phantom\{(?:[^{}]|\{[^{}]*\})*\}", "", cell)
    m = _NUM.fullmatch(cell.strip())
    assert m, cell
    sign = -1.0 if m.group(1) else 1.0
    if m.group(2) is None:
        return sign * math.inf
    return sign * float(m.group(2)) * (10.0 ** int(m.group(3)) if m.group(3) else 1.0)


def body_rows(tex: str) -> list[list[str]]:
    """The cells of the data rows of a booktabs table (between \\midrule and \\bottomrule)."""
    body = tex.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0]
    # the decimal-alignment padding (invisible \phantom groups) is not part of a value
    body = re.sub(r"\\phantom\{(?:[^{}]|\{[^{}]*\})*\}", "", body)
    return [[c.strip() for c in line.removesuffix(r" \\").split(" & ")] for line in body.strip().splitlines()]


def header_cells(tex: str) -> list[str]:
    head = tex.split("\\toprule\n", 1)[1].split("\n", 1)[0]
    return [c.strip() for c in head.removesuffix(r" \\").split(" & ")]


def assert_rounded(printed: float, value: float, digits: int) -> None:
    """``printed`` is ``value`` correctly rounded to ``digits`` significant digits."""
    value = float(value)
    if math.isinf(value):
        assert printed == value
        return
    if value == 0:
        assert printed == 0
        return
    e = math.floor(math.log10(abs(value)))
    # half a unit in the last printed digit, plus float rounding of the parse itself
    # (a relative 4e-16 of the magnitude) and the case of a value just below a power of 10
    assert abs(printed - value) <= 0.5 * 10.0 ** (e - digits + 1) * (1 + 1e-9) + 4e-16 * abs(value), \
        (printed, value, digits)


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as exc:  # argparse usage errors
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def compile_tex(tmp_path, tex: str, name: str = "t") -> None:
    (tmp_path / f"{name}.tex").write_text(tex)
    r = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:]
    assert (tmp_path / f"{name}.pdf").stat().st_size > 1000


@pytest.fixture(scope="module")
def moments_results():
    return [gaussian_moments(a, 1.5) for a in ("relu", "sign", "tanh", SIGMA_T)]


@pytest.fixture(scope="module")
def coef_result():
    return coefficients(["relu", SIGMA_T, "tanh"], 1.5)


@pytest.fixture(scope="module")
def comp_result():
    return compress_network(["relu", "tanh"], 1.0)


# --------------------------------------------------------------------------- #
# number formats: checked against Python's own %g / %e formatting
# --------------------------------------------------------------------------- #
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(v=finite.filter(lambda x: x != 0), d=st.integers(1, 17))
def test_auto_is_percent_g_and_sci_is_percent_e(v, d):
    assert NumberFormat(d, "auto").text(v) == f"{v:.{d}g}"
    assert NumberFormat(d, "sci").text(v) == f"{v:.{d - 1}e}"
    assert NumberFormat(d).text(0.0) == NumberFormat(d).text(-0.0) == "0"  # no "-0" in a table


@given(v=st.floats(min_value=-1e30, max_value=1e30, allow_nan=False).filter(lambda x: abs(x) > 1e-30),
       d=st.integers(1, 17))
def test_fixed_is_positional_with_d_significant_digits(v, d):
    s = NumberFormat(d, "fixed").text(v)
    assert "e" not in s
    assert float(s) == float(f"{v:.{d - 1}e}")  # the same correctly rounded number
    sig = s.lstrip("-").replace(".", "").lstrip("0")
    # digits d or more: trailing zeros of a large integer part are positional, not significant
    assert len(sig) >= d and (len(sig) == d or set(sig[d:]) == {"0"} and "." not in s)


@given(v=finite, d=st.integers(1, 17), style=st.sampled_from(["auto", "fixed", "sci"]))
def test_mpmath_numbers_round_like_floats(v, d, style):
    """An mpmath number equal to a double is written exactly like the double (one correct
    rounding of the exact binary value, ties to even as in %g: 0.125 -> 0.12)."""
    if style == "fixed" and v != 0 and not 1e-30 < abs(v) < 1e30:
        return  # positional text of 1e300 is 300 characters: covered by the other tests
    f = NumberFormat(d, style)
    assert f.text(mp.mpf(v)) == f.text(v)
    assert f.latex(mp.mpf(v)) == f.latex(v)


def test_ties_round_to_even():
    assert [NumberFormat(2).text(x) for x in (0.125, mp.mpf(0.125), 0.375, mp.mpf(-0.375))] == \
        ["0.12", "0.12", "0.38", "-0.38"]


def test_special_values_and_mpmath_precision():
    f = NumberFormat(6)
    assert f.latex(math.inf) == r"$\infty$" and f.latex(-math.inf) == r"$-\infty$"
    assert f.latex(mp.inf) == r"$\infty$" and f.text(mp.inf) == "inf"
    assert f.latex(1.2e-5) == r"$1.2\times10^{-5}$" and f.latex(0.0) == "$0$"
    assert f.html(-1.2e-5) == "\u22121.2\u00d710<sup>\u22125</sup>" and f.html(math.inf) == "\u221e"
    with mp.workdps(60):
        third = mp.mpf(1) / 3
        # 40 significant digits of an mpmath number: independent reference mp.nstr
        assert NumberFormat(40, "fixed").text(third) == "0." + "3" * 40
        assert NumberFormat(40, "sci").latex(mp.pi) == "$" + mp.nstr(mp.pi, 40) + r"\times10^{0}$"
    assert NumberFormat(3, "fixed").text(123456.0) == "123000"
    assert NumberFormat(3, "fixed").text(-0.000123456) == "-0.000123"
    for bad in (dict(digits=0), dict(digits=51), dict(style="eng"), dict(digits=True)):
        with pytest.raises(ParameterError):
            NumberFormat(**bad)


def test_caption_escaping_keeps_math():
    assert latex_text("a_b 50% & #1 $x_1$") == r"a\_b 50\% \& \#1 $x_1$"
    assert latex_text("cost in $") == r"cost in \$"  # an unpaired $ is text
    assert latex_text(r"\emph{x}") == r"\textbackslash{}emph\{x\}"


# --------------------------------------------------------------------------- #
# the three kinds through the API: numbers equal the API's values
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("style", ["auto", "fixed", "sci"])
def test_moments_table_values(moments_results, style):
    d = 7
    keys = list(MOMENTS_COLUMNS)[1:]  # every numeric column
    tex = moments_table(moments_results, d, columns=["activation", *keys], style=style).to_latex()
    rows = body_rows(tex)
    assert [r[0] for r in rows] == [r"\texttt{relu}", r"\texttt{sign}", r"\texttt{tanh}",
                                    r"\texttt{sigma\_T:s1=-1,s2=0.5,a=2}"]
    for res, row in zip(moments_results, rows):
        ref = {"tau": res.tau, "m0": res.m0, "m1": res.m1, "m2": res.m2, "v0": res.v0, "v1": res.v1,
               "w2": res.w2, "var": res.variance, "w2_bar": res.w2_bar}
        for key, cell in zip(keys, row[1:]):
            assert_rounded(parse_latex_number(cell), ref[key], d)
            if style == "sci" and not math.isinf(ref[key]) and ref[key] != 0:
                assert r"\times10^" in cell
            if style == "fixed":
                assert r"\times" not in cell
    # relu at τ = 1.5: E[σ] = τ/√(2π), E[σ'²] = 1/2; sigma_T has a jump: E[σ'²] = ∞
    assert parse_latex_number(rows[0][2]) == pytest.approx(1.5 / math.sqrt(2 * math.pi), rel=5e-7)
    assert rows[3][keys.index("v1") + 1] == r"$\infty$"


def test_coefficients_table_values(coef_result):
    d = 8
    keys = list(COEFFICIENTS_COLUMNS)
    tex = coefficients_table(coef_result, d, columns=keys).to_latex()
    rows = body_rows(tex)
    assert len(rows) == 3
    for lay, row in zip(coef_result.layers, rows):
        cells = dict(zip(keys, row))
        assert cells["layer"] == str(lay.layer)
        assert cells["activation"] == r"\texttt{" + lay.activation.spec.replace("_", r"\_") + "}"
        ref = {"tau_in": lay.tau_in, "tau": lay.tau, "kappa": lay.kappa, "centering": lay.centering,
               **{f"alpha{k + 1}": a for k, a in enumerate(lay.alpha)},
               **{f"beta{k + 1}": b for k, b in enumerate(lay.beta)}}
        for key, v in ref.items():
            assert_rounded(parse_latex_number(cells[key]), v, d)
    assert rows[1][keys.index("kappa")] == r"$\infty$"  # after the staircase layer


def test_compression_table_values(comp_result):
    d = 9
    keys = list(COMPRESSION_COLUMNS)
    table = compression_table(comp_result, d, columns=keys)
    rows = body_rows(table.to_latex())
    assert len(rows) == comp_result.depth
    for i, (fit, row) in enumerate(zip(comp_result.layers, rows)):
        cells = dict(zip(keys, row))
        assert cells["family"] == r"\texttt{" + fit.family.replace("_", r"\_") + "}"
        assert cells["dense"] == r"\texttt{" + comp_result.activations[i] + "}"
        params = dict(re.findall(r"\\texttt\{(\w+)\}=(\$[^$]*\$)", cells["params"]))
        assert set(params) == set(fit.params)
        for k, v in fit.params.items():
            assert_rounded(parse_latex_number(params[k]), v, d)
        ref = {"tau_in": fit.tau_in, "tau_dense": comp_result.tau_dense[i + 1],
               "tau_compressed": comp_result.tau_compressed[i + 1], "variance": fit.variance,
               "mean": fit.mean,
               "max_res": fit.max_rel_residual, "res_m1sq": fit.residuals["m1^2"],
               "res_m2sq": fit.residuals["m2^2"], "res_w2bar": fit.residuals["w2_bar"],
               "delta": comp_result.tau_compressed[i + 1] ** 2 - comp_result.tau_dense[i + 1] ** 2}
        for key, v in ref.items():
            assert_rounded(parse_latex_number(cells[key]), v, d)
    # the last layer's τ'² − τ² is δ (docs/reference.rst §6), and the default caption states it
    assert table.column("delta")[-1] == pytest.approx(comp_result.delta, rel=1e-12, abs=1e-15)
    assert r"\delta" in compression_table(comp_result).to_latex()
    # a layer's output variance is its compressed scale squared
    assert table.column("variance") == pytest.approx([t**2 for t in comp_result.tau_compressed[1:]], rel=1e-12)


def test_list_valued_parameters_render_as_tuples():
    res = compress_network(["relu"], 1.0, family="staircase:4")
    tex = compression_table(res, 5, columns="params").to_latex()
    cell = body_rows(tex)[0][0]
    groups = dict(re.findall(r"\\texttt\{(\w+)\}=\$\(([^)]*)\)\$", cell))
    assert groups, cell
    for k, text in groups.items():
        got = [float(x) for x in text.split(", ")]
        assert len(got) == len(res.layers[0].params[k])
        for g, v in zip(got, res.layers[0].params[k]):
            assert_rounded(g, v, 5)


# --------------------------------------------------------------------------- #
# column selection, labels
# --------------------------------------------------------------------------- #
def test_column_selection_order_and_validation(moments_results, coef_result, comp_result):
    t = moments_table(moments_results, columns="w2_bar, activation,m1")
    assert t.keys == ("w2_bar", "activation", "m1")
    assert header_cells(t.to_latex())[1] == "Activation"
    for build, res, valid in ((moments_table, moments_results, MOMENTS_COLUMNS),
                              (coefficients_table, coef_result, COEFFICIENTS_COLUMNS),
                              (compression_table, comp_result, COMPRESSION_COLUMNS)):
        with pytest.raises(ParameterError) as exc:
            build(res, columns=["nosuch"])
        assert "'nosuch'" in str(exc.value) and all(k in str(exc.value) for k in valid)
        with pytest.raises(ParameterError, match="twice"):
            build(res, columns=[next(iter(valid))] * 2)
        with pytest.raises(ParameterError, match="no .* column"):
            build(res, columns="")
    with pytest.raises(ParameterError, match="label"):
        moments_table(moments_results, label="tab:a b")
    with pytest.raises(ParameterError, match="at least one"):
        moments_table([])


def test_default_columns_and_tau_column(moments_results):
    same = moments_table(moments_results)
    assert same.keys == ("activation", "m0", "m1", "m2", "v0", "v1", "w2")
    mixed = moments_table([gaussian_moments("relu", 1.0), gaussian_moments("relu", 2.0)])
    assert mixed.keys[:2] == ("activation", "tau") and r"\tau = 1, 2" in mixed.to_latex()


def test_markdown_and_text_renderings(coef_result):
    t = coefficients_table(coef_result, 4, columns="layer,activation,alpha1,kappa", caption="a|b")
    md = t.to_markdown().splitlines()
    assert md[0] == r"a\|b" and md[2] == "| layer | activation | alpha1 | kappa |"
    assert md[3] == "|---:|:---|---:|---:|" and md[4].endswith("| inf |") is False
    assert md[5].endswith("| inf |")  # layer 2 (the staircase) has κ = ∞
    assert float(md[4].split("|")[3]) == pytest.approx(coef_result.layers[0].alpha[0], rel=5e-4)
    txt = t.to_text().splitlines()
    assert txt[0] == "a|b" and txt[1].split() == ["layer", "activation", "alpha1", "kappa"]
    assert len(txt) == 2 + coef_result.L


# --------------------------------------------------------------------------- #
# the CLI: table, and the --latex outputs share the builders
# --------------------------------------------------------------------------- #
def test_cli_table_equals_api(moments_results):
    rc, out, err = cli("table", "moments", "relu", "sign", "tanh", SIGMA_T, "--tau", "1.5",
                       "--digits", "7", "--format", "sci", "--columns", "activation,m0,v1",
                       "--caption", "My caption", "--label", "tab:mom")
    assert rc == 0 and err == ""
    assert out.strip() == moments_table(moments_results, 7, style="sci", columns="activation,m0,v1",
                                        caption="My caption", label="tab:mom").to_latex()
    assert r"\label{tab:mom}" in out and r"\caption{My caption}" in out


def test_latex_options_of_other_commands_share_the_builders(coef_result, comp_result):
    rc, out, _ = cli("moments", "relu", "sign", "--latex", "--digits", "6")
    assert rc == 0
    rc2, out2, _ = cli("table", "moments", "relu", "sign")
    assert rc2 == 0 and out == out2
    rc, out, _ = cli("coefficients", "relu", SIGMA_T, "tanh", "--tau0", "1.5", "--latex")
    assert rc == 0 and out.strip() == coefficients_table(coef_result).to_latex()
    rc, out, _ = cli("compress", "relu", "tanh", "--tau0", "1", "--latex", "--widths", "20", "20", "20")
    assert rc == 0 and out.strip() == compression_table(comp_result).to_latex()


def test_cli_markdown_and_text_outputs():
    rc, out, _ = cli("table", "coefficients", "relu", "--tau0", "1", "--output", "markdown",
                     "--columns", "layer,alpha1")
    assert rc == 0 and "| layer | alpha1 |" in out and "| 1 | 0.25 |" in out
    rc, out, _ = cli("table", "moments", "x*erf(x)", "--output", "markdown", "--columns", "activation,m1")
    assert rc == 0 and out.splitlines()[-1] == "| `x*erf(x)` | 0 |"  # code spans: no Markdown emphasis
    rc, out, _ = cli("table", "moments", "relu", "--output", "text", "--columns", "activation,v0")
    assert rc == 0 and out.splitlines()[-1].split() == ["relu", "0.5"]


@pytest.mark.parametrize("argv,needle", [
    (["table", "moments", "relu", "--columns", "m0,bogus"], "unknown moments column"),
    (["table", "coefficients", "relu", "--tau0", "1", "--columns", "alpha5"], "valid: layer"),
    (["table", "compression", "relu", "--tau0", "1", "--columns", "x"], "valid: layer"),
    (["table", "coefficients", "relu"], "--tau0"),
    (["table", "moments", "relu", "--family", "sigma_T"], "compression' only"),
    (["table", "coefficients", "relu", "--tau0", "1", "--centered"], "moments' only"),
    (["table", "moments", "relu", "--label", "a b"], "label"),
    (["table", "moments", "relu", "--digits", "51"], "at most 50"),
    (["table", "moments", "relu", "--format", "eng"], "invalid choice"),
    (["table", "moments", "relu", "--output", "text", "--standalone"], "--standalone"),
    (["table", "nosuchkind", "relu"], "invalid choice"),
    (["table", "moments", "relu", "--tau", "1", "--tau0", "2"], "not allowed"),
    # columns and labels are checked before any work: the column error, not the infeasibility
    (["table", "compression", "tanh", "--tau0", "1", "--family", "sigma_T", "--columns", "x"], "column"),
    (["table", "compression", "tanh", "--tau0", "1", "--family", "sigma_T", "--label", "{"], "label"),
])
def test_bad_table_input_exit_2_one_line(argv, needle):
    rc, out, err = cli(*argv)
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and needle in lines[0], err


# --------------------------------------------------------------------------- #
# pdflatex compiles every kind of table
# --------------------------------------------------------------------------- #
@needs_pdflatex
@pytest.mark.parametrize("argv", [
    ["table", "moments", "relu", "sign", SIGMA_T, "x*erf(x)", "--tau", "2", "--centered",
     "--columns", ",".join(MOMENTS_COLUMNS), "--format", "sci"],
    ["table", "coefficients", "relu", SIGMA_T, "tanh", "--tau0", "1.5",
     "--columns", ",".join(COEFFICIENTS_COLUMNS), "--format", "fixed", "--digits", "4"],
    ["table", "compression", "relu", "tanh", "--tau0", "1", "--columns", ",".join(COMPRESSION_COLUMNS)],
    ["table", "compression", "relu", "--tau0", "1", "--family", "staircase:4"],
], ids=["moments", "coefficients", "compression", "staircase-params"])
def test_standalone_tables_compile(tmp_path, argv):
    caption = r"Specials: 50% & a_b #1 ~ ^ {x} \ and math $\alpha_{\ell,1}$"
    rc, out, err = cli(*argv, "--standalone", "--caption", caption, "--label", "tab:x_1")
    assert rc == 0, err
    assert out.startswith(r"\documentclass{article}") and out.rstrip().endswith(r"\end{document}")
    assert r"50\% \& a\_b \#1" in out and r"$\alpha_{\ell,1}$" in out
    compile_tex(tmp_path, out)


@needs_pdflatex
def test_latex_outputs_of_coefficients_and_compress_compile(tmp_path):
    from ntk_theory.latex import standalone_document

    for i, argv in enumerate((["coefficients", "relu", "sign", "--tau0", "1", "--latex"],
                              ["compress", "relu", "tanh", "--tau0", "1", "--latex", "--widths", "8", "8", "8"])):
        rc, out, err = cli(*argv)
        assert rc == 0, err
        compile_tex(tmp_path, standalone_document(out), f"t{i}")


# --------------------------------------------------------------------------- #
# notebook HTML
# --------------------------------------------------------------------------- #
def _html_cells(html: str) -> list[list[str]]:
    body = html.split("<tbody>", 1)[1]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in body.split("<tr>")[1:]]


def _parse_html_number(s: str) -> float:
    s = s.replace("\u2212", "-")
    if s.endswith("\u221e"):
        return -math.inf if s.startswith("-") else math.inf
    m = re.fullmatch(r"(-?[0-9.]+)(?:\u00d710<sup>(-?[0-9]+)</sup>)?", s)
    assert m, s
    return float(m.group(1)) * (10.0 ** int(m.group(2)) if m.group(2) else 1.0)


def test_html_renderers_values_and_escaping(moments_results, coef_result, comp_result):
    act = gaussian_moments("Piecewise((x, x > 0), (0.1*x, True))")
    html = moments_html([act, moments_results[3]], caption="<b>&</b> $\\tau<1$", columns="activation,m0,v1")
    assert "<b>" not in html and "&lt;b&gt;&amp;&lt;/b&gt;" in html and "$\\tau&lt;1$" in html
    rows = _html_cells(html)
    assert rows[0][0] == "<code>Piecewise((x, x &gt; 0), (x/10, True))</code>"
    assert_rounded(_parse_html_number(rows[0][1]), act.m0, 6)
    assert _parse_html_number(rows[1][2]) == math.inf  # sigma_T: E[σ'²] = ∞
    assert moments_html(act) == moments_html([act])  # a single result is a one-row table
    rows = _html_cells(coefficients_html(coef_result, 8, columns="layer,alpha2,kappa"))
    for lay, row in zip(coef_result.layers, rows):
        assert row[0] == str(lay.layer)
        assert_rounded(_parse_html_number(row[1]), lay.alpha[1], 8)
        assert_rounded(_parse_html_number(row[2]), lay.kappa, 8)
    rows = _html_cells(compression_html(comp_result, columns="family,max_res"))
    assert [r[0] for r in rows] == [f"<code>{f.family}</code>" for f in comp_result.layers]
    assert 'id="tab:m_1"' in moments_html(act, label="tab:m_1")
    t = moments_table(moments_results)
    assert t._repr_html_() == t.to_html() == table_html(t) and html.count("<table") == 1


def test_variance_column_has_no_cancellation():
    """The var column of cos at τ = 1e−3 is ½(1 − e^{−τ²})² ≈ 5e−13, not v0 − m0² of two
    numbers ≈ 1 (which keeps ~4 of its digits); relative rounding of the closed form only."""
    from ntk_theory.latex import moments_table
    from ntk_theory.moments import gaussian_moments

    tau = 1e-3
    t = moments_table([gaussian_moments("cos", tau)], columns="var")
    (value,) = t.rows[0]
    assert float(value) == pytest.approx(math.expm1(-tau * tau) ** 2 / 2, rel=1e-14)
