"""The risk invariants I6–I10 on hand-built venue histories: one clean history, then one
mutation per rule that must trip it (and only the invariant it belongs to)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.audit.risk_rules import (
    RISK_INVARIANTS,
    CreditConversion,
    FeedRead,
    Lane,
    MarketView,
    OpKind,
    PositionView,
    RiskAuditInput,
    RiskOp,
    Seizure,
    Touch,
    audit_risk,
    check_isolation,
    margin_values,
    summarize_risk,
)

E18 = 10**18
T0 = 1_700_000_000
ETH_FEED = "0x" + "e1" * 32
USDC_FEED = "0x" + "c1" * 32
USDC = "0x" + "00" * 12 + "33" * 20
A = "0x" + "aa" * 32
B = "0x" + "bb" * 32
MARKET = MarketView(oracle_id=ETH_FEED, imr_ppm=100_000, mmr_ppm=50_000, buffer_ppm=0,
                    liq_fee_ppm=10_000, liq_fee_cap_usd_e18=1_000 * E18, max_age_user_s=60,
                    max_age_liq_s=600, full_ratio_ppm=500_000, cooldown_s=30)
FLAT = PositionView(0, 0, 0, 0)
LONG = PositionView(E18, 3000 * 10**8, -3 * E18 // 2, 0)  # 1 ETH at 3000, taker fee 1.5 paid


def mark(price_usd: int, publish: int) -> FeedRead:
    return FeedRead(ETH_FEED, price_usd * 10**8, publish, 1, 10**20)


def usdc(amount_usd: int, publish: int = T0) -> Lane:
    return Lane(31337, USDC, amount_usd * E18, 0, FeedRead(USDC_FEED, 10**8, publish, 1, 10**20))


OPEN = RiskOp(kind=OpKind.OPEN, position_key=A, tx_id="0x01", height=10, log_index=0,
              timestamp=T0 + 5, before=FLAT, market=MARKET, mark=mark(3000, T0),
              lanes=(usdc(320),), price_e8=3000 * 10**8, fee_usd_e18=3 * E18 // 2,
              size_after_e18=E18, entry_after_e8=3000 * 10**8)
RELEASE = RiskOp(kind=OpKind.RELEASE, position_key=A, tx_id="0x02", height=12, log_index=0,
                 timestamp=T0 + 10, before=LONG, market=MARKET, mark=mark(3000, T0),
                 lanes=(usdc(320),), released=(31337, USDC, 10 * E18))
# 2730: E = 310 - 1.5 - 270 = 38.5 < MM 136.5 / 2: full; fee 27.3; equity left 11.2.
LIQUIDATE = RiskOp(kind=OpKind.LIQUIDATE, position_key=A, tx_id="0x03", height=20, log_index=0,
                   timestamp=T0 + 300, before=LONG, market=MARKET, mark=mark(2730, T0 + 100),
                   lanes=(usdc(310),), price_e8=2730 * 10**8, fee_usd_e18=273 * E18 // 10,
                   closed_size_e18=E18, full=True, plan_tick=T0 + 100,
                   seized=(Seizure(31337, USDC, 298_800_000, 6),))
CLEAN = RiskAuditInput(
    touches=[Touch("0x00", 5, 0, "Credited", A), Touch("0x00", 5, 1, "Credited", B),
             Touch("0x01", 10, 0, "Traded", A), Touch("0x02", 12, 0, "SettlementRequested", A),
             Touch("0x03", 20, 0, "Liquidated", A), Touch("0x03", 20, 1, "SettlementRequested", A),
             Touch("0x03", 20, 2, "SettlementRequested", A)],
    ops=[OPEN, RELEASE, LIQUIDATE],
    conversions=[CreditConversion("k1", 320_000_000, 320 * E18, 6),
                 CreditConversion("k2", 5 * E18, 5 * E18, 18)],
    insurance_fund_usd_e18=1_000 * E18 + 273 * E18 // 10, insurance_funded_usd_e18=[1_000 * E18],
    shortfalls_usd_e18=[], fee_pool_usd_e18=3 * E18 // 2,
    documents={"store:k1": {"event": {"amount": 320_000_000, "decimals": 6},
                            "transitions": [{"height": 3, "at_ms": 12}]}},
)


def only(inp: RiskAuditInput, invariant: str) -> list[str]:
    found = audit_risk(inp)
    assert found, "expected a violation"
    assert {v.invariant for v in found} == {invariant}, found
    return [v.detail for v in found]


def tripped(inp: RiskAuditInput, invariant: str) -> list[str]:
    """The violations of ``invariant`` (another invariant may trip too)."""
    found = [v.detail for v in audit_risk(inp) if v.invariant == invariant]
    assert found, f"expected an {invariant} violation"
    return found


def with_ops(*ops: RiskOp, **fields: object) -> RiskAuditInput:
    fee_pool = sum(o.fee_usd_e18 for o in ops if o.kind != OpKind.LIQUIDATE)
    funded = 1_000 * E18 + sum(o.fee_usd_e18 for o in ops if o.kind == OpKind.LIQUIDATE)
    base = replace(CLEAN, ops=list(ops), fee_pool_usd_e18=fee_pool, insurance_fund_usd_e18=funded)
    return replace(base, **fields)  # type: ignore[arg-type]


def test_the_clean_history_is_clean() -> None:
    assert audit_risk(CLEAN) == []
    summary = summarize_risk(CLEAN, [])
    assert summary["I7"] == {"checked": 2, "violations": 0, "skipped_not_exact": 0}
    assert set(summary) == set(RISK_INVARIANTS)


def test_margin_values_follow_the_venue_rounding() -> None:
    third = E18 // 3
    short = PositionView(-third, 3000 * 10**8, 0, 0)  # PnL floors toward -inf
    m = margin_values(100 * E18, short, MARKET, 3000 * 10**8 + 1)
    assert m.equity == 100 * E18 - third // 10**8 - 1
    assert m.notional == third * (3000 * 10**8 + 1) // 10**8 + 1
    assert m.initial == -(-m.notional * 100_000 // 10**6)


# ----- I6 ---------------------------------------------------------------------------------------


def test_i6_a_liquidation_that_settles_another_positions_lock() -> None:
    touches = [*CLEAN.touches, Touch("0x03", 20, 3, "SettlementRequested", B)]
    (detail,) = only(replace(CLEAN, touches=touches), "I6")
    assert "2 positions" in detail


def test_i6_a_credit_batch_may_credit_several_keys_but_nothing_else() -> None:
    touches = [*CLEAN.touches, Touch("0x00", 5, 2, "Traded", B)]
    only(replace(CLEAN, touches=touches), "I6")


def test_i6_a_liquidation_batch_touches_one_position_per_frame() -> None:
    batch = [Touch("0x99", 30, 0, "Liquidated", A), Touch("0x99", 30, 1, "SettlementRequested", A),
             Touch("0x99", 30, 2, "Liquidated", B), Touch("0x99", 30, 3, "SettlementRequested", B)]
    assert check_isolation(replace(CLEAN, touches=[*CLEAN.touches, *batch])) == []
    crossed = [*batch[:2], Touch("0x99", 30, 2, "SettlementRequested", B), *batch[2:]]
    (violation,) = check_isolation(replace(CLEAN, touches=[*CLEAN.touches, *crossed]))
    assert violation.invariant == "I6" and "frame changed 2 positions" in violation.detail


# ----- I7 ---------------------------------------------------------------------------------------


def test_i7_an_open_that_leaves_equity_below_initial_margin() -> None:
    thin = replace(OPEN, lanes=(usdc(300),))  # E = 298.5 < IM 300
    (detail,) = only(with_ops(thin), "I7")
    assert "E 298500000000000000000 < IM 300000000000000000000" in detail


def test_i7_a_release_that_leaves_equity_below_initial_margin() -> None:
    greedy = replace(RELEASE, released=(31337, USDC, 19 * E18))  # E 299.5 < 300
    only(with_ops(OPEN, greedy), "I7")


def test_i7_a_release_from_a_flat_position_with_no_loss_is_not_checked() -> None:
    flat = replace(RELEASE, before=FLAT, released=(31337, USDC, 320 * E18),
                   mark=FeedRead(ETH_FEED, None, None, 1, 10**20))
    assert audit_risk(with_ops(OPEN, flat)) == []


def test_i7_inexact_operations_are_skipped_and_counted() -> None:
    inp = with_ops(replace(OPEN, lanes=(usdc(300),), exact=False))
    assert audit_risk(inp) == []
    assert summarize_risk(inp, [])["I7"]["skipped_not_exact"] == 1


# ----- I8 ---------------------------------------------------------------------------------------


def test_i8_a_liquidation_of_a_healthy_position() -> None:
    healthy = replace(LIQUIDATE, lanes=(usdc(500),), fee_usd_e18=273 * E18 // 10)
    details = only(with_ops(OPEN, healthy), "I8")
    assert any(">= MM" in d for d in details)


def test_i8_a_wrong_fee() -> None:
    greedy = replace(LIQUIDATE, fee_usd_e18=30 * E18)
    details = tripped(with_ops(OPEN, RELEASE, greedy), "I8")
    assert any("fee charged" in d for d in details)


def test_i8_two_liquidations_for_one_trigger() -> None:
    step = replace(LIQUIDATE, closed_size_e18=E18 // 4, full=False, seized=(),
                   lanes=(usdc(400),), mark=mark(2850, T0 + 100), price_e8=2850 * 10**8,
                   fee_usd_e18=7_125 * E18 // 1000)
    again = replace(step, tx_id="0x04", height=21, timestamp=T0 + 301,
                    before=replace(LONG, size_e18=3 * E18 // 4, last_liquidation=T0 + 300))
    details = only(with_ops(OPEN, step, again), "I8")
    assert any("twice for one trigger" in d for d in details)
    assert any("within the cooldown" in d for d in details)


def test_i8_a_negative_equity_close_without_its_shortfall() -> None:
    # 1650: E = 310 - 1.5 - 1350 < 0: the fee is waived; shortfall = -E must be recorded.
    gap = replace(LIQUIDATE, mark=mark(1650, T0 + 100), price_e8=1650 * 10**8, fee_usd_e18=0,
                  seized=(Seizure(31337, USDC, 310_000_000, 6),))
    details = tripped(with_ops(OPEN, RELEASE, gap), "I8")
    assert any("shortfall recorded 0" in d for d in details)
    recorded = replace(gap, shortfall_usd_e18=1_041_500 * E18 // 1000)
    assert audit_risk(with_ops(OPEN, RELEASE, recorded,
                               shortfalls_usd_e18=[1_041_500 * E18 // 1000],
                               insurance_fund_usd_e18=1_000 * E18 - 1_041_500 * E18 // 1000)) == []


def test_i8_insurance_fund_and_fee_pool_ledgers() -> None:
    details = only(replace(CLEAN, insurance_fund_usd_e18=CLEAN.insurance_fund_usd_e18 * 2,
                           fee_pool_usd_e18=0), "I8")
    assert len(details) == 2


# ----- I9 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("op, change, needle", [
    (OPEN, {"timestamp": T0 + 61}, "age 61 s > max age 60 s"),
    (RELEASE, {"timestamp": T0 + 61}, "age 61 s > max age 60 s"),
    (LIQUIDATE, {"timestamp": T0 + 701}, "age 601 s > max age 600 s"),
    (OPEN, {"mark": FeedRead(ETH_FEED, 3000 * 10**8, T0, 1, 3000 * 10**8)}, "bound"),
    (OPEN, {"price_e8": 3001 * 10**8}, "the oracle's price was"),
    (LIQUIDATE, {"plan_tick": T0}, "plan tick"),
    (OPEN, {"lanes": (usdc(320, publish=T0 - 100),)}, "age 105 s"),
])
def test_i9_invalid_prices(op: RiskOp, change: dict[str, object], needle: str) -> None:
    ops = [replace(o, **change) if o is op else o for o in (OPEN, RELEASE, LIQUIDATE)]
    details = only(with_ops(*ops), "I9")
    assert any(needle in d for d in details), details


def test_i9_a_liquidation_may_use_a_price_users_may_not() -> None:
    assert LIQUIDATE.timestamp - (LIQUIDATE.mark.publish_time or 0) > MARKET.max_age_user_s
    assert audit_risk(CLEAN) == []


# ----- I10 --------------------------------------------------------------------------------------


def test_i10_a_credit_that_does_not_convert_exactly() -> None:
    bad = CreditConversion("k3", 1_000_001, 1_000_000 * 10**12, 6)
    (detail,) = only(replace(CLEAN, conversions=[*CLEAN.conversions, bad]), "I10")
    assert "10^(18 - 6)" in detail


def test_i10_a_float_in_what_users_see() -> None:
    docs = {"store:k9": {"event": {"amount": 1.5}}}
    (detail,) = only(replace(CLEAN, documents=docs), "I10")
    assert "$.event.amount" in detail


def test_i10_a_float_amount_in_an_operation() -> None:
    only(with_ops(OPEN, RELEASE, replace(LIQUIDATE, seized=(Seizure(31337, USDC, 2.5, 6),))),  # type: ignore[arg-type]
         "I10")


def test_i10_a_seizure_rounded_against_the_protocol() -> None:
    short = replace(LIQUIDATE, seized=(Seizure(31337, USDC, 298_799_999, 6),))
    (detail,) = only(with_ops(OPEN, RELEASE, short), "I10")
    assert "rounded against the protocol" in detail
