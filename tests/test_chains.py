"""Real option chains: the CBOE reader, the acceptance figures on the shipped SPX file,
positioning models, book building, and a short run from the chain."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmsim
from mmsim.book import OptionBook
from mmsim.chains import (
    ChainError,
    book_from_chain,
    chain_lines,
    expiry_sessions,
    read_cboe,
)
from mmsim.cli import main
from mmsim.episodes import _Evidence
from mmsim.gexchain import chain_levels, tools_profile
from mmsim.greeks import bsm_greeks
from mmsim.vol import VolSurface

ROOT = Path(__file__).resolve().parents[1]
SPX = ROOT / "scenarios/chains/spx_quotedata_2022-02-04.csv"
SCENARIO = ROOT / "scenarios/spx_2022-02-07.yaml"
HEADER = (
    "Expiration Date,Calls,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest,Strike,"
    "Puts,Last Sale,Net,Bid,Ask,Volume,IV,Delta,Gamma,Open Interest"
)


def _row(expiry, strike, c_oi, p_oi, c_iv="0.2", p_iv="0.2", c_bid="1", p_bid="1"):
    c = f"SPXW220207C,1,0,{c_bid},2,0,{c_iv},0.5,0.001,{c_oi}"
    p = f"SPXW220207P,1,0,{p_bid},2,0,{p_iv},-0.5,0.001,{p_oi}"
    return f"{expiry},{c},{strike},{p}"


def _write(tmp_path: Path, date_line: str, rows: list[str], spot='"Last: 4,500.50"') -> Path:
    path = tmp_path / "chain.csv"
    text = ["", f"S&P 500 INDEX,{spot},Change: 1", f"{date_line},Bid: 0,Ask: 0", HEADER, *rows]
    path.write_text("\n".join(text) + "\n")
    return path


# -- the reader ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "date_line, expect",
    [
        ('"Date: February 5 2022, 8:09 PM EST"', datetime(2022, 2, 5, 20, 9)),
        ('"Date: January 6, 2025 at 9:30 PM EST"', datetime(2025, 1, 6, 21, 30)),
        ('"Date: March 3, 2025 at 9:05 AM EST"', datetime(2025, 3, 3, 9, 5)),
    ],
)
def test_reader_both_date_forms_quoted_thousands_missing_iv(tmp_path, date_line, expect):
    rows = [
        _row("Mon Feb 07 2022", '"4,500.00"', '"1,234"', "0", c_iv=""),
        _row("Fri Feb 18 2022", "4600.00", "0", "10"),
    ]
    chain = read_cboe(_write(tmp_path, date_line, rows))
    assert chain.asof == expect
    assert chain.spot == pytest.approx(4500.50), "quoted spot with a thousands separator"
    t = chain.table
    assert len(t) == 4, "one line per (row, type)"
    call = t[(t["type"] == "call") & (t["strike"] == 4500.0)].iloc[0]
    assert call["open_interest"] == 1234.0 and np.isnan(call["iv"]), "quoted OI; empty IV=NaN"
    assert set(t["root"]) == {"SPXW"}


@pytest.mark.parametrize(
    "bad_row, line, column",
    [
        (_row("Mon Feb 07 2022", "abc", "1", "1"), 6, "Strike"),
        (_row("Mon Feb 07 2022", "4500", "x1", "1"), 6, "Calls Open Interest"),
        (_row("Feb 7th", "4500", "1", "1"), 6, "Expiration Date"),
        (_row("Mon Feb 07 2022", "4500", "1", "1", p_iv="?"), 6, "Puts IV"),
        ("Mon Feb 07 2022,1,2,3", 6, None),
        (_row("Mon Feb 07 2022", "4500", "1", "1") + ",extra", 6, None),
    ],
)
def test_malformed_rows_name_file_line_and_column(tmp_path, bad_row, line, column):
    good = _row("Mon Feb 07 2022", "4400", "1", "1")
    path = _write(tmp_path, '"Date: February 5 2022, 8:09 PM EST"', [good, bad_row])
    with pytest.raises(ChainError) as err:
        read_cboe(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}:{line}:"), msg
    if column is not None:
        assert column in msg, msg


def test_malformed_header_and_date_line(tmp_path):
    path = _write(tmp_path, '"Date: sometime"', [_row("Mon Feb 07 2022", "4400", "1", "1")])
    with pytest.raises(ChainError, match=r":3: no 'Date:"):
        read_cboe(path)
    text = path.read_text().replace('"Date: sometime"', '"Date: February 5 2022, 8:09 PM EST"')
    path.write_text(text.replace("Open Interest,Strike", "OI,Strike", 1))
    with pytest.raises(ChainError, match=":4: OI: header"):
        read_cboe(path)


def test_cli_bad_chain_is_one_line_exit_2(tmp_path, capsys):
    path = _write(tmp_path, '"Date: February 5 2022, 8:09 PM EST"', ["Mon Feb 07 2022,1"])
    assert main(["gex", "--chain", str(path), "--no-plot"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{path}:5" in err, err
    assert main(["gex", "--chain", str(tmp_path / "missing.csv")]) == 2
    garbage = tmp_path / "garbage.csv"
    garbage.write_bytes(bytes(range(256)) * 8)
    assert main(["gex", "--chain", str(garbage), "--no-plot"]) == 2
    assert main(["gex", "--chain", str(tmp_path), "--no-plot"]) == 2, "a directory"
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(x.startswith("mmsim: error: ") for x in lines), lines


def test_shipped_file_reads_spx_and_spxw():
    chain = read_cboe(SPX)
    assert chain.spot == pytest.approx(4500.5298)
    assert chain.asof == datetime(2022, 2, 5, 20, 9)
    assert len(chain.table) == 2 * 10_257
    assert set(chain.table["root"]) == {"SPX", "SPXW"}
    assert chain.table["expiry"].nunique() == 40


# -- time ---------------------------------------------------------------------------------
def test_time_conventions_weekend_snapshot():
    asof = datetime(2022, 2, 5, 20, 9)  # Saturday
    days = ["2022-02-07", "2022-02-09", "2022-02-18"]
    assert expiry_sessions(days, asof, "trading").tolist() == [1.0, 3.0, 10.0], (
        "t=0 Monday open: Monday's close is 1 session, Wednesday's 3, the monthly 10"
    )
    assert expiry_sessions(days, asof, "tools").tolist() == [0.0, 2.0, 9.0], (
        "busday_count from the snapshot date (the public scripts)"
    )
    intraday = datetime(2022, 2, 7, 11, 0)  # during Monday's session: t=0 is Tuesday
    assert expiry_sessions(["2022-02-08"], intraday).tolist() == [1.0]
    assert expiry_sessions(["2022-02-07"], datetime(2022, 2, 7, 8, 0)).tolist() == [1.0]


# -- acceptance figures on the shipped file ------------------------------------------------
@pytest.fixture(scope="module")
def levels():
    return chain_levels(read_cboe(SPX), points=61)


def test_acceptance_chain_gamma_total_and_walls(levels):
    total = levels.totals["chain gamma"] / 1e9
    assert total == pytest.approx(-19.16, rel=0.005), "chain Gamma total within 0.5%"
    assert levels.walls["chain gamma"] == (4600.0, 4500.0), "walls from chain Gamma"


def test_acceptance_tools_convention(levels):
    total = levels.totals["tools"] / 1e9
    assert total == pytest.approx(-18.4, rel=0.02), "quoted IV, bd/262: -18.4 within 2%"
    zeros = levels.zeros["tools"]
    assert len(zeros) == 1 and zeros[0] == pytest.approx(4595, rel=0.003), zeros
    assert levels.walls["tools"] == (4700.0, 4500.0), "IV walls (README reference)"


def test_mmsim_book_levels_sane(levels):
    """mmsim's own figure (trading time, smile) is short gamma at spot with one flip above."""
    total = levels.totals["mmsim"] / 1e9
    assert -20.0 < total < -15.0, total
    assert len(levels.zeros["mmsim"]) == 1 and 4540 < levels.zeros["mmsim"][0] < 4620


