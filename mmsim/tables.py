"""The result tables a run's trade log becomes, built column by column.

The engine logs every share order and booking as a float row of
:data:`TRADE_LOG_COLUMNS` (:class:`mmsim.record.Log`). Two tables come out of it:

- :func:`trade_table`, the public ``Result.trades``: one row per log row, the account
  and booking codes turned into ``agent`` and ``kind`` text. It is the costly one (two
  text columns as long as the log), so a sweep's run, which keeps only metrics, skips it.
- :func:`market_orders`, what the metrics and the episodes recorder read: ``t`` (s),
  ``qty`` (shares, + = buy) and ``kind`` (categorical) of the market orders only.

Both are built from one column at a time, so assembling them never holds the log twice.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mmsim.metrics import BOOKING_KINDS
from mmsim.record import Log

__all__ = ["TRADE_LOG_COLUMNS", "market_orders", "trade_table"]

TRADE_LOG_COLUMNS = [
    "t",
    "account",
    "booking",
    "qty",
    "price_before",
    "price_after",
    "exec_price",
    "cost",
]
"""Columns of the engine's trade log: time (s), ledger account, booking code (0 a market
order, else 1 + its index in :data:`~mmsim.metrics.BOOKING_KINDS`), shares, prices ($)
and cost ($)."""


def _account_kinds(names: Sequence[str], kinds: Mapping[int, str]) -> list[str]:
    """Kind of every ledger account (``pool`` when the engine did not name one)."""
    return [kinds.get(a, "pool") for a in range(len(names))]


def trade_table(log: Log, names: Sequence[str], kinds: Mapping[int, str]) -> pd.DataFrame:
    """``Result.trades``: ``t``, ``agent`` (account name), ``kind`` (the account's kind
    for a market order, else the booking's, :data:`~mmsim.metrics.BOOKING_KINDS`),
    ``qty``, ``price_before``, ``price_after``, ``exec_price``, ``cost``."""
    accounts = log.column("account").astype(np.int64)
    bookings = log.column("booking").astype(np.int64)
    kind_of = np.array([*_account_kinds(names, kinds), *BOOKING_KINDS], dtype=object)
    codes = np.where(bookings == 0, accounts, len(names) + bookings - 1)
    del bookings
    columns: dict[str, np.ndarray] = {"t": log.column("t")}
    columns["agent"] = np.array(names, dtype=object)[accounts]
    columns["kind"] = kind_of[codes]
    del accounts, codes
    for name in TRADE_LOG_COLUMNS[3:]:
        columns[name] = log.column(name)
    return pd.DataFrame(columns, copy=False)


@functools.lru_cache(maxsize=64)
def _kind_dtype(categories: tuple[str, ...]) -> pd.CategoricalDtype:
    """The ``kind`` column's dtype, built once per set of kinds (building one validates
    its categories: ~0.1 ms, a run's worth of many metrics)."""
    return pd.CategoricalDtype(list(categories))


def market_orders(log: Log, names: Sequence[str], kinds: Mapping[int, str]) -> pd.DataFrame:
    """The market orders of the log (bookings left out): ``t`` (s), ``qty`` (shares) and
    ``kind`` (categorical: dealer, noise, customer, pension, ...), in log order."""
    orders = log.column("booking") == 0.0
    accounts = log.column("account")[orders].astype(np.int64)
    categories, codes = np.unique(np.array(_account_kinds(names, kinds)), return_inverse=True)
    kind = pd.Categorical.from_codes(  # codes of np.unique: valid by construction
        codes[accounts], dtype=_kind_dtype(tuple(str(c) for c in categories)), validate=False
    )
    return pd.DataFrame(
        {"t": log.column("t")[orders], "qty": log.column("qty")[orders], "kind": kind},
        copy=False,
    )
