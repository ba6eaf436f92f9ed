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
    "FEEDBACK_AGE_ROUNDS",
    "FEEDBACK_LIMIT",
    "FEEDBACK_ROUNDS",
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
    "SCHEDULED_STEP_CAP",
    "SCHEDULED_TYPICAL_WEIGHT",
    "SETTLING",
    "SOLVE_OVERSHOOT",
    "WATCH_FEEDBACK",
    "WATCH_GROWTH",
    "WATCH_QUIET",
    "bracket_probe",
    "cascade_step",
    "combined_feedback",
    "fill_feedback",
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
# Scheduled dealers sharing a market (each one's own fills may settle while together they
# diverge) are watched for geometric growth of their rehedges. Two desks at lam * G = x
# each, hedging in turn at each instant, move their rehedges by the matrix
# [[-x, -x], [x^2, x^2 - x]]: its dominant root is 1 exactly at the combined 2x = -1
# (1.067 at -1.05, 1.28 at -1.2, 1.90 at -1.6; 0.87 at -0.9), complex of modulus x for
# long gamma (stable while each desk is below +1). A stable pair's rehedges are
# stationary: they rise above the dealer's typical rehedge only by chance and by changes
# of the exogenous flow (a vol burst, new gamma) that come in one step or a few; a
# diverging pair's grow by the root every round without bound. The statistic: over a
# streak of growing rehedges of one sign pattern, the log growth from the typical
# rehedge (or the streak's start, if larger), each round counted at most
# SCHEDULED_STEP_CAP-fold (a jump of the flow counts as one such round, not tenfold);
# the run stops once it reaches SCHEDULED_GROWTH after SCHEDULED_GROWTH_ROUNDS rounds.
# Typical: an EWMA (weight SCHEDULED_TYPICAL_WEIGHT) of |rehedge| over checks that did
# not grow. Calibrated on two-desk models (benchmarks/scheduled_watch.py: shared or
# staggered instants, Gaussian and Student-t(3) moves, bands 5 and 60 shares, vol jumps
# x10, bursts, x1.5 ramps, gamma x10): no stop in 48,000 one-day runs at combined -0.95
# to +0.95 (at 32-fold 4, at 48-fold 1: x1.5 ramps); alone (no measured lam * G, below)
# it stops every run at -1.05 or below, median / max rounds at -1.05 97 / 184, -1.2
# 20 / 47, -1.6 9 / 20. On the engine a slow divergence moves the price until the book's
# gamma falls first (-1.2: 11 of 20 runs went 15-30% away unstopped): hence the
# measured feedback below, which stops those within 5 rounds (median)
SCHEDULED_GROWTH_ROUNDS = 3
SCHEDULED_GROWTH = 64.0
SCHEDULED_STEP_CAP = 2.0
SCHEDULED_TYPICAL_WEIGHT = 1.0 / 16.0
_LOG_GROWTH = math.log(SCHEDULED_GROWTH)
_LOG_STEP_CAP = math.log(SCHEDULED_STEP_CAP)
# The direct test: every dealer measures lam * G_i on its own fills (fill_feedback: the
# change of its net delta over the fill per share, minus 1, exact under linear impact,
# the local slope under others); a move's total feedback through all dealers is the sum,
# and the loop gain of dealers hedging in turn (shared or staggered schedules, lagged or
# not) reaches 1 when that sum reaches -1 (a desk at k_b sees moves already damped by
# 1 + k_a: gain k_b / (1 + k_a) <= -1 iff k_a + k_b <= -1). A scheduled dealer whose
# last FEEDBACK_ROUNDS rehedges grew with one sign while the dealers' latest measured
# sum is at or below FEEDBACK_LIMIT stops the run: this catches a slow divergence (-1.05
# grows 1.067x a round) before the price has run far enough to change the book's gamma,
# which the growth rule alone cannot. Long gamma has no such sum rule (two desks on one
# schedule stay stable while each is below +1, whatever their sum): the growth rule.
# Only dealers that hedge feed back: a measurement counts while it is at most
# FEEDBACK_AGE_ROUNDS intervals old, of the watching dealer's or of the measured
# dealer's schedule, the longer (a dealer whose options expired, or whose gamma fell so
# it no longer trades, drops out; in a divergence every dealer trades every round).
FEEDBACK_LIMIT = -1.0
FEEDBACK_ROUNDS = 2
FEEDBACK_AGE_ROUNDS = 4.0
WATCH_QUIET, WATCH_GROWTH, WATCH_FEEDBACK = 0, 1, 2
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


