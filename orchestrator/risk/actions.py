"""Checks on user actions (DESIGN §3, I7, ORA-01, LIQ-03). Pure.

After open, increase, remove-margin or withdraw the position must have ``E >= IM`` at prices
valid for the USER_ACTION class (fresher than what liquidations accept), and the action is
refused while a liquidation is pending for the position. Adding margin only raises ``E``: it
needs no price and is accepted even while a liquidation is pending.

The check runs on the position as it would be after the action, at execution time, on the
newest ticks the caller has: a withdrawal queued before a crash is judged on the crash price.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from orchestrator.risk.errors import InsufficientMargin, LiquidationPending
from orchestrator.risk.margin import Position, Risk, position_risk
from orchestrator.risk.oracle import PriceTick, valid_prices
from orchestrator.risk.params import OpClass, RiskParams

__all__ = ["MARGIN_CHECKED", "UserAction", "check_user_action"]


class UserAction(StrEnum):
    OPEN = "open"
    INCREASE = "increase"
    ADD_MARGIN = "add_margin"
    REMOVE_MARGIN = "remove_margin"
    WITHDRAW = "withdraw"


MARGIN_CHECKED = frozenset({UserAction.OPEN, UserAction.INCREASE, UserAction.REMOVE_MARGIN,
                            UserAction.WITHDRAW})


def check_user_action(action: UserAction, after: Position, ticks: Mapping[str, PriceTick],
                      now_chain_s: int, params: RiskParams, buffer_ppm: int) -> Risk | None:
    """Accept ``action`` (return the risk after it) or raise a typed refusal.

    Args:
        action: what the user asks for.
        after: the position as it would be once the action is applied.
        ticks: the newest ``{asset: PriceTick}`` for the mark and every collateral asset.
        now_chain_s: the venue chain's clock (I14).
        params: the market's parameters; ``buffer_ppm`` its current volatility buffer.

    Returns:
        The position's :class:`Risk` after the action, or None for ADD_MARGIN (no check).

    Raises:
        LiquidationPending: a liquidation is pending for the position (LIQ-03).
        PriceInvalid: a needed price is missing, stale for user actions, future-dated or
            stuck on a bound (ORA-01).
        InsufficientMargin: ``E < IM`` after the action (I7).
    """
    if action not in MARGIN_CHECKED:
        return None
    # SECURITY: a withdrawal racing a liquidation (Hyperliquid, March 2025) would take
    # collateral the plan already counts on; refuse until the plan has settled.
    if after.liquidation_pending:
        raise LiquidationPending(after.key)
    assets = sorted({params.base_asset, *after.assets()})
    prices = valid_prices(ticks, assets, now_chain_s, OpClass.USER_ACTION, params)
    risk = position_risk(after, prices, params, buffer_ppm)
    # INVARIANT (I7): E >= IM; IM >= MM because imr >= mmr + buffer_max, so an accepted action
    # never leaves the position liquidatable at the price it was judged on.
    if not risk.meets_initial_margin():
        raise InsufficientMargin(after.key, risk.equity_usd_e18, risk.initial_margin_usd_e18)
    return risk
