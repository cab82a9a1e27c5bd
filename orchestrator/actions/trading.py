"""Trading on the reference venue as ``bulkhead trade`` / ``price`` / ``positions`` do it (I/O).

Sizes are decimal strings in the market's base unit (18 decimals: ``0.5`` ETH); prices decimal
USD with at most 8 decimals. Values are validated before anything is signed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from orchestrator.actions.inputs import format_amount, parse_amount, parse_bytes32
from shared.chain import ChainKind, ChainRef
from shared.errors import InputError
from shared.positions import market_id
from shared.settings import Settings

__all__ = [
    "close_trade", "connect_venue", "open_trade", "position_rows", "resize_trade",
    "venue_session",
]


async def connect_venue(settings: Settings, key: str | None) -> Any:
    """A :class:`chains.evm.venue.VenueClient` on the configured venue chain's ``venue``
    contract, signing with ``key`` (``None``: read only). The caller closes it."""
    from chains.evm.venue import VenueClient

    cfg = settings.chain(settings.venue_chain)
    return await VenueClient.connect(
        [str(u) for u in cfg.rpc_urls], cfg.contracts["venue"],
        chain=ChainRef(settings.venue_chain, ChainKind.EVM, cfg.chain_id), sender_key=key,
        retry=settings.retry)


@asynccontextmanager
async def venue_session(settings: Settings, key: str | None) -> AsyncIterator[Any]:
    """:func:`connect_venue`, closed when the block ends."""
    venue = await connect_venue(settings, key)
    try:
        yield venue
    finally:
        await venue.aclose()


async def open_trade(settings: Settings, owner_key: str, *, position: str, market: str,
                     size: str, side: str) -> dict[str, Any]:
    if side not in ("long", "short"):
        raise InputError("side", "long or short")
    pos = parse_bytes32(position, field="position")
    units = parse_amount(size, 18, field="size")
    async with venue_session(settings, owner_key) as venue:
        out = await venue.open_position(bytes.fromhex(pos[2:]), market_id(market),
                                        units if side == "long" else -units)
    return {"position": pos, "market": market, "side": side, "size": size, "tx": out.tx_hash,
            "price_e8": out.traded.price_e8 if out.traded else None}


async def resize_trade(settings: Settings, owner_key: str, *, position: str, by: str,
                       grow: bool) -> dict[str, Any]:
    """Increase (``grow``) or reduce the open trade by ``by`` base units of its market (a
    decimal string, 18 decimals). Increasing needs E >= IM afterwards; reducing realizes the
    closed part's PnL at the oracle mark."""
    pos = parse_bytes32(position, field="position")
    units = parse_amount(by, 18, field="size")
    if units == 0:
        raise InputError("size", "must be greater than zero")
    async with venue_session(settings, owner_key) as venue:
        key = bytes.fromhex(pos[2:])
        out = await (venue.increase_position(key, units) if grow
                     else venue.reduce_position(key, units))
    return {"position": pos, "change": ("+" if grow else "-") + by, "tx": out.tx_hash,
            "price_e8": out.traded.price_e8 if out.traded else None,
            "settlements": len(out.settlements)}


async def close_trade(settings: Settings, owner_key: str, *, position: str) -> dict[str, Any]:
    pos = parse_bytes32(position, field="position")
    async with venue_session(settings, owner_key) as venue:
        out = await venue.close_position(bytes.fromhex(pos[2:]))
    return {"position": pos, "tx": out.tx_hash, "settlements": len(out.settlements)}


async def position_rows(settings: Settings, keeper: Any, keys: list[bytes]) -> list[dict[str, Any]]:
    """Equity, requirements (the volatility buffer apart), ratio, liquidation and bankruptcy
    prices of every open position among ``keys``."""
    from orchestrator.risk import position_risk
    from orchestrator.risk.prices import position_prices

    rows = []
    for snap in await keeper.snapshots(keys):  # one pass; positions without a trade left out
        r = position_risk(snap.position, snap.prices_e8, snap.params, snap.buffer_ppm)
        prices = position_prices(snap.position, snap.prices_e8, snap.params, snap.buffer_ppm)
        base_mm = -(-r.notional_usd_e18 * snap.params.mmr_ppm // 1_000_000)
        mm = r.maintenance_margin_usd_e18
        rows.append({
            "position": snap.key, "size_e18": str(snap.position.size_e18),
            "entry_e8": snap.position.entry_e8,
            "equity": format_usd(r.equity_usd_e18), "initial": format_usd(r.initial_margin_usd_e18),
            "maintenance": format_usd(base_mm), "buffer": format_usd(mm - base_mm),
            "margin_ratio": format_amount(r.equity_usd_e18 * 1000 // mm, 3)
            if mm and r.equity_usd_e18 > 0 else ("0" if mm else "-"),
            "liquidatable": r.is_liquidatable(),
            "liquidation_price_e8": prices.liquidation_price_e8,
            "bankruptcy_price_e8": prices.bankruptcy_price_e8, "method": str(prices.method),
        })
    return rows


def format_usd(usd_e18: int) -> str:
    sign = "-" if usd_e18 < 0 else ""
    return sign + format_amount(abs(usd_e18), 18) if usd_e18 else "0"
