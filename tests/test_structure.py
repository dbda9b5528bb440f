"""Structure of the library: knowledge about particular activations lives in one place.

* No activation or compression-family name (derived from the registry, so a new family is
  covered automatically) appears as a string literal in library code outside
  ``activations.py`` (the registry) and ``compress/families.py`` (the compression family
  table).  The exact kernels, the networks, the coefficients and the solvers dispatch on
  the registry's fields (:class:`ntk_theory.activations.KernelMaps`, ``staircase``) and
  on the family table instead.
* (Private imports across modules and import cycles: tests/test_structure_imports.py.)

Literals inside prose (error messages, docstrings) are not names used as keys and are
not flagged: a literal is flagged when it *is* a name, or a specification ``name:k=v``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from ntk_theory.activations import REGISTRY

PACKAGE = Path(__file__).resolve().parent.parent / "ntk_theory"

#: Where names may appear, and why.
ALLOWED = {
    # the registry and the compression family table themselves
    "activations.py": "the activation registry",
    "compress/families.py": "the compression family table",
    # user-facing defaults and command-line choices (the paper's networks, argparse help);
    # the CLI's family check is kept import-light and compared with the table by
    # tests/test_cli_startup.py
    "demo.py": "default networks of the demo",
    "experiment2.py": "default networks and families of Experiment 2",
    "sweep.py": "default families of the feasibility sweep",
    "cli/_common.py": "the import-light --family check and choices, shared by every subcommand "
                      "(tests/test_cli_startup.py compares them with the table)",
    "cli/cmd_activations.py": "column name of the registry listing",
    # words that coincide with activation names
    "safe_parse.py": "SymPy function names of the expression language (erf, sin, abs, ...)",
    "plotting.py": "matplotlib's 'step' histogram type",
    "expectation.py": "mpmath function names (sin, cos, ...) given growth guards for numeric evaluation",
    # hypothesis strategies and generators for the test suite
    "testing.py": "test-support strategies over named families",
}

def _names() -> set[str]:
    names = set(REGISTRY)
    for fam in REGISTRY.values():
        names.update(fam.aliases)
    return names


def _library_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "schemas" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def name_literals(source: str, names: set[str]) -> list[tuple[int, str]]:
    """``(line, literal)`` of every string constant that is a name or a ``name:k=v`` spec."""
    alternatives = "|".join(sorted(map(re.escape, names)))
    spec = re.compile(rf"^({alternatives}):[A-Za-z_]\w*=")
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            v = node.value
            if v in names or spec.match(v) or (v.endswith(":") and v[:-1] in names):
                out.append((node.lineno, node.value))
    return out


def test_the_scan_finds_names_and_specs():
    names = _names()
    src = 'a = "relu"\nb = f"{x} relu"\nc = "leaky_relu:slope=0.1"\nd = "staircase:"\ne = "relu6x"\n'
    assert [v for _, v in name_literals(src, names)] == ["relu", "leaky_relu:slope=0.1", "staircase:"]


@pytest.mark.parametrize("path", _library_files(), ids=_rel)
def test_no_activation_or_family_names_outside_the_tables(path):
    if _rel(path) in ALLOWED:
        pytest.skip(ALLOWED[_rel(path)])
    found = name_literals(path.read_text(encoding="utf-8"), _names())
    assert not found, f"{_rel(path)} names activations/families: {found}"


def test_every_closed_form_is_a_registry_field():
    """The exact kernels name a closed form only when the registry entry carries it."""
    from ntk_theory.activations import example_activations
    from ntk_theory.exact import closed_form_name

    for act in example_activations():
        name = closed_form_name(act)
        if act.staircase is not None:
            assert name == "staircase"
        elif act.kernel is not None and act.kernel.has_closed_form:
            assert name == act.name
        else:
            assert name is None, act.name


@pytest.mark.parametrize("name", sorted(n for n, f in REGISTRY.items() if f.build_kernel is not None))
def test_registry_closed_forms_against_quadrature(name):
    """Every closed form a registry entry carries (mean, pair and derivative-pair maps, or
    arc-cosine slopes) against the certified quadrature path of the exact kernels, which
    uses only σ and σ' (composite Gauss–Legendre split at the kinks, 12 vs 20 nodes per
    panel agreeing to 1e−14): 1e−11 leaves room for the closed forms' own rounding
    (arccos/arcsin near ±1)."""
    import numpy as np

    from ntk_theory.activations import EXAMPLE_PARAMS
    from ntk_theory.exact import (
        activation_breakpoints,
        certified_pairs,
        derivative_function,
        gaussian_mean,
        pair_expectation,
        split_rule,
    )

    act = REGISTRY[name].make(**EXAMPLE_PARAMS.get(name, {}))
    assert act.kernel is not None and act.kernel.has_closed_form
    a = np.array([0.7, 2.0, 1.0, 0.3])
    b = np.array([1.3, 0.5, 1.0, 0.3])
    c = np.array([0.5, -0.6, 0.95, -0.29])
    breaks = activation_breakpoints(act)
    for fn, derivative in ((act, False), (derivative_function(act), True)):
        want, err = certified_pairs(fn, a, b, c, breaks=breaks)
        got = pair_expectation(act, a, b, c, derivative=derivative)
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)
    s = np.array([0.01, 0.5, 2.0, 7.0])
    t, w = split_rule(s, breaks or (0.0,), nodes=24)  # split rule: exact to rounding per piece
    np.testing.assert_allclose(gaussian_mean(act, s), np.sum(act(t) * w, axis=-1), rtol=1e-12, atol=1e-13)
