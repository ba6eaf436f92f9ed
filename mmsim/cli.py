"""The ``mmsim`` command. Bad input prints one line and exits with status 2."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from mmsim.errors import (
    BudgetError,
    ClusterLostError,
    InstabilityError,
    OutputError,
    ResultError,
    ScenarioError,
)

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_WRITE = 4


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        self.exit(EXIT_BAD_INPUT, f"mmsim: error: {message} (see mmsim --help)\n")


def _fail(message: str, status: int = EXIT_BAD_INPUT) -> int:
    print(f"mmsim: error: {message}", file=sys.stderr)
    return status


def _int_at_least(low: int):
    """An argparse type: an integer >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _seed_list(text: str) -> list[int]:
    seeds = [_int_at_least(0)(x.strip()) for x in text.split(",")]
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"a seed is repeated in {text!r}")
    return seeds


def _keep_list(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    if not names:
        raise argparse.ArgumentTypeError("needs column names, e.g. price,dealer_delta")
    return names


def _money(x: float) -> str:
    return f"-${-x:,.0f}" if x < 0 else f"${x:,.0f}"


def _summary(result, out: Path | None) -> str:
    from mmsim.episodes import episode_lines
    from mmsim.summary import summary_lines

    lines = summary_lines(result)
    lines += episode_lines(result.episodes, result.scenario)
    if out is not None:
        lines.append(f"written to      {out}/")
    return "\n".join(lines)


def _run_dir(scenario, seed: int | None, overrides: list[str] | None) -> Path:
    """``runs/<name>-seed<N>``, plus ``-set<hash>`` of the overrides; the name a slug."""
    import hashlib

    from mmsim.paths import slug

    name = slug(scenario.name)
    if seed is not None:
        name += f"-seed{seed}"
    if overrides:
        digest = hashlib.sha1("\n".join(overrides).encode("utf-8", "surrogatepass"))
        name += f"-set{digest.hexdigest()[:6]}"
    return Path("runs") / name


def _cmd_run(args: argparse.Namespace) -> int:
    from mmsim.kernel_loads import lean_kernel_loads
    from mmsim.lifetime import loading
    from mmsim.numba_boot import announce_compiles

    with loading(args.program):
        if args.program:  # no numba compiler start-up to load cached kernels (0.1 s)
            lean_kernel_loads()
        from mmsim.budget import check
        from mmsim.engine import Simulation
        from mmsim.paths import check_output_dir
        from mmsim.scenario import load_scenario

    scenario = load_scenario(args.scenario, overrides=args.set or None)
    seed = args.seed if args.seed is not None else scenario.seed
    out = Path(args.output) if args.output else _run_dir(scenario, seed, args.set)
    replacing = check_output_dir(out, "meta.json", "a run result")
    check(scenario, max_events=args.max_events, max_memory=args.max_memory, source=args.scenario)
    if not args.quiet:
        announce_compiles()
    try:
        result = Simulation(scenario, seed).run(progress=not args.quiet, keep_partial=True)
    except InstabilityError as err:
        return _fail(str(err), EXIT_DIVERGED)
    from mmsim.executors import CORE_METRICS

    bad = [m for m in CORE_METRICS if not math.isfinite(result.metrics.get(m, math.nan))]
    if bad:  # never report a NaN as a result
        why = f"the run produced a non-finite {bad[0]} (the model left its domain)"
        return _fail(f"{args.scenario}: {why}; nothing written", EXIT_DIVERGED)
    if args.set:
        result.meta["overrides"] = list(args.set)
    if replacing and not args.quiet:
        print(f"mmsim: replacing the earlier result in {out}/", file=sys.stderr)
    result.save(out)
    interrupted = "interrupted" in result.meta
    if interrupted:
        _fail(f"interrupted at t = {result.meta['interrupted']} s; partial result in {out}/", 130)
    explain_episodes = args.explain and not interrupted
    if explain_episodes:
        from mmsim.explain import explain, format_explanation, save_explanation

        explanation = explain(result, progress=not args.quiet)
        save_explanation(explanation, result, out)
    if not args.no_plot:
        _import_plots(args.program)
        from mmsim.plots import save_run_plots

        save_run_plots(result, out, args.plots)
    if args.report:
        from mmsim.report import write_report

        write_report(out)
    if not args.quiet:
        print(_summary(result, out))
        if not args.no_plot and args.plots == "overview":
            print(f"more figures    mmsim plot {out}  (or run with --plots all)")
        if explain_episodes and len(result.episodes):
            print(format_explanation(explanation, result.scenario))
    return 130 if interrupted else 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from mmsim.kernel_loads import lean_kernel_loads

    if args.program:  # no numba compiler start-up to load cached kernels
        lean_kernel_loads()
    from mmsim.explain import explain_dir, format_explanation
    from mmsim.numba_boot import announce_compiles

    if args.workers is not None and args.workers < 1:
        return _fail(f"--workers {args.workers}: needs at least 1")
    if not args.quiet:
        announce_compiles()
    executor = "dask" if args.dask else args.executor
    try:
        result, explanation = explain_dir(
            args.directory,
            executor=executor,
            workers=args.workers,
            dask_address=args.dask,
            progress=not args.quiet,
        )
    except (ResultError, ScenarioError) as err:
        return _fail(str(err))
    if not args.quiet:
        print(format_explanation(explanation, result.scenario))
        print(f"written to      {args.directory}/explain.json, explain.parquet")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from mmsim.scenario import load_scenario

    scenario = load_scenario(args.scenario, overrides=args.set or None)
    print(
        f"{args.scenario}: ok ({scenario.name}: {len(scenario.dealers)} dealer(s), "
        f"{len(scenario.customers)} customer segment(s), {scenario.clock.days:g} day(s))"
    )
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    _import_plots(args.program)
    from mmsim.plots import save_plots

    try:
        paths = save_plots(args.directory)
    except (ResultError, ScenarioError) as err:
        return _fail(str(err))
    for path in paths:
        print(path)
    return 0


def _cmd_gex(args: argparse.Namespace) -> int:
    import pandas as pd

    if args.chain is not None:
        from mmsim.gexchain import gex_chain_main

        return gex_chain_main(args.chain, args.output, not args.no_plot)
    if args.scenario is None:
        return _fail("gex needs a SCENARIO or --chain FILE")

    from mmsim.kernel_loads import lean_kernel_loads

    if args.program:  # no numba compiler start-up to load cached kernels
        lean_kernel_loads()
    from mmsim.engine import Simulation
    from mmsim.scenario import load_scenario

    scenario = load_scenario(args.scenario, overrides=args.set or None)
    if args.output and not args.no_plot and Path(args.output).suffix.lower() != ".png":
        return _fail(f"-o {args.output}: the GEX plot is a PNG; give a name ending in .png")
    duration = scenario.clock.duration
    if not 0.0 <= args.at <= duration:
        return _fail(f"--at {args.at:g}: outside the run (0 to {duration:g} s)")
    seed = args.seed if args.seed is not None else scenario.seed
    sim = Simulation(scenario, seed)
    try:
        sim.advance(args.at)
    except InstabilityError as err:
        return _fail(str(err), EXIT_DIVERGED)
    S, t, book, vol = sim.market.mid, sim.env.now, sim.book, sim.vol
    pd.set_option("display.width", 120)
    for view in ("true", "visible"):
        flip = book.flip(S, t, vol, view)
        cw, pw = book.walls(S, t, vol, view)
        print(
            f"== {view} GEX at t={t:g} s, spot {S:.2f}: net {book.gex_at(S, t, vol, view):,.0f}"
            f" $ per 1%; flip {'none' if flip is None else f'{flip:.2f}'}; "
            f"call wall {cw}; put wall {pw}"
        )
        table = book.gex_by_strike(S, t, vol, view)
        print(table.to_string(index=False, float_format=lambda x: f"{x:,.0f}"))
    if not args.no_plot:
        from mmsim.paths import slug
        from mmsim.plots import save_gex_plot

        out = (
            Path(args.output)
            if args.output
            else Path("runs") / (f"{slug(scenario.name)}-gex-t{args.at:g}.png")
        )
        print(save_gex_plot(book, S, t, vol, out, title=f"{scenario.name}, t = {t:g} s"))
    return 0


def _parse_axes(items: list[str] | None, flag: str) -> dict[str, list]:
    """``["path=v1,v2", ...]`` -> ``{path: [v1, v2]}`` with YAML-typed values."""
    from mmsim.scenario import parse_override

    axes: dict[str, list] = {}
    for item in items or []:
        path, _, values = item.partition("=")
        if not path or not values:
            raise ScenarioError(f"{flag} needs PATH=V1,V2,... (got {item!r})", source="<cli>")
        axes[path] = [parse_override(f"{path}={v}")[1] for v in values.split(",")]
    return axes


def _merge_axes(block, grid: dict, zipped: dict) -> tuple[dict, dict, list[str]]:
    """The scenario's sweep block with ``--grid`` / ``--zip`` merged in (a path given on
    the command line replaces the block's values for that path); and a description of
    where each axis came from."""
    base_grid = dict(block.grid) if block is not None else {}
    base_zip = dict(block.zip) if block is not None else {}
    for path in (*grid, *zipped):
        base_grid.pop(path, None)
        base_zip.pop(path, None)
    if zipped and base_zip:  # zipped lists must move together: one source only
        base_zip = {}
    merged_grid, merged_zip = {**base_grid, **grid}, {**base_zip, **zipped}
    given = {*grid, *zipped}
    where = [
        f"{path} ({len(values)} values, {'command line' if path in given else 'scenario'})"
        for path, values in {**merged_grid, **merged_zip}.items()
    ]
    return merged_grid, merged_zip, where


def _import_plots(program: bool) -> None:
    """Import the figures' modules and matplotlib (the sweep's process does it while
    forked workers run runs: ``sweep(meanwhile=...)``)."""
    from mmsim.lifetime import loading
    from mmsim.mpl_boot import without_3d_axes

    with loading(program), without_3d_axes(program):
        import mmsim.plots  # noqa: F401


def _cmd_sweep(args: argparse.Namespace) -> int:
    from mmsim.kernel_loads import lean_kernel_loads
    from mmsim.lifetime import loading
    from mmsim.numba_boot import announce_compiles

    with loading(args.program):
        if args.program:  # no numba compiler start-up to load cached kernels (0.1 s)
            lean_kernel_loads()
        from mmsim.scenario import load_scenario
        from mmsim.sweep import sweep

    scenario = load_scenario(args.scenario, overrides=args.set or None)
    block = scenario.sweep
    grid, zipped = _parse_axes(args.grid, "--grid"), _parse_axes(args.zip, "--zip")
    grid, zipped, where = _merge_axes(block, grid, zipped)
    if args.seed_list:
        seeds: int | list[int] = args.seed_list
    elif args.seeds is not None:
        seeds = args.seeds
    else:
        seeds = block.seeds if block is not None else 4
    sweep_seed = (
        args.sweep_seed if args.sweep_seed is not None else (block.seed if block is not None else 0)
    )
    executor = "dask" if args.dask else args.executor
    if args.output:
        out = Path(args.output)
    else:
        from mmsim.paths import slug

        out = Path("runs") / f"{slug(scenario.name)}-sweep"
    if not args.quiet:
        print(f"grid: {'; '.join(where) or 'none (seeds only)'}", file=sys.stderr)
        announce_compiles()  # forked workers inherit it: each says so once if it compiles
    table = sweep(
        scenario,
        grid,
        zip=zipped,
        seeds=seeds,
        sweep_seed=sweep_seed,
        executor=executor,
        workers=args.workers,
        dask_address=args.dask,
        out=out,
        progress=not args.quiet,
        csv=args.csv,
        keep=args.keep or (),
        run_timeout=args.run_timeout,
        max_events=args.max_events,
        max_memory=args.max_memory,
        keep_workers=False,  # one sweep per command: its workers exit with it
        meanwhile=None if args.no_plot else lambda: _import_plots(args.program),
    )
    ok = "status" in table and (table["status"] == "ok").any()
    if not args.no_plot and ok:
        _import_plots(args.program)
        from mmsim.sweep_figures import save_sweep_figures

        save_sweep_figures(out, workers=1 if executor == "serial" else args.workers)
    if not args.quiet:
        failed = int((table["status"] != "ok").sum()) if "status" in table else 0
        reused = table.attrs.get("reused", 0)
        again = f", {reused} reused from an earlier sweep" if reused else ""
        print(f"{len(table)} runs ({failed} failed{again}) in {out}/")
        if ok:
            from mmsim.summary import sweep_point_text

            for metric in ("realized_vol", "autocorr_lag1"):
                if metric in table:
                    print(sweep_point_text(table, metric))
        else:
            print("no run succeeded; see the error column of results.parquet")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from mmsim.report import write_report

    try:
        print(write_report(args.directory, args.output))
    except (ResultError, ScenarioError) as err:
        return _fail(str(err))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from mmsim.compare import compare

    if len(args.directories) < 2:
        return _fail("compare needs two or more run directories")
    try:
        text, png = compare(args.directories, args.output, plot=not args.no_plot)
    except (ResultError, ScenarioError) as err:
        return _fail(str(err))
    print(text)
    if png is not None:
        print(png)
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mmsim")
    except PackageNotFoundError:  # a source checkout on PYTHONPATH
        return "unknown (not installed)"


class _VersionAction(argparse.Action):
    """``--version``, reading the installed version only when asked (importing
    ``importlib.metadata`` is ~0.03 s, a third of ``mmsim --help``)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, **kw) -> None:
        kw.setdefault("help", "show the version and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kw)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"mmsim {_version()}")  # on stdout, as argparse's own version action
        parser.exit()


def _cmd_schema(args: argparse.Namespace) -> int:
    from mmsim.scenario import scenario_json_schema

    print(json.dumps(scenario_json_schema(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mmsim``."""
    parser = _Parser(
        prog="mmsim",
        description="Agent-based simulator of how options dealers' delta hedging moves the "
        "underlying market: run scenarios, sweep parameters, plot walls and regimes.",
        epilog="exit status: 0 ok, 2 bad input (one line naming file, field and line), "
        "3 the hedging feedback diverged (lam * G <= -1), 4 cannot write the output "
        "(path and cause named), 130 interrupted (143 on SIGTERM)",
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    overrides = {
        "action": "append",
        "metavar": "PATH=VALUE",
        "help": "override a scenario field, e.g. dealers.0.band=2000 (repeatable)",
    }

    budget = {
        "--max-events": {
            "type": _positive_float,
            "metavar": "N",
            "help": "refuse a run estimated to need more events (default 5e8)",
        },
        "--max-memory": {
            "type": lambda text: _positive_float(text) * 2**30,
            "metavar": "GiB",
            "help": "refuse a run estimated to need more memory (default half the RAM, <= 16)",
        },
    }

    p = sub.add_parser("run", help="run a scenario and write a result directory")
    p.add_argument("scenario", help="YAML scenario file")
    p.add_argument(
        "-o",
        "--output",
        help="result directory (default runs/<name>-seed<N>, plus -set<hash> with --set); "
        "an existing result there is replaced (said on stderr), any other content refused",
    )
    p.add_argument(
        "--seed", type=_int_at_least(0), help="random seed (default: the scenario's seed)"
    )
    for flag, kw in budget.items():
        p.add_argument(flag, **kw)
    p.add_argument("--set", **overrides)
    p.add_argument(
        "--plots",
        choices=("overview", "all"),
        default="overview",
        help="figures to draw: overview (default) = price.png (price, walls and flip, "
        "regimes, episodes, dealers' net hedge flow), plus book.png on the limit order "
        "book; all = also dealers.png, vol_regimes.png, returns_by_regime.png, "
        "gex_profile.png, gex_strikes.png and, for multi-day or 0DTE runs, "
        "gex_heatmap.png (or later: mmsim plot DIR)",
    )
    p.add_argument(
        "--no-plot",
        action="store_true",
        help="no figures; the tables, metrics.json and the summary are still written",
    )
    p.add_argument(
        "--report", action="store_true", help="also write report.html (see mmsim report)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.add_argument(
        "--explain",
        action="store_true",
        help="then find each episode's cause by replay (as mmsim explain)",
    )
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser(
        "explain",
        help="find the causes of a run's wall breaks by replaying it without each candidate",
    )
    p.add_argument("directory", help="result directory of mmsim run")
    p.add_argument("--workers", type=int, help="parallel replays (default: one per core)")
    p.add_argument("--executor", choices=["serial", "processes", "dask"], default="processes")
    p.add_argument("--dask", metavar="ADDRESS", help="use this dask.distributed scheduler")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or table")
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser("sweep", help="run a scenario over a parameter grid and seeds")
    p.add_argument("scenario")
    p.add_argument(
        "--grid",
        action="append",
        metavar="PATH=V1,V2,...",
        help="swept values (repeatable; all combinations are run); merged with the "
        "scenario's sweep grid: a path given here replaces that path's values there",
    )
    p.add_argument(
        "--zip",
        action="append",
        metavar="PATH=V1,V2,...",
        help="values that move together (repeatable; equal lengths)",
    )
    p.add_argument("--seeds", type=_int_at_least(1), help="replicates per grid point (default 4)")
    p.add_argument("--seed-list", type=_seed_list, help="explicit run seeds, e.g. 1,2,3")
    p.add_argument(
        "--sweep-seed", type=_int_at_least(0), help="seed the replicate seeds derive from"
    )
    p.add_argument(
        "--workers", type=_int_at_least(1), help="parallel workers (default: one per core)"
    )
    p.add_argument(
        "--executor",
        choices=["auto", "serial", "processes", "dask"],
        default="auto",
        help="auto (default): serial when the sweep is shorter than starting workers",
    )
    p.add_argument(
        "--keep",
        type=_keep_list,
        metavar="COL,COL",
        help="keep these series columns of every run (runs/<id>.series.parquet and "
        "series.parquet), e.g. price,dealer_delta",
    )
    p.add_argument(
        "--run-timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="a run taking longer becomes a failed row (serial and process executors)",
    )
    for flag, kw in budget.items():
        p.add_argument(flag, **kw)
    p.add_argument("--dask", metavar="ADDRESS", help="use this dask.distributed scheduler")
    p.add_argument("-o", "--output", help="sweep directory (default runs/<name>-sweep)")
    p.add_argument("--csv", action="store_true", help="also write results.csv")
    p.add_argument("--set", **overrides)
    p.add_argument(
        "--no-plot",
        action="store_true",
        help="skip the sweep figures (<metric>_vs_<x>.png, <metric>_by_<x>_and_<y>.png, "
        "distributions.png); results.parquet and the summary are still written",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("validate", help="check a scenario file without running it")
    p.add_argument("scenario")
    p.add_argument("--set", **overrides)
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("plot", help="write all the PNGs of a run or sweep directory")
    p.add_argument("directory")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("gex", help="print and plot the true and visible GEX of the book")
    p.add_argument("scenario", nargs="?")
    p.add_argument("--chain", metavar="CSV", help="a CBOE option chain instead of a scenario")
    p.add_argument(
        "--at",
        type=float,
        default=0.0,
        metavar="TIME",
        help="simulate up to TIME seconds first (default 0: the opening book)",
    )
    p.add_argument("--seed", type=int, help="random seed (default: the scenario's seed)")
    p.add_argument("-o", "--output", help="PNG path (default runs/<name>-gex-t<TIME>.png)")
    p.add_argument("--no-plot", action="store_true", help="print only")
    p.add_argument("--set", **overrides)
    p.set_defaults(func=_cmd_gex)

    p = sub.add_parser("schema", help="print the JSON Schema of scenario files")
    p.set_defaults(func=_cmd_schema)

    p = sub.add_parser("report", help="write report.html of a run or sweep directory")
    p.add_argument("directory", help="a run directory (meta.json) or sweep (results.parquet)")
    p.add_argument("-o", "--output", help="HTML path (default DIRECTORY/report.html)")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("compare", help="compare runs: overlays, metrics side by side")
    p.add_argument("directories", nargs="+", metavar="RUN_DIR", help="two or more run directories")
    p.add_argument("-o", "--output", help="PNG path (default compare.png beside the first run)")
    p.add_argument("--no-plot", action="store_true", help="print the table only, no compare.png")
    p.set_defaults(func=_cmd_compare)
    return parser


def _terminated(signum: int, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C: pools are shut down


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mmsim`` console script; returns the exit status. Called
    without ``argv`` (the console script, ``python -m mmsim.cli``) the process is the
    command's own and exits when it returns: see :mod:`mmsim.lifetime`."""
    import signal
    import threading

    args = build_parser().parse_args(argv)
    args.program = argv is None  # the command's own process, not a caller's (tests)
    warnings.formatwarning = lambda message, *_, **__: f"mmsim: warning: {message}\n"
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return args.func(args)
    except (ScenarioError, OutputError, BudgetError, ResultError) as err:
        return _fail(str(err))
    except ClusterLostError as err:  # like an unreachable --dask ADDRESS (OutputError)
        return _fail(str(err))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:  # output piped into head & co.: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:  # a read-only or full disk, a vanished directory
        where = f"{err.filename}: " if err.filename else ""
        return _fail(f"{where}cannot write: {err.strerror or err}", EXIT_WRITE)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if args.program:
            from mmsim.lifetime import skip_final_collections

            skip_final_collections()


if __name__ == "__main__":
    sys.exit(main())
