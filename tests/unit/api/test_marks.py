"""Marks as operators see them, pure: the oracle's raw answers -> rows (``rows.mark_row``),
the max ages each name is judged for, the ``bulkhead_mark_*`` metric families, the CLI's
table, and ``/api/v1/marks`` over an in-memory reader."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from bulkhead.api.metrics import BulkheadCollector, MetricsInput
from bulkhead.api.rows import MarkReading, mark_ages, mark_row
from bulkhead.cli.views import marks_table
from shared.errors import ChainError, RpcUnavailable
from shared.positions import market_id
from tests.unit.api.conftest import Backends

ETH, USDC = "ETH-USD", "USDC"
CL_8, CL_18, PYTH = "0x" + "a1" * 20, "0x" + "a2" * 20, "0x" + "a3" * 20
PYTH_ID = b"\x07" * 32
SOURCES = [(0, CL_8, b"\x00" * 32), (0, CL_18, b"\x00" * 32), (1, PYTH, PYTH_ID)]
NOW = 1_700_000_100
OK, STALE, DEVIATION, UNREADABLE = 0, 1, 5, 6


def reading(name: str = ETH, *, user: tuple[int, int, int] | None = (300_000_000_000, NOW - 5, 2),
            liq: tuple[int, int, int] | None = (300_000_000_000, NOW - 5, 2),
            user_states: list[tuple[int, int, int]] | None = None,
            liq_states: list[tuple[int, int, int]] | None = None) -> MarkReading:
    """Three sources at 3000: the 18-decimal Chainlink one 5 % off (dropped as deviating)."""
    states = [(300_000_000_000, NOW - 5, OK), (315_000_000_000, NOW - 7, DEVIATION),
              (300_000_000_000, NOW - 3, OK)]
    return MarkReading(name, 42, NOW, 2, (60, 600), (user, liq), SOURCES,
                       (user_states or states, liq_states or states))


def test_mark_row_presents_integers_as_strings_and_judges_each_age() -> None:
    row = mark_row(reading())
    assert (row["market"], row["oracle_id"], row["height"], row["chain_time"]) == (
        ETH, "0x" + market_id(ETH).hex(), 42, NOW)
    assert row["user"] == {"max_age_s": 60, "mark_e8": "300000000000",
                           "publish_time": NOW - 5, "valid_sources": 2, "quorum": True}
    assert row["liquidation"]["max_age_s"] == 600 and row["min_sources"] == 2
    cl8, cl18, pyth = row["sources"]
    assert (cl8["source"], cl8["kind"], cl8["price_e8"], cl8["age_s"], cl8["reason"],
            cl8["deviation_ppm"], cl8["pyth_id"]) == (
        CL_8, "chainlink", "300000000000", 5, "ok", 0, None)
    assert (cl18["reason"], cl18["deviation_ppm"], cl18["age_s"]) == ("deviation", 50_000, 7)
    assert pyth["kind"] == "pyth" and pyth["source"] == f"{PYTH}:0x{PYTH_ID.hex()}"
    assert pyth["pyth_id"] == "0x" + PYTH_ID.hex() and pyth["age_s"] == 3


def test_mark_row_without_a_mark_counts_the_ok_verdicts_and_hides_no_source() -> None:
    stale = [(300_000_000_000, NOW - 90, STALE), (0, 0, UNREADABLE),
             (300_000_000_000, NOW - 90, STALE)]
    liq = [(300_000_000_000, NOW - 90, OK), (0, 0, UNREADABLE), (300_000_000_000, NOW - 90, OK)]
    row = mark_row(reading(user=None, liq=(300_000_000_000, NOW - 90, 2), user_states=stale,
                           liq_states=liq))
    assert row["user"] == {"max_age_s": 60, "mark_e8": None, "publish_time": None,
                           "valid_sources": 0, "quorum": False}
    assert row["liquidation"]["mark_e8"] == "300000000000"
    assert row["liquidation"]["valid_sources"] == 2 and row["liquidation"]["quorum"]
    first, dead, _ = row["sources"]
    assert (first["reason"], first["reason_liquidation"], first["age_s"]) == ("stale", "ok", 90)
    assert first["deviation_ppm"] is None  # no user-action mark to deviate from
    assert (dead["price_e8"], dead["time_s"], dead["age_s"], dead["reason"]) == (
        None, None, None, "unreadable")


def test_deviation_is_a_floor_in_ppm_of_the_mark() -> None:
    states = [(100_000_001, NOW, OK), (99_999_999, NOW, OK), (100_000_000, NOW, OK)]
    row = mark_row(reading(USDC, user=(100_000_000, NOW, 3), user_states=states))
    assert [s["deviation_ppm"] for s in row["sources"]] == [0, 0, 0]  # 0.01 ppm floors to 0
    states = [(103_000_000, NOW, OK), (97_000_001, NOW, OK), (100_000_000, NOW, OK)]
    row = mark_row(reading(USDC, user=(100_000_000, NOW, 3), user_states=states))
    assert [s["deviation_ppm"] for s in row["sources"]] == [30_000, 29_999, 0]


def test_max_ages_come_from_the_markets_marked_by_each_name() -> None:
    btc = market_id("BTC-USD")
    markets = [(market_id(ETH), 60, 600), (btc, 30, 900), (b"\x00" * 32, 1, 2)]  # unset: ignored
    assert mark_ages([ETH, "BTC-USD", USDC], markets) == {
        ETH: (60, 600), "BTC-USD": (30, 900), USDC: (30, 600)}  # collateral: the strictest
    assert mark_ages([ETH], [(market_id(ETH), 60, 600), (market_id(ETH), 90, 300)]) == {
        ETH: (60, 300)}
    with pytest.raises(ChainError, match="no market"):
        mark_ages([ETH], [(b"\x00" * 32, 0, 0)])


def _families(data: MetricsInput) -> dict[str, Any]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BulkheadCollector(data))
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def _by_source(family: Any) -> dict[tuple[str, str, str], float]:
    return {(s.labels["market"], s.labels["source"], s.labels["kind"]): s.value
            for s in family.samples}


def test_mark_metric_families() -> None:
    stale = [(100_000_000, NOW - 90, STALE), (0, 0, UNREADABLE), (100_000_000, NOW - 90, STALE)]
    rows = [mark_row(reading()),
            mark_row(reading(USDC, user=None, liq=None, user_states=stale, liq_states=stale))]
    families = _families(MetricsInput(marks=rows, sources={"marks": True}))
    pyth = f"{PYTH}:0x{PYTH_ID.hex()}"
    assert _by_source(families["bulkhead_mark_source_age_seconds"]) == {
        (ETH, CL_8, "chainlink"): 5, (ETH, CL_18, "chainlink"): 7, (ETH, pyth, "pyth"): 3,
        (USDC, CL_8, "chainlink"): 90, (USDC, pyth, "pyth"): 90}  # unreadable: no age, not 0
    assert _by_source(families["bulkhead_mark_source_deviation_ppm"]) == {
        (ETH, CL_8, "chainlink"): 0, (ETH, CL_18, "chainlink"): 50_000,
        (ETH, pyth, "pyth"): 0}  # USDC has no mark to deviate from
    assert _by_source(families["bulkhead_mark_source_valid"]) == {
        (ETH, CL_8, "chainlink"): 1, (ETH, CL_18, "chainlink"): 0, (ETH, pyth, "pyth"): 1,
        (USDC, CL_8, "chainlink"): 0, (USDC, CL_18, "chainlink"): 0, (USDC, pyth, "pyth"): 0}

    def per_market(name: str) -> dict[str, float]:
        return {s.labels["market"]: s.value for s in families[name].samples}

    assert per_market("bulkhead_mark_valid_sources") == {ETH: 2, USDC: 0}
    assert per_market("bulkhead_mark_min_sources") == {ETH: 2, USDC: 2}
    assert per_market("bulkhead_mark_below_quorum") == {ETH: 0, USDC: 1}
    up = {s.labels["source"]: s.value for s in families["bulkhead_scrape_source_up"].samples}
    assert up == {"marks": 1}


def test_unreadable_marks_are_reported_down_never_as_zeros() -> None:
    families = _families(MetricsInput(marks=None, sources={"marks": False}))
    assert not [name for name in families if name.startswith("bulkhead_mark_")]
    up = {s.labels["source"]: s.value for s in families["bulkhead_scrape_source_up"].samples}
    assert up == {"marks": 0}


def test_marks_table_shows_each_mark_over_its_sources() -> None:
    stale = [(100_000_000, NOW - 90, STALE), (0, 0, UNREADABLE), (100_000_000, NOW - 90, STALE)]
    liq = [(100_000_000, NOW - 90, OK), (0, 0, UNREADABLE), (100_000_000, NOW - 90, OK)]
    rows = [mark_row(reading()), mark_row(reading(USDC, user=None, liq=(100_000_000, NOW - 90, 2),
                                                  user_states=stale, liq_states=liq))]
    console = Console(record=True, width=200)
    console.print(marks_table(rows))
    text = console.export_text()
    assert "marks (2)" in text and "3000 (60 s)" in text and "3000 (600 s)" in text
    assert "none (60 s)" in text and "1 (600 s)" in text and "0 of 2 BELOW" in text
    assert "stale / liq. ok" in text and "deviation" in text and "90 s" in text


def test_marks_route_and_its_metrics(client: TestClient, backends: Backends) -> None:
    backends.marks.items = [mark_row(reading())]
    items = client.get("/api/v1/marks").json()["items"]
    assert [i["market"] for i in items] == [ETH]
    assert items[0]["user"]["mark_e8"] == "300000000000"
    assert [s["reason"] for s in items[0]["sources"]] == ["ok", "deviation", "ok"]
    metrics = client.get("/metrics").text
    assert 'bulkhead_scrape_source_up{source="marks"} 1.0' in metrics
    assert 'bulkhead_mark_below_quorum{market="ETH-USD"} 0.0' in metrics


def test_marks_unreadable_is_503_with_reason(client: TestClient, backends: Backends) -> None:
    backends.marks.fail = RpcUnavailable("evm-b", "http://127.0.0.1:1", "refused")
    r = client.get("/api/v1/marks")
    assert r.status_code == 503 and "evm-b" in r.json()["detail"], r.text
    metrics = client.get("/metrics").text
    assert 'bulkhead_scrape_source_up{source="marks"} 0.0' in metrics
    assert "bulkhead_mark_valid_sources" not in metrics
