"""The sweep benchmark (``python -m benchmarks --sweep``): process pool vs dask."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Fastest wall time of ``repeat`` calls, s."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def dask_startup(workers: int, repeat: int) -> float:
    """Fastest wall time, s, to start a sweep's ``LocalCluster`` and client and close them
    again (no task run): the fixed cost every ``executor="dask"`` sweep without
    ``dask_address`` pays."""
    from dask.distributed import Client

    from mmsim.sweep import local_cluster

    def once() -> None:
        cluster = local_cluster(workers)
        client = Client(cluster)
        client.close()
        cluster.close()

    return best_of(once, repeat)


def bench_sweep(n_runs: int, run_days: float) -> dict:
    """Wall time of ``n_runs`` short runs: process pool with 1 and 2 workers, a dask
    LocalCluster with 2 workers started by the sweep (start-up included, as for the pool),
    and the same sweep on an already running 2-worker cluster (``dask_address``: the
    steady state). A warm-up sweep first lets new workers' numba caches load once."""
    from dask.distributed import Client

    import mmsim
    from mmsim.sweep import local_cluster

    scenario = mmsim.load_scenario(
        Path(__file__).parents[1] / "scenarios/band_sweep.yaml", overrides={"clock.days": run_days}
    )
    grid = {"dealers.0.band": [0, 100, 300, 1000, 3000], "dealers.0.positions.0.qty": [2000, -2000]}
    seeds = max(1, n_runs // 10)
    cluster = local_cluster(2)
    client = Client(cluster)  # keeps the cluster's workers alive between sweeps
    address = cluster.scheduler_address
    configs = (
        ("processes_1", "processes", 1, None),
        ("processes_2", "processes", 2, None),
        ("dask_2", "dask", 2, None),
        ("dask_2_steady", "dask", 2, address),
    )
    timings: dict[str, float] = {}
    tables = {}
    try:
        for _, executor, workers, addr in configs:  # warm-up: new workers load numba caches
            mmsim.sweep(
                scenario,
                {"dealers.0.band": [0, 1]},
                seeds=2,
                executor=executor,
                workers=workers,
                dask_address=addr,
                progress=False,
            )
        for order in (configs, configs[::-1]):  # best of two, in both orders (noisy machine)
            for label, executor, workers, addr in order:
                start = time.perf_counter()
                tables[label] = mmsim.sweep(
                    scenario,
                    grid,
                    seeds=seeds,
                    executor=executor,
                    workers=workers,
                    dask_address=addr,
                    progress=False,
                )
                elapsed = time.perf_counter() - start
                timings[label] = min(timings.get(label, elapsed), elapsed)
    finally:
        client.close()
        cluster.close()
    for label in tables:
        assert tables["processes_1"].equals(tables[label]), label
    startup = dask_startup(2, 2)
    return {
        "runs": len(tables["processes_1"]),
        "run_days": run_days,
        **{f"{k}_s": v for k, v in timings.items()},
        "dask_startup_s": startup,
        "efficiency_2_workers": timings["processes_1"] / (2 * timings["processes_2"]),
        "dask_overhead": timings["dask_2"] / timings["processes_2"] - 1.0,
        "dask_steady_overhead": timings["dask_2_steady"] / timings["processes_2"] - 1.0,
    }
