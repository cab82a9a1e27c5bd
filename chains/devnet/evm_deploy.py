"""Deploy the local default's contracts on the two anvil chains (DESIGN §1).

Each function returns a JSON-able dict in the shape of one ``ChainSettings`` entry, ready for
the devnet manifest. The keys passed in are anvil's well-known default dev keys: they are
public test keys, printed by every anvil, and must never hold value on a real chain.

Transactions are pipelined with locally tracked nonces (all deploys, then all registrations
and mints) so a 1 s block time costs a few blocks, not one block per transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_account import Account
from eth_utils.address import to_checksum_address

from chains.evm.artifacts import load_artifact
from chains.evm.locker import TxSender
from orchestrator.errors import DevnetError

__all__ = ["FEE_BPS", "deploy_collateral_chain", "deploy_venue_chain"]

FEE_BPS = 100  # FeeToken burns 1 % of every transfer (SRC-01)

# symbol -> (artifact, constructor args after name/symbol, decimals)
_TOKENS: dict[str, tuple[str, tuple[Any, ...], int]] = {
    "USDC": ("TestToken", ("USD Coin (devnet)", "USDC", 6), 6),
    "WETH": ("TestToken", ("Wrapped Ether (devnet)", "WETH", 18), 18),
    "FEE": ("FeeToken", ("Fee Token (devnet)", "FEE", FEE_BPS), 6),
}


async def _deploy_all(
    sender: TxSender, plan: dict[str, tuple[str, tuple[Any, ...]]]
) -> dict[str, str]:
    """Deploy ``{label: (artifact, args)}`` in one pipelined batch; return label -> address."""
    hashes = {}
    for label, (name, args) in plan.items():
        artifact = load_artifact(name)
        factory = sender.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        hashes[label] = await sender.send(factory.constructor(*args))
    addresses: dict[str, str] = {}
    for label, tx_hash in hashes.items():
        receipt = await sender.wait(tx_hash)
        addresses[label] = to_checksum_address(receipt["contractAddress"])
    return addresses


async def _call_all(sender: TxSender, calls: list[Any]) -> None:
    hashes = [await sender.send(call) for call in calls]
    for tx_hash in hashes:
        await sender.wait(tx_hash)


def _check_mints(mint_per_trader: dict[str, int], symbols: Sequence[str]) -> None:
    for symbol, amount in mint_per_trader.items():
        if symbol not in symbols:
            raise DevnetError(f"cannot mint unknown token {symbol!r}; known: {sorted(symbols)}")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise DevnetError(
                f"mint amount for {symbol} must be a non-negative int, got {amount!r}"
            )


async def _deploy_chain(
    rpc_url: str,
    *,
    deployer_key: str,
    chain_id: int,
    symbols: Sequence[str],
    extra: dict[str, tuple[str, tuple[Any, ...]]],
    traders: Sequence[str],
    mint_per_trader: dict[str, int],
) -> dict[str, Any]:
    _check_mints(mint_per_trader, symbols)
    sender = await TxSender.connect(rpc_url, deployer_key)
    try:
        if sender.chain_id != chain_id:
            raise DevnetError(f"{rpc_url} is chain {sender.chain_id}, expected {chain_id}")
        deployment_height = int(await sender.w3.eth.block_number)
        plan = {s: (_TOKENS[s][0], _TOKENS[s][1]) for s in symbols}
        plan["vault"] = ("CollateralVault", (sender.address,))
        plan.update(extra)
        addresses = await _deploy_all(sender, plan)

        vault = sender.w3.eth.contract(
            to_checksum_address(addresses["vault"]), abi=load_artifact("CollateralVault").abi
        )
        calls = [vault.functions.registerAsset(addresses[s]) for s in symbols]
        for symbol, amount in mint_per_trader.items():
            token = sender.w3.eth.contract(
                to_checksum_address(addresses[symbol]), abi=load_artifact(_TOKENS[symbol][0]).abi
            )
            calls += [
                token.functions.mint(to_checksum_address(t), amount) for t in traders if amount
            ]
        await _call_all(sender, calls)
    finally:
        await sender.aclose()
    return {
        "kind": "evm",
        "chain_id": chain_id,
        "rpc_urls": [rpc_url],
        "finality": {"mode": "tag", "tag": "finalized"},
        "vaults": [addresses["vault"]],
        "assets": {s: {"address": addresses[s], "decimals": _TOKENS[s][2]} for s in symbols},
        "contracts": {k: v for k, v in addresses.items() if k not in symbols},
        "deployment_height": deployment_height,
    }


async def deploy_collateral_chain(
    rpc_url: str,
    *,
    deployer_key: str,
    traders: Sequence[str],
    chain_id: int,
    mint_per_trader: dict[str, int],
) -> dict[str, Any]:
    """Deploy evm-a: USDC (6), WETH (18), FEE (6, 1 % fee), a CollateralVault with all three
    registered, and mint ``mint_per_trader[symbol]`` base units to every trader.

    Raises:
        DevnetError: wrong chain id or unknown token symbol. TxRejected: a deploy reverted.
    """
    return await _deploy_chain(
        rpc_url,
        deployer_key=deployer_key,
        chain_id=chain_id,
        symbols=("USDC", "WETH", "FEE"),
        extra={},
        traders=traders,
        mint_per_trader=mint_per_trader,
    )


async def deploy_venue_chain(
    rpc_url: str,
    *,
    deployer_key: str,
    chain_id: int,
    feeder: str,
    traders: Sequence[str],
    mint_per_trader: dict[str, int],
) -> dict[str, Any]:
    """Deploy evm-b: PriceOracle (``feeder`` holds FEEDER_ROLE), IsolatedMarginVenue, and a
    CollateralVault with a registered USDC (6), minted to every trader.

    Raises:
        DevnetError: wrong chain id or unknown token symbol. TxRejected: a deploy reverted.
    """
    admin = Account.from_key(deployer_key).address
    return await _deploy_chain(
        rpc_url,
        deployer_key=deployer_key,
        chain_id=chain_id,
        symbols=("USDC",),
        extra={
            "oracle": ("PriceOracle", (admin, to_checksum_address(feeder))),
            "venue": ("IsolatedMarginVenue", (admin,)),
        },
        traders=traders,
        mint_per_trader=mint_per_trader,
    )
