"""Operator actions on the venue (``bulkhead admin``, DESIGN §2.7 and §5). I/O.

- pause / resume: ``IsolatedMarginVenue.pause`` / ``unpause`` (owner). While paused the venue
  refuses credits, ``releaseQueued`` and user trades; liquidations go on.
- held: credits the governor queued (``CreditQueued`` logs minus ``QueuedCreditReleased``,
  each re-checked with ``lockCredit``), with their release time on the venue chain's clock.
- release: ``releaseQueued(lockKey)`` for one held credit; refused here, before anything is
  sent, while the venue chain's latest block is older than the credit's release time.
- limits show / set: the governor per (source chain, asset) (``rateLimit`` / ``setRateLimit``)
  and the accountant ceiling per (source chain, vault, asset) (``laneAsset`` /
  ``setLaneCeiling``).

Amounts are typed as decimal strings with at most the asset's decimals, or integer base units
(``base_units=True``); anything that would need rounding is refused (INP-02). Owner actions
are signed with the key the caller resolved (``bulkhead.cli.common.venue_owner_key``: the
owner's V3 keystore, or on the embedded devnet only the devnet deployer key).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chains.evm.bridge_codec import LockStatus, lock_key
from chains.evm.venue import VenueClient
from chains.factory import adapter_for
from orchestrator.actions.inputs import (
    format_amount,
    parse_amount,
    parse_base_units,
    parse_bytes32,
)
from orchestrator.venues.lanes import Lane, lane_b32, lanes, read_books
from shared.chain import ChainKind, ChainRef
from shared.errors import ConfigError, InputError
from shared.settings import Settings

__all__ = [
    "ceiling_set",
    "held",
    "lane_pause",
    "lane_resume",
    "lanes_show",
    "limits_set",
    "limits_show",
    "pause",
    "release",
    "resume",
]

REASONS = {1: "large-transfer", 2: "window-full"}


def _amount(text: str, decimals: int, field: str, base_units: bool) -> int:
    return parse_base_units(text, field=field) if base_units else parse_amount(
        text, decimals, field=field)


def _utc(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----- keys and connection --------------------------------------------------------------------


async def _connect(settings: Settings, sender_key: str | None = None) -> VenueClient:
    cfg = settings.chain(settings.venue_chain)
    _, address = settings.venue()
    return await VenueClient.connect(
        [str(u) for u in cfg.rpc_urls], address,
        chain=ChainRef(settings.venue_chain, ChainKind.EVM, cfg.chain_id),
        sender_key=sender_key, retry=settings.retry, max_block_range=cfg.max_block_range)


async def _owner_client(settings: Settings, key: str) -> VenueClient:
    """A client signing with ``key``, refused unless ``key`` is the venue's owner."""
    venue = await _connect(settings, key)
    try:
        owner = await venue.owner()
    except BaseException:
        await venue.aclose()
        raise
    if venue.sender_address != owner:
        await venue.aclose()
        raise InputError("owner_keystore",
                         f"the key is for {venue.sender_address}; the venue owner is {owner}")
    return venue


# ----- pause ----------------------------------------------------------------------------------


async def _set_paused(settings: Settings, key: str, paused: bool) -> dict[str, Any]:
    venue = await _owner_client(settings, key)
    try:
        if await venue.is_paused() == paused:
            return {"paused": paused, "changed": False, "tx_id": None}
        tx = await (venue.pause() if paused else venue.unpause())
        return {"paused": await venue.is_paused(), "changed": True, "tx_id": tx}
    finally:
        await venue.aclose()


async def pause(settings: Settings, key: str) -> dict[str, Any]:
    """Pause the venue (a no-op, ``changed: false``, if it already is)."""
    return await _set_paused(settings, key, True)


async def resume(settings: Settings, key: str) -> dict[str, Any]:
    """Unpause the venue (a no-op, ``changed: false``, if it is not paused)."""
    return await _set_paused(settings, key, False)


# ----- held credits ---------------------------------------------------------------------------


