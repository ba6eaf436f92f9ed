"""Sweeps on a running dask cluster: every worker warmed once, as it joins; tasks handed
out as workers free up; rows identical to the serial sweep's."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from test_sweep import GRID, TINY

import mmsim

distributed = pytest.importorskip("dask.distributed")


def _warm_ups() -> int:
    from mmsim import workers

    return workers.DASK_WARM_UPS


def _trim() -> str | None:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def _plugins(dask_scheduler) -> list[str]:
    return sorted(dask_scheduler.worker_plugins)


def _saturation(dask_scheduler) -> float:
    return dask_scheduler.WORKER_SATURATION


def test_every_worker_warms_once_as_it_joins_and_rows_match_serial():
    """Two sweeps on one cluster of 2 workers, then a third worker joins: each worker has
    warmed up exactly once, the one that joined before any task reached it (the warm-up
    is a worker plugin registered by the sweep, not a call to the workers there were), and
    every dask sweep's rows equal the serial sweep's bit for bit."""
    from mmsim.dask_warm import PLUGIN_NAME
    from mmsim.sweep import local_cluster

    serial = mmsim.sweep(TINY, GRID, seeds=3, executor="serial", progress=False)
    cluster = local_cluster(2)
    try:
        address = cluster.scheduler_address
        with distributed.Client(address) as client:
            assert set(client.run(_warm_ups).values()) == {0}, "warm before any sweep"
            for _ in range(2):
                table = mmsim.sweep(
                    TINY, GRID, seeds=3, executor="dask", dask_address=address, progress=False
                )
                pd.testing.assert_frame_equal(serial, table)
            assert list(client.run(_warm_ups).values()) == [1, 1], "2 sweeps: once per worker"
            assert PLUGIN_NAME in client.run_on_scheduler(_plugins)
            # mmsim's cluster: glibc's trim threshold, two tasks per single-threaded worker
            assert set(client.run(_trim).values()) == {None}
            assert client.run_on_scheduler(_saturation) == 2.0
            cluster.scale(3)
            client.wait_for_workers(3, timeout=60)
            assert list(client.run(_warm_ups).values()) == [1, 1, 1], "the joined worker"
            table = mmsim.sweep(
                TINY, GRID, seeds=3, executor="dask", dask_address=address, progress=False
            )
            pd.testing.assert_frame_equal(serial, table)
    finally:
        cluster.close()


_FORK_AFTER_DASK = """
import json, sys, threading
import mmsim
from mmsim.workers import can_fork

if __name__ == "__main__":
    scenario, grid = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    mmsim.sweep(scenario, grid, seeds=2, executor="dask", workers=2, progress=False)
    print(json.dumps({"can_fork": can_fork(),
                      "threads": [t.name for t in threading.enumerate()]}))
"""


def _run_script(path, source: str) -> tuple[dict, str]:
    """Run ``source`` as the script ``path`` (a file: dask's spawned nannies import
    ``__main__``) with the tiny scenario and grid as its arguments, in a fresh
    interpreter: the JSON object its last line prints, and its stderr."""
    import json
    import subprocess
    import sys

    from test_sweep import ROOT

    path.write_text(source)
    argv = [sys.executable, str(path), json.dumps(TINY), json.dumps(GRID)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def test_a_dask_sweep_leaves_no_thread_that_stops_this_process_forking(tmp_path):
    """After a dask sweep on its own cluster, the process has no thread left alive, so
    the command's figures and later process-pool sweeps still fork (distributed's
    offload thread outlived the client: every later fork was refused)."""
    report, _ = _run_script(tmp_path / "after_dask.py", _FORK_AFTER_DASK)
    assert report == {"can_fork": True, "threads": ["MainThread"]}, report


_KEPT_CLIENT = """
import json, subprocess, sys, threading, time
import pandas as pd
import mmsim
from dask.distributed import Client
from mmsim.workers import can_fork

CLUSTER = (
    "import sys\\n"
    "from mmsim.sweep import local_cluster\\n"
    "cluster = local_cluster(2)\\n"
    "print(cluster.scheduler_address, flush=True)\\n"
    "sys.stdin.read()\\n"
    "cluster.close()\\n"
)


def mmsim_clients(dask_scheduler):
    return sorted(c for c in dask_scheduler.clients if c.startswith("_SweepClient"))


if __name__ == "__main__":
    scenario, grid = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    cluster = subprocess.Popen([sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    address = cluster.stdout.readline().strip()
    serial = mmsim.sweep(scenario, grid, seeds=3, executor="serial", progress=False)
    out = {"clients": [], "same_rows": [], "orders": []}
    watcher = Client(address, set_as_default=False)
    watcher.get_task_stream(start=time.time())  # from now on the scheduler records tasks
    for _ in range(2):
        t0 = time.time()
        table = mmsim.sweep(scenario, grid, seeds=3, executor="dask", dask_address=address,
                            progress=False)
        out["same_rows"].append(table.equals(serial))
        out["clients"].append(watcher.run_on_scheduler(mmsim_clients))
        starts = {}
        for task in watcher.get_task_stream(start=t0):
            index = int(task["key"].rsplit("-", 1)[1])
            starts.setdefault(task["worker"], []).append((task["startstops"][0]["start"], index))
        out["orders"].append([[i for _, i in sorted(s)] for s in starts.values()])
    watcher.close()
    out["can_fork"] = can_fork()  # closes the kept client: its event loop is a thread
    out["threads"] = [t.name for t in threading.enumerate()]
    table = mmsim.sweep(scenario, grid, seeds=3, executor="dask", dask_address=address,
                        progress=False)  # connects again, and keeps that client
    out["same_rows"].append(table.equals(serial))
    cluster.stdin.close()  # the cluster closes under the kept client
    cluster.wait(timeout=60)
    from mmsim import dask_client
    (kept,) = dask_client._KEPT.values()
    deadline = time.monotonic() + 30
    while kept.status != "closed" and time.monotonic() < deadline:
        time.sleep(0.05)
    out["kept_after_its_cluster_closed"] = kept.status
    print(json.dumps(out))
"""


def test_a_sweep_on_a_running_cluster_keeps_its_client_until_this_process_forks(tmp_path):
    """Two sweeps on a running cluster use one client, kept between them (no connection,
    plugin registration or close per sweep); each sweep's tasks (claiming runs, on this
    machine: one per worker) start in the order they were made; the kept
    client never stops this process forking (:func:`~mmsim.workers.can_fork` closes it,
    after which only the main thread is left) and a later sweep connects again; a kept
    client whose cluster closes closes itself without an error logged. Rows equal the
    serial sweep's throughout."""
    out, stderr = _run_script(tmp_path / "kept_client.py", _KEPT_CLIENT)
    assert out["same_rows"] == [True, True, True], "dask rows differ from serial"
    first, second = out["clients"]
    assert len(first) == 1 and first == second, f"one mmsim client for both sweeps: {out}"
    for order in out["orders"]:
        # one task per worker, sent at once: the scheduler may queue both on one of them
        assert all(o == sorted(o) for o in order) and sum(map(len, order)) >= 2, order
    assert out["can_fork"] and out["threads"] == ["MainThread"], out
    assert out["kept_after_its_cluster_closed"] == "closed", out
    assert "Failed to reconnect" not in stderr, stderr[-2000:]
