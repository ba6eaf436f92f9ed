"""Scenario loading: YAML files, mappings, overrides, round trips and one-line errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmsim import schema
from mmsim.errors import ScenarioError
from mmsim.scenario import (
    dump_scenario_yaml,
    load_scenario,
    parse_override,
    scenario_json_schema,
    scenario_to_dict,
)
from mmsim.schema import Scenario

MINIMAL = "name: tiny\n"

FULL = """\
name: full
description: every block
seed: 3
clock: {days: 2, session_seconds: 3600}
market:
  S0: 450.0
  impact:
    model: linear
    lam: 1e-4
  transient: {fraction: 0.5, half_life: 30}
  half_spread: 0.01
vol: {atm: 0.18, skew: -0.25}
news: {vol: 0.14, dt: 1.0}
noise: {rate: 0.2, mean_size: 200}
dealers:
  - name: tight
    band: 500
    positions:
      - {type: call, strike: 460, expiry_days: 21, qty: 1500}
      - {type: put, strike: 440, expiry_days: 21, qty: -1000, visible: false}
  - name: wide
    band: 0.02
    band_unit: delta_per_contract
    trigger: schedule
    interval: 60
customers:
  - segment: put_hedgers
    rate: 0.005
    expiry_days: [5, 21]
    size: {mean: 50}
    otc_fraction: 0.3
    dealer: 1
record: {every: 5, levels_every: 60}
"""


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(source, **kw) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(source, **kw)
    err = info.value
    assert "\n" not in str(err), str(err)
    return err


# --- valid input ------------------------------------------------------------------------


def test_minimal_file_fills_defaults(tmp_path):
    s = load_scenario(write(tmp_path, MINIMAL))
    assert s.name == "tiny"
    assert s.clock.session_seconds == 23_400.0 and s.clock.days == 1.0
    assert s.market.impact.model == "linear" and s.market.impact.lam == 1e-5
    assert s.news is not None and s.noise is None
    assert s.dealers == [] and s.customers == []
    assert s == load_scenario({"name": "tiny"})


def test_file_without_name_is_named_after_it(tmp_path):
    assert load_scenario(write(tmp_path, "seed: 1\n", "pin_day.yaml")).name == "pin_day"
    assert load_scenario({"seed": 1}).name == "scenario"


def test_full_file(tmp_path):
    s = load_scenario(str(write(tmp_path, FULL)))
    assert s.market.impact.lam == pytest.approx(1e-4)  # PyYAML alone would give "1e-4"
    assert s.clock.duration == 7200.0
    assert [d.name for d in s.dealers] == ["tight", "wide"]
    assert s.dealers[0].positions[1].visible is False
    assert s.dealers[1].band_unit == "delta_per_contract"
    assert s.customers[0].expiry_days == [5.0, 21.0]


def test_preset_segment_fills_type_side_moneyness():
    s = load_scenario({"dealers": [{}], "customers": [{"segment": "retail_call_buyers"}]})
    c = s.customers[0]
    assert (c.type, c.side, c.moneyness) == ("call", "buy", (0.0, 0.05))
    c = load_scenario({"dealers": [{}], "customers": [{"segment": "put_hedgers", "side": "sell"}]})
    assert (c.customers[0].type, c.customers[0].side) == ("put", "sell")


def test_scenario_passed_in_is_returned_equal():
    s = load_scenario({"dealers": [{"band": 10}], "noise": {"rate": 1}})
    before = s.model_dump()
    again = load_scenario(s)
    assert again == s
    changed = load_scenario(s, overrides={"dealers.0.band": 20})
    assert changed.dealers[0].band == 20 and changed.noise.rate == 1
    assert s.model_dump() == before


def test_mapping_is_never_mutated():
    data = {"customers": [{"segment": "put_hedgers", "moneyness": (-0.1, 0.0)}], "dealers": [{}]}
    frozen = copy.deepcopy(data)
    load_scenario(data, overrides=["dealers.0.band=5", "noise.rate=1", "market.S0=50"])
    assert data == frozen
    value = [{"band": 1}]
    s = load_scenario(data, overrides={"dealers": value, "dealers.0.band": 2})
    assert s.dealers[0].band == 2 and value == [{"band": 1}] and data == frozen


def test_round_trips(tmp_path):
    s = load_scenario(write(tmp_path, FULL))
    d = scenario_to_dict(s)
    assert json.loads(json.dumps(d)) == d
    assert load_scenario(d) == s
    text = dump_scenario_yaml(s)
    assert load_scenario(write(tmp_path, text, "again.yaml")) == s
    assert text.startswith("name: full\n")  # schema order, not sorted
    odd = load_scenario({"name": "1e-4", "description": "2E6"})
    assert load_scenario(write(tmp_path, dump_scenario_yaml(odd), "odd.yaml")) == odd


def test_json_schema():
    js = scenario_json_schema()
    assert {"dealers", "market", "customers"} <= set(js["properties"])
    json.dumps(js)


# --- bad files --------------------------------------------------------------------------


def test_missing_file(tmp_path):
    err = error_of(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(err) and "no such file" in str(err)


def test_directory(tmp_path):
    assert "is a directory" in str(error_of(tmp_path))


def test_unreadable(tmp_path, monkeypatch):
    def denied(path, limit):
        raise PermissionError(13, "Permission denied", str(path))

    path = write(tmp_path, MINIMAL)
    monkeypatch.setattr("mmsim.scenario.read_regular", denied)
    err = error_of(path)
    assert str(err) == f"{path}: cannot read: Permission denied"


def test_undecodable(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"name: a\nseed: 1\ndescription: \xff\xfe\n")
    err = error_of(path)
    assert err.line == 3 and "UTF-8" in str(err)


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("name: a\nclock:\n  days: 1\n   session_seconds: 5\n", 4, "malformed YAML"),
        ("name: a\ndealers: [{band: 1}\nseed: 2\n", 3, "malformed YAML"),
        ("name: a\n---\nname: b\n", 2, "single document"),
        ("name: a\nseed: \x01\n", 2, "unacceptable character"),
        ("name: !!python/object:os.system x\n", 1, "malformed YAML"),
    ],
)
def test_malformed_yaml(tmp_path, text, line, what):
    err = error_of(write(tmp_path, text, "bad.yaml"))
    assert str(err).startswith(f"{tmp_path / 'bad.yaml'}:{line}: ")
    assert what in str(err)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path, text):
    assert "empty" in str(error_of(write(tmp_path, text)))


def test_top_level_not_a_mapping(tmp_path):
    err = error_of(write(tmp_path, "\n- a\n- b\n"))
    assert err.line == 2 and "mapping" in str(err) and "['a', 'b']" in str(err)
    assert "mapping" in str(error_of(["a"]))  # type: ignore[arg-type]


def test_duplicate_key(tmp_path):
    err = error_of(write(tmp_path, "dealers:\n  - band: 1\n    band: 2\n"))
    assert err.line == 3 and "duplicate key 'band'" in str(err)


BAD = """\
name: bad
dealers:
  - name: a
    band: 100
    positions:
      - type: call
        strike: 100
        expiry_days: 5
        qty: 10
  - name: b
