"""Sphinx configuration of the ntk-theory documentation site.

Built in CI with ``sphinx-build -W --keep-going -b html docs docs/_build/html``:
every warning is an error, so the API page may only name modules that exist.
"""

from __future__ import annotations

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# the package (for autodoc, also when it is not installed) and the local extensions
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(HERE, "_ext"))

import ntk_theory  # noqa: E402

project = "ntk-theory"
author = "ntk-theory developers"
copyright = "ntk-theory developers"
release = ntk_theory.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
    "clihelp",
    "apilist",
    "pyrun",
    "sphinx_gallery.gen_gallery",
]

# --- math for offline reading -------------------------------------------------
# sphinx-mathjax-offline (in the docs extra) ships MathJax 3 (tex-chtml.js, its input,
# output and woff fonts) and copies it into _build/html/_static/mathjax, pointing
# mathjax_path there: the built pages render their formulas without a network.  It is
# the only package on PyPI that bundles MathJax for Sphinx; imgmath would need a LaTeX
# installation with dvipng/dvisvgm on every machine that builds the docs.  Without the
# package (an environment installed without the docs extra) Sphinx falls back to the CDN.
if importlib.util.find_spec("sphinx-mathjax-offline") is not None:
    extensions.append("sphinx-mathjax-offline")

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
# sphinx-gallery's generated pages of ``examples/`` live in docs/auto_examples (git-ignored)
GALLERY_DIR = "auto_examples"

# --- autodoc / napoleon (numpy-style docstrings) ----------------------------
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
    "member-order": "bysource",
}
autodoc_typehints = "description"
autodoc_preserve_defaults = True
napoleon_google_docstring = False
napoleon_numpy_docstring = True
# "Attributes" sections become :ivar: fields, so a dataclass field documented in
# the class docstring is not also emitted as a separate (duplicate) attribute.
napoleon_use_ivar = True
napoleon_use_rtype = False

# --- MyST (docs/BENCHMARKS.md and other Markdown pages) ----------------------
myst_enable_extensions = ["dollarmath"]
myst_heading_anchors = 3

# --- HTML ---------------------------------------------------------------------
html_theme = "alabaster"
html_title = f"ntk-theory {release}"
html_theme_options = {
    "description": "Gaussian moments, NTK theory kernels and NTK-LC compression",
    "fixed_sidebar": True,
}


# --- examples gallery (sphinx-gallery) ---------------------------------------
# Every script of examples/ runs at build time exactly as
# ``python3 examples/NAME.py --quick --out DIR`` (docs/_ext/gallery_support.py) and the
# PNG files it writes are embedded in its gallery page: an example that fails or writes
# no figure fails the -W build.  Callables are named by string so the configuration
# stays picklable (an unpicklable config value is itself a warning).
sphinx_gallery_conf = {
    "examples_dirs": os.path.join(ROOT, "examples"),
    "gallery_dirs": GALLERY_DIR,
    "filename_pattern": r"\.py$",  # run every example, not only plot_*.py
    "reset_argv": "gallery_support.reset_argv",
    "image_scrapers": ("gallery_support.png_scraper",),
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": False,  # report every failing example, each one a warning
    "only_warn_on_example_error": True,
    "download_all_examples": False,
    "remove_config_comments": True,
    "write_computation_times": False,  # no sg_execution_times.rst in the source tree
    "show_signature": False,
}
