"""Experiment grids on dask.distributed with a resumable SQLite store.

A *sweep* runs one job over the cartesian product of its options (the *grid*) on a
dask cluster — an embedded :class:`~distributed.LocalCluster` on one machine, or any
scheduler started with ``dask scheduler`` / ``dask worker`` — and commits every
result to an SQLite database as soon as it arrives.  A rerun skips the points already
stored, so an interrupted or crashed sweep resumes without recomputing or duplicating
anything (``docs/sweep.rst``).

**Jobs.** Every ``ntk-theory`` subcommand with a ``--json`` output is a job, discovered from the
``ntk_theory/cli/cmd_<job>.py`` modules — a subcommand added later is a job with no
change here.  A grid point becomes the subcommand's argv (``--option value``;
positionals last), is parsed by the subcommand's *own* parser (so bad options are
refused before any cluster starts) and run on a worker — in the main thread of a job
process the worker starts once and reuses, as the command itself would run it (dask
runs tasks in threads, where the symbolic engine cannot enforce its time budgets and
skips steps) — and the stored result is the JSON
its ``run(args)`` prints with ``--json`` (a one-element list, as ``moments`` prints
for one activation, is stored as its single object).  Jobs without a subcommand are
adapters over the Python API: ``experiment2`` (:func:`ntk_theory.experiment2.run_experiment2`),
``feasibility`` (one row of the compression feasibility map,
:mod:`ntk_theory.compress.feasibility`) and the diagnostic ``echo`` (returns its
options after ``sleep`` seconds: the scheduler's overhead, fault-tolerance tests).

**Spec.** TOML (or the same as a dict)::

    job = "moments"
    [grid]
    activations = ["relu", "tanh", "gelu"]   # a list is an axis
    tau = [0.5, 1.0, 2.0]
    digits = 15                              # a scalar is fixed

An option that takes several values (``coefficients``' activations, ``--widths``) is an
axis of lists, ``activations = [["relu", "relu"], ["tanh", "tanh"]]``; a fixed list is
an axis of length one, ``widths = [[784, 1000]]``.  Option names are the subcommand's
(``last-family`` or ``last_family``); boolean flags take ``true``/``false``.

**Store.** ``results(key TEXT PRIMARY KEY, status TEXT, result TEXT)``: ``key`` is the canonical
JSON of the grid point (sorted keys, no whitespace, ``"job"`` included, values as the
subcommand's parser converts them, e.g. ``tau = 1`` and ``tau = 1.0`` are one point),
``status`` is ``"ok"`` (``result`` = the job's JSON) or ``"error"`` (``result`` = the
error message).  Only the process running :func:`sweep` writes the store (workers
return their results over the network), one transaction per result; a second sweep on
the same store is refused while the first runs (an advisory lock on ``STORE.lock``,
released by the operating system even if the owner is killed).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import itertools
import json
import math
import os
import pkgutil
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import NTKTheoryError, ParameterError, ResourceError

__all__ = ["SweepSpec", "SweepSummary", "SweepInterrupted", "SpecError", "StoreLockedError", "WorkerError",
           "ResultStore", "load_spec", "plan", "sweep", "sweep_results", "available_jobs", "canonical_key",
           "read_store", "local_cluster_kwargs", "sweep_target", "default_workers",
           "add_target_arguments"]

#: A grid larger than this is refused up front (every point is parsed before the start).
MAX_POINTS = 200_000

#: Local worker processes per core at most: the jobs are CPU-bound.
MAX_WORKERS_PER_CORE = 4

#: Subcommands that are never jobs: ``sweep`` itself (no nested sweeps).
_NOT_JOBS = frozenset({"sweep"})


class SpecError(ParameterError):
    """A sweep spec is malformed: bad TOML, unknown job or option, empty grid."""


class StoreLockedError(NTKTheoryError):
    """Another sweep holds the store."""


class WorkerError(NTKTheoryError):
    """The workers cannot run jobs at all (e.g. ntk-theory is not installed on them)."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (or a ``KeyboardInterrupt`` from ``on_result``) stopped a sweep.

    Everything finished before the interrupt is committed; ``summary`` counts it.
    """

    def __init__(self, summary: SweepSummary) -> None:
        super().__init__(f"sweep interrupted: {summary.done} result(s) committed to {summary.store}")
        self.summary = summary


# ---------------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class SweepSpec:
    """A job and its grid.

    Attributes
    ----------
    job : str
        A subcommand with ``--json`` or a Python job (:func:`available_jobs`).
    grid : dict
        Option name → value; a list is an axis, anything else is fixed.
    """

    job: str
    grid: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SweepSpec:
        if not isinstance(data, Mapping):
            raise SpecError(f"a sweep spec is a table with 'job' and [grid], got {type(data).__name__}")
        unknown = sorted(set(data) - {"job", "grid"})
        if unknown:
            raise SpecError(f"unknown top-level key(s) {', '.join(map(repr, unknown))} in the sweep spec "
                            "(expected 'job' and a [grid] table)")
        job = data.get("job")
        if not isinstance(job, str) or not job:
            raise SpecError("the sweep spec needs job = \"<name>\" "
                            f"(one of: {', '.join(available_jobs())})")
        grid = data.get("grid", {})
        if not isinstance(grid, Mapping):
            raise SpecError("'grid' must be a table of options ([grid])")
        return cls(job, dict(grid))

    @classmethod
    def from_toml(cls, text: str, source: str = "spec") -> SweepSpec:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{source} is not valid TOML: {exc}") from None
        return cls.from_mapping(data)

    def axes(self) -> dict[str, list[Any]]:
        """Every option as a list of its values (a fixed option has one)."""
        out: dict[str, list[Any]] = {}
        for name, value in self.grid.items():
            if not isinstance(name, str) or not name:
                raise SpecError(f"grid option names must be non-empty strings, got {name!r}")
            values = list(value) if isinstance(value, list) else [value]
            if not values:
                raise SpecError(f"grid axis '{name}' is empty: the grid has no points")
            for v in values:
                _check_value(name, v)
            out[name] = values
        return out

    def points(self) -> list[dict[str, Any]]:
        """The grid points (dicts option → value), last axis fastest."""
        axes = self.axes()
        if not axes:
            raise SpecError("the [grid] table is empty: give the job's options (a list is an axis)")
        n = math.prod(len(v) for v in axes.values())
        if n > MAX_POINTS:
            raise ResourceError(f"the grid has {n} points (limit {MAX_POINTS}); split it into several sweeps")
        names = list(axes)
        return [dict(zip(names, combo)) for combo in itertools.product(*(axes[k] for k in names))]


def _check_value(name: str, v: Any, depth: int = 0) -> None:
    if isinstance(v, bool) or isinstance(v, (int, str)):
        return
    if isinstance(v, float):
        if not math.isfinite(v):
            raise SpecError(f"grid option '{name}': {v} is not a finite number")
        return
    if isinstance(v, list) and depth == 0:
        if not v:
            raise SpecError(f"grid option '{name}': an empty list is not a value")
        for x in v:
            _check_value(name, x, depth + 1)
        return
    kind = "a list nested deeper than an axis of lists" if isinstance(v, list) else type(v).__name__
    raise SpecError(f"grid option '{name}': {kind} is not a valid value "
                    "(use strings, numbers, booleans, or lists of them)")


def load_spec(spec: SweepSpec | Mapping[str, Any] | str | os.PathLike[str]) -> SweepSpec:
    """A :class:`SweepSpec` from itself, a dict, or the path of a TOML file."""
    if isinstance(spec, SweepSpec):
        return spec
    if isinstance(spec, Mapping):
        return SweepSpec.from_mapping(spec)
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read the sweep spec '{path}': {exc}") from None
    return SweepSpec.from_toml(text, source=f"'{path}'")


# ---------------------------------------------------------------------------------- jobs


class _RaisingParser(argparse.ArgumentParser):
    """The subcommand's parser, raising :class:`SpecError` instead of exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise SpecError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None):  # type: ignore[override]
        raise SpecError(f"{self.prog}: {message or 'exited'}".strip())


