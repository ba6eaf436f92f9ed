"""The scenario schema: every field a YAML scenario may hold, with units and defaults.

Loading, overrides and error messages live in :mod:`mmsim.scenario`; this module only
says what a valid scenario is. Unknown keys are errors everywhere (``extra="forbid"``).

Clock units: seconds of trading time from the first open; ``*_days`` fields count
trading sessions of ``clock.session_seconds``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "BookConfig",
    "BookFromChain",
    "ChainFraction",
    "Clock",
    "CustomerSegment",
    "Dealer",
    "EpisodeRules",
    "Impact",
    "MarketConfig",
    "News",
    "Noise",
    "Panic",
    "PensionOrder",
    "Position",
    "Record",
    "Scenario",
    "ScheduledEvent",
    "Size",
    "SweepBlock",
    "Transient",
    "VolConfig",
]

RESERVED_ACCOUNTS = ("pool", "opening", "clearing", "noise")
"""Ledger accounts of the engine; no dealer or pension may take these names."""

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class Clock(_Strict):
    """Run length and the trading calendar."""

    days: PositiveFloat = Field(1.0, description="Run length in trading sessions.")
    session_seconds: PositiveFloat = Field(23_400.0, description="Seconds per session.")
    year_days: PositiveFloat = Field(252.0, description="Trading sessions per year.")

    @property
    def duration(self) -> float:
        """Run length, seconds."""
        return self.days * self.session_seconds

    @property
    def year_seconds(self) -> float:
        """Trading seconds per year (converts clock time to option time)."""
        return self.year_days * self.session_seconds


class Transient(_Strict):
    """Part of each order's impact that decays (propagator / Obizhaeva-Wang)."""

    fraction: Annotated[float, Field(ge=0, le=1)] = Field(
        0.0, description="Share of impact that is transient (0 = all permanent)."
    )
    half_life: PositiveFloat = Field(60.0, description="Half-life of the transient part, s.")


class Impact(_Strict):
    """Price impact of an order of q shares.

    ``linear``: ``dS = lam * q`` with ``lam`` in $ per share, or give ``depth_bp``
    (shares that move price by 1 bp at ``S0``) instead. ``sqrt``: ``dS = sign(q) * Y *
    daily_vol * S * sqrt(|q| / adv)``.
    """

    model: Literal["linear", "sqrt"] = "linear"
    lam: NonNegFloat | None = Field(None, description="Kyle lambda, $ per share.")
    depth_bp: PositiveFloat | None = Field(None, description="Shares per 1 bp of price move.")
    Y: PositiveFloat = Field(1.0, description="Square-root-law prefactor (order 1).")
    daily_vol: PositiveFloat = Field(0.0126, description="Daily vol for sqrt impact, fraction.")
    adv: PositiveFloat = Field(5.0e6, description="Average daily volume, shares.")

    @model_validator(mode="after")
    def _one_linear_unit(self) -> Impact:
        if self.model == "linear":
            if self.lam is not None and self.depth_bp is not None:
                raise ValueError("give either lam ($/share) or depth_bp (shares per bp), not both")
            if self.lam is None and self.depth_bp is None:
                raise ValueError("linear impact needs lam ($/share) or depth_bp (shares per bp)")
        return self


BOOK_PRESETS: dict[str, dict[str, Any]] = {
    # Buis, Pieterse-Bloem, Verschoor & Zwinkels (2024, JEDC 164, 104880), benchmark:
    # 40 orders per 15-minute quarter, decay per event
    "buis2024": {
        "tick": 0.01,
        "rate": 40.0 / 900.0,
        "p_market": 0.3,
        "p_informed": 0.3,
        "informed_market": True,
        "offset_mean": -0.1,
        "offset_sd": 0.1,
        "size_min": 0.0,
        "size_max": 1.0,
        "xi": 0.05,
        "cancel_rate": 0.0,
        "init_levels": 3,
        "init_volume": 10.0,
        "init_spread_ticks": 4,
    },
    # continuous-time zero intelligence (Smith, Farmer, Gillemot & Krishnamurthy 2003
    # style): Poisson limit, market and cancel rates (a resting share lives 0.5 s, 20
    # orders), giving a 2-3 tick spread and about 1,000 shares at the best quotes at
    # S0 = 100 (SPY-like quotes); mid returns over 100 orders are uncorrelated
    "zi_spx": {
        "tick": 0.01,
        "rate": 40.0,
        "p_market": 0.12,
        "p_informed": 0.0,
        "offset_mean": -0.04,
        "offset_sd": 0.04,
        "size_min": 0.0,
        "size_max": 2500.0,
        "xi": 0.0,
        "cancel_rate": 2.0,
        "init_levels": 10,
        "init_volume": 1000.0,
        "init_spread_ticks": 2,
    },
}
"""Book presets (``market.book.preset``); fields given beside a preset override it."""