customers:
  - segment: retail_call_buyers
    expiry_days: [5, 21]
    size: {mean: 5}
"""


def with_line(text: str, line: int, new: str) -> str:
    lines = text.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("line", "new", "field", "err_line", "reason"),
    [
        (4, "    band: -100", "dealers[0].band", 4, "-100"),
        (4, "    band: lots", "dealers[0].band", 4, "'lots'"),
        (4, "    bnad: 100", "dealers[0].bnad", 4, "did you mean 'band'"),
        (1, "nmae: bad", "nmae", 1, "unknown key 'nmae'"),
        (6, "      - type: cal", "dealers[0].positions[0].type", 6, "'cal'"),
        (8, "        expiry_days: 0", "dealers[0].positions[0].expiry_days", 8, "got 0"),
        (8, "        expiry_days: -2", "dealers[0].positions[0].expiry_days", 8, "got -2"),
        (8, "        expiry: 5", "dealers[0].positions[0].expiry", 8, "mean 'expiry_days'"),
        (13, "    expiry_days: [5, -21]", "customers[0].expiry_days[1]", 13, "-21"),
        (14, "    size: {mean: 0.5}", "customers[0].size.mean", 14, "0.5"),
        (14, "    size: -5", "customers[0].size", 14, "-5"),
        (12, "  - segment: custom", "customers[0]", 12, "needs type, side, moneyness"),
        (10, "  - name: a", "dealers[1].name", 10, "'a' is already the name of dealers[0]"),
        (13, "    dealer: 7", "customers[0].dealer", 13, "only 2 dealers"),
    ],
)
def test_bad_field_names_file_field_and_line(tmp_path, line, new, field, err_line, reason):
    path = write(tmp_path, with_line(BAD, line, new), "bad.yaml")
    err = error_of(path)
    assert (err.field, err.line, err.source) == (field, err_line, str(path)), str(err)
    assert reason in str(err)
    assert str(err).startswith(f"{path}:{err_line}: {field + ': ' if field else ''}")


def test_missing_required_field_points_at_its_block(tmp_path):
    err = error_of(write(tmp_path, with_line(BAD, 7, "        visible: true")))
    assert (err.field, err.line) == ("dealers[0].positions[0].strike", 6)


def test_model_validator_names_the_model(tmp_path):
    text = "market:\n  S0: 100\n  impact:\n    lam: 1.0e-5\n    depth_bp: 100\n"
    err = error_of(write(tmp_path, text))
    assert (err.field, err.line) == ("market.impact", 3)
    assert "not both" in str(err)


def test_several_errors_report_the_first_and_a_count(tmp_path):
    text = "name: x\nseed: -1\ndealers:\n  - band: -1\n    latency: -2\n"
    err = error_of(write(tmp_path, text))
    assert (err.field, err.line) == ("seed", 2)
    assert str(err).endswith("(and 2 more)")


def test_mapping_errors_name_the_field():
    err = error_of({"dealers": [{"band": -1}]})
    assert (
        str(err) == "<mapping>: dealers[0].band: Input should be greater than or equal to 0, got -1"
    )
    assert err.line is None


def test_bad_source_type():
    error_of(42)  # type: ignore[arg-type]


# --- overrides --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dealers.0.band=2000", ("dealers.0.band", 2000)),
        ("market.impact.lam=1e-4", ("market.impact.lam", 1e-4)),
        ("x=2.5E3", ("x", 2500.0)),
        ("x=-3e+2", ("x", -300.0)),
        ("x=1.5", ("x", 1.5)),
        ("x=true", ("x", True)),
        ("x=[1, 2e-1]", ("x", [1, 0.2])),
        ("x='1e-4'", ("x", "1e-4")),
        ("x=null", ("x", None)),
        (" name = my run ", ("name", "my run")),
        ("name=a=b", ("name", "a=b")),
        ("name=a: b: c", ("name", "a: b: c")),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["dealers.0.band", "=5", ""])
def test_parse_override_needs_path_and_equals(text):
    with pytest.raises(ScenarioError, match="path=value"):
        parse_override(text)


def test_overrides_dict_and_strings(tmp_path):
    path = write(tmp_path, FULL)
    s = load_scenario(path, overrides={"dealers.0.band": 2000, "market.impact.lam": 2e-5})
    assert s.dealers[0].band == 2000 and s.market.impact.lam == 2e-5
    s = load_scenario(
        path,
        overrides=[
            "dealers.1.band=0.05",
            "market.impact.lam=1e-6",
            "dealers.0.positions.1.visible=true",
            "customers.0.expiry_days=[1, 2]",
            "customers.0.expiry_days.1=3",
            "clock.days=3",
            "news=null",
        ],
    )
    assert s.dealers[1].band == 0.05 and s.market.impact.lam == 1e-6
    assert s.dealers[0].positions[1].visible is True
    assert s.customers[0].expiry_days == [1.0, 3.0]
    assert s.clock.days == 3 and s.news is None
    assert load_scenario(path, overrides="seed=9").seed == 9


def test_override_creates_missing_blocks(tmp_path):
    s = load_scenario(
        write(tmp_path, MINIMAL), overrides=["noise.rate=2", "market.impact.depth_bp=50"]
    )
    assert s.noise.rate == 2 and s.noise.mean_size == 100.0
    assert s.market.impact.depth_bp == 50 and s.market.impact.lam is None
    s = load_scenario({"noise": None}, overrides={"noise.rate": 1})
    assert s.noise.rate == 1


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ("dealers.5.band=1", "dealers.5.band: no dealer 5 (2 defined)"),
        ("dealers.x.band=1", "no dealer x"),
        ("dealers.².band=1", "no dealer ²"),
        ("dealers.-1.band=1", "no dealer -1"),
        ("dealers.0.positions.2.qty=1", "no position 2 (2 defined)"),
        ("dealers.0.bnad=1", "no field 'bnad' in dealers.0 (did you mean 'band'?)"),
        ("volume=1", "no field 'volume' in the top level"),
        ("dealers.0.band.x=1", "no field 'x' in dealers.0.band"),
        ("customers.0.moneyness.0=0.1", "no moneyness item 0 (0 defined)"),
        ("name.x=1", "no field 'x'"),
    ],
)
def test_impossible_override_path(tmp_path, override, reason):
    err = error_of(write(tmp_path, FULL), overrides=[override])
    assert str(err).startswith("<overrides>: ") and reason in str(err)


def test_bad_override_value_names_the_override(tmp_path):
    path = write(tmp_path, FULL)
    err = error_of(path, overrides=["dealers.0.band=-1"])
    assert str(err).startswith("<overrides>: dealers[0].band: ") and "-1" in str(err)
    err = error_of(path, overrides={"market.impact.depth_bp": 10})  # the file gives lam
    assert (err.source, err.field, err.line) == (str(path), "market.impact", 7)
    assert "after overrides" in str(err)


def test_override_errors_keep_file_lines_for_other_fields(tmp_path):
    path = write(tmp_path, with_line(BAD, 4, "    band: -1"))
    err = error_of(path, overrides=["seed=1"])
    assert (err.source, err.line, err.field) == (str(path), 4, "dealers[0].band")


# --- property tests ---------------------------------------------------------------------

FIELD_NAMES = sorted(
    {name for cls in map(lambda n: getattr(schema, n), schema.__all__) for name in cls.model_fields}
)
keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=6), st.integers(-2, 3))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["call", "put", "buy", "sell", "linear", "sqrt", "put_hedgers", "1e-4"]),
)
garbage = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.dictionaries(keys, garbage, max_size=6))
def test_garbage_mappings_raise_only_scenario_error(data):
    frozen = repr(data)
    try:
        result = load_scenario(data)
    except ScenarioError as err:
        assert "\n" not in str(err) and str(err).startswith("<mapping>")
    else:
        assert isinstance(result, Scenario)
    assert repr(data) == frozen


@settings(max_examples=200, deadline=None)
@given(
    path=st.lists(st.sampled_from([*FIELD_NAMES[:30], "0", "1", "x"]), min_size=1, max_size=4),
    value=garbage,
)
def test_garbage_overrides_raise_only_scenario_error(path, value):
    base = {"dealers": [{"positions": [{"type": "put", "strike": 1, "expiry_days": 1, "qty": 1}]}]}
    try:
        load_scenario(base, overrides={".".join(path): value})
    except ScenarioError as err:
        assert "\n" not in str(err)


# -- issue 10: input that validated and then broke -------------------------------------------
BASE_DICT = {
    "name": "base",
    "market": {"S0": 100.0, "impact": {"lam": 1e-5}},
    "dealers": [{"positions": [{"type": "call", "strike": 100, "expiry_days": 21, "qty": 10}]}],
}
BOMB = "a: &a [1, 2]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (BOMB, "aliases are expanded"),  # 9^8 * 2 values from 72 aliases
        ("x: &a [1]\n" + "".join(f"y{i}: *a\n" for i in range(101)), "more than 100 aliases"),
        ("name: x\nsweep: &s {grid: {news.vol: [*s]}}\n", "recursive alias"),
        ("name: !!int abc\n", "tag"),
        ("name: !!bool maybe\n", "tag"),
        ("name: !!timestamp foo\n", "tag"),
        ("market: !!map [1]\n", "tag"),
        ("name: !!python/object:os.system x\n", "tag"),
        ("a: " + "[" * 5000 + "\n", "nested deeper"),
        ('name: "\\ud800"\n', "not valid Unicode"),
        ("news: {dt: 2024-13-45}\n", "month must be in 1..12"),
    ],
)
def test_hostile_yaml_is_one_scenario_error(tmp_path, text, why):
    err = error_of(write(tmp_path, text))
    assert why in str(err)


def test_a_device_is_not_read_forever():
    err = error_of("/dev/zero")
    assert "not a regular file" in str(err)


@pytest.mark.parametrize(
    ("sweep", "field", "why"),
    [
        ({"grid": {"dealers.0.band": [100, "abc"]}}, "sweep.grid.dealers.0.band[1]", "number"),
        ({"grid": {"dealers.0.band": [100, -1]}}, "sweep.grid.dealers.0.band[1]", "greater"),
        ({"grid": {"dealers.0.bnad": [1]}}, "sweep.grid.dealers.0.bnad[0]", "'band'"),
        ({"grid": {"dealers.5.band": [1]}}, "sweep.grid.dealers.5.band[0]", "no dealer 5"),
        ({"grid": {"dealers.0.band": []}}, "sweep.grid.dealers.0.band", "non-empty"),
        ({"grid": {"dealers.0.band": [1, 1.0]}}, "sweep.grid.dealers.0.band[1]", "repeated"),
        ({"zip": {"news.vol": [0.1, 0.2], "news.dt": [1]}}, "sweep.zip", "differ in length"),
        ({"seeds": [3, 4, 3]}, "sweep.seeds[2]", "repeated"),
        ({"grid": {"clock.days": [2, 1]}}, "sweep.grid.clock.days[1]", "after the run ends"),
    ],
)
def test_sweep_blocks_are_validated_value_by_value(tmp_path, sweep, field, why):
    data = json.loads(json.dumps(BASE_DICT))
    data["sweep"] = sweep
    data["clock"] = {"days": 2}
    data["pensions"] = [{"side": "buy", "shares": 1e5, "start": 23_000, "duration": 20_000}]
    load_scenario({k: v for k, v in data.items() if k != "sweep"})  # valid without the sweep
    err = error_of(data)  # a value valid alone, not with the rest (clock.days 1: pension late)
    assert err.field == field and why in str(err), str(err)


def test_sweep_block_errors_name_the_line(tmp_path):
    text = "name: s\ndealers:\n  - band: 0\nsweep:\n  grid:\n    dealers.0.band: [1, abc]\n"
    err = error_of(write(tmp_path, text))
    assert (err.line, err.field) == (6, "sweep.grid.dealers.0.band[1]"), str(err)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"market.tick": 10.0}, "market"),  # S0 = 100: a tick of S0/10 is meaningless
        ({"market.half_spread": 50.0}, "market"),
        ({"market.r": 5.0}, "market.r"),
        ({"market.q": -3.0}, "market.q"),
    ],
)
def test_values_that_make_the_model_meaningless_are_refused(override, field):
    err = error_of(BASE_DICT, overrides=override)
    assert err.field == field, str(err)


@pytest.mark.parametrize(
    ("names", "pension", "why"),
    [
        (["noise"], None, "'noise' is already an internal account"),
        (["pool"], None, "'pool' is already an internal account"),
        (["opening"], None, "internal account"),
        (["clearing"], None, "internal account"),
        (["dealer1", None], None, "'dealer1' is already the name of dealers[0]"),
        (["a", "a"], None, "'a' is already the name of dealers[0]"),
        (["desk"], "desk", "'desk' is already the name of pensions[0]"),
        (["retail_call_buyers0"], None, "already customers[0]"),
        ([" "], None, "must not be empty"),
    ],
)
def test_dealer_names_clashing_with_other_accounts_are_refused(names, pension, why):
    data = json.loads(json.dumps(BASE_DICT))
    position = {"type": "call", "strike": 100, "expiry_days": 21, "qty": 10}
    data["dealers"] = [{"name": n, "positions": [position]} for n in names]
    data["customers"] = [{"segment": "retail_call_buyers", "rate": 0.001}]
    data["pensions"] = [{"name": pension, "side": "buy", "shares": 100, "duration": 60}]
    err = error_of(data)
    assert why in str(err), str(err)


def test_validation_examines_a_bounded_number_of_errors(monkeypatch):
    """20,000 unknown keys: each examined error costs a scan of the file's keys, so
    examining all of them was quadratic (22 s); the message still counts them all."""
    import mmsim.scenario as scenario_module

    calls = []
    real = scenario_module._line
    monkeypatch.setattr(scenario_module, "_line", lambda *a: calls.append(1) or real(*a))
    err = error_of({f"k{i}": 1 for i in range(20_000)})
    assert "(and 19999 more)" in str(err)
    assert len(calls) <= scenario_module.MAX_ERRORS, len(calls)
