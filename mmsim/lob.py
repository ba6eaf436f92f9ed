"""A limit order book for the underlying, behind the same interface as :class:`Market`.

Price levels sit on a tick grid; each side keeps the aggregate resting volume per level
(no per-order queues) in one preallocated ``float64[2, n]`` array, row 0 the bids, row 1
the asks, column ``j`` the price ``(base + j) * tick`` $. The window is re-centred on the
mid when the quotes drift towards an edge; volume that would fall off the window (more
than ``n / 4`` ticks from the mid) is dropped and counted.

Integer state ``ist`` (int64): ``base`` (absolute tick of column 0), best bid column
(``-1`` when the bid side is empty), best ask column (``n`` when empty), the lowest and
highest occupied columns, and the last known best bid / ask as absolute ticks (the mid
holds at the last quotes while a side is empty).

Every kernel (:mod:`mmsim.lob_kernels`) is ``@njit(cache=True)`` over these plain
arrays: add / cancel / take (a marketable order walking the other side) / decay /
depth. :class:`BookMarket` is the market the agents see: ``submit`` walks the book,
filling at several levels at the volume-weighted price; ``move`` is news, which moves
the *fundamental* price the informed liquidity flow quotes around (the book then
follows through that flow).

Units: prices $, volumes shares, ``tick`` $ per tick; decay ``xi`` per $**2 per event.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from mmsim.errors import SimulationError
from mmsim.ledger import POOL, Ledger
from mmsim.lob_kernels import (
    EPS,
    IST_ASK,
    IST_BASE,
    IST_BID,
    IST_HI,
    IST_LAST_ASK,
    IST_LAST_BID,
    IST_LO,
    add_limit,
    book_snapshot,
    cancel,
    decay,
    decay_table,
    depth_within,
    ladder_tick,
    needs_recenter,
    new_book,
    recenter,
    take,
)
from mmsim.market import Fill
from mmsim.run_env import stop_now

__all__ = [
    "BOOK_COLUMNS",
    "EPS",
    "IST_ASK",
    "IST_BASE",
    "IST_BID",
    "IST_HI",
    "IST_LAST_ASK",
    "IST_LAST_BID",
    "IST_LO",
    "BookMarket",
    "LiquidityDryOut",
    "add_limit",
    "book_snapshot",
    "cancel",
    "decay",
    "decay_table",
    "depth_within",
    "needs_recenter",
    "new_book",
    "recenter",
    "take",
]

BOOK_COLUMNS = [
    "spread",
    "depth_bid_1",
    "depth_bid_5",
    "depth_bid_10",
    "depth_ask_1",
    "depth_ask_5",
    "depth_ask_10",
    "lam_book",
]
"""Series columns of a book run: spread ($), resting shares within 1 / 5 / 10 ticks of
each best quote, and ``lam_book`` ($ per share): the mid move per share of a market
order that walks 5 ticks of the book, averaged over both sides."""


class LiquidityDryOut(SimulationError):
    """One side of the book emptied (or the spread passed its limit) and the scenario
    says ``on_dry_out: stop``: the run ends there with status ``failed``."""


# -- the market ------------------------------------------------------------------------
class BookMarket:
    """A limit order book on a simpy clock, with the :class:`~mmsim.market.Market`
    contract: ``submit`` (walks the book), ``move`` (news: shifts the fundamental),
    ``mid``, ``price``, ``changed``, ``listeners``, ``volume``, ``ledger``, ``env``.

    Parameters
    ----------
    env : the simpy environment (seconds of trading time).
    S0 : opening mid and fundamental price, $.
    ledger : where agents' fills are booked; the pool (account 0) stands for the
        liquidity providers resting in the book.
    tick : tick size, $.
    levels : columns in the window (price levels per side kept around the mid).
    init_levels, init_volume, init_spread_ticks : the opening book: ``init_levels``
        levels per side of ``init_volume`` shares, every tick from the best quotes,
        which sit ``init_spread_ticks`` apart around ``S0``.
    xi : order decay per event, per $**2 (``v *= exp(-xi (p_mid - p)**2)``).
    cancel_rate : uniform cancellation rate of resting volume, per second.
    max_spread : a spread above this ($) counts as a dry-out (``None``: never).
    on_dry_out : ``"stop"`` raises :class:`LiquidityDryOut` (the run ends, failed);
        ``"continue"`` records it and lets liquidity refill.
    work : seconds over which a dealer's limit order is worked from passive to
        marketable in four steps (:meth:`_post`); ``None``: one step per re-post.
    """

    def __init__(
        self,
        env: simpy.Environment,
        S0: float,
        ledger: Ledger,
        *,
        tick: float = 0.01,
        levels: int = 4096,
        init_levels: int = 5,
        init_volume: float = 10.0,
        init_spread_ticks: int = 2,
        xi: float = 0.0,
        cancel_rate: float = 0.0,
        max_spread: float | None = None,
        on_dry_out: str = "stop",
        work: float | None = None,
    ) -> None:
        if tick <= 0 or levels < 64:
            raise ValueError("tick must be > 0 $ and levels >= 64")
        self.env = env
        self.ledger = ledger
        self.tick = float(tick)
        self.xi = float(xi)
        self.cancel_rate = float(cancel_rate)
        self.max_spread = max_spread
        self.on_dry_out = on_dry_out
        centre = round(S0 / tick)
        half = max(int(init_spread_ticks), 1)
        bid0 = centre - half // 2 - (half % 2)
        ask0 = bid0 + half
        k = np.arange(int(init_levels), dtype=np.int64)
        base = centre - levels // 2
        self.vol, self.ist = new_book(
            int(levels),
            np.int64(base),
            bid0 - k,
            ask0 + k,
            np.full(k.size, float(init_volume)),
        )
        self.table = decay_table(int(levels), self.tick, self.xi)
        self.fundamental = float(S0)  # $, moved by news; informed flow quotes around it
        self.volume = 0.0  # shares, cumulative |traded| by agents (the flow counts apart)
        self.changes = 0  # calls of notify(): mid changes agents may react to
        self.flow_volume = 0.0  # shares executed by the liquidity flow
        self.side_flow = np.zeros(2)  # cumulative shares taken from bids (0) / asks (1)
        self.dropped = 0.0  # shares lost off the window edges
        self.changed: simpy.Event = env.event()
        self.listeners: list[Callable[[Fill], None]] = []
        self.dry_listeners: list[Callable[[float, int, str], None]] = []
        self.dry = False  # True while a side is empty or the spread is past its limit
        self.n_dry_outs = 0
        self._snap = np.zeros(len(BOOK_COLUMNS))
        # dealers' resting limit orders: side, absolute tick, shares ahead, own, filled
        self.own = np.zeros((0, 5))
        self._own_rows: dict[int, int] = {}  # account -> row of ``own``
        self._steps: dict[int, int] = {}  # account -> aggressiveness of its last post
        self.work = work  # s over which a limit order is worked up the ladder, or None
        self._posted: dict[int, float] = {}  # account -> time of its last post, s

    feedback_name = "book impact x G"
    """How a dealer's feedback is named on this market: there is no ``lam`` parameter;
    a diverging hedge reports the mid move per share it measured over its own fill,
    times its share gamma (the book's ``1 + lam_eff G`` minus one)."""

    def feedback_note(self, gamma: float) -> str:
        """The book's response now for a run-stopping message: ``lam_book`` ($ per
        share: the mid move per share of an order walking 5 ticks) and ``lam_book x G``
        for share gamma ``gamma`` (shares per $)."""
        lam = float(self.snapshot()[BOOK_COLUMNS.index("lam_book")])
        if not math.isfinite(lam):
            return "book lam (5-tick walk) undefined: a side is empty"
        return f"book lam (5-tick walk) now = {lam:.3g} $/share, x G at start = {lam * gamma:.3g}"

    def use_limit_orders(self, account: int) -> None:
        """From now on ``submit`` from ``account`` posts a limit order at its side's best
        quote (cancelling its previous one) instead of walking the book."""
        if account not in self._own_rows:
            if self.work is not None and not self._own_rows:
                self.env.process(self.work_process(self.env))
            self._own_rows[account] = self.own.shape[0]
            self.own = np.vstack([self.own, [[-1.0, 0.0, 0.0, 0.0, 0.0]]])

    # -- reading ------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Columns in the window."""
        return self.vol.shape[1]

    @property
    def best_bid(self) -> float:
        """Best bid, $ (the last one while the bid side is empty)."""
        return float(self.ist[IST_LAST_BID]) * self.tick

    @property
    def best_ask(self) -> float:
        """Best ask, $ (the last one while the ask side is empty)."""
        return float(self.ist[IST_LAST_ASK]) * self.tick

    @property
    def mid_ticks(self) -> float:
        """Mid in ticks (absolute)."""
        ist = self.ist
        return 0.5 * float(ist[IST_LAST_BID] + ist[IST_LAST_ASK])

    @property
    def mid(self) -> float:
        """Mid price, $ (on the half-tick grid)."""
        ist = self.ist
        return 0.5 * float(ist[IST_LAST_BID] + ist[IST_LAST_ASK]) * self.tick

    @property
    def price(self) -> float:
        """Published price, $: the mid."""
        return self.mid

    @property
    def spread(self) -> float:
        """Best ask minus best bid, $ (``inf`` with a side empty)."""
        b, a = int(self.ist[IST_BID]), int(self.ist[IST_ASK])
        return (a - b) * self.tick if b >= 0 and a < self.n else math.inf

    def depth(self, side: str, ticks: int) -> float:
        """Shares resting within ``ticks`` of the best quote on ``side`` (bid / ask)."""
        return float(depth_within(self.vol, self.ist, 0 if side == "bid" else 1, int(ticks)))

    def snapshot(self) -> np.ndarray:
        """:data:`BOOK_COLUMNS` now (a reused array: copy to keep)."""
        book_snapshot(self.vol, self.ist, self.tick, self._snap)
        return self._snap

    def levels(self, side: str, k: int = 20) -> tuple[np.ndarray, np.ndarray]:
        """Prices ($) and shares of the ``k`` levels nearest the best quote on ``side``."""
        ist, n = self.ist, self.n
        if side == "bid":
            b = int(ist[IST_BID])
            j = np.arange(b, max(b - k, -1), -1)
            v = self.vol[0, j] if b >= 0 else np.zeros(0)
        else:
            a = int(ist[IST_ASK])
            j = np.arange(a, min(a + k, n))
            v = self.vol[1, j]
        return (int(ist[IST_BASE]) + j) * self.tick, v.copy()

    # -- trading ------------------------------------------------------------------------
    def preview(self, qty: float) -> float:
        """The mid, $, right after a market order of ``qty`` shares (+ = buy) walked the
        book now, without submitting it (the walk runs on a copy: no state changes)."""
        if qty == 0.0:
            return self.mid
        ist = self.ist.copy()
        buy = qty > 0.0
        take(self.vol.copy(), ist, buy, abs(qty), self.n if buy else -1, self.own.copy())
        return 0.5 * float(ist[IST_LAST_BID] + ist[IST_LAST_ASK]) * self.tick

    def submit(self, account: int, qty: float) -> Fill:
        """A market order of ``qty`` shares (+ = buy) for ``account``: it walks the other
        side level by level; the fill's ``qty`` is what the book held (less than asked
        only when that side ran dry), ``exec_price`` its volume-weighted price."""
        before = self.mid
        if qty == 0.0:
            return Fill(self.env.now, account, 0.0, before, before, before, 0.0)
        buy = qty > 0.0
        if account in self._own_rows:
            return self._post(account, qty, before)
        filled, notional = take(self.vol, self.ist, buy, abs(qty), self.n if buy else -1, self.own)
        self.side_flow[1 if buy else 0] += filled
        signed = filled if buy else -filled
        exec_price = notional * self.tick / filled if filled > 0.0 else before
        if filled > 0.0:
            self.ledger.trade_shares(account, signed, exec_price, POOL)
            self.volume += filled
        after = self.mid
        fill = Fill(
            self.env.now, account, signed, before, after, exec_price, (exec_price - before) * signed
        )
        for listener in self.listeners:
            listener(fill)
        self.settle_own()
        self.after_change(before)
        return fill

    def _post(self, account: int, qty: float, before: float) -> Fill:
        """Cancel ``account``'s resting order and post ``qty`` as a limit order.

        Its price runs up a ladder from passive to aggressive (as Buis et al.'s hedgers
        do over an hour): one spread behind its side's best quote, at the best quote,
        inside the spread by half of it, then at the other side's best (marketable:
        executes at once, up to that price). Without ``work`` the ladder moves one step
        per post while the previous order is left unfilled, and a filled order, or one in
        the other direction, resets it. With ``work`` (s) every post starts passive and
        the market itself re-prices what is left one step every ``work / 4`` s
        (:meth:`work_process`): a parent order worked over ``work`` seconds. A resting
        order joins the back of its level's queue. The returned fill is what executed at
        once (``qty = 0`` for a resting order); later fills come as the flow hits the
        order (:meth:`settle_own`)."""
        self.settle_own()
        r, own = self._own_rows[account], self.own
        side = 0 if qty > 0.0 else 1
        unfilled = own[r, 3] > 0.0
        if unfilled:
            self._cancel_own(r)
        if self.work is not None:
            step = 0
            self._posted[account] = self.env.now
        else:
            step = self._steps.get(account, 0)
            step = min(step + 1, 3) if unfilled and own[r, 0] == side else 0
        self._steps[account] = step
        return self._place(account, side, abs(qty), step, before)

    def _cancel_own(self, r: int) -> None:
        """Take row ``r``'s resting shares out of the book (they stay unfilled)."""
        own, ist = self.own, self.ist
        j_old = int(own[r, 1]) - int(ist[IST_BASE])
        cancel(self.vol, ist, int(own[r, 0]), j_old, float(own[r, 3]))
        own[r, 3] = 0.0

    def _place(self, account: int, side: int, size: float, step: int, before: float) -> Fill:
        """Post ``size`` shares on ``side`` (0 buy, 1 sell) at ladder ``step``; book what
        executes at once and return it as a fill."""
        r, own, ist, tick = self._own_rows[account], self.own, self.ist, self.tick
        bid, ask = int(ist[IST_LAST_BID]), int(ist[IST_LAST_ASK])
        tick_abs = ladder_tick(bid, ask, side, step)
        j = tick_abs - int(ist[IST_BASE])
        filled, notional, _ = add_limit(self.vol, ist, side == 0, j, size, self.own)
        left = size - filled
        ahead = self.vol[side, j] - left if 0 <= j < self.n else 0.0
        own[r] = (side, tick_abs, max(ahead, 0.0), left if left > EPS else 0.0, 0.0)
        signed = filled if side == 0 else -filled
        exec_price = notional * tick / filled if filled > 0.0 else before
        if filled > 0.0:
            self.side_flow[1 - side] += filled
            self.ledger.trade_shares(account, signed, exec_price, POOL)
            self.volume += filled
        fill = Fill(
            self.env.now,
            account,
            signed,
            before,
            self.mid,
            exec_price,
            (exec_price - before) * signed,
        )
        if filled > 0.0:
            for listener in self.listeners:
                listener(fill)
        self.settle_own()
        self.after_change(before)
        return fill

    def work_process(self, env: simpy.Environment) -> Generator[Any, Any, None]:
        """Every ``work / 4`` s, move each dealer's unfilled limit order one ladder step
        up (``work`` seconds after its post it is marketable)."""
        assert self.work is not None
        quarter = self.work / 4.0
        while True:
            yield env.timeout(quarter)
            self.settle_own()
            for account, r in self._own_rows.items():
                if self.own[r, 3] <= 0.0:
                    continue
                age = env.now - self._posted.get(account, env.now)
                step = min(int(age / quarter + 1e-9), 3)
                if step <= self._steps.get(account, 0):
                    continue
                self._steps[account] = step
                left, side = float(self.own[r, 3]), int(self.own[r, 0])
                self._cancel_own(r)
                self._place(account, side, left, step, self.mid)

    def settle_own(self) -> None:
        """Book the executed part of the dealers' resting orders: the account trades at
        its order's price against the pool; listeners see each fill."""
        own = self.own
        if not own.shape[0]:
            return
        for account, r in self._own_rows.items():
            x = float(own[r, 4])
            if x <= 0.0:
                continue
            own[r, 4] = 0.0
            price = float(own[r, 1]) * self.tick
            qty = x if own[r, 0] == 0.0 else -x
            self.ledger.trade_shares(account, qty, price, POOL)
            self.volume += x
            mid = self.mid
            fill = Fill(self.env.now, account, qty, mid, mid, price, (price - mid) * qty)
            for listener in self.listeners:
                listener(fill)

    def move(self, dS: float) -> None:
        """News: the fundamental price moves by ``dS`` $ (no trade). The book follows
        through the informed flow that quotes around the fundamental."""
        self.fundamental = max(self.fundamental + dS, self.tick)

    def after_change(self, mid_before: float) -> None:
        """After anything changed the book: recentre if needed, check for a dry-out,
        wake the processes waiting on :attr:`changed` if the mid moved."""
        if needs_recenter(self.ist, self.n):
            self.dropped += recenter(self.vol, self.ist)
        self.check_dry()
        if self.mid != mid_before:
            self.notify()

    def check_dry(self) -> None:
        """Record a dry-out when a side is empty or the spread passes ``max_spread``;
        with ``on_dry_out: stop`` raise :class:`LiquidityDryOut`."""
        b, a = int(self.ist[IST_BID]), int(self.ist[IST_ASK])
        side = 0 if b < 0 else (1 if a >= self.n else -1)
        why = ""
        if side >= 0:
            why = f"{'bid' if side == 0 else 'ask'} side empty"
        elif self.max_spread is not None and (a - b) * self.tick > self.max_spread + 1e-12:
            why = f"spread {(a - b) * self.tick:.4g} > {self.max_spread:g}"
        if not why:
            self.dry = False
            return
        if self.dry:  # still the same dry-out
            return
        self.dry = True
        self.n_dry_outs += 1
        for listener in self.dry_listeners:
            listener(self.env.now, side, why)
        if self.on_dry_out == "stop":
            err = LiquidityDryOut(f"liquidity dry-out at t={self.env.now:.3f}s: {why}")
            raise stop_now(self.env, err)  # nothing else happens at this instant

    def notify(self) -> None:
        """Wake every process waiting on :attr:`changed` and arm a fresh event."""
        self.changes += 1
        event = self.changed
        if event.callbacks:
            self.changed = self.env.event()
            event.succeed(self.mid)
