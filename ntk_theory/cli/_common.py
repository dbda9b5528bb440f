"""Shared helpers for the ``ntk-theory`` subcommands: argparse types and JSON output."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from ..io import huge_number, to_jsonable

__all__ = ["dump_json", "to_jsonable", "huge_number", "positive_float", "positive_int", "finite_float",
           "probability", "nonnegative_int", "family_name"]


def dump_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout."""
    json.dump(to_jsonable(obj), sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")


def _number(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"'{text}' is not a finite number")
    return v


def finite_float(text: str) -> float:
    """A finite real number."""
    return _number(text)


def positive_float(text: str) -> float:
    """A finite number > 0."""
    v = _number(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be > 0")
    return v


def probability(text: str) -> float:
    """A number in [0, 1)."""
    v = _number(text)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"'{text}' must lie in [0, 1)")
    return v


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None


def positive_int(text: str) -> int:
    """An integer >= 1."""
    v = _integer(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"'{text}' must be a positive integer")
    return v


def nonnegative_int(text: str) -> int:
    """An integer >= 0."""
    v = _integer(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be >= 0")
    return v


#: The hidden-layer families ``--family`` names (besides ``auto`` and ``staircase:K``), the one
#: list the help text, the check and the error message are built from (the CLI start-up tests
#: compare them with :func:`ntk_theory.compress.parse_family`, which the CLI does not import
#: before ``run()``).
_NAMED_FAMILIES = ("ternary", "sigma_T", "three_level")
#: Accepted but not advertised: ``odd_ternary`` is the activation registry's alias of
#: ``ternary``, the same family; listing it in help and error texts would suggest a second one.
_FAMILY_ALIASES = ("odd_ternary",)
#: ``--last-family`` choices: no last-layer solve, or the last-layer family of the table.
LAST_FAMILY_CHOICES = ("none", "sigma_Q")
#: ``--family`` values as the help text lists them.
FAMILY_CHOICES = "|".join(("auto", *_NAMED_FAMILIES, "staircase:K"))


def family_name(text: str) -> str:
    """argparse type of ``--family``: the name checks of
    :func:`ntk_theory.compress.parse_family`, repeated here so that a typo is reported without
    importing the solver stack (the CLI start-up tests check both agree)."""
    if text == "auto":
        return text
    t = text.strip()
    last = LAST_FAMILY_CHOICES[1]
    if t == last:
        raise argparse.ArgumentTypeError(f"{last} is a last-layer family: use --last-family {last}")
    if t in _NAMED_FAMILIES or t in _FAMILY_ALIASES:
        return text
    if t.startswith("staircase:"):
        try:
            K = int(t.split(":", 1)[1])
        except ValueError:
            raise argparse.ArgumentTypeError(f"staircase:K needs an integer K, got '{t}'") from None
        if not 3 <= K <= 64:
            raise argparse.ArgumentTypeError(f"staircase:K needs 3 <= K <= 64, got {K}")
        return text
    known = ", ".join((*FAMILY_CHOICES.split("|"), last))
    raise argparse.ArgumentTypeError(f"unknown compression family '{t}' (known: {known})")
