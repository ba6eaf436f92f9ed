"""Runs handed out by a shared counter (mmsim.claims): every run exactly once across
processes, one task per forked worker for a whole sweep, and a worker killed mid-message
never hangs the sweep."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_sweep import GRID, TINY

from mmsim.claims import Claims

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork on Linux")


def _take_all(claims: Claims, n: int) -> None:
    while (i := claims.take(n)) is not None:
        claims.send(i)


def test_every_run_is_taken_exactly_once_by_processes_racing_for_them():
    """3 forked processes and this one take from one counter until it runs dry: the
    indices taken are 0..n-1, each once (n = 3,000, so the processes contend), and the
    count ``stop`` reports is n."""
    ctx = multiprocessing.get_context("fork")
    claims, n = Claims(ctx), 3000
    claims.start()
    procs = [ctx.Process(target=_take_all, args=(claims, n)) for _ in range(3)]
    for p in procs:
        p.start()
    mine = []
    while (i := claims.take(n)) is not None:
        mine.append(i)
    theirs = []
    while any(p.is_alive() for p in procs) or claims.poll(0):
        if claims.poll(0.05):
            theirs.append(claims.receive())
    for p in procs:
        p.join()
    taken = sorted(mine + theirs)
    assert taken == list(range(n)), f"{len(taken)} taken, {len(set(taken))} distinct of {n}"
    assert claims.stop(n) == n and claims.take(n) is None


def _half_a_message(claims: Claims) -> None:
    claims.write_lock.acquire()  # as in send(), then killed mid-message
    os.write(claims.writer.fileno(), (1000).to_bytes(4, "big") + b"x" * 10)
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_mid_message_costs_the_messages_not_a_hang():
    """A worker SIGKILLed while writing an outcome (the write lock held, 10 of 1,000
    bytes written): reading what is left would block forever, so the sweep reads
    nothing after the death (those runs run again) and returns within the lock's
    0.5 s wait (10 s would mean it blocked on the half message)."""
    ctx = multiprocessing.get_context("fork")
    claims = Claims(ctx)
    proc = ctx.Process(target=_half_a_message, args=(claims,))
    proc.start()
    proc.join(20)
    assert proc.exitcode == -signal.SIGKILL
    assert claims.poll(0), "the half message is in the pipe"
    t0 = time.monotonic()
    assert claims.drain_after_death() == []
    assert time.monotonic() - t0 < 10


_ONE_TASK = """
import json, os, sys
from concurrent.futures import ProcessPoolExecutor
import mmsim

scenario, grid = json.loads(sys.argv[1]), json.loads(sys.argv[2])
real, tasks = ProcessPoolExecutor.submit, []

def counted(self, fn, *args, **kw):
    tasks.append(fn.__name__)
    return real(self, fn, *args, **kw)

ProcessPoolExecutor.submit = counted
serial = mmsim.sweep(scenario, grid, seeds=10, executor="serial", progress=False)
out = {}
for workers in (2, 3):
    tasks.clear()
    table = mmsim.sweep(scenario, grid, seeds=10, executor="processes", workers=workers,
                        progress=False)
    out[workers] = {"tasks": list(tasks), "same": serial.equals(table)}
