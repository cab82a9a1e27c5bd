from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.actions.inputs import (
    MAX_UINT256,
    format_amount,
    parse_amount,
    parse_base_units,
    parse_bytes32,
    parse_chain_id,
    parse_evm_address,
)
from shared.errors import InputError

CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"


@pytest.mark.parametrize(
    ("text", "decimals", "units"),
    [
        ("125.5", 6, 125_500_000),
        ("125", 6, 125_000_000),
        ("0.000001", 6, 1),
        ("1", 18, 10**18),
        ("1.000000000000000001", 18, 10**18 + 1),
        ("007.50", 2, 750),
        ("3", 0, 3),
        ("1.123456789", 9, 1_123_456_789),  # NUM-01: 6 / 9 / 18 decimals, one rule
        ("0.000000001", 9, 1),
    ],
)
def test_parse_amount_exact(text: str, decimals: int, units: int) -> None:
    assert parse_amount(text, decimals) == units


@pytest.mark.parametrize(
    "text",
    ["-1", "0", "0.0", "1e18", "1E6", "NaN", "nan", "inf", "", " ", "+1", "1.", ".5",
     "1.0000001", "1,5", "0x10", "１２"],
    ids=lambda t: repr(t),
)
def test_parse_amount_refuses_and_names_field(text: str) -> None:
    with pytest.raises(InputError) as err:
        parse_amount(text, 6, field="amount")
    assert err.value.field == "amount"
    assert "amount" in str(err.value)


def test_parse_amount_refuses_above_uint256() -> None:
    with pytest.raises(InputError, match="uint256"):
        parse_amount(str(MAX_UINT256 + 1), 0)


@given(st.integers(min_value=1, max_value=10**30), st.integers(min_value=0, max_value=24))
def test_format_then_parse_round_trips(units: int, decimals: int) -> None:
    assert parse_amount(format_amount(units, decimals), decimals) == units


@given(st.text(max_size=40))
def test_parse_amount_total(text: str) -> None:
    try:
        units = parse_amount(text, 6)
    except InputError:
        return
    with localcontext() as ctx:
        ctx.prec = 200
        assert units > 0 and Decimal(text.strip()) * 10**6 == units


@pytest.mark.parametrize("text", ["12", " 1 "])
def test_parse_base_units_ok(text: str) -> None:
    assert parse_base_units(text) == int(text)


@pytest.mark.parametrize("text", ["1.5", "-3", "0", "1e3", "abc"])
def test_parse_base_units_refuses(text: str) -> None:
    with pytest.raises(InputError, match="amount"):
        parse_base_units(text)


def test_evm_address_forms() -> None:
    assert parse_evm_address(CHECKSUMMED) == CHECKSUMMED
    assert parse_evm_address(CHECKSUMMED.lower()) == CHECKSUMMED
    bad = CHECKSUMMED[:-1] + ("d" if CHECKSUMMED[-1] == "D" else "D")
    for text in (bad, "0x0000000000000000000000000000000000000000", "0x123", "abc"):
        with pytest.raises(InputError) as err:
            parse_evm_address(text, field="beneficiary")
        assert err.value.field == "beneficiary"


def test_bytes32_and_chain_id() -> None:
    key = "0x" + "Ab" * 32
    assert parse_bytes32(key, field="position") == key.lower()
    for text in ("0x" + "00" * 32, "0x12", "ab" * 32):
        with pytest.raises(InputError, match="position"):
            parse_bytes32(text, field="position")
    assert parse_chain_id("31338") == 31338
    for text in ("0x1", "0", "-1", str(2**64), "1.0"):
        with pytest.raises(InputError, match="chain_id"):
            parse_chain_id(text)
