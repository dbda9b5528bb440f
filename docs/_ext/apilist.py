"""``.. api-remaining::`` — autodoc for every public module not listed explicitly.

The API page (``docs/api.rst``) lists the modules in a curated order with
``.. automodule::``.  Modules added later by other work would otherwise be missing
from the site until someone edits that list; this directive, placed at the end of
the page, emits an ``automodule`` section for each public module of ``ntk_theory``
that the page does not mention yet, so the reference is always complete.

Public = every module or package whose dotted path has no component starting with
an underscore, except ``ntk_theory.cli`` (documented on the CLI page).
"""

from __future__ import annotations

import pkgutil
import re
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList


def public_modules() -> list[str]:
    """Every public module of ``ntk_theory`` (see module docstring), sorted."""
    import ntk_theory

    return sorted(
        m.name
        for m in pkgutil.walk_packages(ntk_theory.__path__, prefix="ntk_theory.")
        if not any(p.startswith("_") for p in m.name.split(".")[1:])
        and m.name.split(".")[1] != "cli"
    )


def listed_modules(text: str) -> set[str]:
    """Modules named by ``.. automodule::`` in an reST source text."""
    return set(re.findall(r"^\.\. automodule:: (\S+)\s*$", text, flags=re.M))


class ApiRemainingDirective(Directive):
    """Insert an "Other modules" section with an ``automodule`` per public module not on the page.

    Place it at the end of the page, at the level of the page's ``---`` sections.
    """

    has_content = False

    def run(self) -> list[nodes.Node]:
        source = self.state.document.current_source
        with open(source, encoding="utf-8") as fh:
            listed = listed_modules(fh.read())
        missing = [m for m in public_modules() if m not in listed]
        if not missing:
            return []
        lines = ["Other modules", "-------------", "",
                 "Modules not yet placed in the sections above.", ""]
        for name in missing:
            lines += [name, "~" * len(name), "", f".. automodule:: {name}", ""]
        self.state_machine.insert_input(StringList(lines, source=source), source)
        return []


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("api-remaining", ApiRemainingDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
