"""Causes of wall breaks by counterfactual replay.

The episodes recorder labels a break by which evidence passes a threshold in a window;
that is a cheap first look and can be wrong (a gap and a vol shift at the same instant,
a quiet market's flow ratio). A simulator can do better than any GEX dashboard: replay
the run's resolved scenario on the same seed with one candidate cause removed, and see
whether the break still happens. Every agent draws from its own ``SeedSequence`` child
stream (news, noise, customer segment ``i``; pensions, events and expiries are
deterministic), so a removal leaves every other agent's draws untouched.

Candidates, each with its removal (for one episode starting at ``t``; window start
``w0 = t - lookback``):

=================  ==========================================  =====================
cause              removal                                     candidate when
=================  ==========================================  =====================
overwhelming_flow  drop the pension / large order              it starts before the
                                                               break is confirmed
customer_flow      segment ``i``'s rate set to 0 (the index    its rate is > 0
                   stays, so the others' streams do not move)
otc_offset         drop every hidden (OTC) line                the book has one
vol_regime_shift   drop the vol-shift event                    before confirmation
gap                drop the gap event                          before confirmation
expiration_melt    roll the lines of that expiry one session   an expiry within a
                   later (a chain book's: ``book.roll``),      session of ``t``
                   lines rolled there already too; several
                   roll earliest first
news               no news from ``w0`` on                      news vol > 0
news               no noise orders from ``w0`` on              noise rate > 0
=================  ==========================================  =====================

A removal **prevents** the episode when, in the replay, price never stays beyond the
episode's own level (held fixed, beyond by ``threshold``, for ``duration`` s) in a span
that touches the window ``[t - lookback, t + lookback]``. The **extreme price** is the
highest (call wall, flip up) or lowest (put wall, flip down) price over
``[t - lookback, t + lookback + duration]``; ``d_extreme`` ($) is how much the removal
moves it. The value of removing a set ``S`` of candidates is 1 if that prevents the
episode, else the share of the original excursion beyond the level it takes away
(clipped to [0, 1]). Candidates that **matter** (value >= ``MATTERS`` alone; all of them
if none does but removing them all does) share the value of removing them all by
Shapley values: exact over all subsets for up to ``MAX_EXACT`` candidates, else from
``SAMPLED_PERMUTATIONS`` random orders. The **primary cause** has the largest share;
when two causes each prevent the episode alone (each was necessary: a push and a wall
that was weaker than drawn) they share it equally and the tie goes to the cause that
changed the wall (the order of :data:`mmsim.episodes.CAUSES`); news and noise are
primary only when no scripted cause has a share.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from mmsim.episodes import BACKGROUND_CAUSES, CAUSES, clock_time
from mmsim.paths import atomic_write
from mmsim.removals import Removal, candidates, truncated, without
from mmsim.result import Result
from mmsim.scenario import load_scenario, scenario_to_dict
from mmsim.schema import Scenario

__all__ = [
    "EXPLAIN_COLUMNS",
    "Explanation",
    "Removal",
    "candidates",
    "explain",
    "explain_dir",
    "format_explanation",
    "occurs",
    "save_explanation",
    "shapley",
    "truncated",
    "without",
]

MATTERS = 0.25  # value of a single removal from which a candidate enters the Shapley set
MAX_EXACT = 6  # exact Shapley over subsets up to this many candidates
SAMPLED_PERMUTATIONS = 16  # random orders for the sampled Shapley value beyond that
POOL_FROM = 4
"""A first round of fewer replays runs in this process: starting worker processes (each
imports mmsim and loads its compiled kernels, ~2-5 s) costs more than it saves."""
EXPLAIN_COLUMNS = [
    "episode",
    "start",
    "kind",
    "level",
    "removal",
    "cause",
    "label",
    "prevents",
    "extreme",
    "d_extreme",
    "value",
    "share",
    "primary",
    "error",
]
"""One row per (episode, candidate): the removal's key, cause and readable label,
whether it prevents the episode, the replay's extreme price and its change ($), the
value of removing it alone, its Shapley share (NaN if it does not matter), whether it is
the primary cause, and the replay's error (a run that diverged)."""


