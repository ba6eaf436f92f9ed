"""Sweeps keep their process pool for the next sweep in the same process: the same
workers are reused, a pool whose worker died or whose code was replaced since is not,
and rows are identical to the serial sweep's whichever pool runs them.

Each scenario runs in a fresh interpreter (no other thread alive, so workers are forked
from it, as in a script) and reports what it saw as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_sweep import GRID, TINY

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork on Linux")

_PRELUDE = """
import json, os, signal, sys, time
import mmsim, mmsim.engine, mmsim.executors as ex
from mmsim import kept_pool

scenario, grid = json.loads(sys.argv[1]), json.loads(sys.argv[2])
real_one = ex._run_one

def tagged(*args, **kw):  # set before any fork: every worker tags its rows too
    out = real_one(*args, **kw)
    out["metrics"] = {**out["metrics"], "pid": os.getpid()}
    return out

ex._run_one = tagged
serial = mmsim.sweep(scenario, grid, seeds=8, executor="serial", progress=False)

def sweep(workers=2, **kw):
    table = mmsim.sweep(scenario, grid, seeds=8, executor="processes", workers=workers,
                        progress=False, **kw)
    pids = sorted(int(p) for p in set(table["pid"]) - {os.getpid()})
    cols = ["pid", *[c for c in ("patched",) if c in table]]
    same = table.drop(columns=cols).equals(serial.drop(columns="pid"))
    patched = int(table["patched"].sum()) if "patched" in table else 0
    return {"pids": pids, "same": same, "patched": patched}

def gone(pids, wait=5.0):  # the processes exited and were reaped by their pool
    deadline = time.monotonic() + wait
    while any(os.path.exists(f"/proc/{p}") for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True

out = {}
"""

_REUSE = (
    _PRELUDE
    + """
out["first"], out["second"] = sweep(), sweep()
out["three"] = sweep(workers=3)  # another size: a new pool, the old one's worker exits
out["old_gone"] = gone(out["first"]["pids"])
out["three_again"] = sweep(workers=3)
os.environ["MMSIM_SOME_SETTING"] = "1"  # the environment the workers forked with changed
out["env"] = sweep(workers=3)
print(json.dumps(out))
"""
)


def _report(script: str, env: dict | None = None) -> dict:
    import os

    argv = [sys.executable, "-c", script, json.dumps(TINY), json.dumps(GRID)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, **(env or {})})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "worker died" not in done.stderr, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_later_sweeps_reuse_the_workers_of_the_first_until_the_size_or_environment_changes():
    """Two sweeps of 16 runs on 2 workers: the second runs on the same forked worker
    (same pid); 3 workers start a new pool of 2 forks and the old worker exits (within
    5 s); the next 3-worker sweep reuses those; a changed environment forks anew. Every
    sweep's rows are bit-identical to the serial sweep's."""
    r = _report(_REUSE)
    assert all(r[k]["same"] for k in ("first", "second", "three", "three_again", "env")), r
    assert len(r["first"]["pids"]) == 1 and r["second"]["pids"] == r["first"]["pids"], r
    assert len(r["three"]["pids"]) == 2 and not set(r["three"]["pids"]) & set(r["first"]["pids"])
    assert r["old_gone"], f"the 2-worker pool's worker {r['first']['pids']} outlived its pool"
    assert r["three_again"]["pids"] == r["three"]["pids"], r
    assert not set(r["env"]["pids"]) & set(r["three"]["pids"]), f"stale environment: {r}"


_DEATH = (
    _PRELUDE
    + """
out["first"] = sweep()
os.kill(out["first"]["pids"][0], signal.SIGKILL)  # between sweeps (e.g. out of memory)
out["dead"] = gone(out["first"]["pids"])
out["after"] = sweep()
print(json.dumps(out))
"""
)


def test_a_kept_pool_whose_worker_died_is_replaced_before_the_next_sweep():
    """A kept worker killed between sweeps: the next sweep starts a new pool at once (no
    run lost to the dead one, no "worker died" restart) with the serial sweep's rows."""
    r = _report(_DEATH)
    assert r["dead"] and r["after"]["same"], r
    assert r["after"]["pids"] and not set(r["after"]["pids"]) & set(r["first"]["pids"]), r


_PATCHED = (
    _PRELUDE
    + """
out["first"] = sweep()
real_run = mmsim.engine.run

def patched(*args, **kw):  # what a test's monkeypatch does after a sweep
    result = real_run(*args, **kw)
    result.metrics["patched"] = 1
    return result

mmsim.engine.run = patched
out["patched"] = sweep()
mmsim.engine.run = real_run  # the patch undone: its pool is stale in turn
out["undone"] = sweep()
mmsim.engine.run = patched
out["opt_out"] = sweep(keep_workers=False)  # the kept pool is stale: a pool of its own
out["kept_after_opt_out"] = kept_pool._KEPT is not None
print(json.dumps(out))
"""
)


def test_a_function_replaced_after_a_sweep_is_what_the_next_sweeps_workers_run():
    """``mmsim.engine.run`` replaced after the first sweep (as a test's monkeypatch
    does): the next sweep forks new workers, and all 16 of its rows (the workers' too)
    come from the patched function; the patch undone, the next pool is new again and its
    rows unpatched. ``keep_workers=False`` (the kept pool stale again) runs on a pool of
    its own and keeps none."""
    r = _report(_PATCHED)
    first, patched, undone = r["first"]["pids"], r["patched"]["pids"], r["undone"]["pids"]
    assert patched and not set(patched) & set(first), f"stale pool reused: {r}"
    assert r["patched"]["patched"] == 16, f"{r['patched']['patched']} of 16 rows patched"
    assert undone and not set(undone) & set(patched) and r["undone"]["patched"] == 0, r
    assert r["undone"]["same"] and r["patched"]["same"], r
    assert r["opt_out"]["patched"] == 16 and not r["kept_after_opt_out"], r


def test_no_pool_is_kept_when_the_environment_says_so():
    """``MMSIM_KEEP_WORKERS=0``: every sweep forks its own workers."""
    r = _report(_PRELUDE + 'out["a"], out["b"] = sweep(), sweep()\nprint(json.dumps(out))',
                env={"MMSIM_KEEP_WORKERS": "0"})  # fmt: skip
    assert r["a"]["same"] and r["b"]["same"], r
    assert r["a"]["pids"] and not set(r["a"]["pids"]) & set(r["b"]["pids"]), r


@pytest.mark.parametrize(
    ("kept", "fork", "expected"),
    [(True, False, "processes"), (False, False, "serial"), (False, True, "serial")],
)
def test_auto_goes_parallel_for_a_short_sweep_when_an_earlier_sweep_kept_its_workers(
    monkeypatch, kept, fork, expected
):
    """8 runs of 0.01 s on 2 cores (0.04 s per worker): worth it on workers an earlier
    sweep kept (0.01 s to hand them the runs), not on new ones (forked: 0.05 s; a fork
    server: 1.5 s)."""
    import importlib

    sweep_module = importlib.import_module("mmsim.sweep")
    monkeypatch.setattr(sweep_module, "ready", lambda processes: kept and processes(True) == 1)
    monkeypatch.setattr(sweep_module, "can_fork", lambda: fork)
    assert sweep_module._auto(8 * 0.01, 8, 2, None) == expected
