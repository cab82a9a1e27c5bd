"""Scripted price paths: integer prices, bounds, determinism, exact crash targets, scenario files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devnet.feeder import load_scenario
from orchestrator.risk.price_paths import (
    PPM,
    SourceFault,
    SourceTick,
    calm,
    crash,
    crash_target_e8,
    parse_scenario,
    path_prices,
    source_ticks,
    spike,
    splitmix64,
    trend,
)
from shared.errors import InputError

E8 = 10**8
starts = st.integers(1, 10**16)
steps = st.integers(1, 200)


def test_crash_of_45_pct_in_one_tick_from_3000() -> None:
    assert crash(3_000 * E8, 1, pct_ppm=450_000) == [1_650 * E8]


def test_crash_over_four_steps_is_linear_and_exact() -> None:
    assert crash(3_000 * E8, 4, pct_ppm=450_000) == [2_662_500_000_00, 2_325 * E8,
                                                      1_987_500_000_00, 1_650 * E8]


def test_spike_goes_up_then_back_exactly() -> None:
    assert spike(100, 5, pct_ppm=500_000, up_steps=2) == [125, 150, 134, 117, 100]


def test_trend_compounds_half_up() -> None:
    assert trend(E8, 3, drift_ppm=-10_000) == [99_000_000, 98_010_000, 97_029_900]
    assert trend(1, 3, drift_ppm=-999_999) == [1, 1, 1]  # never below 1


def test_splitmix64_reference_values() -> None:
    # First outputs of splitmix64 seeded with 0 (the published reference sequence).
    state, first = splitmix64(0)
    _, second = splitmix64(state)
    assert (first, second) == (0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4)


@pytest.mark.parametrize(("fn", "kwargs", "field"), [
    (crash, {"pct_ppm": 0}, "pct_ppm"),
    (crash, {"pct_ppm": PPM}, "pct_ppm"),
    (spike, {"pct_ppm": 10, "up_steps": 5}, "up_steps"),
    (trend, {"drift_ppm": -PPM}, "drift_ppm"),
    (calm, {"amplitude_ppm": PPM}, "amplitude_ppm"),
], ids=["crash-zero", "crash-all", "spike-no-room", "trend-minus-100", "calm-wide"])
def test_out_of_range_arguments_name_the_field(fn, kwargs, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as info:
        fn(1_000 * E8, 5, **kwargs)
    assert info.value.field == field


def test_crash_that_leaves_no_price_is_refused() -> None:
    with pytest.raises(InputError, match="pct_ppm"):
        crash_target_e8(1, 500_000)


@given(starts, steps, st.integers(0, PPM - 1), st.integers(0, 2**64 - 1))
def test_calm_is_positive_bounded_and_deterministic(start: int, n: int, amp: int,
                                                    seed: int) -> None:
    prices = calm(start, n, amplitude_ppm=amp, seed=seed)
    band = start * amp // PPM + 1
    assert len(prices) == n
    assert all(isinstance(p, int) and p > 0 and abs(p - start) <= band for p in prices)
    assert prices == calm(start, n, amplitude_ppm=amp, seed=seed)


@given(starts, steps, st.integers(1, PPM - 1))
def test_crash_reaches_its_target_exactly_and_never_undershoots(start: int, n: int,
                                                               pct: int) -> None:
    try:
        target = crash_target_e8(start, pct)
    except InputError:
        return
    prices = crash(start, n, pct_ppm=pct)
    assert prices[-1] == target and len(prices) == n
    assert all(target <= p <= start for p in prices)
    assert prices == sorted(prices, reverse=True)
    for i, p in enumerate(prices, 1):  # never below the straight line (rounded up)
        assert p * n >= start * n - (start - target) * i


@given(starts, st.integers(2, 200), st.integers(1, 10 * PPM), st.data())
def test_spike_peaks_and_reverts_exactly(start: int, n: int, pct: int, data: st.DataObject) -> None:
    up = data.draw(st.integers(1, n - 1))
    prices = spike(start, n, pct_ppm=pct, up_steps=up)
    peak = start + start * pct // PPM
    assert prices[up - 1] == peak and prices[-1] == start and len(prices) == n
    assert all(start <= p <= peak for p in prices)


@given(starts, steps, st.integers(-(PPM - 1), 50_000))
def test_trend_is_monotone_and_positive(start: int, n: int, drift: int) -> None:
    prices = trend(start, n, drift_ppm=drift)
    assert all(p > 0 for p in prices) and len(prices) == n
    assert prices == (sorted(prices) if drift >= 0 else sorted(prices, reverse=True))


SCENARIO = """
interval_s = 0.5
[[feeds]]
market = "ETH-USD"
start = "3000"
[[feeds.segments]]
path = "calm"
steps = 3
amplitude_ppm = 100
seed = 7
[[feeds.segments]]
path = "crash"
steps = 2
pct_ppm = 450000
[[feeds]]
market = "BTC-USD"
[[feeds.segments]]
path = "trend"
steps = 2
drift_ppm = 1000
"""


def test_scenario_file_runs_segments_one_after_another(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    scenario = load_scenario(path)
    prices = scenario.prices({"BTC-USD": 60_000 * E8, "ETH-USD": 1})
    eth = prices["ETH-USD"]
    assert eth[0] == 3_000 * E8 and len(eth) == 6  # the start, then 3 + 2 ticks
    assert eth[1:4] == calm(3_000 * E8, 3, amplitude_ppm=100, seed=7)
    assert eth[-1] == crash_target_e8(eth[3], 450_000)
    assert prices["BTC-USD"] == trend(60_000 * E8, 2, drift_ppm=1_000)  # start not repeated
    as_json = tmp_path / "s.json"
    as_json.write_text(json.dumps(scenario.model_dump()))
    assert load_scenario(as_json) == scenario


@pytest.mark.parametrize(("data", "field"), [
    ({"feeds": []}, "feeds"),
    ({"feeds": [{"market": "ETH-USD", "segments": [{"path": "crash", "steps": 1,
                                                   "pct_ppm": 1_000_000}]}]},
     "feeds.0.segments.0.crash.pct_ppm"),
    ({"feeds": [{"market": "ETH-USD", "segments": [{"path": "calm", "steps": 0}]}]},
     "feeds.0.segments.0.calm.steps"),
    ({"feeds": [{"market": "ETH-USD", "segments": [{"path": "calm", "steps": 1,
                                                   "amplitude_ppm": 1.5}]}]},
     "feeds.0.segments.0.calm.amplitude_ppm"),
    ({"feeds": [{"market": "ETH-USD", "start": "3000.123456789",
                 "segments": [{"path": "calm", "steps": 1}]}]}, "feeds.0"),
    ({"feeds": [{"market": "ETH-USD", "segments": [{"path": "spike", "steps": 2,
                                                   "pct_ppm": 1, "up_steps": 2}]}]},
     "feeds.0.segments.0.spike"),
    ({"feeds": [{"market": "ETH-USD", "segments": [{"path": "moon", "steps": 2}]}]},
     "feeds.0.segments.0"),
    ({"feeds": [{"market": "ETH-USD", "segments": [{"path": "calm", "steps": 1}],
                 "extra": 1}]}, "feeds.0.extra"),
], ids=["no-feeds", "crash-100pct", "zero-steps", "float-amplitude", "start-9-decimals",
        "spike-no-room", "unknown-path", "unknown-field"])
def test_bad_scenario_names_the_field(data: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InputError) as info:
        parse_scenario(data)
    assert info.value.field == field


def test_bad_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="scenario"):
        load_scenario(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("feeds = [")
    with pytest.raises(InputError, match="scenario"):
        load_scenario(bad)


def test_feed_without_start_needs_a_current_price() -> None:
    scenario = parse_scenario({"feeds": [{"market": "ETH-USD",
                                          "segments": [{"path": "calm", "steps": 1}]}]})
    with pytest.raises(InputError) as info:
        scenario.prices({})
    assert info.value.field == "feeds.0.start"


def test_path_prices_chain_segments() -> None:
    scenario = parse_scenario({"feeds": [{"market": "X", "start_e8": 1_000, "segments": [
        {"path": "crash", "steps": 1, "pct_ppm": 500_000},
        {"path": "spike", "steps": 2, "pct_ppm": 1_000_000}]}]})
    assert path_prices(1_000, scenario.feeds[0].segments) == [500, 1_000, 500]


# ----- one source misbehaving (SourceFault) ------------------------------------------------------


def test_source_faults_apply_per_tick_and_per_source() -> None:
    faults = [SourceFault(source=2, kind="jump", from_tick=1, ticks=2, ppm=-300_000),
              SourceFault(source=0, kind="freeze", from_tick=2),
              SourceFault(source=1, kind="fixed", from_tick=3, price_e8=1),
              SourceFault(source=2, kind="conf", from_tick=3, ppm=50_000)]
    ticks = source_ticks([100, 200, 300, 400], faults, 3)
    assert ticks[0] == 100  # nobody misbehaves: one price for every source
    assert ticks[1] == SourceTick(200, (200, 200, 140), (None, None, None))
    assert ticks[2] == SourceTick(300, (0, 300, 210), (None, None, None))  # 0: held
    assert ticks[3] == SourceTick(400, (0, 1, 400), (None, None, 50_000))


def test_a_jump_never_reports_zero() -> None:
    fault = SourceFault(source=0, kind="jump", ppm=-999_999)
    assert source_ticks([3], [fault], 2) == [SourceTick(3, (1, 3), (None, None))]


@pytest.mark.parametrize(("fault", "field"), [
    ({"source": 0, "kind": "jump"}, "needs ppm"),
    ({"source": 0, "kind": "freeze", "ppm": 5}, "takes no ppm"),
    ({"source": 0, "kind": "fixed", "ppm": 5, "price_e8": 1}, "takes no ppm"),
    ({"source": 0, "kind": "conf", "ppm": -5}, "ppm > 0"),
    ({"source": 9, "kind": "freeze"}, "source"),
])
def test_bad_faults_are_refused_naming_the_field(fault: dict[str, object], field: str) -> None:
    data = {"feeds": [{"market": "ETH-USD", "start": "3000",
                       "segments": [{"path": "calm", "steps": 2}], "faults": [fault]}]}
    with pytest.raises(InputError) as info:
        parse_scenario(data)
    assert info.value.field.startswith("feeds.0.faults.0")
    assert field in str(info.value)


def test_a_fault_beyond_the_feeds_sources_is_refused() -> None:
    with pytest.raises(InputError, match="source 3 of a feed with 3 sources"):
        source_ticks([1], [SourceFault(source=3, kind="freeze")], 3)
