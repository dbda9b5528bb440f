"""Sphinx directives that render the live ``ntk-theory`` command-line help.

The CLI reference must never drift from the code, so instead of copying ``--help``
output into the docs we build each subcommand's parser at documentation time:

``.. cli-help:: moments``
    The full ``ntk-theory moments --help`` text as a literal block.

``.. cli-commands::``
    A bullet list of every discovered subcommand with its one-line ``HELP``.

``.. cli-remaining::``
    At the end of the CLI page: a section with the help of every subcommand that
    the page does not document with its own ``cli-help`` yet, so a new subcommand
    is in the reference the moment it exists.

``.. cli-run:: moments relu --json``
    Runs ``ntk-theory moments relu --json`` in-process while the docs are built and
    shows the command, its real stdout and stderr, and a non-zero exit status.  Docs
    examples therefore never show invented numbers.  An option ``:exit: N``
    declares the expected exit status (default 0); any other status is a warning.
    With ``:scratch:`` the command runs in the tutorials' scratch directory (see
    ``pyrun.py``), so files it writes (``--out model.npz``) stay out of the sources
    and later ``pyrun`` blocks of the page can read them.

The help text comes from the dispatcher's own parser
(:func:`ntk_theory.cli.build_parser`); the list of subcommands is discovered the
way the dispatcher does it (every module ``ntk_theory/cli/cmd_<name>.py`` is
subcommand ``<name>`` with a one-line ``HELP``).  A missing subcommand is a
Sphinx warning, hence an error in CI (``-W``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import pkgutil
import re
import shlex
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from docutils.statemachine import StringList

#: Width of the rendered help, fixed so the docs do not depend on the terminal.
HELP_WIDTH = 88


def discover_subcommands() -> dict[str, Any]:
    """Map subcommand name -> its ``cmd_<name>`` module, sorted by name."""
    import ntk_theory.cli as cli

    found = {}
    for info in pkgutil.iter_modules(cli.__path__):
        if info.name.startswith("cmd_"):
            found[info.name[4:]] = importlib.import_module(f"ntk_theory.cli.{info.name}")
    return dict(sorted(found.items()))


def subcommand_help(name: str) -> str:
    """The ``--help`` text of ``ntk-theory <name>``, from the real parser, at a fixed width."""
    from ntk_theory.cli import build_parser

    parser = build_parser()
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    choices = subparsers[0].choices if subparsers else {}
    if name not in choices:
        raise KeyError(name)
    sub = choices[name]
    fmt = sub.formatter_class
    sub.formatter_class = lambda prog: fmt(prog, width=HELP_WIDTH)
    return sub.format_help()


class CliHelpDirective(Directive):
    """``.. cli-help:: NAME`` -> literal block with the subcommand's help."""

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        name = self.arguments[0]
        try:
            text = subcommand_help(name)
        except KeyError:
            known = ", ".join(discover_subcommands()) or "none"
            return [self.state.document.reporter.warning(
                f"cli-help: no subcommand '{name}' (known: {known})", line=self.lineno)]
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


class CliCommandsDirective(Directive):
    """``.. cli-commands::`` -> bullet list ``name — HELP`` of every subcommand."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        items = nodes.bullet_list()
        for name, mod in discover_subcommands().items():
            para = nodes.paragraph()
            para += nodes.literal(text=f"ntk-theory {name}")
            para += nodes.Text(f" — {mod.HELP}")
            items += nodes.list_item("", para)
        return [items]


class CliRemainingDirective(Directive):
    """Insert a section (title, HELP, full help) per subcommand not documented on the page."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        source = self.state.document.current_source
        with open(source, encoding="utf-8") as fh:
            documented = set(re.findall(r"^\.\. cli-help:: (\S+)\s*$", fh.read(), flags=re.M))
        lines: list[str] = []
        for name, mod in discover_subcommands().items():
            if name in documented:
                continue
            title = f"``ntk-theory {name}``"
            lines += [title, "-" * len(title), "", mod.HELP.strip().rstrip(".") + ".", "",
                      f".. cli-help:: {name}", ""]
        if lines:
            self.state_machine.insert_input(StringList(lines, source=source), source)
        return []


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """Run ``ntk-theory ARGV`` in this process: (exit status, stdout, stderr)."""
    from ntk_theory.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse usage errors and --help
            status = exc.code if isinstance(exc.code, int) else 1
    return int(status or 0), out.getvalue(), err.getvalue()


class CliRunDirective(Directive):
    """``.. cli-run:: ARGS`` -> console block with the real output of ``ntk-theory ARGS``."""

    required_arguments = 1
    final_argument_whitespace = True
    option_spec = {"exit": int, "scratch": directives.flag}
    has_content = False

    def run(self) -> list[nodes.Node]:
        line = self.arguments[0]
        expected = self.options.get("exit", 0)
        if "scratch" in self.options:
            from pyrun import in_directory, scratch_dir

            with in_directory(scratch_dir(self.state.document.settings.env)):
                status, out, err = run_cli(shlex.split(line))
        else:
            status, out, err = run_cli(shlex.split(line))
        text = f"$ ntk-theory {line}\n{out}{err}"
        if status:
            text += f"[exit status {status}]\n"
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        result: list[nodes.Node] = [block]
        if status != expected:
            result.append(self.state.document.reporter.warning(
                f"cli-run: 'ntk-theory {line}' exited with {status}, expected {expected}: "
                f"{err.strip()[:200]}", line=self.lineno))
        return result


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("cli-help", CliHelpDirective)
    app.add_directive("cli-run", CliRunDirective)
    app.add_directive("cli-remaining", CliRemainingDirective)
    app.add_directive("cli-commands", CliCommandsDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
