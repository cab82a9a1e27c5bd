"""Exact integer margin rules for one isolated position (DESIGN §3, I7, I8, I10).

Every function here is pure and reads one position only (I6). The fixed-point rules and their
rounding are listed in ``orchestrator/risk/__init__.py``; each function below names the rule it
implements and the direction it rounds. Python's ``//`` floors toward -inf, which is the rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.risk.errors import InvalidPosition, InvalidRiskParams, MissingPrice
from orchestrator.risk.params import PPM, RiskParams

__all__ = [
    "PRICE_SCALE",
    "USD_SCALE",
    "CollateralLot",
    "Position",
    "Risk",
    "ceil_div",
    "check_buffer_ppm",
    "collateral_value_usd_e18",
    "equity_usd_e18",
    "initial_margin_usd_e18",
    "is_liquidatable",
    "liquidatable_at",
    "maintenance_margin_usd_e18",
    "notional_usd_e18",
    "position_collateral_usd_e18",
    "position_risk",
    "riskier_than",
    "unrealized_pnl_usd_e18",
]

PRICE_SCALE = 10**8  # price_e8: USD per whole unit * 1e8
USD_SCALE = 10**18  # usd_e18: 1 USD


def ceil_div(numerator: int, denominator: int) -> int:
    """``ceil(numerator / denominator)`` for ``denominator > 0``, exact for any sign."""
    return -((-numerator) // denominator)


@dataclass(frozen=True, slots=True)
class CollateralLot:
    """``amount18`` of ``asset``, normalised to 18 decimals (rounded down at the lock, NUM-01)."""

    asset: str
    amount18: int


@dataclass(frozen=True, slots=True)
class Position:
    """Snapshot of one isolated position: one market, one side, its own collateral only.

    ``size_e18`` is signed (long > 0, short < 0) in base units * 1e18; ``entry_e8`` the entry
    price; ``accrued_fees_usd_e18`` what the position owes and has not settled (fees, funding);
    ``version`` increases with every ledger change (it enters the liquidation plan id).
    """

    key: str
    version: int
    size_e18: int
    entry_e8: int
    collateral: tuple[CollateralLot, ...]
    accrued_fees_usd_e18: int = 0
    liquidation_pending: bool = False

    def __post_init__(self) -> None:
        for name in ("version", "size_e18", "entry_e8", "accrued_fees_usd_e18"):
            if not _is_int(getattr(self, name)):
                raise InvalidPosition(self.key, name, "must be an integer")
        if self.version < 0:
            raise InvalidPosition(self.key, "version", "must be >= 0")
        if self.entry_e8 <= 0 and self.size_e18 != 0:
            raise InvalidPosition(self.key, "entry_e8", "must be > 0 for an open position")
        if not isinstance(self.collateral, tuple):
            raise InvalidPosition(self.key, "collateral", "must be a tuple of CollateralLot")
        for i, lot in enumerate(self.collateral):
            if not isinstance(lot, CollateralLot) or not _is_int(lot.amount18) or lot.amount18 < 0:
                raise InvalidPosition(self.key, f"collateral[{i}]", "amount18 must be an int >= 0")

    def assets(self) -> tuple[str, ...]:
        """Assets whose prices value this position: the collateral assets (sorted)."""
        return tuple(sorted({lot.asset for lot in self.collateral}))


@dataclass(frozen=True, slots=True)
class Risk:
    """Equity and requirements of one position at one set of prices, in usd_e18 (ints)."""

    collateral_usd_e18: int  # C, haircut applied, >= 0
    unrealized_pnl_usd_e18: int  # floored toward -inf
    equity_usd_e18: int  # E = C + pnl - accrued fees; may be negative
    notional_usd_e18: int  # N, rounded up
    initial_margin_usd_e18: int  # IM, rounded up
    maintenance_margin_usd_e18: int  # MM incl. the volatility buffer, rounded up

    def is_liquidatable(self) -> bool:
        """``MM > 0 and E < MM`` (the venue contract applies the same rule)."""
        mm = self.maintenance_margin_usd_e18
        return mm > 0 and self.equity_usd_e18 < mm

    def meets_initial_margin(self) -> bool:
        """``E >= IM`` (I7)."""
        return self.equity_usd_e18 >= self.initial_margin_usd_e18


def riskier_than(a: Risk, b: Risk) -> bool:
    """True if a's E/MM ratio is lower than b's; cross-multiplied, no division (MM >= 0)."""
    lhs = a.equity_usd_e18 * b.maintenance_margin_usd_e18
    return lhs < b.equity_usd_e18 * a.maintenance_margin_usd_e18


def collateral_value_usd_e18(amount18: int, price_e8: int, haircut_ppm: int) -> int:
    """``floor(floor(amount18 * price_e8 / 1e8) * (1e6 - haircut_ppm) / 1e6)``: rounded down."""
    value = amount18 * price_e8 // PRICE_SCALE
    return value * (PPM - haircut_ppm) // PPM


def notional_usd_e18(size_e18: int, mark_e8: int) -> int:
    """``ceil(|size_e18| * mark_e8 / 1e8)``: rounded up (it drives the requirements)."""
    return ceil_div(abs(size_e18) * mark_e8, PRICE_SCALE)


def unrealized_pnl_usd_e18(size_e18: int, entry_e8: int, mark_e8: int) -> int:
    """``floor(size_e18 * (mark_e8 - entry_e8) / 1e8)``, floored toward -inf (losses grow)."""
    return size_e18 * (mark_e8 - entry_e8) // PRICE_SCALE


def initial_margin_usd_e18(notional: int, imr_ppm: int) -> int:
    """``ceil(N * imr_ppm / 1e6)``: rounded up."""
    return ceil_div(notional * imr_ppm, PPM)


def maintenance_margin_usd_e18(notional: int, mmr_ppm: int, buffer_ppm: int) -> int:
    """``ceil(N * (mmr_ppm + buffer_ppm) / 1e6)``: rounded up."""
    return ceil_div(notional * (mmr_ppm + buffer_ppm), PPM)


def equity_usd_e18(collateral: int, pnl: int, accrued_fees: int) -> int:
    """``E = C + pnl - accrued_fees`` (no rounding: all terms are already integers)."""
    return collateral + pnl - accrued_fees


def position_collateral_usd_e18(position: Position, prices_e8: Mapping[str, int],
                                params: RiskParams) -> int:
    """C: the sum of the lots' haircut values (each rounded down on its own).

    Raises:
        InvalidPosition: a lot's asset is not accepted by the market.
        MissingPrice: no price for a lot's asset.
    """
    total = 0
    for lot in position.collateral:
        haircut = params.haircut_ppm(lot.asset)
        if haircut is None:
            raise InvalidPosition(position.key, "collateral", f"{lot.asset} not accepted by "
                                  f"{params.market}")
        price = prices_e8.get(lot.asset)
        if price is None:
            raise MissingPrice(lot.asset)
        total += collateral_value_usd_e18(lot.amount18, price, haircut)
    return total


def check_buffer_ppm(buffer_ppm: int, params: RiskParams) -> None:
    """Refuse a volatility buffer outside ``[0, params.buffer_max_ppm]`` or not an int.

    Raises:
        InvalidRiskParams: naming ``buffer_ppm``.
    """
    if not _is_int(buffer_ppm) or not 0 <= buffer_ppm <= params.buffer_max_ppm:
        raise InvalidRiskParams("buffer_ppm", buffer_ppm, "must be an int in [0, buffer_max_ppm]")


def position_risk(position: Position, prices_e8: Mapping[str, int], params: RiskParams,
                  buffer_ppm: int) -> Risk:
    """Equity and requirements of ``position`` at ``prices_e8`` (already validated prices).

    Args:
        position: the one position valued; nothing else is read (I6).
        prices_e8: ``{asset: price_e8}``; the mark is ``prices_e8[params.base_asset]``.
        params: the market's risk parameters.
        buffer_ppm: the market's current volatility buffer (``volatility.buffer_ppm``).

    Raises:
        MissingPrice: the mark or a collateral price is missing.
        InvalidPosition: a lot's asset is not accepted by the market.
        InvalidRiskParams: ``buffer_ppm`` outside ``[0, buffer_max_ppm]``.
    """
    check_buffer_ppm(buffer_ppm, params)
    mark = prices_e8.get(params.base_asset)
    if mark is None:
        raise MissingPrice(params.base_asset)
    collateral = position_collateral_usd_e18(position, prices_e8, params)
    pnl = unrealized_pnl_usd_e18(position.size_e18, position.entry_e8, mark)
    notional = notional_usd_e18(position.size_e18, mark)
    return Risk(
        collateral_usd_e18=collateral,
        unrealized_pnl_usd_e18=pnl,
        equity_usd_e18=equity_usd_e18(collateral, pnl, position.accrued_fees_usd_e18),
        notional_usd_e18=notional,
        initial_margin_usd_e18=initial_margin_usd_e18(notional, params.imr_ppm),
        maintenance_margin_usd_e18=maintenance_margin_usd_e18(notional, params.mmr_ppm,
                                                              buffer_ppm),
    )


def is_liquidatable(position: Position, prices_e8: Mapping[str, int], params: RiskParams,
                    buffer_ppm: int) -> bool:
    """The exact re-check: ``MM > 0 and E < MM`` at ``prices_e8`` (valid prices only, I8)."""
    return position_risk(position, prices_e8, params, buffer_ppm).is_liquidatable()


def liquidatable_at(size_e18: int, entry_e8: int, net_collateral_usd_e18: int,
                    maintenance_ppm: int, mark_e8: int) -> bool:
    """The same rule on raw ints: ``net_collateral = C - accrued fees``, ``maintenance_ppm =
    mmr_ppm + buffer_ppm``. The screen's contract is stated against this function."""
    pnl = unrealized_pnl_usd_e18(size_e18, entry_e8, mark_e8)
    mm = ceil_div(notional_usd_e18(size_e18, mark_e8) * maintenance_ppm, PPM)
    return mm > 0 and net_collateral_usd_e18 + pnl < mm


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
