"""``python -m benchmarks [--quick] [--json PATH]``: measure, print a table, write JSON."""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import simpy
from scipy.special import ndtr

import mmsim.engine as engine
from mmsim.book import OptionBook, reduce_delta_gamma
from mmsim.scenario import load_scenario
from mmsim.vol import VolSurface

RESULTS = Path(__file__).parent / "results" / "latest.json"


def best_of(fn: Callable[[], object], repeat: int) -> float:
    """Fastest wall time of ``repeat`` calls, s (the least disturbed by other load)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def random_book(n_lines: int, seed: int = 0) -> OptionBook:
    """A book of ``n_lines`` distinct lines: strikes 80-120, expiries 1-252 days, 2 holders."""
    rng = np.random.default_rng(seed)
    book = OptionBook(2, capacity=n_lines)
    for i in range(n_lines):
        book.add(
            round(rng.uniform(80, 120), 2),
            rng.uniform(1, 252) * 23_400.0,
            bool(rng.random() < 0.5),
            float(rng.integers(-50, 50) or 1),
            i % 2,
        )
    return book


def numpy_delta_gamma(book: OptionBook, S: float, t: float, vol: VolSurface):
    """The same reduction, vectorized with numpy + scipy (the baseline)."""
    K, T = book.strike, (book.expiry - t) / book.year_seconds
    live = T > 0
    level, skew, floor = vol.params()
    sigma = np.maximum(level + skew * np.log(K / S), floor)
    sd = sigma * np.sqrt(np.where(live, T, 1.0))
    d1 = (np.log(S / K) + 0.5 * sd * sd) / sd
    delta = np.where(book.is_call, ndtr(d1), ndtr(d1) - 1.0)
    gamma = np.exp(-0.5 * d1 * d1) / (np.sqrt(2 * np.pi) * S * sd)
    units = np.where(live, book.qty * book.multiplier, 0.0)
    n = book.n_holders
    return (np.bincount(book.holder, units * delta, n), np.bincount(book.holder, units * gamma, n))


def bench_greeks(n_lines: int, repeat: int) -> dict:
    book, vol = random_book(n_lines), VolSurface(0.2, -0.1, 0.01)
    out_d, out_g = np.zeros(2), np.zeros(2)
    S, t = 100.0, 0.0
    book.net_delta_gamma(S, t, vol, out_d, out_g)
    ref_d, ref_g = numpy_delta_gamma(book, S, t, vol)
    assert np.allclose(out_d, ref_d, rtol=1e-10) and np.allclose(out_g, ref_g, rtol=1e-10)
    loops = 200
    args = book._kargs(t, vol, book._units, True)

    def numba_book():
        for _ in range(loops):
            book.net_delta_gamma(S, t, vol, out_d, out_g)

    def numba_kernel():
        for _ in range(loops):
            reduce_delta_gamma(S, *args, out_d, out_g)

    def numpy_scipy():
        for _ in range(loops):
            numpy_delta_gamma(book, S, t, vol)

    per = loops * n_lines / 1e9
    numba_ns = best_of(numba_book, repeat) / per
    kernel_ns = best_of(numba_kernel, repeat) / per
    numpy_ns = best_of(numpy_scipy, repeat) / per
    return {
        "lines": n_lines,
        "numba_ns_per_option": numba_ns,
        "numba_kernel_ns_per_option": kernel_ns,
        "numpy_scipy_ns_per_option": numpy_ns,
        "speedup": numpy_ns / numba_ns,
    }


class CountingEnvironment(simpy.Environment):
    """A simpy environment that counts processed events (``step`` calls)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.events = 0

    def step(self) -> None:
        self.events += 1
        super().step()


def bare_simpy_rate(n_events: int, repeat: int) -> float:
    """Timeouts per second of one process yielding ``env.timeout(1)`` in a loop."""

    def once() -> CountingEnvironment:
        env = CountingEnvironment()

        def ticker(env):
            while True:
                yield env.timeout(1.0)

        env.process(ticker(env))
        env.run(until=float(n_events))
        return env

    seconds = best_of(once, repeat)
    return once().events / seconds


