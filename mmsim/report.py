"""``mmsim report DIR``: one self-contained ``report.html`` of a run or a sweep.

In the spirit of a quant tearsheet: what was run (scenario, seed, entropy, mmsim
version), the summary, the metrics, each dealer desk, the episodes with their causes,
every figure (PNG, embedded as base64: the file opens anywhere, alone) and the resolved
scenario. A sweep's report has the spec, the metric per grid point (mean ± standard
error), the failed runs and the sweep figures.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from pathlib import Path

import pandas as pd

from mmsim.errors import ResultError
from mmsim.paths import atomic_write_text
from mmsim.result import Result, load_result, reading

__all__ = ["render_report", "write_report"]

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1250px;color:#222;line-height:1.35}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;border-bottom:1px solid #ccc;
padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
pre{background:#f7f7f7;padding:.8em;font-size:.8em;overflow-x:auto}
figure{margin:1em 0}figcaption{font-size:.85em;color:#555}img{max-width:100%}
.meta{color:#555;font-size:.9em}
"""


def _number(v: float) -> str:
    """``1,234,567`` for large values, 4 significant digits for small ones."""
    if v != v or v in (float("inf"), float("-inf")):
        return str(v)
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _table(frame: pd.DataFrame, table_id: str) -> str:
    """An HTML table with ``id``; floats formatted, text escaped."""
    return frame.to_html(
        index=False, table_id=table_id, escape=True, float_format=_number, border=0
    )


def _img(png: bytes, name: str, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure id="fig-{html.escape(name)}"><img alt="{html.escape(name)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}'
        "</figcaption></figure>"
    )


def _png(fig) -> bytes:
    from mmsim.plotkit import render

    buffer = io.BytesIO()
    render(fig, buffer)
    return buffer.getvalue()


def _figures(directory: Path, makers: dict) -> list[str]:
    """Each figure as an ``<img>``: the PNG in ``directory`` when there is one (what the
    run wrote), else drawn now."""
    out = []
    for name, (make, doc) in makers.items():
        path = directory / name
        png = path.read_bytes() if path.is_file() else _png(make())
        caption = " ".join((doc or "").split()).split(". ")[0]
        out.append(_img(png, name, f"{name}: {caption}"))
    return out


def _clock_text(result: Result, t: float) -> str:
    from mmsim.plotkit import SessionClock

    clock = SessionClock(result.scenario.clock.session_seconds, result.scenario.clock.duration)
    return clock.text(clock.x(t))


def _episodes(result: Result) -> pd.DataFrame:
    """The episodes table as stored, times also as session clock times."""
    ep = result.episodes.copy()
    for col in ("start", "end"):
        if col in ep and pd.api.types.is_numeric_dtype(ep[col]):
            ep.insert(
                list(ep.columns).index(col) + 1,
                f"{col} (clock)",
                [_clock_text(result, float(t)) for t in ep[col]],
            )
    return ep


def _run_report(directory: Path) -> str:
    from functools import partial

    from mmsim import plots
    from mmsim.scenario import dump_scenario_yaml
    from mmsim.summary import summary_lines

    result = load_result(directory)
    sc, m = result.scenario, result.metrics
    version = result.meta.get("mmsim_version", "unknown")
    header = (
        f"<h1>mmsim run report: {html.escape(sc.name)}</h1>"
        f'<p class="meta">{html.escape(sc.description or "")}<br>seed '
        f'<span id="seed">{result.seed}</span>, SeedSequence entropy {result.entropy}, '
        f'mmsim <span id="version">{html.escape(str(version))}</span>, '
        f"{sc.clock.days:g} session(s) of {sc.clock.session_seconds:g} s; "
        f"directory {html.escape(str(directory))}</p>"
    )
    if "interrupted" in result.meta:
        header += f"<p><b>Interrupted at t = {result.meta['interrupted']} s: a partial run.</b></p>"
    summary = (
        "<h2>Summary</h2><pre id='summary'>"
        + html.escape("\n".join(summary_lines(result)))
        + "</pre>"
    )
    names = sc.dealer_names()
    desks = pd.DataFrame(
        [
            {
                "desk": n,
                "band": f"{cfg.band:g} {cfg.band_unit}",
                "rehedges": m.get(f"{n}.n_rehedges", 0.0),
                "hedge volume (shares)": m.get(f"{n}.hedge_volume", 0.0),
                "hedge cost ($)": m.get(f"{n}.hedge_cost", 0.0),
                "P&L at the close ($)": m.get(f"{n}.pnl", 0.0),
                "P&L vol ($ per sqrt(year))": m.get(f"{n}.pnl_vol", 0.0),
            }
            for n, cfg in zip(names, sc.dealers, strict=True)
        ]
    )
    metrics = pd.DataFrame({"metric": list(m), "value": [float(v) for v in m.values()]})
    episodes = _episodes(result)
    ep_html = (
        _table(episodes, "episodes")
        if len(episodes)
        else '<table id="episodes"><tr><td>none: price broke no wall and crossed no '
        "flip for the episode duration</td></tr></table>"
    )
    makers = {
        name: (partial(fn, result), fn.__doc__) for name, fn in plots.run_figures(result).items()
    }
    figures = _figures(directory, makers)
    parts = [
        header,
        summary,
        "<h2>Dealer desks</h2>",
        _table(desks, "desks"),
        "<h2>Episodes (wall breaks, flip crossings) and their causes</h2>",
        ep_html,
        "<h2>Figures</h2>",
        *figures,
        "<h2>All metrics</h2>",
        _table(metrics, "metrics"),
        "<h2>Scenario (resolved)</h2>",
        f"<pre id='scenario'>{html.escape(dump_scenario_yaml(sc))}</pre>",
    ]
    return _page(f"mmsim report: {sc.name}", parts)


