"""Read the CBOE delayed-quotes option chain CSV (the format the public GEX scripts read).

Layout: a blank line; ``<name>,Last: <spot>,...``; ``"Date: <snapshot>",...`` (``February 5
2022, 8:09 PM EST`` or ``January 6, 2025 at 9:30 PM EST``); the header; one row per
(expiry, strike) with the call's then the put's columns (Last Sale, Net, Bid, Ask, Volume,
IV, Delta, Gamma, Open Interest) around the Strike. :func:`read_cboe` returns a
:class:`Chain` whose ``table`` is the long table :mod:`mmsim.chains` works on.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import re
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from mmsim.errors import ScenarioError

__all__ = ["Chain", "ChainError", "read_cboe"]

_SIDE = ["Last Sale", "Net", "Bid", "Ask", "Volume", "IV", "Delta", "Gamma", "Open Interest"]
_HEADER = ["Expiration Date", "Calls", *_SIDE, "Strike", "Puts", *_SIDE]
_NUMERIC = {
    "Bid": "bid",
    "Ask": "ask",
    "IV": "iv",
    "Gamma": "gamma",
    "Open Interest": "open_interest",
}
_DATE = re.compile(
    r"Date:\s*([A-Za-z]+)\s+(\d{1,2}),?\s+(\d{4}),?\s*(?:at\s+)?(\d{1,2}):(\d{2})\s*([AaPp][Mm])"
)
_LAST = re.compile(r"Last:\s*([0-9][0-9,]*\.?[0-9]*)")


class ChainError(ScenarioError):
    """A malformed chain file; ``str(err)`` is one line: ``file:line: column: what``."""


@dataclass(frozen=True)
class Chain:
    """A chain snapshot: ``spot`` ($), ``asof`` (snapshot time, exchange local), the
    underlying's ``name`` and the long ``table`` (one row per line, module docstring)."""

    spot: float
    asof: datetime
    name: str
    table: pd.DataFrame
    source: str = "<table>"


# -- reading the CBOE file ------------------------------------------------------------------
def _number(text: str) -> float:
    return float(text.replace(",", "").strip())


def _head(path: str, lines: list[str]) -> tuple[str, float, datetime]:
    """Underlying name, spot and snapshot time from the lines above the header."""
    spot = asof = None
    name = ""
    for i, line in enumerate(lines, start=1):
        fields = next(csv.reader([line]), [])
        for field in fields:
            if (m := _LAST.search(field)) is not None and spot is None:
                spot, name = _number(m.group(1)), fields[0].strip()
            if (m := _DATE.search(field)) is not None and asof is None:
                month, day, year, hh, mm, ampm = m.groups()
                try:
                    d = datetime.strptime(f"{month} {day} {year}", "%B %d %Y")
                except ValueError:
                    raise ChainError(
                        f"unreadable date {field.strip()!r}", source=path, line=i
                    ) from None
                hour = int(hh) % 12 + (12 if ampm.upper() == "PM" else 0)
                asof = d.replace(hour=hour, minute=int(mm))
    if spot is None or not spot > 0:
        raise ChainError("no 'Last: <spot>' in the lines above the header", source=path, line=2)
    if asof is None:
        raise ChainError(
            "no 'Date: <Month> <day>[,] <year>[,| at] <h:mm> AM|PM' above the header",
            source=path,
            line=3,
        )
    return name, spot, asof


def _bad(path: str, line: int, column: str, what: str) -> ChainError:
    return ChainError(what, source=path, line=line, field=column)


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, mtime: float, size: int) -> Chain:
    del mtime, size  # part of the cache key only
    return _read(path)


def read_cboe(path: str | os.PathLike) -> Chain:
    """Read a CBOE delayed-quotes option chain CSV (the format the public GEX scripts read).

    Layout: a blank line; ``<name>,Last: <spot>,...``; ``"Date: <snapshot>",...`` (``February
    5 2022, 8:09 PM EST`` or ``January 6, 2025 at 9:30 PM EST``); the header; one row per
    (expiry, strike) with the call's and the put's columns. Numbers may carry thousands
    separators inside quotes; IV, bid and gamma may be empty; SPX and SPXW rows may share a
    file. Raises :class:`ChainError` naming the file, line and column of the first bad cell.
    Cached per (path, modification time, size).
    """
    name = str(os.fspath(path))
    try:
        st = os.stat(name)
    except OSError as exc:
        why = {FileNotFoundError: "no such file", PermissionError: "permission denied"}
        raise ChainError(why.get(type(exc), str(exc)), source=name) from None
    chain = _read_cached(name, st.st_mtime, st.st_size)
    return dataclasses.replace(chain, table=chain.table.copy())  # the cache stays intact


