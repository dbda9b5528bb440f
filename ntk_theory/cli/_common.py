"""Shared helpers for the ``ntk-theory`` subcommands: argparse types and JSON output."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

__all__ = ["dump_json", "to_jsonable", "huge_number", "positive_float", "positive_int", "finite_float",
           "probability", "nonnegative_int"]


class _LazyNumpy:
    """``numpy``, imported on first attribute access.

    The CLI builds its parser (``--help``, usage errors) without importing NumPy; this module
    is imported by every subcommand, so NumPy is loaded only when a result is converted.
    """

    def __getattr__(self, name: str) -> Any:
        import numpy

        return getattr(numpy, name)


np = _LazyNumpy()


def to_jsonable(obj: Any) -> Any:
    """Convert results to JSON-ready data: ±inf as ``"inf"``/``"-inf"``, NumPy to Python."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if type(obj).__name__ == "mpf":  # mpmath value: float64, or a string beyond its range
        return to_jsonable(huge_number(obj))
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        if math.isnan(f):  # never expected: results are checked before output
            return "nan"
        return f
    return obj


def huge_number(v: Any) -> float | str:
    """A finite high-precision value as float64 when it fits, else as a decimal string
    ``"1.2345678901234567e+400"`` (never ``"inf"``, which means infinite)."""
    import mpmath as mp

    v = mp.mpf(v)
    if not mp.isfinite(v):
        return float(v)
    f = float(v)
    if v != 0 and (math.isinf(f) or f == 0 or abs(f) < 2.2250738585072014e-308):
        s = mp.nstr(v, 17, min_fixed=1, max_fixed=0).replace("e+", "e+").lower()
        mant, _, exp = s.partition("e")
        mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
        return f"{mant}e{'+' if not exp.startswith('-') else '-'}{exp.lstrip('+-')}"
    return f


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
