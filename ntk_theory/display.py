"""Notebook rendering: HTML tables of moments, coefficients and compression plans.

Built on the :class:`~ntk_theory.latex.Table` model of :mod:`ntk_theory.latex`
(the same columns, values and number formats as the LaTeX tables), so a notebook
shows exactly the numbers a paper table would.  Every text (activation
specifications, parameter names, captions) is HTML-escaped; ``$…$`` pairs in a
caption are kept for MathJax, which Jupyter applies to HTML output.

* :func:`table_html` — any :class:`~ntk_theory.latex.Table`;
* :func:`moments_html` — a :class:`~ntk_theory.moments.GaussianMoments` or a list of
  them (docs/reference.rst §1);
* :func:`coefficients_html` — a :class:`~ntk_theory.coefficients.NetworkCoefficients`
  (docs/reference.rst §4);
* :func:`compression_html` — a :class:`~ntk_theory.compress.CompressionResult`
  (docs/reference.rst §6).

Result classes delegate their ``_repr_html_`` to these functions.
"""

from __future__ import annotations

import html
from typing import Any, Sequence

from .latex import Table, coefficients_table, compression_table, moments_table, split_math

__all__ = ["table_html", "moments_html", "coefficients_html", "compression_html"]

_STYLE = ("border-collapse:collapse;border-top:2px solid currentColor;"
          "border-bottom:2px solid currentColor")


def _caption_html(text: str) -> str:
    return "".join(html.escape(f"${p}$" if is_math else p, quote=False) for p, is_math in split_math(text))


def table_html(table: Table) -> str:
    """A booktabs-like HTML ``<table>`` (top, mid and bottom rules) of ``table``.

    Headers come from :attr:`Column.html` (trusted markup of this package: Greek
    letters, ``<sub>``/``<sup>``); cells from :meth:`Table.cells` with ``"html"``,
    which escapes every text.
    """
    cells = table.cells("html")
    ident = f' id="{html.escape(table.label)}"' if table.label else ""  # the LaTeX label as anchor
    out = [f'<table class="ntk-theory-table"{ident} style="{_STYLE}">']
    if table.caption:
        out.append(f"<caption>{_caption_html(table.caption)}</caption>")
    ths = "".join(f'<th style="text-align:{"left" if c.align == "l" else "right"};padding:2px 8px;'
                  f'border-bottom:1px solid currentColor">{c.html}</th>' for c in table.columns)
    out.append(f"<thead><tr>{ths}</tr></thead><tbody>")
    for row in cells:
        tds = "".join(f'<td style="text-align:{"left" if c.align == "l" else "right"};padding:2px 8px">'
                      + (f"<code>{v}</code>" if c.kind == "code" and v else v) + "</td>"
                      for c, v in zip(table.columns, row))
        out.append(f"<tr>{tds}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def moments_html(results: Any, digits: int = 6, **options: Any) -> str:
    """HTML table of one :class:`~ntk_theory.moments.GaussianMoments` or a sequence of them.

    ``options`` are those of :func:`~ntk_theory.latex.moments_table` (``columns``,
    ``style``, ``caption``).
    """
    seq: Sequence[Any] = results if isinstance(results, (list, tuple)) else [results]
    return table_html(moments_table(seq, digits, **options))


def coefficients_html(res: Any, digits: int = 6, **options: Any) -> str:
    """HTML table of a :class:`~ntk_theory.coefficients.NetworkCoefficients` (one row per layer)."""
    return table_html(coefficients_table(res, digits, **options))


def compression_html(res: Any, digits: int = 6, **options: Any) -> str:
    """HTML table of a :class:`~ntk_theory.compress.CompressionResult` (one row per layer)."""
    return table_html(compression_table(res, digits, **options))