class BookConfig(_Strict):
    """The limit order book (``market.model: book``) and its zero-intelligence flow.

    Orders arrive at ``rate`` per second: market orders with probability ``p_market``,
    else limit orders at the reference price (the mid; the fundamental for the informed,
    ``p_informed``) plus ``x ~ N(offset_mean, offset_sd)`` $ for a buy, minus it for a
    sell; sizes uniform on ``[size_min, size_max]`` shares; with ``informed_market`` the
    informed market orders buy below the fundamental and sell above it. With ``work`` a
    dealer's limit order is worked from passive to marketable. Resting volume decays before
    each order, ``v *= exp(-xi (mid - p)**2 - cancel_rate * dt)``. News moves the
    fundamental. ``preset`` fills the fields not given.
    """

    preset: Literal["buis2024", "zi_spx"] | None = Field(
        None, description="buis2024 (Buis et al. 2024 benchmark) or zi_spx (continuous ZI)."
    )
    tick: PositiveFloat = Field(0.01, description="Tick size, $.")
    levels: Annotated[int, Field(ge=64)] = Field(
        4096, description="Price levels kept in the window around the mid (re-centred)."
    )
    rate: NonNegFloat = Field(40.0 / 900.0, description="Orders per second (all flow).")
    p_market: Annotated[float, Field(ge=0, le=1)] = Field(
        0.3, description="Probability an order is a market order (immediacy)."
    )
    p_informed: Annotated[float, Field(ge=0, le=1)] = Field(
        0.3, description="Probability an order quotes around the fundamental, not the mid."
    )
    informed_market: bool = Field(
        False,
        description="Informed market orders (a fraction p_informed) buy below the "
        "fundamental and sell above it; false: every market order's side is a coin flip.",
    )
    offset_mean: float = Field(-0.1, description="Mean limit offset from the reference, $.")
    offset_sd: NonNegFloat = Field(0.1, description="Std dev of the limit offset, $.")
    offset_dist: Literal["normal", "uniform"] = Field(
        "normal",
        description="Limit offset law with that mean and sd: normal (Buis et al.), or "
        "uniform (offset_mean = -offset_sd * sqrt(3): flat depth behind the mid, none crossing).",
    )
    size_min: NonNegFloat = Field(0.0, description="Smallest order, shares.")
    size_max: PositiveFloat = Field(1.0, description="Largest order, shares.")
    xi: NonNegFloat = Field(0.05, description="Order decay per event, per $**2.")
    cancel_rate: NonNegFloat = Field(0.0, description="Uniform cancellation rate, per s.")
    init_levels: Annotated[int, Field(ge=1)] = Field(3, description="Opening levels per side.")
    init_volume: PositiveFloat = Field(10.0, description="Opening shares per level.")
    init_spread_ticks: Annotated[int, Field(ge=1)] = Field(4, description="Opening spread.")
    max_spread: PositiveFloat | None = Field(
        None, description="A spread above this ($) counts as a dry-out (null = never)."
    )
    work: PositiveFloat | None = Field(
        None,
        description="Seconds over which a dealer's limit order is worked from passive to "
        "marketable in 4 steps (Buis et al.: an hour); null: one step per re-post.",
    )
    on_dry_out: Literal["stop", "continue"] = Field(
        "stop",
        description="stop: the run ends with status failed (Buis et al.); continue: "
        "record the episode and let liquidity refill.",
    )

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        preset = data.get("preset") if isinstance(data, dict) else None
        if isinstance(preset, str) and preset in BOOK_PRESETS:  # else the field's check
            return {**BOOK_PRESETS[preset], **data}
        return data

    @model_validator(mode="after")
    def _sizes(self) -> BookConfig:
        if self.size_min > self.size_max:
            raise ValueError("size_min must be <= size_max")
        return self


