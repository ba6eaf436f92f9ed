"""The feedback theory of DESIGN.md, reproduced by the engine.

Set-up shared by every test: linear impact ``lam`` ($/share), a news diffusion as the
only exogenous source, and one dealer holding one-year ATM calls, whose share gamma
``G`` barely moves over a fraction of a day, so ``kappa = lam * G`` is nearly constant.
Runs with and without the dealer use the same seed, hence the same news draws, so the
ratios below compare the same shocks and carry little sampling noise.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmsim import InstabilityError
from mmsim.engine import Simulation
from mmsim.metrics import autocorrelation
from mmsim.scenario import load_scenario

LAM = 1.0e-4  # $ per share
GAMMA_PER_CONTRACT = 100 * 0.0199  # shares per $1: one-year ATM call, 20% vol, S=100


def scenario(
    qty: float,
    *,
    trigger="price",
    band=0.0,
    days=0.25,
    every=60.0,
    news_phase=0.0,
    fraction=1.0,
    latency=0.0,
):
    """One dealer long ``qty`` one-year ATM calls (short if negative); news only."""
    dealers = (
        []
        if qty == 0
        else [
            {
                "band": band,
                "trigger": trigger,
                "hedge_fraction": fraction,
                "latency": latency,
                "positions": [{"type": "call", "strike": 100.0, "expiry_days": 252, "qty": qty}],
            }
        ]
    )
    return load_scenario(
        {
            "clock": {"days": days},
            "market": {"S0": 100.0, "impact": {"lam": LAM}},
            "vol": {"atm": 0.20},
            "news": {"vol": 0.16, "dt": 1.0, "phase": news_phase},
            "record": {"every": every, "levels_every": 1.0e9},
            "dealers": dealers,
        }
    )


def contracts_for(kappa: float) -> float:
    return kappa / (LAM * GAMMA_PER_CONTRACT)


def run(qty: float, seed: int = 1, **kw):
    sim = Simulation(scenario(qty, **kw), seed)
    kappa = LAM * sim.initial_share_gamma()
    return sim.run(), kappa


@pytest.fixture(scope="module")
def no_dealer():
    return run(0)[0]


@pytest.mark.parametrize("kappa", [0.5, 0.2, -0.2, -0.5, -0.7])
def test_instant_hedging_scales_vol_by_one_over_one_plus_lam_g(no_dealer, kappa):
    """Zero band, instant hedging: realized vol (60 s returns, horizon >> the 1 s news
    tick) over the no-dealer vol is 1 / (1 + lam * G), dampened when long gamma and
    amplified when short."""
    result, measured_kappa = run(contracts_for(kappa))
    ratio = result.metrics["realized_vol"] / no_dealer.metrics["realized_vol"]
    expected = 1.0 / (1.0 + measured_kappa)
    # Same shocks in both runs, so the only departures are G drifting with spot and the
    # one-share rounding of hedges: 2% when |kappa| <= 0.5, 5% at -0.7 where spot, and
    # so G, wander most.
    tol = 0.02 if abs(kappa) <= 0.5 else 0.05
    assert ratio == pytest.approx(expected, rel=tol)
    assert (ratio < 1.0) == (kappa > 0.0)


@pytest.mark.parametrize("kappa", [-1.05, -1.5])
def test_feedback_at_or_beyond_minus_one_diverges_with_a_clear_error(kappa):
    """lam * G <= -1: each hedge moves price more than the move it answers; the engine
    stops with InstabilityError naming lam * G instead of returning NaN."""
    with pytest.raises(InstabilityError, match=r"lam \* G at start = -1\.\d"):
        run(contracts_for(kappa))


@pytest.mark.parametrize("kappa", [0.5, -0.5])
def test_lagged_hedging_gives_ar1_returns(kappa):
    """A dealer checking every 1 s hedges the previous second's move, so 1 s returns
    follow r_t = e_t - kappa r_(t-1): lag-1 autocorrelation -kappa (reversal when long
    gamma, momentum when short), one-step vol 1/sqrt(1 - kappa^2) for either sign, and
    vol over 120 s horizons tending to 1/|1 + kappa|.

    Returns are sampled at the dealer's check times (before it trades); news ticks
    fall half-way between checks (``news.phase = 0.5``).
    """
    kw = {"trigger": "schedule", "days": 0.5, "every": 1.0, "news_phase": 0.5}
    result, k = run(contracts_for(kappa), seed=3, **kw)
    base, _ = run(0, seed=3, **kw)
    p, b = result.series["price"].to_numpy(), base.series["price"].to_numpy()
    r, rb = np.diff(p), np.diff(b)
    # 11,700 returns: the autocorrelation's standard error is ~1/sqrt(n) = 0.009;
    # allow 4 standard errors.
    assert autocorrelation(r, 1) == pytest.approx(-k, abs=0.04)
    assert np.sign(autocorrelation(r, 1)) == -np.sign(k)
    # Same shocks in both runs: one-step ratio within 2% of theory.
    assert np.std(r) / np.std(rb) == pytest.approx(1.0 / np.sqrt(1.0 - k * k), rel=0.02)
    # 120 s returns (97 of them): the long-horizon ratio within 5% (G drifts, and the
    # AR(1) tail of each 120 s window is not yet fully summed).
    long_ratio = np.std(np.diff(p[::120])) / np.std(np.diff(b[::120]))
    assert long_ratio == pytest.approx(1.0 / abs(1.0 + k), rel=0.05)


def test_wider_band_moves_short_gamma_vol_back_toward_no_dealer_level(no_dealer):
    """Short gamma (kappa = -0.5): as the band widens from 0 to 300 to 3,000 shares the
    dealer answers fewer moves and realized vol falls back toward the news vol (60 s
    returns). Long gamma does not do this at short horizons: see the next test."""
    qty = contracts_for(-0.5)
    vols = [run(qty, band=band)[0].metrics["realized_vol"] for band in (0.0, 300.0, 3000.0)]
    base = no_dealer.metrics["realized_vol"]
    gaps = [abs(v - base) for v in vols]
    assert gaps[0] > gaps[1] > gaps[2]
    assert vols[0] > base  # short gamma amplifies at every band width tested


def test_a_band_makes_long_gamma_vol_rise_through_one_at_short_horizons():
    """Long gamma (kappa = +0.5), 1 session, 3 seeds, same news shocks in every arm.

    With a band each rehedge is a block trade of about ``band`` shares that moves price
    ``lam x band`` at once, half the move that triggered it. Measured on 10 s returns,
    far shorter than the time between rehedges (~80 s at 300 shares, ~20 min at 1,200),
    those jumps add variance: vol rises from 1 / (1 + kappa) = 0.67 at band 0 through
    ~0.93 (band 300) to above the no-dealer level (~1.07 at band 1,200), and is exactly
    the no-dealer vol once the band is never reached. Measured on 30 min returns, the
    permanent impact still leans against every move: ~1 / (1 + kappa) at every band."""
    from mmsim.metrics import realized_vol

    year = 252 * 23_400.0
    short, long = {300.0: [], 1200.0: [], 1e12: []}, {1200.0: []}
    for seed in (1, 2, 3):
        base = run(0, seed=seed, every=10.0, days=1.0)[0].series["price"].to_numpy()
        for band in short:
            result, k = run(contracts_for(0.5), seed=seed, band=band, every=10.0, days=1.0)
            p = result.series["price"].to_numpy()
            short[band].append(realized_vol(p, 10.0, year) / realized_vol(base, 10.0, year))
            if band in long:  # 30 min = 180 samples of 10 s
                long[band].append(
                    realized_vol(p, 10.0, year, 180) / realized_vol(base, 10.0, year, 180)
                )
    mean = {band: float(np.mean(v)) for band, v in short.items()}
    assert 0.85 < mean[300.0] < 1.0, mean  # 10 s returns: from 0.67 toward 1
    assert mean[1200.0] > 1.02, mean  # through 1: above the no-dealer vol
    assert all(a < b for a, b in zip(short[300.0], short[1200.0], strict=True)), short
    assert mean[1e12] == 1.0  # never rehedges: the same path as no dealer
    # 30 min returns, 13 a session: 10% of 1 / (1 + kappa) for the 3-seed mean
    assert float(np.mean(long[1200.0])) == pytest.approx(1.0 / (1.0 + k), rel=0.10), long


@pytest.mark.parametrize("kappa", [1.5, 4.0])
@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_strong_long_gamma_settles_on_the_theory_fixed_point(no_dealer, kappa, fraction):
    """kappa > 1, long gamma: naively rehedging the excess would over-correct the dealer's
    own impact in growing swings (factor 1 - f (1 + kappa) a round, below -1). The dealer
    solves for the hedge whose post-impact delta lands on its goal (a bracketing solve,
    monotone in the hedge size), so whole or partial rehedging both settle on theory's
    1 / (1 + kappa): long gamma always dampens."""
    result, k = run(contracts_for(kappa), fraction=fraction)
    ratio = result.metrics["realized_vol"] / no_dealer.metrics["realized_vol"]
    assert ratio == pytest.approx(1.0 / (1.0 + k), rel=0.03)  # same shocks; G drift, rounding


def test_lagged_long_gamma_beyond_one_runs_away_with_a_clear_error():
    """A dealer answering each price change 1 s late (its own fills included) hedges the
    previous move: at kappa = +2.4 every hedge over-corrects the last by more than the
    move itself and the swings grow. The engine stops and says so, naming long gamma.
    (On a fixed schedule the same book settles into a wide bounded cycle instead: far
    from the strike gamma falls and kappa drops below 1.)"""
    with pytest.raises(InstabilityError, match="long gamma over-correcting") as err:
        run(contracts_for(2.4), days=0.05, every=1.0, latency=1.0)
    assert "lam * G at start = 2." in str(err.value)


def test_the_result_reports_the_starting_feedback_lam_g():
    """``metrics["lam_g_start"]`` is lam x the dealers' share gamma at S0 and t = 0:
    2,000 one-year ATM calls at 20% vol, gamma 0.019848 per share (BSM), lam 1e-4."""
    from mmsim.greeks import bsm_greeks

    gamma = float(bsm_greeks(100.0, 100.0, 1.0, 0.20).gamma)
    result, kappa = run(2_000, days=0.01)
    assert result.metrics["share_gamma_start"] == pytest.approx(2_000 * 100 * gamma, rel=1e-12)
    assert result.metrics["lam_g_start"] == pytest.approx(LAM * 2_000 * 100 * gamma, rel=1e-12)
    assert result.metrics["lam_g_start"] == kappa
