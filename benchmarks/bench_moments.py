#!/usr/bin/env python3
"""Benchmark of the Gaussian-moment engine (issue 2, docs/reference.rst §1).

For every registry activation (``ntk_theory.activations.example_activations()``)
at τ = 1 this script measures

* the **cold derivation time** of ``gaussian_moments(act, 1.0)``: each activation in
  a fresh Python process (default) — or in this process after clearing every cache
  (``--cold clear``) — timing only the call, not the imports;
* the **digits correct** of each of the six moments against a 40-digit
  **reference** computed here, independently of the engine: mpmath tanh-sinh
  quadrature at 50 significant digits of the Gaussian integral, split at the
  activation's exact breakpoints, with the derivative moments taken in their Stein
  forms (docs/reference.rst §1)

      E[σ'] = E[ξσ(τξ)]/τ,  E[σ''] = E[(ξ²−1)σ(τξ)]/τ²,  E[(σ²)''] = E[(ξ²−1)σ(τξ)²]/τ²,

  ``E[σ'²]`` from the almost-everywhere derivative, and ``E[σ'²] = +∞`` for a
  staircase (a squared Dirac delta).  Unless ``--quick`` is given the reference is
  verified by recomputing it at 60 digits on a different subdivision, and for
  staircases it is compared with the exact jump formula
  (:func:`ntk_theory.jump.staircase_moment_exprs`, evaluated at 50 digits);

side by side, in the same run, with two plain baselines on the same integrands:

* (a) ``scipy.integrate.quad`` over (−∞, ∞) of the NumPy function;
* (b) ``sympy.integrate`` over (−∞, ∞) of the SymPy expression, under the same
  time budget as the engine: 2 s of CPU time per moment (the engine's budget is
  CPU time too, so neither depends on the machine's load).  Each attempt runs in
  a worker process with a ``SIGPROF`` CPU timer and is killed from outside if the
  timer fails to stop it; such attempts are recorded as ``timeout``.

Digits are ``-log10(|estimate − reference| / scale)``, capped at 16 (float64), with
``scale = max(|reference|, E|integrand|)``: the relative error whenever the
integrand keeps its sign, and the error relative to the size of the integrand when
the moment is (close to) zero by cancellation (E[σ] of an odd σ, SELU's E[σ]).  The
engine's strict relative digits are reported too.  An infinite reference scores 16
when the estimate is +∞
and 0 otherwise.

Targets (issue 2): median cold derivation ≤ 1 s, none past the 2 s budget, ≥ 13
correct digits for every closed form.

Usage::

    python benchmarks/bench_moments.py                 # full run (about 5-10 min on 2 cores)
    python benchmarks/bench_moments.py --quick         # 5 activations, no reference verification
    python benchmarks/bench_moments.py --only relu,tanh --json out.json
    python benchmarks/bench_moments.py --repeat 3      # fastest of 3 cold runs (busy machine)
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import multiprocessing
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mpmath as mp
import numpy as np
import scipy
import scipy.integrate
import sympy as sp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, ROOT)

from ntk_theory.activations import (  # noqa: E402
    Activation,
    X,
    derivative_expr,
    example_activations,
    parse_activation,
    to_piecewise,
)
from ntk_theory.jump import MOMENT_KEYS, staircase_moment_exprs  # noqa: E402

#: Time budget per symbolic attempt, the engine's default (seconds).
BUDGET = 2.0
#: Working precision of the reference quadrature and of its verification.
REF_DPS = 50
VERIFY_DPS = 60
#: Digits the reference is claimed (and, without --quick, verified) to have.
REF_DIGITS = 40
#: Digits of a float64 result: the cap of the score.
FULL_DIGITS = 16.0
QUICK_SET = ("relu", "erf", "tanh", "sigma_T", "gelu")


# --------------------------------------------------------------------------- #
# Scoring
# --------------------------------------------------------------------------- #
def digits_correct(estimate: float | None, reference: mp.mpf, scale: mp.mpf) -> float:
    """Correct digits of ``estimate``: ``-log10(|estimate − reference| / scale)``, capped at 16.

    ``scale = max(|reference|, E|integrand|)`` (see :class:`Reference`), so this is the
    relative error whenever the integrand keeps its sign, and the error relative to
    the size of the integrand otherwise (E[σ] = 0 of an odd σ, SELU's E[σ] ≈ 0).
    An infinite reference scores 16 when the estimate is +∞ and 0 otherwise.
    """
    if estimate is None or (isinstance(estimate, float) and math.isnan(estimate)):
        return 0.0
    if reference == mp.inf:
        return FULL_DIGITS if estimate == math.inf else 0.0
    if not math.isfinite(estimate):
        return 0.0
    err = abs(mp.mpf(estimate) - reference)
    if err == 0:
        return FULL_DIGITS
    return float(min(FULL_DIGITS, max(0.0, -mp.log10(err / scale))))


def relative_digits(estimate: float | None, reference: mp.mpf) -> float | None:
    """Strict relative digits ``-log10(|estimate/reference − 1|)``; None for a zero or infinite reference."""
    if reference == mp.inf or reference == 0 or estimate is None or not math.isfinite(estimate):
        return None
    err = abs(mp.mpf(estimate) - reference)
    return FULL_DIGITS if err == 0 else float(min(FULL_DIGITS, -mp.log10(err / abs(reference))))


# --------------------------------------------------------------------------- #
# Reference: mpmath quadrature at 50 digits, split at exact breakpoints
# --------------------------------------------------------------------------- #
def exact_breakpoints(act: Activation) -> list[sp.Expr]:
    """Exact real points where the activation (or its derivative) is not smooth.

    The real roots of every relational inside the ``Piecewise`` form of the
    expression (Heaviside, Max, Min, Abs and sign are rewritten to ``Piecewise``
    first; staircases are ``Piecewise`` with their thresholds as exact rationals).
    """
    expr = to_piecewise(act.expr)
    points: set[sp.Expr] = set()
    for rel in expr.atoms(sp.core.relational.Relational):
        diff = sp.expand(rel.lhs - rel.rhs)
        if not diff.has(X):
            continue
        for root in sp.solve(diff, X):
            if root.is_real:
                points.add(sp.nsimplify(root))
    return sorted(points, key=lambda r: float(r))


def _mp_value(v: sp.Expr) -> mp.mpf:
    """An exact SymPy number as an mpf at the current precision."""
    return mp.mpf(str(sp.N(v, mp.mp.dps + 10)))


@dataclass(frozen=True)
class Reference:
    """The six reference moments and how well they are known.

    ``scales[k] = max(|values[k]|, E|integrand_k|)``: the size of the terms that
    make up moment ``k`` (equal to ``|values[k]|`` when the integrand keeps its sign).
    Agreements (``verified_digits``, ``jump_digits``) are measured relative to it.
    """

    values: dict[str, mp.mpf]
    scales: dict[str, mp.mpf]
    max_quad_error: float  # largest mpmath error estimate relative to the scale
    verified_digits: float | None  # agreement with the 60-digit recomputation
    jump_digits: float | None  # agreement with the exact jump formula (staircases only)
    seconds: float


def _stein_integrands(
    sigma: Callable[[mp.mpf], mp.mpf],
    dsigma: Callable[[mp.mpf], mp.mpf] | None,
    tau: mp.mpf,
) -> dict[str, Callable[[mp.mpf], mp.mpf]]:
    """Integrands in ξ (density included) whose integrals are the six moments."""
    norm = 1 / mp.sqrt(2 * mp.pi)

    def phi(t: mp.mpf) -> mp.mpf:
        return norm * mp.exp(-t * t / 2)

    out = {
        "E[s]": lambda t: sigma(tau * t) * phi(t),
        "E[s']": lambda t: t * sigma(tau * t) * phi(t) / tau,
        "E[s'']": lambda t: (t * t - 1) * sigma(tau * t) * phi(t) / tau**2,
        "E[s^2]": lambda t: sigma(tau * t) ** 2 * phi(t),
        "E[(s^2)'']": lambda t: (t * t - 1) * sigma(tau * t) ** 2 * phi(t) / tau**2,
    }
    if dsigma is not None:
        out["E[s'^2]"] = lambda t: dsigma(tau * t) ** 2 * phi(t)
    return out


_SIGNED = ("E[s]", "E[s']", "E[s'']", "E[(s^2)'']")  # integrands that may change sign


def _quadrature(
    act: Activation, tau: float, dps: int, extra_nodes: Sequence[int], with_scales: bool
) -> tuple[dict[str, mp.mpf], dict[str, mp.mpf], dict[str, mp.mpf]]:
    """(values, mpmath error estimates, E|integrand|) at ``dps`` digits."""
    with mp.workdps(dps):
        # plain mpmath on purpose: the reference must not share the engine's evaluation
        # code (its growth guards included), and the registry activations it runs on
        # have no exponential towers for a guard to cut
        sigma = sp.lambdify(X, to_piecewise(act.expr), modules="mpmath")
        dsigma = None
        if act.staircase is None:
            dsigma = sp.lambdify(X, derivative_expr(act.expr), modules="mpmath")
        t = mp.mpf(tau)
        nodes = {_mp_value(b) / t for b in exact_breakpoints(act)}
        nodes.update(mp.mpf(n) for n in extra_nodes)
        grid = [-mp.inf, *sorted(nodes), mp.inf]
        values: dict[str, mp.mpf] = {}
        errors: dict[str, mp.mpf] = {}
        absint: dict[str, mp.mpf] = {}
        for key, f in _stein_integrands(sigma, dsigma, t).items():
            v, err = mp.quad(f, grid, error=True)
            values[key], errors[key] = +v, +err
            if with_scales and key in _SIGNED:
                # the size of the integrand; 3 digits suffice, so a low precision and
                # extra nodes at the sign changes ξ = 0, ±1 of the Stein weights
                with mp.workdps(20):
                    absint[key] = mp.quad(lambda u, f=f: abs(f(u)),
                                          sorted(set(grid) | {mp.mpf(-1), mp.mpf(0), mp.mpf(1)}))
        if dsigma is None:
            values["E[s'^2]"] = mp.inf
            errors["E[s'^2]"] = mp.mpf(0)
        order = {k: values[k] for k in MOMENT_KEYS}
        return order, errors, absint


def reference_moments(act: Activation, tau: float = 1.0, verify: bool = True) -> Reference:
    """The 40-digit reference of the six moments (see module docstring)."""
    t0 = time.perf_counter()
    values, errors, absint = _quadrature(act, tau, REF_DPS, (-8, -4, -2, 0, 2, 4, 8), with_scales=True)
    with mp.workdps(REF_DPS):
        scales = {k: max(abs(values[k]), absint.get(k, mp.mpf(0))) if values[k] != mp.inf else mp.inf
                  for k in MOMENT_KEYS}
        worst = max((float(errors[k] / scales[k]) for k in MOMENT_KEYS
                     if scales[k] not in (0, mp.inf)), default=0.0)
        verified = None
        jump = None
        if verify:
            again, _, _ = _quadrature(act, tau, VERIFY_DPS, (-6, -3, -1, 1, 3, 6), with_scales=False)
            verified = min(_agreement(values[k], again[k], scales[k]) for k in MOMENT_KEYS)
        if act.staircase is not None:
            # the jump formula with the thresholds as the exact rationals of act.expr
            tau_sym = sp.Symbol("tau", positive=True)
            exprs = staircase_moment_exprs(act.staircase, tau_sym)
            closed = {k: (mp.inf if e == sp.oo else _mp_value(e.subs(tau_sym, sp.nsimplify(tau))))
                      for k, e in exprs.items()}
            jump = min(_agreement(values[k], closed[k], scales[k]) for k in MOMENT_KEYS)
    return Reference(values, scales, worst, verified, jump, time.perf_counter() - t0)


def _agreement(a: mp.mpf, b: mp.mpf, scale: mp.mpf) -> float:
    """Digits to which two high-precision values agree, relative to ``scale``."""
    if a == b:
        return float(REF_DPS)
    if mp.isinf(a) or mp.isinf(b) or scale == 0:
        return 0.0
    return float(min(REF_DPS, -mp.log10(abs(a - b) / scale)))


# --------------------------------------------------------------------------- #
# The engine, cold
# --------------------------------------------------------------------------- #
_ENGINE_CHILD = r"""
import json, sys, time
from ntk_theory.activations import parse_activation
from ntk_theory.moments import gaussian_moments
act = parse_activation(sys.argv[1])
tau = float(sys.argv[2])
t0, c0 = time.perf_counter(), time.process_time()
m = gaussian_moments(act, tau)
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
try:  # per-moment provenance, when the result exposes it
    per = {k: bool(m[k].closed_form) for k in m.values}
except Exception:
    per = {}
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "closed_form": bool(m.closed_form),
                  "per_moment_closed": per,
                  "values": {k: repr(float(v)) for k, v in m.values.items()}}))