class MarketConfig(_Strict):
    """The underlying and its liquidity."""

    model: Literal["impact", "book"] = Field(
        "impact",
        description="impact: the impact block's linear / sqrt law; book: a limit order "
        "book with zero-intelligence liquidity flow (the book block).",
    )
    book: BookConfig = Field(default_factory=BookConfig)
    S0: PositiveFloat = Field(100.0, description="Opening price, $.")
    impact: Impact = Field(default_factory=lambda: Impact(lam=1.0e-5))
    transient: Transient = Field(default_factory=Transient)
    half_spread: NonNegFloat = Field(0.0, description="Half bid-ask spread, $ per share.")
    tick: NonNegFloat = Field(0.0, description="Tick size of published prices, $ (0 = none).")
    r: Annotated[float, Field(ge=-1, le=1)] = Field(
        0.0, description="Risk-free rate, per year, continuous (-1 to 1)."
    )
    q: Annotated[float, Field(ge=-1, le=1)] = Field(
        0.0, description="Dividend yield, per year, continuous (-1 to 1)."
    )
    settlement: Literal["cash", "physical"] = Field(
        "cash", description="Expiring options settle in cash or in shares at the strike."
    )

    @model_validator(mode="after")
    def _meaningful(self) -> MarketConfig:
        for name in ("tick", "half_spread"):
            if getattr(self, name) >= self.S0 / 10:
                raise ValueError(
                    f"{name} = {getattr(self, name):g} $ is not below S0/10 = {self.S0 / 10:g} $"
                )
        return self


class FollowRealized(_Strict):
    """Implied vol that follows realized vol: the ATM level becomes
    ``(1 - weight) * atm + weight * rv + event shifts``, ``rv`` an exponentially weighted
    estimate of the price's realized vol (annualized) that starts at ``atm``."""

    weight: Annotated[float, Field(ge=0, le=1)] = Field(
        1.0, description="How much of the ATM level is realized vol (0 = none, 1 = all)."
    )
    half_life: PositiveFloat = Field(
        1800.0, description="Half-life of the realized-vol estimate, s of trading time."
    )
    every: PositiveFloat = Field(10.0, description="Seconds between updates (return horizon).")


class VolConfig(_Strict):
    """Implied vol surface ``max(atm + skew * log(K/S), floor)``, annualized."""

    atm: PositiveFloat = 0.20
    skew: float = 0.0
    floor: PositiveFloat = 0.01
    follow_realized: FollowRealized | None = Field(
        None, description="Let the ATM level follow realized vol (null = a fixed level)."
    )


class News(_Strict):
    """Exogenous diffusion moving price directly: ``dS = S * vol * sqrt(dt_years) * z``."""

    vol: NonNegFloat = Field(0.15, description="Annualized vol of the news diffusion.")
    dt: PositiveFloat = Field(1.0, description="Seconds between news ticks.")
    phase: NonNegFloat = Field(0.0, description="Time of the first tick after t=0 is dt+phase, s.")
    stop: NonNegFloat | None = Field(
        None, description="No news from this time on, s (null = all run; `mmsim explain`)."
    )


class Noise(_Strict):
    """Noise traders: Poisson market orders of exponential size, buy or sell at random."""

    rate: NonNegFloat = Field(0.0, description="Orders per second.")
    mean_size: PositiveFloat = Field(100.0, description="Mean order size, shares.")
    stop: NonNegFloat | None = Field(
        None, description="No orders from this time on, s (null = all run; `mmsim explain`)."
    )


