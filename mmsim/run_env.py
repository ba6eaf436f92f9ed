"""A run that fails stops at the instant it failed: :func:`stop_now`.

simpy turns an exception raised in a process into a failed process event scheduled at
the current time with normal priority, *after* every event already queued for that
instant. A dealer that detects divergence (``InstabilityError``: ``lam * G <= -1``, a
runaway, a price leaving its domain) would thus let the other agents due at the same
instant act first: a second dealer's scheduled rehedge at the same second traded after
the run had stopped on the simpy agents, while the compiled kernel (which stops where it
detects) did not: one trade more on ``engine.fast_path: off`` than on the fast path.

A book side running dry under ``on_dry_out: stop`` (``LiquidityDryOut``) is the same:
a second desk's scheduled hedge at that instant traded on the other side after the run
had stopped. Each raise site therefore goes through :func:`stop_now`, which schedules
the error as one urgent failed event, ahead of every normal event of its instant, so
both paths stop where the failure is detected and give the same run so far. The cost
is paid only when a run fails: the event loop itself is a plain ``simpy.Environment``
(a check on every scheduled event made the simpy agents' path ~11% slower).
"""

from __future__ import annotations

from typing import TypeVar

import simpy
from simpy.core import URGENT
from simpy.events import Event

__all__ = ["stop_now"]

E = TypeVar("E", bound=BaseException)


def stop_now(env: simpy.Environment, err: E) -> E:
    """Make ``err`` stop ``env``'s run at this instant (``env.now``, s), before any
    other event already queued for it; returns ``err`` for the caller to raise.

    Inside a process (the raise unwinds into simpy's ``Process._resume``), ``err`` is
    scheduled as one urgent failed event: :meth:`simpy.Environment.step` raises it
    next (a copy, its ``__cause__`` the original, as for a failed process). The
    process's own failure, which simpy queues behind the instant's normal events, is
    defused, so the error is raised once. Outside a process (a plain callback, or no
    step running) a raise already leaves ``step`` at once: nothing is scheduled.
    """
    proc = env.active_process
    if proc is not None:
        stop = Event(env)
        stop._ok = False
        stop._value = err
        env.schedule(stop, URGENT)
        proc.defused = True
    return err
