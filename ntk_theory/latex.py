"""Tables of moments, coefficients and compression plans: one model, four renderings.

Every table of the project — ``ntk-theory table``, the ``--latex`` output of
``moments``, ``coefficients`` and ``compress``, and the notebook HTML of
:mod:`ntk_theory.display` — is a :class:`Table`: named :class:`Column` objects (a
LaTeX, a plain-text and an HTML header each), rows of raw values (numbers stay
numbers until rendering), a caption, a label and a :class:`NumberFormat`.  The
builders :func:`moments_table` (docs/reference.rst §1), :func:`coefficients_table`
(docs/reference.rst §4) and :func:`compression_table` (docs/reference.rst §6) take a ``columns=``
selection by key; an unknown key is a :class:`~ntk_theory.errors.ParameterError`
listing the valid ones.

Renderings: :meth:`Table.to_latex` (booktabs; the fragment's first line
``% requires: booktabs, graphicx, amssymb`` names exactly the packages it needs, numbers
are aligned on the decimal point and a table wider than the text is scaled to
``\\linewidth``; ``standalone=True`` gives a complete document that ``pdflatex``
compiles with exactly those packages), :meth:`Table.to_markdown`, :meth:`Table.to_text` and
:meth:`Table.to_html` (which the notebook helpers of :mod:`ntk_theory.display` use).

Number formats (``digits`` significant digits everywhere):

* ``auto`` — like ``%g``: positional for exponents −4 … digits−1, otherwise
  scientific; trailing zeros dropped;
* ``fixed`` — always positional (``0.0000123``), exactly ``digits`` significant digits;
* ``sci`` — always ``m\\times10^{e}``, exactly ``digits`` significant digits.

``±inf`` renders as ``\\infty`` (``inf`` in text, ``∞`` in HTML); a NaN (never
expected in a result) as ``--``; no ``siunitx`` is needed.
Rounding is correct rounding of the exact value (binary float or mpmath number)
to ``digits`` significant digits, half to even.

Captions are text: outside ``$…$`` pairs the LaTeX specials ``\\ & % $ # _ { } ~ ^``
are escaped; inside a ``$…$`` pair the math is kept verbatim (an unpaired ``$`` is
escaped).  Labels may use letters, digits and ``: _ . - + /``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import mpmath as mp

from .errors import ParameterError

__all__ = [
    "NUMBER_STYLES",
    "NumberFormat",
    "Column",
    "Table",
    "latex_escape",
    "latex_text",
    "latex_number",
    "plain_number",
    "booktabs_table",
    "MOMENTS_COLUMNS",
    "COEFFICIENTS_COLUMNS",
    "COMPRESSION_COLUMNS",
    "moments_table",
    "coefficients_table",
    "compression_table",
    "standalone_document",
    "required_packages",
    "decimal_aligned",
    "select_columns",
    "check_label",
]

#: The number styles of :class:`NumberFormat`.
NUMBER_STYLES = ("auto", "fixed", "sci")

_MAX_DIGITS = 50


# --------------------------------------------------------------------------- #
# Text and numbers
# --------------------------------------------------------------------------- #
def latex_escape(text: str) -> str:
    """Escape every LaTeX special character of ``text`` for a text cell."""
    repl = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
            "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return re.sub(r"[\\&%$#_{}~^]", lambda m: repl[m.group()], text)


def split_math(text: str) -> list[tuple[str, bool]]:
    """``text`` as ``(segment, is_math)`` pieces: ``$…$`` pairs are math, the rest is text.

    With an odd number of ``$`` the last one is unpaired and belongs to the text.
    """
    parts = text.split("$")
    if len(parts) % 2 == 0:  # odd number of '$': the last one is literal
        parts = parts[:-2] + [parts[-2] + "$" + parts[-1]]
    return [(p, i % 2 == 1) for i, p in enumerate(parts) if p]


def latex_text(text: str) -> str:
    """A caption for LaTeX: text escaped, ``$…$`` math pairs kept verbatim."""
    return "".join(f"${p}$" if is_math else latex_escape(p) for p, is_math in split_math(text))


@dataclass(frozen=True)
class NumberFormat:
    """How numbers are written: ``digits`` significant digits in ``style`` (see module doc).

    Raises
    ------
    ParameterError
        ``digits`` outside 1 … 50 or an unknown ``style``.
    """

    digits: int = 6
    style: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.digits, bool) or not isinstance(self.digits, int) or not 1 <= self.digits <= _MAX_DIGITS:
            raise ParameterError(f"digits must be an integer in 1..{_MAX_DIGITS}, got {self.digits!r}")
        if self.style not in NUMBER_STYLES:
            raise ParameterError(f"unknown number format {self.style!r}; valid: {', '.join(NUMBER_STYLES)}")

    def parts(self, v: Any) -> tuple[str, str, int | None]:
        """``(sign, mantissa, exponent)``: ``exponent`` None for positional notation.

        Infinities give mantissa ``"inf"``; NaN gives ``"nan"``.
        """
        if hasattr(v, "_mpf_") and not isinstance(v, mp.mpf):  # mpmath constants (mp.pi)
            v = mp.mpf(v)
        if isinstance(v, mp.mpf):
            if mp.isinf(v):
                return ("-" if v < 0 else "", "inf", None)
            if mp.isnan(v):
                return ("", "nan", None)
            # v = (−1)^s · man · 2^exp exactly; the string constructor makes it an exact
            # Decimal (man · 5^−exp · 10^exp when exp < 0), rounded once below
            s, man, exp, _ = v._mpf_
            digits_int = man * 2**exp if exp >= 0 else man * 5**-exp
            dec = Decimal(f"{'-' if s else ''}{digits_int}E{min(exp, 0)}")
        else:
            f = float(v)
            if math.isinf(f):
                return ("-" if f < 0 else "", "inf", None)
            if math.isnan(f):
                return ("", "nan", None)
            dec = Decimal(f)  # the exact binary value: one correct rounding below
        sign = "-" if dec.is_signed() and dec != 0 else ""
        dec = dec.copy_abs()  # abs() would round to the context precision (28 digits)
        if dec == 0:
            return ("", "0", None)
        d = self.digits
        mant, exp_text = format(dec, f".{d - 1}e").split("e")
        e = int(exp_text)
        digits_str = mant.replace(".", "")
        strip = self.style == "auto"
        if self.style == "sci" or (self.style == "auto" and not -4 <= e < d):
            m = digits_str[0] + ("." + digits_str[1:] if d > 1 else "")
            if strip and "." in m:
                m = m.rstrip("0").rstrip(".")
            return (sign, m, e)
        # positional: digits_str × 10^(e − d + 1)
        if e >= d - 1:
            m = digits_str + "0" * (e - d + 1)
        elif e >= 0:
            m = digits_str[: e + 1] + "." + digits_str[e + 1:]
        else:
            m = "0." + "0" * (-e - 1) + digits_str
        if strip and "." in m:
            m = m.rstrip("0").rstrip(".")
        return (sign, m, None)

    def latex(self, v: Any) -> str:
        """Math-mode LaTeX: ``$0.398942$``, ``$1.2\\times10^{-5}$``, ``$\\infty$``."""
        sign, m, e = self.parts(v)
        if m == "inf":
            return f"${sign}\\infty$"
        if m == "nan":
            return "--"
        body = m if e is None else rf"{m}\times10^{{{e}}}"
        return f"${sign}{body}$"

    def text(self, v: Any) -> str:
        """Plain text: ``0.398942``, ``1.2e-05``, ``inf``."""
        sign, m, e = self.parts(v)
        if m == "nan":
            return "--"
        return sign + m + ("" if e is None else f"e{e:+03d}")

    def html(self, v: Any) -> str:
        """HTML: ``1.2×10<sup>−5</sup>``, ``∞``, a true minus sign."""
        sign, m, e = self.parts(v)
        minus = "\u2212" if sign else ""
        if m == "inf":
            return minus + "\u221e"
        if m == "nan":
            return "\u2013"
        if e is None:
            return minus + m
        es = f"\u2212{-e}" if e < 0 else str(e)
        return f"{minus}{m}\u00d710<sup>{es}</sup>"


def latex_number(v: float | mp.mpf, digits: int = 6, style: str = "auto") -> str:
    """A number as math-mode LaTeX (see :class:`NumberFormat`)."""
    return NumberFormat(digits, style).latex(v)


def plain_number(v: float | mp.mpf, digits: int = 6, style: str = "auto") -> str:
    """A number as plain text (see :class:`NumberFormat`)."""
    return NumberFormat(digits, style).text(v)


# --------------------------------------------------------------------------- #
# The table model
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class Column:
    """One column: its key, three headers and how its cells are written.

    ``kind`` is ``"number"`` (floats or mpmath numbers, formatted), ``"int"``,
    ``"code"`` (text in typewriter font, e.g. activation specifications) or
    ``"params"`` (a mapping name → number or tuple of numbers).
    """

    key: str
    latex: str
    text: str
    html: str
    kind: str = "number"
    description: str = ""

    @property
    def align(self) -> str:
        return "l" if self.kind in ("code", "params", "text") else "r"


_BLANK = None  # a cell without a value (e.g. a residual the family does not have)


@dataclass(frozen=True)
class Table:
    """Columns, rows of raw values, caption, label and number format.

    ``rows[i][j]`` is the value of column ``columns[j]`` in row ``i`` (None: blank).
    """

    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]
    caption: str | None = None
    label: str | None = None
    fmt: NumberFormat = field(default_factory=NumberFormat)

    def __post_init__(self) -> None:
        for r in self.rows:
            if len(r) != len(self.columns):
                raise ParameterError(f"a row has {len(r)} cells for {len(self.columns)} columns")
        if self.label is not None:
            check_label(self.label)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.columns)

    def column(self, key: str) -> tuple[Any, ...]:
        """The raw values of the column ``key``."""
        j = self.keys.index(key)
        return tuple(r[j] for r in self.rows)

    # -- cells ---------------------------------------------------------------- #
    def _cell(self, col: Column, v: Any, how: str) -> str:
        if v is _BLANK:
            return ""
        num = getattr(self.fmt, how)
        if col.kind == "int":
            return str(int(v))
        if col.kind == "text":  # user-supplied row labels: text with $...$ math kept
            if how == "latex":
                return latex_text(str(v))
            return _html_escape(str(v)) if how == "html" else str(v)
        if col.kind == "code":
            if how == "latex":
                return r"\texttt{" + latex_escape(str(v)) + "}"
            return _html_escape(str(v)) if how == "html" else str(v)
        if col.kind == "params":
            items = []
            for k, x in v.items():
                if isinstance(x, (tuple, list)):
                    inner = [num(y) for y in x]
                    if how == "latex":
                        val = "$(" + ", ".join(s.strip("$") for s in inner) + ")$"
                    else:
                        val = "(" + ", ".join(inner) + ")"
                else:
                    val = num(x)
                if how == "latex":
                    items.append(r"\texttt{" + latex_escape(str(k)) + "}=" + val)
                elif how == "html":
                    items.append(f"{_html_escape(str(k))}={val}")
                else:
                    items.append(f"{k}={val}")
            return ", ".join(items)
        return num(v)

    def cells(self, how: str = "text") -> list[list[str]]:
        """Every cell rendered as ``how`` (``"latex"``, ``"text"`` or ``"html"``)."""
        return [[self._cell(c, v, how) for c, v in zip(self.columns, r)] for r in self.rows]

    # -- renderings ----------------------------------------------------------- #
    def to_latex(self, *, standalone: bool = False) -> str:
        """A booktabs ``table`` environment; ``standalone`` wraps it in a compilable document.

        The fragment starts with ``% requires: ...``, the packages it needs (exactly those:
        booktabs, graphicx for the fit to the text width, and amssymb when a header uses
        ``\\mathbb``).  Number columns are aligned on the decimal point (invisible
        ``\\phantom`` padding of the fraction and the exponent in right-aligned cells, no
        extra package); a table wider than ``\\linewidth`` is scaled down to it.
        """
        cells = self.cells("latex")
        for j, col in enumerate(self.columns):
            if col.kind == "number":
                aligned = decimal_aligned([r[j] for r in self.rows], self.fmt)
                for i, a in enumerate(aligned):
                    if a is not None:
                        cells[i][j] = a
        body = booktabs_table([c.latex for c in self.columns], cells,
                              caption=latex_text(self.caption) if self.caption else None,
                              label=self.label, align="".join(c.align for c in self.columns),
                              fit=True)
        body = f"% requires: {', '.join(required_packages(body))}\n" + body
        return standalone_document(body) if standalone else body

    def with_row_labels(self, labels: Sequence[str], header: str = "") -> Table:
        """The table with its first column replaced by user row labels (text, ``$...$`` math kept).

        Raises
        ------
        ParameterError
            Not one label per row.
        """
        labels = [str(l) for l in labels]
        if len(labels) != len(self.rows):
            raise ParameterError(f"needs {len(self.rows)} label(s), one per row, got {len(labels)}",
                                 option="labels")
        first = self.columns[0]
        col = Column("label", latex_text(header) if header else first.latex, header or first.text,
                     header or first.html, "text", "row label")
        rows = tuple((lab, *r[1:]) for lab, r in zip(labels, self.rows))
        return Table((col, *self.columns[1:]), rows, self.caption, self.label, self.fmt)

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown pipe table (caption as a first paragraph)."""
        def esc(s: str) -> str:
            return s.replace("|", r"\|")
        lines = [esc(self.caption), ""] if self.caption else []
        lines.append("| " + " | ".join(esc(c.text) for c in self.columns) + " |")
        lines.append("|" + "|".join(":---" if c.align == "l" else "---:" for c in self.columns) + "|")
        def cell(col: Column, text: str) -> str:
            return f"`{esc(text)}`" if col.kind == "code" and text and "`" not in text else esc(text)
        lines += ["| " + " | ".join(cell(c, t) for c, t in zip(self.columns, r)) + " |"
                  for r in self.cells("text")]
        return "\n".join(lines)

    def to_text(self, *, caption: bool = True, number_width: int = 0) -> str:
        """Aligned plain-text columns, two spaces apart (caption on the first line).

        ``caption=False`` leaves the caption out; number columns are at least
        ``number_width`` characters wide (so that tables of different runs line up).
        """
        cells = self.cells("text")
        heads = [c.text for c in self.columns]
        widths = [max([len(h), number_width if c.kind == "number" else 0] + [len(r[j]) for r in cells])
                  for j, (h, c) in enumerate(zip(heads, self.columns))]

        def line(vals: Sequence[str]) -> str:
            return "  ".join(v.ljust(w) if c.align == "l" else v.rjust(w)
                             for v, w, c in zip(vals, widths, self.columns)).rstrip()
        out = [self.caption] if self.caption and caption else []
        return "\n".join(out + [line(heads)] + [line(r) for r in cells])

    def to_html(self) -> str:
        """A booktabs-like HTML ``<table>`` (top, mid and bottom rules).

        Headers come from :attr:`Column.html` (trusted markup of this package: Greek
        letters, ``<sub>``/``<sup>``); cells from :meth:`cells` with ``"html"``, which
        escapes every text; the caption keeps ``$…$`` pairs for MathJax and escapes the
        rest; the LaTeX label becomes the table's ``id``.
        """
        cells = self.cells("html")
        ident = f' id="{_html_escape(self.label)}"' if self.label else ""
        out = [f'<table class="ntk-theory-table"{ident} style="{_HTML_STYLE}">']
        if self.caption:
            caption = "".join(_html_escape(f"${p}$" if is_math else p, quote=False)
                              for p, is_math in split_math(self.caption))
            out.append(f"<caption>{caption}</caption>")
        ths = "".join(f'<th style="text-align:{"left" if c.align == "l" else "right"};padding:2px 8px;'
                      f'border-bottom:1px solid currentColor">{c.html}</th>' for c in self.columns)
        out.append(f"<thead><tr>{ths}</tr></thead><tbody>")
        for row in cells:
            tds = "".join(f'<td style="text-align:{"left" if c.align == "l" else "right"};padding:2px 8px">'
                          + (f"<code>{v}</code>" if c.kind == "code" and v else v) + "</td>"
                          for c, v in zip(self.columns, row))
            out.append(f"<tr>{tds}</tr>")
        out.append("</tbody></table>")
        return "".join(out)

    def _repr_html_(self) -> str:
        return self.to_html()

    def __str__(self) -> str:
        return self.to_text()