"""


@dataclass(frozen=True)
class EngineRun:
    """One cold engine call: time, provenance (closed form or numeric) and values."""

    seconds: float | None
    closed_form: bool | None
    values: dict[str, float]
    error: str | None = None
    per_moment_closed: dict[str, bool] = field(default_factory=dict)
    cpu_seconds: float | None = None

    def is_closed(self, key: str) -> bool:
        """Whether moment ``key`` came from a closed form (activation-level flag as fallback)."""
        if key in self.per_moment_closed:
            return self.per_moment_closed[key]
        return bool(self.closed_form)


def engine_cold_process(act: Activation, tau: float, timeout: float) -> EngineRun:
    """``gaussian_moments(act, tau)`` in a fresh interpreter (nothing cached)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _ENGINE_CHILD, act.spec, repr(tau)],
            capture_output=True, text=True, timeout=timeout, env=env, check=False,
        )
    except subprocess.TimeoutExpired:
        return EngineRun(None, None, {}, f"no answer within {timeout:g} s")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return EngineRun(None, None, {}, last)
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return EngineRun(data["seconds"], data["closed_form"],
                     {k: float(v) for k, v in data["values"].items()},
                     per_moment_closed=data.get("per_moment_closed", {}),
                     cpu_seconds=data.get("cpu_seconds"))


