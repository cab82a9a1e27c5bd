"""Read one position from the venue into the pure risk core's values (I/O).

Collateral lots are named by their oracle feed id (hex), and the market's base asset by its
oracle id, so WETH collateral priced by the ETH-USD feed "moves with the mark" exactly as the
core expects. The off-chain volatility parameters (k, horizon, lambda) come from
``RiskTuning``; the rest is the venue's own market record, so the keeper plans with the rules
the contract will re-check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.risk import CollateralLot, CollateralParams, RiskParams
from orchestrator.risk import Position as CorePosition

__all__ = ["PositionSnapshot", "RiskTuning", "read_position"]


@dataclass(frozen=True)
class RiskTuning:
    """Off-chain parts of a market's risk parameters (the buffer's estimator)."""

    buffer_k_ppm: int = 0
    buffer_horizon_s: int = 0
    vol_lambda_ppm: int = 940_000


@dataclass(frozen=True)
class PositionSnapshot:
    key: str
    market_id: bytes
    position: CorePosition
    params: RiskParams
    prices_e8: dict[str, int]
    publish_time: int
    buffer_ppm: int
    last_liquidation: int
    margin: Any  # the venue's own MarginState at the same block range


def _hex(raw: bytes) -> str:
    return "0x" + bytes(raw).hex()


async def read_position(venue: Any, oracle: Any, key: bytes, *, venue_name: str,
                        tuning: RiskTuning | None = None) -> PositionSnapshot | None:
    """The position ``key`` as the core sees it, or None when it has no open trade."""
    tuning = tuning or RiskTuning()
    pos = await venue.position_of(key)
    if not pos.is_open:
        return None
    market, buffer_ppm = await venue.market_of(pos.market)
    base = _hex(market.oracle_id)
    lots: dict[str, int] = {}
    collateral: dict[str, CollateralParams] = {}
    prices: dict[str, int] = {}
    seen: set[tuple[int, bytes]] = set()
    for lock_key in await venue.position_locks(key):
        credit = await venue.lock_credit(lock_key)
        lane = (credit.src_chain_id, credit.src_asset)
        if lane in seen:
            continue
        seen.add(lane)
        cfg = await venue.collateral_config_of(*lane)
        feed = _hex(cfg.oracle_id)
        amount18 = await venue.collateral_of(key, *lane)
        lots[feed] = lots.get(feed, 0) + amount18
        collateral[feed] = CollateralParams(haircut_ppm=cfg.haircut_ppm, stable=feed != base,
                                            min_price_e8=cfg.min_price_e8,
                                            max_price_e8=cfg.max_price_e8)
    publish = 0
    for feed in {base, *lots}:
        price, at = await oracle.functions.getPrice(bytes.fromhex(feed[2:])).call()
        prices[feed], publish = int(price), max(publish, int(at))
    params = RiskParams(
        venue=venue_name, market=base, base_asset=base, imr_ppm=market.imr_ppm,
        mmr_ppm=market.mmr_ppm, buffer_k_ppm=tuning.buffer_k_ppm,
        buffer_horizon_s=tuning.buffer_horizon_s, buffer_max_ppm=market.buffer_max_ppm,
        vol_lambda_ppm=tuning.vol_lambda_ppm, vol_sigma0_ppb=0,
        liq_fee_ppm=market.liq_fee_ppm, fee_cap_usd_e18=market.liq_fee_cap_usd_e18,
        step_max_ppm=market.step_max_ppm, full_ratio_ppm=market.full_ratio_ppm,
        dust_usd_e18=market.dust_notional_usd_e18, cooldown_s=market.cooldown_s,
        max_price_age_user_s=market.max_age_user_s,
        max_price_age_liquidation_s=market.max_age_liq_s,
        min_price_e8=market.min_price_e8, max_price_e8=market.max_price_e8,
        collateral=collateral,
    )
    # The venue keeps no version counter; the last liquidation time changes with every step,
    # so (key, last step, price tick) names one trigger (the plan id).
    core = CorePosition(key=_hex(key), version=pos.last_liquidation, size_e18=pos.size_e18,
                        entry_e8=pos.entry_e8,
                        collateral=tuple(CollateralLot(f, a) for f, a in sorted(lots.items())),
                        accrued_fees_usd_e18=-pos.realized_usd_e18)
    return PositionSnapshot(_hex(key), pos.market, core, params, prices, publish, buffer_ppm,
                            pos.last_liquidation, await venue.margin_of(key))