# -- what a replay shows ------------------------------------------------------------------
def occurs(
    t: np.ndarray,
    price: np.ndarray,
    level: float,
    direction: float,
    threshold: float,
    duration: float,
    window: tuple[float, float],
) -> bool:
    """Whether price stays beyond ``level`` ($, + ``direction`` * ``threshold`` of it) for
    at least ``duration`` s in a stretch that touches ``window`` (s)."""
    edge = level * (1.0 + direction * threshold)
    beyond = direction * (price - edge) > 0.0
    if not beyond.any():
        return False
    padded = np.concatenate(([False], beyond, [False])).astype(np.int8)
    starts = np.flatnonzero(np.diff(padded) == 1)
    ends = np.flatnonzero(np.diff(padded) == -1) - 1
    lo, hi = window
    return bool(np.any((t[ends] - t[starts] >= duration) & (t[starts] <= hi) & (t[ends] >= lo)))


def _extreme(t: np.ndarray, price: np.ndarray, direction: float, span: tuple[float, float]):
    m = (t >= span[0]) & (t <= span[1])
    if not m.any():
        return math.nan
    return float(direction * np.max(direction * price[m]))


def shapley(players: Sequence[str], value, *, rng: np.random.Generator | None = None) -> dict:
    """Shapley values of ``players`` for ``value(frozenset) -> float``: exact over all
    subsets up to ``MAX_EXACT`` players, else averaged over ``SAMPLED_PERMUTATIONS``
    random orders (``rng``, default seeded 0 so the answer is reproducible)."""
    n = len(players)
    phi = dict.fromkeys(players, 0.0)
    if n <= MAX_EXACT:
        for p in players:
            others = [q for q in players if q != p]
            for k in range(n):
                weight = math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n)
                for s in itertools.combinations(others, k):
                    phi[p] += weight * (value(frozenset((*s, p))) - value(frozenset(s)))
        return phi
    rng = rng or np.random.default_rng(0)
    for _ in range(SAMPLED_PERMUTATIONS):
        order = [players[i] for i in rng.permutation(n)]
        before = frozenset()
        for p in order:
            after = before | {p}
            phi[p] += (value(after) - value(before)) / SAMPLED_PERMUTATIONS
            before = after
    return phi


def _sampled_orders(players: Sequence[str]) -> list[frozenset]:
    """The coalitions the sampled Shapley value will ask for (same rng as ``shapley``)."""
    rng, n, out = np.random.default_rng(0), len(players), []
    for _ in range(SAMPLED_PERMUTATIONS):
        order = [players[i] for i in rng.permutation(n)]
        out += [frozenset(order[: k + 1]) for k in range(n)]
    return out


# -- replays ------------------------------------------------------------------------------
def _replay(scenario: dict[str, Any], seed: int) -> dict[str, Any]:
    """Run one counterfactual in a worker; returns the price path only."""
    from mmsim.engine import Simulation

    try:
        result = Simulation(load_scenario(scenario), seed).run()
    except Exception as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        return {"error": f"{type(err).__name__}: {message}"}
    s = result.series
    return {"error": "", "t": s["t"].to_numpy(), "price": s["price"].to_numpy()}


