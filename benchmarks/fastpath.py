"""``python -m benchmarks.fastpath [REPEATS]``: the compiled fast path's skeleton ratio.

Interleaved in one process, ``REPEATS`` times (default 9): bare simpy scheduling one
``long_gamma`` day of news ticks and noise arrivals (:func:`benchmarks.cases.bare_simpy_day`),
then a ``long_gamma`` day on the simpy agents (``engine.fast_path: off``) and on the fast
path (``on``). Prints the minimum and median CPU (``process_time``) of each, both
skeleton ratios, where the fast path's day goes (the kernel calls, the series rows,
:meth:`mmsim.sampler.Sampler.fill`, batched and row by row, and the result tables) and
how many dealer checks the kernel skipped in its proven windows.
"""

from __future__ import annotations

import sys
import time

from benchmarks import cases


def _split(sc) -> dict[str, float]:
    """CPU of one fast-path day by part: kernel, series rows (``Sampler.fill``: greeks,
    flow, levels), result, the rest."""
    import mmsim.fastpath as fp
    from mmsim.engine import Simulation

    acc = {"kernel": 0.0, "rows": 0.0}
    advance = fp.advance

    def timed(*args):
        start = time.process_time()
        try:
            return advance(*args)
        finally:
            acc["kernel"] += time.process_time() - start

    fp.advance = timed
    try:
        sim = Simulation(sc, 1)
        fill = sim.sampler.fill

        def rows(*args, **kwargs) -> None:
            start = time.process_time()
            fill(*args, **kwargs)
            acc["rows"] += time.process_time() - start

        sim.sampler.fill = rows  # type: ignore[method-assign]
        start = time.process_time()
        sim.advance(sc.clock.duration)
        while sim.env.peek() <= sc.clock.duration:
            sim.env.step()
        sim.recorder.finish(sim.env.now)
        loop = time.process_time() - start
        start = time.process_time()
        sim._result()
        acc["result"] = time.process_time() - start
    finally:
        fp.advance = advance
    acc["rest of the loop"] = loop - acc["kernel"] - acc["rows"]
    acc["skipped"] = sim.hot.skipped_checks
    return acc


def main(argv: list[str] | None = None) -> int:
    from mmsim.engine import Simulation
    from mmsim.scenario import load_scenario

    args = sys.argv[1:] if argv is None else argv
    repeat = int(args[0]) if args else 9
    lg = cases.SCENARIOS / "long_gamma.yaml"
    scs = {m: load_scenario(lg, overrides={"engine.fast_path": m}) for m in ("off", "on")}
    for sc in scs.values():
        Simulation(sc, 1).run()  # warm-up: imports, numba caches
    cpu: dict[str, list[float]] = {"bare simpy": [], "off": [], "on": []}
    for _ in range(repeat):
        cpu["bare simpy"].append(cases.bare_simpy_day(lg, 1)["cpu"]["min"])
        for mode, sc in scs.items():
            sim = Simulation(sc, 1)
            start = time.process_time()
            sim.run()
            cpu[mode].append(time.process_time() - start)
    for name, xs in cpu.items():
        xs.sort()
        print(f"{name:>10}: min {xs[0]:.4f} s, median {xs[len(xs) // 2]:.4f} s CPU per day")
    bare = cpu["bare simpy"][0]
    print(f"skeleton ratio: simpy agents {cpu['off'][0] / bare:.2f}, fast path "
          f"{cpu['on'][0] / bare:.2f} (target 0.5)")  # fmt: skip
    runs = [_split(scs["on"]) for _ in range(3)]
    skipped = runs[0].pop("skipped")
    for r in runs[1:]:
        r.pop("skipped")
    parts = {k: min(r[k] for r in runs) for k in runs[0]}  # each part's minimum of 3
    print("fast-path day by part, CPU s: " + ", ".join(f"{k} {v:.4f}" for k, v in parts.items()))
    print(f"dealer checks skipped, their delta proven within the band: {skipped:,} a day")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