def test_tools_profile_equals_closed_form_on_a_tiny_table():
    """The tools' reference = OI x 100 x S^2 x 0.01 x BSM gamma(T = bd/262), naive signs."""
    asof = datetime(2022, 2, 4, 20, 0)  # Friday evening: Wed is 3 business days away
    df = pd.DataFrame(
        {
            "expiry": ["2022-02-09", "2022-02-09"],
            "strike": [100.0, 95.0],
            "type": ["call", "put"],
            "open_interest": [10.0, 30.0],
            "iv": [0.2, 0.3],
        }
    )
    S, T = 101.0, 3 / 262
    g = bsm_greeks(S, np.array([100.0, 95.0]), T, np.array([0.2, 0.3])).gamma
    want = (10 * g[0] - 30 * g[1]) * 100 * S * S * 0.01
    assert tools_profile(df, asof, [S])[0] == pytest.approx(want, rel=1e-12)


# -- positioning and book building ---------------------------------------------------------
def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "expiry": ["2024-03-15"] * 4 + ["2024-03-22"] * 2,
            "strike": [90.0, 100.0, 100.0, 110.0, 100.0, 100.0],
            "type": ["put", "put", "call", "call", "C", "P"],
            "open_interest": [100.0, 50.0, 70.0, 30.0, 20.0, 0.0],
            "iv": [0.30, 0.22, 0.21, 0.18, np.nan, 0.25],
        }
    )


