"""The measured cases of issue 11, each a function returning a plain dict.

Scenarios run with their shipped settings (``record.every`` 10 s, ``levels_every``
300 s or the file's own); only the run itself is timed (``Simulation.run()``: the event
loop, the recorders and the result tables), never building the scenario.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from benchmarks.timing import child_cpu, cpu_of

__all__ = [
    "bare_simpy_day",
    "book_day",
    "book_scenario",
    "check_cost",
    "days_scaling",
    "peak_memory",
    "scenario_day",
    "startup",
]

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


def _mmsim_env() -> dict:
    """Environment for child processes: the same ``mmsim`` this process imported."""
    import mmsim

    pkg_root = str(Path(mmsim.__file__).resolve().parents[1])
    return {"PYTHONPATH": os.pathsep.join([pkg_root, str(ROOT)])}


def bare_simpy_day(scenario_path: Path, repeat: int) -> dict:
    """CPU of plain ``simpy.Environment`` scheduling one day of the scenario's exogenous
    events and nothing else: a news tick every ``news.dt`` s and Poisson noise arrivals
    (exponential gaps drawn up front), each a timeout doing no work."""
    import simpy

    from mmsim.scenario import load_scenario

    sc = load_scenario(scenario_path)
    day = sc.clock.session_seconds
    rng = np.random.default_rng(0)
    rate = sc.noise.rate if sc.noise is not None else 0.0
    gaps = rng.exponential(1.0 / rate, size=int(3 * rate * day) + 100).tolist() if rate else []
    dt = sc.news.dt if sc.news is not None else None

    def once() -> int:
        env = simpy.Environment()

        def news(env):
            while True:
                yield env.timeout(dt)

        def noise(env):
            for gap in gaps:
                yield env.timeout(gap)

        if dt is not None:
            env.process(news(env))
        if gaps:
            env.process(noise(env))
        env.run(until=day)
        return 0

    events = (day / dt if dt else 0.0) + rate * day
    return {"cpu": cpu_of(once, repeat), "events": events}


def _run_cpu(scenario, repeat: int, seed: int = 1) -> dict:
    from mmsim.engine import Simulation

    Simulation(scenario, seed).run()  # warm-up: numba caches, imports
    return cpu_of(lambda sim: sim.run(), repeat, setup=lambda: Simulation(scenario, seed))


def least_of_runs(scenario, repeat: int, spent: dict[str, float]) -> tuple[float, object, dict]:
    """The least CPU (s) of ``repeat`` runs of ``scenario`` (seed 1) after a warm-up run,
    with that run's ``Simulation`` and a copy of ``spent`` (per-part timers, which the
    caller installed and which are cleared before each run) as it stood after it."""
    from mmsim.engine import Simulation

    Simulation(scenario, 1).run()  # warm-up: numba caches, imports
    best: tuple[float, object, dict] | None = None
    for _ in range(repeat):
        spent.clear()
        sim = Simulation(scenario, 1)
        t0 = time.process_time()
        sim.run()
        total = time.process_time() - t0
        if best is None or total < best[0]:
            best = (total, sim, dict(spent))
    assert best is not None, "repeat must be at least 1"
    return best


DAYS_OVERRIDES = {"market.impact.adv": 2.0e8}
"""For the days case. ``multi_dealer_bands``'s customers leave its desks shorter gamma
every day; on the shipped 2e6 shares/day of liquidity the tight desk's hedging diverges
(``lam * G <= -1`` measured on its fills) between days 3 and 8 on seeds 1-6 and 11, a
correct stop that ends the run early. A 100x deeper market keeps the same book growth
and the same agents' work and runs all 20 days (seeds 1 and 2, checked 2026-11-27)."""


def scenario_day(
    scenario_path: Path, repeat: int, days: float | None = None, overrides: dict | None = None
) -> dict:
    """CPU per simulated day of a shipped scenario (``days`` overrides its length,
    ``overrides`` other fields)."""
    from mmsim.scenario import load_scenario

    over = dict(overrides or {})
    if days is not None:
        over["clock.days"] = days
    sc = load_scenario(scenario_path, overrides=over or None)
    cpu = _run_cpu(sc, repeat)
    return {"days": sc.clock.days, "cpu": cpu, "s_per_day": cpu["min"] / sc.clock.days}