class _Replays:
    """Replays of one run keyed by the set of removals, on a sweep executor."""

    def __init__(self, result: Result, executor: str, workers: int | None, dask_address, bar):
        self.result = result
        self.seed = int(result.entropy)  # SeedSequence(entropy) rebuilds every stream
        self.done: dict[frozenset, dict[str, Any]] = {}
        self.removals: dict[str, Removal] = {}
        self.pool: Any = None
        self.until = math.inf  # replays may stop here (s): no episode looks later
        self.executor, self.workers, self.dask_address, self.bar = (
            executor,
            workers or os.cpu_count() or 1,
            dask_address,
            bar,
        )

    def run(self, keys: Iterable[frozenset]) -> None:
        """Replay every set of removals in ``keys`` not replayed yet."""
        from mmsim.executors import _Pool

        todo = [k for k in dict.fromkeys(keys) if k and k not in self.done]
        if not todo:
            return
        self.bar.total = (self.bar.total or 0) + len(todo)
        self.bar.refresh()
        if self.pool is None:  # one pool for every round (workers start once)
            kind = self.executor if len(todo) >= POOL_FROM else "serial"
            self.pool = _Pool(kind, self.workers, self.dask_address, task=_replay)
        futures = {}
        for k in todo:
            removed = without(self.result.scenario, [self.removals[r] for r in k])
            removed = truncated(removed, self.until)
            futures[self.pool.submit(scenario_to_dict(removed), self.seed)] = k
        for fut in self.pool.as_completed(list(futures)):
            try:
                self.done[futures[fut]] = fut.result()
            except Exception as err:  # the executor lost it (a worker died, KilledWorker)
                if self.pool.cluster_lost():  # cancelled: the scheduler went away
                    continue
                self.done[futures[fut]] = {"error": f"{type(err).__name__}: {err}"}
            self.bar.update(1)
        if self.pool.cluster_lost():
            from mmsim.errors import ClusterLostError

            done = sum(k in self.done for k in todo)
            gone = getattr(self.pool, "no_workers_for", None)  # else the scheduler went away
            raise ClusterLostError(
                self.pool.address,
                done,
                len(todo),
                work="explain",
                items="replays",
                no_workers_for=gone,
            )

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


@dataclass
class _Episode:
    """One episode's window and what its replays show."""

    index: int
    start: float
    kind: str
    level: float
    direction: float
    window: tuple[float, float]
    span: tuple[float, float]
    extreme: float
    excursion: float
    candidates: list[Removal]


def _episodes(result: Result) -> list[_Episode]:
    rules = result.scenario.record.episodes
    t, price = result.series["t"].to_numpy(), result.series["price"].to_numpy()
    out = []
    for i, row in enumerate(result.episodes.itertuples()):
        window = (row.start - rules.lookback, row.start + rules.lookback)
        span = (window[0], window[1] + rules.duration)
        extreme = _extreme(t, price, row.direction, span)
        out.append(
            _Episode(
                i,
                row.start,
                row.kind,
                row.level,
                row.direction,
                window,
                span,
                extreme,
                max(row.direction * (extreme - row.level), 0.0),
                candidates(result.scenario, row.start),
            )
        )
    return out


def _value(e: _Episode, out: dict[str, Any] | None, rules) -> float:
    """Value of a replay for episode ``e``: 1 if the episode does not occur, else the
    share of its excursion beyond the level that is gone (0 for the run itself)."""
    if out is None or out["error"]:
        return 0.0  # the run itself, or a replay that diverged: nothing prevented
    t, price = out["t"], out["price"]
    if not occurs(t, price, e.level, e.direction, rules.threshold, rules.duration, e.window):
        return 1.0
    if e.excursion <= 0.0:
        return 0.0
    left = max(e.direction * (_extreme(t, price, e.direction, e.span) - e.level), 0.0)
    return float(min(max(1.0 - left / e.excursion, 0.0), 1.0))


def _replay_all(replays: _Replays, episodes: list[_Episode]) -> dict[int, list[str]]:
    """Every replay the episodes need, in three rounds: each candidate alone; all of an
    episode's candidates together when none matters alone; the coalitions of the
    Shapley value. Returns each episode's candidates that matter."""
    rules = replays.result.scenario.record.episodes
    for e in episodes:
        replays.removals.update({r.key: r for r in e.candidates})
    replays.run(frozenset([r.key]) for e in episodes for r in e.candidates)

    def value(e: _Episode, keys: frozenset) -> float:
        return _value(e, replays.done[keys], rules)

    matter = {
        e.index: [r.key for r in e.candidates if value(e, frozenset([r.key])) >= MATTERS]
        for e in episodes
    }
    everything = {e.index: frozenset(r.key for r in e.candidates) for e in episodes}
    replays.run(everything[e.index] for e in episodes if not matter[e.index])
    for e in episodes:  # over-determined: no one alone, but removing them all does
        if not matter[e.index] and everything[e.index] and value(e, everything[e.index]) > 0.0:
            matter[e.index] = [r.key for r in e.candidates]
    needed: list[frozenset] = []
    for m in matter.values():
        if len(m) <= MAX_EXACT:
            needed += [
                frozenset(s) for k in range(2, len(m) + 1) for s in itertools.combinations(m, k)
            ]
        else:
            needed += _sampled_orders(m)
    replays.run(needed)
    return matter


