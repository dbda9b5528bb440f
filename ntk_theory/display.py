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

from collections.abc import Sequence
from typing import Any

from .latex import Table, coefficients_table, compression_table, moments_table

__all__ = ["table_html", "moments_html", "coefficients_html", "compression_html"]


def table_html(table: Table) -> str:
    """A booktabs-like HTML ``<table>`` of ``table`` (:meth:`~ntk_theory.latex.Table.to_html`)."""
    return table.to_html()


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