def _names(settings: Settings) -> tuple[dict[int, str], dict[tuple[int, bytes], tuple[str, int]]]:
    """chain id -> chain key, and (chain id, asset bytes32) -> (symbol, decimals)."""
    chains: dict[int, str] = {}
    assets: dict[tuple[int, bytes], tuple[str, int]] = {}
    for key, cfg in settings.chains.items():
        chains[cfg.chain_id] = key
        for symbol, spec in cfg.assets.items():
            try:
                raw = lane_b32(cfg.kind, spec.address, f"chains.{key}.assets.{symbol}")
            except ConfigError:
                continue
            assets[(cfg.chain_id, raw)] = (symbol, spec.decimals)
    return chains, assets


async def held(settings: Settings) -> list[dict[str, Any]]:
    """Every credit the venue holds now, oldest first; ``due`` by the venue chain's clock."""
    cfg = settings.chain(settings.venue_chain)
    chains, assets = _names(settings)
    venue = await _connect(settings)
    try:
        height, now = await venue.chain_time()
        start = min(cfg.deployment_height, height)
        queued = await venue.queued_events(start, height)
        released = {e.lock_key for e in await venue.released_events(start, height)}
        rows = []
        for e in queued:
            if e.lock_key in released:
                continue
            credit = await venue.lock_credit(e.lock_key)  # the chain's word, not the log's
            if credit.status != LockStatus.QUEUED:
                continue
            symbol, decimals = assets.get((e.src_chain_id, e.src_asset),
                                          ("0x" + e.src_asset.hex(), credit.decimals))
            rows.append({
                "lock": f"{e.src_chain_id}:0x{e.src_vault.hex()}:0x{e.lock_id.hex()}",
                "venue_key": "0x" + e.lock_key.hex(),
                "position_key": "0x" + e.position_key.hex(),
                "chain": chains.get(e.src_chain_id, str(e.src_chain_id)),
                "asset": symbol,
                "amount": str(credit.remaining),
                "amount_display": format_amount(credit.remaining, decimals),
                "release_at": credit.release_at,
                "release_at_utc": _utc(credit.release_at),
                "due": now >= credit.release_at,
                "wait_s": max(0, credit.release_at - now),
                "reason": REASONS.get(e.reason, str(e.reason)),
                "queued_height": e.height,
                "tx_id": e.tx_id,
            })
        return rows
    finally:
        await venue.aclose()


def parse_venue_lock_key(text: str) -> bytes:
    """The venue's lock key from ``0x<64 hex>`` (as ``admin held`` prints it) or the store's
    ``<chain id>:0x<vault>:0x<lock id>`` (as ``bulkhead locks`` prints it).

    Raises:
        InputError: neither form.
    """
    raw = text.strip()
    if ":" in raw:
        from orchestrator.actions.collateral import parse_lock_key

        try:
            chain_id, vault, lock_id = parse_lock_key(raw)
        except InputError as exc:
            raise InputError("lock_key", str(exc).split(": ", 1)[-1]) from exc
        return lock_key(chain_id, vault, lock_id)
    return bytes.fromhex(parse_bytes32(raw, field="lock_key")[2:])


async def release(settings: Settings, key: str, lock: str) -> dict[str, Any]:
    """Credit one held lock now (``releaseQueued``; anyone may send it).

    Raises:
        InputError: a malformed key, a lock the venue does not hold, or a release time still
            in the future on the venue chain's clock (nothing sent).
        TxRejected: the venue refused (``WindowFull``: the 24 h window has no room yet;
            ``EnforcedPause``).
    """
    venue_key = parse_venue_lock_key(lock)
    venue = await _connect(settings, key)
    try:
        credit = await venue.lock_credit(venue_key)
        shown = "0x" + venue_key.hex()
        if credit.status == LockStatus.NONE:
            raise InputError("lock_key", f"{shown} is not known to the venue")
        if credit.status == LockStatus.CREDITED:
            raise InputError("lock_key", f"{shown} is not held: it is already credited")
        _, now = await venue.chain_time()
        if now < credit.release_at:
            raise InputError("lock_key", f"{shown} is held until {_utc(credit.release_at)} "
                             f"(venue chain time; {credit.release_at - now} s to go)")
        event = await venue.release_queued(venue_key)
        return {"venue_key": shown, "position_key": "0x" + event.position_key.hex(),
                "amount": str(event.amount), "tx_id": event.tx_id, "height": event.height}
    finally:
        await venue.aclose()


