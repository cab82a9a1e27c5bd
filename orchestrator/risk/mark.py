"""The mark price rule (DESIGN §3, docs/mark.md): the exact mirror of ``MarkOracle.computeMark``.

A mark is the median of several independent sources (Chainlink and Pyth feeds) that are valid
for the caller's operation class, after dropping those that deviate from that median, its move
capped against an EMA of the mark. It never rests on fewer than ``min_sources`` (>= 2) sources,
so no single feed can set it. Same readings, parameters, time, max age and EMA: same integers
as the contract, the same reason for every source, and the same refusal.

Rounding (each stated, each as on chain):

- normalising to 1e8: ``value * 10**(8 + expo)``, exact when scaling up (saturating at
  ``2**256 - 1``, which no bound accepts), floored when scaling down; Chainlink answers use
  ``expo = -decimals()``;
- an even median floors the mean of the two middle prices;
- the EMA cap's band is ``[ceil(ema * (1e6 - cap) / 1e6), floor(ema * (1e6 + cap) / 1e6)]``;
- an EMA step floors its magnitude, so the EMA never passes the mark.

Pure: times are the judged chain's seconds passed in, never the host clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.risk.errors import InvalidMarkInput, TooFewSources, validated_model

__all__ = [
    "MAX_SOURCES",
    "MarkParams",
    "MarkResult",
    "SourceKind",
    "SourceReading",
    "SourceReason",
    "SourceState",
    "compute_mark",
    "ema_band",
    "ema_step",
    "normalize_e8",
    "source_states",
]

PPM = 1_000_000
MAX_SOURCES = 8  # the contract's bound on sources per id (gas of one read)
_U32 = 2**32 - 1
_U64 = 2**64 - 1
_U128 = 2**128 - 1
_U256 = 2**256 - 1
_I256 = 2**255
_I32 = 2**31


class SourceKind(IntEnum):
    """A feed's interface; the values are the contract's ``SourceKind``."""

    CHAINLINK = 0
    PYTH = 1


class SourceReason(IntEnum):
    """Why a source counted or not; the values are the contract's ``Reason`` codes.

    Checks run in this order and the first failure wins: UNREADABLE, NONPOSITIVE, STALE (no
    publish time), FUTURE, STALE (older than the max age), BOUND, CONFIDENCE (Pyth only);
    DEVIATION is judged last, among the otherwise valid sources.
    """

    OK = 0
    STALE = 1
    FUTURE = 2
    BOUND = 3
    CONFIDENCE = 4
    DEVIATION = 5
    UNREADABLE = 6
    NONPOSITIVE = 7


@dataclass(frozen=True, slots=True)
class SourceReading:
    """One source as read: ``answer * 10**expo`` USD per whole unit, published at ``time_s``.

    ``conf`` is Pyth's confidence in the same fixed point (0 for Chainlink). ``readable``
    False means the read reverted or returned malformed data. Ranges are the contract's ABI
    types (answer int256, conf uint64, expo int32, time uint256).

    Raises:
        InvalidMarkInput: a field that is not an integer in its range.
    """

    kind: SourceKind
    answer: int
    time_s: int
    expo: int = -8
    conf: int = 0
    readable: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.kind, SourceKind):
            raise InvalidMarkInput("kind", self.kind, "must be a SourceKind")
        if not isinstance(self.readable, bool):
            raise InvalidMarkInput("readable", self.readable, "must be a bool")
        for name, low, high in (
            ("answer", -_I256, _I256 - 1),
            ("time_s", 0, _U256),
            ("expo", -_I32, _I32 - 1),
            ("conf", 0, _U64),
        ):
            _require_int(name, getattr(self, name), low, high)

    @classmethod
    def chainlink(cls, answer: int, decimals: int, updated_at_s: int) -> SourceReading:
        """A Chainlink ``latestRoundData`` answer with the feed's ``decimals()``."""
        _require_int("decimals", decimals, 0, 255)
        return cls(SourceKind.CHAINLINK, answer, updated_at_s, expo=-decimals)

    @classmethod
    def pyth(cls, price: int, conf: int, expo: int, publish_time_s: int) -> SourceReading:
        """A Pyth ``getPriceUnsafe`` price (price int64, conf uint64, expo int32)."""
        _require_int("price", price, -(2**63), 2**63 - 1)
        return cls(SourceKind.PYTH, price, publish_time_s, expo=expo, conf=conf)

    @classmethod
    def unreadable(cls, kind: SourceKind) -> SourceReading:
        return cls(kind, 0, 0, expo=0, readable=False)

    @classmethod
    def from_tuple(cls, t: Sequence[Any]) -> SourceReading:
        """From the contract's ``Reading`` struct (kind, readable, answer, conf, expo, time).

        Raises:
            InvalidMarkInput: a field out of its range or of the wrong type.
        """
        if len(t) != 6:
            raise InvalidMarkInput("reading", t, "must have 6 fields")
        kind, readable, answer, conf, expo, time_s = t
        if kind not in (0, 1):
            raise InvalidMarkInput("kind", kind, "must be 0 (Chainlink) or 1 (Pyth)")
        return cls(SourceKind(kind), answer, time_s, expo=expo, conf=conf, readable=readable)

    def as_tuple(self) -> tuple[Any, ...]:
        """The contract's ``Reading`` struct."""
        return (int(self.kind), self.readable, self.answer, self.conf, self.expo, self.time_s)