@dataclass
class Explanation:
    """The counterfactual causes of one run's episodes.

    ``table``: one row per (episode, candidate), columns :data:`EXPLAIN_COLUMNS`.
    ``episodes``: the run's episodes with ``primary_cause`` the counterfactual answer
    (``cause_source = "counterfactual"``). ``replays``: counterfactual runs made.
    """

    table: pd.DataFrame
    episodes: pd.DataFrame
    replays: int


def explain(
    result: Result,
    *,
    executor: str = "processes",
    workers: int | None = None,
    dask_address: str | None = None,
    progress: bool = False,
    only: Sequence[int] | None = None,
) -> Explanation:
    """Replay ``result``'s scenario and seed without each candidate cause of each of its
    episodes (on a sweep executor: ``serial``, ``processes`` or ``dask``) and find which
    removals prevent each episode, how far each moves its extreme price and their Shapley
    shares; see the module docstring for the rules. ``only``: indices of the episodes to
    explain (default all); the others keep their evidence cause."""
    rules = result.scenario.record.episodes
    episodes = [e for e in _episodes(result) if only is None or e.index in only]
    with tqdm(total=0, unit="replay", disable=not progress, desc="explain", delay=1.0) as bar:
        replays = _Replays(result, executor, workers, dask_address, bar)
        replays.until = max((e.span[1] for e in episodes), default=math.inf)
        try:
            matter = _replay_all(replays, episodes)
        finally:
            replays.close()

    def value(e: _Episode, keys: frozenset) -> float:
        return _value(e, replays.done[keys] if keys else None, rules)

    rows, primaries = [], []
    for e in episodes:
        m = matter[e.index]
        shares = shapley(m, lambda s, e=e: value(e, s)) if m else {}
        primary = _primary(shares, replays.removals)
        primaries.append(primary)
        for r in e.candidates:
            out = replays.done[frozenset([r.key])]
            ext = (
                _extreme(out["t"], out["price"], e.direction, e.span)
                if not out["error"]
                else math.nan
            )
            v = value(e, frozenset([r.key]))
            rows.append(
                {
                    "episode": e.index,
                    "start": e.start,
                    "kind": e.kind,
                    "level": e.level,
                    "removal": r.key,
                    "cause": r.cause,
                    "label": r.label,
                    "prevents": v >= 1.0,
                    "extreme": ext,
                    "d_extreme": ext - e.extreme,
                    "value": v,
                    "share": shares.get(r.key, math.nan),
                    "primary": primary is not None and primary.key == r.key,
                    "error": out["error"],
                }
            )
    table = pd.DataFrame(rows, columns=EXPLAIN_COLUMNS)
    table = table.astype({"prevents": bool, "primary": bool})
    updated = result.episodes.copy()
    for e, p in zip(episodes, primaries, strict=True):
        updated.loc[e.index, "primary_cause"] = p.cause if p is not None else "none"
        updated.loc[e.index, "cause_source"] = "counterfactual"
    return Explanation(table, updated, len(replays.done))


def _primary(shares: dict[str, float], removals: dict[str, Removal]) -> Removal | None:
    """The removal behind the cause with the largest Shapley share (summed over its
    removals, e.g. two gaps, or news and noise); ties to the cause earlier in ``CAUSES``;
    the random walk (``news``) only when no scripted cause has a share."""
    by_cause: dict[str, float] = {}
    for key, share in shares.items():
        if share > 1e-9:
            cause = removals[key].cause
            by_cause[cause] = by_cause.get(cause, 0.0) + share
    scripted = {c: v for c, v in by_cause.items() if c not in BACKGROUND_CAUSES}
    pool = scripted or by_cause
    if not pool:
        return None
    cause = max(pool, key=lambda c: (round(pool[c], 9), -CAUSES.index(c)))
    best = max((k for k in shares if removals[k].cause == cause), key=lambda k: (shares[k], k))
    return removals[best]