def book_scenario(n_lines: int, band: float, days: float, seed: int = 3) -> dict:
    """``long_gamma``'s market with one dealer holding a synthetic book of ``n_lines``
    lines: strikes uniform in $80-120 (to the cent), expiries uniform in 5-252 days, calls
    and puts, two thirds long. The book always holds 2,000 contracts gross, so ``lam * G``
    stays that of ``long_gamma`` or below whatever the line count (1 line = long_gamma)."""
    rng = np.random.default_rng(seed)
    if n_lines == 1:
        positions = [{"type": "call", "strike": 100.0, "expiry_days": 252.0, "qty": 2000.0}]
    else:
        size = 2000.0 / n_lines
        positions = [
            {
                "type": "call" if rng.random() < 0.5 else "put",
                "strike": round(float(rng.uniform(80, 120)), 2),
                "expiry_days": float(rng.uniform(5, 252)),
                "qty": size * (1.0 if i % 3 else -1.0),
            }
            for i in range(n_lines)
        ]
    return {
        "name": f"book{n_lines}",
        "seed": 7,
        "clock": {"days": days},
        "market": {"S0": 100.0, "impact": {"lam": 1.0e-4}, "half_spread": 0.005},
        "vol": {"atm": 0.20, "skew": -0.1},
        "news": {"vol": 0.16, "dt": 1.0},
        "noise": {"rate": 0.05, "mean_size": 100},
        "dealers": [{"name": "desk", "band": band, "trigger": "price", "positions": positions}],
    }


def book_day(n_lines: int, band: float, days: float, repeat: int) -> dict:
    """CPU per simulated day with a synthetic book of ``n_lines`` lines."""
    from mmsim.scenario import load_scenario

    sc = load_scenario(book_scenario(n_lines, band, days))
    cpu = _run_cpu(sc, repeat)
    return {
        "lines": n_lines,
        "band": band,
        "days": days,
        "cpu": cpu,
        "s_per_day": cpu["min"] / days,
    }


CHAIN_SCENARIO = SCENARIOS / "spx_2022-02-07.yaml"
"""The real chain book (issue 9): 5,720 SPX lines held by one street dealer, customers
(~1,400 trades a day) and a pension program."""
CHAIN_CONTROL_LINE = {"type": "put", "strike": 4500.0, "expiry_days": 10.0, "qty": -350000.0}
"""The 1-line control's line: 350,000 ATM puts (10 sessions) short, share gamma -73.8k
units per $1 at the open, the chain book's -73.9k (same ``lam * G``)."""


def chain_scenarios() -> dict:
    """``spx_2022-02-07`` as shipped and its 1-line controls, each one day (mappings):
    ``chain`` the shipped scenario (5,720 chain lines + customers + pension); ``one_line``
    the same market, customers and pension with the chain book replaced by the one line
    :data:`CHAIN_CONTROL_LINE` (the customers' trades still add lines during the day);
    ``one_line_no_customers`` that line alone (no customers: the book stays 1 line)."""
    from mmsim.scenario import load_scenario

    sc = load_scenario(CHAIN_SCENARIO)
    shipped = sc.model_dump(exclude_unset=True)
    one = sc.model_dump(exclude_unset=True)
    one.pop("book")
    one["market"]["S0"] = sc.market.S0  # the chain's spot
    one["dealers"][0]["positions"] = [dict(CHAIN_CONTROL_LINE)]
    alone = {**one, "customers": []}
    return {"chain": shipped, "one_line": one, "one_line_no_customers": alone}


def chain_day(repeat: int) -> list[dict]:
    """CPU per simulated day (min of ``repeat`` after a warm-up, seed 1) of
    :func:`chain_scenarios`, with each case's live line count at the start."""
    from mmsim.engine import Simulation
    from mmsim.scenario import load_scenario

    rows = []
    for name, data in chain_scenarios().items():
        sc = load_scenario(data)
        lines = len(Simulation(sc, 1).book)
        cpu = _run_cpu(sc, repeat)
        rows.append({"case": name, "lines": lines, "cpu": cpu, "s_per_day": cpu["min"]})
    return rows


