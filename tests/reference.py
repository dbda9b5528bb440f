"""Shared test helpers: independent high-precision references for the moment tests, and
:func:`cli`, the in-process command-line runner of the CLI tests.

Plain mpmath quadrature of the defining integrals, written separately from the
engine: ``E[g(τξ) He_k(ξ)]/τ^k`` with ``He_0 = 1, He_1 = ξ, He_2 = ξ² − 1`` (Stein
forms, docs/reference.rst §1), split at the activation's breakpoints and at ±1, ±3 around
them so that kinks and steps never sit inside a quadrature panel.
"""

from __future__ import annotations

import contextlib
import io
import signal

import mpmath as mp
import sympy as sp

from ntk_theory.activations import Activation, X, derivative_expr, to_piecewise
from ntk_theory.jump import MOMENT_KEYS


def _breaks(act: Activation) -> list[float]:
    if act.staircase is not None:
        return list(act.staircase.thresholds)
    pts: set[float] = set()
    pw = to_piecewise(act.expr)
    for rel in pw.atoms(sp.core.relational.Relational):
        for side in (rel.lhs, rel.rhs):
            if side.is_number:
                pts.add(float(side))
        sol = sp.solve(rel.lhs - rel.rhs, X)
        pts.update(float(v) for v in sol if v.is_real)
    return sorted(pts)


def reference_moments(act: Activation, tau: float, dps: int = 45) -> dict[str, mp.mpf]:
    """The six moments of ``act`` at ``tau`` by direct quadrature at ``dps`` digits."""
    with mp.workdps(dps):
        t = mp.mpf(tau)
        # thresholds as the exact decimals the user typed (0.7 means 7/10, as in the engine)
        zs = sorted({mp.mpf(repr(float(b))) / t for b in _breaks(act)} | {mp.mpf(0)})
        nodes = [-mp.inf, *zs, mp.inf]
        if act.staircase is not None:
            levels = [mp.mpf(repr(float(v))) for v in act.staircase.levels]
            thr = [mp.mpf(repr(float(v))) for v in act.staircase.thresholds]

            def f(u):
                k = sum(1 for s in thr if u > s)
                return levels[k]
            fsq = lambda u: f(u) ** 2  # noqa: E731
            d2 = None
        else:
            pw = to_piecewise(act.expr)
            f = sp.lambdify(X, pw, "mpmath")
            fsq = sp.lambdify(X, sp.piecewise_fold(pw**2), "mpmath")
            d = derivative_expr(act.expr)
            d2 = sp.lambdify(X, sp.piecewise_fold(to_piecewise(d) ** 2), "mpmath")

        def E(g, k):
            He = (lambda z: 1, lambda z: z, lambda z: z * z - 1)[k]
            v = mp.quad(lambda z: mp.re(g(t * z)) * He(z) * mp.npdf(z), nodes, maxdegree=12)
            return v / t**k

        out = {
            "E[s]": E(f, 0),
            "E[s']": E(f, 1),
            "E[s'']": E(f, 2),
            "E[s^2]": E(fsq, 0),
            "E[s'^2]": mp.inf if d2 is None else E(d2, 0),
            "E[(s^2)'']": E(fsq, 2),
        }
    return {k: out[k] for k in MOMENT_KEYS}


def rel_err(value: mp.mpf, ref: mp.mpf, floor: mp.mpf = mp.mpf("1e-30")) -> float:
    """Relative error, with an absolute floor: exact zeros (parity) are compared absolutely,
    since the reference quadrature returns ~1e-50 where the exact value is 0."""
    if ref == mp.inf or value == mp.inf:
        return 0.0 if ref == value else float("inf")
    return float(abs(value - ref) / max(abs(ref), floor))


def cli(*argv: str) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``ntk-theory ARGV`` run in this process.

    argparse reports usage errors and ``--help`` by raising ``SystemExit``; its code is the
    exit status (``None`` → 0, a message → 1, as the interpreter would exit).
    """
    from ntk_theory.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return rc, out.getvalue(), err.getvalue()


def default_sigint() -> None:
    """``preexec_fn`` for children that must feel Ctrl-C: SIGINT back to its default action.

    A shell without job control starts background commands (``cmd &``, ``nohup``) with
    SIGINT ignored; children inherit that and Python then installs no KeyboardInterrupt
    handler, so a test sending SIGINT would check nothing.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
