"""Glue between sphinx-gallery and the ``examples/`` scripts.

Every script in ``examples/`` follows one contract (see ``examples/GALLERY_HEADER.rst``):
an RST title in its module docstring, ``--quick`` for CI-sized settings and ``--out DIR``
for the PNG figures it writes.  The docs build runs each script exactly as a user would
run ``python3 examples/NAME.py --quick --out DIR`` and embeds the PNG files the script
wrote, so "the example runs in CI and its figure appears in the built docs" is what the
``-W`` Sphinx build checks.

sphinx-gallery only accepts picklable configuration, so ``docs/conf.py`` names these
callables by their qualified names (``"gallery_support.reset_argv"`` and
``"gallery_support.png_scraper"``); this module is on ``sys.path`` via ``docs/_ext``.

``reset_argv``
    Gives each example the arguments ``--quick --out <fresh directory>`` (under
    ``docs/_build/gallery-figures/``, outside the Sphinx source tree) and remembers the
    directory.
``png_scraper``
    After the example's code ran, copies every PNG of that directory (sorted by name) to
    the image paths sphinx-gallery allots and returns the RST that embeds them.  An
    example that wrote no PNG is a Sphinx warning, hence a CI failure under ``-W``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from sphinx.util import logging

logger = logging.getLogger(__name__)

#: Arguments every example gets in the docs build (the CI settings of the contract).
QUICK_ARGS = ("--quick",)

_OUT_DIRS: dict[str, Path] = {}


def _figure_root(gallery_conf: dict[str, Any]) -> Path:
    """``docs/_build/gallery-figures`` (next to the HTML output, never a Sphinx source)."""
    return Path(gallery_conf["src_dir"]) / "_build" / "gallery-figures"


def reset_argv(gallery_conf: dict[str, Any], script_vars: dict[str, Any]) -> list[str]:
    """``sys.argv[1:]`` of one example in the docs build: ``--quick --out <fresh dir>``."""
    src = str(script_vars["src_file"])
    out = _figure_root(gallery_conf) / Path(src).stem
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    _OUT_DIRS[src] = out
    return [*QUICK_ARGS, "--out", str(out)]


def png_scraper(block: Any, block_vars: dict[str, Any], gallery_conf: dict[str, Any]) -> str:
    """Embed the PNG files the example wrote to its ``--out`` directory."""
    from sphinx_gallery.scrapers import figure_rst

    # figures a script left open are not part of the contract: close them so they do not leak
    try:
        import matplotlib.pyplot as plt

        plt.close("all")
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        pass
    src = str(block_vars["src_file"])
    out = _OUT_DIRS.get(src)
    if out is None:  # not executed (e.g. plot_gallery=False)
        return ""
    pngs = sorted(p for p in out.glob("*.png") if p.name not in block_vars.get("_ntk_seen", ()))
    block_vars.setdefault("_ntk_seen", set()).update(p.name for p in pngs)
    if not pngs:
        logger.warning("example %s wrote no PNG figure to --out %s", os.path.basename(src), out)
        return ""
    targets = []
    for png, target in zip(pngs, block_vars["image_path_iterator"]):
        shutil.copyfile(png, target)
        targets.append(target)
    return figure_rst(targets, gallery_conf["src_dir"])