def _cli_modules() -> dict[str, str]:
    from . import cli

    return {m.name[4:]: f"{cli.__name__}.{m.name}" for m in pkgutil.iter_modules(cli.__path__)
            if m.name.startswith("cmd_") and m.name[4:] not in _NOT_JOBS}


def _cli_parser(job: str) -> argparse.ArgumentParser:
    mod = importlib.import_module(_cli_modules()[job])
    p = _RaisingParser(prog=f"ntk-theory {job}", add_help=False)
    mod.add_arguments(p)
    return p


class _CLIJob:
    """A subcommand as a job: argv from the point, its own parser, the JSON ``run`` prints."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.module = _cli_modules()[name]
        parser = _cli_parser(name)
        self._actions = [a for a in parser._actions if a.dest != "help"]
        if not any("--json" in a.option_strings for a in self._actions):
            raise SpecError(f"'ntk-theory {name}' has no --json output, so it cannot be a sweep job")
        self._by_name: dict[str, argparse.Action] = {}
        for a in self._actions:
            if a.dest == "json":
                continue
            self._by_name[a.dest] = a
            for s in a.option_strings:
                if s.startswith("--"):
                    self._by_name[s[2:]] = a
                    self._by_name[s[2:].replace("-", "_")] = a

    def options(self) -> list[str]:
        return sorted({a.dest for a in self._by_name.values()})

    def argv(self, point: Mapping[str, Any]) -> list[str]:
        opts: list[str] = []
        pos: list[tuple[int, list[str]]] = []
        seen: dict[str, str] = {}
        for name, value in point.items():
            a = self._by_name.get(name)
            if a is None:
                if name == "json":
                    raise SpecError(f"'{name}' is set by the sweep itself; remove it from [grid]")
                raise SpecError(f"'ntk-theory {self.name}' has no option '{name}' "
                                f"(options: {', '.join(self.options())})")
            if a.dest in seen:
                raise SpecError(f"grid options '{seen[a.dest]}' and '{name}' are the same option")
            seen[a.dest] = name
            if not a.option_strings:  # positional
                vals = value if isinstance(value, list) else [value]
                pos.append((self._actions.index(a), [_text(name, v) for v in vals]))
                continue
            flag = max(a.option_strings, key=len)
            if a.nargs == 0:  # store_true / store_false / store_const
                if not isinstance(value, bool):
                    raise SpecError(f"'{name}' is a flag: use true or false, got {value!r}")
                if (not value) if isinstance(a, argparse._StoreFalseAction) else value:
                    opts.append(flag)
                continue
            if isinstance(value, list):
                if a.nargs in (None, "?"):
                    raise SpecError(f"'{name}' takes one value, got the list {value!r} "
                                    "(a list of lists is an axis of lists)")
                opts.append(flag)
                opts.extend(_text(name, v) for v in value)
            elif a.nargs in (None, "?"):
                opts.append(f"{flag}={_text(name, value)}")
            else:
                opts.extend([flag, _text(name, value)])
        argv = opts + ["--json"]
        if pos:
            argv.append("--")
            for _, vals in sorted(pos):
                argv.extend(vals)
        return argv

    def validate(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """The point's canonical values (after the subcommand's parser), or :class:`SpecError`."""
        argv = self.argv(point)
        ns = _cli_parser(self.name).parse_args(argv)
        out = {}
        for name in point:
            dest = self._by_name[name].dest
            v = getattr(ns, dest)
            out[dest] = v if _jsonable(v) else point[name]
        return out

    def __call__(self, point: Mapping[str, Any]) -> Any:
        mod = importlib.import_module(self.module)
        ns = _cli_parser(self.name).parse_args(self.argv(point))
        buf = io.StringIO()
        with _STDOUT_LOCK, contextlib.redirect_stdout(buf):
            code = mod.run(ns)
        if code:
            raise RuntimeError(f"'ntk-theory {self.name}' returned exit status {code}")
        out = json.loads(buf.getvalue())
        if isinstance(out, list) and len(out) == 1:
            out = out[0]
        return out


#: ``run`` prints to the process-wide ``sys.stdout``: one capture at a time per process
#: (jobs run in job processes, one job at a time, so this never waits there).
_STDOUT_LOCK = threading.Lock()


def _text(name: str, v: Any) -> str:
    if isinstance(v, bool):
        raise SpecError(f"'{name}' is not a flag: booleans are only for flags, got {v!r}")
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _jsonable(v: Any) -> bool:
    if v is None or isinstance(v, (bool, int, str)):
        return True
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, (list, tuple)):
        return all(_jsonable(x) for x in v)
    return False


class _PyJob:
    """A job over a Python function ``fn(**point) -> JSON-ready data``."""

    def __init__(self, name: str, fn: Callable[..., Any], *, exclude: Iterable[str] = ()) -> None:
        self.name = name
        self.fn = fn
        sig = inspect.signature(fn)
        self._params = [p for p in sig.parameters if p not in set(exclude)]

    def options(self) -> list[str]:
        return sorted(self._params)

    def validate(self, point: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for name, value in point.items():
            key = name.replace("-", "_")
            if key not in self._params:
                raise SpecError(f"job '{self.name}' has no option '{name}' (options: {', '.join(self.options())})")
            if key in out:
                raise SpecError(f"grid options '{name}' and '{key}' are the same option")
            out[key] = value
        return out

    def __call__(self, point: Mapping[str, Any]) -> Any:
        from .io import to_jsonable

        return to_jsonable(self.fn(**self.validate(point)))


def _experiment2(**kw: Any) -> dict[str, Any]:
    from .experiment2 import run_experiment2

    for k in ("widths", "activations", "epsilons", "families"):
        if k in kw and not isinstance(kw[k], list):
            kw[k] = [kw[k]]
    return run_experiment2(**kw).to_dict()


def _feasibility(activation: str, tau: float,
                 families: Sequence[str] = ("sigma_T", "ternary", "three_level", "staircase:4",
                                            "staircase:6"),
                 delta0_family: str = "auto") -> dict[str, Any]:
    """One row of the feasibility map: α-matching of one layer of ``activation`` at ``tau``
    by each family, and δ = 0 for ``[activation, activation]`` (``delta0_family`` then
    ``sigma_Q``); every cell as :class:`~ntk_theory.compress.feasibility.FeasibilityCell`."""
    from dataclasses import asdict

    from .activations import parse_activation
    from .compress.feasibility import delta_zero_cell, feasibility_cell
    from .compress.network import dense_layer_moments

    if isinstance(families, str):
        families = [families]
    act = parse_activation(activation)
    d = dense_layer_moments(act, float(tau))
    return {"activation": act.spec, "tau": float(tau),
            "alpha": {f: asdict(feasibility_cell(act, f, float(tau), dense=d)) for f in families},
            "delta0": asdict(delta_zero_cell(act, delta0_family, float(tau)))}


def _echo(sleep: float = 0.0, **params: Any) -> dict[str, Any]:
    """Diagnostic job: ``params`` back after ``sleep`` seconds, with the process id of
    the job's process (``pid``) and of its parent, the dask worker (``ppid``)."""
    if not (isinstance(sleep, (int, float)) and not isinstance(sleep, bool) and 0 <= sleep <= 3600):
        raise ParameterError(f"echo: sleep must be a number of seconds in [0, 3600], got {sleep!r}")
    if sleep:
        time.sleep(sleep)
    return {"params": params, "sleep": sleep, "pid": os.getpid(), "ppid": os.getppid()}