ASOF = datetime(2024, 3, 8, 17, 0)  # Friday after the close; t=0 Monday 11th


@pytest.mark.parametrize(
    "positioning, fractions, want",
    [
        ("naive", (), {"call": 1.0, "put": -1.0}),
        ("customer_long", (), {"call": -1.0, "put": -1.0}),
        (
            "fractions",
            [
                {"type": "put", "moneyness": (-1.0, 0.0), "share": -0.5},
                {"type": "call", "moneyness": (0.0, 1.0), "share": 0.25},
            ],
            None,
        ),
    ],
)
def test_positioning_signs_and_conservation(positioning, fractions, want):
    lines = chain_lines(_table(), spot=100.0, asof=ASOF, positioning=positioning,
                        fractions=fractions, scale=2.0)  # fmt: skip
    assert len(lines) == 5, "the zero-OI put is dropped, C/P accepted"
    oi, qty = lines["open_interest"].to_numpy(), lines["qty"].to_numpy()
    if want is not None:
        share = lines["type"].map(want).to_numpy()
        np.testing.assert_array_equal(qty, 2.0 * share * oi)
        assert np.abs(qty).sum() == 2.0 * oi.sum(), "contracts in x scale = contracts held"
    else:
        m = lines["strike"] / 100.0 - 1
        puts_below = (lines["type"] == "put") & (m < 0)
        calls_above = (lines["type"] == "call") & (m >= 0)
        np.testing.assert_allclose(qty[puts_below.to_numpy()], -1.0 * oi[puts_below.to_numpy()])
        np.testing.assert_allclose(qty[calls_above.to_numpy()], 0.5 * oi[calls_above.to_numpy()])
        assert qty[~(puts_below | calls_above).to_numpy()].tolist() == [0.0], "no bucket: 0"


def test_book_reproduces_each_line_iv_and_conserves_contracts():
    cb = book_from_chain(_table(), spot=100.0, asof=ASOF)
    book, lines = cb.book, cb.lines
    assert np.abs(book.qty).sum() == lines["open_interest"].sum(), "contracts conserved"
    sigma = np.maximum(cb.vol.iv(book.strike, 100.0) + book.iv_offset, cb.vol.floor)
    np.testing.assert_allclose(sigma, lines["iv"].to_numpy(), rtol=0, atol=1e-12)
    # the missing call IV at (03-22, 100) comes from the same strike's put (only usable side)
    assert lines.loc[(lines["expiry"] == "2024-03-22"), "iv"].iloc[0] == pytest.approx(0.25)
    # GEX at spot equals the hand sum over lines with each line's IV
    T = lines["sessions"].to_numpy() / 252
    g = bsm_greeks(100.0, lines["strike"], T, lines["iv"], call=lines["is_call"]).gamma
    want = float((lines["qty"].to_numpy() * 100 * g).sum()) * 100.0**2 * 0.01
    assert cb.gex() == pytest.approx(want, rel=1e-10)
    # a vol shift moves every line by the same points: GEX = the hand sum at iv + 0.05
    cb.vol.apply_shift(0.05)
    g = bsm_greeks(100.0, lines["strike"], T, lines["iv"] + 0.05, call=lines["is_call"]).gamma
    shifted = float((lines["qty"].to_numpy() * 100 * g).sum()) * 100.0**2 * 0.01
    assert cb.gex() == pytest.approx(shifted, rel=1e-10) and shifted != pytest.approx(want)


def test_add_many_equals_repeated_add():
    rng = np.random.default_rng(3)
    n = 200
    K = rng.choice([90.0, 95.0, 100.0, 105.0], n)
    E = rng.choice([100.0, 5000.0], n)
    C = rng.random(n) < 0.5
    Q = rng.integers(-5, 6, n).astype(float)
    H = rng.integers(0, 2, n)
    off = np.round(rng.normal(0, 0.02, n), 3)
    a, b = OptionBook(2), OptionBook(2)
    a.add(95.0, 100.0, True, 1.0, 0, iv_offset=0.5)  # an existing line keeps its offset
    b.add(95.0, 100.0, True, 1.0, 0, iv_offset=0.5)
    for i in range(n):
        a.add(K[i], E[i], C[i], Q[i], int(H[i]), iv_offset=off[i])
    b.add_many(K, E, C, Q, H, True, 100.0, off)
    pd.testing.assert_frame_equal(a.lines(), b.lines())
    np.testing.assert_array_equal(a.iv_offset, b.iv_offset)
    vol = VolSurface(0.2)
    assert a.gex_at(100.0, 0.0, vol) == b.gex_at(100.0, 0.0, vol)


