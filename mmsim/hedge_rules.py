"""The dealer's hedging rules as compiled pure functions of floats.

One implementation for both paths: :class:`mmsim.agents.dealer.DealerAgent` (the simpy
agent) and the compiled fast path (:mod:`mmsim.fastpath`) call these same functions, so a
rule changed here changes both. Units: shares for deltas, hedges, goals and bands.
"""

from __future__ import annotations

import math

from numba import njit

__all__ = [
    "CHASING",
    "LAGGED_OVERSHOOTS",
    "MAX_CASCADE",
    "MAX_SOLVE_STEPS",
    "MIN_ORDER",
    "OVERCORRECTING",
    "RESPONSE_FLOOR",
    "RUNAWAY_MIN_SIZE",
    "RUNAWAY_ROUNDS",
    "SCHEDULED_GROWTH",
    "SCHEDULED_GROWTH_ROUNDS",
    "SCHEDULED_RUNAWAY_ROUNDS",
    "SCHEDULED_TYPICAL_WEIGHT",
    "SETTLING",
    "SOLVE_OVERSHOOT",
    "WATCH_GROWTH",
    "WATCH_QUIET",
    "WATCH_STREAK",
    "bracket_probe",
    "cascade_step",
    "fill_outcome",
    "plan_hedge",
    "scheduled_watch",
    "solve_pick",
    "solve_update",
]

MIN_ORDER = 1.0  # shares: dealers trade whole shares, so less than one share off is flat
MAX_CASCADE = 20_000  # rounds of same-instant rehedging before we call it divergence
RUNAWAY_ROUNDS = 8  # consecutive growing rehedges: a stable cascade shrinks by |lam * G| a round
RUNAWAY_MIN_SIZE = 10.0  # shares: below this, rounding can make a stable cascade "grow"
SOLVE_OVERSHOOT = 1.5  # hedge_fraction * (1 + lam * G) above which an instant hedge is solved
RESPONSE_FLOOR = 0.01  # 1 + lam * G measured on a fill at or below this: diverged
MAX_SOLVE_STEPS = 64  # bracketing steps; bisection on whole shares needs < 64 for any size
# scheduled rehedges growing in a row with one sign pattern, watched when several dealers
# share the market (each one's own fills may settle while together they diverge): a
# stable lagged AR(1) at |lam * G| = 0.9 does this by chance about once in 2e7 checks,
# at 0.95 once in 4e6; at the combined -1.2 it takes ~15-35 checks, at -1.05 ~20-60
SCHEDULED_RUNAWAY_ROUNDS = 14
# ... or fewer, SCHEDULED_GROWTH_ROUNDS, when the last is SCHEDULED_GROWTH times the
# dealer's typical rehedge: a fast divergence (two desks at -0.8 each: x1.9 a round)
# moves the price ~30% and collapses the book's gamma before 14 rounds. Typical: an
# EWMA (weight SCHEDULED_TYPICAL_WEIGHT) of |rehedge| over checks that did not grow,
# raised to the first rehedge of each growing streak (so one noise-sized start, or a
# shock that starts the streak, does not count as growth). Calibrated on two desks
# sharing one schedule (tests/test_instability_schedule.py, Gaussian moves): in 8e6
# checks at the combined -0.9, -0.95 and +0.9 it never fired (the streak rule: 3, 14
# and 0 times), in 20,000 run starts of 200 rounds once at -0.95 (streak rule 15);
# rounds to a stop (median / max of 500) at -1.05 44 / 113 (streak rule as before),
# -1.2 16 / 38, -1.4 10 / 24, -1.6 8 / 16 (median with the streak rule alone: 18, 15,
# 15 in this linear model; on the engine the book's gamma collapses ~10 rounds in)
SCHEDULED_GROWTH_ROUNDS = 3
SCHEDULED_GROWTH = 24.0
SCHEDULED_TYPICAL_WEIGHT = 1.0 / 16.0
WATCH_QUIET, WATCH_STREAK, WATCH_GROWTH = 0, 1, 2
"""Verdicts of :func:`scheduled_watch`."""
LAGGED_OVERSHOOTS = 2  # over-correcting fills in a row that stop a lagged long-gamma dealer

SETTLING, CHASING, OVERCORRECTING = 0, 1, 2
"""Outcomes of one hedge (:func:`fill_outcome`)."""


@njit(cache=True, forceinline=False)  # not _check's: see kernel_checks._check
def fill_outcome(before: float, after: float, goal: float, qty: float) -> int:
    """What one hedge of ``qty`` shares did to the dealer's net delta (shares).

    ``before`` and ``after`` are the net delta just before and just after the dealer's
    own fill (same instant), ``goal`` what it traded toward. The measured response
    ``(after - before) / qty`` is ``1 + lam * G`` over the fill. Returns
    :data:`CHASING` when it is at most :data:`RESPONSE_FLOOR` (``lam * G <= -0.99``:
    the hedge grew, or barely cut, the exposure it meant to cut; a stable cascade would
    amplify moves over 100-fold), :data:`OVERCORRECTING` when the hedge overshot the
    goal by at least the distance it started from (long gamma over-correcting its own
    impact), else :data:`SETTLING`.
    """
    if (after - before) / qty <= RESPONSE_FLOOR:
        return CHASING
    d0 = before - goal
    d1 = after - goal
    if d1 * d0 < 0.0 and abs(d1) >= abs(d0):
        return OVERCORRECTING
    return SETTLING