class Position(_Strict):
    """An option line held by a dealer at the start; ``qty`` signed from the dealer's view."""

    type: Literal["call", "put"]
    strike: PositiveFloat = Field(description="Strike, $.")
    expiry_days: PositiveFloat = Field(description="Expiry, trading sessions after t=0.")
    qty: float = Field(description="Contracts; negative = dealer short.")
    visible: bool = Field(True, description="Exchange-listed (True) or OTC (False).")
    multiplier: PositiveFloat = 100.0


class ChainFraction(_Strict):
    """Dealers hold ``share`` x OI (their view, +1 = long) of ``type`` lines whose
    ``K / S - 1`` is in ``[moneyness[0], moneyness[1])``."""

    type: Literal["call", "put"]
    moneyness: tuple[float, float] = Field(description="K/S - 1 range, [low, high).")
    share: Annotated[float, Field(ge=-1, le=1)] = Field(description="Signed share of the OI.")


class BookFromChain(_Strict):
    """The opening book from a real option chain (CBOE delayed-quotes CSV), see
    :mod:`mmsim.chains`: expiries at 16:00 of their date, t = 0 at the next session's open,
    each line at its own smile IV (``iv_offset`` over the surface, so ``vol_shift`` moves
    all)."""

    chain: str = Field(description="CSV path, relative to the scenario file.")
    positioning: Literal["naive", "customer_long", "fractions"] = Field(
        "naive",
        description="naive: dealers long calls, short puts; customer_long: dealers short "
        "all; fractions: by type and moneyness bucket (`fractions`).",
    )
    fractions: list[ChainFraction] = Field(default_factory=list)
    expiries_within: PositiveFloat | None = Field(
        None, description="Keep expiries within this many sessions of t=0."
    )
    expiries_from: PositiveFloat | None = Field(
        None, description="Keep expiries at least this many sessions away (2 drops the 0DTE)."
    )
    moneyness: tuple[float, float] | None = Field(
        None, description="Keep strikes with K/S - 1 in [low, high]."
    )
    scale: PositiveFloat = Field(1.0, description="Multiply every line's contracts.")
    min_oi: NonNegFloat = Field(0.0, description="Drop lines with less open interest.")
    dealers: list[Annotated[int, Field(ge=0)]] = Field(
        default_factory=lambda: [0], description="Dealer indices holding the book."
    )
    weights: list[PositiveFloat] | None = Field(
        None, description="Shares of the book per dealer (default equal)."
    )
    iv: Literal["smile", "own"] = Field(
        "smile", description="smile: one smile IV per (expiry, strike); own: quoted IVs."
    )
    visible: bool = Field(True, description="Exchange-listed (the chain is).")
    roll: list[PositiveFloat] = Field(
        default_factory=list,
        description="Sessions (from t=0) whose kept lines expire a session later, each an "
        "expiry of the book as the ones before it left it ([1, 2]: the session-1 lines "
        "expire at 3; a counterfactual: mmsim explain's 'expiry rolled a session').",
    )

    @field_validator("roll")
    @classmethod
    def _roll_expiries(cls, roll: list[float], info: Any) -> list[float]:
        needs = ("chain", "positioning", "fractions", "expiries_within", "expiries_from",
                 "moneyness", "scale", "min_oi", "iv")  # fmt: skip
        if roll and all(k in info.data for k in needs):  # else: their own error is reported
            from types import SimpleNamespace

            from mmsim.chains import roll_sessions, scenario_lines

            sessions = scenario_lines(SimpleNamespace(**info.data), rolled=False)["sessions"]
            for i, day in enumerate(roll):  # each rolls the book the ones before it left
                days = sorted(set(roll_sessions(sessions.to_numpy(), roll[:i]).tolist()))
                if all(abs(x - day) > 1e-9 for x in days):
                    shown = ", ".join(f"{x:g}" for x in days[:8]) + ", ..." * (len(days) > 8)
                    after = f" after rolling {', '.join(f'{x:g}' for x in roll[:i])}" * (i > 0)
                    raise ValueError(f"session {day:g} is no expiry of the book's lines{after} "
                                     f"(sessions {shown})")  # fmt: skip
        return roll

    @model_validator(mode="after")
    def _check(self) -> BookFromChain:
        if self.positioning == "fractions" and not self.fractions:
            raise ValueError("positioning 'fractions' needs a fractions list")
        if self.weights is not None and len(self.weights) != len(self.dealers):
            raise ValueError("weights needs one value per dealer")
        if self.moneyness is not None and not -1 < self.moneyness[0] <= self.moneyness[1]:
            raise ValueError("moneyness must be (low, high) with -1 < low <= high")
        return self


