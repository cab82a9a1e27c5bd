"""The mark price rule (DESIGN §3, docs/mark.md): every gate with exact marks, and properties.

Reference market: bounds (100, 100_000) USD exclusive, a source counts when at most 60 s old,
a 2% deviation limit and a 1% Pyth confidence limit, at least two sources.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.risk import (
    InvalidMarkInput,
    InvalidRiskParams,
    MarkParams,
    PriceInvalid,
    RiskParams,
    SourceKind,
    SourceReading,
    SourceReason,
    SourceState,
    TooFewSources,
    compute_mark,
    ema_step,
    source_states,
)
from orchestrator.risk.mark import ema_band, normalize_e8
from tests.unit.risk.constants import ETH_USD, MARK_PARAMS

E8 = 10**8
NOW = 1_700_000_000
AGE = 60
R = SourceReason
P = MARK_PARAMS


def params(**update: Any) -> MarkParams:
    return MarkParams.model_validate({**P.model_dump(), **update})


def cl(price_e8: int, age: int = 0, decimals: int = 8) -> SourceReading:
    """A Chainlink answer of ``price_e8`` (expressed in ``decimals``) ``age`` seconds old."""
    answer = price_e8 * 10 ** (decimals - 8) if decimals >= 8 else price_e8 // 10 ** (8 - decimals)
    return SourceReading.chainlink(answer, decimals, NOW - age)


def py(price_e8: int, conf_e8: int = 0, age: int = 0) -> SourceReading:
    return SourceReading.pyth(price_e8, conf_e8, -8, NOW - age)


def mark(*readings: SourceReading, p: MarkParams = P, ema: int = 0) -> int:
    return compute_mark(readings, p, NOW, AGE, ema).mark_e8


def reasons(*readings: SourceReading, p: MarkParams = P) -> list[SourceReason]:
    return [s.reason for s in source_states(readings, p, NOW, AGE)]


# ------------------------------------------------------------------ normalisation


@pytest.mark.parametrize(
    ("answer", "decimals", "expected", "reason"),
    [
        (2_000_123_456, 6, 200_012_345_600, R.OK),  # scaled up exactly
        (200_012_345_678, 8, 200_012_345_678, R.OK),
        (2_000_123_456_789_999_999_999, 18, 200_012_345_678, R.OK),  # floored, not rounded
        (1, 18, 0, R.BOUND),
        (5, 0, 500_000_000, R.BOUND),  # 5 USD: below the 100 USD bound
    ],
)
def test_chainlink_decimals_normalise_to_e8(
    answer: int, decimals: int, expected: int, reason: SourceReason
) -> None:
    assert normalize_e8(answer, -decimals) == expected
    reading = SourceReading.chainlink(answer, decimals, NOW)
    assert source_states([reading], P, NOW, AGE)[0] == SourceState(expected, NOW, reason)


def test_sources_of_different_decimals_agree_on_one_mark() -> None:
    # 2000.123456 (6 decimals), 2000.12345678 (8) and 2000.123456789999999999 (18)
    got = compute_mark(
        [
            SourceReading.chainlink(2_000_123_456, 6, NOW),
            SourceReading.chainlink(200_012_345_678, 8, NOW),
            SourceReading.chainlink(2_000_123_456_789_999_999_999, 18, NOW),
        ],
        P,
        NOW,
        AGE,
    )
    assert got.prices_e8 == (200_012_345_600, 200_012_345_678, 200_012_345_678)
    assert got.mark_e8 == 200_012_345_678


@pytest.mark.parametrize(
    ("price", "expo", "expected"),
    [
        (200_012_345, -5, 200_012_345_000),
        (200_012_345_678, -8, 200_012_345_678),
        (20_001_234_567_899, -10, 200_012_345_678),  # floored
        (7, 2, 70_000_000_000),
    ],
)
def test_pyth_expo_normalises_to_e8(price: int, expo: int, expected: int) -> None:
    assert normalize_e8(price, expo) == expected
    reading = SourceReading.pyth(price, 0, expo, NOW)
    assert source_states([reading], P, NOW, AGE)[0] == SourceState(expected, NOW, R.OK)


def test_extreme_exponents_saturate_up_and_floor_to_zero_down() -> None:
    assert normalize_e8(1, 70) == 2**256 - 1  # 10**78 does not fit in 256 bits
    assert normalize_e8(1, 69) == 10**77
    assert normalize_e8(2**255 - 1, 2**31 - 1) == 2**256 - 1
    assert normalize_e8(2**255 - 1, -(2**31)) == 0
    assert normalize_e8(0, 2**31 - 1) == 0
    assert normalize_e8(10**76, -68) == 10**16  # 10**76 / 10**76 * 1e8 exactly
    assert reasons(SourceReading.chainlink(1, 255, NOW), cl(2_000 * E8)) == [R.BOUND, R.OK]


# ------------------------------------------------------------------ validity gates


def test_staleness_is_inclusive_of_the_max_age() -> None:
    assert reasons(cl(2_000 * E8, AGE), cl(2_000 * E8, AGE + 1)) == [R.OK, R.STALE]
    assert reasons(SourceReading.chainlink(2_000 * E8, 8, 0), cl(2_000 * E8)) == [R.STALE, R.OK]


def test_a_future_publish_time_is_refused() -> None:
    assert reasons(cl(2_000 * E8, -1), py(2_000 * E8)) == [R.FUTURE, R.OK]


def test_bounds_are_exclusive() -> None:
    assert reasons(cl(100 * E8), cl(100 * E8 + 1), py(101 * E8)) == [R.BOUND, R.OK, R.OK]
    high = reasons(py(100_000 * E8), py(100_000 * E8 - 1), cl(99_999 * E8))
    assert high == [R.BOUND, R.OK, R.OK]


def test_pyth_confidence_limit_is_inclusive_and_normalised() -> None:
    # 1% of 2000 = 20 USD
    assert reasons(py(2_000 * E8, 20 * E8), py(2_000 * E8, 20 * E8 + 1)) == [R.OK, R.CONFIDENCE]
    # conf in expo -10 floors to e8 like the price: 20 USD + 99e-10 still counts as 20 USD
    wide = SourceReading.pyth(2_000 * 10**10, 20 * 10**10 + 99, -10, NOW)
    assert reasons(wide, cl(2_000 * E8)) == [R.OK, R.OK]


def test_unreadable_and_non_positive_sources_are_refused() -> None:
    got = source_states(
        [SourceReading.unreadable(SourceKind.PYTH), cl(0), cl(-5), cl(2_000 * E8)], P, NOW, AGE
    )
    assert got == (
        SourceState(0, 0, R.UNREADABLE),
        SourceState(0, NOW, R.NONPOSITIVE),
        SourceState(0, NOW, R.NONPOSITIVE),
        SourceState(2_000 * E8, NOW, R.OK),
    )


def test_first_failing_check_names_the_reason() -> None:
    # stale and at a bound: staleness is checked first; non-positive before staleness
    assert reasons(cl(100 * E8, AGE + 1), cl(-1, AGE + 1)) == [R.STALE, R.NONPOSITIVE]


# ------------------------------------------------------------------ median and deviation


def test_odd_median() -> None:
    assert mark(cl(2_010 * E8), py(2_000 * E8), cl(2_005 * E8)) == 2_005 * E8


def test_even_median_floors_the_mean_of_the_middle_two() -> None:
    got = mark(cl(2_000 * E8), cl(2_001 * E8), py(2_003 * E8 + 1), py(2_004 * E8))
    assert got == 2_002 * E8  # (2001e8 + 2003e8 + 1) // 2


def test_an_outlier_is_dropped_and_the_rest_give_the_mark() -> None:
    result = compute_mark([cl(2_000 * E8), cl(2_010 * E8), py(2_500 * E8)], P, NOW, AGE)
    # median 2010; 2500 is 24% away (> 2%); 2000 is 0.5% away: mark = (2000 + 2010) / 2
    assert result.mark_e8 == result.median_e8 == 2_005 * E8
    assert result.reasons == (R.OK, R.OK, R.DEVIATION)
    assert result.valid_sources == 2


def test_deviation_limit_is_inclusive() -> None:
    # median of (1000, 1000, 1020) is 1000; 1020 is exactly 2% away: kept
    kept = reasons(cl(1_000 * E8), py(1_000 * E8), cl(1_020 * E8))
    assert kept == [R.OK, R.OK, R.OK]
    dropped = reasons(cl(1_000 * E8), py(1_000 * E8), cl(1_020 * E8 + 1))
    assert dropped == [R.OK, R.OK, R.DEVIATION]


def test_publish_time_is_the_oldest_source_used() -> None:
    result = compute_mark(
        [cl(2_000 * E8, 10), py(2_001 * E8, age=30), cl(9_000 * E8, 50)], P, NOW, AGE
    )
    assert result.publish_time_s == NOW - 30  # the dropped 50 s old outlier does not count
    assert result.reasons[2] is R.DEVIATION


# ------------------------------------------------------------------ too few sources


def test_too_few_valid_sources_refuse_the_mark() -> None:
    with pytest.raises(TooFewSources) as err:
        compute_mark(
            [cl(2_000 * E8), cl(2_000 * E8, AGE + 1), py(2_000 * E8, 21 * E8)],
            P,
            NOW,
            AGE,
            oracle_id="ETH-USD",
        )
    assert (err.value.oracle_id, err.value.valid, err.value.minimum) == ("ETH-USD", 1, 2)
    assert isinstance(err.value, PriceInvalid)


def test_two_sources_that_disagree_give_no_mark() -> None:
    # median 2250: both are 11% away, both dropped; a single source never sets the mark
    with pytest.raises(TooFewSources) as err:
        mark(cl(2_000 * E8), py(2_500 * E8))
    assert err.value.valid == 0


def test_liquidation_age_counts_more_sources() -> None:
    readings = [cl(2_000 * E8), cl(2_002 * E8, 90), py(2_004 * E8, age=100)]
    with pytest.raises(TooFewSources):
        compute_mark(readings, params(min_sources=3), NOW, 30)
    assert compute_mark(readings, params(min_sources=3), NOW, 120).mark_e8 == 2_002 * E8


# ------------------------------------------------------------------ EMA cap and steps


def test_cap_clamps_the_mark_to_the_ema_band() -> None:
    capped = params(ema_cap_ppm=10_000)  # 1%
    up = compute_mark([cl(2_100 * E8), py(2_100 * E8)], capped, NOW, AGE, 2_000 * E8)
    assert (up.mark_e8, up.median_e8) == (2_020 * E8, 2_100 * E8)
    down = compute_mark([cl(1_900 * E8), py(1_900 * E8)], capped, NOW, AGE, 2_000 * E8)
    assert down.mark_e8 == 1_980 * E8
    inside = compute_mark([cl(2_010 * E8), py(2_010 * E8)], capped, NOW, AGE, 2_000 * E8)
    assert inside.mark_e8 == 2_010 * E8
    unseeded = compute_mark([cl(2_100 * E8), py(2_100 * E8)], capped, NOW, AGE, 0)
    assert unseeded.mark_e8 == 2_100 * E8
    no_cap = compute_mark([cl(2_100 * E8), py(2_100 * E8)], P, NOW, AGE, 2_000 * E8)
    assert no_cap.mark_e8 == 2_100 * E8


def test_cap_band_rounds_inward() -> None:
    # 1_000_001 * 0.999999 = 999_999.999999 -> up; 1_000_001 * 1.000001 = 1_000_002.000001 -> down
    assert ema_band(1_000_001, 1) == (1_000_000, 1_000_002)


def test_ema_step_seeds_then_moves_toward_the_mark_floored() -> None:
    assert ema_step(0, 2_000 * E8, 100_000) == 2_000 * E8
    assert ema_step(2_000 * E8, 2_100 * E8, 100_000) == 2_010 * E8
    assert ema_step(2_000 * E8, 1_900 * E8, 100_000) == 1_990 * E8
    assert ema_step(100, 103, 500_000) == 101  # +1.5 floored
    assert ema_step(100, 97, 500_000) == 99  # -1.5: the magnitude floored
    assert ema_step(100, 97, 1_000_000) == 97


# ------------------------------------------------------------------ parameters and inputs


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"min_sources": 1}, "min_sources"),
        ({"min_sources": 9}, "min_sources"),
        ({"max_deviation_ppm": 0}, "max_deviation_ppm"),
        ({"max_conf_ppm": 1_000_001}, "max_conf_ppm"),
        ({"ema_cap_ppm": 1_000_000}, "ema_cap_ppm"),
        ({"ema_alpha_ppm": 0}, "ema_alpha_ppm"),
        ({"poke_max_age_s": 0}, "poke_max_age_s"),
        ({"min_price_e8": 0}, "min_price_e8"),
        ({"max_price_e8": 2**128}, "max_price_e8"),
        ({"min_price_e8": 100_000 * E8}, "params"),
        ({"max_deviation_ppm": 20_000.0}, "max_deviation_ppm"),
        ({"surprise": 1}, "surprise"),
    ],
    ids=str,
)
def test_invalid_mark_params_name_the_field(update: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRiskParams) as err:
        MarkParams.validated({**P.model_dump(), **update})
    assert err.value.field == field


def test_risk_params_carry_optional_mark_params() -> None:
    assert ETH_USD.mark is None
    data = {**ETH_USD.model_dump(), "mark": P.model_dump()}
    assert RiskParams.validated(data).mark == P
    with pytest.raises(InvalidRiskParams) as err:
        RiskParams.validated({**data, "mark": {**P.model_dump(), "min_sources": 1}})
    assert err.value.field == "mark.min_sources"


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: SourceReading(SourceKind.PYTH, 2_000.0, NOW), "answer"),  # type: ignore[arg-type]
        (lambda: SourceReading(SourceKind.PYTH, True, NOW), "answer"),
        (lambda: SourceReading(SourceKind.PYTH, 2**255, NOW), "answer"),
        (lambda: SourceReading(SourceKind.PYTH, 1, -1), "time_s"),
        (lambda: SourceReading(SourceKind.PYTH, 1, NOW, expo=2**31), "expo"),
        (lambda: SourceReading(SourceKind.PYTH, 1, NOW, conf=2**64), "conf"),
        (lambda: SourceReading(1, 1, NOW), "kind"),  # type: ignore[arg-type]
        (lambda: SourceReading.chainlink(1, 256, NOW), "decimals"),
        (lambda: SourceReading.pyth(2**63, 0, -8, NOW), "price"),
        (lambda: compute_mark([], P, 2**64, AGE), "now_s"),
        (lambda: compute_mark([], P, NOW, -1), "max_age_s"),
        (lambda: compute_mark([], P, NOW, AGE, 2**128), "ema_e8"),
    ],
)
def test_malformed_inputs_are_refused_naming_the_field(build: Any, field: str) -> None:
    with pytest.raises(InvalidMarkInput) as err:
        build()
    assert err.value.field == field and isinstance(err.value, ValueError)


# ------------------------------------------------------------------ properties

prices_e8 = st.integers(min_value=100 * E8 + 1, max_value=100_000 * E8 - 1)


@st.composite
def readings(draw: st.DrawFn) -> SourceReading:
    kind = draw(st.sampled_from(SourceKind))
    price = draw(st.one_of(prices_e8, st.integers(-(10**3), 10**21)))
    age = draw(st.integers(-5, 2 * AGE))
    if kind is SourceKind.CHAINLINK:
        decimals = draw(st.sampled_from([6, 8, 18]))
        return cl(price, age, decimals) if price > 0 else SourceReading.chainlink(price, 8, NOW)
    conf = draw(st.integers(0, max(price, 0) // 50))
    return py(price, conf, age) if abs(price) < 2**63 else py(1, 0, age)


@given(st.lists(readings(), max_size=8), st.integers(2, 4))
def test_mark_lies_within_the_valid_prices(rs: list[SourceReading], k: int) -> None:
    p = params(min_sources=k)
    states = source_states(rs, p, NOW, AGE)
    try:
        result = compute_mark(rs, p, NOW, AGE)
    except TooFewSources as err:
        assert sum(s.reason is R.OK for s in states) == err.valid < k
        return
    used = [s.price_e8 for s in states if s.reason is R.OK]
    assert len(used) == result.valid_sources >= k
    assert min(used) <= result.mark_e8 <= max(used)
    assert result.publish_time_s == min(s.time_s for s in states if s.reason is R.OK)
    assert compute_mark(list(reversed(rs)), p, NOW, AGE).mark_e8 == result.mark_e8


@given(
    center=st.integers(1_000 * E8, 50_000 * E8),
    offsets=st.lists(st.integers(-4_000, 4_000), min_size=2, max_size=7),  # ppm, 0.4%
    outlier=st.one_of(readings(), st.builds(cl, st.integers(1, 10**15))),
    position=st.integers(0, 7),
)
def test_one_outlier_cannot_move_the_mark_outside_the_honest_range(
    center: int, offsets: list[int], outlier: SourceReading, position: int
) -> None:
    honest = [center + center * o // 1_000_000 for o in offsets]
    rs: list[SourceReading] = [cl(h) if i % 2 else py(h) for i, h in enumerate(honest)]
    rs.insert(position % (len(rs) + 1), outlier)
    result = compute_mark(rs, params(min_sources=len(honest)), NOW, AGE)
    assert min(honest) <= result.mark_e8 <= max(honest)


@given(
    ema=st.integers(1, 2**100),
    mark_e8=st.integers(1, 2**100),
    alpha=st.integers(1, 1_000_000),
    cap=st.integers(1, 999_999),
)
def test_ema_step_and_band_stay_between(ema: int, mark_e8: int, alpha: int, cap: int) -> None:
    stepped = ema_step(ema, mark_e8, alpha)
    assert min(ema, mark_e8) <= stepped <= max(ema, mark_e8)
    low, high = ema_band(ema, cap)
    assert low <= ema <= high
    assert low * 1_000_000 >= ema * (1_000_000 - cap) and high * 1_000_000 <= ema * (
        1_000_000 + cap
    )
