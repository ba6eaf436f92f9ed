"""The option book: every dealer's option lines as a struct of arrays, with numba reductions.

Units and signs (see ``DESIGN.md``):

- ``strike`` in $; ``expiry`` in **seconds** on the simulation clock; time to expiry in
  years is ``(expiry - t) / year_seconds`` (trading time, never floored: an option one
  second from expiry uses one second).
- ``qty`` in contracts, signed from the **holder's** view (a dealer short 100 calls has
  ``qty = -100``); ``multiplier`` in shares per contract; ``units = qty * multiplier``.
- Share delta ``units * delta``; share gamma ``units * gamma`` (shares per $1).
- GEX (dollar gamma per 1% move) of a line: ``weight * gamma * S**2 * 0.01`` where the
  weight is ``units`` in the **true** view, and ``sign * |units|`` on exchange-listed lines
  only in the **visible** view (the outside analyst's convention, :class:`VisibleConvention`).
- Each line is priced at its own strike's implied vol plus its own offset (vol units; 0 by
  default; a real chain's smile point): ``max(surface_iv(K, S, level, skew, floor) +
  iv_offset, floor)``, so moving the surface's level moves every line.
  Lines with ``expiry <= t`` have expired and contribute nothing (0 delta, gamma, value).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from mmsim.greeks import bsm_scalar, delta_gamma_scalar
from mmsim.vol import VolSurface, surface_iv

__all__ = [
    "GEX_PER_PCT",
    "OptionBook",
    "VisibleConvention",
    "holder_delta_gamma",
    "line_gex",
    "profile_gex",
    "reduce_delta_gamma",
    "reduce_value",
    "sample_packed",
    "total_gex",
]

GEX_PER_PCT = 0.01
"""GEX unit: dollars of delta change per 1% move, ``gamma * S**2 * 0.01`` per share."""

_VIEWS = ("true", "visible")
_COLUMNS = {  # public column -> private array
    "strike": "_strike",
    "expiry": "_expiry",
    "is_call": "_is_call",
    "qty": "_qty",
    "holder": "_holder",
    "visible": "_visible",
    "multiplier": "_mult",
}


@dataclass(frozen=True)
class VisibleConvention:
    """How an outside analyst signs exchange open interest (SqueezeMetrics convention by default):
    dealers assumed long calls (+1) and short puts (-1)."""

    call_sign: float = 1.0
    put_sign: float = -1.0


# -- numba kernels (allocation-free; arrays may be longer than n, only the first n are read) --
@njit(cache=True)
def line_iv(K, S, level, skew, floor, iv_offset):
    """Implied vol of one line: ``max(surface_iv(K, S, level, skew, floor) + iv_offset, floor)``
    (``iv_offset`` in vol units, 0.01 = one vol point), annualized."""
    return max(surface_iv(K, S, level, skew, floor) + iv_offset, floor)


@njit(cache=True)
def reduce_delta_gamma(S, t, year_seconds, strike, expiry, is_call, iv_offset, units, holder, n,
                       level, skew, floor, r, q, out_delta, out_gamma):  # fmt: skip
    """Per-holder share delta and share gamma (shares per $1) into ``out_delta``, ``out_gamma``."""
    out_delta[:] = 0.0
    out_gamma[:] = 0.0
    for i in range(n):
        if expiry[i] <= t or units[i] == 0.0:
            continue
        T = (expiry[i] - t) / year_seconds
        sigma = line_iv(strike[i], S, level, skew, floor, iv_offset[i])
        d, g = delta_gamma_scalar(S, strike[i], T, sigma, r, q, is_call[i])
        out_delta[holder[i]] += units[i] * d
        out_gamma[holder[i]] += units[i] * g


# Rows of the packed line table (``OptionBook.packed``), float64, shape (6, capacity).
PACK_STRIKE, PACK_EXPIRY, PACK_IS_CALL, PACK_UNITS, PACK_HOLDER, PACK_IV_OFFSET = range(6)
_PACK_ROWS = 6


@njit(cache=True)
def holder_delta_gamma(S, t, year_seconds, lines, n, level, skew, floor, r, q, holder):
    """One holder's share delta (shares) and share gamma (shares per $1) over the packed
    line table: :func:`reduce_delta_gamma` restricted to the lines of ``holder`` (the
    same sums, bit for bit), returned instead of written (no output array to pass)."""
    delta = 0.0
    gamma = 0.0
    for i in range(n):
        units = lines[PACK_UNITS, i]
        if lines[PACK_HOLDER, i] != holder or lines[PACK_EXPIRY, i] <= t or units == 0.0:
            continue
        K = lines[PACK_STRIKE, i]
        T = (lines[PACK_EXPIRY, i] - t) / year_seconds
        sigma = line_iv(K, S, level, skew, floor, lines[PACK_IV_OFFSET, i])
        d, g = delta_gamma_scalar(S, K, T, sigma, r, q, lines[PACK_IS_CALL, i] != 0.0)
        delta += units * d
        gamma += units * g
    return delta, gamma


@njit(cache=True)
def sample_packed(S, t, year_seconds, lines, vis_w, n, level, skew, floor, r, q, out):
    """Everything the series recorder needs from the book in one pass over the lines:
    per-holder share delta, gamma, charm (shares per year), vanna (shares per 1.00 of
    vol) and value ($) into rows 0-4 of ``out`` (shape ``(5, n_holders)``); returns the
    true and visible GEX at ``S`` ($ per 1% move). Bit-identical to
    :func:`reduce_flow_greeks`, :func:`reduce_value` and :func:`total_gex` (same
    formulas, same summation order), one BSM evaluation per line instead of four."""
    out[:, :] = 0.0
    acc_true = 0.0
    acc_vis = 0.0
    for i in range(n):
        units = lines[PACK_UNITS, i]
        w_vis = vis_w[i]
        if lines[PACK_EXPIRY, i] <= t or (units == 0.0 and w_vis == 0.0):
            continue
        K = lines[PACK_STRIKE, i]
        T = (lines[PACK_EXPIRY, i] - t) / year_seconds
        sigma = line_iv(K, S, level, skew, floor, lines[PACK_IV_OFFSET, i])
        g = bsm_scalar(S, K, T, sigma, r, q, lines[PACK_IS_CALL, i] != 0.0)
        if units != 0.0:
            h = int(lines[PACK_HOLDER, i])
            out[0, h] += units * g[1]
            out[1, h] += units * g[2]
            out[2, h] += units * g[6]
            out[3, h] += units * g[5]
            out[4, h] += units * g[0]
            acc_true += units * g[2]
        if w_vis != 0.0:
            acc_vis += w_vis * g[2]
    return acc_true * S * S * GEX_PER_PCT, acc_vis * S * S * GEX_PER_PCT


@njit(cache=True)
def reduce_value(
    S,
    t,
    year_seconds,
    strike,
    expiry,
    is_call,
    iv_offset,
    units,
    holder,
    n,
    level,
    skew,
    floor,
    r,
    q,
    out,
):
    """Per-holder mark-to-market value in $ (``units * price``) into ``out``."""
    out[:] = 0.0
    for i in range(n):
        if expiry[i] <= t or units[i] == 0.0:
            continue
        T = (expiry[i] - t) / year_seconds
        sigma = line_iv(strike[i], S, level, skew, floor, iv_offset[i])
        out[holder[i]] += units[i] * bsm_scalar(S, strike[i], T, sigma, r, q, is_call[i])[0]


@njit(cache=True)
def reduce_flow_greeks(
    S,
    t,
    year_seconds,
    strike,
    expiry,
    is_call,
    iv_offset,
    units,
    holder,
    n,
    level,
    skew,
    floor,
    r,
    q,
    out,
):
    """Per-holder share delta, gamma, charm (shares per year) and vanna (shares per 1.00
    of vol) into the rows of ``out`` (shape ``(4, n_holders)``)."""
    out[:, :] = 0.0
    for i in range(n):
        if expiry[i] <= t or units[i] == 0.0:
            continue
        T = (expiry[i] - t) / year_seconds
        sigma = line_iv(strike[i], S, level, skew, floor, iv_offset[i])
        g = bsm_scalar(S, strike[i], T, sigma, r, q, is_call[i])
        h = holder[i]
        out[0, h] += units[i] * g[1]
        out[1, h] += units[i] * g[2]
        out[2, h] += units[i] * g[6]
        out[3, h] += units[i] * g[5]


@njit(cache=True)
def line_gex(
    S, t, year_seconds, strike, expiry, is_call, iv_offset, weight, n, level, skew, floor, r, q, out
):
    """GEX of each line at spot ``S`` ($ per 1% move) into ``out[:n]``; 0 when expired."""
    scale = S * S * GEX_PER_PCT
    for i in range(n):
        out[i] = 0.0
        if expiry[i] <= t or weight[i] == 0.0:
            continue
        T = (expiry[i] - t) / year_seconds
        sigma = line_iv(strike[i], S, level, skew, floor, iv_offset[i])
        g = delta_gamma_scalar(S, strike[i], T, sigma, r, q, is_call[i])[1]
        out[i] = weight[i] * g * scale


@njit(cache=True)
def total_gex(
    S, t, year_seconds, strike, expiry, is_call, iv_offset, weight, n, level, skew, floor, r, q
):
    """Net GEX of the book at spot ``S``, $ per 1% move."""
    acc = 0.0
    for i in range(n):
        if expiry[i] <= t or weight[i] == 0.0:
            continue
        T = (expiry[i] - t) / year_seconds
        sigma = line_iv(strike[i], S, level, skew, floor, iv_offset[i])
        acc += weight[i] * delta_gamma_scalar(S, strike[i], T, sigma, r, q, is_call[i])[1]
    return acc * S * S * GEX_PER_PCT


@njit(cache=True)
def profile_gex(
    spots,
    t,
    year_seconds,
    strike,
    expiry,
    is_call,
    iv_offset,
    weight,
    n,
    level,
    skew,
    floor,
    r,
    q,
    out,
):
    """Net GEX re-priced at each hypothetical spot (surface parameters fixed) into ``out``."""
    args = (
        t,
        year_seconds,
        strike,
        expiry,
        is_call,
        iv_offset,
        weight,
        n,
        level,
        skew,
        floor,
        r,
        q,
    )
    for j in range(spots.size):
        out[j] = total_gex(spots[j], *args)


def _nearest_crossing(grid: np.ndarray, profile: np.ndarray, S: float) -> float | None:
    """Linearly interpolated zero crossing of ``profile`` over ``grid`` nearest to ``S``.

    Exact zeros carry no sign (e.g. far from every strike near expiry): a crossing is a
    change of sign between consecutive *non-zero* values, interpolated between them.
    """
    nz = np.flatnonzero(profile != 0.0)
    a, b = nz[:-1], nz[1:]
    change = np.sign(profile[a]) != np.sign(profile[b])
    if not change.any():
        return None
    a, b = a[change], b[change]
    pa, pb = profile[a], profile[b]
    x = grid[a] - pa * (grid[b] - grid[a]) / (pb - pa)
    return float(x[np.argmin(np.abs(x - S))])


class OptionBook:
    """Option positions of ``n_holders`` holders (the dealers), struct-of-arrays.

    Parameters
    ----------
    n_holders : number of holders; ``holder`` indices are ``0 .. n_holders - 1``.
    year_seconds : trading seconds per year (default ``252 * 23_400``).
    r, q : continuously compounded rate and dividend yield, per year.
    convention : how the visible view signs exchange open interest.
    capacity : initial number of lines allocated; arrays double when full.

    The public arrays (``strike``, ``expiry``, ``is_call``, ``qty``, ``holder``, ``visible``,
    ``multiplier``) are read-only views of the first ``n`` lines; ``version`` increases on
    every change so callers can cache derived quantities.
    """

    def __init__(
        self,
        n_holders: int,
        *,
        year_seconds: float = 252 * 23_400.0,
        r: float = 0.0,
        q: float = 0.0,
        convention: VisibleConvention = VisibleConvention(),
        capacity: int = 64,
    ) -> None:
        if n_holders < 1:
            raise ValueError(f"n_holders must be >= 1, got {n_holders}")
        if not year_seconds > 0:
            raise ValueError(f"year_seconds must be > 0, got {year_seconds}")
        self.n_holders = int(n_holders)
        self.year_seconds = float(year_seconds)
        self.r, self.q = float(r), float(q)
        self.convention = convention
        self._n = 0
        self._version = 0
        self._index: dict[tuple, int] = {}
        cap = max(int(capacity), 1)
        self._mult, self._qty, self._vis_w = np.zeros(cap), np.zeros(cap), np.zeros(cap)
        self._is_call = np.zeros(cap, dtype=np.bool_)
        self._visible = np.zeros(cap, dtype=np.bool_)
        self._holder = np.zeros(cap, dtype=np.int64)
        self._set_packed(np.zeros((_PACK_ROWS, cap)))

    # -- read-only state ------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Number of lines."""
        return self._n

    @property
    def version(self) -> int:
        """Incremented on every change of the book."""
        return self._version

    @property
    def packed(self) -> np.ndarray:
        """The line table the hot-path kernels read, shape ``(6, capacity)`` float64, rows
        ``PACK_*`` (strike, expiry, is_call as 0/1, units, holder, iv_offset); only the first ``n``
        columns are lines. Owned by the book: read, never write."""
        return self._packed

    def _set_packed(self, packed: np.ndarray) -> None:
        """Adopt ``packed`` as the line table; ``_strike``, ``_expiry``, ``_units`` are
        views of its rows, so every change to them is seen by the packed kernels."""
        self._packed = packed
        self._strike = packed[PACK_STRIKE]
        self._expiry = packed[PACK_EXPIRY]
        self._units = packed[PACK_UNITS]
        self._iv_off = packed[PACK_IV_OFFSET]

    def _view(self, a: np.ndarray) -> np.ndarray:
        v = a[: self._n]
        v.flags.writeable = False
        return v

    strike = property(lambda self: self._view(self._strike), doc="Strike, $.")
    expiry = property(lambda self: self._view(self._expiry), doc="Expiry, clock seconds.")
    is_call = property(lambda self: self._view(self._is_call), doc="True for calls.")
    qty = property(lambda self: self._view(self._qty), doc="Contracts, holder's sign.")
    holder = property(lambda self: self._view(self._holder), doc="Holder index.")
    visible = property(lambda self: self._view(self._visible), doc="Exchange-listed (not OTC).")
    multiplier = property(lambda self: self._view(self._mult), doc="Shares per contract.")
    iv_offset = property(
        lambda self: self._view(self._iv_off), doc="Vol added to the surface at the line."
    )

    def __len__(self) -> int:
        return self._n

    # -- changes --------------------------------------------------------------------------
    def add(
        self,
        strike: float,
        expiry: float,
        is_call: bool,
        qty: float,
        holder: int,
        *,
        visible: bool = True,
        multiplier: float = 100.0,
        iv_offset: float = 0.0,
    ) -> None:
        """Add ``qty`` contracts (holder's sign) of an option expiring at ``expiry`` (clock s).

        Aggregates into the line with identical ``(holder, strike, expiry, is_call, visible,
        multiplier)`` if there is one (a line netted to 0 stays, contributing nothing).
        ``iv_offset`` (vol units, 0.01 = one point) is added to the surface's vol at this
        line: it is set when the line is created; adding to an existing line keeps that
        line's offset (the contract's own smile point).
        """
        h = operator.index(holder)
        strike, expiry, qty, multiplier = map(float, (strike, expiry, qty, multiplier))
        if not 0 <= h < self.n_holders:
            raise ValueError(f"holder {h} out of range 0..{self.n_holders - 1}")
        if not (np.isfinite(strike) and strike > 0):
            raise ValueError(f"strike must be > 0 dollars, got {strike}")
        if not (np.isfinite(multiplier) and multiplier > 0):
            raise ValueError(f"multiplier must be > 0 shares per contract, got {multiplier}")
        if not (np.isfinite(qty) and np.isfinite(expiry) and np.isfinite(iv_offset)):
            raise ValueError(f"qty, expiry, iv_offset must be finite: {qty}, {expiry}, {iv_offset}")
        key = (h, strike, expiry, bool(is_call), bool(visible), multiplier)
        i = self._index.get(key)
        if i is None:
            i = self._append(key)
            self._iv_off[i] = float(iv_offset)
        self._qty[i] += qty
        self._units[i] = self._qty[i] * multiplier
        sign = self.convention.call_sign if is_call else self.convention.put_sign
        self._vis_w[i] = sign * abs(self._units[i]) if visible else 0.0
        self._version += 1

    def add_many(
        self,
        strike,
        expiry,
        is_call,
        qty,
        holder,
        visible=True,
        multiplier=100.0,
        iv_offset=0.0,
    ) -> None:
        """Vectorized :meth:`add` of many lines (arrays of equal length, or scalars that
        broadcast): same units, same aggregation, same final book as adding them one by
        one in order. New lines are appended in one array operation (the opening book of a
        real chain: thousands of lines); only keys already in the book go through
        :meth:`add`."""
        arrays = np.broadcast_arrays(
            np.asarray(strike, float), np.asarray(expiry, float), np.asarray(is_call, bool),
            np.asarray(qty, float), np.asarray(holder), np.asarray(visible, bool),
            np.asarray(multiplier, float), np.asarray(iv_offset, float),
        )  # fmt: skip
        K, E, C, Q, H, V, M, off = (np.ravel(a) for a in arrays)
        if K.size == 0:
            return
        if not np.issubdtype(H.dtype, np.integer):
            raise ValueError(f"holder must be integers, got dtype {H.dtype}")
        H = H.astype(np.int64)
        if H.min() < 0 or H.max() >= self.n_holders:
            raise ValueError(f"holder out of range 0..{self.n_holders - 1}")
        if not (np.all(np.isfinite(K)) and np.all(K > 0)):
            raise ValueError("strike must be finite and > 0 dollars")
        if not (np.all(np.isfinite(M)) and np.all(M > 0)):
            raise ValueError("multiplier must be finite and > 0 shares per contract")
        if not (np.isfinite(Q).all() and np.isfinite(E).all() and np.isfinite(off).all()):
            raise ValueError("qty, expiry and iv_offset must be finite")
        cols = (H.tolist(), K.tolist(), E.tolist(), C.tolist(), V.tolist(), M.tolist())
        keys = list(zip(*cols, strict=True))
        first = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1), strict=True))
        new = first.keys() - self._index.keys()  # first occurrence of each key not in the book
        fresh = np.sort(np.fromiter((first[k] for k in new), dtype=np.int64, count=len(new)))
        if fresh.size:
            i0, m = self._n, fresh.size
            self._reserve(i0 + m)
            sl = slice(i0, i0 + m)
            self._holder[sl], self._strike[sl], self._expiry[sl] = H[fresh], K[fresh], E[fresh]
            self._is_call[sl], self._visible[sl], self._mult[sl] = C[fresh], V[fresh], M[fresh]
            self._packed[PACK_IS_CALL, sl] = C[fresh]
            self._packed[PACK_HOLDER, sl] = H[fresh]
            self._iv_off[sl] = off[fresh]
            self._qty[sl] = 0.0
            self._index.update(zip([keys[j] for j in fresh], range(i0, i0 + m), strict=True))
            self._n = i0 + m
        row = np.fromiter((self._index[k] for k in keys), dtype=np.int64, count=len(keys))
        np.add.at(self._qty, row, Q)
        touched = np.unique(row)
        self._units[touched] = self._qty[touched] * self._mult[touched]
        sign = np.where(self._is_call[touched], self.convention.call_sign, self.convention.put_sign)
        self._vis_w[touched] = np.where(
            self._visible[touched], sign * np.abs(self._units[touched]), 0.0
        )
        self._version += 1

    def _reserve(self, size: int) -> None:
        """Grow the arrays (doubling) so that ``size`` lines fit."""
        cap = self._strike.size
        if size <= cap:
            return
        new_cap = max(2 * cap, size)
        i = self._n
        for name in ("_is_call", "_qty", "_holder", "_visible", "_mult", "_vis_w"):
            old = getattr(self, name)
            new = np.zeros(new_cap, dtype=old.dtype)
            new[:i] = old[:i]
            setattr(self, name, new)
        packed = np.zeros((_PACK_ROWS, new_cap))
        packed[:, :i] = self._packed[:, :i]
        self._set_packed(packed)

    def _append(self, key: tuple) -> int:
        i = self._n
        self._reserve(i + 1)
        h, strike, expiry, is_call, visible, mult = key
        self._holder[i], self._strike[i], self._expiry[i] = h, strike, expiry
        self._is_call[i], self._visible[i], self._mult[i] = is_call, visible, mult
        self._packed[PACK_IS_CALL, i] = 1.0 if is_call else 0.0
        self._packed[PACK_HOLDER, i] = h
        self._qty[i] = 0.0
        self._iv_off[i] = 0.0
        self._index[key] = i
        self._n = i + 1
        return i

    # -- per-holder quantities ------------------------------------------------------------
    def years_to_expiry(self, t: float) -> np.ndarray:
        """``(expiry - t) / year_seconds`` per line, years (negative once expired)."""
        return (self._expiry[: self._n] - t) / self.year_seconds

    def _kargs(self, t: float, vol: VolSurface, weight: np.ndarray, by_holder: bool) -> tuple:
        """The kernels' arguments from ``t`` to ``q`` (``holder`` only for per-holder kernels)."""
        head = (
            float(t),
            self.year_seconds,
            self._strike,
            self._expiry,
            self._is_call,
            self._iv_off,
        )
        mid = (weight, self._holder, self._n) if by_holder else (weight, self._n)
        return (*head, *mid, *vol.params(), self.r, self.q)

    def net_delta_gamma(
        self,
        S: float,
        t: float,
        vol: VolSurface,
        out_delta: np.ndarray | None = None,
        out_gamma: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-holder share delta (shares) and share gamma (shares per $1) at spot ``S``, time
        ``t`` (clock s). With ``out_delta`` / ``out_gamma`` (length ``n_holders``) nothing is
        allocated: one kernel fills them and they are returned."""
        if out_delta is None:
            out_delta = np.zeros(self.n_holders)
        if out_gamma is None:
            out_gamma = np.zeros(self.n_holders)
        if out_delta.shape != (self.n_holders,) or out_gamma.shape != (self.n_holders,):
            raise ValueError(f"out arrays must have shape ({self.n_holders},)")  # numba: no bounds
        reduce_delta_gamma(float(S), *self._kargs(t, vol, self._units, True), out_delta, out_gamma)
        return out_delta, out_gamma

    def holder_delta_gamma(
        self, holder: int, S: float, t: float, vol: VolSurface
    ) -> tuple[float, float]:
        """The event loop's hot path: share delta (shares) and share gamma (shares per $1)
        of ``holder``'s lines at spot ``S`` ($), clock ``t`` (s); no checks."""
        return holder_delta_gamma(
            S, t, self.year_seconds, self._packed, self._n,
            vol.level, vol.skew, vol.floor, self.r, self.q, holder,
        )  # fmt: skip

    def sample_greeks(self, S: float, t: float, vol: VolSurface, out: np.ndarray) -> tuple:
        """Per-holder share delta, gamma, charm (per year), vanna (per 1.00 of vol) and
        value ($) into rows 0-4 of ``out`` (shape ``(5, n_holders)``), in one pass; returns
        ``(gex_true, gex_visible)`` at ``S``, $ per 1% move. Equal, bit for bit, to
        :meth:`flow_greeks`, :meth:`value` and :meth:`gex_at` in both views."""
        return sample_packed(
            float(S), float(t), self.year_seconds, self._packed, self._vis_w, self._n,
            vol.level, vol.skew, vol.floor, self.r, self.q, out,
        )  # fmt: skip

    def value(
        self, S: float, t: float, vol: VolSurface, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Per-holder mark-to-market value, $ (``qty * multiplier * price``); expired lines 0."""
        if out is None:
            out = np.zeros(self.n_holders)
        if out.shape != (self.n_holders,):
            raise ValueError(f"out must have shape ({self.n_holders},)")
        reduce_value(float(S), *self._kargs(t, vol, self._units, True), out)
        return out

    def flow_greeks(self, S: float, t: float, vol: VolSurface, out: np.ndarray) -> np.ndarray:
        """Per-holder share delta, gamma, charm (per year) and vanna (per 1.00 of vol) into
        ``out`` of shape ``(4, n_holders)``: what moves a dealer's delta with spot, time and
        implied vol (the hedge-flow decomposition)."""
        reduce_flow_greeks(float(S), *self._kargs(t, vol, self._units, True), out)
        return out

    # -- GEX ------------------------------------------------------------------------------
    def _weight(self, view: str) -> np.ndarray:
        if view == "true":
            return self._units
        if view == "visible":
            return self._vis_w
        raise ValueError(f"view must be one of {_VIEWS}, got {view!r}")

    def gex_at(self, S: float, t: float, vol: VolSurface, view: str = "true") -> float:
        """Net GEX of the book at spot ``S``, $ per 1% move."""
        return total_gex(float(S), *self._kargs(t, vol, self._weight(view), False))

    def gex_profile(self, spots, t: float, vol: VolSurface, view: str = "true") -> np.ndarray:
        """Net GEX re-priced at each hypothetical spot, $ per 1% move at that spot.

        The surface is held fixed (same level, skew, floor; each line at
        ``surface_iv(K, spot)``), and so is the clock ``t``.
        """
        spots = np.ascontiguousarray(spots, dtype=np.float64).ravel()
        out = np.empty(spots.size)
        profile_gex(spots, *self._kargs(t, vol, self._weight(view), False), out)
        return out

    def flip(
        self, S: float, t: float, vol: VolSurface, view: str = "true", spots=None
    ) -> float | None:
        """Gamma flip, $: the zero crossing of the GEX profile nearest to ``S``, linearly
        interpolated between grid points; ``None`` if the profile never changes sign.

        ``spots`` (increasing) defaults to ``S * linspace(0.7, 1.3, 241)``.
        """
        grid = S * np.linspace(0.7, 1.3, 241) if spots is None else np.asarray(spots, float)
        if grid.size > 1 and not np.all(np.diff(grid) > 0):
            raise ValueError("spots must be strictly increasing")
        return _nearest_crossing(grid, self.gex_profile(grid, t, vol, view), float(S))

    def _by_strike(self, S: float, t: float, vol: VolSurface, view: str):
        """Unique live strikes, call GEX, put GEX, has-call and has-put masks."""
        w, n = self._weight(view), self._n
        g = np.empty(n)
        line_gex(float(S), *self._kargs(t, vol, w, False), g)
        live = (self._expiry[:n] > t) & (w[:n] != 0.0)
        calls = self._is_call[:n][live]
        strikes, inv = np.unique(self._strike[:n][live], return_inverse=True)
        g, m = g[live], strikes.size
        call_gex = np.bincount(inv, weights=np.where(calls, g, 0.0), minlength=m)
        put_gex = np.bincount(inv, weights=np.where(calls, 0.0, g), minlength=m)
        has_call = np.bincount(inv, weights=calls.astype(float), minlength=m) > 0
        has_put = np.bincount(inv, weights=(~calls).astype(float), minlength=m) > 0
        return strikes, call_gex, put_gex, has_call, has_put

    def gex_by_strike(
        self, S: float, t: float, vol: VolSurface, view: str = "true"
    ) -> pd.DataFrame:
        """GEX per strike at spot ``S``, $ per 1% move: columns ``strike, call_gex, put_gex,
        net_gex``, sorted by strike, one row per strike with a live (unexpired, non-zero) line.

        ``view="true"``: all lines (OTC included), signed by the holders' ``qty``.
        ``view="visible"``: exchange-listed lines only, open interest ``|qty|`` signed by the
        convention (``call_sign`` for calls, ``put_sign`` for puts), as an analyst would see it.
        """
        strikes, call_gex, put_gex, _, _ = self._by_strike(S, t, vol, view)
        net = call_gex + put_gex
        return pd.DataFrame(
            {"strike": strikes, "call_gex": call_gex, "put_gex": put_gex, "net_gex": net}
        )

    def walls(
        self, S: float, t: float, vol: VolSurface, view: str = "true"
    ) -> tuple[float | None, float | None]:
        """``(call_wall, put_wall)``: strikes with the largest ``|call GEX|`` and ``|put GEX|``.

        ``|.|`` is used for both, so the true view (dealers short calls: negative call GEX)
        finds the same concentration the visible view does; in the visible convention call
        GEX is positive, so this is DESIGN's "largest call GEX". Only unexpired lines count;
        ``None`` when there is no call (put) line; ties go to the lowest strike.
        """
        strikes, call_gex, put_gex, has_call, has_put = self._by_strike(S, t, vol, view)

        def pick(gex: np.ndarray, has: np.ndarray) -> float | None:
            if not has.any():
                return None
            return float(strikes[np.argmax(np.where(has, np.abs(gex), -1.0))])

        return pick(call_gex, has_call), pick(put_gex, has_put)

    def strike_gex(
        self, S: float, t: float, vol: VolSurface, strike: float, view: str = "true"
    ) -> float:
        """Net GEX of the live lines struck at ``strike`` only, at spot ``S``, $ per 1%."""
        strikes, call_gex, put_gex, _, _ = self._by_strike(S, t, vol, view)
        hit = np.flatnonzero(np.isclose(strikes, strike, rtol=0.0, atol=1e-9))
        return float(call_gex[hit].sum() + put_gex[hit].sum())

    def lines(self) -> pd.DataFrame:
        """The book as a table (copies): strike, expiry, is_call, qty, holder, visible,
        multiplier (the per-line ``iv_offset`` is the :attr:`iv_offset` property)."""
        return pd.DataFrame({c: getattr(self, a)[: self._n].copy() for c, a in _COLUMNS.items()})
