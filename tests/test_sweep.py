"""``ntk_theory.sweep`` and ``ntk-theory sweep`` (issue 14).

The tests start their own clusters: a module-wide LocalCluster of two single-threaded
worker processes on the loopback interface (what ``ntk-theory sweep`` starts), and
the CLI tests start theirs through the command.  Jobs are real: ``moments`` through
the generic subcommand dispatch, compared with single-point ``ntk-theory moments
--json`` runs, and the diagnostic ``echo`` job (sleeps, reports its worker's pid)
where a task must be slow enough to interrupt or to kill its worker mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from reference import cli, default_sigint

from ntk_theory import sweep as sw

ROOT = Path(__file__).resolve().parents[1]


def rows(store: Path) -> list[tuple[str, str, str]]:
    con = sqlite3.connect(str(store))
    try:
        return list(con.execute("SELECT key, status, result FROM results"))
    finally:
        con.close()


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(**sw.local_cluster_kwargs(2))
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


# ----------------------------------------------------------------------------- spec (no cluster)

BAD_SPECS = [
    ('job = "nosuch"\n[grid]\nx = 1\n', "unknown job"),
    ('job = "moments"\n[grid]\nactivations = "relu"\ntaux = 1.0\n', "has no option 'taux'"),
    ('job = "moments"\n[grid]\n', "the [grid] table is empty"),
    ('job = "moments"\n', "the [grid] table is empty"),
    ('job = "moments"\n[grid]\nactivations = []\n', "is empty"),
    ('job = "moments"\n[grid]\nactivations = "relu"\ntau = [1.0, -2.0]\n', "must be > 0"),
    ('job = "moments"\n[grid]\nactivations = "relu"\ntau = "abc"\n', "not a number"),
    ('job = "moments"\n[grid]\nactivations = "relu"\njson = true\n', "set by the sweep"),
    ('job = "moments"\n[grid]\nactivations = "relu"\nlatex = true\n', "not allowed with"),
    ('job = "moments"\n[grid]\nactivations = "relu"\ncentered = 3\n', "is a flag"),
    ('job = "moments"\n[grid]\nactivations = [[["relu"]]]\n', "nested deeper"),
    ('job = "moments"\n[grid]\nactivations = "relu"\ntau = 1979-05-27\n', "not a valid value"),
    ('job = "moments"\n[grid]\nactivations = "relu"\ntau = nan\n', "not a finite number"),
    ('job = "moments"\ngrid = 3\n', "must be a table"),
    ('job = "moments"\nextra = 1\n[grid]\nactivations = "relu"\n', "unknown top-level key"),
    ('job = "table"\n[grid]\nactivations = "relu"\n', "no --json output"),
    ('job = "sweep"\n[grid]\nspec = "x"\n', "unknown job"),
    ('job = "moments"\n[grid\n', "not valid TOML"),
    ('job = "experiment2"\n[grid]\ndata = 1\n', "has no option 'data'"),
]


@pytest.mark.parametrize("text,message", BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_bad_spec_is_a_typed_error(tmp_path, text, message):
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    with pytest.raises(sw.SpecError, match=None) as exc:
        sw.plan(spec)
    assert message in str(exc.value)


@pytest.mark.parametrize("text,message", BAD_SPECS[:3] + BAD_SPECS[-2:],
                         ids=[m for _, m in BAD_SPECS[:3] + BAD_SPECS[-2:]])
def test_cli_bad_spec_exits_2_before_any_cluster(tmp_path, monkeypatch, text, message):
    def no_cluster(*a, **k):
        raise AssertionError("a cluster was started for a bad spec")

    monkeypatch.setattr(sw, "_local_client", no_cluster)
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    store = tmp_path / "r.sqlite"
    rc, out, err = cli("sweep", str(spec), "--store", str(store), "--workers", "1")
    assert rc == 2 and out == ""
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err, err
    assert not store.exists()


def test_missing_spec_file(tmp_path):
    rc, _, err = cli("sweep", str(tmp_path / "none.toml"), "--store", str(tmp_path / "r.sqlite"))
    assert rc == 2 and len(err.splitlines()) == 1 and "cannot read the sweep spec" in err


def test_bad_store_is_a_typed_error_before_any_cluster(tmp_path, monkeypatch):
    monkeypatch.setattr(sw, "_local_client", lambda *a, **k: pytest.fail("cluster started"))
    spec = {"job": "echo", "grid": {"i": [1, 2]}}
    text = tmp_path / "notes.txt"
    text.write_text("not a database, " * 100)
    with pytest.raises(sw.ParameterError, match="not a usable SQLite store"):
        sw.sweep(spec, text)
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(str(other))
    con.execute("CREATE TABLE results (id INTEGER, value REAL)")
    con.commit()
    con.close()
    with pytest.raises(sw.ParameterError, match="not a sweep store"):
        sw.sweep(spec, other)
    with pytest.raises(sw.ResourceError, match="per core"):
        sw.sweep(spec, tmp_path / "r.sqlite", workers=10_000)
    with pytest.raises(sw.ParameterError, match="no store"):
        sw.read_store(tmp_path / "missing.sqlite")
    assert [r[1] for r in sw.sweep_results(spec, tmp_path / "missing.sqlite")] == [None, None]


def test_one_lock_per_database_file_whatever_its_name(tmp_path):
    store = tmp_path / "r.sqlite"
    link = tmp_path / "link.sqlite"
    with sw.ResultStore(store):
        link.symlink_to(store)
        with pytest.raises(sw.StoreLockedError, match="in use by another sweep"):
            sw.ResultStore(link)
        with pytest.raises(sw.StoreLockedError):
            sw.ResultStore(tmp_path / "." / "r.sqlite")
    key = sw.canonical_key("echo", {"i": 1})
    with sw.ResultStore(link) as st:  # released on close
        assert st.put(key, "ok", "1") and not st.put(key, "ok", "2")  # stored once
    assert sw.read_store(store) == [{"key": {"job": "echo", "i": 1}, "status": "ok", "result": 1}]


def test_grid_and_canonical_keys():
    spec = {"job": "compress", "grid": {"activations": [["relu", "relu"], ["tanh", "erf"]],
                                        "tau0": [1, 1.0, 2.5], "last-family": "sigma_Q",
                                        "widths": [[784, 100, 10]]}}
    _, planned = sw.plan(spec)
    # tau0 = 1 and 1.0 are one point after the subcommand's parser: 2 × 2 points
    assert len(planned) == 4
    keys = [json.loads(k) for k, _ in planned]
    assert keys[0] == {"job": "compress", "activations": ["relu", "relu"], "tau0": 1.0,
                       "last_family": "sigma_Q", "widths": [784, 100, 10]}
    assert planned[0][0] == ('{"activations":["relu","relu"],"job":"compress","last_family":"sigma_Q",'
                             '"tau0":1.0,"widths":[784,100,10]}')
    argv = sw._job("compress").argv(planned[0][1])
    assert argv == ["--tau0=1", "--last-family=sigma_Q", "--widths", "784", "100", "10", "--json",
                    "--", "relu", "relu"]


def test_cli_jobs_are_discovered_generically(tmp_path, monkeypatch):
    """A subcommand module added later (cmd_<job>.py with --json) is a job, untouched sweep.py."""
    pkg = tmp_path / "ntk_theory_extra"
    pkg.mkdir()
    (pkg / "cmd_twice.py").write_text(
        "import argparse\nfrom ntk_theory.cli._common import dump_json, positive_int\n"
        "HELP = 'twice'\n"
        "def add_arguments(p):\n"
        "    p.add_argument('--hidden', type=positive_int, nargs='+', required=True)\n"
        "    p.add_argument('--json', action='store_true')\n"
        "def run(args):\n"
        "    dump_json({'twice': [2 * h for h in args.hidden]})\n"
        "    return 0\n")
    import ntk_theory.cli as cli_pkg

    monkeypatch.setattr(cli_pkg, "__path__", [*cli_pkg.__path__, str(pkg)])
    assert "twice" in sw.available_jobs()
    _, planned = sw.plan({"job": "twice", "grid": {"hidden": [[10, 20], [5, 6]]}})
    assert [sw._run_point("twice", p) for _, p in planned] == [
        ("ok", '{"twice":[20,40]}', False), ("ok", '{"twice":[10,12]}', False)]
    with pytest.raises(sw.SpecError, match="positive integer"):
        sw.plan({"job": "twice", "grid": {"hidden": [[0]]}})


def test_untyped_exception_is_flagged_as_a_bug(monkeypatch):
    def boom(**kw):
        raise ZeroDivisionError("oops")

    monkeypatch.setitem(sw._PY_JOBS, "echo", lambda: sw._EchoJob("echo", boom))
    status, msg, bug = sw._run_point("echo", {"a": 1})
    assert (status, bug) == ("error", True) and "internal error" in msg and "ZeroDivisionError" in msg
    status, msg, bug = sw._run_point("moments", {"activations": "exp(x**2)"})
    assert (status, bug) == ("error", False) and "internal error" not in msg


# ----------------------------------------------------------------------------- sweeps on a cluster


def test_values_equal_single_point_cli_and_bad_point_is_an_error(client, tmp_path):
    store = tmp_path / "m.sqlite"
    acts, taus = ["relu", "nosuch", "erf", "exp(x**2)"], [0.5, 2.0]
    res = sw.sweep({"job": "moments", "grid": {"activations": acts, "tau": taus}}, store, client)
    assert (res.total, res.done, res.skipped, res.errors, res.bugs) == (8, 8, 0, 4, 0)
    got = {(json.loads(k)["activations"][0], json.loads(k)["tau"]): (s, r) for k, s, r in rows(store)}
    assert len(got) == 8
    for a in acts:
        for t in taus:
            status, result = got[a, t]
            rc, out, err = cli("moments", a, "--tau", repr(t), "--json")
            if rc == 0:
                assert status == "ok" and json.loads(result) == json.loads(out)[0]
            else:  # the stored message is the one the CLI prints
                assert status == "error" and result in err, (a, t, result, err)
    assert got["nosuch", 0.5][0] == "error" and got["exp(x**2)", 2.0][0] == "error"
    assert got["relu", 0.5][0] == "ok"


def test_resume_after_interruption(client, tmp_path):
    store = tmp_path / "e.sqlite"
    spec = {"job": "echo", "grid": {"i": list(range(8)), "sleep": 0.2}}
    seen: list[str] = []

    def stop_after_three(key, status, result):
        seen.append(key)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(sw.SweepInterrupted) as exc:
        sw.sweep(spec, store, client, on_result=stop_after_three)
    s = exc.value.summary
    assert s.interrupted and (s.done, s.skipped, s.total) == (3, 0, 8)
    first = {k: r for k, _, r in rows(store)}
    assert sorted(first) == sorted(seen)
    res = sw.sweep(spec, store, client)
    assert (res.done, res.skipped, res.total, res.interrupted) == (5, 3, 8, False)
    after = rows(store)
    assert len(after) == 8 and len({k for k, _, _ in after}) == 8
    assert {json.loads(k)["i"] for k, _, _ in after} == set(range(8))
    for k, status, r in after:  # the three stored before the interruption were not recomputed
        assert status == "ok"
        if k in first:
            assert r == first[k]
    res = sw.sweep(spec, store, client)  # nothing left: no task submitted
    assert (res.done, res.skipped) == (0, 8)


@pytest.fixture
def sweep_with_kill(client, tmp_path):
    """Run a one-point echo sweep in a thread and, once a worker is busy with it, call
    ``kill(worker address)`` until it reports the pids it killed; returns the sweep's
    summary, the stored rows and those pids."""

    def run(grid: dict, kill) -> tuple:
        store = tmp_path / "kill.sqlite"
        box: dict = {}
        t = threading.Thread(target=lambda: box.setdefault(
            "res", sw.sweep({"job": "echo", "grid": grid}, store, client)))
        t.start()
        killed = None
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            busy = [w for w, ts in client.processing().items() if ts]
            if busy:
                killed = kill(busy[0])
            else:
                time.sleep(0.05)
        t.join(timeout=120)
        assert killed and not t.is_alive()
        return box["res"], rows(store), killed

    return run


def test_worker_killed_mid_task_is_rerun_and_stored_once(client, sweep_with_kill):
    def kill_worker(addr):
        pid = client.run(os.getpid, workers=[addr])[addr]
        time.sleep(0.5)  # the task is running (sleeping 3 s) in that worker
        os.kill(pid, signal.SIGKILL)
        return [pid]

    res, stored, killed = sweep_with_kill({"slow": ["yes"], "sleep": 3.0}, kill_worker)
    assert (res.done, res.errors, res.bugs) == (1, 0, 0)
    (key, status, result), = stored
    assert status == "ok" and json.loads(key) == {"job": "echo", "slow": "yes", "sleep": 3.0}
    # computed again, by the job process of another (or the restarted) worker
    assert json.loads(result)["ppid"] not in killed
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker


def test_job_process_killed_mid_task_is_retried_and_stored_once(client, sweep_with_kill):
    """The job runs in a process of the worker (main thread); if that one dies, dask retries."""
    import psutil

    def job_processes():
        return [c.pid for c in psutil.Process().children()
                if "ntk_theory.sweep import _serve" in " ".join(c.cmdline()) and c.status() != psutil.STATUS_ZOMBIE]

    def kill_job_process(addr):
        time.sleep(1.0)  # the job process is sleeping in the echo job
        pids = client.run(job_processes, workers=[addr])[addr]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids or None

    res, stored, killed = sweep_with_kill({"child": ["killed"], "sleep": 3.0}, kill_job_process)
    assert (res.done, res.errors) == (1, 0)
    (key, status, result), = stored
    assert status == "ok" and json.loads(result)["pid"] not in killed


def test_workers_that_cannot_import_ntk_theory_stop_the_sweep(client, tmp_path):
    hide = ("import sys; "
            "sys.modules['_ntk_saved'] = sys.modules.pop('ntk_theory.sweep'); sys.modules['ntk_theory.sweep'] = None")
    restore = "import sys; sys.modules['ntk_theory.sweep'] = sys.modules.pop('_ntk_saved')"
    client.run(exec, hide)
    try:  # dask itself would leave such tasks pending forever: refused before any is submitted
        with pytest.raises(sw.WorkerError, match="cannot import ntk_theory.sweep"):
            sw.sweep({"job": "echo", "grid": {"i": [1, 2, 3]}}, tmp_path / "w.sqlite", client)
    finally:
        client.run(exec, restore)
    assert rows(tmp_path / "w.sqlite") == []  # nothing stored: a rerun retries every point
    assert sw.sweep({"job": "echo", "grid": {"i": [1, 2, 3]}}, tmp_path / "w.sqlite", client).done == 3


def test_concurrent_sweeps_on_one_store_are_refused(client, tmp_path):
    store = tmp_path / "c.sqlite"
    spec = {"job": "echo", "grid": {"i": list(range(6)), "sleep": 0.5}}
    started = threading.Event()
    box: dict = {}
    t = threading.Thread(target=lambda: box.setdefault(
        "res", sw.sweep(spec, store, client, on_result=lambda *a: started.set())))
    t.start()
    assert started.wait(60)
    with pytest.raises(sw.StoreLockedError, match=f"pid {os.getpid()}"):
        sw.sweep(spec, store, client)
    # the same refusal from another process (the lock is the operating system's)
    code = ("import sys; from ntk_theory.sweep import ResultStore, StoreLockedError\n"
            "try:\n    ResultStore(sys.argv[1])\nexcept StoreLockedError as e:\n    print('refused:', e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(store)], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.stdout.startswith("refused:"), r
    t.join(timeout=120)
    assert box["res"].done == 6
    res = sw.sweep(spec, store, client)  # the lock is released at the end
    assert (res.done, res.skipped) == (0, 6)
    con = sqlite3.connect(str(store))
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert con.execute("SELECT count(*), count(DISTINCT key) FROM results").fetchone() == (6, 6)
    con.close()


# ----------------------------------------------------------------------------- the command, end to end


def _start_cli(spec: Path, store: Path, *extra: str) -> subprocess.Popen:
    """``ntk-theory sweep`` in its own session with SIGINT handled (as from a terminal)."""
    return subprocess.Popen(
        [sys.executable, "-m", "ntk_theory", "sweep", str(spec), "--store", str(store), *extra],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=default_sigint)


def _count(store: Path) -> int:
    try:
        return len(rows(store))
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_cli_ctrl_c_commits_exits_130_and_rerun_completes(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text('job = "echo"\n[grid]\ni = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\nsleep = 1.0\n')
    store = tmp_path / "r.sqlite"
    p = _start_cli(spec, store, "--workers", "2")
    deadline = time.monotonic() + 120
    while _count(store) < 2 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)
    os.killpg(p.pid, signal.SIGINT)  # Ctrl-C: the whole process group, workers included
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, (out, err)
    assert len(err.splitlines()) == 1 and "interrupted" in err and "Traceback" not in err, err
    k = _count(store)
    assert 2 <= k < 10
    p = _start_cli(spec, store, "--workers", "2", "--json")
    out, err = p.communicate(timeout=240)
    assert p.returncode == 0, err
    summary = json.loads(out)
    assert (summary["skipped"], summary["done"], summary["total"], summary["errors"]) == (k, 10 - k, 10, 0)
    got = rows(store)
    assert sorted(json.loads(key)["i"] for key, _, _ in got) == list(range(10))


def test_sweep_target_store_and_scheduler(client, tmp_path):
    """The scripts' set-up: a temporary store removed on exit, or the given one kept and
    resumed; a client of the given scheduler, closed on exit, that the sweep runs on."""
    with sw.sweep_target(None, None, name="x.sqlite") as (store, c):
        assert c is None and store.name == "x.sqlite" and store.parent.is_dir()
        tmp_dir = store.parent
    assert not tmp_dir.exists()
    spec = {"job": "echo", "grid": {"x": [1, 2]}}
    given = tmp_path / "kept.sqlite"
    with sw.sweep_target(given, client.scheduler.address) as (store, c):
        assert store == given and c is not None and c.scheduler.address == client.scheduler.address
        assert sw.sweep(spec, store, c).done == 2
    assert c.status == "closed" and client.status == "running"
    with sw.sweep_target(str(given), None) as (store, c):
        assert sw.sweep(spec, store, client).skipped == 2  # resumed, nothing recomputed


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_sweep_target_bad_local_workers_is_a_typed_error(bad):
    with pytest.raises(sw.ParameterError, match="local_workers must be a positive integer"):
        with sw.sweep_target(None, None, local_workers=bad):
            pass