def days_scaling(
    scenario_path: Path, days: list[float], repeat: int, overrides: dict | None = None
) -> dict:
    """CPU of the scenario at each length, and the least-squares slope of log CPU on log
    days (1 = linear in days)."""
    rows = [scenario_day(scenario_path, repeat, d, overrides) for d in days]
    x = np.log([r["days"] for r in rows])
    y = np.log([r["cpu"]["min"] for r in rows])
    slope = float(np.polyfit(x, y, 1)[0])
    return {"rows": rows, "exponent": slope}


def check_cost(n_lines: int, calls: int = 20_000, mode: str = "off") -> dict:
    """CPU per call, microseconds, of ``OptionBook.holder_delta_gamma`` (a dealer's
    check) on the synthetic book, spot wandering +-1 $ and the clock a second per call;
    ``mode`` is the book's ``delta_table`` (older books without it: exact)."""
    from mmsim.book import OptionBook
    from mmsim.vol import VolSurface

    sc = book_scenario(n_lines, 0.0, 1.0)
    try:
        book = OptionBook(1, delta_table=mode)
    except TypeError:  # before delta tables
        book = OptionBook(1)
    for p in sc["dealers"][0]["positions"]:
        book.add(p["strike"], p["expiry_days"] * 23_400.0, p["type"] == "call", p["qty"], 0)
    vol = VolSurface(0.2, -0.1, 0.01)
    spots = 100.0 + 0.01 * np.sin(np.arange(calls) / 50.0) * 100
    book.holder_delta_gamma(0, 100.0, 0.0, vol)

    def loop() -> None:
        for k, S in enumerate(spots.tolist()):
            book.holder_delta_gamma(0, S, float(k), vol)

    cpu = cpu_of(loop, 3)
    return {"lines": n_lines, "mode": mode, "us_per_check": 1e6 * cpu["min"] / calls}


STARTUP_CASES = ("python", "help", "validate", "run_no_plot", "run", "run_all")
"""The start-up commands, in the order measured (``run``: default flags, the figures
drawn by default; ``run_all``: every figure of the run)."""


def _has_plots_flag(package_root: Path) -> bool:
    """Whether the ``mmsim`` in ``package_root`` has ``run --plots`` (before it, a run
    drew every figure by default)."""
    return '"--plots"' in (package_root / "mmsim" / "cli.py").read_text()


def _startup_argv(name: str, out: Path, plots_flag: bool = True) -> list[str]:
    cli = [sys.executable, "-c", "import sys; from mmsim.cli import main; sys.exit(main())"]
    lg = str(SCENARIOS / "long_gamma.yaml")
    return {
        "python": [sys.executable, "-c", "pass"],
        "help": [*cli, "--help"],
        "validate": [*cli, "validate", lg],
        "run_no_plot": [*cli, "run", lg, "-o", str(out), "--no-plot"],
        "run": [*cli, "run", lg, "-o", str(out)],
        "run_all": [*cli, "run", lg, "-o", str(out), *(["--plots", "all"] if plots_flag else [])],
    }[name]