@njit(cache=True, forceinline=False)  # not _check's: see kernel_checks._check
def fill_feedback(before: float, after: float, qty: float) -> float:
    """``lam * G`` measured over one fill of ``qty`` shares: the dealer's net delta went
    from ``before`` to ``after`` (shares, same instant), so ``(after - before) / qty``
    is ``1 + lam * G`` (:func:`fill_outcome`). Meaningful from
    :data:`RUNAWAY_MIN_SIZE` shares up (whole-share rounding and ticks below)."""
    return (after - before) / qty - 1.0


@njit(cache=True)
def combined_feedback(kappas, times, intervals, now: float, interval: float) -> float:
    """The dealers' ``lam * G`` summed, in index order, over those measured on a fill
    (:func:`fill_feedback`; ``kappas``, at ``times``, s) within the last
    :data:`FEEDBACK_AGE_ROUNDS` x the longer of ``interval`` (s, the watching dealer's
    schedule) and the measured dealer's (``intervals``, s; 0 when not scheduled)."""
    total = 0.0
    for j in range(kappas.size):
        if now - times[j] <= FEEDBACK_AGE_ROUNDS * max(interval, intervals[j]):
            total += kappas[j]
    return total


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
def scheduled_watch(
    qty: float, streak: float, last: float, typical: float, growth: float, combined: float
):
    """One scheduled check of a watched dealer that traded ``qty`` shares (signed; 0 when
    inside its band): returns ``(streak, last, typical, growth, verdict)``.

    ``streak`` counts the rehedges in a row that grew (``|qty| > |last| >=``
    :data:`RUNAWAY_MIN_SIZE`) with one sign pattern: positive for the same sign (short
    gamma chasing), negative for alternating signs (long gamma over-correcting);
    ``last`` is the previous signed rehedge (shares), ``typical`` the dealer's typical
    rehedge size (shares; 0 until its first of at least :data:`RUNAWAY_MIN_SIZE`),
    ``growth`` the streak's log growth from ``max(typical, |rehedge before it|)``, each
    round counted at most :data:`SCHEDULED_STEP_CAP`-fold (0 outside a streak);
    ``combined`` the dealers' latest measured ``lam * G`` summed (:func:`fill_feedback`).
    ``verdict``: :data:`WATCH_FEEDBACK` when ``combined <=`` :data:`FEEDBACK_LIMIT` and
    the same-sign streak is at least :data:`FEEDBACK_ROUNDS`, :data:`WATCH_GROWTH` once
    a streak of at least :data:`SCHEDULED_GROWTH_ROUNDS` has grown
    :data:`SCHEDULED_GROWTH`-fold, else :data:`WATCH_QUIET`.
    """
    size = abs(qty)
    prev = abs(last)
    grew = size > prev >= RUNAWAY_MIN_SIZE
    same = qty * last > 0.0
    if grew and (streak > 0.0) == same and streak != 0.0:
        streak += 1.0 if same else -1.0
        growth += min(math.log(size / prev), _LOG_STEP_CAP)
    elif grew:  # a new streak, from the typical rehedge if the one before was smaller
        streak = 1.0 if same else -1.0
        base = math.log(typical / prev) if typical > prev else 0.0
        growth = min(math.log(size / prev), _LOG_STEP_CAP) - base
    else:
        streak = 0.0
        growth = 0.0
        if size >= RUNAWAY_MIN_SIZE:
            if typical == 0.0:
                typical = size
            else:
                typical += SCHEDULED_TYPICAL_WEIGHT * (size - typical)
    verdict = WATCH_QUIET
    if streak >= FEEDBACK_ROUNDS and combined <= FEEDBACK_LIMIT:
        verdict = WATCH_FEEDBACK
    elif abs(streak) >= SCHEDULED_GROWTH_ROUNDS and growth >= _LOG_GROWTH:
        verdict = WATCH_GROWTH
    return streak, qty, typical, growth, verdict