def engine_cold_clear(act: Activation, tau: float) -> EngineRun:
    """``gaussian_moments(act, tau)`` in this process after clearing every cache."""
    from ntk_theory import expectation
    from ntk_theory.moments import gaussian_moments

    expectation.clear_caches()
    sp.core.cache.clear_cache()
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        m = gaussian_moments(act, tau)
    except Exception as exc:  # report, do not abort the benchmark
        return EngineRun(None, None, {}, f"{type(exc).__name__}: {exc}")
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    try:
        per = {k: bool(m[k].closed_form) for k in m.values}
    except Exception:  # noqa: BLE001 - provenance per moment is optional
        per = {}
    return EngineRun(dt, bool(m.closed_form), {k: float(v) for k, v in m.values.items()},
                     per_moment_closed=per, cpu_seconds=cpu)


# --------------------------------------------------------------------------- #
# Baseline (a): plain scipy.integrate.quad over (-inf, inf)
# --------------------------------------------------------------------------- #
def quad_baseline(act: Activation, tau: float) -> tuple[dict[str, float], float]:
    """The six moments by plain ``quad`` of the NumPy function (Stein forms)."""
    norm = 1 / math.sqrt(2 * math.pi)

    def s(t: float) -> float:
        return float(act(tau * t))

    def ds(t: float) -> float:
        return float(act.derivative(tau * t))

    def phi(t: float) -> float:
        return norm * math.exp(-t * t / 2)

    integrands = {
        "E[s]": lambda t: s(t) * phi(t),
        "E[s']": lambda t: t * s(t) * phi(t) / tau,
        "E[s'']": lambda t: (t * t - 1) * s(t) * phi(t) / tau**2,
        "E[s^2]": lambda t: s(t) ** 2 * phi(t),
        "E[s'^2]": lambda t: ds(t) ** 2 * phi(t),
        "E[(s^2)'']": lambda t: (t * t - 1) * s(t) ** 2 * phi(t) / tau**2,
    }
    out = {}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key, f in integrands.items():
            out[key] = float(scipy.integrate.quad(f, -np.inf, np.inf)[0])
    return out, time.perf_counter() - t0


