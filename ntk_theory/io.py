"""Checked, atomic file output and JSON-ready values: every file ntk-theory writes goes
through this module.

Two steps, used by every writer (``compress --out``, ``spectrum --plot``, the ``demo``
figures, :func:`ntk_theory.compress.save_npz`, :func:`ntk_theory.plotting.save_figure`):

* :func:`check_output_path` — *before* any computation: the name has one of the allowed
  extensions (the user's exact name is kept; a wrong extension is refused, never
  silently completed), the path is not a directory, its directory exists and a file can
  be created there.  Refusals are :class:`~ntk_theory.errors.ParameterError` (exit 2 in
  the CLI).
* :func:`atomic_write` — the writer fills a temporary file created next to the target
  (same directory, hence same file system); the file is flushed and ``fsync``-ed, then
  :func:`os.replace` renames it over the target and the directory is ``fsync``-ed.  A
  rename within one file system is atomic on POSIX, so a kill at any moment (SIGKILL,
  SIGTERM, Ctrl-C, out-of-memory) leaves either the old file or the new one, never a
  partial file; concurrent writers each fill their own temporary file and the last
  rename wins, so the target is always one complete file.  On any error the temporary
  file is removed.  (After SIGKILL a stray ``.<name>.*.tmp`` may remain in the
  directory; the target itself is intact.)

:func:`to_jsonable` and :func:`huge_number` turn results into JSON-ready data (the
CLI's ``--json`` output, sweep stores, saved results).
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import ParameterError

__all__ = ["check_output_path", "atomic_write", "atomic_savez", "to_jsonable", "huge_number"]


def check_output_path(path: str | os.PathLike, extensions: Sequence[str] = (), *,
                      what: str = "output file") -> Path:
    """Validate an output path before any work is done; return it as a :class:`~pathlib.Path`.

    Parameters
    ----------
    path : str or path-like
        The name the user gave; it is used exactly as given.
    extensions : sequence of str
        Allowed suffixes (lower case, with the dot, e.g. ``(".npz",)``); empty: any.
    what : str
        How the file is named in error messages (e.g. ``"--out"``).

    Raises
    ------
    ParameterError
        Wrong or missing extension, a directory, a missing parent directory, or a
        directory in which a file cannot be created.
    """
    text = os.fspath(path)
    if not text or "\0" in text:
        raise ParameterError(f"{what}: '{text}' is not a valid file name")
    p = Path(text)
    if extensions and p.suffix.lower() not in extensions:
        raise ParameterError(f"{what} must end in {' or '.join(extensions)}, got '{text}' "
                             f"(the name is used as given)")
    if p.is_dir():
        raise ParameterError(f"{what}: '{text}' is a directory")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ParameterError(f"{what}: directory '{parent}' does not exist")
    if p.exists() and not os.access(p, os.W_OK):
        raise ParameterError(f"{what}: '{text}' exists and is not writable")
    # can a (temporary) file be created there?  os.access misjudges read-only mounts
    # and root, so try it: this is exactly what atomic_write will do later
    tmp = _temporary_name(p, parent)
    try:
        _create_empty(tmp, what)
    finally:
        _remove_quietly(tmp)
    return p


def _temporary_name(p: Path, parent: Path) -> Path:
    """A name for a temporary file next to ``p``, chosen before the file exists: code that
    records it first can always remove what it created, whenever it is interrupted (a
    name returned by ``tempfile.mkstemp`` is not known until the file exists).  128
    random bits: no other writer picks the same name."""
    return parent / f".{p.name}.{secrets.token_hex(16)}.tmp"


def _create_empty(tmp: Path, what: str) -> None:
    """Create ``tmp`` empty, exclusively, with the permissions a plain ``open()`` gives
    (0666 less the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        os.close(os.open(tmp, flags, 0o666))
    except OSError as exc:
        raise ParameterError(f"{what}: cannot write in directory '{tmp.parent}' "
                             f"({exc.strerror or exc})") from None


def _remove_quietly(tmp: Path) -> None:
    try:
        tmp.unlink()
    except OSError:  # not created (or already renamed): nothing to remove
        pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, writer: Callable[[Path], None], *,
                 what: str = "output file") -> Path:
    """Run ``writer(tmp_path)`` on a fresh temporary file next to ``path``, then rename it.

    ``writer`` receives the path of an empty temporary file in the target's directory
    and must write the complete content there (by name: ``np.savez_compressed``,
    ``Figure.savefig`` …).  The temporary file is then ``fsync``-ed and atomically
    renamed to ``path``, and the directory is ``fsync``-ed.  Returns ``Path(path)``.

    Raises
    ------
    ParameterError
        The temporary file cannot be created or renamed (e.g. the directory became
        unwritable); the target is left untouched.
    """
    p = Path(os.fspath(path))
    parent = p.parent if str(p.parent) else Path(".")
    tmp = _temporary_name(p, parent)
    try:
        _create_empty(tmp, what)
        writer(tmp)
        with open(tmp, "rb+") as fh:  # the writer may have closed its own handle: sync by name
            os.fsync(fh.fileno())
        try:
            os.replace(tmp, p)
        except OSError as exc:
            raise ParameterError(f"{what}: cannot replace '{p}' ({exc.strerror or exc})") from None
    except BaseException:  # including KeyboardInterrupt: never leave the temporary behind
        _remove_quietly(tmp)
        raise
    _fsync_dir(parent)
    return p



def atomic_savez(path: str | os.PathLike, arrays: dict[str, Any], *, what: str = "output file") -> Path:
    """``np.savez_compressed(path, **arrays)`` through :func:`atomic_write`, to exactly
    ``path`` (given a name, NumPy would append ``.npz``; it is given a file object)."""
    import numpy as np

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    return atomic_write(path, write, what=what)

# --------------------------------------------------------------------------- #
# JSON-ready values
# --------------------------------------------------------------------------- #
class _LazyNumpy:
    """``numpy``, imported on first attribute access.

    The CLI builds its parser (``--help``, usage errors) without importing NumPy and imports
    this module at start-up, so NumPy is loaded only when a result is converted.
    """

    def __getattr__(self, name: str) -> Any:
        import numpy

        return getattr(numpy, name)


_np = _LazyNumpy()


def to_jsonable(obj: Any) -> Any:
    """Convert results to JSON-ready data: ±inf as ``"inf"``/``"-inf"``, NumPy to Python."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, _np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (_np.integer,)):
        return int(obj)
    if type(obj).__name__ == "mpf":  # mpmath value: float64, or a string beyond its range
        return to_jsonable(huge_number(obj))
    if isinstance(obj, (float, _np.floating)):
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