class _EchoJob(_PyJob):
    def validate(self, point: Mapping[str, Any]) -> dict[str, Any]:
        return dict(point)


_PY_JOBS: dict[str, Callable[[], _PyJob]] = {
    "experiment2": lambda: _PyJob("experiment2", _experiment2),
    "feasibility": lambda: _PyJob("feasibility", _feasibility),
    "echo": lambda: _EchoJob("echo", _echo),
}


def available_jobs() -> list[str]:
    """Names of every job: the subcommands with ``--json`` and the Python jobs."""
    names = set(_PY_JOBS)
    for name in _cli_modules():
        try:
            _CLIJob(name)
        except SpecError:
            continue
        names.add(name)
    return sorted(names)


def _job(name: str) -> _CLIJob | _PyJob:
    if name in _PY_JOBS:
        job = _PY_JOBS[name]()
        if name == "experiment2":  # options are run_experiment2's (its data= is not a grid option)
            from .experiment2 import run_experiment2

            job._params = [p for p in inspect.signature(run_experiment2).parameters if p != "data"]
        return job
    if name in _cli_modules():
        return _CLIJob(name)
    raise SpecError(f"unknown job '{name}' (jobs: {', '.join(available_jobs())})")


def canonical_key(job: str, point: Mapping[str, Any]) -> str:
    """The store key of a grid point: JSON with sorted keys, no whitespace, ``job`` included."""
    if "job" in point:
        raise SpecError("'job' cannot be a grid option")
    return json.dumps({"job": job, **point}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False)


