"""Booktabs LaTeX tables shared by every ``--latex`` output.

Tables need ``\\usepackage{booktabs}`` and ``\\usepackage{amsmath}``.  Numbers are
formatted with :func:`latex_number` (``1.2\\times10^{-5}``, ``\\infty``).
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import mpmath as mp

__all__ = ["latex_number", "latex_escape", "booktabs_table", "moments_table"]

_MOMENT_HEADERS = {
    "E[s]": r"$\mathbb{E}[\sigma]$",
    "E[s']": r"$\mathbb{E}[\sigma']$",
    "E[s'']": r"$\mathbb{E}[\sigma'']$",
    "E[s^2]": r"$\mathbb{E}[\sigma^2]$",
    "E[s'^2]": r"$\mathbb{E}[\sigma'^2]$",
    "E[(s^2)'']": r"$\mathbb{E}[(\sigma^2)'']$",
}


def latex_escape(text: str) -> str:
    """Escape text for a LaTeX text cell."""
    repl = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
            "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return re.sub(r"[\\&%$#_{}~^]", lambda m: repl[m.group()], text)


def latex_number(v: float | mp.mpf, digits: int = 6) -> str:
    """A number as math-mode LaTeX: ``$0.398942$``, ``$1.2\\times10^{-5}$``, ``$\\infty$``."""
    if isinstance(v, mp.mpf):
        if v == mp.inf:
            return r"$\infty$"
        if v == -mp.inf:
            return r"$-\infty$"
        text = mp.nstr(v, digits, min_fixed=-4, max_fixed=6)
    else:
        f = float(v)
        if math.isinf(f):
            return r"$\infty$" if f > 0 else r"$-\infty$"
        text = f"{f:.{digits}g}"
    m = re.fullmatch(r"(-?[0-9.]+)e([+-]?)0*([0-9]+)", text)
    if m:
        sign = "-" if m.group(2) == "-" else ""
        text = rf"{m.group(1)}\times10^{{{sign}{m.group(3)}}}"
    return f"${text}$"


def booktabs_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, caption: str | None = None,
                   label: str | None = None, align: str | None = None) -> str:
    """A complete ``table`` environment with ``\\toprule``/``\\midrule``/``\\bottomrule``."""
    align = align or ("l" + "r" * (len(headers) - 1))
    lines = [r"\begin{table}[ht]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{caption}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [rf"\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(headers) + r" \\", r"\midrule"]
    lines += [" & ".join(r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines)


def moments_table(results: Sequence["GaussianMoments"], digits: int = 6, *,  # noqa: F821
                  caption: str | None = None, label: str | None = None) -> str:
    """One row per activation, one column per moment (booktabs)."""
    if caption is None and results:
        taus = sorted({r.tau for r in results})
        centered = any(r.centered for r in results)
        caption = ("Gaussian moments" + (" of the centered activations" if centered else "")
                   + rf" at $\tau = {', '.join(f'{t:g}' for t in taus)}$")
    headers = ["Activation"] + ([r"$\tau$"] if len({r.tau for r in results}) > 1 else []) + \
        [_MOMENT_HEADERS[m.key] for m in results[0].moments] if results else ["Activation"]
    rows = []
    for r in results:
        row = [r"\texttt{" + latex_escape(r.activation.spec) + "}"]
        if len({q.tau for q in results}) > 1:
            row.append(f"${r.tau:g}$")
        row += [latex_number(m.value, digits) for m in r.moments]
        rows.append(row)
    return booktabs_table(headers, rows, caption=caption, label=label)
