"""``bulkhead feed`` flags: percent parsing and refusals that name the flag (no chain needed)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bulkhead.cli.feed import PathName, feed_app, scenario_from_flags
from shared.errors import InputError

E8 = 10**8


def flags(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"markets": ["ETH-USD"], "path": PathName.CRASH, "pct": "45",
                               "steps": 1, "start": "3000", "interval_s": 1.0, "seed": 0,
                               "up_steps": 1}
    return {**base, **kw}


def test_crash_45_from_3000_in_one_step() -> None:
    scenario = scenario_from_flags(**flags())  # type: ignore[arg-type]
    assert scenario.prices() == {"ETH-USD": [3_000 * E8, 1_650 * E8]}


def test_trend_takes_a_signed_percent_per_step() -> None:
    scenario = scenario_from_flags(**flags(path=PathName.TREND, pct="-0.5", steps=2))  # type: ignore[arg-type]
    assert scenario.prices()["ETH-USD"] == [3_000 * E8, 2_985 * E8, 2_970_075_000_00]


def test_calm_without_start_continues_from_the_oracle() -> None:
    scenario = scenario_from_flags(**flags(path=PathName.CALM, pct="0.01", start=None,  # type: ignore[arg-type]
                                           steps=3, markets=["ETH-USD", "BTC-USD"]))
    prices = scenario.prices({"ETH-USD": 2_000 * E8, "BTC-USD": 60_000 * E8})
    assert all(len(p) == 3 for p in prices.values())
    assert all(abs(p - 2_000 * E8) <= 2_000 * E8 // 10_000 for p in prices["ETH-USD"])


@pytest.mark.parametrize(("kw", "field"), [
    ({"pct": None}, "pct"),
    ({"pct": "-5"}, "pct"),
    ({"pct": "45.00001"}, "pct"),
    ({"start": "3000.123456789"}, "from"),
    ({"steps": 0}, "steps"),
    ({"pct": "100"}, "feeds.0.segments.0.crash.pct_ppm"),
])
def test_refused_flags_name_the_field(kw: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InputError) as info:
        scenario_from_flags(**flags(**kw))  # type: ignore[arg-type]
    assert info.value.field == field


def test_cli_refuses_with_exit_code_2_before_any_chain_call() -> None:
    runner = CliRunner()
    assert runner.invoke(feed_app, []).exit_code == 2
    result = runner.invoke(feed_app, ["--market", "ETH-USD", "--path", "crash", "--steps", "1"])
    assert result.exit_code == 2 and "pct" in result.output
