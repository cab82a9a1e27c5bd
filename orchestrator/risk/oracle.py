"""Price validity (ORA-01, I9, I14): stale, future-dated or bound-stuck prices are refused.

Staleness is measured against the chain clock the caller passes in (``now_chain_s``, the
judged chain's latest block time), never the host clock: nothing here reads ``time``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from orchestrator.risk.errors import (
    MissingPrice,
    PriceAtBound,
    PriceFromFuture,
    PriceInvalid,
    StalePrice,
)
from orchestrator.risk.params import OpClass, RiskParams

__all__ = ["PriceTick", "price_valid", "valid_prices"]


@dataclass(frozen=True, slots=True)
class PriceTick:
    """One oracle observation: ``price_e8`` USD per whole unit of ``asset`` at ``publish_time_s``.

    ``tick_id`` names the observation (e.g. feed, publish time and sequence); it enters the
    liquidation plan id, so a replay of the same tick builds the same plan.
    """

    asset: str
    price_e8: int
    publish_time_s: int
    tick_id: str


def price_valid(tick: PriceTick, now_chain_s: int, op_class: OpClass, params: RiskParams,
                *, strict: bool = True) -> bool:
    """Whether ``tick`` may value an operation of ``op_class`` at chain time ``now_chain_s``.

    Valid iff ``min_bound < price_e8 < max_bound`` (a price equal to a bound is what a clamped
    feed reports, so it is refused), ``publish_time_s <= now_chain_s + max_price_future_s`` and
    ``now_chain_s - publish_time_s <= params.max_price_age_s(op_class)``.

    Args:
        tick: the observation.
        now_chain_s: the judged chain's clock (latest block timestamp), in seconds.
        op_class: user actions need a fresher price than liquidations.
        params: the market's risk parameters (bounds and ages).
        strict: raise on an invalid price (default); when False, return False instead.

    Returns:
        True when valid (and False when invalid and ``strict`` is False).

    Raises:
        PriceAtBound, PriceFromFuture, StalePrice, PriceInvalid: when invalid and ``strict``.
    """
    try:
        _check(tick, now_chain_s, op_class, params)
    except PriceInvalid:
        if strict:
            raise
        return False
    return True


def _check(tick: PriceTick, now_chain_s: int, op_class: OpClass, params: RiskParams) -> None:
    if not _is_int(tick.price_e8) or not _is_int(tick.publish_time_s) or not _is_int(now_chain_s):
        raise PriceInvalid(tick.asset, "price, publish time and chain time must be integers")
    bounds = params.price_bounds_e8(tick.asset)
    if bounds is None:
        raise PriceInvalid(tick.asset, f"not a feed of market {params.market}")
    low, high = bounds
    # SECURITY: a feed that clamps at its bounds keeps reporting the bound while the real
    # price runs away (Venus/LUNA 2022); the bound itself is never a usable price.
    if tick.price_e8 <= low:
        raise PriceAtBound(tick.asset, tick.price_e8, low)
    if tick.price_e8 >= high:
        raise PriceAtBound(tick.asset, tick.price_e8, high)
    if tick.publish_time_s > now_chain_s + params.max_price_future_s:
        raise PriceFromFuture(tick.asset, tick.publish_time_s, now_chain_s)
    age_s = max(now_chain_s - tick.publish_time_s, 0)
    max_age_s = params.max_price_age_s(op_class)
    if age_s > max_age_s:
        raise StalePrice(tick.asset, age_s, max_age_s, op_class.value)


def valid_prices(ticks: Mapping[str, PriceTick], assets: Iterable[str], now_chain_s: int,
                 op_class: OpClass, params: RiskParams) -> dict[str, int]:
    """``{asset: price_e8}`` for every asset in ``assets``, each checked by :func:`price_valid`.

    Raises:
        MissingPrice: an asset has no tick (or the tick is keyed under another asset).
        PriceInvalid: a tick is invalid for ``op_class`` (its subclasses say why).
    """
    prices: dict[str, int] = {}
    for asset in assets:
        tick = ticks.get(asset)
        if tick is None or tick.asset != asset:
            raise MissingPrice(asset)
        price_valid(tick, now_chain_s, op_class, params)
        prices[asset] = tick.price_e8
    return prices


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
