"""Pure row builders: exact integers from display decimals, merged shortfalls, counts."""

from __future__ import annotations

import pytest

from bulkhead.api.rows import api_position_row, decimal_to_units, liquidation_rows, pipeline_counts
from orchestrator.actions.inputs import format_amount
from orchestrator.actions.trading import format_usd
from shared.locks import LockState
from tests.unit.api.conftest import POS_A, liquidated, position_row, record, shortfall


@pytest.mark.parametrize("units", [0, 1, 10**18, -(10**18), 123_456_789_012_345_678_901,
                                   -5, 10**40 + 7])
def test_decimal_to_units_inverts_format_usd(units: int) -> None:
    assert decimal_to_units(format_usd(units), 18) == units


@pytest.mark.parametrize("text", ["1.5e3", "NaN", "", "-", "1.0000000000000000001", "+1",
                                  " 1", "1,5"])
def test_decimal_to_units_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        decimal_to_units(text, 18)


def test_position_row_gets_exact_integers_and_string_prices() -> None:
    row = api_position_row(position_row(POS_A), "0x" + "66" * 20)
    assert row["equity_usd_e18"] == "320500000000000000000"
    assert row["entry_e8"] == "300000000000" and row["liquidation_price_e8"] == "283000000000"
    assert row["owner"] == "0x" + "66" * 20
    assert format_amount(int(row["maintenance_usd_e18"]), 18) == row["maintenance"]


def test_shortfall_joins_its_liquidation_and_strays_stand_alone() -> None:
    a, b = bytes.fromhex(POS_A[2:]), b"\x45" * 32
    rows = liquidation_rows([liquidated(a, 10, "0xaa"), shortfall(a, 10, "0xaa", 7),
                             shortfall(b, 12, "0xbb", 9), liquidated(b, 11, "0xcc", full=False)],
                            final_height=10)
    assert [(r["kind"], r["height"], r["shortfall_usd_e18"], r["final"]) for r in rows] == [
        ("shortfall", 12, "9", False), ("liquidation", 11, "0", False),
        ("liquidation", 10, "7", True)]


def test_pipeline_counts_every_state() -> None:
    counts = pipeline_counts([record(1, LockState.CREDITED, at_ms=1),
                              record(2, LockState.SEEN, at_ms=2, chain="solana")])
    assert counts["total"] == 2 and set(counts["states"]) == {s.value for s in LockState}
    assert counts["chains"]["solana"]["seen"] == 1 and counts["chains"]["evm-a"]["credited"] == 1

