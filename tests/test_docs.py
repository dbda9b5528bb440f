"""Consistency of the documentation with the code and with the README.

These checks need neither Sphinx nor a network: they read the source files, so they
run in the plain ``.[test]`` environment and catch the drift that would otherwise
only show up when CI builds the docs with ``-W`` (an API entry for a module that
does not import, a subcommand without a reference section, a heading that MyST
rejects, a README whose set-up commands and install page disagree).  Whether every
public module is on the API page is checked by the docs build itself
(``docs/conf.py``), so work in progress on a new module does not fail the tests.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import stat

import pytest

import ntk_theory
import ntk_theory.cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")


def _read(*parts: str) -> str:
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as fh:
        return fh.read()


def _subcommands() -> list[str]:
    return sorted(m.name[4:] for m in pkgutil.iter_modules(ntk_theory.cli.__path__)
                  if m.name.startswith("cmd_"))


def _api_modules() -> list[str]:
    return re.findall(r"^\.\. automodule:: (\S+)\s*$", _read("docs", "api.rst"), flags=re.M)


# --------------------------------------------------------------------------- #
# API page
# --------------------------------------------------------------------------- #
def test_api_page_lists_only_importable_modules():
    mods = _api_modules()
    assert mods, "docs/api.rst has no automodule directive"
    assert len(mods) == len(set(mods)), f"a module is listed twice in docs/api.rst: {mods}"
    for name in mods:
        importlib.import_module(name)  # autodoc of a missing module is a -W failure


# --------------------------------------------------------------------------- #
# CLI reference
# --------------------------------------------------------------------------- #
def test_every_subcommand_is_in_the_cli_reference():
    """Hand-written sections name real subcommands; the rest are rendered by cli-remaining."""
    cli = _read("docs", "cli.rst")
    documented = set(re.findall(r"^\.\. cli-help:: (\S+)\s*$", cli, flags=re.M))
    unknown = sorted(documented - set(_subcommands()))
    assert not unknown, f"docs/cli.rst documents subcommand(s) that do not exist: {unknown}"
    missing = sorted(set(_subcommands()) - documented)
    assert not missing or re.search(r"^\.\. cli-remaining::\s*$", cli, flags=re.M), (
        f"docs/cli.rst neither documents {missing} nor has the '.. cli-remaining::' directive"
    )
    assert {"moments"} <= documented, "the moments subcommand needs its hand-written section"


def test_every_subcommand_help_renders():
    """The docs render each subcommand's --help from the dispatcher's parser."""
    import argparse

    from ntk_theory.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(_subcommands())
    for name, p in sub.choices.items():
        text = p.format_help()
        assert text.startswith(f"usage: ntk-theory {name}"), text[:80]


def test_moments_reference_describes_every_option_and_the_json_schema():
    if "moments" not in _subcommands():
        pytest.skip("the moments subcommand is not there yet")
    import argparse

    from ntk_theory.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    options = {s for act in sub.choices["moments"]._actions for s in act.option_strings
               if s.startswith("--") and s != "--help"}
    cli = _read("docs", "cli.rst")
    # the generated help lists the options; the prose must explain the ones
    for opt in sorted(options & {"--tau", "--centered", "--json", "--latex", "--digits"}):
        assert opt in cli, f"docs/cli.rst never mentions {opt}"
    for key in ("E[s]", "E[s']", "E[s'']", "E[s^2]", "E[s'^2]", "E[(s^2)'']",
                '"closed_form"', '"moments"', '"latex"', '"inf"'):
        assert key in cli, f"docs/cli.rst JSON schema lacks {key}"
    assert "status" in cli and "2" in cli and "stderr" in cli


# --------------------------------------------------------------------------- #
# README and install page
# --------------------------------------------------------------------------- #
def _setup_commands() -> list[str]:
    readme = _read("README.md")
    m = re.search(r"^## Set-up\n(.*?)(?=^## )", readme, flags=re.M | re.S)
    assert m, "README.md has no '## Set-up' section"
    return re.findall(r"```bash\n(.*?)```", m.group(1), flags=re.S)


def test_readme_has_exactly_two_one_line_setup_commands():
    cmds = _setup_commands()
    assert len(cmds) == 2, f"README.md Set-up must have exactly two commands, found {len(cmds)}"
    for c in cmds:
        assert c.count("\n") == 1, f"set-up command is not one line: {c!r}"
        assert c.startswith("python3 -m venv "), c
    assert "ntk-theory " in cmds[0], "the first command must run the main job"
    assert "pytest" in cmds[1] and ".[test]" in cmds[1], "the second command must run the tests"


def test_install_page_repeats_the_readme_commands_verbatim():
    install = _read("docs", "install.rst")
    for c in _setup_commands():
        assert c.strip() in install, f"docs/install.rst lacks the README command {c.strip()!r}"


def test_ci_script_runs_the_readme_test_command_and_guards_exit_5():
    run = _read(".ci", "run")
    mode = os.stat(os.path.join(ROOT, ".ci", "run")).st_mode
    assert mode & stat.S_IXUSR, ".ci/run must be executable"
    pytest_part = _setup_commands()[1].split("&&")[-1].strip()  # .venv/bin/python -m pytest -q
    assert pytest_part.split("/")[-1].replace("python ", "") in run.replace('"$VPY" ', "")
    assert re.search(r'PYTEST_RC"? -eq 5', run), ".ci/run must fail when pytest collected no test"
    assert "sphinx -W --keep-going" in run


# --------------------------------------------------------------------------- #
# Markdown pages built by MyST
# --------------------------------------------------------------------------- #
def _markdown_pages() -> list[str]:
    return sorted(f for f in os.listdir(DOCS) if f.endswith(".md"))


@pytest.mark.parametrize("page", _markdown_pages())
def test_markdown_headings_never_skip_a_level(page):
    """MyST warns (an error under -W) when a heading jumps e.g. from ## to ####."""
    text = re.sub(r"```.*?```", "", _read("docs", page), flags=re.S)
    levels = [len(m.group(1)) for m in re.finditer(r"^(#{1,6}) \S", text, flags=re.M)]
    assert levels and levels[0] == 1, f"docs/{page} must start with one '# ' title"
    assert levels.count(1) == 1, f"docs/{page} must have exactly one '# ' title"
    for a, b in zip(levels, levels[1:]):
        assert b <= a + 1, f"docs/{page}: heading level jumps from {a} to {b}"


