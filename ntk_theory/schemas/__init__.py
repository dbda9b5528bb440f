"""JSON Schemas (draft 2020-12) of the ``--json`` outputs of the command line.

One file per subcommand: ``moments.json``, ``coefficients.json``, ``compress.json``,
``spectrum.json``, ``demo.json``, ``activations.json``, ``bcd.json`` (documented in ``docs/schemas.rst``).  Infinite
values are the strings ``"inf"``/``"-inf"`` (:func:`ntk_theory.io.to_jsonable`).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from ..errors import ParameterError

__all__ = ["SCHEMAS", "load_schema"]

#: Subcommands with a documented ``--json`` output.
SCHEMAS = ("moments", "coefficients", "compress", "spectrum", "demo", "activations", "bcd")


def load_schema(command: str) -> dict[str, Any]:
    """The JSON Schema of ``ntk-theory COMMAND --json`` as a dict.

    Raises
    ------
    ParameterError
        ``command`` has no schema.
    """
    if command not in SCHEMAS:
        raise ParameterError(f"no JSON schema for {command!r}; available: {', '.join(SCHEMAS)}")
    text = resources.files(__package__).joinpath(f"{command}.json").read_text(encoding="utf-8")
    return json.loads(text)
