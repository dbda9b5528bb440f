"""Every script in ``examples/`` keeps the gallery contract and runs at its quick settings.

The contract (``examples/GALLERY_HEADER.rst``): a module docstring that starts with an
RST title (title line, ``=`` underline of the same length, then a description),
``--quick`` for CI-sized settings, ``--out DIR`` for the PNG figures, exit status 0.

The docs build (sphinx-gallery, ``docs/conf.py``) runs each example in-process with
``--quick --out DIR`` and embeds the PNGs it wrote.  The README's test command installs
only ``.[test]`` (no Sphinx), so this module runs every example the same way — without
``__file__`` (sphinx-gallery does not define it) and treating any ``SystemExit`` as a
failure (it would abort the Sphinx build) — in a subprocess whose working directory is
a fresh temporary directory, and checks that it wrote at least one non-empty PNG.
New examples are picked up by the glob; there is nothing to register.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: Run like sphinx-gallery does: no __file__, __name__ == "__main__", SystemExit is an error.
GALLERY_LIKE_RUNNER = r"""
import sys
path = sys.argv[1]
sys.argv = [path, *sys.argv[2:]]
code = compile(open(path, encoding="utf-8").read(), path, "exec")
try:
    exec(code, {"__name__": "__main__"})
except SystemExit as exc:
    print(f"example raised SystemExit({exc.code!r}); the docs gallery would abort", file=sys.stderr)
    sys.exit(3)
"""

#: Per-example wall-clock limit: the contract asks ≤ ~60 s on 2 loaded cores; 4x margin
#: for a heavily shared CI machine before a hang is declared.
TIMEOUT_S = 240


def _id(p: Path) -> str:
    return p.stem


def test_there_are_examples():
    names = {p.stem for p in EXAMPLES}
    assert {"experiment1", "experiment2", "identity_term", "finite_width",
            "moments_new_activation", "deep_coefficients"} <= names, names


@pytest.mark.parametrize("path", EXAMPLES, ids=_id)
def test_docstring_starts_with_an_rst_title(path: Path):
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=False)
    assert doc, f"{path.name} has no module docstring"
    lines = doc.split("\n")
    assert len(lines) >= 4, f"{path.name}: title, underline, blank line and a description expected"
    title, underline = lines[0], lines[1]
    assert title.strip() == title and title, f"{path.name}: first docstring line must be the title"
    assert set(underline) == {"="} and len(underline) == len(title), (
        f"{path.name}: the title {title!r} needs a '=' underline of exactly {len(title)} characters")
    assert lines[2] == "" and any(ln.strip() for ln in lines[3:]), f"{path.name}: no description"


@pytest.mark.parametrize("path", EXAMPLES, ids=_id)
def test_module_level_code_does_not_use___file__(path: Path):
    """sphinx-gallery executes examples without ``__file__``; only functions may use it."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        assert "__file__" not in names, f"{path.name}, line {node.lineno}: module-level __file__"


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=_id)
def test_example_runs_quick_and_writes_pngs(path: Path, tmp_path: Path):
    out = tmp_path / "figures"
    # one BLAS thread per example: xdist already runs two at once on the 2-core CI machine
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", GALLERY_LIKE_RUNNER, str(path), "--quick", "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, (
        f"{path.name} --quick exited with {proc.returncode}\n--- stdout (tail)\n{proc.stdout[-2000:]}"
        f"\n--- stderr (tail)\n{proc.stderr[-3000:]}")
    pngs = sorted(out.glob("*.png"))
    assert pngs, f"{path.name} --quick --out {out} wrote no PNG; files: {sorted(os.listdir(tmp_path))}"
    for png in pngs:
        with open(png, "rb") as fh:
            assert fh.read(8) == PNG_MAGIC, f"{png.name} is not a PNG file"
        assert png.stat().st_size > 5000, f"{png.name} is suspiciously small (an empty figure?)"
    stray = sorted(p.name for p in tmp_path.glob("*.png"))
    assert not stray, f"{path.name} wrote PNGs outside --out: {stray}"