class Panic(_Strict):
    """When the ATM implied vol has risen by ``iv_jump`` or more since the start, the
    dealer's band is multiplied by ``band_factor`` (< 1 tightens: it chases)."""

    iv_jump: PositiveFloat = Field(0.05, description="Rise in ATM vol that triggers panic.")
    band_factor: Annotated[float, Field(ge=0, le=1)] = 0.1


class Dealer(_Strict):
    """A delta-hedging options dealer."""

    name: str | None = Field(None, description="Label; defaults to dealer<i>.")
    band: NonNegFloat = Field(0.0, description="Tolerance band, in band_unit.")
    band_unit: Literal["shares", "delta_per_contract", "per_notional"] = Field(
        "shares",
        description=(
            "shares: band in shares; delta_per_contract: band x multiplier x gross "
            "contracts; per_notional: shares per $100M of gross option notional."
        ),
    )
    target: Literal["center", "edge"] = Field(
        "center", description="Rehedge to zero delta (center) or to the band's edge."
    )
    hedge_fraction: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0,
        description=(
            "Share of the excess delta traded per rehedge; a price-triggered dealer then "
            "looks again. Below 1 it stays stable when its own impact x gamma exceeds 1 "
            "(near-expiry ATM gamma); the settled price is the same."
        ),
    )
    trigger: Literal["price", "schedule"] = Field(
        "price", description="Check on every price/book change, or every `interval` s."
    )
    latency: NonNegFloat = Field(0.0, description="Delay between a trigger and the check, s.")
    interval: PositiveFloat = Field(1.0, description="Seconds between scheduled checks.")
    phase: NonNegFloat = Field(0.0, description="First scheduled check at interval+phase, s.")
    capacity: PositiveFloat | None = Field(
        None, description="Max |shares| traded per capacity_window (None = unlimited)."
    )
    capacity_window: PositiveFloat = Field(60.0, description="Capacity window, s.")
    start_hedged: bool = Field(True, description="Start delta-neutral (shares endowed at S0).")
    panic: Panic | None = Field(None, description="Tighten the band when implied vol jumps.")
    order: Literal["market", "limit"] = Field(
        "market",
        description="Hedge with market orders, or (book market only) with a limit order "
        "at the dealer's side's best quote, re-posted at each check (Buis et al.).",
    )
    reposition_days: PositiveFloat | None = Field(
        None,
        description="Every this many sessions, close the dealer's lines and hedge at "
        "model value and open its positions again, strikes scaled to spot and expiries "
        "shifted (Buis et al.'s hedgers take fresh ATM straddles every session).",
    )
    positions: list[Position] = Field(default_factory=list)


class Size(_Strict):
    """Contracts per option trade: 1 + geometric with the given mean (>= 1)."""

    mean: Annotated[float, Field(ge=1)] = 10.0


_SEGMENT_DEFAULTS: dict[str, dict[str, object]] = {
    "retail_call_buyers": {"type": "call", "side": "buy", "moneyness": (0.0, 0.05)},
    "put_hedgers": {"type": "put", "side": "buy", "moneyness": (-0.10, -0.02)},
    "call_overwriters": {"type": "call", "side": "sell", "moneyness": (0.02, 0.08)},
    "put_sellers": {"type": "put", "side": "sell", "moneyness": (-0.08, -0.01)},
    "custom": {},
}


