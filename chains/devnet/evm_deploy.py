"""Deploy the local default's contracts on the two anvil chains (DESIGN §1).

Each function returns a JSON-able dict in the shape of one ``ChainSettings`` entry, ready for
the devnet manifest. The keys passed in are anvil's well-known default dev keys: they are
public test keys, printed by every anvil, and must never hold value on a real chain.

Transactions are pipelined with locally tracked nonces (all deploys, then all registrations
and mints) so a 1 s block time costs a few blocks, not one block per transaction.

Bridge configuration (optional, so the old call shape still deploys a bare stack):
``attesters`` + ``threshold`` install attester set 0 on every vault and on the venue;
``lanes`` (:class:`LaneSpec`) register the source lane assets the venue credits, with the
accountant ceiling and the governor's cap, large-transfer threshold and delay. When the source
vaults are deployed in parallel with the venue, call :func:`register_lanes` afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_utils.address import to_checksum_address

from bridges.quorum import AttesterSet
from chains.base import address_to_bytes32
from chains.evm.artifacts import load_artifact
from chains.evm.locker import TxSender
from orchestrator.errors import DevnetError

__all__ = [
    "FEE_BPS",
    "LaneSpec",
    "deploy_collateral_chain",
    "deploy_venue_chain",
    "evm_lanes",
    "register_lanes",
    "solana_lane",
]

FEE_BPS = 100  # FeeToken burns 1 % of every transfer (SRC-01)

# symbol -> (artifact, constructor args after name/symbol, decimals)
_TOKENS: dict[str, tuple[str, tuple[Any, ...], int]] = {
    "USDC": ("TestToken", ("USD Coin (devnet)", "USDC", 6), 6),
    "WETH": ("TestToken", ("Wrapped Ether (devnet)", "WETH", 18), 18),
    "FEE": ("FeeToken", ("Fee Token (devnet)", "FEE", FEE_BPS), 6),
}


# Devnet defaults for a lane asset, in whole tokens (scaled by the asset's decimals).
DEFAULT_CEILING_TOKENS = 10**9
DEFAULT_CAP_TOKENS = 10**8  # per fixed 24 h window
DEFAULT_LARGE_TOKENS = 10**6
DEFAULT_DELAY_S = 300
SOLANA_DECIMALS = 6
_UINT128 = 2**128 - 1


@dataclass(frozen=True, slots=True)
class LaneSpec:
    """One source lane asset the venue credits: (chain, vault, asset) plus its limits.

    ``src_vault`` / ``src_asset`` are 0x-hex bytes32 (an EVM address left-padded, or a Solana
    pubkey's 32 bytes). Limits are source base units: the accountant ``ceiling`` on credited -
    released - seized, and the governor's per-(chain, asset) ``cap`` per 24 h window, the
    ``large_threshold`` above which a credit waits ``delay_s``. 0 < large_threshold <= cap.
    """

    src_chain_id: int
    src_vault: str
    src_asset: str
    decimals: int
    ceiling: int
    cap: int
    large_threshold: int
    delay_s: int = DEFAULT_DELAY_S

    def __post_init__(self) -> None:
        for name in ("src_chain_id", "decimals", "ceiling", "cap", "large_threshold", "delay_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise DevnetError(f"lane {name} must be a non-negative int, got {value!r}")
        if not 0 < self.src_chain_id < 2**64 or self.decimals > 18:
            raise DevnetError(f"lane chain id / decimals out of range: {self}")
        if not 0 < self.large_threshold <= self.cap <= _UINT128 or self.ceiling > _UINT128:
            raise DevnetError(f"lane limits need 0 < large_threshold <= cap < 2^128: {self}")
        for name in ("src_vault", "src_asset"):
            body = getattr(self, name).removeprefix("0x")
            if len(body) != 64:
                raise DevnetError(f"lane {name} must be 0x-hex bytes32, got {body!r}")


def _default_limits(decimals: int) -> dict[str, int]:
    unit = 10**decimals
    return {
        "ceiling": DEFAULT_CEILING_TOKENS * unit,
        "cap": DEFAULT_CAP_TOKENS * unit,
        "large_threshold": DEFAULT_LARGE_TOKENS * unit,
        "delay_s": DEFAULT_DELAY_S,
    }


def evm_lanes(manifest: Mapping[str, Any], **limits: int) -> list[LaneSpec]:
    """One lane per (vault, asset) of an EVM collateral-chain manifest from this module;
    ``limits`` (ceiling, cap, large_threshold, delay_s) override the devnet defaults."""
    lanes = []
    for vault in manifest["vaults"]:
        for asset in manifest["assets"].values():
            decimals = int(asset["decimals"])
            lanes.append(
                LaneSpec(
                    src_chain_id=int(manifest["chain_id"]),
                    src_vault=address_to_bytes32(vault),
                    src_asset=address_to_bytes32(asset["address"]),
                    decimals=decimals,
                    **{**_default_limits(decimals), **limits},
                )
            )
    return lanes


def solana_lane(
    chain_id: int, vault: bytes, mint: bytes, *, decimals: int = SOLANA_DECIMALS, **limits: int
) -> LaneSpec:
    """The lane of the Solana vault token account ``vault`` and SPL ``mint`` (raw 32 bytes)."""
    if len(vault) != 32 or len(mint) != 32:
        raise DevnetError("solana vault and mint must be 32-byte pubkeys")
    return LaneSpec(
        chain_id,
        "0x" + vault.hex(),
        "0x" + mint.hex(),
        decimals,
        **{**_default_limits(decimals), **limits},
    )


def _attester_set(attesters: Sequence[str], threshold: int | None) -> AttesterSet | None:
    """Sorted, validated set 0 (ConfigError on an unsafe set, KEY-02); None when not asked."""
    if not attesters:
        if threshold is not None:
            raise DevnetError("threshold given without attesters")
        return None
    return AttesterSet.of(0, attesters, threshold)


def _rotate_call(contract: Any, attesters: AttesterSet) -> Any:
    return contract.functions.rotateAttesterSet(list(attesters.members), attesters.threshold, 0)


def _lane_calls(venue: Any, lanes: Sequence[LaneSpec]) -> list[Any]:
    calls = []
    for lane in lanes:
        vault, asset = bytes.fromhex(lane.src_vault[2:]), bytes.fromhex(lane.src_asset[2:])
        calls.append(
            venue.functions.registerLaneAsset(
                lane.src_chain_id, vault, asset, lane.decimals, lane.ceiling
            )
        )
        calls.append(
            venue.functions.setRateLimit(
                lane.src_chain_id, asset, lane.cap, lane.large_threshold, lane.delay_s
            )
        )
    return calls


async def register_lanes(
    rpc_url: str, *, deployer_key: str, venue: str, lanes: Sequence[LaneSpec]
) -> None:
    """Register ``lanes`` on an already deployed venue (owner = ``deployer_key``).

    Raises:
        TxRejected: a lane is already registered or its limits are refused.
    """
    sender = await TxSender.connect(rpc_url, deployer_key)
    try:
        contract = sender.w3.eth.contract(
            to_checksum_address(venue), abi=load_artifact("IsolatedMarginVenue").abi
        )
        await _call_all(sender, _lane_calls(contract, lanes))
    finally:
        await sender.aclose()


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
    attesters: Sequence[str] = (),
    threshold: int | None = None,
    seize_recipient: str | None = None,
    lanes: Sequence[LaneSpec] = (),
) -> dict[str, Any]:
    _check_mints(mint_per_trader, symbols)
    attester_set = _attester_set(attesters, threshold)
    if lanes and "venue" not in extra:
        raise DevnetError("lanes are registered on the venue chain only")
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
        calls.append(
            vault.functions.setSeizeRecipient(
                to_checksum_address(seize_recipient or sender.address)
            )
        )
        if attester_set is not None:
            calls.append(_rotate_call(vault, attester_set))
        if "venue" in addresses:
            venue = sender.w3.eth.contract(
                to_checksum_address(addresses["venue"]),
                abi=load_artifact("IsolatedMarginVenue").abi,
            )
            if attester_set is not None:
                calls.append(_rotate_call(venue, attester_set))
            calls += _lane_calls(venue, lanes)
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
    attesters: Sequence[str] = (),
    threshold: int | None = None,
    seize_recipient: str | None = None,
) -> dict[str, Any]:
    """Deploy evm-a: USDC (6), WETH (18), FEE (6, 1 % fee), a CollateralVault with all three
    registered, and mint ``mint_per_trader[symbol]`` base units to every trader.

    Args:
        attesters: EVM addresses of attester set 0 installed on the vault (none: no set, so
            nothing can be settled yet). ``threshold`` defaults to floor(2n/3)+1.
        seize_recipient: where seized collateral goes; defaults to the deployer.

    Raises:
        DevnetError: wrong chain id or unknown token symbol. ConfigError: an unsafe attester
        set (KEY-02). TxRejected: a deploy reverted.
    """
    return await _deploy_chain(
        rpc_url,
        deployer_key=deployer_key,
        chain_id=chain_id,
        symbols=("USDC", "WETH", "FEE"),
        extra={},
        traders=traders,
        mint_per_trader=mint_per_trader,
        attesters=attesters,
        threshold=threshold,
        seize_recipient=seize_recipient,
    )


async def deploy_venue_chain(
    rpc_url: str,
    *,
    deployer_key: str,
    chain_id: int,
    feeder: str,
    traders: Sequence[str],
    mint_per_trader: dict[str, int],
    attesters: Sequence[str] = (),
    threshold: int | None = None,
    seize_recipient: str | None = None,
    lanes: Sequence[LaneSpec] = (),
) -> dict[str, Any]:
    """Deploy evm-b: PriceOracle (``feeder`` holds FEEDER_ROLE), IsolatedMarginVenue, and a
    CollateralVault with a registered USDC (6), minted to every trader.

    Args:
        attesters: EVM addresses of attester set 0, installed on the venue and on the vault.
            ``threshold`` defaults to floor(2n/3)+1.
        seize_recipient: where the vault's seized collateral goes; defaults to the deployer.
        lanes: source lane assets the venue credits (:func:`evm_lanes`, :func:`solana_lane`).

    Raises:
        DevnetError: wrong chain id, unknown token symbol or bad lane. ConfigError: an unsafe
        attester set (KEY-02). TxRejected: a deploy or a registration reverted.
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
        attesters=attesters,
        threshold=threshold,
        seize_recipient=seize_recipient,
        lanes=lanes,
    )
