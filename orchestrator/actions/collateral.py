"""The trader's side of a lock, as ``bulkhead lock`` performs it.

Every value is validated (and the amount converted to exact base units) before anything is
signed, so a refused input leaves no transaction behind (I16).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.actions.inputs import (
    parse_amount,
    parse_base_units,
    parse_bytes32,
    parse_evm_address,
)
from shared.chain import ChainKind
from shared.errors import InputError
from shared.ids import Bytes32Hex
from shared.settings import Settings

__all__ = ["LockRequest", "LockResult", "TraderKeys", "build_lock_request", "submit_lock"]

U64_MAX = 2**64 - 1
VENUE_MAX_UNITS = 2**128 - 1  # the venue stores credited source amounts as uint128


@dataclass(frozen=True)
class TraderKeys:
    """Signing material of one trader: an EVM private key and/or a Solana secret (64 bytes)."""

    evm_key: str | None = None
    solana_secret: bytes | None = None
    solana_token_accounts: dict[str, str] | None = None

    @classmethod
    def from_devnet(cls, manifest: dict[str, Any], name: str) -> TraderKeys:
        traders = manifest.get("devnet", {}).get("traders", {})
        if name not in traders:
            raise InputError("trader", f"unknown devnet trader {name!r}; have {sorted(traders)}")
        t = traders[name]
        return cls(t["evm_key"], bytes(t["solana_secret"]), t.get("solana_token_accounts") or {})

    @classmethod
    def from_key_file(cls, path: Path) -> TraderKeys:
        """A file holding a 0x-hex EVM key, or a Solana keypair JSON array (solana-keygen)."""
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise InputError("key_file", f"cannot read {path}: {exc}") from exc
        if text.startswith("["):
            try:
                secret = bytes(json.loads(text))
            except (ValueError, TypeError) as exc:
                raise InputError("key_file", "not a Solana keypair JSON array") from exc
            if len(secret) != 64:
                raise InputError("key_file", "a Solana keypair has 64 bytes")
            return cls(solana_secret=secret)
        if len(text.removeprefix("0x")) != 64:
            raise InputError("key_file", "an EVM private key is 32 bytes of hex")
        return cls(evm_key=text if text.startswith("0x") else "0x" + text)


@dataclass(frozen=True)
class LockRequest:
    chain: str
    kind: ChainKind
    asset: str
    asset_address: str
    decimals: int
    amount: int  # base units, exact
    position_key: Bytes32Hex
    beneficiary: str
    dst_chain_id: int
    dst_venue: str
    vault: str
    rpc_url: str


@dataclass(frozen=True)
class LockResult:
    chain: str
    tx_id: str
    amount: int
    height: int | None = None
    nonce: int | None = None


def build_lock_request(settings: Settings, *, chain: str, asset: str, amount: str,
                       position: str, beneficiary: str, base_units: bool = False) -> LockRequest:
    """Validate every user value; raises InputError naming the first bad field."""
    try:
        cfg = settings.chain(chain)
    except ValueError as exc:
        raise InputError("chain", str(exc)) from exc
    if cfg.kind == ChainKind.EVM and chain == settings.venue_chain:
        raise InputError("chain", f"{chain} is the venue chain; lock on a collateral chain")
    if asset not in cfg.assets:
        raise InputError("asset", f"{asset!r} is not registered on {chain}; "
                                  f"have {sorted(cfg.assets)}")
    spec = cfg.assets[asset]
    units = parse_base_units(amount) if base_units else parse_amount(amount, spec.decimals)
    if cfg.kind == ChainKind.SOLANA and units > U64_MAX:
        raise InputError("amount", "exceeds the SPL token maximum (u64)")
    if units > VENUE_MAX_UNITS:
        # NUM-01: refused before anything is signed, never truncated on the destination.
        raise InputError("amount", "exceeds what the venue can credit (uint128 base units)")
    if not cfg.vaults:
        raise InputError("chain", f"{chain} has no vault configured")
    dst_chain_id, dst_venue = settings.venue()
    return LockRequest(
        chain=chain, kind=cfg.kind, asset=asset, asset_address=spec.address,
        decimals=spec.decimals, amount=units,
        position_key=parse_bytes32(position, field="position"),
        beneficiary=parse_evm_address(beneficiary, field="beneficiary"),
        dst_chain_id=dst_chain_id, dst_venue=dst_venue, vault=cfg.vaults[0],
        rpc_url=str(cfg.rpc_urls[0]),
    )


async def submit_lock(req: LockRequest, keys: TraderKeys) -> LockResult:
    if req.kind == ChainKind.EVM:
        from chains.evm.locker import lock_on_evm

        if keys.evm_key is None:
            raise InputError("key_file", "an EVM lock needs an EVM private key")
        receipt = await lock_on_evm(
            req.rpc_url, private_key=keys.evm_key, vault=req.vault, asset=req.asset_address,
            amount=req.amount, position_key=req.position_key, dst_chain_id=req.dst_chain_id,
            dst_venue=req.dst_venue, beneficiary=req.beneficiary)
        return LockResult(req.chain, receipt.tx_hash, receipt.measured_amount,
                          receipt.block_number, receipt.nonce)
    return await _submit_solana(req, keys)


async def _submit_solana(req: LockRequest, keys: TraderKeys) -> LockResult:
    from chains.solana.locker import lock_from_secret

    if keys.solana_secret is None:
        raise InputError("key_file", "a Solana lock needs a Solana keypair")
    signature = await lock_from_secret(
        req.rpc_url, secret=keys.solana_secret,
        token_account=(keys.solana_token_accounts or {}).get(req.asset),
        vault_token_account=req.vault, mint=req.asset_address, decimals=req.decimals,
        amount=req.amount, dst_chain_id=req.dst_chain_id, dst_venue=req.dst_venue,
        position_key=req.position_key, beneficiary=req.beneficiary)
    return LockResult(req.chain, signature, req.amount)


@dataclass(frozen=True)
class WithdrawResult:
    settlement_id: str
    lock_key: str
    amount: int
    tx_id: str
    height: int


def parse_lock_key(text: str) -> tuple[int, bytes, bytes]:
    """``<srcChainId>:0x<vault 32B>:0x<lockId 32B>`` as ``bulkhead locks`` prints it."""
    from orchestrator.actions.inputs import parse_chain_id

    parts = text.strip().split(":")
    if len(parts) != 3:
        raise InputError("lock", "expected <chain id>:0x<vault>:0x<lock id>")
    chain_id = parse_chain_id(parts[0], field="lock")
    vault = parse_bytes32(parts[1], field="lock", allow_zero=True)
    lock_id = parse_bytes32(parts[2], field="lock", allow_zero=True)
    return chain_id, bytes.fromhex(vault[2:]), bytes.fromhex(lock_id[2:])


async def request_withdrawal(settings: Settings, keys: TraderKeys, *, position: str, lock: str,
                             amount: str, base_units: bool = False) -> WithdrawResult:
    """Ask the venue to release ``amount`` of one credited lock back to its source-chain owner.

    Validation happens before anything is signed; the venue re-checks ownership and the lock's
    remaining credit on chain.
    """
    from chains.evm.bridge_codec import LockStatus, lock_key
    from chains.evm.venue import VenueClient
    from shared.chain import ChainRef

    pos = parse_bytes32(position, field="position")
    src_chain_id, vault, lock_id = parse_lock_key(lock)
    if keys.evm_key is None:
        raise InputError("key_file", "withdrawing needs the position owner's EVM key")
    cfg = settings.chain(settings.venue_chain)
    venue = await VenueClient.connect(
        [str(u) for u in cfg.rpc_urls], cfg.contracts["venue"],
        chain=ChainRef(settings.venue_chain, ChainKind.EVM, cfg.chain_id),
        sender_key=keys.evm_key, retry=settings.retry)
    try:
        credit = await venue.lock_credit(lock_key(src_chain_id, vault, lock_id))
        if credit.status != LockStatus.CREDITED:
            raise InputError("lock", "this lock is not credited on the venue")
        units = parse_base_units(amount) if base_units else parse_amount(amount, credit.decimals)
        if units > credit.remaining:
            raise InputError("amount", f"exceeds the lock's remaining credit ({credit.remaining})")
        ev = await venue.request_release(bytes.fromhex(pos[2:]), src_chain_id, vault, lock_id,
                                         units)
    finally:
        await venue.aclose()
    return WithdrawResult("0x" + ev.settlement_id.hex(), lock.strip(), units, ev.tx_id, ev.height)
