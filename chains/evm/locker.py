"""The trader's side on an EVM chain: approve and lock collateral in a ``CollateralVault``.

Sends through :class:`chains.evm.sender.TxSender`, the one sending layer.
Reverts come back as :class:`TxRejected` with the contract's custom error decoded by name
(``UnregisteredAsset(0x...)``), so callers and tests can tell refusals apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address
from web3.exceptions import ContractLogicError, Web3Exception

from chains.evm.artifacts import load_artifact
from chains.evm.codec import LOCKED_TOPIC0, decode_revert, parse_locked_log
from chains.evm.sender import TxSender
from shared.errors import ChainError, InputError, RpcUnavailable
from shared.ids import Bytes32Hex

__all__ = ["LockReceipt", "lock_on_evm"]

_ERROR_SOURCES = ("CollateralVault", "TestToken", "FeeToken", "MarkOracle", "FeedPublisher",
                  "IsolatedMarginVenue")


def _known_error_abis() -> list[list[dict[str, Any]]]:
    return [load_artifact(name).abi for name in _ERROR_SOURCES]


@dataclass(frozen=True, slots=True)
class LockReceipt:
    """A mined lock: ``measured_amount`` is what the vault recorded (may be below the argument)."""

    tx_hash: str
    block_number: int
    nonce: int
    measured_amount: int


def _revert_reason(exc: ContractLogicError) -> str:
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data")
    if data is None and isinstance(exc.message, str) and exc.message.startswith("0x"):
        data = exc.message
    if data is None:
        return exc.message or "reverted"
    return decode_revert(data, _known_error_abis())


def _locked_from_receipt(receipt: Mapping[str, Any], vault: str, chain: str) -> tuple[int, int]:
    """(nonce, measured amount) from the vault's own Locked log in ``receipt``."""
    for log in receipt["logs"]:
        topics = log.get("topics") or []
        if (
            str(log["address"]).lower() == vault.lower()
            and topics
            and "0x" + bytes(topics[0]).hex() == LOCKED_TOPIC0
        ):
            parsed = parse_locked_log(log, chain=chain)
            return parsed.nonce, parsed.amount
    raise ChainError(f"{chain}: lock mined without a Locked log from {vault}")


async def lock_on_evm(
    rpc_url: str,
    *,
    private_key: str,
    vault: str,
    asset: str,
    amount: int,
    position_key: Bytes32Hex,
    dst_chain_id: int,
    dst_venue: str,
    beneficiary: str,
    timeout_s: float = 60.0,
) -> LockReceipt:
    """Approve ``vault`` if the allowance is short, then lock ``amount`` of ``asset``.

    Args:
        amount: base units of ``asset`` (an int; the vault records what actually arrives).
        position_key: 0x-hex bytes32 from ``IsolatedMarginVenue.positionKeyOf``.

    Raises:
        InputError: a malformed argument (checked before anything is sent).
        TxRejected: the approve or the lock was refused; the reason names the custom error.
        RpcUnavailable: the endpoint could not be reached.
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
        raise InputError("amount", f"must be a non-negative int of base units, got {amount!r}")
    key = bytes.fromhex(position_key.removeprefix("0x"))
    if len(key) != 32:
        raise InputError("position_key", "must be 32 bytes")
    vault_cs, asset_cs = to_checksum_address(vault), to_checksum_address(asset)
    sender = await TxSender.connect(rpc_url, private_key, timeout_s=timeout_s)
    try:
        token = sender.w3.eth.contract(address=asset_cs, abi=load_artifact("TestToken").abi)
        allowance = await token.functions.allowance(sender.address, vault_cs).call()
        if allowance < amount:
            await sender.wait(await sender.send(token.functions.approve(vault_cs, amount)))
        contract = sender.w3.eth.contract(
            address=vault_cs, abi=load_artifact("CollateralVault").abi
        )
        call = contract.functions.lock(
            asset_cs,
            amount,
            key,
            dst_chain_id,
            to_checksum_address(dst_venue),
            to_checksum_address(beneficiary),
        )
        tx_hash = await sender.send(call)
        receipt = await sender.wait(tx_hash, timeout_s=timeout_s)
        nonce, measured = _locked_from_receipt(receipt, vault_cs, sender.chain)
        return LockReceipt(tx_hash, int(receipt["blockNumber"]), nonce, measured)
    except (OSError, Web3Exception) as exc:
        raise RpcUnavailable(sender.chain, rpc_url, repr(exc)) from exc
    finally:
        await sender.aclose()