@njit(cache=True)
def bracket_probe(a: float, fa: float, b: float, fb: float) -> float:
    """Next whole-share hedge to try strictly between ``a`` and ``b`` (shares, at least
    two apart) by false position on the residuals ``fa`` and ``fb`` (opposite signs; the
    caller halves a stale one, Illinois-style)."""
    lo, hi = min(a, b) + 1.0, max(a, b) - 1.0
    c = math.floor(b - fb * (b - a) / (fb - fa) + 0.5)
    return min(max(c, lo), hi)


@njit(cache=True, forceinline=False)  # not _check's: see kernel_checks._check
def plan_hedge(delta: float, band: float, center: bool, hedge_fraction: float):
    """``(goal, qty)`` of a dealer at net delta ``delta`` outside its ``band`` (shares):
    the goal is 0 (``center``) or the band's edge on ``delta``'s side; the hedge moves
    ``hedge_fraction`` of the way there, truncated to whole shares toward zero."""
    goal = 0.0 if center else math.copysign(band, delta)
    qty = float(math.trunc(hedge_fraction * (goal - delta)))
    return goal, qty


@njit(cache=True)
def solve_update(a, ga, b, gb, fa, fb, kept, c, gc):
    """One Illinois false-position update of the bracket ``[a, b]`` (shares; ``ga``,
    ``gb`` residuals, ``fa``, ``fb`` the possibly halved ones, ``kept`` which end stayed
    last time: 1 = b, -1 = a) with the probe ``c`` of residual ``gc``."""
    if gc * ga > 0.0:  # same side as the start: the hedge is at least c
        a, ga, fa = c, gc, gc
        if kept == 1:
            fb *= 0.5
        kept = 1
    else:
        b, gb, fb = c, gc, gc
        if kept == -1:
            fa *= 0.5
        kept = -1
    return a, ga, b, gb, fa, fb, kept


@njit(cache=True)
def solve_pick(a: float, ga: float, b: float, gb: float, target: float, band: float) -> float:
    """The bracket end to trade when the bracket has closed: the one whose post-impact
    net delta (``residual + target``) is inside the band if only one is, else the one
    nearer ``target``."""
    limit = max(band, MIN_ORDER)
    a_in = abs(ga + target) <= limit
    b_in = abs(gb + target) <= limit
    if a_in != b_in:
        return a if a_in else b
    return a if abs(ga) <= abs(gb) else b


@njit(cache=True)
def cascade_step(qty: float, rounds: int, growing: int, last: float):
    """One round of a same-instant cascade that traded ``|qty|`` shares: returns
    ``(rounds, growing, last, runaway)``; ``runaway`` when :data:`RUNAWAY_ROUNDS` rounds
    in a row grew (above :data:`RUNAWAY_MIN_SIZE`) or :data:`MAX_CASCADE` rounds passed."""
    rounds += 1
    growing = growing + 1 if qty > last >= RUNAWAY_MIN_SIZE else 0
    last = qty
    return rounds, growing, last, growing >= RUNAWAY_ROUNDS or rounds >= MAX_CASCADE


@njit(cache=True)
def scheduled_watch(qty: float, streak: float, last: float, typical: float):
    """One scheduled check of a watched dealer that traded ``qty`` shares (signed; 0 when
    inside its band): returns ``(streak, last, typical, verdict)``.

    ``streak`` counts the rehedges in a row that grew (``|qty| > |last| >=``
    :data:`RUNAWAY_MIN_SIZE`) with one sign pattern: positive for the same sign (short
    gamma chasing), negative for alternating signs (long gamma over-correcting);
    ``last`` is the previous signed rehedge (shares), ``typical`` the dealer's typical
    rehedge size (shares; 0 until its first of at least :data:`RUNAWAY_MIN_SIZE`).
    ``verdict`` is :data:`WATCH_STREAK` after :data:`SCHEDULED_RUNAWAY_ROUNDS` growing
    rehedges, :data:`WATCH_GROWTH` after :data:`SCHEDULED_GROWTH_ROUNDS` when the last
    is at least :data:`SCHEDULED_GROWTH` times ``typical``, else :data:`WATCH_QUIET`.
    """
    size = abs(qty)
    grew = size > abs(last) >= RUNAWAY_MIN_SIZE
    if grew and qty * last > 0.0:
        streak = streak + 1.0 if streak > 0.0 else 1.0
    elif grew and qty * last < 0.0:
        streak = streak - 1.0 if streak < 0.0 else -1.0
    else:
        streak = 0.0
        if size >= RUNAWAY_MIN_SIZE:
            if typical == 0.0:
                typical = size
            else:
                typical += SCHEDULED_TYPICAL_WEIGHT * (size - typical)
    rounds = abs(streak)
    if rounds == 1.0:
        typical = max(typical, size)
    verdict = WATCH_QUIET
    if rounds >= SCHEDULED_RUNAWAY_ROUNDS:
        verdict = WATCH_STREAK
    elif rounds >= SCHEDULED_GROWTH_ROUNDS and size >= SCHEDULED_GROWTH * typical:
        verdict = WATCH_GROWTH
    return streak, qty, typical, verdict