class CustomerSegment(_Strict):
    """Customers trading options with dealers: Poisson arrivals, one segment each.

    A preset ``segment`` fills ``type``, ``side`` and ``moneyness``; any of them may be
    given to override it. Dealers take the other side at the BSM value (+ ``edge``).
    """

    segment: Literal[
        "retail_call_buyers", "put_hedgers", "call_overwriters", "put_sellers", "custom"
    ] = "custom"
    type: Literal["call", "put"] | None = None
    side: Literal["buy", "sell"] | None = Field(None, description="Customer's side.")
    moneyness: tuple[float, float] | None = Field(
        None, description="Strike range as fractions of spot (K/S - 1), uniform."
    )
    rate: NonNegFloat = Field(0.01, description="Trades per second.")
    strike_step: PositiveFloat = Field(1.0, description="Strikes are multiples of this, $.")
    expiry_days: list[PositiveFloat] = Field(
        default_factory=lambda: [21.0], description="Listed expiries, sessions after t=0."
    )
    size: Size = Field(default_factory=Size)
    otc_fraction: Annotated[float, Field(ge=0, le=1)] = Field(
        0.0, description="Probability a trade is OTC (not exchange-visible)."
    )
    edge: NonNegFloat = Field(0.0, description="Dealer's edge over BSM value, $ per share.")
    dealer: Annotated[int, Field(ge=0)] | None = Field(
        None, description="Index of the dealer taking the trades (None = random)."
    )
    multiplier: PositiveFloat = 100.0

    @model_validator(mode="after")
    def _apply_preset(self) -> CustomerSegment:
        preset = _SEGMENT_DEFAULTS[self.segment]
        for key, value in preset.items():
            if getattr(self, key) is None:
                object.__setattr__(self, key, value)
        missing = [k for k in ("type", "side", "moneyness") if getattr(self, k) is None]
        if missing:
            raise ValueError(f"custom segment needs {', '.join(missing)}")
        if len(set(self.expiry_days)) != len(self.expiry_days):
            raise ValueError(f"expiry_days has duplicates: {self.expiry_days}")
        lo, hi = self.moneyness  # type: ignore[misc]
        if lo > hi or lo <= -1.0:
            raise ValueError("moneyness must be (low, high) with -1 < low <= high")
        return self


class PensionOrder(_Strict):
    """A large parent order (rebalancing) worked in child orders.

    Give ``shares`` or ``notional`` ($, converted at the price when the order starts).
    """

    name: str | None = None
    side: Literal["buy", "sell"]
    shares: PositiveFloat | None = Field(None, description="Parent size, shares.")
    notional: PositiveFloat | None = Field(None, description="Parent size, $.")
    start: NonNegFloat = Field(0.0, description="Start time, s after the open.")
    duration: PositiveFloat = Field(description="Seconds over which the parent is worked.")
    schedule: Literal["twap", "front_loaded", "u_shaped"] = "twap"
    child_interval: PositiveFloat = Field(60.0, description="Seconds between child orders.")

    @model_validator(mode="after")
    def _one_size(self) -> PensionOrder:
        if (self.shares is None) == (self.notional is None):
            raise ValueError("give exactly one of shares or notional")
        return self


class ScheduledEvent(_Strict):
    """Something that happens at time ``at`` (s).

    ``vol_shift``: the implied vol surface moves by ``d_atm`` (0.05 = +5 vol points)
    and ``d_skew``. ``gap``: price jumps by the fraction ``gap`` (-0.03 = -3%), no
    trade. ``positions``: new open interest: ``dealer`` takes ``positions`` (dealer's
    view) at BSM value from customers.
    """

    at: NonNegFloat = Field(description="Time of the event, s after the open.")
    kind: Literal["vol_shift", "gap", "positions"]
    d_atm: float = 0.0
    d_skew: float = 0.0
    gap: Annotated[float, Field(gt=-1)] = 0.0
    dealer: Annotated[int, Field(ge=0)] = 0
    positions: list[Position] = Field(default_factory=list)


