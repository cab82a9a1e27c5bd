"""Typed errors of the venue seam. All are :class:`shared.errors.OrchestratorError`.

::

    OrchestratorError
    ├── ConfigError(ValueError)
    │   ├── UnknownVenue(name, known)              no adapter registered under that name
    │   └── VenueConflict(name, targets)           two different adapters claim one name
    └── ChainError
        └── TxRejected(chain, tx_id, reason)
            └── LiquidationRefused(chain, position_key, reason, code)   the venue said no
                ├── PositionNotLiquidatable(equity, maintenance)   E >= MM at its oracle
                ├── NoOpenPosition                                 flat: nothing to close
                └── LiquidationCoolingDown(until)                  a partial step too soon

``LiquidationRefused`` is a ``TxRejected``, so callers that already handle refusals keep
working; ``no_op`` is True when the refusal means the trigger was handled or no longer applies
(an idempotent task treats it as success, never as a reason to retry).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum

from shared.errors import ConfigError, TxRejected

__all__ = [
    "LiquidationCoolingDown",
    "LiquidationRefused",
    "NoOpenPosition",
    "PositionNotLiquidatable",
    "RefusalCode",
    "UnknownVenue",
    "VenueConflict",
    "refusal_from_reason",
]


class UnknownVenue(ConfigError):
    """No venue adapter is registered under ``name``; ``known`` lists the registered ones."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name, self.known = name, tuple(known)
        listed = ", ".join(self.known) or "none"
        super().__init__("venue", f"unknown venue adapter {name!r}; registered: {listed}")


class VenueConflict(ConfigError):
    """Two different adapters are registered under one name; neither is used."""

    def __init__(self, name: str, targets: Sequence[str]) -> None:
        self.name, self.targets = name, tuple(targets)
        super().__init__("venue", f"venue adapter {name!r} is registered by several entry "
                                  f"points: {', '.join(self.targets)}")


class RefusalCode(StrEnum):
    NOT_LIQUIDATABLE = "not_liquidatable"  # E >= MM (or MM == 0) at the venue's oracle
    NO_OPEN_POSITION = "no_open_position"  # flat: a full liquidation already closed it
    COOLDOWN = "cooldown"  # a partial step within the cooldown of the last one
    STEP_TOO_LARGE = "step_too_large"  # the fraction exceeds the market's step max
    PRICE_INVALID = "price_invalid"  # stale or out-of-bounds price: retry on a new tick
    OTHER = "other"


# Refusals that mean "this trigger was handled, or does not apply at this state": a second
# submission of the same plan lands here, so it is success for an idempotent task.
_NO_OP = frozenset({RefusalCode.NOT_LIQUIDATABLE, RefusalCode.NO_OPEN_POSITION,
                    RefusalCode.COOLDOWN, RefusalCode.STEP_TOO_LARGE})


class LiquidationRefused(TxRejected):
    """The venue refused a liquidation; ``reason`` is its decoded refusal."""

    code: RefusalCode = RefusalCode.OTHER

    def __init__(self, chain: str, position_key: str, reason: str, *,
                 tx_id: str | None = None, code: RefusalCode | None = None) -> None:
        self.position_key = position_key
        if code is not None:
            self.code = code
        super().__init__(chain, tx_id, reason)

    @property
    def no_op(self) -> bool:
        """True when the trigger was already handled or does not apply (not worth a retry)."""
        return self.code in _NO_OP


class PositionNotLiquidatable(LiquidationRefused):
    """``E >= MM`` at the venue's own oracle (values in usd_e18, None when not reported)."""

    code = RefusalCode.NOT_LIQUIDATABLE

    def __init__(self, chain: str, position_key: str, reason: str, *,
                 equity_usd_e18: int | None = None, maintenance_usd_e18: int | None = None,
                 tx_id: str | None = None) -> None:
        self.equity_usd_e18, self.maintenance_usd_e18 = equity_usd_e18, maintenance_usd_e18
        super().__init__(chain, position_key, reason, tx_id=tx_id)


class NoOpenPosition(LiquidationRefused):
    code = RefusalCode.NO_OPEN_POSITION


class LiquidationCoolingDown(LiquidationRefused):
    """A partial step is refused until ``until`` (chain time, s)."""

    code = RefusalCode.COOLDOWN

    def __init__(self, chain: str, position_key: str, reason: str, *,
                 until: int | None = None, tx_id: str | None = None) -> None:
        self.until = until
        super().__init__(chain, position_key, reason, tx_id=tx_id)


_CALL = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\((?P<args>[^)]*)\)")
_CODES = {"StepTooLarge": RefusalCode.STEP_TOO_LARGE, "StalePrice": RefusalCode.PRICE_INVALID,
          "PriceOutOfBounds": RefusalCode.PRICE_INVALID,
          "PriceUnavailable": RefusalCode.PRICE_INVALID,
          "TooFewSources": RefusalCode.PRICE_INVALID, "ReadGasTooLow": RefusalCode.PRICE_INVALID,
          "CollateralNotPriced": RefusalCode.PRICE_INVALID}


def refusal_from_reason(chain: str, position_key: str, reason: str,
                        tx_id: str | None = None) -> LiquidationRefused:
    """The typed refusal for a venue's decoded revert, e.g. ``NotLiquidatable(5, 7)``.

    Names follow the reference venue's custom errors; a partner adapter may build the
    classes directly instead.
    """
    match = _CALL.match(reason.strip())
    name = match["name"] if match else ""
    args = [a.strip() for a in match["args"].split(",")] if match and match["args"] else []
    ints = [int(a) for a in args if re.fullmatch(r"-?\d+", a)]
    if name == "NotLiquidatable":
        pair = ints[:2] if len(ints) >= 2 else [None, None]
        return PositionNotLiquidatable(chain, position_key, reason, equity_usd_e18=pair[0],
                                       maintenance_usd_e18=pair[1], tx_id=tx_id)
    if name == "NoOpenTrade":
        return NoOpenPosition(chain, position_key, reason, tx_id=tx_id)
    if name == "LiquidationCooldown":
        return LiquidationCoolingDown(chain, position_key, reason,
                                      until=ints[0] if ints else None, tx_id=tx_id)
    return LiquidationRefused(chain, position_key, reason, tx_id=tx_id,
                              code=_CODES.get(name, RefusalCode.OTHER))
