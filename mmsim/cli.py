"""The ``mmsim`` command. Bad input prints one line and exits with status 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mmsim.errors import InstabilityError, ResultError, ScenarioError

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other bad input
        self.exit(EXIT_BAD_INPUT, f"mmsim: error: {message} (see mmsim --help)\n")


def _fail(message: str, status: int = EXIT_BAD_INPUT) -> int:
    print(f"mmsim: error: {message}", file=sys.stderr)
    return status


def _money(x: float) -> str:
    return f"-${-x:,.0f}" if x < 0 else f"${x:,.0f}"


def _summary(result, out: Path | None) -> str:
    from mmsim.summary import summary_lines

    lines = summary_lines(result)
    episodes = result.episodes
    if len(episodes):
        cols = [
            "start",
            "end",
            "kind",
            "view",
            "level",
            "primary_cause",
            "flow_ratio",
            "otc_support",
            "iv_change",
            "wall_melt",
        ]
        lines.append(f"episodes        {len(episodes)}")
        table = episodes[cols].astype({"start": "int64", "end": "int64"})
        lines.append(table.to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    else:
        lines.append("episodes        none (no wall break or flip crossing)")
    if out is not None:
        lines.append(f"written to      {out}/")
    return "\n".join(lines)


def _cmd_run(args: argparse.Namespace) -> int:
    from mmsim.engine import Simulation
    from mmsim.scenario import load_scenario

    scenario = load_scenario(args.scenario, overrides=args.set or None)
    seed = args.seed if args.seed is not None else scenario.seed
    out = (
        Path(args.output)
        if args.output
        else Path("runs") / (f"{scenario.name}-seed{seed}" if seed is not None else scenario.name)
    )
    if out.exists() and not (out / "meta.json").is_file():
        return _fail(f"{out}: exists and is not a result directory; choose another -o")
    try:
        result = Simulation(scenario, seed).run(progress=not args.quiet, keep_partial=True)
    except InstabilityError as err:
        return _fail(str(err), EXIT_DIVERGED)
    result.save(out)
    interrupted = "interrupted" in result.meta
    if interrupted:
        _fail(f"interrupted at t = {result.meta['interrupted']} s; partial result in {out}/", 130)
    if not args.no_plot:
        from mmsim.plots import save_run_plots

        save_run_plots(result, out)
    if args.report:
        from mmsim.report import write_report

        write_report(out)
    if not args.quiet:
        print(_summary(result, out))
    return 130 if interrupted else 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from mmsim.scenario import load_scenario

    scenario = load_scenario(args.scenario, overrides=args.set or None)
    print(
        f"{args.scenario}: ok ({scenario.name}: {len(scenario.dealers)} dealer(s), "
        f"{len(scenario.customers)} customer segment(s), {scenario.clock.days:g} day(s))"
    )
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
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

    from mmsim.engine import Simulation
    from mmsim.scenario import load_scenario

    scenario = load_scenario(args.scenario, overrides=args.set or None)
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
        from mmsim.plots import save_gex_plot

        out = (
            Path(args.output)
            if args.output
            else Path("runs") / (f"{scenario.name}-gex-t{args.at:g}.png")
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


def _cmd_sweep(args: argparse.Namespace) -> int:
    from mmsim.scenario import load_scenario
    from mmsim.sweep import sweep

    scenario = load_scenario(args.scenario, overrides=args.set or None)
    block = scenario.sweep
    grid, zipped = _parse_axes(args.grid, "--grid"), _parse_axes(args.zip, "--zip")
    if not grid and not zipped and block is not None:
        grid, zipped = dict(block.grid), dict(block.zip)
    if args.seed_list:
        seeds: int | list[int] = [int(x) for x in args.seed_list.split(",")]
    elif args.seeds is not None:
        seeds = args.seeds
    else:
        seeds = block.seeds if block is not None else 4
    sweep_seed = (
        args.sweep_seed if args.sweep_seed is not None else (block.seed if block is not None else 0)
    )
    executor = "dask" if args.dask else args.executor
    out = Path(args.output) if args.output else Path("runs") / f"{scenario.name}-sweep"
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
    )
    if not args.no_plot:
        from mmsim.plots import save_sweep_plots

        save_sweep_plots(out)
    if not args.quiet:
        failed = int((table["status"] != "ok").sum())
        print(f"{len(table)} runs ({failed} failed) in {out}/")
        from mmsim.summary import sweep_point_text

        for metric in ("realized_vol", "autocorr_lag1"):
            if metric in table and (table["status"] == "ok").any():
                print(sweep_point_text(table, metric))
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
        "3 the hedging feedback diverged (lam * G <= -1), 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"mmsim {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    overrides = {
        "action": "append",
        "metavar": "PATH=VALUE",
        "help": "override a scenario field, e.g. dealers.0.band=2000 (repeatable)",
    }

    p = sub.add_parser("run", help="run a scenario and write a result directory")
    p.add_argument("scenario", help="YAML scenario file")
    p.add_argument("-o", "--output", help="result directory (default runs/<name>-seed<N>)")
    p.add_argument("--seed", type=int, help="random seed (default: the scenario's seed)")
    p.add_argument("--set", **overrides)
    p.add_argument(
        "--no-plot",
        action="store_true",
        help="skip the figures (price.png, dealers.png, vol_regimes.png, "
        "returns_by_regime.png, gex_profile.png, gex_strikes.png, gex_heatmap.png); "
        "the tables, metrics.json and the summary are still written",
    )
    p.add_argument(
        "--report", action="store_true", help="also write report.html (see mmsim report)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("sweep", help="run a scenario over a parameter grid and seeds")
    p.add_argument("scenario")
    p.add_argument(
        "--grid",
        action="append",
        metavar="PATH=V1,V2,...",
        help="swept values (repeatable; all combinations are run)",
    )
    p.add_argument(
        "--zip",
        action="append",
        metavar="PATH=V1,V2,...",
        help="values that move together (repeatable; equal lengths)",
    )
    p.add_argument("--seeds", type=int, help="replicates per grid point (default 4)")
    p.add_argument("--seed-list", help="explicit run seeds, e.g. 1,2,3")
    p.add_argument("--sweep-seed", type=int, help="seed the replicate seeds derive from")
    p.add_argument("--workers", type=int, help="parallel workers (default: one per core)")
    p.add_argument("--executor", choices=["serial", "processes", "dask"], default="processes")
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

    p = sub.add_parser("plot", help="write the PNGs of a run or sweep directory")
    p.add_argument("directory")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("gex", help="print and plot the true and visible GEX of the book")
    p.add_argument("scenario")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mmsim`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ScenarioError as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:  # output piped into head & co.: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
