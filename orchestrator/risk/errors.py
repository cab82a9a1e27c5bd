"""Typed errors of the risk core. All are :class:`shared.errors.OrchestratorError`.

::

    OrchestratorError
    └── RiskError
        ├── InvalidRiskParams(field, value, reason)      also a ValueError
        ├── InvalidPosition(position_key, field, reason) also a ValueError
        ├── PriceInvalid(asset, reason)                  never valued on (ORA-01, I9)
        │   ├── MissingPrice(asset)
        │   ├── StalePrice(asset, age_s, max_age_s, op_class)
        │   ├── PriceFromFuture(asset, publish_time_s, now_chain_s)
        │   ├── PriceAtBound(asset, price_e8, bound_e8)
        │   └── TooFewSources(oracle_id, valid, minimum)  mark on < min_sources (mark.py)
        ├── LiquidationPending(position_key)             user action refused (LIQ-03)
        ├── InsufficientMargin(position_key, equity_usd_e18, required_usd_e18)   I7
        ├── AccountNotLiquidatable(position_key, equity_usd_e18, maintenance_usd_e18)
        ├── LiquidationCooldown(position_key, ready_at_s)
        └── InvalidMarkInput(field, value, reason)       also a ValueError (mark.py)
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shared.errors import OrchestratorError

__all__ = [
    "AccountNotLiquidatable",
    "InsufficientMargin",
    "InvalidMarkInput",
    "InvalidPosition",
    "InvalidRiskParams",
    "LiquidationCooldown",
    "LiquidationPending",
    "MissingPrice",
    "PriceAtBound",
    "PriceFromFuture",
    "PriceInvalid",
    "RiskError",
    "StalePrice",
    "TooFewSources",
    "validated_model",
]


class RiskError(OrchestratorError):
    """Root of the risk core's refusals."""


class InvalidRiskParams(RiskError, ValueError):
    """A ``RiskParams`` field breaks an invariant; ``field`` is its dotted path."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"risk params {field}={value!r}: {reason}")


class InvalidPosition(RiskError, ValueError):
    """A position snapshot is not well formed (wrong types, negative amounts, unknown asset)."""

    def __init__(self, position_key: str, field: str, reason: str) -> None:
        self.position_key, self.field, self.reason = position_key, field, reason
        super().__init__(f"position {position_key} {field}: {reason}")


class PriceInvalid(RiskError):
    """A price may not be used for the requested operation class."""

    def __init__(self, asset: str, reason: str) -> None:
        self.asset, self.reason = asset, reason
        super().__init__(f"price {asset}: {reason}")


class MissingPrice(PriceInvalid):
    def __init__(self, asset: str) -> None:
        super().__init__(asset, "no tick for this asset")


class StalePrice(PriceInvalid):
    def __init__(self, asset: str, age_s: int, max_age_s: int, op_class: str) -> None:
        self.age_s, self.max_age_s, self.op_class = age_s, max_age_s, op_class
        super().__init__(asset,
                         f"{age_s} s old on the chain clock; {op_class} allows {max_age_s} s")


class PriceFromFuture(PriceInvalid):
    def __init__(self, asset: str, publish_time_s: int, now_chain_s: int) -> None:
        self.publish_time_s, self.now_chain_s = publish_time_s, now_chain_s
        super().__init__(asset, f"published at {publish_time_s}, after chain time {now_chain_s}")


class PriceAtBound(PriceInvalid):
    """At or beyond the feed's min/max bound: a clamped feed looks exactly like this."""

    def __init__(self, asset: str, price_e8: int, bound_e8: int) -> None:
        self.price_e8, self.bound_e8 = price_e8, bound_e8
        super().__init__(asset, f"price_e8 {price_e8} at or beyond bound {bound_e8}")


class LiquidationPending(RiskError):
    def __init__(self, position_key: str) -> None:
        self.position_key = position_key
        super().__init__(f"position {position_key}: a liquidation is pending; action refused")


class InsufficientMargin(RiskError):
    def __init__(self, position_key: str, equity_usd_e18: int, required_usd_e18: int) -> None:
        self.position_key = position_key
        self.equity_usd_e18, self.required_usd_e18 = equity_usd_e18, required_usd_e18
        super().__init__(f"position {position_key}: equity {equity_usd_e18} below initial "
                         f"margin {required_usd_e18} (usd_e18)")


class AccountNotLiquidatable(RiskError):
    def __init__(self, position_key: str, equity_usd_e18: int, maintenance_usd_e18: int) -> None:
        self.position_key = position_key
        self.equity_usd_e18, self.maintenance_usd_e18 = equity_usd_e18, maintenance_usd_e18
        super().__init__(f"position {position_key}: equity {equity_usd_e18} >= maintenance "
                         f"{maintenance_usd_e18}; not liquidatable")


class LiquidationCooldown(RiskError):
    """A partial step ran less than ``cooldown_s`` ago (chain time); retry at ``ready_at_s``."""

    def __init__(self, position_key: str, ready_at_s: int) -> None:
        self.position_key, self.ready_at_s = position_key, ready_at_s
        super().__init__(f"position {position_key}: next partial step at chain time {ready_at_s}")


class TooFewSources(PriceInvalid):
    """Fewer than ``minimum`` sources of a mark are valid (after the deviation drop): no mark,
    so no risk-adding user action; never valued on a single source."""

    def __init__(self, oracle_id: str, valid: int, minimum: int) -> None:
        self.oracle_id, self.valid, self.minimum = oracle_id, valid, minimum
        super().__init__(oracle_id, f"{valid} valid source(s), the mark needs {minimum}")


class InvalidMarkInput(RiskError, ValueError):
    """A reading, time, age or EMA handed to the mark rule is not an integer in its range."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field, self.value, self.reason = field, value, reason
        super().__init__(f"mark input {field}={value!r}: {reason}")


M = TypeVar("M", bound=BaseModel)


def validated_model(model: type[M], data: dict[str, Any]) -> M:
    """Build ``model`` from a mapping, turning pydantic's error into :class:`InvalidRiskParams`
    naming the first offending field (dotted path, or ``"params"`` for a rule across fields)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "params"
        raise InvalidRiskParams(field, first.get("input"), first["msg"]) from exc