def _sweep_report(directory: Path) -> str:
    from functools import partial

    from mmsim import plots_sweep
    from mmsim.scenario import load_scenario

    with reading(directory / "results.parquet") as file:
        table = pd.read_parquet(file)
    spec_path, base_path = directory / "sweep.json", directory / "scenario.yaml"
    with reading(spec_path) as file:
        spec = json.loads(file.read_text()) if file.is_file() else {}
    with reading(base_path) as file:
        scenario = load_scenario(file) if file.is_file() else None
    swept = plots_sweep._swept(table, spec or None)
    name = scenario.name if scenario is not None else directory.name
    ok = table[table["status"] == "ok"] if "status" in table else table
    parts = [
        f"<h1>mmsim sweep report: {html.escape(name)}</h1>",
        f'<p class="meta">{len(table)} runs, {len(table) - len(ok)} failed; swept '
        f"{html.escape(', '.join(swept) or 'nothing')}; "
        f"directory {html.escape(str(directory))}</p>",
        "<h2>Sweep spec</h2>",
        f"<pre id='spec'>{html.escape(json.dumps(spec, indent=1))}</pre>",
    ]
    for metric in ("realized_vol", "autocorr_lag1"):
        if metric in ok and len(ok):
            stats = plots_sweep.point_stats(table, metric, swept)
            parts += [
                f"<h2>{metric}: mean ± standard error over seeds, per grid point</h2>",
                _table(stats, f"points-{metric}"),
            ]
    failed = table.drop(ok.index)
    if len(failed):
        cols = [c for c in ("run_id", "seed", *swept, "error") if c in failed]
        parts += ["<h2>Failed runs</h2>", _table(failed[cols], "failed")]
    if len(ok):
        kw = {"swept": swept, "scenario": scenario}
        kinds = {
            "line": plots_sweep.plot_vol_vs_parameter,
            "heatmap": plots_sweep.plot_sweep_heatmap,
            "distributions": plots_sweep.plot_sweep_distributions,
        }
        makers = {
            f: (partial(kinds[k], table, **kw), kinds[k].__doc__)
            for f, k in plots_sweep.figure_names(swept).items()
        }
        parts += ["<h2>Figures</h2>", *_figures(directory, makers)]
    parts += ["<h2>All runs</h2>", _table(table, "runs")]
    if base_path.is_file():
        parts += [
            "<h2>Base scenario (resolved)</h2>",
            f"<pre id='scenario'>{html.escape(base_path.read_text())}</pre>",
        ]
    return _page(f"mmsim sweep report: {name}", parts)


def _page(title: str, parts: list[str]) -> str:
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def render_report(directory: str | os.PathLike) -> str:
    """The report of a run directory (meta.json) or a sweep directory (results.parquet)
    as one HTML document (figures embedded). Raises :class:`ResultError` otherwise."""
    directory = Path(directory)
    if (directory / "meta.json").is_file():
        return _run_report(directory)
    if (directory / "results.parquet").is_file():
        return _sweep_report(directory)
    what = "neither a run directory (meta.json) nor a sweep directory (results.parquet)"
    raise ResultError(f"{directory}: {what}")


def write_report(directory: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Write :func:`render_report` to ``output`` (default ``DIRECTORY/report.html``)."""
    text = render_report(directory)
    path = Path(output) if output is not None else Path(directory) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, text, record=False)