print(json.dumps(out))
"""


def test_forked_workers_get_one_task_for_the_whole_sweep():
    """20 runs on 2 and then 3 workers (this process and 1 or 2 forks): each forked
    worker gets one task, the whole list, and takes its runs from the shared counter
    (before, each run was a task of its own, handed over by a feeder thread: two thread
    switches in the sweep's process per run, while it ran runs itself). Rows are
    bit-identical to the serial sweep's."""
    argv = [sys.executable, "-c", _ONE_TASK, json.dumps(TINY), json.dumps(GRID)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["2"] == {"tasks": ["_run_claimed"], "same": True}, report
    assert report["3"] == {"tasks": ["_run_claimed"] * 2, "same": True}, report


_MANY_STARTS = """
import fcntl, json, sys, threading
import mmsim, mmsim.executors as ex

scenario, grid = json.loads(sys.argv[1]), json.loads(sys.argv[2])
real = ex._Pool.__init__

def small_pipe(self, *args, **kw):  # start reports fill a 4 KiB pipe after ~120 runs
    real(self, *args, **kw)
    if self.started is not None:
        fcntl.fcntl(self.started._writer.fileno(), fcntl.F_SETPIPE_SZ, 4096)

ex._Pool.__init__ = small_pipe
threading.Thread(target=threading.Event().wait, daemon=True).start()  # no fork: a server
table = mmsim.sweep(scenario, grid, seeds=150, executor="processes", workers=2,
                    progress=False)
print(json.dumps({"rows": len(table), "ok": bool((table["status"] == "ok").all())}))
"""


def test_a_fork_servers_workers_never_block_on_unread_start_reports():
    """A fork server's pool (a thread alive here, as in a notebook): its workers report
    each run's start down a pipe, which the sweep now reads as tasks finish. It read it
    only after a worker died, so a worker blocked for good once the pipe was full
    (~1,900 runs with the default 64 KiB; here a 4 KiB pipe and 300 runs): the sweep
    hung and ran into this test's 150 s timeout."""
    argv = [sys.executable, "-c", _MANY_STARTS, json.dumps(TINY), json.dumps(GRID)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=150, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"rows": 300, "ok": True}


_IDLE_END = """
import json, sys
import mmsim, mmsim.executors as ex
from mmsim.claims import Claims

scenario, grid = json.loads(sys.argv[1]), json.loads(sys.argv[2])
recorded, late = [0], []
real_record, real_poll = ex._Run.record, Claims.poll

def record(self, head, outcome):
    recorded[0] += 1
    return real_record(self, head, outcome)

def poll(self, timeout=0.0):
    if recorded[0] == total and timeout > 0.0:
        late.append(timeout)
    return real_poll(self, timeout)

ex._Run.record, Claims.poll = record, poll
for seeds in (4, 10, 30):
    total = len(grid["dealers.0.band"]) * seeds
    recorded[0] = 0
    table = mmsim.sweep(scenario, grid, seeds=seeds, executor="processes", workers=2,
                        progress=False)
    assert len(table) == total
print(json.dumps({"late": late}))
"""


def test_the_sweep_ends_when_its_last_outcome_is_in():
    """Sweeps of 8, 20 and 60 runs on 2 forked workers: once every outcome is recorded,
    the sweep's process never waits on the outcome pipe again (it waited there in
    0.05 s polls for the workers' tasks to return, ~45 ms at the end of most sweeps:
    a 0.2 s band_sweep on two new workers took 0.19 s instead of 0.14 s)."""
    argv = [sys.executable, "-c", _IDLE_END, json.dumps(TINY), json.dumps(GRID)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["late"] == [], f"polls of the pipe after the last outcome: {report}"


_KILLED_MID_SWEEP = """
import sys, threading
import mmsim

threading.Thread(target=threading.Event().wait, daemon=True).start()  # no fork: a server
grid = {"dealers.0.band": [0, 50], "clock.days": [20]}
mmsim.sweep(sys.argv[1], grid, seeds=40, executor="processes", workers=3, progress=False)
"""


def test_a_fork_servers_workers_die_with_the_sweep_killed_under_them():
    """A sweep on a fork server's pool (a thread alive: no fork), killed with SIGKILL
    while its workers run 20-day runs: the server exits as its parent does, and its
    workers with it (they used to run on as orphans, holding a sweep directory's lock
    for as long as their runs took), within 10 s."""
    from test_cli import _descendants, _not_zombie

    scenario = str(ROOT / "scenarios/long_gamma.yaml")
    argv = [sys.executable, "-c", _KILLED_MID_SWEEP, scenario]
    proc = subprocess.Popen(argv, cwd=ROOT, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    below: list[int] = []
    while len(below) < 3:  # the server and at least 2 workers
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
        below = _descendants(proc.pid)
    time.sleep(1.0)  # the workers are into their runs
    below = _descendants(proc.pid)
    proc.kill()
    proc.wait(timeout=30)
    end = time.monotonic() + 10
    while (alive := [p for p in below if _not_zombie(p)]) and time.monotonic() < end:
        time.sleep(0.1)
    assert not alive, f"still running 10 s after the sweep was killed: {alive} of {below}"