# --------------------------------------------------------------------------- #
# Baseline (b): plain sympy.integrate under the time budget
# --------------------------------------------------------------------------- #
class _Alarm(BaseException):
    """Raised by the CPU-time timer; a BaseException so SymPy's ``except Exception`` cannot swallow it."""


def _sympy_integrands(act: Activation, tau: float) -> dict[str, sp.Expr]:
    t = sp.nsimplify(tau)
    sigma = act.expr.subs(X, t * X)
    dsigma = sp.diff(act.expr, X).subs(X, t * X)
    phi = sp.exp(-X**2 / 2) / sp.sqrt(2 * sp.pi)
    return {
        "E[s]": sigma * phi,
        "E[s']": X * sigma * phi / t,
        "E[s'']": (X**2 - 1) * sigma * phi / t**2,
        "E[s^2]": sigma**2 * phi,
        "E[s'^2]": dsigma**2 * phi,
        "E[(s^2)'']": (X**2 - 1) * sigma**2 * phi / t**2,
    }


def _sympy_attempt(spec: str, tau: float, key: str, budget: float) -> tuple[str, float | None, float]:
    """One ``sympy.integrate`` attempt: (status, value, seconds)."""
    def fire(signum: int, frame: Any) -> None:  # noqa: ARG001
        raise _Alarm

    old = signal.signal(signal.SIGPROF, fire)
    t0 = time.perf_counter()
    signal.setitimer(signal.ITIMER_PROF, budget)
    try:
        integrand = _sympy_integrands(parse_activation(spec), tau)[key]
        res = sp.integrate(integrand, (X, -sp.oo, sp.oo))
        if res.has(sp.Integral):
            return "unevaluated", None, time.perf_counter() - t0
        num = sp.N(res, 30)
        if num == sp.oo:
            return "ok", math.inf, time.perf_counter() - t0
        if not num.is_real:
            return "failed", None, time.perf_counter() - t0
        return "ok", float(num), time.perf_counter() - t0
    except _Alarm:
        return "timeout", None, time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - a baseline failing is a result
        return f"error: {type(exc).__name__}", None, time.perf_counter() - t0
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)