def _read(path: str) -> Chain:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            head = [fh.readline() for _ in range(8)]
    except (OSError, UnicodeDecodeError) as exc:
        raise ChainError(f"cannot read: {exc}", source=path) from None
    header_line = next(
        (i for i, line in enumerate(head, start=1) if line.startswith("Expiration Date")), None
    )
    if header_line is None:
        raise ChainError("no header line starting with 'Expiration Date'", source=path, line=4)
    name, spot, asof = _head(path, [x.rstrip("\r\n") for x in head[: header_line - 1]])
    header = next(csv.reader([head[header_line - 1]]))
    header = [h.strip() for h in header]
    if header != _HEADER:
        got = len(header)
        diff = next(
            (i for i, (a, b) in enumerate(zip(header, _HEADER, strict=False)) if a != b), got
        )
        col = header[diff] if diff < got else f"column {diff + 1}"
        want = _HEADER[diff] if diff < len(_HEADER) else "end of line"
        raise _bad(path, header_line, col, f"header: expected {want!r} ({len(_HEADER)} columns)")
    try:
        raw = pd.read_csv(
            path,
            skiprows=header_line,
            header=None,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            encoding="utf-8-sig",
        )
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        line = int(m.group(2)) if m else None
        what = f"expected {m.group(1)} fields, saw {m.group(3)}" if m else "unreadable CSV"
        raise ChainError(what, source=path, line=line) from None
    except pd.errors.EmptyDataError:
        raise ChainError("no data rows after the header", source=path, line=header_line) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ChainError(" ".join(f"unreadable CSV: {exc}".split()), source=path) from None
    first_line = header_line + 1  # file line of raw row 0
    blank = raw.isna().all(axis=1) | (raw.fillna("") == "").all(axis=1)
    raw = raw[~blank]
    if raw.shape[1] != len(_HEADER):  # every row short: pandas sized the table to them
        line = first_line + int(raw.index[0]) if len(raw) else header_line
        what = f"expected {len(_HEADER)} fields, saw {raw.shape[1]}"
        raise ChainError(what, source=path, line=line)
    short = raw.isna().any(axis=1)
    if short.any():
        i = int(np.flatnonzero(short.to_numpy())[0])
        n = int(raw.iloc[i].notna().sum())
        line = first_line + int(raw.index[i])
        raise ChainError(f"expected {len(_HEADER)} fields, saw {n}", source=path, line=line)
    if raw.empty:
        raise ChainError("no data rows after the header", source=path, line=header_line)
    lines = first_line + raw.index.to_numpy()
    strike_col = _HEADER.index("Strike")

    def column(j: int, label: str, required: bool) -> np.ndarray:
        text = raw.iloc[:, j].str.strip().str.replace(",", "", regex=False)
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
        bad = (np.isnan(values) & (text != "").to_numpy()) | ~np.isfinite(np.nan_to_num(values))
        if required:
            bad |= ~(values > 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            cell = raw.iloc[i, j]
            what = "not a positive number" if required else "not a number"
            raise _bad(path, int(lines[i]), label, f"{what}: {cell!r}")
        return values

    expiry = pd.to_datetime(raw.iloc[:, 0].str.strip(), format="%a %b %d %Y", errors="coerce")
    if expiry.isna().any():
        i = int(np.flatnonzero(expiry.isna().to_numpy())[0])
        cell = raw.iloc[i, 0]
        raise _bad(
            path, int(lines[i]), "Expiration Date", f"not a date like 'Mon Feb 07 2022': {cell!r}"
        )
    strike = column(strike_col, "Strike", True)
    sides = []
    for side, first in (("call", 1), ("put", strike_col + 1)):
        cols = {"symbol": raw.iloc[:, first].str.strip().to_numpy()}
        for k, label in enumerate(_SIDE):
            if label in _NUMERIC:
                tag = f"{'Calls' if side == 'call' else 'Puts'} {label}"
                cols[_NUMERIC[label]] = column(first + 1 + k, tag, False)
        oi = np.nan_to_num(cols["open_interest"])
        if (oi < 0).any():
            i = int(np.flatnonzero(oi < 0)[0])
            raise _bad(path, int(lines[i]), f"{side} Open Interest", "negative open interest")
        sides.append(
            pd.DataFrame(
                {
                    "expiry": expiry.to_numpy(),
                    "strike": strike,
                    "type": side,
                    "open_interest": oi,
                    "iv": cols["iv"],
                    "bid": cols["bid"],
                    "ask": cols["ask"],
                    "gamma": cols["gamma"],
                    "root": pd.Series(cols["symbol"]).str.extract(r"^([A-Za-z]+)")[0].to_numpy(),
                    "line": lines,
                }
            )
        )
    table = pd.concat(sides, ignore_index=True)
    return Chain(spot=spot, asof=asof, name=name, table=table, source=path)
