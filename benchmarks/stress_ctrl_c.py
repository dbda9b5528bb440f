"""Ctrl-C at random moments of ``python -m ntk_theory`` (the race behind a CI failure).

Starts ``python -m ntk_theory spectrum tanh --n 300 --width 300 --quiet`` again and again,
sends SIGINT after a delay drawn uniformly from ``[--min-delay, --max-delay]`` seconds
(start-up: the parser's imports, mpmath's back-end selection among them), and counts the
outcomes.  The contract (docs/cli.rst): exit status 130 and exactly the line
``ntk-theory spectrum: interrupted`` on stderr.  Anything else is printed with its delay
and stderr, and counted as a violation: status 0 (the interrupt was dropped and the
command ran to completion), −2 (killed by SIGINT before Python installed its handler,
within the interpreter's own start-up), a traceback or "Exception ignored" lines.

``--load K`` runs K busy-looping processes alongside (a loaded CI machine widens the
windows where library code can drop the interrupt); ``PYTHONDONTWRITEBYTECODE=1`` makes
every run compile its modules, as a fresh checkout's first run does.

Usage::

    python benchmarks/stress_ctrl_c.py --trials 150 --load 2 --seed 2
    python benchmarks/stress_ctrl_c.py --trials 100 --load 2 --seed 3 --max-delay 3

Exit status 0 when every trial met the contract, 1 otherwise.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPECTED = "ntk-theory spectrum: interrupted"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a shell's background jobs ignore it


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=150)
    ap.add_argument("--min-delay", type=float, default=0.15)
    ap.add_argument("--max-delay", type=float, default=0.8)
    ap.add_argument("--load", type=int, default=0, help="busy-looping processes alongside")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONDONTWRITEBYTECODE="1")
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    outcomes: collections.Counter[str] = collections.Counter()
    t0 = time.time()
    try:
        for _ in range(args.trials):
            delay = rng.uniform(args.min_delay, args.max_delay)
            p = subprocess.Popen([sys.executable, "-m", "ntk_theory", "spectrum", "tanh", "--n", "300",
                                  "--width", "300", "--quiet"], cwd=ROOT, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_sigint)
            time.sleep(delay)
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=300)
            ok = p.returncode == 130 and err.strip() == EXPECTED
            outcomes["ok" if ok else f"status {p.returncode}"] += 1
            if not ok:
                print(f"delay {delay:.3f} s: status {p.returncode}, stderr:\n{err.rstrip()}\n")
    finally:
        for h in hogs:
            h.kill()
    load = os.getloadavg()[0]
    print(f"`python benchmarks/stress_ctrl_c.py --trials {args.trials} --min-delay {args.min_delay} "
          f"--max-delay {args.max_delay} --load {args.load} --seed {args.seed}`: "
          f"{dict(outcomes)} in {time.time() - t0:.0f} s, load {load:.1f} at the end "
          f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    return 0 if outcomes["ok"] == args.trials else 1


if __name__ == "__main__":
    sys.exit(main())