class EpisodeRules(_Strict):
    """How the episodes recorder finds wall breaks and weighs their causes."""

    threshold: NonNegFloat = Field(0.005, description="Beyond the wall by this fraction.")
    duration: PositiveFloat = Field(300.0, description="Held at least this long, s.")
    lookback: NonNegFloat = Field(1800.0, description="Evidence window before the break, s.")
    flow_ratio: PositiveFloat = Field(1.0, description="Exogenous flow / dealer capacity.")
    otc_support: Annotated[float, Field(lt=1)] = Field(
        0.25, description="True / visible GEX at the wall at or below which OTC offsets it."
    )
    iv_change: PositiveFloat = Field(0.03, description="ATM vol change over the window.")
    melt: Annotated[float, Field(gt=0, le=1)] = Field(
        0.5, description="Share of the wall strike's gamma gone at the break."
    )


class Record(_Strict):
    """What the recorders sample."""

    every: PositiveFloat = Field(10.0, description="Seconds between series samples.")
    levels_every: PositiveFloat = Field(
        300.0, description="Seconds between GEX flip/wall computations (costly)."
    )
    episodes: EpisodeRules = Field(default_factory=EpisodeRules)


class SweepBlock(_Strict):
    """A parameter sweep stored with the scenario (``mmsim sweep`` reads it).

    ``grid``: dotted path -> values, every combination is run. ``zip``: paths whose
    value lists move together (equal lengths), crossed with the grid. ``seeds``: a
    number of replicates (seeds derived from ``seed``) or an explicit list of run seeds.
    """

    grid: dict[str, list[Any]] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)
    seeds: Annotated[int, Field(ge=1)] | list[Annotated[int, Field(ge=0)]] = 4
    seed: Annotated[int, Field(ge=0)] = 0


class EngineConfig(_Strict):
    """How the engine evaluates the book (speed/precision trade-offs; physics unchanged)."""

    delta_table: Literal["auto", "on", "off"] = Field(
        "auto",
        description="A dealer's check reads its option delta from a table in spot (within "
        "3/4 of a share of exact): auto = for books of delta_table_min_lines live lines or "
        "more; off = always exact (bit-identical to exact evaluation).",
    )
    delta_table_min_lines: Annotated[int, Field(ge=1)] = Field(
        64,
        description="Live lines from which auto tabulates a dealer's delta (a table check "
        "costs what ~30 exact lines do, on the simpy agents and in the compiled kernel).",
    )
    fast_path: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Run news, noise and market-order dealers (instant, lagged, scheduled) "
        "in the compiled kernel (bit-identical to off): auto = when the scenario is "
        "supported; on = refuse a scenario it does not support; off = simpy agents.",
    )
    levels_hold: Literal["table", "all", "flips", "off"] = Field(
        "table",
        description="How tabulated books (delta_table) compute the recorded levels. "
        "table = the flips at every levels sample from the book's profile table "
        "(mmsim.profile_table: the crossing the exact one's, interpolated from the "
        "table's values where that is proven within 1% of a grid step, 2.5e-5 x spot, "
        "of the exact interpolation) and the GEX at the visible walls read from it "
        "(within the table's validated eps x wall^2 x 0.01, ~1e-5 of its scale on big "
        "books; books of 256+ lines), else as all. all = the flips recomputed only when "
        "the book (1% of its gross), the surface or spot (1%) moved, an expiry passed, "
        "every 2 h, or the book's profile table cannot prove the held flip in the exact "
        "one's cell of the flip grid, else held (mmsim.levels: within 0.25% of spot, one "
        "grid step), and the GEX re-priced at the visible walls kept up to 30 min while "
        "the book and the walls are unchanged; flips = the flips only; off = recompute "
        "all at every levels sample (exact). The walls are always exact (from a proven "
        "spot x time box on books of 256+ lines: mmsim.wall_hold). Recorded only: no "
        "agent trades on them.",
    )

    @field_validator("delta_table", "fast_path", mode="before")
    @classmethod
    def _yaml_switch(cls, value: Any) -> Any:
        """YAML reads a bare ``on`` / ``off`` as true / false: take them as meant."""
        if isinstance(value, bool):
            return "on" if value else "off"
        return value

    @field_validator("levels_hold", mode="before")
    @classmethod
    def _yaml_hold(cls, value: Any) -> Any:
        """A bare YAML ``off`` (false) means off, ``on`` (true) the default."""
        if isinstance(value, bool):
            return "table" if value else "off"
        return value