def engine_scenario(n_lines: int, days: float) -> dict:
    rng = np.random.default_rng(1)
    positions = [
        {
            "type": "call" if rng.random() < 0.5 else "put",
            "strike": round(float(rng.uniform(80, 120)), 2),
            "expiry_days": float(rng.uniform(5, 252)),
            "qty": float(rng.integers(1, 20)) * (1 if i % 3 else -1),
        }
        for i in range(n_lines)
    ]
    return {
        "name": f"bench{n_lines}",
        "clock": {"days": days},
        "market": {"S0": 100.0, "impact": {"lam": 1e-5}},
        "news": {"vol": 0.15, "dt": 1.0},
        "noise": {"rate": 0.2, "mean_size": 100},
        "dealers": [{"band": 100, "trigger": "price", "positions": positions}],
        "record": {"every": 10.0, "levels_every": 1800.0},
    }


def bench_engine(n_lines: int, days: float, repeat: int) -> dict:
    """Events per second of a one-day run (counted by the environment's ``step``)."""
    scenario = load_scenario(engine_scenario(n_lines, days))
    original = engine.simpy.Environment
    engine.simpy.Environment = CountingEnvironment  # count the engine's own events
    try:
        engine.Simulation(scenario, 1).run()  # warm-up: numba compile, caches
        runs = []
        for _ in range(repeat):
            sim = engine.Simulation(scenario, 1)
            start = time.perf_counter()
            sim.run()
            runs.append((time.perf_counter() - start, sim.env.events))
    finally:
        engine.simpy.Environment = original
    seconds, events = min(runs)
    return {
        "lines": n_lines,
        "days": days,
        "events": events,
        "seconds": seconds,
        "events_per_s": events / seconds,
    }


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs (smoke test)")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write results")
    args = parser.parse_args(argv)
    repeat = 2 if args.quick else 5
    days = 0.1 if args.quick else 1.0
    greeks = [bench_greeks(n, repeat) for n in (10, 1000)]
    bare = bare_simpy_rate(50_000 if args.quick else 300_000, repeat)
    engines = [bench_engine(n, days, max(1, repeat - 2)) for n in (1, 10, 1000)]
    for row in engines:
        row["ratio_to_bare_simpy"] = row["events_per_s"] / bare
    sweep = bench_sweep(20 if args.quick else 200, 0.05 if args.quick else 0.25)
    print(f"{'measure':<46}{'value':>14}{'baseline':>14}{'ratio':>9}")
    for g in greeks:
        print(
            f"{'book delta+gamma, ns/option, ' + str(g['lines']) + ' lines (numba)':<46}"
            f"{g['numba_ns_per_option']:>14.1f}{g['numpy_scipy_ns_per_option']:>14.1f}"
            f"{g['speedup']:>8.1f}x"
        )
    print(f"{'bare simpy timeouts/s':<46}{bare:>14,.0f}")
    for e in engines:
        label = f"engine events/s, {e['lines']}-line book, {e['days']:g} day"
        print(
            f"{label:<46}{e['events_per_s']:>14,.0f}{bare:>14,.0f}{e['ratio_to_bare_simpy']:>9.2f}"
        )
        print(f"{'  wall time per simulated day (s)':<46}{e['seconds'] / e['days']:>14.2f}")
    print(
        f"{'sweep: ' + str(sweep['runs']) + ' runs, 1 worker (s)':<46}"
        f"{sweep['processes_1_s']:>14.2f}"
    )
    print(
        f"{'sweep: 2 workers (s), parallel efficiency':<46}{sweep['processes_2_s']:>14.2f}"
        f"{'':>14}{sweep['efficiency_2_workers']:>9.0%}"
    )
    print(
        f"{'sweep: dask LocalCluster, 2 workers (s), overhead':<46}{sweep['dask_2_s']:>14.2f}"
        f"{sweep['processes_2_s']:>14.2f}{sweep['dask_overhead']:>+9.0%}"
    )
    print(f"{'  of which cluster start + close (s)':<46}{sweep['dask_startup_s']:>14.2f}")
    print(
        f"{'sweep: dask, running cluster (s), overhead':<46}{sweep['dask_2_steady_s']:>14.2f}"
        f"{sweep['processes_2_s']:>14.2f}{sweep['dask_steady_overhead']:>+9.0%}"
    )
    report = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "quick": args.quick,
        "greeks": greeks,
        "bare_simpy_timeouts_per_s": bare,
        "engine": engines,
        "sweep": sweep,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
