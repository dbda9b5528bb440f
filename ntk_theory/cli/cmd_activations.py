"""``ntk-theory activations``: every registry family, its parameters, defaults and aliases.

The names accepted wherever an activation is expected (``moments``, ``coefficients``,
``compress``, ``table``, the Python API's :func:`ntk_theory.activations.parse_activation`)
are the registry families listed here, written ``name`` or ``name:k=v,...``
(list parameters as ``k=v1;v2;...``), or a SymPy expression in ``x``.
"""

from __future__ import annotations

import argparse

HELP = "list the activation registry: names, parameters with defaults, aliases"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print a JSON list, one object per family (schema: activations.json)")


def _default(v: object) -> object:
    """A parameter default as JSON data: numbers stay numbers, ``None`` means required."""
    if isinstance(v, tuple):
        return [float(u) for u in v]
    if v is None:
        return None
    return float(v)  # type: ignore[arg-type]


def registry_table() -> list[dict]:
    """One dict per registry family, sorted by name (the ``--json`` layout)."""
    from ..activations import EXAMPLE_PARAMS, REGISTRY

    rows = []
    for name in sorted(REGISTRY, key=str.lower):
        fam = REGISTRY[name]
        params = [{"name": k, "default": _default(v), "required": v is None,
                   "list": k in fam.list_params} for k, v in fam.defaults.items()]
        rows.append({
            "name": name,
            "description": fam.description,
            "parameters": params,
            "aliases": list(fam.aliases),
            "staircase": fam.build_staircase is not None,
            "example": _example(name, EXAMPLE_PARAMS.get(name, {})),
        })
    return rows


def _example(name: str, params: dict) -> str:
    """A valid specification string, e.g. ``sigma_T:s1=-1,s2=0.5,a=2``."""
    def val(v: object) -> str:
        if isinstance(v, tuple):
            return "[" + ",".join(f"{u:g}" for u in v) + "]"
        return f"{v:g}"

    return name + (":" + ",".join(f"{k}={val(v)}" for k, v in params.items()) if params else "")


def _param_text(p: dict) -> str:
    if p["required"]:
        return f"{p['name']}=?" + ("(list)" if p["list"] else "")
    d = p["default"]
    if isinstance(d, list):
        return f"{p['name']}=" + ";".join(f"{u:g}" for u in d)
    return f"{p['name']}={d:g}"


def run(args: argparse.Namespace) -> int:
    rows = registry_table()
    if args.json:
        from ._common import dump_json

        dump_json(rows)
        return 0
    from ..latex import Column, Table

    columns = (Column("name", "Name", "name", "name", "code"),
               Column("parameters", "Parameters", "parameters (defaults)", "parameters (defaults)", "text"),
               Column("aliases", "Aliases", "aliases", "aliases", "text"),
               Column("description", "Description", "description", "description", "text"))
    table = Table(columns, tuple(
        (r["name"], ", ".join(_param_text(p) for p in r["parameters"]) or "-", ", ".join(r["aliases"]) or "-",
         r["description"] + (" [staircase: E[s'^2] = inf]" if r["staircase"] else ""))
        for r in rows))
    print(f"{len(rows)} activation families ('=?' marks a required parameter; "
          "use NAME or NAME:k=v,...; list values as v1;v2;...)")
    print(table.to_text())
    needs = [r["example"] for r in rows if any(p["required"] for p in r["parameters"])]
    print("Examples with parameters: " + "  ".join(needs))
    print("Any SymPy expression in x is accepted too, e.g. \"x*exp(-x**2/2) + Max(x, 0)\".")
    return 0