def _toctree_entries(text: str) -> set[str]:
    """Entries of every ``.. toctree::`` of an RST page (indented lines, options skipped)."""
    entries = set()
    for block in text.split(".. toctree::")[1:]:
        for ln in block.splitlines()[1:]:
            if ln.strip() and not ln.startswith("   "):
                break  # the directive's indented body has ended
            if ln.strip() and not ln.strip().startswith(":"):
                entries.add(ln.strip())
    return entries


def test_every_page_is_in_the_toctree():
    entries = _toctree_entries(_read("docs", "index.rst"))
    pages = {os.path.splitext(f)[0] for f in os.listdir(DOCS)
             if f.endswith((".rst", ".md")) and f != "index.rst"}
    # generated by sphinx-gallery inside the source tree when the docs are built there
    pages -= {"sg_execution_times"}
    missing = sorted(pages - entries)
    assert not missing or "*" in entries, (
        f"docs pages not in the index toctree (a -W warning): {missing}")
    assert {"install", "moments", "cli", "api", "BENCHMARKS", "theory", "tutorial_new_activation",
            "tutorial_compress"} <= entries
    unknown = sorted(e for e in entries - pages if e != "auto_examples/index" and "*" not in e)
    assert not unknown, f"the index toctree names pages that do not exist: {unknown}"


def test_landing_page_repeats_the_readme_commands_verbatim():
    index = _read("docs", "index.rst")
    for c in _setup_commands():
        assert c.strip() in index, f"docs/index.rst lacks the README command {c.strip()!r}"


# --------------------------------------------------------------------------- #
# Examples gallery (sphinx-gallery runs examples/ at build time)
# --------------------------------------------------------------------------- #
def test_gallery_is_configured_on_the_examples_directory():
    conf = _read("docs", "conf.py")
    assert "sphinx_gallery.gen_gallery" in conf
    assert re.search(r'"examples_dirs":\s*os\.path\.join\(ROOT, "examples"\)', conf), conf[-1500:]
    assert '"reset_argv": "gallery_support.reset_argv"' in conf
    assert "auto_examples/index" in _toctree_entries(_read("docs", "index.rst"))
    header = os.path.join(ROOT, "examples", "GALLERY_HEADER.rst")
    assert os.path.exists(header), "sphinx-gallery needs examples/GALLERY_HEADER.rst"
    pyproject = _read("pyproject.toml")
    docs_extra = re.search(r"^docs = \[(.*?)\]", pyproject, flags=re.M | re.S)  # may span lines
    assert docs_extra and "sphinx-gallery" in docs_extra.group(1), "the docs extra must install sphinx-gallery"