class JobProcessDied(RuntimeError):
    """The process running a job on a worker died (killed, out of memory, crashed)."""


class _JobProcess:
    """A Python process that runs jobs in its main thread, one at a time, for this worker.

    Started with :mod:`subprocess` (dask's worker processes are daemonic, so
    :mod:`multiprocessing` may not start children there) and spoken to over a
    :func:`multiprocessing.Pipe` end passed as a file descriptor.
    """

    def __init__(self) -> None:
        import subprocess
        from multiprocessing import Pipe

        mine, theirs = Pipe()
        code = ("import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
                "from ntk_theory.sweep import _serve; _serve(int(sys.argv[2]), int(sys.argv[3]))")
        self.proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(sys.path),
                                      str(theirs.fileno()), str(os.getpid())],
                                     pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = mine

    def run(self, job_name: str, point: dict[str, Any]) -> tuple[str, str, bool]:
        self.conn.send((job_name, point))
        return self.conn.recv()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
        with contextlib.suppress(Exception):
            self.proc.kill()
            self.proc.wait(5)


def _serve(fd: int, parent: int) -> None:
    """Main loop of a job process: run ``(job, point)`` requests until the pipe closes,
    and exit as soon as the dask worker that started it is gone."""
    from multiprocessing.connection import Connection

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="ntk-sweep-parent-watch", daemon=True).start()
    conn = Connection(fd)
    while True:
        try:
            job_name, point = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(_run_point_here(job_name, point))