# ----- limits ---------------------------------------------------------------------------------


async def limits_show(settings: Settings, chain: str | None = None) -> list[dict[str, Any]]:
    """Governor and accountant state for every configured lane (or one chain's)."""
    rows = []
    venue = await _connect(settings)
    try:
        for lane in lanes(settings, chain):
            rate = await venue.rate_limit(lane.chain_id, lane.asset_b32)
            acct = await venue.lane_asset(lane.chain_id, lane.vault_b32, lane.asset_b32)
            d = lane.decimals

            def show(units: int, d: int = d) -> str:
                return format_amount(units, d)

            rows.append({
                "chain": lane.chain, "asset": lane.asset, "vault": lane.vault,
                "decimals": d, "rate_limit_set": rate["cap"] > 0,
                "cap": str(rate["cap"]), "cap_display": show(rate["cap"]),
                "large_threshold": str(rate["large_threshold"]),
                "large_threshold_display": show(rate["large_threshold"]),
                "delay_s": rate["delay_s"],
                "window_start_utc": _utc(rate["window_start"]) if rate["window_start"] else None,
                "used": str(rate["used"]), "used_display": show(rate["used"]),
                "lane_registered": bool(acct["registered"]),
                "ceiling": str(acct["ceiling"]), "ceiling_display": show(acct["ceiling"]),
                "outstanding": str(acct["outstanding"]),
                "outstanding_display": show(acct["outstanding"]),
            })
        return rows
    finally:
        await venue.aclose()


def _one_asset(settings: Settings, chain: str, asset: str) -> list[Lane]:
    found = lanes(settings, chain, asset)
    if not found:
        raise InputError("asset", f"{asset!r} has no lane on {chain}")
    return found


async def limits_set(settings: Settings, key: str, *, chain: str, asset: str, cap: str,
                     large: str, delay_s: int, base_units: bool = False) -> dict[str, Any]:
    """Set the governor of (chain, asset): a 24 h ``cap``, the ``large`` threshold above which
    a credit waits ``delay_s``. Validation happens before anything is signed.

    Raises:
        InputError: an amount that would need rounding, zero, large above cap, a delay out of
        range; ConfigError: unknown chain; TxRejected: the venue refused.
    """
    lane = _one_asset(settings, chain, asset)[0]
    cap_units = _amount(cap, lane.decimals, "cap", base_units)
    large_units = _amount(large, lane.decimals, "large", base_units)
    if large_units > cap_units:
        raise InputError("large", f"{large} is above the cap {cap}")
    if isinstance(delay_s, bool) or not 0 <= delay_s < 2**64:
        raise InputError("delay", f"{delay_s!r} is not in 0..2^64-1 seconds")
    if cap_units >= 2**128:
        raise InputError("cap", "exceeds the venue's uint128")
    venue = await _owner_client(settings, key)
    try:
        tx = await venue.set_rate_limit(lane.chain_id, lane.asset_b32, cap_units, large_units,
                                        delay_s)
        rate = await venue.rate_limit(lane.chain_id, lane.asset_b32)
    finally:
        await venue.aclose()
    return {"chain": chain, "asset": asset, "cap": str(rate["cap"]),
            "large_threshold": str(rate["large_threshold"]), "delay_s": rate["delay_s"],
            "tx_id": tx}


