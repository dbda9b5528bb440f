"""The testing tutorial's code works where users paste it (issue 12, item 5).

Each ``.. code-block:: python`` of docs/testing.rst is written, on its own, to a
``test_*.py`` file in an empty temporary folder outside the repository and run there by
``pytest`` in a subprocess: no ``tests/conftest.py`` (so none of the project's Hypothesis
profiles), no ``pyproject.toml`` settings, only the package on the path — as in a
user's project with ntk-theory installed.  A block that relies on the repository
(a profile without a deadline, an import from another block) fails here.

Also checks that the lambdify recipe of docs/tutorial_new_activation.rst uses modules
that cover the special functions of closed forms (an erfc closed form under plain
``"numpy"`` fails on arrays).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTING_RST = ROOT / "docs" / "testing.rst"


def python_blocks(path: Path) -> list[str]:
    """The bodies of the ``.. code-block:: python`` directives of an RST file, dedented."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if re.match(r"^\s*\.\. code-block:: python\s*$", lines[i]):
            indent = len(lines[i]) - len(lines[i].lstrip())
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip()
                                      or len(lines[i]) - len(lines[i].lstrip()) > indent):
                body.append(lines[i])
                i += 1
            code = [l for l in body]
            while code and not code[-1].strip():
                code.pop()
            pad = min(len(l) - len(l.lstrip()) for l in code if l.strip())
            blocks.append("\n".join(l[pad:] for l in code) + "\n")
        else:
            i += 1
    return blocks


BLOCKS = python_blocks(TESTING_RST)


def test_the_tutorial_has_its_four_blocks():
    assert len(BLOCKS) == 4, f"docs/testing.rst has {len(BLOCKS)} python code blocks"
    for b in BLOCKS:
        assert re.search(r"^def test_", b, re.M), b


@pytest.mark.slow
@pytest.mark.parametrize("k", range(len(BLOCKS)))
def test_block_runs_pasted_into_an_empty_folder(k, tmp_path):
    folder = tmp_path / "user_project"
    folder.mkdir()
    (folder / f"test_pasted_{k}.py").write_text(BLOCKS[k], encoding="utf-8")
    env = {key: v for key, v in os.environ.items() if not key.startswith(("PYTEST", "HYPOTHESIS",
                                                                          "NTK_"))}
    # the package only (it is not installed in the development venv): its parent on the path
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--rootdir", str(folder), str(folder)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=900,
    )
    assert not (folder / "conftest.py").exists()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout, proc.stdout[-2000:]


def test_lambdify_recipe_covers_erfc():
    """The tutorial's modules handle erf/erfc closed forms; plain "numpy" does not."""
    import numpy as np
    import sympy as sp

    from ntk_theory.expectation import TAU
    from ntk_theory.moments import gaussian_moments

    text = (ROOT / "docs" / "tutorial_new_activation.rst").read_text(encoding="utf-8")
    calls = re.findall(r"sp\.lambdify\((.*)\)", text)
    assert calls and all('modules=["scipy", "numpy"]' in c for c in calls), calls
    # a closed form with erf/erfc: the mean of a step at a non-zero threshold
    g = gaussian_moments("Heaviside(x - 1)", 1.0)
    expr = g["E[s]"].expr
    assert expr.has(sp.erf) or expr.has(sp.erfc), expr
    f = sp.lambdify(TAU, expr, modules=["scipy", "numpy"])
    taus = np.array([0.5, 1.0, 2.0])
    from scipy.stats import norm

    # P(τξ > 1) = Φ(−1/τ), independent of the engine (tolerance: float64 rounding)
    assert np.allclose(f(taus), norm.sf(1.0 / taus), rtol=1e-13, atol=0)
    # plain "numpy" falls back to math.erfc, which rejects arrays
    with pytest.raises((NameError, TypeError)):
        sp.lambdify(TAU, sp.erfc(1 / TAU), "numpy")(taus)


def test_docs_extra_installs_what_the_build_runs():
    """The docs extra carries the examples' data packages and the offline MathJax bundle."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    docs = " ".join(meta["optional-dependencies"]["docs"])
    for pkg in meta["optional-dependencies"]["data"]:
        assert pkg.split(">")[0] in docs, pkg
    assert "sphinx-mathjax-offline" in docs
    assert any(d.startswith("hypothesis") for d in meta["dependencies"])
    conf = (ROOT / "docs" / "conf.py").read_text(encoding="utf-8")
    assert '"sphinx-mathjax-offline"' in conf and "mathjax_path" not in conf.split("sphinx-mathjax-offline")[0]


def test_examples_never_exit_silently_inside_the_docs_build():
    """A failing example raises a visible error under sphinx-gallery, never SystemExit.

    sphinx-gallery reports exceptions of an example as warnings (so ``-W`` fails with the
    message) but lets ``SystemExit`` through, which ends ``sphinx-build`` with status 2 and
    no explanation.  Every ``raise SystemExit`` of an example's main block must therefore
    be guarded by the sphinx-gallery check.
    """
    import types

    for path in sorted((ROOT / "examples").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        main_block = text.split('if __name__ == "__main__":', 1)[-1]
        if "raise SystemExit(status)" in main_block:
            guard = main_block.index('"sphinx_gallery" in sys.modules')
            assert guard < main_block.index("raise SystemExit(status)"), path.name
    # and the guard works: run one example's main block with a failing main()
    src = (ROOT / "examples" / "deep_coefficients.py").read_text(encoding="utf-8")
    block = src.split('if __name__ == "__main__":', 1)[1]
    code = "import sys\nif True:" + block
    fake = types.ModuleType("sphinx_gallery")
    saved = sys.modules.get("sphinx_gallery")
    sys.modules["sphinx_gallery"] = fake
    try:
        with pytest.raises(RuntimeError, match="exit status 1"):
            exec(code, {"main": lambda: 1, "__name__": "__main__"})
    finally:
        if saved is None:
            del sys.modules["sphinx_gallery"]
        else:
            sys.modules["sphinx_gallery"] = saved
    with pytest.raises(SystemExit):  # outside the docs build the exit status is kept
        exec(code, {"main": lambda: 1, "__name__": "__main__"})


def _markdown_python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("source", ["README.md", "docs/tutorial_tables.rst"])
def test_other_python_blocks_run_as_scripts_in_an_empty_folder(source, tmp_path):
    """The README's Python block and the tables tutorial's notebook block, pasted into a script."""
    path = ROOT / source
    blocks = _markdown_python_blocks(path) if source.endswith(".md") else python_blocks(path)
    assert blocks
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "NTK_"))}
    env["PYTHONPATH"] = str(ROOT)
    for i, code in enumerate(blocks):
        script = tmp_path / f"pasted_{i}.py"
        script.write_text(code, encoding="utf-8")
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