def _sympy_worker(conn: Any) -> None:
    while True:
        task = conn.recv()
        if task is None:
            return
        conn.send(_sympy_attempt(*task))


class SympyBaseline:
    """A worker process for ``sympy.integrate`` attempts, killed and respawned on a hang."""

    def __init__(self, budget: float, grace: float | None = None) -> None:
        self.budget = budget
        # wall-clock guard against a timer that cannot fire (SymPy stuck in C code);
        # generous, because on a busy machine 2 s of CPU can take several wall seconds
        self.grace = grace if grace is not None else 4 * budget + 10.0
        self._ctx = multiprocessing.get_context("fork")
        self._start()

    def _start(self) -> None:
        self._conn, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_sympy_worker, args=(child,), daemon=True)
        self._proc.start()

    def attempt(self, spec: str, tau: float, key: str) -> tuple[str, float | None, float]:
        t0 = time.perf_counter()
        self._conn.send((spec, tau, key, self.budget))
        if self._conn.poll(self.budget + self.grace):
            return self._conn.recv()
        # the alarm did not stop SymPy (stuck in C code): kill the worker
        self._proc.kill()
        self._proc.join()
        self._start()
        return "timeout", None, time.perf_counter() - t0

    def close(self) -> None:
        try:
            self._conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.kill()


# --------------------------------------------------------------------------- #
# Driver
# --------------------------------------------------------------------------- #
@dataclass
class Row:
    act: Activation
    ref: Reference
    engine: EngineRun
    quad: dict[str, float]
    quad_seconds: float
    sympy: dict[str, tuple[str, float | None, float]]
    digits: dict[str, dict[str, float]] = field(default_factory=dict)
    engine_relative: dict[str, float | None] = field(default_factory=dict)

    def score(self) -> None:
        ref, scale = self.ref.values, self.ref.scales
        self.digits = {
            "engine": {k: digits_correct(self.engine.values.get(k), ref[k], scale[k]) for k in MOMENT_KEYS},
            "quad": {k: digits_correct(self.quad[k], ref[k], scale[k]) for k in MOMENT_KEYS},
            "sympy": {k: digits_correct(self.sympy[k][1], ref[k], scale[k]) for k in MOMENT_KEYS},
        }
        # strict relative digits of the engine, where the reference is not ~0
        self.engine_relative = {
            k: relative_digits(self.engine.values.get(k), ref[k]) for k in MOMENT_KEYS
            if ref[k] == mp.inf or abs(ref[k]) > mp.mpf(10) ** -30 * scale[k]
        }

    def min_digits(self, method: str) -> float:
        return min(self.digits[method].values())


