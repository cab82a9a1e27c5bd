"""Risk parameters: one validated, frozen pydantic model per (venue, market).

Venues tune their own risk module through this model and publish it; others read it through
the JSON schema (:func:`risk_params_schema`, committed as ``risk_params.schema.json`` beside
this file). Every field is an integer in the unit its name states: ``_ppm`` (1_000_000 = 100%),
``_e8`` (USD per whole unit, scaled 1e8), ``_usd_e18`` (1 USD = 10**18), ``_s`` (seconds of
chain time), ``_ppb`` (parts per billion).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.risk.errors import validated_model
from orchestrator.risk.mark import MarkParams

__all__ = [
    "PPM",
    "CollateralParams",
    "OpClass",
    "RiskParams",
    "risk_params_schema",
]

PPM = 1_000_000
_U256 = 2**256 - 1
_FROZEN = ConfigDict(frozen=True, extra="forbid", strict=True)


class OpClass(StrEnum):
    """Operation classes with their own price freshness rule (ORA-01)."""

    USER_ACTION = "user_action"  # open, increase, remove margin, withdraw
    LIQUIDATION = "liquidation"


class CollateralParams(BaseModel):
    """One collateral asset accepted by a market.

    Invariants: ``0 <= haircut_ppm < 1_000_000``; ``0 < min_price_e8 < max_price_e8``.
    ``stable`` marks an asset whose value is taken as independent of the market's mark (the
    liquidation price then has a closed form).
    """

    model_config = _FROZEN

    haircut_ppm: int = Field(ge=0, lt=PPM)
    stable: bool = False
    min_price_e8: int = Field(gt=0)
    max_price_e8: int = Field(gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.min_price_e8 >= self.max_price_e8:
            raise ValueError("min_price_e8 must be below max_price_e8")
        return self


class RiskParams(BaseModel):
    """Risk parameters of one market on one venue. All integers; no field is a float.

    Invariants (checked on construction; a violation raises pydantic's ``ValidationError``,
    or :class:`InvalidRiskParams` naming the field through :meth:`validated`):

    - ``0 < mmr_ppm <= imr_ppm <= 1_000_000``
    - ``mmr_ppm + buffer_max_ppm <= imr_ppm`` and ``mmr_ppm + buffer_max_ppm < 1_000_000``:
      a position that just met IM is not liquidatable at the same price, whatever the buffer,
      and a long's liquidation price is always finite.
    - ``0 <= liq_fee_ppm < mmr_ppm``; ``fee_cap_usd_e18 >= 0``
    - ``0 < step_max_ppm <= 1_000_000``; ``0 < full_ratio_ppm <= 1_000_000``
    - ``dust_usd_e18 >= 0``; ``cooldown_s >= 0``
    - ``0 < max_price_age_user_s < max_price_age_liquidation_s``: user actions need a fresher
      price than liquidations; ``max_price_future_s >= 0``
    - ``0 < min_price_e8 < max_price_e8`` (a price at either bound is invalid: a clamped feed)
    - ``0 < vol_lambda_ppm < 1_000_000``; ``buffer_k_ppm, buffer_horizon_s, buffer_max_ppm,
      vol_sigma0_ppb >= 0``
    - ``collateral`` is not empty; each asset ``0 <= haircut_ppm < 1_000_000`` and valid bounds.
    - ``mark``, when given, holds :class:`~orchestrator.risk.mark.MarkParams` invariants.
    """

    model_config = _FROZEN

    venue: str = Field(min_length=1, description="venue identifier, e.g. 'evm-b:0x...'")
    market: str = Field(min_length=1, description="market symbol, e.g. 'ETH-USD'")
    base_asset: str = Field(min_length=1, description="asset whose oracle price is the mark")

    imr_ppm: int = Field(gt=0, le=PPM, description="initial margin rate")
    mmr_ppm: int = Field(gt=0, le=PPM, description="maintenance margin rate before buffer")

    buffer_k_ppm: int = Field(ge=0, le=10**12, description="k of the buffer, scaled 1e6")
    buffer_horizon_s: int = Field(ge=0, le=10**9, description="horizon of the buffer")
    buffer_max_ppm: int = Field(ge=0, lt=PPM, description="cap of the volatility buffer")
    vol_lambda_ppm: int = Field(gt=0, lt=PPM, description="EWMA decay per tick")
    vol_sigma0_ppb: int = Field(ge=0, le=10**12,
                                description="sigma per sqrt(second) before any return, 1e9")

    liq_fee_ppm: int = Field(ge=0, lt=PPM, description="liquidation fee on closed notional")
    fee_cap_usd_e18: int = Field(ge=0, le=_U256, description="cap of one step's fee")
    step_max_ppm: int = Field(gt=0, le=PPM, description="largest fraction closed per step")
    full_ratio_ppm: int = Field(gt=0, le=PPM, description="full if E < MM * ratio / 1e6")
    dust_usd_e18: int = Field(ge=0, le=_U256, description="full if the remainder is smaller")
    cooldown_s: int = Field(ge=0, le=10**9, description="chain seconds between partial steps")

    max_price_age_user_s: int = Field(gt=0, description="freshness for user actions")
    max_price_age_liquidation_s: int = Field(gt=0, description="freshness for liquidations")
    max_price_future_s: int = Field(default=0, ge=0, description="publish-time skew allowed")
    min_price_e8: int = Field(gt=0, description="lower bound of the mark feed (exclusive)")
    max_price_e8: int = Field(gt=0, description="upper bound of the mark feed (exclusive)")

    collateral: dict[str, CollateralParams] = Field(min_length=1)

    mark: MarkParams | None = Field(
        default=None, description="multi-source mark rule (docs/mark.md); None: single feed"
    )

    @model_validator(mode="after")
    def _invariants(self) -> Self:
        checks: list[tuple[bool, str]] = [
            (self.mmr_ppm <= self.imr_ppm, "mmr_ppm must not exceed imr_ppm"),
            (self.mmr_ppm + self.buffer_max_ppm <= self.imr_ppm,
             "mmr_ppm + buffer_max_ppm must not exceed imr_ppm"),
            (self.mmr_ppm + self.buffer_max_ppm < PPM, "mmr_ppm + buffer_max_ppm must be < 1e6"),
            (self.liq_fee_ppm < self.mmr_ppm, "liq_fee_ppm must be below mmr_ppm"),
            (self.max_price_age_user_s < self.max_price_age_liquidation_s,
             "max_price_age_user_s must be below max_price_age_liquidation_s"),
            (self.min_price_e8 < self.max_price_e8, "min_price_e8 must be below max_price_e8"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        return self

    @classmethod
    def validated(cls, data: dict[str, Any]) -> RiskParams:
        """Build from a mapping, turning pydantic's error into :class:`InvalidRiskParams`.

        Raises:
            InvalidRiskParams: naming the first offending field (dotted path, or ``"params"``
                for a rule across fields).
        """
        return validated_model(cls, data)

    def max_price_age_s(self, op_class: OpClass) -> int:
        """Largest accepted age of a price for ``op_class`` (seconds of chain time)."""
        if op_class is OpClass.USER_ACTION:
            return self.max_price_age_user_s
        return self.max_price_age_liquidation_s

    def price_bounds_e8(self, asset: str) -> tuple[int, int] | None:
        """Exclusive (min, max) bounds of ``asset``'s feed; the mark's for ``base_asset``."""
        if asset == self.base_asset:
            return self.min_price_e8, self.max_price_e8
        entry = self.collateral.get(asset)
        return None if entry is None else (entry.min_price_e8, entry.max_price_e8)

    def haircut_ppm(self, asset: str) -> int | None:
        entry = self.collateral.get(asset)
        return None if entry is None else entry.haircut_ppm


def risk_params_schema() -> dict[str, Any]:
    """JSON schema of :class:`RiskParams` (the committed ``risk_params.schema.json``)."""
    return RiskParams.model_json_schema()