# -- the scenario --------------------------------------------------------------------------
def test_scenario_loads_chain_relative_and_takes_s0_from_it():
    sc = mmsim.load_scenario(SCENARIO)
    assert Path(sc.book.chain).is_file() and Path(sc.book.chain).is_absolute()
    assert sc.market.S0 == pytest.approx(4500.5298), "S0 from the chain's spot"
    atm = mmsim.chains.atm_iv(read_cboe(SPX))
    assert sc.vol.atm == pytest.approx(atm, abs=0.005), "vol.atm = the chain's ATM IV"
    assert sc.news.vol == pytest.approx(atm, abs=0.005), "news vol = the chain's ATM IV"


def test_scenario_missing_chain_is_a_scenario_error(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("book: {chain: nowhere.csv}\ndealers: [{}]\n")
    with pytest.raises(mmsim.ScenarioError, match=r"book\.chain: no such chain file"):
        mmsim.load_scenario(bad)
    broken = tmp_path / "broken.csv"
    broken.write_text("\nX,Last: 100\n")
    bad.write_text(f"book: {{chain: {broken.name}}}\nmarket: {{S0: 100}}\ndealers: [{{}}]\n")
    assert main(["validate", str(bad)]) == 2, "a malformed chain fails validate, exit 2"


SHORT = {  # an hour of the SPX scenario on a 3-session, +-3% book
    "clock.days": 1.0 / 6.5,
    "pensions": [],
    "customers": [],
    "book.expiries_within": 3,
    "book.moneyness": [-0.03, 0.03],
    "dealers.0.band": 300000,
    "record.levels_every": 600,
}


def test_short_run_from_the_chain():
    """An hour of the SPX scenario on a 3-session, +-3% book: completes, sane levels, the
    opening premium is paid (dealer P&L starts at 0), contracts in = contracts held."""
    sim = mmsim.engine.Simulation(mmsim.load_scenario(SCENARIO, overrides=SHORT), seed=2)
    held = np.abs(sim.book.qty).sum()
    assert held == sim.chain_lines["open_interest"].sum()
    r = sim.run()
    s = r.series
    assert np.isfinite(s["price"]).all() and abs(s["price"].iloc[-1] / 4500.53 - 1) < 0.05
    assert s["dealer_gamma"].iloc[0] < 0, "naive SPX book: dealers short gamma at spot"
    cb = book_from_chain(read_cboe(SPX), expiries_within=3, moneyness=(-0.03, 0.03))
    assert s["gex_true"].iloc[0] == pytest.approx(cb.gex(), rel=1e-9), "engine book = chain book"
    assert (s["call_wall"].iloc[0], s["put_wall"].iloc[0]) == cb.walls()
    assert 4400 < s["flip_true"].iloc[0] < 4700, "flip near the chain's zero gamma"
    assert s["street.pnl"].iloc[0] == pytest.approx(
        0.0, abs=1e-3 * abs(r.metrics["hedge_cost"]) + 1
    )


def test_episode_evidence_holds_the_chain_expiries(monkeypatch):
    """The expiration melt's evidence asks for an expiry near a break; a book opened from
    a chain has expiries no list of the scenario holds (the 0DTE lines settle at the
    first close, 23,400 s), which the evidence used not to know: the run hands them on."""
    handed: list = []
    real = mmsim.assemble.detect_episodes

    def spy(series, trades, sc, chain_days=(), opening=None):
        handed.append(sorted(chain_days))
        return real(series, trades, sc, chain_days, opening)

    monkeypatch.setattr(mmsim.assemble, "detect_episodes", spy)
    sc = mmsim.load_scenario(SCENARIO, overrides=SHORT)
    sim = mmsim.engine.Simulation(sc, seed=2)
    r = sim.run()
    assert handed == [sorted(sim.chain_lines["sessions"].unique())]
    assert 23_400.0 in _Evidence(r.series, r.trades, sc, handed[0]).expiries
    assert 23_400.0 not in _Evidence(r.series, r.trades, sc).expiries, "the lists alone"