#: Per dask-worker process: idle job processes (one per worker thread at most).
_IDLE: list[_JobProcess] = []
_IDLE_LOCK = threading.Lock()


def _run_point(job_name: str, point: dict[str, Any]) -> tuple[str, str, bool]:
    """The dask task: ``(status, result, is_bug)``; never raises for the job's own errors.

    The job runs in the *main thread* of a job process of this worker (started at the
    first task, then reused), exactly as in ``ntk-theory JOB ... --json``: dask runs
    tasks in worker threads, and the symbolic engine enforces its time budgets only in
    a main thread (elsewhere it skips the unbounded steps, which can change a closed
    form).  A job process that dies raises :class:`JobProcessDied`, so that dask
    retries the point.
    """
    if threading.current_thread() is threading.main_thread() or os.name == "nt":
        return _run_point_here(job_name, point)
    with _IDLE_LOCK:
        jp = _IDLE.pop() if _IDLE else None
    if jp is None or jp.proc.poll() is not None:
        jp = _JobProcess()
    try:
        out = jp.run(job_name, point)
    except (EOFError, OSError):
        jp.close()
        raise JobProcessDied(f"the process running {job_name} {point} died (killed, out of memory "
                             "or crashed)") from None
    except BaseException:  # e.g. the task cancelled: the process may be mid-job, drop it
        jp.close()
        raise
    with _IDLE_LOCK:
        _IDLE.append(jp)
    return out


