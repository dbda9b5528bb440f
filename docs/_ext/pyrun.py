"""``.. pyrun::`` — run a tutorial's Python code while the docs are built and show its output.

The tutorials must never show invented numbers.  This directive executes its content
in-process, shows the code and, below it, whatever the code printed::

    .. pyrun::

       from ntk_theory.moments import gaussian_moments
       print(gaussian_moments("relu", tau=1.0))

All ``pyrun`` blocks of one page share one namespace (like the cells of a notebook),
in page order; the namespace is dropped when Sphinx re-reads the page.  Code runs in a
scratch directory (``docs/_build/tutorial-scratch``), so files a tutorial writes (e.g.
``model.npz``) never land in the source tree; ``cli-run`` with ``:scratch:`` runs its
command there as well, so a Python block can read what a CLI command wrote.

Options

``:raises: NAME``
    The block is expected to raise an exception whose class is called ``NAME``
    (e.g. ``InfeasibleError``); the rendered output ends with ``NAME: message``
    exactly as a user would see it.  A different exception — or none — is a Sphinx
    warning, hence a CI failure under ``-W``.
``:hide-output:``
    Run the code but show no output block (set-up cells).
``:display: EXPR``
    After the code, evaluate ``EXPR`` and render it the way Jupyter would: its
    ``_repr_html_()`` as raw HTML if it has one, else its ``_repr_latex_()`` as a
    displayed formula; a ``str`` result is taken as HTML (what
    ``IPython.display.HTML(EXPR)`` shows).  Anything else is a warning.

An exception that is not declared is a warning that shows the traceback's last line.
"""

from __future__ import annotations

import contextlib
import io
import os
import traceback
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive, directives

_NAMESPACES: dict[str, dict[str, Any]] = {}


def scratch_dir(env: Any) -> Path:
    """The directory tutorial code and ``cli-run :scratch:`` commands run in (created)."""
    out = Path(env.app.outdir).parent / "tutorial-scratch"
    out.mkdir(parents=True, exist_ok=True)
    return out


@contextlib.contextmanager
def in_directory(path: Path):
    """Temporarily change the working directory (the build is single-process)."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _literal(text: str, language: str) -> nodes.literal_block:
    block = nodes.literal_block(text, text)
    block["language"] = language
    return block


class PyRunDirective(Directive):
    """Execute the content; render code + captured stdout/stderr."""

    has_content = True
    option_spec = {"raises": directives.unchanged_required, "hide-output": directives.flag,
                   "display": directives.unchanged_required}

    def run(self) -> list[nodes.Node]:
        env = self.state.document.settings.env
        code = "\n".join(self.content)
        namespace = _NAMESPACES.setdefault(env.docname, {"__name__": f"pyrun_{env.docname}"})
        expected = self.options.get("raises")
        out = io.StringIO()
        raised: BaseException | None = None
        with in_directory(scratch_dir(env)), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                exec(compile(code, f"<{env.docname}: pyrun at line {self.lineno}>", "exec"), namespace)
            except Exception as exc:  # noqa: BLE001 - reported below, as a warning if unexpected
                raised = exc
        text = out.getvalue()
        result: list[nodes.Node] = [_literal(code, "python")]
        problems: list[str] = []
        if raised is not None:
            name = type(raised).__name__
            text += f"{name}: {raised}\n"
            if name != expected:
                last = traceback.format_exception_only(type(raised), raised)[-1].strip()
                problems.append(f"pyrun: unexpected exception {last}")
        elif expected:
            problems.append(f"pyrun: expected {expected}, but the code ran without an exception")
        if text and "hide-output" not in self.options:
            result.append(_literal(text, "text"))
        if "display" in self.options and raised is None:
            result.extend(self._display(self.options["display"], namespace, problems))
        for msg in problems:
            result.append(self.state.document.reporter.warning(msg, line=self.lineno))
        return result

    def _display(self, expr: str, namespace: dict[str, Any], problems: list[str]) -> list[nodes.Node]:
        """Jupyter's rich display of ``expr``: HTML first, then LaTeX."""
        try:
            obj = eval(expr, namespace)  # noqa: S307 - documentation code written by us
        except Exception as exc:  # noqa: BLE001
            problems.append(f"pyrun: :display: {expr!r} raised {type(exc).__name__}: {exc}")
            return []
        label = nodes.paragraph()
        label += nodes.emphasis(text=f"Notebook display of {expr}:")
        if isinstance(obj, str):
            return [label, nodes.raw("", obj, format="html")]
        if hasattr(obj, "_repr_html_"):
            return [label, nodes.raw("", obj._repr_html_(), format="html")]
        if hasattr(obj, "_repr_latex_"):
            tex = obj._repr_latex_().strip()
            tex = tex[2:-2] if tex.startswith("$$") and tex.endswith("$$") else tex.strip("$")
            return [label, nodes.math_block(tex, tex, nowrap=False, number=None)]
        problems.append(f"pyrun: :display: {expr!r} has neither _repr_html_ nor _repr_latex_")
        return []


def _purge(app: Any, env: Any, docname: str) -> None:
    _NAMESPACES.pop(docname, None)


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("pyrun", PyRunDirective)
    app.connect("env-purge-doc", _purge)
    return {"version": "1", "parallel_read_safe": False, "parallel_write_safe": True}