def check_label(label: str) -> str:
    """``label`` if it is a safe ``\\label`` key (letters, digits and ``: _ . - + /``).

    Raises
    ------
    ParameterError
        Any other character (spaces, braces, ``#``, ``%``, backslashes ...) or an empty label.
    """
    if not re.fullmatch(r"[A-Za-z0-9:_.+/-]+", label):
        raise ParameterError(f"label {label!r} may use only letters, digits and ': _ . - + /'")
    return label


def _html_escape(text: str, quote: bool = True) -> str:
    import html

    return html.escape(text, quote=quote)


#: The rules of :meth:`Table.to_html` (booktabs look: thick top and bottom rules).
_HTML_STYLE = ("border-collapse:collapse;border-top:2px solid currentColor;"
               "border-bottom:2px solid currentColor")


def booktabs_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, caption: str | None = None,
                   label: str | None = None, align: str | None = None, fit: bool = False) -> str:
    """A ``table`` environment with ``\\toprule``/``\\midrule``/``\\bottomrule`` from LaTeX cells.

    ``caption`` is inserted as given (already LaTeX); :meth:`Table.to_latex` escapes it.
    With ``fit`` the tabular is set in a box first and scaled down to ``\\linewidth``
    when it is wider (``\\resizebox`` of graphicx); narrower tables keep their size.
    """
    align = align or ("l" + "r" * (len(headers) - 1))
    lines = [r"\begin{table}[ht]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{caption}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    if fit:
        lines.append(r"\sbox0{%")
    lines += [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(headers) + r" \\", r"\midrule"]
    lines += [" & ".join(r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if fit:
        lines += [r"}%", r"\ifdim\wd0>\linewidth\resizebox{\linewidth}{!}{\usebox0}\else\usebox0\fi"]
    lines += [r"\end{table}"]
    return "\n".join(lines)


def decimal_aligned(values: Sequence[Any], fmt: NumberFormat) -> list[str | None]:
    """Math-mode cells of one number column padded so the decimal points line up.

    Right-aligned cells are padded on the right with ``\\phantom`` copies of the
    missing fraction digits, the missing ``.``, and the missing exponent characters
    (digits and the minus sign), so every cell has the same width right of its decimal
    point (digits are equally wide in TeX's fonts).  ``None`` (blank) stays ``None``.
    """
    parts = [None if v is None else fmt.parts(v) for v in values]
    nums = [p for p in parts if p is not None and p[1] not in ("inf", "nan")]
    fr = [p[1].partition(".")[2] for p in nums]
    F = max((len(f) for f in fr), default=0)
    exps = [str(p[2]) for p in nums if p[2] is not None]
    has_exp = bool(exps)
    max_minus = max((e.count("-") for e in exps), default=0)
    max_dig = max((len(e.lstrip("-")) for e in exps), default=0)
    out: list[str | None] = []
    for p in parts:
        if p is None:
            out.append(None)
            continue
        sign, m, e = p
        if m == "nan":
            out.append("--")
            continue
        if m == "inf":
            intpart, frac = r"\infty", ""
        else:
            intpart, _, frac = m.partition(".")
        pad = ("." if not frac and F else "") + "0" * (F - len(frac))
        body = sign + intpart + ("." + frac if frac else "")
        if pad:
            body += rf"\phantom{{{pad}}}"
        if e is not None:
            es = str(e)
            epad = "-" * (max_minus - es.count("-")) + "0" * (max_dig - len(es.lstrip("-")))
            body += rf"\times10^{{{es}" + (rf"\phantom{{{epad}}}" if epad else "") + "}"
        elif has_exp:
            body += rf"\phantom{{\times10^{{{'-' * max_minus + '0' * max_dig}}}}}"
        out.append(f"${body}$")
    return out


#: packages a fragment may need, and a command that reveals each
_PACKAGE_MARKERS = (("booktabs", r"\toprule"), ("graphicx", r"\resizebox"), ("amssymb", r"\mathbb"),
                    ("amsmath", r"\text{"), ("amsmath", r"\operatorname"), ("amsmath", r"\tfrac"))


def required_packages(tex: str) -> list[str]:
    """The LaTeX packages ``tex`` needs, in a fixed order (those of :data:`_PACKAGE_MARKERS` it uses)."""
    out: list[str] = []
    for pkg, marker in _PACKAGE_MARKERS:
        if marker in tex and pkg not in out:
            out.append(pkg)
    return out


def standalone_document(body: str) -> str:
    """``body`` in a minimal ``article`` document loading exactly the packages it declares.

    The packages are read from the fragment's ``% requires: ...`` first line (a body
    without one gets those :func:`required_packages` finds in it).
    """
    first = body.lstrip().split("\n", 1)[0]
    if first.startswith("% requires:"):
        pkgs = [p.strip() for p in first.split(":", 1)[1].split(",") if p.strip()]
    else:
        pkgs = required_packages(body)
    use = "".join(f"\\usepackage{{{p}}}\n" for p in pkgs)
    return ("\\documentclass{article}\n" + use + "\\pagestyle{empty}\n"
            "\\begin{document}\n" + body + "\n\\end{document}\n")


def select_columns(available: Mapping[str, Column], columns: Sequence[str] | str | None,
                   default: Sequence[str], what: str) -> tuple[Column, ...]:
    """The columns named by ``columns`` (keys or a comma-separated string), else ``default``.

    Raises
    ------
    ParameterError
        An unknown key (the message lists the valid ones), a key given twice, or none.
    """
    if columns is None:
        keys = list(default)
    elif isinstance(columns, str):
        keys = [k.strip() for k in columns.split(",") if k.strip()]
    else:
        keys = list(columns)
    if not keys:
        raise ParameterError(f"no {what} column selected; valid: {', '.join(available)}")
    bad = [k for k in keys if k not in available]
    if bad:
        raise ParameterError(f"unknown {what} column(s) {', '.join(map(repr, bad))}; "
                             f"valid: {', '.join(available)}")
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise ParameterError(f"{what} column(s) {', '.join(map(repr, dup))} selected twice")
    return tuple(available[k] for k in keys)


def _cols(*cols: Column) -> dict[str, Column]:
    return {c.key: c for c in cols}


# --------------------------------------------------------------------------- #
# Moments (docs/reference.rst §1)
# --------------------------------------------------------------------------- #
_MOMENT_OF = {"m0": "E[s]", "m1": "E[s']", "m2": "E[s'']", "v0": "E[s^2]", "v1": "E[s'^2]",
              "w2": "E[(s^2)'']"}

#: Column keys of :func:`moments_table`.
MOMENTS_COLUMNS = _cols(
    Column("activation", "Activation", "activation", "activation", "code", "the activation's specification"),
    Column("tau", r"$\tau$", "tau", "\u03c4", "number", "input scale τ"),
    Column("m0", r"$\mathbb{E}[\sigma]$", "E[s]", "E[\u03c3]", "number", "E[σ(τξ)]"),
    Column("m1", r"$\mathbb{E}[\sigma']$", "E[s']", "E[\u03c3\u2032]", "number", "E[σ'(τξ)]"),
    Column("m2", r"$\mathbb{E}[\sigma'']$", "E[s'']", "E[\u03c3\u2033]", "number", "E[σ''(τξ)]"),
    Column("v0", r"$\mathbb{E}[\sigma^2]$", "E[s^2]", "E[\u03c3<sup>2</sup>]", "number", "E[σ(τξ)²]"),
    Column("v1", r"$\mathbb{E}[\sigma'^2]$", "E[s'^2]", "E[\u03c3\u2032<sup>2</sup>]", "number",
           "E[σ'(τξ)²] (∞ with a jump)"),
    Column("w2", r"$\mathbb{E}[(\sigma^2)'']$", "E[(s^2)'']", "E[(\u03c3<sup>2</sup>)\u2033]", "number",
           "E[(σ²)''(τξ)]"),
    Column("var", r"$\operatorname{Var}\sigma$", "Var s", "Var \u03c3", "number", "Var σ(τξ)"),
    Column("w2_bar", r"$\mathbb{E}[(\bar\sigma^2)'']$", "w2_bar", "E[(\u03c3\u0304<sup>2</sup>)\u2033]",
           "number", "E[(σ̄²)''] = E[(σ²)''] − 2 E[σ] E[σ'']"),
)


def moments_table(results: Sequence[Any], digits: int = 6, *, columns: Sequence[str] | str | None = None,
                  style: str = "auto", caption: str | None = None, label: str | None = None) -> Table:
    """One row per :class:`~ntk_theory.moments.GaussianMoments` (docs/reference.rst §1).

    Parameters
    ----------
    results : sequence of GaussianMoments
    digits, style
        The :class:`NumberFormat`.
    columns : list of keys or comma-separated string, optional
        Keys of :data:`MOMENTS_COLUMNS`; default ``activation`` (``tau`` when the
        scales differ) and the six moments.
    caption, label : str, optional
        Default caption: "Gaussian moments … at $\\tau = …$".

    Values are the moments at full precision (mpmath numbers); ``var`` and
    ``w2_bar`` are ``E[s^2] − E[s]²`` and ``E[(s^2)''] − 2 E[s] E[s'']`` in mpmath
    (for centered results ``E[s^2]`` and ``E[(s^2)'']``).
    """
    if not results:
        raise ParameterError("moments_table needs at least one result")
    taus = sorted({r.tau for r in results})
    default = ["activation"] + (["tau"] if len(taus) > 1 else []) + list(_MOMENT_OF)
    cols = select_columns(MOMENTS_COLUMNS, columns, default, "moments")
    if caption is None:
        centered = any(r.centered for r in results)
        caption = ("Gaussian moments" + (" of the centered activations" if centered else "")
                   + f" at $\\tau = {', '.join(f'{t:g}' for t in taus)}$")

    def value(r: Any, key: str) -> Any:
        if key == "activation":
            return r.activation.spec
        if key == "tau":
            return r.tau
        if key in _MOMENT_OF:
            return r[_MOMENT_OF[key]].value
        # var and w2_bar without cancellation (closed forms certified by GaussianMoments)
        return r.centered_moments["E[s^2]" if key == "var" else "E[(s^2)'']"].value
    rows = tuple(tuple(value(r, c.key) for c in cols) for r in results)
    return Table(cols, rows, caption, label, NumberFormat(digits, style))


# --------------------------------------------------------------------------- #
# Coefficients (docs/reference.rst §4)
# --------------------------------------------------------------------------- #
#: Column keys of :func:`coefficients_table`.
COEFFICIENTS_COLUMNS = _cols(
    Column("layer", r"$\ell$", "layer", "\u2113", "int", "layer index ℓ"),
    Column("activation", r"$\sigma_\ell$", "activation", "\u03c3<sub>\u2113</sub>", "code", "activation σ_ℓ"),
    Column("tau_in", r"$\tau_{\ell-1}$", "tau_in", "\u03c4<sub>\u2113\u22121</sub>", "number",
           "input scale τ_{ℓ−1}"),
    Column("tau", r"$\tau_\ell$", "tau", "\u03c4<sub>\u2113</sub>", "number", "scale τ_ℓ"),
    *(Column(f"alpha{k}", rf"$\alpha_{{\ell,{k}}}$", f"alpha{k}", f"\u03b1<sub>\u2113,{k}</sub>", "number",
             f"α_ℓ,{k}") for k in range(1, 5)),
    *(Column(f"beta{k}", rf"$\beta_{{\ell,{k}}}$", f"beta{k}", f"\u03b2<sub>\u2113,{k}</sub>", "number",
             f"β_ℓ,{k}") for k in range(1, 4)),
    Column("kappa", r"$\kappa_\ell$", "kappa", "\u03ba<sub>\u2113</sub>", "number", "κ_ℓ (∞ after a staircase)"),
    Column("centering", r"$\mathbb{E}[\sigma_\ell]$", "centering", "E[\u03c3<sub>\u2113</sub>]", "number",
           "centering constant E[σ_ℓ(τ_{ℓ−1}ξ)]"),
)

_COEF_DEFAULT = ("layer", "activation", "tau", "alpha1", "alpha2", "alpha3", "alpha4",
                 "beta1", "beta2", "beta3", "kappa")


def coefficients_table(res: Any, digits: int = 6, *, columns: Sequence[str] | str | None = None,
                       style: str = "auto", caption: str | None = None, label: str | None = None) -> Table:
    """One row per layer of a :class:`~ntk_theory.coefficients.NetworkCoefficients` (docs/reference.rst §4).

    ``columns``: keys of :data:`COEFFICIENTS_COLUMNS` (default: layer, activation,
    τ_ℓ, α_ℓ,1..4, β_ℓ,1..3, κ_ℓ).
    """
    cols = select_columns(COEFFICIENTS_COLUMNS, columns, _COEF_DEFAULT, "coefficients")
    if caption is None:
        caption = f"Coefficients of the equivalence theorems at $\\tau_0 = {res.tau0:g}$"

    def value(lay: Any, key: str) -> Any:
        if key.startswith("alpha"):
            return lay.alpha[int(key[5:]) - 1]
        if key.startswith("beta"):
            return lay.beta[int(key[4:]) - 1]
        if key == "activation":
            return lay.activation.spec
        return getattr(lay, key)
    rows = tuple(tuple(value(lay, c.key) for c in cols) for lay in res.layers)
    return Table(cols, rows, caption, label, NumberFormat(digits, style))


# --------------------------------------------------------------------------- #
# Compression plans (docs/reference.rst §6)
# --------------------------------------------------------------------------- #
_RESIDUAL_OF = {"res_m1sq": "m1^2", "res_m2sq": "m2^2", "res_w2bar": "w2_bar"}

#: Column keys of :func:`compression_table`.
COMPRESSION_COLUMNS = _cols(
    Column("layer", r"$\ell$", "layer", "\u2113", "int", "layer index ℓ"),
    Column("dense", "Dense", "dense", "dense", "code", "the dense activation σ_ℓ"),
    Column("family", "Family", "family", "family", "code", "the compressed family"),
    Column("params", "Parameters", "params", "parameters", "params",
           "the compressed activation's parameters (absolute units)"),
    Column("tau_in", r"$\tau'_{\ell-1}$", "tau'_in", "\u03c4\u2032<sub>\u2113\u22121</sub>", "number",
           "compressed input scale τ'_{ℓ−1} at which the moments are matched"),
    Column("tau_dense", r"$\tau_\ell$", "tau", "\u03c4<sub>\u2113</sub>", "number", "dense scale τ_ℓ"),
    Column("tau_compressed", r"$\tau'_\ell$", "tau'", "\u03c4\u2032<sub>\u2113</sub>", "number",
           "compressed scale τ'_ℓ"),
    Column("variance", r"$\tau'^2_\ell$", "variance", "\u03c4\u2032<sub>\u2113</sub><sup>2</sup>", "number",
           "variance of the compressed layer's output, τ'_ℓ²"),
    Column("mean", r"$\mathbb{E}[\sigma'_\ell]$", "mean", "E[\u03c3\u2032<sub>\u2113</sub>]", "number",
           "centering constant of the compressed layer"),
    Column("res_m1sq", r"$r_{m_1^2}$", "res m1^2", "r<sub>m1\u00b2</sub>", "number",
           "relative residual of the m1² equation"),
    Column("res_m2sq", r"$r_{m_2^2}$", "res m2^2", "r<sub>m2\u00b2</sub>", "number",
           "relative residual of the m2² equation"),
    Column("res_w2bar", r"$r_{\bar w_2}$", "res w2_bar", "r<sub>w\u0304\u2082</sub>", "number",
           "relative residual of the w̄2 equation"),
    Column("max_res", r"$\max r$", "max res", "max r", "number", "largest relative residual"),
    Column("delta", r"$\tau'^2_\ell-\tau^2_\ell$", "tau'^2-tau^2", "\u03c4\u2032<sup>2</sup>\u2212\u03c4<sup>2</sup>",
           "number", "τ'_ℓ² − τ_ℓ²; at the last layer this is δ"),
)

_COMP_DEFAULT = ("layer", "dense", "family", "params", "tau_in", "max_res")


def compression_table(res: Any, digits: int = 6, *, columns: Sequence[str] | str | None = None,
                      style: str = "auto", caption: str | None = None, label: str | None = None) -> Table:
    """One row per layer of a :class:`~ntk_theory.compress.CompressionResult` (docs/reference.rst §6).

    ``columns``: keys of :data:`COMPRESSION_COLUMNS` (default: layer, dense
    activation, family, parameters, τ'_{ℓ−1}, largest residual).  The default
    caption states δ and the ridge shift.
    """
    cols = select_columns(COMPRESSION_COLUMNS, columns, _COMP_DEFAULT, "compression")
    if caption is None:
        fmt = NumberFormat(min(digits, 6), style)
        caption = (f"NTK-LC compression at $\\tau_0 = {res.tau_dense[0]:g}$: "
                   f"$\\delta = \\tau'^2_L - \\tau^2_L = {fmt.latex(res.delta).strip('$')}$, "
                   f"ridge shift ${fmt.latex(res.ridge_shift).strip('$')}$")

    def value(i: int, key: str) -> Any:
        f = res.layers[i]
        if key == "layer":
            return i + 1
        if key == "dense":
            return res.activations[i]
        if key == "family":
            return f.family
        if key == "params":
            return dict(f.params)
        if key == "tau_in":
            return f.tau_in
        if key == "tau_dense":
            return res.tau_dense[i + 1]
        if key == "tau_compressed":
            return res.tau_compressed[i + 1]
        if key == "variance":
            return f.variance
        if key == "mean":
            return f.mean
        if key == "max_res":
            return f.max_rel_residual
        if key == "delta":
            return res.tau_compressed[i + 1] ** 2 - res.tau_dense[i + 1] ** 2
        return f.residuals.get(_RESIDUAL_OF[key], _BLANK)
    rows = tuple(tuple(value(i, c.key) for c in cols) for i in range(len(res.layers)))
    return Table(cols, rows, caption, label, NumberFormat(digits, style))