def _run_point_here(job_name: str, point: dict[str, Any]) -> tuple[str, str, bool]:
    """Run one point in this thread: ``(status, result, is_bug)``."""
    try:
        result = _job(job_name)(point)
        text = json.dumps(result, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return "ok", text, False
    except NTKTheoryError as exc:
        return "error", " ".join(str(exc).split()), False
    except Exception as exc:  # a bug, not bad input: stored, and flagged in the summary
        msg = " ".join(f"{type(exc).__name__}: {exc}".split())
        return "error", f"internal error (please report): {msg}", True


# ---------------------------------------------------------------------------------- store


class ResultStore:
    """The SQLite store of a sweep (module docstring), locked for one writer.

    Use as a context manager; ``lock=False`` opens it for reading only.
    """

    def __init__(self, path: str | os.PathLike[str], *, lock: bool = True) -> None:
        self.path = Path(path)
        self._lockfile = None
        self.conn = None
        if not lock and not self.path.is_file():
            raise ParameterError(f"no store at '{self.path}'")
        if lock:
            self._acquire_lock()
        try:
            if lock:
                self.conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self.conn.execute("CREATE TABLE IF NOT EXISTS results "
                                  "(key TEXT PRIMARY KEY, status TEXT, result TEXT)")
            else:
                self.conn = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True,
                                            timeout=30.0, isolation_level=None)
            cols = [(r[1], r[2].upper(), r[5]) for r in self.conn.execute("PRAGMA table_info(results)")]
        except sqlite3.DatabaseError as exc:
            self.close()
            raise ParameterError(f"'{self.path}' is not a usable SQLite store: {exc}") from None
        if cols != [("key", "TEXT", 1), ("status", "TEXT", 0), ("result", "TEXT", 0)]:
            self.close()
            raise ParameterError(f"'{self.path}' has a 'results' table that is not a sweep store's "
                                 "(key TEXT PRIMARY KEY, status TEXT, result TEXT)")

    def _acquire_lock(self) -> None:
        # one lock per database file, however it is named (symbolic links, relative paths)
        lock_path = Path(str(self.path.resolve()) + ".lock")
        try:
            fh = open(lock_path, "a+", encoding="utf-8")
        except OSError as exc:
            raise ParameterError(f"cannot create the lock file '{lock_path}': {exc}") from None
        try:
            if os.name == "nt":  # pragma: no cover - Windows
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            fh.close()
            raise StoreLockedError(f"the store '{self.path}' is in use by another sweep ({owner}); "
                                   "wait for it to finish or use another --store") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {_hostname()}\n")
        fh.flush()
        self._lockfile = fh

    def keys(self) -> set[str]:
        return {k for (k,) in self.conn.execute("SELECT key FROM results")}

    def put(self, key: str, status: str, result: str) -> bool:
        """Store one result in its own transaction; False if the key was already stored."""
        try:
            cur = self.conn.execute("INSERT OR IGNORE INTO results(key, status, result) VALUES (?, ?, ?)",
                                    (key, status, result))
        except sqlite3.Error as exc:  # disk full, store deleted or made read-only meanwhile
            raise ResourceError(f"cannot write the store '{self.path}': {exc}") from None
        return cur.rowcount == 1

    def rows(self) -> list[tuple[str, str, str]]:
        return list(self.conn.execute("SELECT key, status, result FROM results ORDER BY key"))

    def close(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()
            self.conn = None  # type: ignore[assignment]
        if self._lockfile is not None:
            self._lockfile.close()  # releases the lock
            self._lockfile = None

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _hostname() -> str:
    import socket

    return socket.gethostname()


def read_store(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every stored point as ``{"key": {...}, "status": ..., "result": JSON or message}``."""
    with ResultStore(path, lock=False) as st:
        return [{"key": json.loads(k), "status": s, "result": json.loads(r) if s == "ok" else r}
                for k, s, r in st.rows()]


def sweep_results(spec: SweepSpec | Mapping[str, Any] | str | os.PathLike[str],
                  store: str | os.PathLike[str]) -> list[tuple[dict[str, Any], str | None, Any]]:
    """The stored results of ``spec``'s points, in grid order (last axis fastest).

    Returns ``[(point, status, result), ...]``: ``point`` as written in the spec,
    ``status`` ``"ok"`` (``result`` the parsed JSON), ``"error"`` (``result`` the
    message) or None when the point is not stored (yet).
    """
    _, planned = plan(spec)
    found: dict[str, tuple[str, str]] = {}
    if Path(store).exists():
        with ResultStore(store, lock=False) as st:
            found = {k: (s, r) for k, s, r in st.rows()}
    out = []
    for key, point in planned:
        status, result = found.get(key, (None, None))
        out.append((point, status, json.loads(result) if status == "ok" else result))
    return out


# ---------------------------------------------------------------------------------- sweep


@dataclass(frozen=True)
class SweepSummary:
    """What a sweep did.

    Attributes
    ----------
    job : str
    store : str
    total : int
        Grid points.
    done : int
        Results stored by this run (``ok`` and ``error``).
    skipped : int
        Points already in the store before this run.
    errors : int
        Results of this run stored as ``error``.
    bugs : int
        Of those, untyped exceptions (a bug in the toolkit, not bad input).
    seconds : float
        Wall-clock time of the run.
    interrupted : bool
    bug_keys : tuple of str
        Keys of the ``bugs`` points.
    """

    job: str
    store: str
    total: int
    done: int
    skipped: int
    errors: int
    bugs: int
    seconds: float
    interrupted: bool = False
    bug_keys: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["bug_keys"] = list(self.bug_keys)
        return d


def plan(spec: SweepSpec | Mapping[str, Any] | str | os.PathLike[str]) -> tuple[SweepSpec, list[tuple[str, dict]]]:
    """Validate a spec: ``(spec, [(key, point), ...])``; :class:`SpecError` on any bad point.

    Every point is parsed by its job's own parser here, before a cluster starts.
    """
    spec = load_spec(spec)
    job = _job(spec.job)
    out: dict[str, dict] = {}
    for point in spec.points():
        canon = job.validate(point)
        key = canonical_key(spec.job, canon)
        out.setdefault(key, point)
    return spec, list(out.items())


def sweep(spec: SweepSpec | Mapping[str, Any] | str | os.PathLike[str],
          store: str | os.PathLike[str], client: Any = None, *, workers: int | None = None,
          progress: bool | None = None, on_result: Callable[[str, str, str], None] | None = None,
          ) -> SweepSummary:
    """Run ``spec`` on dask and store every result in ``store`` (module docstring).

    Parameters
    ----------
    spec : SweepSpec, dict or path of a TOML file
    store : path
        SQLite database; created if missing, resumed if not.
    client : distributed.Client, optional
        Use this client's cluster.  Without one, a :class:`~distributed.LocalCluster` with
        ``workers`` single-threaded worker processes (default: the usable cores) is
        started on the loopback interface and closed at the end.
    workers : int, optional
        Size of the embedded local cluster (ignored with ``client``).
    progress : bool, optional
        A tqdm bar over the grid points on stderr; default: when stderr is a terminal.
    on_result : callable, optional
        ``on_result(key, status, result)`` after each commit.

    Returns
    -------
    SweepSummary

    Raises
    ------
    SpecError
        Bad spec (before any cluster starts).
    StoreLockedError
        Another sweep runs on ``store``.
    SweepInterrupted
        On ``KeyboardInterrupt``; the results finished so far are committed and the
        embedded cluster is closed.
    """
    t0 = time.perf_counter()
    spec, planned = plan(spec)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ParameterError(f"workers must be a positive integer, got {workers!r}")
    if workers is not None and client is None and workers > MAX_WORKERS_PER_CORE * default_workers():
        raise ResourceError(f"{workers} local worker processes on {default_workers()} core(s) is more than "
                            f"{MAX_WORKERS_PER_CORE} per core; use a cluster (--scheduler) for more")
    done = errors = bugs = 0
    bug_keys: list[str] = []
    with ResultStore(store) as st:
        stored = st.keys()
        pending = [(k, p) for k, p in planned if k not in stored]
        skipped = len(planned) - len(pending)

        def summary(interrupted: bool) -> SweepSummary:
            return SweepSummary(spec.job, str(store), len(planned), done, skipped, errors, bugs,
                                time.perf_counter() - t0, interrupted, tuple(bug_keys))

        if not pending:
            return summary(False)
        from tqdm.auto import tqdm

        box: dict[str, Any] = {}  # the embedded cluster and its client, as soon as they exist
        futures: list = []
        bar = None
        try:
            if client is None:
                _local_client(workers, box)
                client = box["client"]
            show = sys.stderr.isatty() if progress is None else bool(progress)
            bar = tqdm(total=len(planned), initial=skipped, desc=f"sweep {spec.job}", unit="point",
                       disable=not show, file=sys.stderr, leave=False)
            from distributed import as_completed
            from distributed.scheduler import KilledWorker

            _check_workers(client)
            token = uuid.uuid4().hex[:12]
            by_future = {}
            for i, (key, point) in enumerate(pending):
                # retries: only JobProcessDied reaches dask (the job's own errors are results)
                fut = client.submit(_run_point, spec.job, point, key=f"ntk-sweep-{spec.job}-{token}-{i}",
                                    pure=False, retries=2)
                by_future[fut.key] = key
                futures.append(fut)
            for fut in as_completed(futures):
                key = by_future[fut.key]
                try:
                    status, result, is_bug = fut.result()
                except (KilledWorker, JobProcessDied) as exc:  # this point kills its processes
                    status, is_bug = "error", True
                    result = "worker failure (please report): " + " ".join(
                        f"{type(exc).__name__}: {exc}".split())
                except Exception as exc:  # the worker cannot run the task at all: stop, store nothing
                    _cancel(client, futures)
                    msg = " ".join(f"{type(exc).__name__}: {exc}".split())
                    raise WorkerError(f"a worker could not run the {spec.job} task ({msg}); is the same "
                                      "ntk-theory installed on every worker?") from None
                fut.release()
                if st.put(key, status, result):
                    done += 1
                    if status == "error":
                        errors += 1
                    if is_bug:
                        bugs += 1
                        bug_keys.append(key)
                    if on_result is not None:
                        on_result(key, status, result)
                bar.update(1)
        except KeyboardInterrupt:
            _cancel(client, futures)
            if bar is not None:
                bar.close()
            _close(box)
            raise SweepInterrupted(summary(True)) from None
        finally:
            if bar is not None:
                bar.close()
            _close(box)
        return summary(False)


def add_target_arguments(parser: argparse.ArgumentParser, *, what: str = "results") -> None:
    """The options of :func:`sweep_target` on a script's parser: ``--store FILE``, and
    ``--workers N`` or ``--scheduler tcp://HOST:PORT`` (mutually exclusive)."""
    parser.add_argument("--store", default=None,
                        help=f"SQLite store of the {what}, resumed if it exists (default: a temporary one)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, help="local worker processes (default: the cores)")
    where.add_argument("--scheduler", default=None, help="an existing dask scheduler, tcp://HOST:PORT")


@contextlib.contextmanager
def sweep_target(store: str | os.PathLike[str] | None = None, scheduler: str | None = None, *,
                 name: str = "sweep.sqlite", local_workers: int | None = None) -> Iterator[tuple[Path, Any]]:
    """Where a script's sweeps run and store their results: ``(store path, client)``.

    The set-up every example with ``--store`` / ``--scheduler`` options needs.  With
    ``scheduler`` (``tcp://HOST:PORT``) a :class:`distributed.Client` connected to it,
    closed on exit; without one ``None``, so :func:`sweep` starts its embedded local
    cluster — or, with ``local_workers``, the client of one embedded local cluster of that
    many workers started here and closed on exit (a script running several sweeps then
    starts the cluster once).  With ``store`` that SQLite file (resumed if it exists);
    without one a file ``name`` in a temporary directory removed on exit.

    Parameters
    ----------
    store : path, optional
    scheduler : str, optional
    name : str
        File name of the temporary store.
    local_workers : int, optional
        Without ``scheduler``: start one embedded local cluster of this size.

    Yields
    ------
    (Path, distributed.Client or None)
    """
    import tempfile

    if local_workers is not None and (isinstance(local_workers, bool) or not isinstance(local_workers, int)
                                      or local_workers < 1):
        raise ParameterError(f"local_workers must be a positive integer, got {local_workers!r}")
    client = None
    box: dict[str, Any] = {}
    if scheduler:
        from distributed import Client

        client = Client(scheduler)
    elif local_workers is not None:
        _local_client(local_workers, box)
        client = box["client"]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            yield (Path(store) if store else Path(tmp) / name), client
    finally:
        if box:
            _close(box)
        elif client is not None:
            client.close()


def _check_workers(client: Any, timeout: float = 60.0) -> None:
    """Refuse a cluster whose workers cannot run the tasks: dask would leave a task whose
    function does not unpickle on its worker pending forever, not fail it."""
    from . import __version__

    try:
        client.wait_for_workers(1, timeout=timeout)
    except Exception:  # distributed raises TimeoutError (or its own subclass)
        raise WorkerError(f"no dask worker joined the scheduler within {timeout:g} s") from None
    try:
        # a fixed expression of ours (builtins pickle on any worker), no user input
        versions = client.run(eval, "__import__('ntk_theory.sweep').__version__")
    except Exception as exc:
        msg = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise WorkerError(f"the dask workers cannot import ntk_theory.sweep ({msg}); install the same "
                          "ntk-theory on every worker") from None
    other = {w: v for w, v in versions.items() if v != __version__}
    if other:
        raise WorkerError(f"worker(s) run other ntk-theory versions than this one ({__version__}): "
                          + ", ".join(f"{w}: {v}" for w, v in sorted(other.items())))


def _cancel(client: Any, futures: list) -> None:
    with contextlib.suppress(Exception):
        if client is not None and futures:
            client.cancel(futures, force=True)


def _close(box: dict[str, Any]) -> None:
    """Close the embedded cluster (once; a second Ctrl-C meanwhile is not caught)."""
    client, cluster = box.pop("client", None), box.pop("cluster", None)
    if client is not None:
        with contextlib.suppress(Exception):
            client.close(timeout=10)
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close(timeout=10)


def default_workers() -> int:
    """The usable cores of this machine."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def local_cluster_kwargs(n_workers: int) -> dict[str, Any]:
    """Keyword arguments of the embedded :class:`~distributed.LocalCluster`.

    ``n_workers`` processes with one thread each, everything on 127.0.0.1, no dashboard
    (the scheduler's HTTP server, which dask starts anyway, on a free loopback port
    rather than 8787), only errors logged.
    """
    import logging

    return dict(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": False},
                worker_dashboard_address=None, silence_logs=logging.ERROR)


class _IgnoreSigint:
    """Worker plugin: the worker process ignores SIGINT (workers restarted later included)."""

    name = "ntk-theory-ignore-sigint"

    def setup(self, worker: Any) -> None:
        import signal

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    def teardown(self, worker: Any) -> None:
        pass


def _local_client(workers: int | None, box: dict[str, Any]) -> None:
    """A loopback-only LocalCluster (processes, one thread each, no dashboard) in ``box``.

    Ctrl-C in a terminal signals the whole process group; the worker processes must not
    die of it with tracebacks — only this process stops the sweep, then closes them.  So
    SIGINT is ignored here while the workers are spawned (an ignored signal stays ignored
    in a child process, and Python then installs no KeyboardInterrupt handler there) and
    a worker plugin ignores it in workers the nanny restarts later.  A Ctrl-C during
    those few seconds of start-up is lost (a blocked, ignored signal is not reliably kept
    pending): press it again once the sweep runs.
    """
    import signal

    import dask
    from distributed import Client, LocalCluster
    from distributed.diagnostics.plugin import WorkerPlugin

    n = default_workers() if workers is None else workers
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 3}):
            box["cluster"] = LocalCluster(**local_cluster_kwargs(n))
        box["client"] = client = Client(box["cluster"])
        plugin = type("IgnoreSigint", (_IgnoreSigint, WorkerPlugin), {})()
        client.register_plugin(plugin)
    finally:
        if main:
            signal.signal(signal.SIGINT, old)