def test_gallery_reset_argv_gives_quick_and_a_fresh_out_dir(tmp_path):
    """The docs build runs each example exactly as ``NAME.py --quick --out DIR``."""
    import sys

    pytest.importorskip("sphinx")
    sys.path.insert(0, os.path.join(DOCS, "_ext"))
    try:
        import gallery_support
    finally:
        sys.path.pop(0)
    conf = {"src_dir": str(tmp_path)}
    argv = gallery_support.reset_argv(conf, {"src_file": str(tmp_path / "ex.py")})
    assert argv[:2] == ["--quick", "--out"]
    out = argv[2]
    assert os.path.isdir(out) and not os.listdir(out)
    assert os.path.commonpath([out, str(tmp_path / "_build")]) == str(tmp_path / "_build"), (
        "figures must go under _build, never into the Sphinx source tree")


# --------------------------------------------------------------------------- #
# Tutorials and theory page: outputs are generated at build time, never pasted
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize("page", ["theory.rst", "tutorial_new_activation.rst", "tutorial_compress.rst",
                                  "index.rst"])
def test_pages_show_only_generated_output(page):
    """Every command and printed output comes from ``cli-run``/``pyrun`` at build time."""
    text = _read("docs", page)
    assert re.search(r"^\.\. (cli-run|pyrun)::", text, flags=re.M), f"docs/{page} runs no code"
    pasted = re.findall(r"^\.\. code-block:: (console|text|python)\s*$", text, flags=re.M)
    assert not pasted, f"docs/{page} has hand-pasted output blocks {pasted}: use cli-run/pyrun"
    for m in re.finditer(r"^(\s*)\.\. figure:: (\S+)", text, flags=re.M):
        assert os.path.exists(os.path.join(DOCS, m.group(2))), f"docs/{page}: missing figure {m.group(2)}"


def test_pyrun_and_cli_run_directives_are_registered():
    conf = _read("docs", "conf.py")
    assert '"pyrun"' in conf and '"clihelp"' in conf
    assert os.path.exists(os.path.join(DOCS, "_ext", "pyrun.py"))


def _mini_sphinx(tmp_path, body: str) -> tuple[int, str, str]:
    """Build a one-page Sphinx project using the local extensions; (status, html, stderr)."""
    import subprocess
    import sys

    pytest.importorskip("sphinx")
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {os.path.join(DOCS, '_ext')!r})\n"
        "extensions = ['clihelp', 'pyrun']\n", encoding="utf-8")
    (src / "index.rst").write_text("Page\n====\n\n" + body, encoding="utf-8")
    out = tmp_path / "html"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-N", "-b", "html", str(src), str(out)],
                          capture_output=True, text=True, timeout=300)
    page = (out / "index.html").read_text(encoding="utf-8") if (out / "index.html").exists() else ""
    return proc.returncode, page, proc.stderr


def test_pyrun_shows_real_output_and_shares_files_with_cli_run(tmp_path):
    body = (".. cli-run:: compress relu --tau0 1 --widths 8 16 --out m.npz\n   :scratch:\n\n"
            ".. pyrun::\n\n   import numpy as np\n   print('widths', np.load('m.npz')['widths'].tolist())\n\n"
            ".. pyrun::\n   :raises: InfeasibleError\n\n"
            "   from ntk_theory.compress import compress_network\n"
            "   compress_network(['tanh'], 1.0, family='sigma_T')\n")
    status, page, err = _mini_sphinx(tmp_path, body)
    assert status == 0, err
    assert "widths [8, 16]" in page  # the Python block read the file the CLI wrote
    assert "InfeasibleError: layer 1 (tanh)" in page


@pytest.mark.parametrize("body", [
    ".. pyrun::\n\n   1 / 0\n",                                   # undeclared exception
    ".. pyrun::\n   :raises: InfeasibleError\n\n   x = 1\n",       # declared but not raised
    ".. cli-run:: compress tanh --tau0 1 --family sigma_T\n",      # exit 2, expected 0
])
def test_pyrun_and_cli_run_fail_the_strict_build(tmp_path, body):
    status, _, err = _mini_sphinx(tmp_path, body)
    assert status != 0 and ("pyrun" in err or "cli-run" in err), err