class MarkParams(BaseModel):
    """Parameters of one mark (all integers; ``_ppm``: 1_000_000 = 100%, ``_e8``: USD 1e8).

    Invariants (the contract's ``validateParams``): ``2 <= min_sources <= 8``;
    ``0 < max_deviation_ppm <= 1e6``; ``0 < max_conf_ppm <= 1e6``; ``0 <= ema_cap_ppm < 1e6``
    (0 = no cap); ``0 < ema_alpha_ppm <= 1e6``; ``0 < poke_max_age_s < 2**32``;
    ``0 < min_price_e8 < max_price_e8 < 2**128``. Bounds are exclusive.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    min_sources: int = Field(ge=2, le=MAX_SOURCES, description="never fewer valid sources")
    max_deviation_ppm: int = Field(gt=0, le=PPM, description="dropped beyond this from median")
    max_conf_ppm: int = Field(gt=0, le=PPM, description="Pyth conf limit relative to price")
    ema_cap_ppm: int = Field(ge=0, lt=PPM, description="mark's band around the EMA; 0 = none")
    ema_alpha_ppm: int = Field(gt=0, le=PPM, description="weight of the mark in an EMA step")
    poke_max_age_s: int = Field(gt=0, le=_U32, description="max age a poke reads with")
    min_price_e8: int = Field(gt=0, le=_U128, description="lower bound (exclusive)")
    max_price_e8: int = Field(gt=0, le=_U128, description="upper bound (exclusive)")

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min_price_e8 >= self.max_price_e8:
            raise ValueError("min_price_e8 must be below max_price_e8")
        return self

    @classmethod
    def validated(cls, data: dict[str, Any]) -> MarkParams:
        """Build from a mapping, turning pydantic's error into :class:`InvalidRiskParams`.

        Raises:
            InvalidRiskParams: naming the first offending field (``"params"`` for a rule
                across fields).
        """
        return validated_model(cls, data)

    def as_tuple(self) -> tuple[int, ...]:
        """The contract's ``Params`` struct, field for field (``configure``/``computeMark``)."""
        return (self.min_sources, self.max_deviation_ppm, self.max_conf_ppm, self.ema_cap_ppm,
                self.ema_alpha_ppm, self.poke_max_age_s, self.min_price_e8, self.max_price_e8)


@dataclass(frozen=True, slots=True)
class SourceState:
    """One source as judged (the contract's ``sourceStates``); ``time_s`` 0 when unreadable."""

    price_e8: int
    time_s: int
    reason: SourceReason


@dataclass(frozen=True, slots=True)
class MarkResult:
    """``mark_e8`` after the EMA cap (``median_e8`` before it); ``publish_time_s`` the oldest
    publish time among the ``valid_sources`` used; per source, its price and reason."""

    mark_e8: int
    median_e8: int
    publish_time_s: int
    valid_sources: int
    prices_e8: tuple[int, ...]
    reasons: tuple[SourceReason, ...]


def normalize_e8(value: int, expo: int) -> int:
    """``value * 10**(8 + expo)`` for ``value >= 0``: exact up (saturating at 2**256 - 1),
    floored down."""
    k = 8 + expo
    # value < 2**256 < 10**78: beyond 77 digits the answer is known without the power (and
    # an int32 exponent would otherwise build a number of billions of digits)
    if value == 0 or k < -77:
        return 0
    if k > 77:
        return _U256
    exact: int = value * 10**k if k >= 0 else value // 10 ** (-k)
    return min(exact, _U256)


def source_states(
    readings: Sequence[SourceReading], params: MarkParams, now_s: int, max_age_s: int
) -> tuple[SourceState, ...]:
    """Every source judged for ``max_age_s`` at ``now_s``; never raises on a bad source."""
    _check_inputs(now_s, max_age_s, 0)
    prices, reasons, _, _ = _evaluate(readings, params, now_s, max_age_s)
    return tuple(
        SourceState(p, r.time_s if r.readable else 0, why)
        for p, r, why in zip(prices, readings, reasons, strict=True)
    )


