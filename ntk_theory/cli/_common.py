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


#: ``--family`` values as the help text lists them (the CLI start-up tests compare the names
#: with the compression family table, which the CLI does not import before ``run()``).
FAMILY_CHOICES = "auto|ternary|sigma_T|three_level|staircase:K"
#: ``--last-family`` choices: no last-layer solve, or the last-layer family of the table.
LAST_FAMILY_CHOICES = ("none", "sigma_Q")


def family_name(text: str) -> str:
    """argparse type of ``--family``: the name checks of
    :func:`ntk_theory.compress.parse_family`, repeated here so that a typo is reported without
    importing the solver stack (the CLI start-up tests check both agree)."""
    if text == "auto":
        return text
    t = text.strip()
    if t == "sigma_Q":
        raise argparse.ArgumentTypeError("sigma_Q is a last-layer family: use --last-family sigma_Q")
    if t in ("ternary", "odd_ternary", "sigma_T", "three_level"):
        return text
    if t.startswith("staircase:"):
        try:
            K = int(t.split(":", 1)[1])
        except ValueError:
            raise argparse.ArgumentTypeError(f"staircase:K needs an integer K, got '{t}'") from None
        if not 3 <= K <= 64:
            raise argparse.ArgumentTypeError(f"staircase:K needs 3 <= K <= 64, got {K}")
        return text
    raise argparse.ArgumentTypeError(
        f"unknown compression family '{t}' (known: auto, ternary, sigma_T, three_level, "
        "staircase:K, sigma_Q)")
