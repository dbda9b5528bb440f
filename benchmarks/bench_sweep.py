"""``ntk-theory sweep`` on dask.distributed (issue 14): interruption, resumption, throughput.

Two measurements, each printing Markdown for ``docs/BENCHMARKS.md``:

``interrupt --scheduler tcp://127.0.0.1:PORT``
    Against a scheduler and workers started by hand (``dask scheduler``, ``dask
    worker``): the moments grid 6 activations × 3 τ is started with ``ntk-theory
    sweep``, interrupted with SIGINT after ``--after`` seconds and rerun.  Checks, and
    exits 1 unless all hold: the interrupted run exits 130 with one line on stderr and
    leaves a consistent store; the rerun exits 0; every grid point is stored exactly
    once with status ok; every stored result equals the single-point
    ``ntk-theory moments ACT --tau T --budget B --json`` output (run as a separate
    process per point), object for object.

``throughput``
    A 200-point grid on an embedded local cluster with 1 and then 2 worker processes
    (same run; cluster start-up and the workers' imports excluded, reported apart):
    wall time, points per second, scaling ratio, the workers' CPU seconds.  Scheduler
    overhead per point: the same points computed in this process by direct calls of the
    job (no dask) vs the 1-worker sweep, and a trivial job (``echo``) through the sweep.

Run from the repository root::

    python benchmarks/bench_sweep.py throughput
    dask scheduler --host 127.0.0.1 --port 8799 --no-dashboard &
    dask worker tcp://127.0.0.1:8799 --host 127.0.0.1 --nworkers 2 --nthreads 1 --no-dashboard &
    python benchmarks/bench_sweep.py interrupt --scheduler tcp://127.0.0.1:8799
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ACTIVATIONS = ["relu", "tanh", "gelu", "erf", "swish", "softplus"]
TAUS = [0.5, 1.0, 2.0]
#: symbolic budget (s) large enough that no moment of these activations falls back to
#: quadrature because of load alone: the sweep and the single-point calls then take the
#: same code path and must agree exactly.
BUDGET = 30.0


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _header(cmd: str) -> None:
    import dask
    import distributed

    print(f"command: `{cmd}`  ")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, dask {dask.__version__}, "
          f"distributed {distributed.__version__}, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}  ")


def _rows(store: Path) -> list[tuple[str, str, str]]:
    con = sqlite3.connect(str(store))
    try:
        return list(con.execute("SELECT key, status, result FROM results"))
    finally:
        con.close()


def _committed(store: Path) -> int:
    try:
        return len(_rows(store))
    except sqlite3.Error:
        return 0


def interrupt(args: argparse.Namespace) -> int:
    _header(" ".join(["python", *sys.argv]))
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    spec = tmp / "moments.toml"
    spec.write_text(f'job = "moments"\n[grid]\nactivations = {json.dumps(ACTIVATIONS)}\n'
                    f"tau = {json.dumps(TAUS)}\nbudget = {BUDGET}\n")
    store = tmp / "moments.sqlite"
    cmd = [sys.executable, "-m", "ntk_theory", "sweep", str(spec), "--store", str(store),
           "--scheduler", args.scheduler]
    print(f"\nspec ({spec.name}):\n\n```toml\n{spec.read_text()}```\n")
    problems: list[str] = []
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # SIGINT once at least --after seconds have passed and a first result is committed
    # (under heavy load the command may still be importing after a few seconds)
    while p.poll() is None and (time.perf_counter() - t0 < args.after or not _committed(store)):
        time.sleep(0.1)
    t_sig = time.perf_counter() - t0
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=300)
    t_int = time.perf_counter() - t0
    first = _rows(store) if store.exists() else []
    print(f"1. `ntk-theory sweep moments.toml --store moments.sqlite --scheduler {args.scheduler}`, "
          f"SIGINT after {t_sig:.1f} s: exit {p.returncode} after {t_int:.1f} s, "
          f"{len(first)}/18 points committed; stderr: `{err.strip()}`")
    if p.returncode != 130:
        problems.append(f"interrupted run exited {p.returncode}, not 130")
    if len(err.splitlines()) != 1:
        problems.append(f"interrupted run wrote {len(err.splitlines())} lines on stderr")
    if not 0 < len(first) < 18:
        problems.append(f"the interrupt did not fall mid-grid ({len(first)} of 18 stored): change --after")
    t0 = time.perf_counter()
    r = subprocess.run(cmd + ["--json"], env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    t_re = time.perf_counter() - t0
    summary = json.loads(r.stdout) if r.returncode == 0 else {}
    print(f"2. the same command with `--json` (rerun): exit {r.returncode} after {t_re:.1f} s, summary "
          f"`{json.dumps({k: summary.get(k) for k in ('total', 'done', 'skipped', 'errors', 'bugs')})}`")
    if r.returncode != 0 or summary.get("skipped") != len(first) or summary.get("done") != 18 - len(first):
        problems.append(f"rerun: exit {r.returncode}, summary {summary}, stderr {r.stderr.strip()}")
    rows = _rows(store)
    keys = [json.loads(k) for k, _, _ in rows]
    points = sorted((k["activations"][0], k["tau"]) for k in keys)
    want = sorted((a, t) for a in ACTIVATIONS for t in TAUS)
    con = sqlite3.connect(str(store))
    integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    n, distinct = con.execute("SELECT count(*), count(DISTINCT key) FROM results").fetchone()
    con.close()
    statuses = sorted({s for _, s, _ in rows})
    print(f"3. store: {n} rows, {distinct} distinct keys, statuses {statuses}, integrity `{integrity}`; "
          f"grid points stored exactly once: {points == want}")
    if points != want or n != 18 or distinct != 18 or statuses != ["ok"] or integrity != "ok":
        problems.append("store does not hold every point exactly once with status ok")
    unequal = []
    t0 = time.perf_counter()
    for k, _, res in rows:
        a, t = json.loads(k)["activations"][0], json.loads(k)["tau"]
        single = subprocess.run([sys.executable, "-m", "ntk_theory", "moments", a, "--tau", repr(t),
                                 "--budget", repr(BUDGET), "--json"], env=_env(), cwd=ROOT,
                                capture_output=True, text=True, timeout=600)
        if single.returncode != 0 or json.loads(single.stdout) != [json.loads(res)]:
            unequal.append((a, t))
    print(f"4. 18 single-point `ntk-theory moments ACT --tau T --budget {BUDGET:g} --json` processes "
          f"({time.perf_counter() - t0:.0f} s): stored result == single-point output for "
          f"{18 - len(unequal)}/18 points" + (f"; differ: {unequal}" if unequal else ""))
    if unequal:
        problems.append(f"values differ from single-point calls at {unequal}")
    print(f"\nload average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("\nresult: " + ("all checks pass" if not problems else "FAILED: " + "; ".join(problems)))
    return 0 if not problems else 1


def _points_200() -> dict:
    """200 moments points: 5 activations × 40 scales (closed forms after the first of each)."""
    import numpy as np

    return {"job": "moments", "grid": {"activations": ["relu", "tanh", "erf", "gelu", "abs"],
                                       "tau": [float(round(t, 6)) for t in np.geomspace(0.25, 4.0, 40)],
                                       "budget": BUDGET}}


def _tree_cpu() -> float:
    """CPU seconds of this process and its children (a worker and its job process)."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for c in me.children(recursive=True):
        try:
            total += sum(c.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def _import_job_modules() -> None:
    import ntk_theory.cli.cmd_moments  # noqa: F401
    import ntk_theory.sweep  # noqa: F401


def throughput(args: argparse.Namespace) -> int:
    from distributed import Client, LocalCluster

    from ntk_theory import sweep as sw

    _header(" ".join(["python", *sys.argv]))
    spec = _points_200()
    _, planned = sw.plan(spec)
    echo = {"job": "echo", "grid": {"i": list(range(200))}}
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))

    def warm(client) -> None:  # the workers' imports, outside the timings
        client.run(_import_job_modules)

    def cpu(client) -> float:  # the workers and their job processes
        return sum(client.run(_tree_cpu).values())

    results = {}
    for n in (1, 2):
        t0 = time.perf_counter()
        cluster = LocalCluster(**sw.local_cluster_kwargs(n))
        client = Client(cluster)
        warm(client)
        start = time.perf_counter() - t0
        # start every worker's job process and its imports (sympy, scipy) outside the timings
        taus = [0.1 * (k + 1) for k in range(4 * n)]
        w = sw.sweep({"job": "moments", "grid": {"activations": "linear", "tau": taus}},
                     tmp / f"warm_{n}.sqlite", client)
        results_warm = w.seconds
        c0 = cpu(client)
        s = sw.sweep(spec, tmp / f"moments_{n}.sqlite", client)
        c1, m0 = cpu(client), time.process_time()
        e = sw.sweep(echo, tmp / f"echo_{n}.sqlite", client)
        c2, m1 = cpu(client), time.process_time()
        results[n] = dict(start=start, seconds=s.seconds, cpu=c1 - c0, echo=e.seconds, done=s.done,
                          errors=s.errors, echo_cpu_workers=c2 - c1, echo_cpu_here=m1 - m0)
        client.close()
        cluster.close()
        print(f"- {n} worker(s): cluster start {start:.1f} s, job processes' start-up and imports "
              f"{results_warm:.1f} s; 200 moments points in "
              f"{s.seconds:.1f} s ({s.done / s.seconds:.1f} points/s, {s.errors} errors), workers' CPU "
              f"{c1 - c0:.1f} s; 200 trivial `echo` points in {e.seconds:.2f} s "
              f"({1000 * e.seconds / 200:.1f} ms/point; CPU per point: {1000 * (m1 - m0) / 200:.1f} ms in the "
              f"scheduler + client process, {1000 * (c2 - c1) / 200:.1f} ms in the workers and job processes)")
    ratio = results[1]["seconds"] / results[2]["seconds"]
    print(f"- scaling 1 → 2 workers (wall time ratio): **{ratio:.2f}x**")
    # direct calls of the same job in this process: no scheduler, no serialization
    t0, c0 = time.perf_counter(), time.process_time()
    for _, point in planned:
        sw._run_point("moments", point)
    direct, direct_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    for i in range(200):
        sw._run_point("echo", {"i": i})
    echo_direct = time.perf_counter() - t0
    over = (results[1]["seconds"] - direct) / 200
    print(f"- direct calls in one process (no dask): 200 moments points in {direct:.1f} s (CPU {direct_cpu:.1f} s), "
          f"200 `echo` points in {1000 * echo_direct:.1f} ms")
    print(f"- scheduler overhead per point: moments {1000 * over:.1f} ms "
          f"((1-worker sweep − direct)/200), trivial job {1000 * (results[1]['echo'] - echo_direct) / 200:.1f} ms "
          f"(1 worker), {1000 * (results[2]['echo'] - echo_direct) / 200:.1f} ms (2 workers)")
    print(f"\nload average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    a = sub.add_parser("interrupt", help="SIGINT and rerun against a hand-started scheduler")
    a.add_argument("--scheduler", required=True, help="tcp://127.0.0.1:PORT")
    a.add_argument("--after", type=float, default=6.0, help="seconds before SIGINT (default 6)")
    sub.add_parser("throughput", help="200-point grid with 1 vs 2 local workers, overhead per point")
    args = ap.parse_args()
    return interrupt(args) if args.what == "interrupt" else throughput(args)


if __name__ == "__main__":
    sys.exit(main())
