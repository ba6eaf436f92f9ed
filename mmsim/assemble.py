"""The result of a run: the recorders' buffers and the ledger turned into a
:class:`~mmsim.result.Result` (series, trade tables, episodes, metrics).

Reads a :class:`~mmsim.engine.Simulation` once its loop stopped; changes nothing in it.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mmsim.dryout import dry_out_episodes, with_dry_outs
from mmsim.episodes import detect_episodes
from mmsim.metrics import episode_counts, open_interest, pin_metrics, summarize
from mmsim.record import Log
from mmsim.result import Result
from mmsim.tables import market_orders, trade_table

if TYPE_CHECKING:
    from mmsim.engine import Simulation

__all__ = ["assemble_result", "book_metrics"]


def assemble_result(sim: Simulation, end: float | None = None, *, tables: bool = True) -> Result:
    """The Result of the run of ``sim`` so far; ``end`` (s) the last sampled time if it stopped
    early (default: the end of the clock). ``tables=False`` (a sweep's run, which
    keeps only metrics and series columns) skips assembling ``trades``,
    ``option_trades`` and ``accounts`` (left empty); the metrics are the same."""
    sc = sim.scenario
    end = sc.clock.duration if end is None else end
    series = sim.recorder.to_frame()
    names = sim.ledger.names
    orders = market_orders(sim.trade_log, names, sim._kinds)
    options = sim.option_log.to_frame()
    S, t = sim.market.mid, sim.env.now
    # a tabulated holder's value from its delta table, within its value tolerance as the
    # sampled <dealer>.pnl (OptionBook.close_values); exact with engine.delta_table: off
    values = sim.book.close_values(S, t, sim.vol)
    stats = {}
    rec = sim.recorder  # the last sample's row, read from the recorder's buffer
    last = rec.data[rec.filled - 1] if rec.filled else None
    column = {c: j for j, c in enumerate(rec.columns)}
    for d in sim.dealers:
        pnl = sim.ledger.cash[d.account] + sim.ledger.shares[d.account] * S + values[d.index]
        # P&L at the close is the last sample's (settlements and the hedge unwinds of the
        # closing instant come after it); what those leave is pnl_after_close
        close = float(last[column[f"{d.name}.pnl"]]) if last is not None else float(pnl)
        stats[d.name] = {
            "pnl": close,
            "pnl_after_close": float(pnl),
            "hedge_volume": d.hedge_volume,
            "hedge_cost": d.hedge_cost,
            "n_rehedges": float(d.n_rehedges),
        }
    chain_days = () if sim.chain_lines is None else sim.chain_lines["sessions"].unique()
    episodes = detect_episodes(series, orders, sc, chain_days, opening=sim.opening_positions)
    if sim.dry_outs is not None:
        lookback = sc.record.episodes.lookback
        dry = dry_out_episodes(sim.dry_outs, series, orders, lookback)
        episodes = with_dry_outs(episodes, dry)
    metrics = summarize(
        series, orders, stats, every=sc.record.every, year_seconds=sc.clock.year_seconds
    )
    metrics.update(episode_counts(episodes))
    oi = open_interest(  # what the pin metrics read
        sc, options, expiring_by=end, chain_lines=sim.chain_lines, opening=sim.opening_positions
    )
    metrics.update(pin_metrics(series, oi, sc.clock.session_seconds, end))
    metrics["share_gamma_start"] = sim.share_gamma_start
    # 1.0 when a diverging cascade (lam * G <= -1, or lagged over-correction) was left
    # to a dealer's capacity limit instead of stopping the run
    metrics["capacity_bound"] = float(any(d.capacity_bound for d in sim.dealers))
    if (kappa := sim._feedback()) is not None:
        metrics["lam_g_start"] = kappa
    if sim.dry_outs is not None:
        metrics.update(book_metrics(sim))
    if not tables:
        trades = options_table = accounts_table = pd.DataFrame
    else:  # built when first read (Result), from what the run holds now
        trades = partial(trade_table, _Head(sim.trade_log), list(names), dict(sim._kinds))
        options_table = partial(_option_table, options, list(sim.segment_names))
        accounts_table = partial(
            _accounts_table, list(names), dict(sim._kinds), sim.ledger.shares.copy(),
            sim.ledger.cash.copy(),
        )  # fmt: skip
    return Result(
        scenario=sc,
        series=series,
        trades=trades,
        option_trades=options_table,
        episodes=episodes,
        accounts=accounts_table,
        metrics=metrics,
        seed=sim.seed,
        entropy=sim.entropy,
        meta={
            "mmsim_version": _version(),
            # every expiry (s) the run settles at: a chain book's too (Result.expiries)
            "expiries": [float(x) for x in sim.expiration.calendar],
            **({} if sim.dry_outs is None else {"status": "failed" if sim.failed else "ok"}),
            **({} if tables else {"tables": "metrics"}),
        },
    )


class _Head:
    """The first ``n`` rows of a trade log (those logged when the run's result was
    assembled), read column by column as :func:`~mmsim.tables.trade_table` reads a log."""

    def __init__(self, log: Log) -> None:
        self.log, self.n = log, log.n

    def column(self, name: str) -> np.ndarray:
        return self.log.column(name)[: self.n]


def _option_table(options: pd.DataFrame, segment_names: list[str]) -> pd.DataFrame:
    """``Result.option_trades`` from the option log's float table: segment names, integer
    dealers, boolean ``is_call`` and ``visible``."""
    options["segment"] = [segment_names[int(i)] for i in options["segment"]]
    return options.astype({"dealer": "int64", "is_call": bool, "visible": bool})


def _accounts_table(
    names: list[str], kinds: dict[int, str], shares: np.ndarray, cash: np.ndarray
) -> pd.DataFrame:
    """``Result.accounts``: every ledger account's name, kind, shares and cash ($)."""
    return pd.DataFrame(
        {
            "account": names,
            "kind": [kinds.get(i, "pool") for i in range(len(names))],
            "shares": shares,
            "cash": cash,
        }
    )


def book_metrics(sim: Simulation) -> dict[str, float]:
    """Book outcome: ``failed`` (1.0 when a dry-out stopped the run, Buis et al.'s
    failure), ``n_dry_outs``, ``dry_out_t`` (s, first one; only if any),
    ``lob_events`` (orders of the liquidity flow), ``lob_dropped`` (shares lost off
    the window)."""
    market, flow = sim.market, sim.liquidity
    out = {
        "failed": 1.0 if sim.failed is not None else 0.0,
        "n_dry_outs": float(market.n_dry_outs),
        "lob_events": float(flow.n_events),
        "lob_dropped": float(market.dropped + flow.stats[7]),
    }
    if sim.dry_outs.rows:
        out["dry_out_t"] = float(sim.dry_outs.rows[0][0])
    return out


def _version() -> str:
    import mmsim  # loaded by now; a module-level import would be circular

    return str(getattr(mmsim, "__version__", "unknown"))