# -- run directories ----------------------------------------------------------------------
def _write_atomic(path: Path, write) -> None:
    with atomic_write(path, record=False) as tmp:
        write(tmp)


def save_explanation(
    explanation: Explanation, result: Result, directory: str | os.PathLike
) -> None:
    """Write ``explain.parquet`` (the table), ``explain.json`` (per episode: primary
    cause and candidates) and the updated ``episodes.parquet`` and episode counts of
    ``metrics.json`` into a result directory, each file atomically."""
    from mmsim.metrics import episode_counts

    out = Path(directory)
    table = explanation.table
    _write_atomic(out / "explain.parquet", lambda p: table.to_parquet(p, index=False))
    report = []
    for ep, row in zip(
        range(len(explanation.episodes)), explanation.episodes.itertuples(), strict=True
    ):
        part = table[table["episode"] == ep]
        report.append(
            {
                "episode": ep,
                "start": row.start,
                "end": row.end,
                "kind": row.kind,
                "level": row.level,
                "primary_cause": row.primary_cause,
                "evidence_cause": row.evidence_cause,
                "candidates": json.loads(
                    part.drop(columns=["episode", "start", "kind", "level"]).to_json(
                        orient="records"
                    )
                ),
            }
        )
    payload = {
        "seed": result.seed,
        "entropy": str(result.entropy),
        "replays": explanation.replays,
        "episodes": report,
    }
    _write_atomic(out / "explain.json", lambda p: Path(p).write_text(json.dumps(payload, indent=1)))
    _write_atomic(
        out / "episodes.parquet", lambda p: explanation.episodes.to_parquet(p, index=False)
    )
    metrics = {**result.metrics, **episode_counts(explanation.episodes)}
    _write_atomic(out / "metrics.json", lambda p: Path(p).write_text(json.dumps(metrics, indent=1)))
    result.episodes = explanation.episodes
    result.metrics = metrics


def explain_dir(directory: str | os.PathLike, **kwargs: Any) -> tuple[Result, Explanation]:
    """Load the result in ``directory``, explain it and save the explanation there."""
    from mmsim.result import load_result

    result = load_result(directory)
    explanation = explain(result, **kwargs)
    save_explanation(explanation, result, directory)
    return result, explanation


def format_explanation(explanation: Explanation, scenario: Scenario) -> str:
    """A readable table per episode: each removal, whether it prevents the episode, the
    extreme price it leaves and how far it moves it, its Shapley share; then the primary."""
    session = scenario.clock.session_seconds
    lines = []
    for ep, row in enumerate(explanation.episodes.itertuples()):
        if row.cause_source != "counterfactual":
            continue
        part = explanation.table[explanation.table["episode"] == ep]
        high = "high" if row.direction > 0 else "low"
        lines.append(
            f"episode {ep + 1}: {row.kind} at {clock_time(row.start, session)}, level "
            f"{row.level:.2f} ({row.views}); evidence said {row.evidence_cause}"
        )
        shown = pd.DataFrame(
            {
                "removed": part["label"],
                "cause": part["cause"],
                "prevents": np.where(part["prevents"], "yes", "no"),
                f"{high} $": part["extreme"].map(lambda x: f"{x:.2f}"),
                "moves $": part["d_extreme"].map(lambda x: f"{x:+.2f}"),
                "share": part["share"].map(lambda x: "-" if math.isnan(x) else f"{x:.2f}"),
            }
        )
        shown.loc[part["error"] != "", "prevents"] = "failed"
        lines += ["  " + x for x in shown.to_string(index=False).splitlines()]
        lines.append(f"  primary cause: {row.primary_cause}")
    if not lines:
        return "no episodes to explain"
    lines.append(
        f"({explanation.replays} replays of the same seed; prevents = no break within "
        "lookback of the start; share = Shapley share of the candidates that matter)"
    )
    return "\n".join(lines)
