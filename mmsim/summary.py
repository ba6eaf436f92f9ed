"""The run summary ``mmsim run`` prints: lines that answer the scenario's question.

Price path, realized vol and its jump-robust (bipower) part, vol above and below the
gamma flip when price spent time on both sides, the close against the pin strike on
expiry days (the largest-open-interest strike within 2% of the session's open, as
:func:`mmsim.metrics.pin_metrics` picks it), one line per dealer desk (band, rehedges,
hedge volume, P&L, P&L vol) and what "dealer P&L" means. Episodes are printed by the caller.
"""

from __future__ import annotations

import re

from mmsim.metrics import PIN_WINDOW
from mmsim.result import Result

__all__ = ["money", "summary_lines", "sweep_point_text"]

_BAND_UNITS = {"shares": "sh", "delta_per_contract": "delta/contract", "per_notional": "per $100M"}
_MIN_REGIME_SHARE = 0.02  # both regimes printed once price spent >= 2% of samples in each


def money(x: float) -> str:
    """``$1,234`` / ``-$1,234``."""
    return f"-${-x:,.0f}" if x < 0 else f"${x:,.0f}"


def _vol_lines(m: dict) -> list[str]:
    line = f"realized vol    {m['realized_vol']:.1%} annualized"
    if "bipower_vol" in m:
        line += f"; jump-robust (bipower) {m['bipower_vol']:.1%}"
        if m.get("jump_share", 0.0) >= 0.05:
            line += f": jumps are {m['jump_share']:.0%} of the variance"
    lines = [line]
    above, below = m.get("time_above_flip", 0.0), m.get("time_below_flip", 0.0)
    if above >= _MIN_REGIME_SHARE and below >= _MIN_REGIME_SHARE:
        va, vb = m["realized_vol_above_flip"], m["realized_vol_below_flip"]
        ratio = f" ({vb / va:.2g}x above)" if va > 0 else ""
        lines.append(
            f"by gamma regime above the flip {va:.1%} ({above:.0%} of the time), "
            f"below {vb:.1%} ({below:.0%}){ratio}"
        )
    elif above + below > 0:
        side = "above" if above >= below else "below"
        lines.append(f"by gamma regime {side} the true flip the whole run")
    return lines


def _pin_lines(m: dict) -> list[str]:
    lines = []
    for key in sorted(k for k in m if re.fullmatch(r"expiry[0-9.]+\.pin_strike", k)):
        day = key[len("expiry") : -len(".pin_strike")]
        strike, distance = m[key], m[f"expiry{day}.pin_distance"]
        where = {  # None: a run saved before the window (its strike: the largest of all)
            1.0: f"within {PIN_WINDOW:.0%} of the open",
            0.0: f"of all (none within {PIN_WINDOW:.0%} of the open)",
            None: "of all",
        }[m.get(f"expiry{day}.pin_in_window")]
        lines.append(
            f"pin (expiry d{day}) close {strike + distance:.2f} vs {strike:g}, the largest-OI "
            f"strike {where}: {distance:+.2f} $ ({distance / strike:+.2%})"
        )
    return lines


def _desk_lines(result: Result) -> list[str]:
    m, sc = result.metrics, result.scenario
    rows = []
    for name, cfg in zip(sc.dealer_names(), sc.dealers, strict=True):
        band = f"{cfg.band:g} {_BAND_UNITS.get(cfg.band_unit, cfg.band_unit)}"
        rows.append(
            (
                name,
                band,
                f"{m.get(f'{name}.n_rehedges', 0):,.0f}",
                f"{m.get(f'{name}.hedge_volume', 0):,.0f}",
                money(m.get(f"{name}.hedge_cost", 0.0)),
                money(m.get(f"{name}.pnl", 0.0)),
                money(m.get(f"{name}.pnl_vol", 0.0)),
            )
        )
    head = ("desk", "band", "rehedges", "hedge shares", "hedge cost", "P&L", "P&L vol/yr")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return ["  " + fmt.format(*head)] + ["  " + fmt.format(*r) for r in rows]


def summary_lines(result: Result) -> list[str]:
    """The summary of one run, one fact per line (episodes not included)."""
    m, sc, s = result.metrics, result.scenario, result.series
    p0, p1 = float(s["price"].iloc[0]), float(s["price"].iloc[-1])
    lines = [
        f"scenario        {sc.name}  (seed {result.seed}, {sc.clock.days:g} day(s))",
        f"price           {p0:.2f} -> {p1:.2f}  ({p1 - p0:+.2f} $, {p1 / p0 - 1:+.2%})",
        *_vol_lines(m),
        *_pin_lines(m),
        f"hedge volume    {m['hedge_volume']:,.0f} shares in {m['n_rehedges']:,.0f} rehedges, "
        f"cost {money(m['hedge_cost'])}",
        f"dealer P&L      {money(m['dealer_pnl'])} at the close (vol {money(m['dealer_pnl_vol'])}"
        " per sqrt(year))",
        "                = cash + shares x close + options at model value (expiring ones at",
        "                intrinsic): mark-to-market of the options and their hedge, $",
    ]
    if len(sc.dealers) > 0:
        lines += _desk_lines(result)
    lines.append(f"exogenous vol.  {m['exogenous_volume']:,.0f} shares traded by non-dealers")
    if result.meta.get("interrupted"):
        lines.insert(1, f"INTERRUPTED     at t = {result.meta['interrupted']} s: partial result")
    return lines


def sweep_point_text(table, metric: str = "realized_vol") -> str:
    """``metric`` of a sweep table per grid point as ``mean ± standard error`` over its
    ok runs (``(1 run)`` when there is one), under a line naming the metric and unit."""
    from mmsim.plots_sweep import point_stats

    stats = point_stats(table, metric)
    unit = {"realized_vol": "annualized", "autocorr_lag1": "lag-1, unitless"}.get(metric, "")
    pct = metric == "realized_vol"

    def cell(row) -> str:
        mean, se = row["mean"], row["se"]
        if se != se:  # one run: no standard error
            return (f"{mean:.2%}" if pct else f"{mean:+.3f}") + " (1 run)"
        return f"{mean:.2%} ± {se:.2%}" if pct else f"{mean:+.3f} ± {se:.3f}"

    column = f"{metric} mean ± SE"
    shown = stats.drop(columns=["mean", "se"]).assign(**{column: stats.apply(cell, axis=1)})
    head = f"{metric} ({unit}): mean ± standard error over seeds, per grid point"
    return head + "\n" + shown.to_string(index=False)