def _fmt_digits(v: float) -> str:
    return f"{v:.1f}"


def _sympy_cell(row: Row, key: str) -> str:
    status = row.sympy[key][0]
    if status == "ok":
        return _fmt_digits(row.digits["sympy"][key])
    return {"timeout": "t/o", "unevaluated": "unev."}.get(status, "err")


def markdown_tables(rows: list[Row]) -> str:
    lines = [
        "| activation | closed form | cold time [s] | CPU [s] | engine digits (min of 6) "
        "| quad digits (min of 6) | sympy digits (min of 6) | sympy timeouts / unevaluated |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cf = {True: "yes", False: "no", None: "—"}[r.engine.closed_form]
        secs = f"{r.engine.seconds:.3f}" if r.engine.seconds is not None else f"error: {r.engine.error}"
        cpu = f"{r.engine.cpu_seconds:.3f}" if r.engine.cpu_seconds is not None else "—"
        n_to = sum(1 for k in MOMENT_KEYS if r.sympy[k][0] == "timeout")
        n_un = sum(1 for k in MOMENT_KEYS if r.sympy[k][0] == "unevaluated")
        lines.append(
            f"| `{r.act.spec}` | {cf} | {secs} | {cpu} | {_fmt_digits(r.min_digits('engine'))} "
            f"| {_fmt_digits(r.min_digits('quad'))} | {_fmt_digits(r.min_digits('sympy'))} | {n_to} / {n_un} |"
        )
    lines += [
        "",
        "Digits per moment, as engine / quad / sympy (`t/o` = sympy timed out, `unev.` = "
        "returned an unevaluated integral, `err` = raised):",
        "",
        "| activation | " + " | ".join(f"`{k}`" for k in MOMENT_KEYS) + " |",
        "|---|" + "---|" * len(MOMENT_KEYS),
    ]
    for r in rows:
        cells = [
            f"{_fmt_digits(r.digits['engine'][k])} / {_fmt_digits(r.digits['quad'][k])} / {_sympy_cell(r, k)}"
            for k in MOMENT_KEYS
        ]
        lines.append(f"| `{r.act.name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows: list[Row], budget: float) -> tuple[str, bool]:
    times = [r.engine.seconds for r in rows if r.engine.seconds is not None]
    failed = [r.act.spec for r in rows if r.engine.seconds is None]
    past_wall = [r.act.spec for r in rows if r.engine.seconds is not None and r.engine.seconds > budget]
    # the engine's budget counts CPU time (ITIMER_PROF), so that is what it is held to
    past = [r.act.spec for r in rows if r.engine.seconds is not None
            and (r.engine.cpu_seconds if r.engine.cpu_seconds is not None else r.engine.seconds) > budget]
    closed = [r for r in rows if r.engine.closed_form]
    finite = [(r, k) for r in rows if r.engine.seconds is not None
              for k in MOMENT_KEYS if r.ref.values[k] != mp.inf]
    closed_digits = [r.digits["engine"][k] for r, k in finite if r.engine.is_closed(k)]
    numeric_digits = [r.digits["engine"][k] for r, k in finite if not r.engine.is_closed(k)]
    infinite_ok = sum(1 for r in rows for k in MOMENT_KEYS
                      if r.ref.values[k] == mp.inf and r.engine.values.get(k) == math.inf)
    infinite_all = sum(1 for r in rows for k in MOMENT_KEYS if r.ref.values[k] == mp.inf)
    closed_min = min(closed_digits, default=float("nan"))
    strict = [v for r in rows if r.engine.seconds is not None
              for k, v in r.engine_relative.items() if v is not None]
    strict_min = min(strict, default=float("nan"))
    numeric_min = min(numeric_digits, default=float("nan"))
    med = statistics.median(times) if times else float("nan")
    cpus = [r.engine.cpu_seconds for r in rows if r.engine.cpu_seconds is not None]
    cpu_med = statistics.median(cpus) if cpus else float("nan")
    mx = max(times) if times else float("nan")
    all_quad = [r.min_digits("quad") for r in rows]
    all_sympy = [r.min_digits("sympy") for r in rows]
    sym_to = sum(1 for r in rows for k in MOMENT_KEYS if r.sympy[k][0] == "timeout")
    sym_un = sum(1 for r in rows for k in MOMENT_KEYS if r.sympy[k][0] == "unevaluated")
    quad_secs = statistics.median(r.quad_seconds for r in rows)
    sym_secs = statistics.median(sum(v[2] for v in r.sympy.values()) for r in rows)
    ok = (bool(times) and not failed and med <= 1.0 and not past
          and (not closed_digits or closed_min >= 13) and infinite_ok == infinite_all)
    ref_err = max(r.ref.max_quad_error for r in rows)
    verified = [r.ref.verified_digits for r in rows if r.ref.verified_digits is not None]
    jump = [r.ref.jump_digits for r in rows if r.ref.jump_digits is not None]
    text = [
        f"- activations: {len(rows)} ({len(closed)} closed form, "
        f"{sum(1 for r in rows if r.engine.closed_form is False)} numeric, {len(failed)} failed"
        + (f": {', '.join(failed)}" if failed else "") + ")",
        f"- cold derivation time (wall clock): median {med:.3f} s, max {mx:.3f} s, over {budget:g} s: "
        f"{len(past_wall)}" + (f" ({', '.join(past_wall)})" if past_wall else ""),
        f"- cold derivation CPU time: median {cpu_med:.3f} s, max {max(cpus, default=float('nan')):.3f} s, "
        f"past the {budget:g} s CPU budget: {len(past)}" + (f" ({', '.join(past)})" if past else ""),
        f"- engine digits, worst moment: closed forms {closed_min:.1f} ({len(closed_digits)} moments), "
        f"numeric {numeric_min:.1f} ({len(numeric_digits)} moments); strict relative digits, "
        f"worst of {len(strict)} moments with a reference not ~0: {strict_min:.1f}; "
        f"+inf reported as +inf: {infinite_ok} of {infinite_all}",
        f"- plain quad digits (min of 6): median {statistics.median(all_quad):.1f}, worst {min(all_quad):.1f}; "
        f"median time for the six moments {quad_secs:.3f} s",
        f"- plain sympy.integrate digits (min of 6): median {statistics.median(all_sympy):.1f}; "
        f"{sym_to} of {len(rows) * 6} attempts timed out, {sym_un} unevaluated; "
        f"median time for the six moments {sym_secs:.1f} s",
        f"- reference: largest mpmath error estimate {ref_err:.1e} (relative to the scale)"
        + (f"; agrees with the {VERIFY_DPS}-digit recomputation to ≥ {min(verified):.0f} digits"
           if verified else "; not re-verified (--quick)")
        + (f"; with the jump formula to ≥ {min(jump):.0f} digits (staircases)" if jump else ""),
        f"- targets (median wall time ≤ 1 s, none past the {budget:g} s CPU budget, ≥ 13 digits for "
        f"every closed form, +∞ reported as +∞): "
        + ("met" if ok else "NOT met"),
    ]
    return "\n".join(text), ok


def source_revision() -> str:
    """The git commit the benchmark ran on, marked ``+dirty`` with local changes."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "ntk_theory"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return f"commit {head}" + ("+dirty" if dirty else "")


def _loadavg() -> str:
    """1/5/15-minute load averages: other processes on the machine slow the wall-clock timings."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unavailable"


def environment_line() -> str:
    return (
        f"Python {platform.python_version()}, SymPy {sp.__version__}, mpmath {mp.__version__}, "
        f"NumPy {np.__version__}, SciPy {scipy.__version__}; {os.cpu_count()} cores, {platform.machine()}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help=f"only {', '.join(QUICK_SET)}; skip the 60-digit re-verification of the reference")
    ap.add_argument("--only", default="", help="comma-separated registry names to run (default: all)")
    ap.add_argument("--cold", choices=("process", "clear"), default="process",
                    help="cold = a fresh interpreter per activation (default) or caches cleared in-process")
    ap.add_argument("--repeat", type=int, default=1,
                    help="cold runs per activation (each in a fresh process); the fastest is "
                         "reported, which filters out slowdowns caused by other processes (default 1)")
    ap.add_argument("--budget", type=float, default=BUDGET,
                    help="sympy.integrate budget per moment, seconds (default: the engine's 2 s)")
    ap.add_argument("--json", metavar="FILE", help="also write the raw results to FILE")
    args = ap.parse_args(argv)

    acts = example_activations()
    names = set(QUICK_SET) if args.quick else set()
    if args.only:
        names = {n.strip() for n in args.only.split(",") if n.strip()}
    if names:
        unknown = names - {a.name for a in acts}
        if unknown:
            ap.error(f"unknown registry name(s): {', '.join(sorted(unknown))}")
        acts = [a for a in acts if a.name in names]

    tau = 1.0
    command = "python benchmarks/bench_moments.py" + (" " + " ".join(sys.argv[1:])
                                                      if argv is None and sys.argv[1:] else "")
    print(f"# {command}", flush=True)
    print(f"# {datetime.date.today().isoformat()}, {source_revision()} — {environment_line()}", flush=True)
    print(f"# load average before the run: {_loadavg()}", flush=True)

    # 1. the engine, cold, before anything else is warm in this process
    engine: dict[str, EngineRun] = {}
    unstable: list[str] = []
    for a in acts:
        runs = [engine_cold_process(a, tau, timeout=60.0) if args.cold == "process"
                else engine_cold_clear(a, tau) for _ in range(max(1, args.repeat))]
        ok_runs = [r for r in runs if r.seconds is not None]
        run = min(ok_runs, key=lambda r: r.seconds) if ok_runs else runs[0]
        if len({(r.closed_form, tuple(sorted(r.per_moment_closed.items()))) for r in ok_runs}) > 1:
            unstable.append(a.spec)  # closed form in one run, numeric in another
        engine[a.spec] = run
        state = (" ".join(f"{r.seconds:.3f}" for r in ok_runs) + " s"
                 if run.seconds is not None else f"FAILED ({run.error})")
        print(f"engine  {a.spec:<60} {state}", file=sys.stderr, flush=True)

    # 2. references, 3. plain quad, 4. plain sympy.integrate
    sym = SympyBaseline(args.budget)
    rows: list[Row] = []
    try:
        for a in acts:
            ref = reference_moments(a, tau, verify=not args.quick)
            qv, qs = quad_baseline(a, tau)
            sv = {k: sym.attempt(a.spec, tau, k) for k in MOMENT_KEYS}
            row = Row(a, ref, engine[a.spec], qv, qs, sv)
            row.score()
            rows.append(row)
            print(f"ref     {a.spec:<60} {ref.seconds:.1f} s; sympy "
                  f"{sum(v[2] for v in sv.values()):.1f} s", file=sys.stderr, flush=True)
    finally:
        sym.close()

    text, ok = summary(rows, BUDGET)
    print(f"# load average after the run: {_loadavg()}")
    print()
    print(text)
    if args.repeat > 1:
        print(f"- cold times are the fastest of {args.repeat} fresh-process runs; provenance "
              "(closed form vs numeric) differed between runs for: "
              + (", ".join(unstable) if unstable else "none"))
    print()
    print(markdown_tables(rows))

    if args.json:
        raw = [{
            "activation": r.act.spec,
            "closed_form": r.engine.closed_form,
            "cold_seconds": r.engine.seconds,
            "cold_cpu_seconds": r.engine.cpu_seconds,
            "engine_error": r.engine.error,
            "reference": {k: mp.nstr(v, REF_DIGITS) for k, v in r.ref.values.items()},
            "scale": {k: mp.nstr(v, 5) for k, v in r.ref.scales.items()},
            "engine_relative_digits": r.engine_relative,
            "reference_check": {"max_quad_error": r.ref.max_quad_error,
                                "verified_digits": r.ref.verified_digits,
                                "jump_formula_digits": r.ref.jump_digits},
            "engine": {k: repr(v) for k, v in r.engine.values.items()},
            "quad": {k: repr(v) for k, v in r.quad.items()},
            "sympy": {k: {"status": s, "value": None if v is None else repr(v), "seconds": t}
                      for k, (s, v, t) in r.sympy.items()},
            "digits": r.digits,
        } for r in rows]
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"command": command, "revision": source_revision(),
                       "environment": environment_line(), "rows": raw}, fh, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
