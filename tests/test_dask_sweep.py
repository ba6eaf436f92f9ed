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


def test_a_dask_sweep_leaves_no_thread_that_stops_this_process_forking(tmp_path):
    """After a dask sweep on its own cluster, the process has no thread left alive, so
    the command's figures and later process-pool sweeps still fork (distributed's
    offload thread outlived the client: every later fork was refused)."""
    import json
    import subprocess
    import sys

    from test_sweep import ROOT

    script = tmp_path / "after_dask.py"  # a file: dask's spawned nannies import __main__
    script.write_text(_FORK_AFTER_DASK)
    argv = [sys.executable, str(script), json.dumps(TINY), json.dumps(GRID)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"can_fork": True, "threads": ["MainThread"]}, report
