"""Candidate causes of an episode, and how to take each out of a scenario.

Each removal changes the resolved scenario only where its cause acts and keeps every
list index that names a random stream (a customer segment is silenced with rate 0, not
dropped), so a replay without one cause draws the same numbers for every other agent.
See :mod:`mmsim.explain` for what the replays are for.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mmsim.episodes import clock_time
from mmsim.scenario import load_scenario, scenario_to_dict
from mmsim.schema import Scenario

__all__ = ["Removal", "candidates", "truncated", "without"]


@dataclass(frozen=True, order=True)
class Removal:
    """One candidate cause and how to take it out of a scenario.

    ``key``: ``pension:<i>``, ``customers:<i>``, ``otc``, ``event:<i>``,
    ``expiry:<seconds>``, ``news@<seconds>``, ``noise@<seconds>``.
    """

    key: str
    cause: str
    label: str


def candidates(scenario: Scenario, start: float) -> list[Removal]:
    """Candidate causes of an episode that starts at ``start`` (s) in a run of ``scenario``."""
    sc, rules = scenario, scenario.record.episodes
    session = sc.clock.session_seconds
    confirmed = start + rules.duration
    w0 = max(start - rules.lookback, 0.0)
    out: list[Removal] = []
    for i, p in enumerate(sc.pensions):
        if p.start <= confirmed:
            size = f"{p.shares:,.0f} shares" if p.shares else f"${p.notional:,.0f}"
            name = p.name or f"pension{i}"
            out.append(Removal(f"pension:{i}", "overwhelming_flow", f"{name} ({p.side} {size})"))
    for i, c in enumerate(sc.customers):
        if c.rate > 0.0:
            out.append(Removal(f"customers:{i}", "customer_flow", f"customers {c.segment}{i}"))
    hidden = sum(not p.visible for d in sc.dealers for p in d.positions)
    hidden += sum(not p.visible for e in sc.events if e.at <= confirmed for p in e.positions)
    if hidden:
        out.append(Removal("otc", "otc_offset", f"the OTC lines ({hidden})"))
    for i, e in enumerate(sc.events):
        when = clock_time(e.at, session)
        if e.at > confirmed:
            continue
        if e.kind == "vol_shift":
            out.append(
                Removal(f"event:{i}", "vol_regime_shift", f"vol shift {e.d_atm:+.2f} at {when}")
            )
        elif e.kind == "gap":
            out.append(Removal(f"event:{i}", "gap", f"gap {e.gap:+.2%} at {when}"))
    for expiry in _expiries(sc):
        if abs(expiry - start) <= session:
            label = f"expiry {clock_time(expiry, session, closing=True)} rolled a session"
            out.append(Removal(f"expiry:{expiry:g}", "expiration_melt", label))
    off = clock_time(w0, session)
    if sc.news is not None and sc.news.vol > 0.0:
        out.append(Removal(f"news@{w0:g}", "news", f"news from {off}"))
    if sc.noise is not None and sc.noise.rate > 0.0:
        out.append(Removal(f"noise@{w0:g}", "news", f"noise orders from {off}"))
    return out


def _expiries(sc: Scenario) -> list[float]:
    """Every expiry (s) of a line the run can hold, within the run: the scenario's lists
    and the opening book from a real chain (its 0DTE lines settle at the first close)."""
    days = [p.expiry_days for d in sc.dealers for p in d.positions]
    days += [x for c in sc.customers if c.rate > 0.0 for x in c.expiry_days]
    days += [p.expiry_days for e in sc.events for p in e.positions]
    days += _chain_days(sc)
    seconds = {x * sc.clock.session_seconds for x in days}
    return sorted(x for x in seconds if x <= sc.clock.duration)


def _chain_days(sc: Scenario, roll: list[float] | None = None) -> list[float]:
    """Expiries (sessions from t = 0) of the lines of the scenario's ``book`` block (none
    without one), after its ``roll`` or, given, after ``roll`` instead
    (:func:`mmsim.chains.roll_lines`: each session in turn)."""
    if sc.book is None:
        return []
    from mmsim.chains import roll_sessions, scenario_lines  # pandas: loaded with a chain book

    lines = scenario_lines(sc.book, sc.clock.session_seconds, rolled=False)
    days = roll_sessions(lines["sessions"].to_numpy(), sc.book.roll if roll is None else roll)
    return sorted(set(days.tolist()))


def _expiry_seconds(key: str) -> float:
    """The expiry (s) an ``expiry:<seconds>`` key rolls; -inf for other keys (their
    order among themselves is kept: the sort is stable)."""
    kind, _, arg = key.partition(":")
    return float(arg) if kind == "expiry" else -math.inf


def without(scenario: Scenario, removals: Iterable[Removal]) -> Scenario:
    """``scenario`` with the ``removals`` applied (validated; the input is unchanged)."""
    d = scenario_to_dict(scenario)
    session = scenario.clock.session_seconds
    drop = {"pensions": set(), "events": set()}
    # expiries roll earliest first, each the book the earlier ones left (the rolls of
    # lines and of a chain's book.roll compound): rolling the expiries at 1 and 2 leaves
    # no line expiring at either, in whatever order the removals come
    removals = sorted(removals, key=lambda r: _expiry_seconds(r.key))
    for r in removals:
        kind, _, arg = r.key.replace("@", ":").partition(":")
        if kind == "pension":
            drop["pensions"].add(int(arg))
        elif kind == "event":
            drop["events"].add(int(arg))
        elif kind == "customers":
            d["customers"][int(arg)]["rate"] = 0.0  # keep the index: streams unchanged
        elif kind == "otc":
            for dealer in d["dealers"]:
                dealer["positions"] = [p for p in dealer["positions"] if p["visible"]]
            for event in d["events"]:
                event["positions"] = [p for p in event["positions"] if p["visible"]]
        elif kind == "expiry":
            day = float(arg) / session
            _roll(d, day)
            if scenario.book is not None:  # the chain's lines expiring there now, if any
                rolled = list(d["book"].get("roll") or [])
                if any(abs(x - day) < 1e-9 for x in _chain_days(scenario, rolled)):
                    d["book"]["roll"] = [*rolled, day]
        elif kind in ("news", "noise"):
            block = d[kind]
            stop = block.get("stop")
            block["stop"] = float(arg) if stop is None else min(stop, float(arg))
        else:
            raise ValueError(f"unknown removal {r.key!r}")
    for name, idx in drop.items():
        d[name] = [x for i, x in enumerate(d[name]) if i not in idx]
    return load_scenario(d)


def _roll(d: dict[str, Any], day: float) -> None:
    """Move every line expiring after ``day`` sessions one session later (in place)."""

    def same(x: float) -> bool:
        return abs(x - day) < 1e-9

    for lines in [dl["positions"] for dl in d["dealers"]] + [e["positions"] for e in d["events"]]:
        for p in lines:
            if same(p["expiry_days"]):
                p["expiry_days"] = day + 1.0
    for c in d["customers"]:
        rolled = [day + 1.0 if same(x) else x for x in c["expiry_days"]]
        c["expiry_days"] = list(dict.fromkeys(rolled))  # a listed expiry may already exist


def truncated(scenario: Scenario, until: float) -> Scenario:
    """``scenario`` ending at ``until`` (s, rounded up to a sample), when that is sooner
    and changes nothing before it: the simulation is causal, so the path up to ``until``
    is the same; events after it are dropped. A pension order still running then would
    be re-sliced into different child orders, so the clock is then left as it is."""
    every = scenario.record.every
    end = math.ceil(until / every) * every + every
    if not end < scenario.clock.duration or any(
        p.start + p.duration > end for p in scenario.pensions
    ):
        return scenario
    d = scenario_to_dict(scenario)
    d["clock"]["days"] = end / scenario.clock.session_seconds
    d["events"] = [e for e in d["events"] if e["at"] <= end]
    return load_scenario(d)