async def ceiling_set(settings: Settings, key: str, *, chain: str, asset: str, ceiling: str,
                      vault: str | None = None, base_units: bool = False) -> dict[str, Any]:
    """Set the accountant ceiling of (chain, vault, asset); ``vault`` defaults to the chain's
    only vault. ``"0"`` is accepted and stops new credits of the lane.

    Raises:
        InputError: bad amount, several vaults and none chosen, an unknown vault.
        ConfigError: unknown chain. TxRejected: the venue refused (UnregisteredLaneAsset).
    """
    lane = _one_lane(settings, chain, asset, vault)
    units = 0 if ceiling.strip() == "0" else _amount(ceiling, lane.decimals, "ceiling",
                                                     base_units)
    if units >= 2**128:
        raise InputError("ceiling", "exceeds the venue's uint128")
    venue = await _owner_client(settings, key)
    try:
        tx = await venue.set_lane_ceiling(lane.chain_id, lane.vault_b32, lane.asset_b32, units)
        acct = await venue.lane_asset(lane.chain_id, lane.vault_b32, lane.asset_b32)
    finally:
        await venue.aclose()
    return {"chain": chain, "asset": asset, "vault": lane.vault, "ceiling": str(acct["ceiling"]),
            "outstanding": str(acct["outstanding"]), "tx_id": tx}


# ----- lanes (the accountant's view; DESIGN §2.7) ---------------------------------------------


def _one_lane(settings: Settings, chain: str, asset: str, vault: str | None) -> Lane:
    found = _one_asset(settings, chain, asset)
    if vault is not None:
        found = [lane for lane in found if lane.vault.lower() == vault.strip().lower()]
        if not found:
            raise InputError("vault", f"{vault!r} is not a configured vault of {chain}")
    elif len(found) > 1:
        raise InputError("vault", f"{chain} has {len(found)} vaults: choose one with --vault")
    return found[0]


async def lanes_show(settings: Settings, chain: str | None = None) -> list[dict[str, Any]]:
    """Each registered lane's book, read live: what the vault holds, what the venue credited
    and has not asked back, the ceiling, the headroom (the lesser room under the ceiling and
    under what the vault holds) and whether the lane is paused. Amounts in base units and in
    tokens."""
    selected = lanes(settings, chain)
    adapters = {lane.chain: adapter_for(lane.chain, settings.chain(lane.chain), settings.retry)
                for lane in selected}
    venue = await _connect(settings)
    try:
        books = await read_books(settings, selected, venue, adapters, list)
    finally:
        await venue.aclose()
        for adapter in adapters.values():
            await adapter.aclose()
    rows = []
    for b in books:
        lane = b.lane
        row: dict[str, Any] = {"chain": lane.chain, "asset": lane.asset, "vault": lane.vault,
                               "decimals": lane.decimals, "paused": b.paused}
        for name in ("held", "outstanding", "ceiling", "deficit", "headroom"):
            units = getattr(b, name)
            row[name], row[f"{name}_display"] = str(units), format_amount(units, lane.decimals)
        rows.append(row)
    return rows


async def _lane_pause(settings: Settings, key: str, lane: Lane, paused: bool) -> dict[str, Any]:
    venue = await _owner_client(settings, key)
    try:
        before = await venue.lane_paused(lane.chain_id, lane.vault_b32, lane.asset_b32)
        tx = None
        if before != paused:
            send = venue.pause_lane if paused else venue.resume_lane
            tx = await send(lane.chain_id, lane.vault_b32, lane.asset_b32)
        return {"chain": lane.chain, "asset": lane.asset, "vault": lane.vault,
                "paused": paused, "changed": before != paused, "tx_id": tx}
    finally:
        await venue.aclose()


async def lane_pause(settings: Settings, key: str, *, chain: str, asset: str,
                     vault: str | None = None) -> dict[str, Any]:
    """Stop credits on one lane (owner; the accountant pauses with its pauser key)."""
    return await _lane_pause(settings, key, _one_lane(settings, chain, asset, vault), True)


async def lane_resume(settings: Settings, key: str, *, chain: str, asset: str,
                      vault: str | None = None) -> dict[str, Any]:
    """Resume one paused lane (owner only). The accountant pauses it again only if its deficit
    grows past the one it paused for, or another credited lock is orphaned."""
    return await _lane_pause(settings, key, _one_lane(settings, chain, asset, vault), False)