class Scenario(_Strict):
    """A complete, validated scenario."""

    name: str = "scenario"
    description: str = ""
    seed: Annotated[int, Field(ge=0)] | None = Field(None, description="Default run seed.")
    clock: Clock = Field(default_factory=Clock)
    market: MarketConfig = Field(default_factory=MarketConfig)
    vol: VolConfig = Field(default_factory=VolConfig)
    news: News | None = Field(default_factory=News)
    noise: Noise | None = None
    dealers: list[Dealer] = Field(default_factory=list)
    book: BookFromChain | None = Field(None, description="Opening book from a real chain.")
    customers: list[CustomerSegment] = Field(default_factory=list)
    pensions: list[PensionOrder] = Field(default_factory=list)
    events: list[ScheduledEvent] = Field(default_factory=list)
    record: Record = Field(default_factory=Record)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    sweep: SweepBlock | None = Field(None, description="Default sweep for `mmsim sweep`.")

    @model_validator(mode="after")
    def _cross_checks(self) -> Scenario:
        accounts = {n: "an internal account" for n in RESERVED_ACCOUNTS}
        for i, c in enumerate(self.customers):
            accounts[f"{c.segment}{i}"] = f"customers[{i}]"
        for kind, names in (
            ("pensions", [p.name or f"pension{i}" for i, p in enumerate(self.pensions)]),
            ("dealers", self.dealer_names()),
        ):
            for i, name in enumerate(names):
                if not name.strip():
                    raise ValueError(f"{kind}[{i}].name: must not be empty")
                if name in accounts:
                    raise ValueError(f"{kind}[{i}].name: {name!r} is already {accounts[name]}")
                accounts[name] = f"the name of {kind}[{i}]"
        if self.book is not None:
            bad = [d for d in self.book.dealers if d >= len(self.dealers)]
            if bad:
                raise ValueError(f"book.dealers {bad} but only {len(self.dealers)} dealers")
        for i, c in enumerate(self.customers):
            if c.dealer is not None and c.dealer >= len(self.dealers):
                raise ValueError(
                    f"customers[{i}].dealer = {c.dealer} but only {len(self.dealers)} dealers"
                )
            if c.rate > 0 and not self.dealers:
                raise ValueError(f"customers[{i}] trade options but there is no dealer")
        end = self.clock.duration
        for i, p in enumerate(self.pensions):
            if p.start + p.duration > end:
                raise ValueError(
                    f"pensions[{i}] runs to {p.start + p.duration:g} s, after the run ends "
                    f"at {end:g} s"
                )
        for i, e in enumerate(self.events):
            if e.at > end:
                raise ValueError(f"events[{i}].at = {e.at:g} s is after the run ends at {end:g} s")
            if e.kind == "positions" and e.dealer >= len(self.dealers):
                raise ValueError(
                    f"events[{i}].dealer = {e.dealer} but only {len(self.dealers)} dealers"
                )
            for j, p in enumerate(e.positions):
                if p.expiry_days * self.clock.session_seconds <= e.at:
                    raise ValueError(f"events[{i}].positions[{j}] expires before the event")
        if self.engine.fast_path == "on":
            from mmsim.hotloop import unsupported  # numba kernels: import on demand

            if (why := unsupported(self)) is not None:
                raise ValueError(f"engine.fast_path is on but {why}")
        return self

    def dealer_names(self) -> list[str]:
        """Dealer labels, ``dealer<i>`` where a name is not given."""
        return [d.name or f"dealer{i}" for i, d in enumerate(self.dealers)]

    def expiry_days(self) -> list[float]:
        """Expiries (sessions from t = 0) of every line the scenario names: the dealers'
        positions, the customers' expiries, the events' positions (not a chain's)."""
        days = [p.expiry_days for d in self.dealers for p in d.positions]
        days += [x for c in self.customers for x in c.expiry_days]
        return days + [p.expiry_days for e in self.events for p in e.positions]
