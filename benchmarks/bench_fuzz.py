"""Long fuzzing run of the Gaussian expectation engine (issue 5 §3).

Draws random expressions from :func:`ntk_theory.testing.expressions` (depth 2 by
default, with every ``HOSTILE`` leaf, including ``floor`` and ``1/√|x|`` that the CI
fuzz test leaves out for time), scales τ log-uniform in [0.25, 4], orders 0–2 and
squared integrands declared non-negative, and calls
:func:`ntk_theory.expectation.gaussian_expectation` under a per-example wall-clock
watchdog.  Prints the counts recorded in docs/BENCHMARKS.md:

* examples tried, closed forms, numeric fallbacks (quadrature), infinite results;
* typed errors by class;
* contract violations: NaN, bad inf, untyped errors, hangs (watchdog);
* with ``--check``: values compared with SciPy QUADPACK
  (:func:`ntk_theory.testing.reference_expectation`), mismatches counted when the
  difference exceeds 10× both error estimates plus 1e-7 of the integral's scale;
* time per example (median, 99th percentile, maximum; wall clock, and CPU time of this
  process so that a loaded machine is not mistaken for a slow engine), load average at the end.

With ``--texts`` the examples are instead hostile expression *texts* from
:func:`ntk_theory.testing.hostile_texts` (issue 11: huge literals, nested special
functions, non-dyadic poles, incomplete Piecewise, floor/ceiling at high frequency,
big ``digits``, code-execution attempts), each parsed and then one moment computed
by :func:`ntk_theory.testing.check_text`; a canary file that any evaluated payload
would create is checked after every example (``code_executions``).

Usage::

    python benchmarks/bench_fuzz.py --examples 5000 --seed 1 --check
    python benchmarks/bench_fuzz.py --texts --examples 2000 --seed 1 --check
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import sympy as sp
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ntk_theory.expectation import breakpoints  # noqa: E402
from ntk_theory.testing import (  # noqa: E402
    check_expectation,
    check_text,
    expressions,
    hostile_texts,
    reference_expectation,
    taus,
)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-depth", type=int, default=2)
    ap.add_argument("--digits", type=int, default=8)
    ap.add_argument("--budget", type=float, default=0.2, help="symbolic CPU seconds per call")
    ap.add_argument("--timeout", type=float, default=60.0, help="watchdog per example (wall-clock s)")
    ap.add_argument("--check", action="store_true", help="compare values with SciPy QUADPACK")
    ap.add_argument("--json", action="store_true", help="print the counts as JSON")
    ap.add_argument("--texts", action="store_true", help="hostile expression texts (issue 11)")
    ap.add_argument("--canary", default=None, help="file a code-execution payload would create")
    ap.add_argument("--checkpoint", default=None, help="write the counts so far to this file every 25 examples")
    ap.add_argument("--keep-gc-callback", action="store_true",
                    help="keep Hypothesis' gc callback (exposes the lost-budget engine bug)")
    args = ap.parse_args(argv)

    kinds: Counter = Counter()
    errors: Counter = Counter()
    times: list[float] = []
    cpu_times: list[float] = []  # this process's CPU seconds: tells a slow call from a loaded machine
    bad: list[str] = []
    mismatches: list[str] = []
    checked = 0

    canary = args.canary or str(Path(tempfile.mkdtemp(prefix="ntk_fuzz_")) / "canary")
    classes: Counter = Counter()
    code_executions = 0

    @seed(args.seed)
    @settings(max_examples=args.examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(f=(hostile_texts(canary) if args.texts else expressions(max_depth=args.max_depth, hostile=True)),
           tau=taus(0.25, 4.0), order=st.sampled_from((0, 1, 2)), square=st.booleans())
    def run(f, tau, order, square):
        nonlocal code_executions
        nonneg = False
        cpu = time.process_time()
        if args.texts:
            cls, text, digits = f
            out = check_text(text, tau, order, square=square, digits=digits, budget=args.budget,
                             timeout=args.timeout, canary=canary)
            classes[(cls, out.kind)] += 1
            if out.kind == "code execution" or os.path.exists(canary):
                code_executions += 1
                os.unlink(canary)
            if out.expr is None:
                f = sp.Symbol("unparsed")
            else:
                f = out.expr
            if square:
                order, nonneg = 0, True
        else:
            if square:
                f, order, nonneg = sp.piecewise_fold(f**2), 0, True
            out = check_expectation(f, tau, order, digits=args.digits, budget=args.budget,
                                    nonnegative=nonneg, timeout=args.timeout)
        cpu_times.append(time.process_time() - cpu)
        if args.checkpoint and len(cpu_times) % 25 == 0:  # partial counts survive an interrupted run
            Path(args.checkpoint).write_text(json.dumps(summary(), indent=2))
        kinds[out.kind] += 1
        times.append(out.seconds)
        if out.kind == "typed error":
            errors[out.error.split(":")[0]] += 1
        if not out.ok:
            bad.append(f"{out.kind}: {f if not args.texts else text!s:.200} tau={tau!r} order={order} "
                       f"{out.error}")
        if args.check and out.kind in ("closed form", "numeric"):
            nonlocal checked
            weight = {0: "1", 1: "xi", 2: "he2"}[order]
            try:
                bps = breakpoints(f)
                ref, ref_err = reference_expectation(f, tau, weight, breakpoints=bps)
                l1, _ = reference_expectation(sp.Abs(f), tau, "1", breakpoints=bps)
            except Exception:  # noqa: BLE001 - the reference cannot evaluate everything (e.g. besselj)
                return
            ref, ref_err = ref / tau**order, ref_err / tau**order
            if not (math.isfinite(ref) and math.isfinite(l1)):
                return
            checked += 1
            scale = 2 * l1 * max(1.0, 16.0 ** order) / tau**order  # |He_k| ≤ ... on the bulk
            if abs(out.value - ref) > 10 * (out.abs_error + ref_err) + 1e-7 * scale:
                mismatches.append(f"{f} tau={tau!r} order={order}: engine {out.value!r} ± {out.abs_error:.2g}, "
                                  f"QUADPACK {ref!r} ± {ref_err:.2g}")

    # Hypothesis times gc with a gc callback; an engine budget signal landing inside it is
    # dropped (engine bug, tests/test_fuzz_engine.py::test_bug_budget_lost_in_gc_callback).
    # --keep-gc-callback measures that bug; by default the callback is removed.
    if not args.keep_gc_callback:
        from hypothesis.internal.conjecture.junkdrawer import gc_cumulative_time

        gc_cumulative_time()
        gc.callbacks[:] = [cb for cb in gc.callbacks
                           if "gc_cumulative_time" not in getattr(cb, "__qualname__", "")]
    def summary() -> dict:
        wall = time.perf_counter() - t0
        total = sum(kinds.values())
        ts = sorted(times)
        return {
            "commit": _commit(),
            "python": platform.python_version(),
            "sympy": sp.__version__,
            "examples": total,
            "seed": args.seed,
            "max_depth": args.max_depth,
            "digits": args.digits,
            "budget_s": args.budget,
            "watchdog_s": args.timeout,
            "closed_forms": kinds["closed form"],
            "numeric_fallbacks": kinds["numeric"],
            "infinite": kinds["infinite"],
            "typed_errors": dict(sorted(errors.items())),
            "nan": kinds["nan"],
            "bad_inf": kinds["bad inf"],
            "untyped_errors": kinds["untyped error"],
            "hangs": kinds["hang"],
            "code_executions": code_executions if args.texts else None,
            "outcomes_by_class": ({f"{c} / {k}": n for (c, k), n in sorted(classes.items())}
                                  if args.texts else None),
            "checked_against_quadpack": checked if args.check else None,
            "value_mismatches": len(mismatches) if args.check else None,
            "seconds_median": statistics.median(ts) if ts else math.nan,
            "seconds_p99": ts[min(len(ts) - 1, int(0.99 * len(ts)))] if ts else math.nan,
            "seconds_max": ts[-1] if ts else math.nan,
            "cpu_seconds_p99": sorted(cpu_times)[min(len(ts) - 1, int(0.99 * len(ts)))] if ts else math.nan,
            "cpu_seconds_max": max(cpu_times) if cpu_times else math.nan,
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "wall_seconds": wall,
            "violations": bad[:20],
            "mismatch_examples": mismatches[:20],
        }

    t0 = time.perf_counter()
    run()
    res = summary()
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            print(f"{k:>26}: {v}")
    for line in bad[:50]:
        print("VIOLATION", line)
    for line in mismatches[:50]:
        print("MISMATCH", line)
    return 0 if not bad and not code_executions else 1


if __name__ == "__main__":
    sys.exit(main())
