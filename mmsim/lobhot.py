"""Glue between a book market's Python objects and the fast path's ``bk`` state.

:class:`BookState` builds the tuple :func:`mmsim.fastpath.advance` reads for
``market.model: book`` (:mod:`mmsim.lobpath`) from the :class:`~mmsim.lob.BookMarket` and
its :class:`~mmsim.agents.liquidity.LiquidityFlow` (the book's ``vol`` / ``ist`` and the
flow's parameters, random block and counters are shared, not copied), sets the flow
process's first timeout as its simpy process would at t = 0, and moves the scalar state
(fundamental, dry-out flag and count, shares taken per side, dropped shares, the flow's
clock and cursor, the limit-order dealers' ladder steps) between the objects and the
arrays around each kernel call (:mod:`mmsim.hotloop`). Dry-outs the kernel logs become
the run's :class:`~mmsim.dryout.DryOutLog` rows, in order.
"""

from __future__ import annotations

import math

import numpy as np

from mmsim.agents.liquidity import P_RATE, R_GAP, LiquidityFlow
from mmsim.dryout import DryOutLog
from mmsim.lob import BookMarket, LiquidityDryOut
from mmsim.lobpath import (
    DRYLOG_COLUMNS,
    FK_RESUME,
    ST_CURSOR,
    ST_DROP,
    ST_DRY,
    ST_FKIND,
    ST_FLOWVOL,
    ST_FON,
    ST_FSEQ,
    ST_FT,
    ST_FUND,
    ST_MAXSPREAD,
    ST_NDRY,
    ST_NLOG,
    ST_SIDE0,
    ST_SIDE1,
    ST_SIZE,
    ST_STOP,
    ST_TICK,
    ST_TLAST,
)

__all__ = ["DRYLOG_ROWS", "BookState"]

DRYLOG_ROWS = 256  # dry-out rows per flush (the kernel asks for a flush well before)


class BookState:
    """The kernel's view of one run's book market and liquidity flow (module docstring)."""

    def __init__(self, market: BookMarket, flow: LiquidityFlow, log: DryOutLog, seq: int) -> None:
        self.market, self.flow, self.log = market, flow, log
        self.st = st = np.zeros(ST_SIZE)
        st[ST_TICK] = market.tick
        st[ST_MAXSPREAD] = math.inf if market.max_spread is None else market.max_spread
        st[ST_STOP] = 1.0 if market.on_dry_out == "stop" else 0.0
        self.drylog = np.zeros((DRYLOG_ROWS, DRYLOG_COLUMNS))
        if flow.par[P_RATE] > 0.0:  # LiquidityFlow.process at t = 0: sleep until its first order
            flow._refill()
            gap = flow._rnd[R_GAP, 0] / flow.par[P_RATE]
            st[ST_FON] = 1.0
            st[ST_FT] = 0.0 + max(0.0 + gap - 0.0, 0.0)
            st[ST_FKIND] = FK_RESUME
            st[ST_FSEQ] = seq
        st[ST_TLAST] = 0.0
        st[ST_CURSOR] = flow._cursor
        # per row of market.own: its account and ladder step (BookMarket._own_rows, _steps)
        self.lim = np.zeros((market.own.shape[0], 2))
        for account, r in market._own_rows.items():
            self.lim[r] = account, market._steps.get(account, 0)
        self.bk = (market.vol, market.ist, market.own, market.table, flow.par, flow._rnd,
                   flow.stats, st, self.drylog, self.lim)  # fmt: skip

    def load(self) -> None:
        """Python -> arrays (a discrete event may have traded, gapped or dried the book)."""
        market, st = self.market, self.st
        st[ST_FUND] = market.fundamental
        st[ST_DRY] = 1.0 if market.dry else 0.0
        st[ST_NDRY] = market.n_dry_outs
        st[ST_SIDE0], st[ST_SIDE1] = market.side_flow
        st[ST_DROP] = market.dropped

    def store(self) -> None:
        """Arrays -> Python, and the kernel's dry-outs into the log."""
        market, flow, st = self.market, self.flow, self.st
        market.fundamental = float(st[ST_FUND])
        market.dry = bool(st[ST_DRY])
        market.n_dry_outs = int(st[ST_NDRY])
        market.side_flow[:] = st[ST_SIDE0], st[ST_SIDE1]
        market.dropped = float(st[ST_DROP])
        market.flow_volume = float(st[ST_FLOWVOL])
        for account, step in self.lim.tolist():
            market._steps[int(account)] = int(step)
        flow.t_last = float(st[ST_TLAST])
        flow._cursor = int(st[ST_CURSOR])
        self.flush()

    def flush(self) -> None:
        """The kernel's dry-out rows into the :class:`DryOutLog`, as its listener would
        have logged them: ``(t, side, why, mid, shares taken from that side)``."""
        k = int(self.st[ST_NLOG])
        if k > DRYLOG_ROWS:
            raise RuntimeError(f"fast path: {k} dry-outs in one kernel call, log full")
        for t, side, kind, spread, mid, taken in self.drylog[:k].tolist():
            self.log.rows.append((t, int(side), self.why(int(side), kind, spread), mid, taken))
        self.st[ST_NLOG] = 0.0

    def why(self, side: int, kind: float, spread: float) -> str:
        """``BookMarket.check_dry``'s reason text."""
        if kind == 0.0:
            return f"{'bid' if side == 0 else 'ask'} side empty"
        return f"spread {spread:.4g} > {self.market.max_spread:g}"

    def refill(self) -> None:
        """The flow's next random block (NEED_FLOW)."""
        self.flow._refill()
        self.st[ST_CURSOR] = 0.0

    def dry_stop(self, t: float) -> LiquidityDryOut:
        """The error ``on_dry_out: stop`` raises at ``t`` (s): the last logged dry-out's."""
        why = self.log.rows[-1][2]
        return LiquidityDryOut(f"liquidity dry-out at t={t:.3f}s: {why}")