def compute_mark(
    readings: Sequence[SourceReading],
    params: MarkParams,
    now_s: int,
    max_age_s: int,
    ema_e8: int = 0,
    *,
    oracle_id: str = "mark",
) -> MarkResult:
    """The mark of ``readings`` for an operation whose freshness is ``max_age_s``.

    Args:
        readings: one per configured source, in configuration order.
        params: the mark's parameters.
        now_s: the chain time the read happens at (block timestamp, < 2**64).
        max_age_s: the operation class's max age (user action or liquidation).
        ema_e8: the stored EMA (0 = not seeded: no cap), < 2**128.
        oracle_id: names the mark in the refusal.

    Raises:
        TooFewSources: fewer than ``min_sources`` sources left after the validity checks
            and the deviation drop (``valid`` is that count).
        InvalidMarkInput: a time, age or EMA out of its range.
    """
    _check_inputs(now_s, max_age_s, ema_e8)
    prices, reasons, valid, _ = _evaluate(readings, params, now_s, max_age_s)
    # ``valid`` counts what is left after the deviation drop, never more than before it:
    # one check covers both steps.
    if valid < params.min_sources:
        raise TooFewSources(oracle_id, valid, params.min_sources)
    used = [i for i, why in enumerate(reasons) if why is SourceReason.OK]
    median = _median([prices[i] for i in used])
    mark = median
    if params.ema_cap_ppm and ema_e8:
        low, high = ema_band(ema_e8, params.ema_cap_ppm)
        mark = min(max(mark, low), high)
    return MarkResult(
        mark,
        median,
        min(readings[i].time_s for i in used),
        len(used),
        tuple(prices),
        tuple(reasons),
    )


def ema_band(ema_e8: int, cap_ppm: int) -> tuple[int, int]:
    """``[ceil(ema * (1e6 - cap) / 1e6), floor(ema * (1e6 + cap) / 1e6)]``: the mark's band."""
    return -(-ema_e8 * (PPM - cap_ppm) // PPM), ema_e8 * (PPM + cap_ppm) // PPM


def ema_step(ema_e8: int, mark_e8: int, alpha_ppm: int) -> int:
    """One EMA step: seeds ``ema = mark`` when unseeded (0), else moves toward the mark by
    ``|mark - ema| * alpha_ppm / 1e6`` floored (never past it)."""
    if ema_e8 == 0:
        return mark_e8
    step = abs(mark_e8 - ema_e8) * alpha_ppm // PPM
    return ema_e8 + step if mark_e8 >= ema_e8 else ema_e8 - step


def _evaluate(
    readings: Sequence[SourceReading], params: MarkParams, now_s: int, max_age_s: int
) -> tuple[list[int], list[SourceReason], int, int]:
    """Per-source price and reason (DEVIATION against the median of the otherwise valid
    ones), the count still valid and that median (0 when none is valid)."""
    judged = [_check(r, params, now_s, max_age_s) for r in readings]
    prices = [p for p, _ in judged]
    reasons = [why for _, why in judged]
    valid = [p for p, why in judged if why is SourceReason.OK]
    if not valid:
        return prices, reasons, 0, 0
    median = _median(valid)
    count = len(valid)
    for i, (price, why) in enumerate(judged):
        if why is SourceReason.OK and abs(price - median) * PPM > params.max_deviation_ppm * median:
            reasons[i] = SourceReason.DEVIATION
            count -= 1
    return prices, reasons, count, median


def _check(
    r: SourceReading, params: MarkParams, now_s: int, max_age_s: int
) -> tuple[int, SourceReason]:
    if not r.readable:
        return 0, SourceReason.UNREADABLE
    if r.answer <= 0:
        return 0, SourceReason.NONPOSITIVE
    price = normalize_e8(r.answer, r.expo)
    if r.time_s == 0:
        return price, SourceReason.STALE
    if r.time_s > now_s:
        return price, SourceReason.FUTURE
    if now_s - r.time_s > max_age_s:
        return price, SourceReason.STALE
    if price <= params.min_price_e8 or price >= params.max_price_e8:
        return price, SourceReason.BOUND
    if r.kind is SourceKind.PYTH and (
        normalize_e8(r.conf, r.expo) * PPM > params.max_conf_ppm * price
    ):
        return price, SourceReason.CONFIDENCE
    return price, SourceReason.OK


def _median(values: list[int]) -> int:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) // 2


def _check_inputs(now_s: int, max_age_s: int, ema_e8: int) -> None:
    _require_int("now_s", now_s, 0, _U64)
    _require_int("max_age_s", max_age_s, 0, _U256)
    _require_int("ema_e8", ema_e8, 0, _U128)


def _require_int(field: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidMarkInput(field, value, "must be an integer")
    if not low <= value <= high:
        raise InvalidMarkInput(field, value, f"must be in [{low}, {high}]")