def startup(repeat: int, packages: list[Path] | None = None) -> dict:
    """Total CPU (children included) of ``mmsim --help``, ``mmsim validate``, ``mmsim run
    scenarios/long_gamma.yaml --no-plot``, the same run with default flags (summary,
    progress bar, the default figures) and with every figure (``--plots all``; a package
    without that flag drew them all by default), each in a fresh interpreter; ``python
    -c pass`` as the floor.

    ``packages``: directories holding an ``mmsim`` package (e.g. the main checkout and a
    branch), measured in turn within each repeat so that both see the same machine load;
    the result is then ``{directory: {case: {"min", "median"}}}``. Without it, the
    ``mmsim`` this process imported, and ``{case: {"min", "median"}}``.

    As for an installed package, bytecode is cached (in a temporary
    ``PYTHONPYCACHEPREFIX``, even where ``PYTHONDONTWRITEBYTECODE`` is set: compiling
    mmsim's sources costs ~0.1 s a run) and one untimed run warms it and the caches."""
    if packages is None:
        envs = {"": _mmsim_env()}
        import mmsim

        roots = {"": Path(mmsim.__file__).resolve().parents[1]}
    else:
        envs = {str(p): {"PYTHONPATH": os.pathsep.join([str(p), str(ROOT)])} for p in packages}
        roots = {str(p): Path(p) for p in packages}
    flag = {p: _has_plots_flag(root) for p, root in roots.items()}
    samples: dict = {p: {c: [] for c in STARTUP_CASES} for p in envs}
    with tempfile.TemporaryDirectory() as tmp:
        pyc = {"PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache"), "PYTHONDONTWRITEBYTECODE": ""}
        for i, (p, env) in enumerate(envs.items()):  # warm-up: imports what all need
            argv = _startup_argv("run_all", Path(tmp) / f"warm-{i}", flag[p])
            child_cpu(argv, env={**env, **pyc}, cwd=tmp)
        for k in range(repeat):
            for name in STARTUP_CASES:
                for i, (p, env) in enumerate(envs.items()):
                    argv = _startup_argv(name, Path(tmp) / f"{name}-{k}-{i}", flag[p])
                    samples[p][name].append(child_cpu(argv, env={**env, **pyc}, cwd=tmp)["cpu"])
    out = {
        p: {c: {"min": min(v), "median": float(np.median(v))} for c, v in cases.items()}
        for p, cases in samples.items()
    }
    return out[""] if packages is None else out


def set_value(text: str):
    """A ``--set path=value`` value: JSON (numbers, lists), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def peak_memory(days: float, plots: bool, mmsim_dir: Path | None = None) -> dict:
    """Peak resident memory (MB) and CPU of ``mmsim run long_gamma`` for ``days`` days,
    with or without the default plots, in a fresh process; ``mmsim_dir``: the ``mmsim``
    package of that directory (another checkout) instead of this process's."""
    env = _mmsim_env() if mmsim_dir is None else {"PYTHONPATH": str(mmsim_dir)}
    cli = [sys.executable, "-c", "import sys; from mmsim.cli import main; sys.exit(main())"]
    with tempfile.TemporaryDirectory() as tmp:
        argv = [*cli, "run", str(SCENARIOS / "long_gamma.yaml"), "-q", "-o", f"{tmp}/r"]
        argv += ["--set", f"clock.days={days:g}"] + ([] if plots else ["--no-plot"])
        rec = child_cpu(argv, env=env, cwd=tmp)
    return {"days": days, "plots": plots, "maxrss_mb": rec["maxrss_mb"], "cpu": rec["cpu"]}


def part_of(mod_name: str, cls_name: str | None, attr: str) -> tuple | None:
    """``(owner, function)`` of a part to time: ``attr`` of module ``mod_name`` (or of
    its class ``cls_name``); None where the measured mmsim (``--mmsim``, an older
    checkout) lacks it."""
    try:
        owner = importlib.import_module(mod_name)
    except ModuleNotFoundError:
        return None
    owner = getattr(owner, cls_name, None) if cls_name else owner
    f = getattr(owner, attr, None)
    return None if f is None else (owner, f)


@contextlib.contextmanager
def restoring(saved: list[tuple]) -> Iterator[None]:
    """Put back every ``(owner, attr, function)`` of ``saved`` on leaving (last wrapped
    first), however the timed runs end."""
    try:
        yield
    finally:
        for owner, attr, f in reversed(saved):
            setattr(owner, attr, f)


def save_report(path: Path | None, report: dict) -> None:
    """Write a benchmark's ``report`` as indented JSON to ``path`` (its folder made);
    nothing when ``path`` is None."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1))


def loglog_exponent(xs, ys) -> float:
    """Slope of log y on log x."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0]) if len(xs) > 1 else math.nan
