"""Figures for the spectral comparison (docs/reference.rst §7 Experiment 1), matplotlib Agg only.

Two figures: overlaid eigenvalue histograms of several kernels (theory / exact /
empirical) and their leading eigenvectors plotted against the sample index (samples
sorted by class, so class structure shows up as steps).  Figures are built with
:class:`matplotlib.figure.Figure` and an Agg canvas, which never touches the global
pyplot state or an interactive backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .errors import ParameterError
from .io import atomic_write, check_output_path

__all__ = ["new_figure", "spectra_figure", "eigenvector_figure", "comparison_figure", "save_figure"]

#: the figure formats :func:`save_figure` writes
FIGURE_EXTENSIONS = (".png", ".pdf", ".svg")

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def new_figure(width: float, height: float):
    """An empty matplotlib ``Figure`` of ``width`` × ``height`` inches (constrained layout).

    Drawn on the Agg canvas directly — no pyplot, so no global figure registry and no GUI
    backend; save it with :func:`save_figure`.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is a core dependency
        raise ParameterError("plots need matplotlib: pip install matplotlib") from None
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _hist(ax, spectra: Mapping[str, np.ndarray], bins: int, clip_quantile: float) -> None:
    allv = np.concatenate([np.asarray(v, float) for v in spectra.values()])
    hi = float(np.quantile(allv, clip_quantile)) if clip_quantile < 1 else float(allv.max())
    lo = float(allv.min())
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    for (name, lam), col in zip(spectra.items(), _COLORS):
        lam = np.asarray(lam, float)
        ax.hist(lam[lam <= edges[-1]], bins=edges, density=True, histtype="step", lw=1.6,
                color=col, label=f"{name} ({int(np.sum(lam > edges[-1]))} above range)")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)


def spectra_figure(spectra: Mapping[str, np.ndarray], *, bins: int = 60, clip_quantile: float = 0.99,
                   title: str | None = None):
    """Overlaid eigenvalue histograms (the top ``1 − clip_quantile`` is left out of the range
    so that isolated spikes do not squash the bulk; their count is in the legend)."""
    if not spectra:
        raise ParameterError("need at least one spectrum")
    fig = new_figure(6.0, 4.0)
    ax = fig.add_subplot()
    _hist(ax, spectra, bins, clip_quantile)
    if title:
        ax.set_title(title)
    return fig


def _signed(vectors: Mapping[str, np.ndarray], j: int) -> dict[str, np.ndarray]:
    """Column ``j`` of each set, signs aligned with the first set's (eigenvectors have no sign)."""
    out: dict[str, np.ndarray] = {}
    ref = None
    for name, U in vectors.items():
        u = np.asarray(U, float)[:, j].copy()
        if ref is None:
            ref = u
        elif float(u @ ref) < 0:
            u = -u
        out[name] = u
    return out


def eigenvector_figure(vectors: Mapping[str, np.ndarray], *, k: int = 2, labels: Sequence[int] | None = None,
                       title: str | None = None):
    """The ``k`` leading eigenvectors of every kernel, overlaid (one panel per eigenvector)."""
    if not vectors:
        raise ParameterError("need at least one set of eigenvectors")
    k = max(1, min(int(k), min(np.asarray(U).shape[1] for U in vectors.values())))
    fig = new_figure(7.0, 2.2 * k)
    axes = fig.subplots(k, 1, squeeze=False)[:, 0]
    for j, ax in enumerate(axes):
        for (name, u), col in zip(_signed(vectors, j).items(), _COLORS):
            ax.plot(u, lw=0.8, color=col, label=name, alpha=0.8)
        if labels is not None:
            lab = np.asarray(labels)
            for b in np.flatnonzero(np.diff(lab)) + 0.5:
                ax.axvline(b, color="0.6", lw=0.6, ls="--")
        ax.set_ylabel(f"u_{j + 1}")
    axes[0].legend(fontsize=8, ncol=len(vectors))
    axes[-1].set_xlabel("sample (sorted by class)")
    if title:
        axes[0].set_title(title)
    return fig


def comparison_figure(spectra: Mapping[str, np.ndarray], vectors: Mapping[str, np.ndarray], *,
                      k: int = 2, labels: Sequence[int] | None = None, title: str | None = None,
                      bins: int = 60, clip_quantile: float = 0.99):
    """Histogram panel on the left, ``k`` leading eigenvectors on the right."""
    fig = new_figure(12.0, max(4.0, 2.2 * k))
    gs = fig.add_gridspec(k, 2)
    _hist(fig.add_subplot(gs[:, 0]), spectra, bins, clip_quantile)
    for j in range(k):
        ax = fig.add_subplot(gs[j, 1])
        for (name, u), col in zip(_signed(vectors, j).items(), _COLORS):
            ax.plot(u, lw=0.8, color=col, label=name, alpha=0.8)
        if labels is not None:
            for b in np.flatnonzero(np.diff(np.asarray(labels))) + 0.5:
                ax.axvline(b, color="0.6", lw=0.6, ls="--")
        ax.set_ylabel(f"u_{j + 1}")
        if j == 0:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def save_figure(fig, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` (PNG/PDF/SVG by extension) atomically and return the path.

    The name is used exactly as given and must end in ``.png``, ``.pdf`` or ``.svg``;
    the file is written through :func:`ntk_theory.io.atomic_write` (an interrupted or
    concurrent save never leaves a partial image).
    """
    target = check_output_path(path, FIGURE_EXTENSIONS, what="plot file")
    fmt = target.suffix.lower()[1:]
    atomic_write(target, lambda tmp: fig.savefig(tmp, dpi=dpi, format=fmt), what="plot file")
    return target
