"""``ntk-theory sweep``: a job over a grid on dask.distributed, resumable (docs/sweep.rst).

A thin layer over :func:`ntk_theory.sweep.sweep`.  Without ``--scheduler`` an embedded
loopback-only ``LocalCluster`` (``--workers`` processes, one thread each, no dashboard)
runs the grid; with it, an existing scheduler's workers do.  The spec is checked before
any cluster starts (bad spec: one line, exit 2).  Ctrl-C stops the sweep with every
finished result committed, one line on stderr and exit status 130; a rerun resumes.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import ParameterError
from ._common import positive_int

HELP = "run a job (moments, coefficients, compress, spectrum, experiment2, ...) over a TOML grid " \
       "on dask.distributed, storing every result in a resumable SQLite database"


def _scheduler(text: str) -> str:
    if "://" not in text or text.split("://", 1)[0] not in ("tcp", "tls", "inproc", "ucx", "ws", "wss"):
        raise argparse.ArgumentTypeError(f"'{text}' is not a scheduler address like tcp://HOST:PORT")
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC.toml", help="job and [grid] (a list is an axis, a scalar is fixed)")
    p.add_argument("--store", required=True, metavar="RESULTS.sqlite",
                   help="SQLite store: created if missing; points already stored are skipped")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=positive_int, default=None, metavar="N",
                       help="worker processes of the embedded local cluster (default: the cores)")
    where.add_argument("--scheduler", type=_scheduler, default=None, metavar="tcp://HOST:PORT",
                       help="run on an existing dask scheduler instead of a local cluster")
    p.add_argument("--json", action="store_true",
                   help="print a summary as JSON (points done / skipped / errors, seconds)")


def run(args: argparse.Namespace) -> int:
    from ..sweep import SweepInterrupted, plan, sweep

    spec, _ = plan(args.spec)  # bad spec: typed error before any cluster or store is touched
    client = None
    if args.scheduler is not None:
        client = _connect(args.scheduler)
    try:
        res = sweep(spec, args.store, client)
    except SweepInterrupted as exc:
        s = exc.summary
        sys.stderr.write(f"ntk-theory sweep: interrupted; {s.done} new result(s) committed to "
                         f"{s.store} ({s.done + s.skipped}/{s.total} points stored; rerun to resume)\n")
        return 130
    except KeyboardInterrupt:  # before the sweep started: nothing was computed
        sys.stderr.write("ntk-theory sweep: interrupted before any result; rerun to start\n")
        return 130
    finally:
        if client is not None:
            client.close()
    if args.json:
        from ._common import dump_json

        dump_json(res.to_dict())
    else:
        print(f"{res.job}: {res.total} points, {res.done} computed ({res.errors} errors), "
              f"{res.skipped} already stored, {res.seconds:.1f} s -> {res.store}")
    if res.bugs:
        sys.stderr.write(f"ntk-theory sweep: {res.bugs} point(s) failed with an internal error "
                         f"(please report), stored as 'error': {res.bug_keys[0]}"
                         + (" ..." if res.bugs > 1 else "") + "\n")
    return 0


def _connect(address: str):
    from distributed import Client

    try:
        return Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise ParameterError(f"cannot connect to the dask scheduler at {address}: {exc}") from None
