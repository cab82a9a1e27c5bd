"""Liquidation and bankruptcy prices of one position (DESIGN §3; shown on the dashboard).

Both prices are integers ``price_e8`` and are reported on the side that liquidates EARLIER:

- a long (``side = BELOW``) reports the smallest price ``p`` such that the exact integer rule
  of :mod:`orchestrator.risk.margin` says "not liquidatable" at ``p`` and every price above it:
  the exact threshold rounded UP. The price one tick below liquidates (for any position larger
  than about 1e-9 of a unit; below that the integer rounding can make the rule jitter, and the
  report stays on the safe side). ``None``: no price >= 1 liquidates it.
- a short (``side = ABOVE``) reports the largest price ``p`` such that the rule says "not
  liquidatable" at ``p`` and every price in ``[1, p]``: the exact threshold rounded DOWN.
  ``0``: every positive price liquidates it.

The bankruptcy price is the same construction for ``E >= 0`` instead of ``E >= MM``.

Closed form (``method = CLOSED_FORM``, every collateral lot in a ``stable`` asset, so the
collateral value C does not move with the mark). With ``C' = C - accrued fees``,
``m = mmr_ppm + buffer_ppm`` and ``e = entry_e8``, the exact equity minus maintenance is linear:

    long  s > 0:  g(p) = (s * (1e6 - m) * p - (s * e * 1e6 - C' * 1e14)) / 1e14
                  p_liq* = (s*e*1e6 - C'*1e14) / (s*(1e6 - m))   # = (e|s| - C')/(|s|(1 - m))
                  p_bk   = ceil((s*e - C'*1e8) / s)               # E == 0
    short s < 0:  g(p) = ((C' * 1e14 + |s| * e * 1e6) - |s| * (1e6 + m) * p) / 1e14
                  p_liq* = (C'*1e14 + |s|*e*1e6) / (|s|*(1e6 + m)) # = (e|s| + C')/(|s|(1 + m))
                  p_bk   = floor((|s|*e + C'*1e8) / |s|)

The integer rule floors E (by < 1) and ceils MM (by < 2), so it is liquidatable wherever
``g < 0`` and never where ``g >= 3``; the reported price is ``ceil(p_liq*)`` (long) or
``floor(p_liq*)`` (short), moved further to the early side over the few prices where ``0 <= g < 3``
if the integer rule liquidates there. The bankruptcy rule ``C' + floor(s*(p - e)/1e8) >= 0`` is
monotone, so ``p_bk`` is exact.

Numeric (``method = NUMERIC``, some lot is not stable): lots in the market's base asset are
revalued at the candidate mark, other lots stay at their current price, and the integer rule is
bisected over integer prices in ``[1, SEARCH_MAX_E8]``. The side is the sign of the exact slope.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from orchestrator.risk.errors import InvalidPosition
from orchestrator.risk.margin import (
    PRICE_SCALE,
    Position,
    ceil_div,
    check_buffer_ppm,
    collateral_value_usd_e18,
    maintenance_margin_usd_e18,
    notional_usd_e18,
    position_collateral_usd_e18,
    unrealized_pnl_usd_e18,
)
from orchestrator.risk.params import PPM, RiskParams

__all__ = [
    "SCAN_LIMIT",
    "SEARCH_MAX_E8",
    "PositionPrices",
    "PriceMethod",
    "Side",
    "position_prices",
]

SEARCH_MAX_E8 = 2**96  # numeric search range: [1, 2**96] price_e8
SCAN_LIMIT = 64  # integer prices examined where 0 <= g < 3 before staying at the safe bound
_G_SLACK = 3 * 10**14  # g >= 3 usd_e18, times the 1e14 denominator


class PriceMethod(StrEnum):
    CLOSED_FORM = "closed_form"
    NUMERIC = "numeric"


class Side(StrEnum):
    """Where the price is reached: the mark falls to it (BELOW) or rises to it (ABOVE)."""

    BELOW = "below"
    ABOVE = "above"
    NONE = "none"  # equity minus requirement does not move with the mark


@dataclass(frozen=True, slots=True)
class PositionPrices:
    liquidation_price_e8: int | None
    liquidation_side: Side
    bankruptcy_price_e8: int | None
    bankruptcy_side: Side
    method: PriceMethod


def position_prices(position: Position, prices_e8: Mapping[str, int], params: RiskParams,
                    buffer_ppm: int, *, method: PriceMethod | None = None) -> PositionPrices:
    """Liquidation and bankruptcy prices of ``position`` (see the module docstring).

    Args:
        position: the one position; nothing else is read (I6).
        prices_e8: current valid prices; collateral not in the base asset is held at these.
        params: the market's parameters; ``buffer_ppm`` the current volatility buffer.
        method: force a method; the default is CLOSED_FORM when every lot is stable.

    Raises:
        InvalidPosition: CLOSED_FORM forced while some lot moves with the mark.
        MissingPrice: a collateral price is missing.
        InvalidRiskParams: ``buffer_ppm`` outside ``[0, buffer_max_ppm]``.
    """
    check_buffer_ppm(buffer_ppm, params)
    for lot in position.collateral:
        if lot.asset not in params.collateral:
            raise InvalidPosition(position.key, "collateral",
                                  f"{lot.asset} not accepted by {params.market}")
    tracks = any(lot.asset == params.base_asset for lot in position.collateral)
    if method is None:
        stable = all(params.collateral[lot.asset].stable for lot in position.collateral)
        method = PriceMethod.CLOSED_FORM if stable and not tracks else PriceMethod.NUMERIC
    if method is PriceMethod.CLOSED_FORM:
        if tracks:
            raise InvalidPosition(position.key, "collateral",
                                  "a lot moves with the mark; the closed form does not apply")
        return _closed_form(position, prices_e8, params, buffer_ppm)
    return _numeric(position, prices_e8, params, buffer_ppm)


def _closed_form(position: Position, prices_e8: Mapping[str, int], params: RiskParams,
                 buffer_ppm: int) -> PositionPrices:
    s, e = position.size_e18, position.entry_e8
    if s == 0:
        return PositionPrices(None, Side.NONE, None, Side.NONE, PriceMethod.CLOSED_FORM)
    net = position_collateral_usd_e18(position, prices_e8, params) - position.accrued_fees_usd_e18
    m = params.mmr_ppm + buffer_ppm

    def liquidatable(p: int) -> bool:
        pnl = unrealized_pnl_usd_e18(s, e, p)
        mm = maintenance_margin_usd_e18(notional_usd_e18(s, p), m, 0)
        return mm > 0 and net + pnl < mm

    if s > 0:
        den = s * (PPM - m)
        num = s * e * PPM - net * 10**14
        liq = _long_liquidation(ceil_div(num, den), ceil_div(num + _G_SLACK, den), liquidatable)
        bk = ceil_div(s * e - net * PRICE_SCALE, s)
        return PositionPrices(liq if liq > 1 else None, Side.BELOW, bk if bk > 1 else None,
                              Side.BELOW, PriceMethod.CLOSED_FORM)
    a = -s
    den = a * (PPM + m)
    num = net * 10**14 + a * e * PPM
    liq = _short_liquidation(num // den, (num - _G_SLACK) // den, liquidatable)
    bk = (a * e + net * PRICE_SCALE) // a
    return PositionPrices(max(liq, 0), Side.ABOVE, max(bk, 0), Side.ABOVE,
                          PriceMethod.CLOSED_FORM)


def _long_liquidation(p0: int, hi: int, liquidatable: Callable[[int], bool]) -> int:
    """``p0 = ceil(p*)``; no price ``>= hi`` liquidates. Scan ``[p0, hi)`` downwards."""
    if hi - p0 > SCAN_LIMIT:
        return hi  # dust-sized position: stay on the proven-safe bound
    for p in range(hi - 1, max(p0, 1) - 1, -1):
        if liquidatable(p):
            return p + 1
    return p0


def _short_liquidation(p0: int, lo: int, liquidatable: Callable[[int], bool]) -> int:
    """``p0 = floor(p*)``; no price ``<= lo`` liquidates. Scan ``(lo, p0]`` upwards."""
    if p0 - lo > SCAN_LIMIT:
        return lo
    for p in range(max(lo + 1, 1), p0 + 1):
        if liquidatable(p):
            return p - 1
    return p0


def _numeric(position: Position, prices_e8: Mapping[str, int], params: RiskParams,
             buffer_ppm: int) -> PositionPrices:
    s, e, base = position.size_e18, position.entry_e8, params.base_asset
    fixed_lots = tuple(lot for lot in position.collateral if lot.asset != base)
    moving = tuple(lot.amount18 for lot in position.collateral if lot.asset == base)
    fixed = position_collateral_usd_e18(
        Position(position.key, position.version, s, e, fixed_lots), prices_e8, params)
    net_fixed = fixed - position.accrued_fees_usd_e18
    haircut = params.collateral[base].haircut_ppm if moving else 0
    m = params.mmr_ppm + buffer_ppm

    def equity(p: int) -> int:
        moved = sum(collateral_value_usd_e18(amount, p, haircut) for amount in moving)
        return net_fixed + moved + unrealized_pnl_usd_e18(s, e, p)

    def liquidatable(p: int) -> bool:
        mm = maintenance_margin_usd_e18(notional_usd_e18(s, p), m, 0)
        return mm > 0 and equity(p) < mm

    slope_equity = sum(moving) * (PPM - haircut) + s * PPM  # d(E)/dp * 1e14, exact
    liq, liq_side = _bisect(lambda p: not liquidatable(p), slope_equity - abs(s) * m)
    bk, bk_side = _bisect(lambda p: equity(p) >= 0, slope_equity)
    return PositionPrices(liq, liq_side, bk, bk_side, PriceMethod.NUMERIC)


def _bisect(safe: Callable[[int], bool], slope: int) -> tuple[int | None, Side]:
    """The edge of ``safe`` over ``[1, SEARCH_MAX_E8]``, assuming it is monotone in the price.

    ``slope > 0``: unsafe below; return the smallest price safe there and above (None if 1 is).
    ``slope < 0``: unsafe above; return the largest price safe from 1 to it (0 if 1 is not).
    """
    if slope == 0:
        return None, Side.NONE
    lo, hi = 1, SEARCH_MAX_E8
    if slope > 0:
        if safe(lo):
            return None, Side.BELOW
        if not safe(hi):
            return hi, Side.BELOW
        while hi - lo > 1:  # INVARIANT: not safe(lo), safe(hi)
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if safe(mid) else (mid, hi)
        return hi, Side.BELOW
    if not safe(lo):
        return 0, Side.ABOVE
    if safe(hi):
        return None, Side.ABOVE
    while hi - lo > 1:  # INVARIANT: safe(lo), not safe(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if safe(mid) else (lo, mid)
    return lo, Side.ABOVE
