"""Deploy the local default's contracts on the two anvil chains (DESIGN §1).

Each function returns a JSON-able dict in the shape of one ``ChainSettings`` entry, ready for
the devnet manifest. The keys passed in are anvil's well-known default dev keys: they are
public test keys, printed by every anvil, and must never hold value on a real chain.

Transactions are pipelined with locally tracked nonces (all deploys, then all registrations
and mints) so a 1 s block time costs a few blocks, not one block per transaction.

The values deployed (lanes, markets, feeds, defaults) are in :mod:`devnet.evm_specs`.

Bridge configuration (optional, so the old call shape still deploys a bare stack):
``attesters`` + ``threshold`` install attester set 0 on every vault and on the venue;
``lanes`` (:class:`LaneSpec`) register the source lane assets the venue credits, with the
accountant ceiling and the governor's cap, large-transfer threshold and delay. When the source
vaults are deployed in parallel with the venue, call :func:`register_lanes` afterwards.

Trading (``markets``, :class:`VenueMarkets`; default :data:`DEFAULT_VENUE_MARKETS`: one market
"ETH-USD" and a "USDC" collateral price at 1e8): the venue gets the oracle, the RISK role
(``risk_updater``, default the deployer), every market's parameters, and each lane's collateral
price (oracle market + haircut; a lane names its feed in ``LaneSpec.price_feed``). With
``feeder_key`` (the oracle's feeder) the oracle is also seeded with each market's and feed's
price at the chain's current time. Oracle and market ids are ``keccak256(name)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from bridges.quorum import AttesterSet
from chains.evm.artifacts import load_artifact
from chains.evm.oracle import OracleClient
from chains.evm.sender import TxSender
from chains.evm.venue_codec import (
    CollateralConfig,
    collateral_config_tuple,
    market_params_tuple,
)
from devnet.evm_specs import (
    DEFAULT_VENUE_MARKETS,
    TOKENS,
    LaneSpec,
    VenueMarkets,
    market_id,
)
from orchestrator.risk.mark import MarkParams, SourceKind
from shared.errors import DevnetError
from shared.settings import RetrySettings

__all__ = [
    "deploy_collateral_chain",
    "deploy_venue_chain",
    "pyth_id",
    "register_lanes",
    "seed_prices",
]

_PYTH_VALID_S = 60  # MockPyth's getPrice window (the oracle reads getPriceUnsafe and judges age)


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


def _collateral_calls(
    venue: Any, lanes: Sequence[LaneSpec], markets: VenueMarkets | None
) -> list[Any]:
    """setCollateral once per (src chain, asset) of ``lanes`` (nothing without markets)."""
    if markets is None:
        return []
    configs: dict[tuple[int, str], CollateralConfig] = {}
    for lane in lanes:
        price = markets.lane_price(lane)
        key = (lane.src_chain_id, lane.src_asset.lower())
        if configs.setdefault(key, price) != price:
            raise DevnetError(f"lanes of {key} name different collateral prices")
    return [
        venue.functions.setCollateral(
            (chain, bytes.fromhex(asset[2:]), collateral_config_tuple(config))
        )
        for (chain, asset), config in configs.items()
    ]


def _market_calls(
    venue: Any, oracle: str, risk_updater: str, markets: VenueMarkets | None
) -> list[Any]:
    if markets is None:
        return []
    calls = [
        venue.functions.setOracle(to_checksum_address(oracle)),
        venue.functions.setRiskUpdater(to_checksum_address(risk_updater)),
    ]
    calls += [
        venue.functions.setMarket(m.market_id, market_params_tuple(m.params()))
        for m in markets.markets
    ]
    return calls


async def seed_prices(
    rpc_url: str, *, feeder_key: str, oracle: str, feeds: str, prices: Mapping[str, int]
) -> int:
    """Publish ``{oracle id name: price_e8}`` to every source of each id at the chain's latest
    block time (after any earlier publish of the same ids). Returns the publish time used.

    Raises:
        TxRejected: the key is not the publisher's feeder, or an id already has a publish at
        or after that time.
    """
    client = await OracleClient.connect(rpc_url, oracle, chain="venue", retry=RetrySettings(),
                                        feeder_key=feeder_key, feeds=feeds)
    try:
        now = await client.chain_time()
        await client.publish(dict(prices), now)
    finally:
        await client.aclose()
    return now


def _source_plan(markets: VenueMarkets) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """The mocks each oracle id reads: a MockV3Aggregator per Chainlink decimals, and one
    MockPyth for the chain (fee 0), all starting at the id's seed price."""
    plan: dict[str, tuple[str, tuple[Any, ...]]] = {"pyth": ("MockPyth", (_PYTH_VALID_S, 0))}
    for spec in markets.oracle_ids():
        for decimals in markets.mark.chainlink_decimals:
            answer = spec.price_e8 * 10**decimals // 10**8
            plan[f"chainlink{decimals}:{spec.name}"] = ("MockV3Aggregator", (decimals, answer))
    return plan


def pyth_id(name: str) -> bytes:
    """The devnet's Pyth price id of an oracle id name."""
    return keccak(text=f"pyth:{name}")


def _mark_calls(oracle: Any, markets: VenueMarkets, sources: Mapping[str, str]) -> list[Any]:
    """configure(id, sources, params) on the MarkOracle for every id the venue reads."""
    mark, calls = markets.mark, []
    for spec in markets.oracle_ids():
        listed = [(SourceKind.CHAINLINK, sources[f"chainlink{d}:{spec.name}"], bytes(32))
                  for d in mark.chainlink_decimals]
        listed.append((SourceKind.PYTH, sources["pyth"], pyth_id(spec.name)))
        params = MarkParams(
            min_sources=mark.min_sources, max_deviation_ppm=mark.max_deviation_ppm,
            max_conf_ppm=mark.max_conf_ppm, ema_cap_ppm=mark.ema_cap_ppm,
            ema_alpha_ppm=mark.ema_alpha_ppm, poke_max_age_s=spec.poke_max_age_s,
            min_price_e8=spec.min_price_e8, max_price_e8=spec.max_price_e8)
        calls.append(oracle.functions.configure(
            market_id(spec.name), [(int(k), to_checksum_address(f), i) for k, f, i in listed],
            params.as_tuple()))
    return calls


async def register_lanes(
    rpc_url: str,
    *,
    deployer_key: str,
    venue: str,
    lanes: Sequence[LaneSpec],
    markets: VenueMarkets | None = DEFAULT_VENUE_MARKETS,
) -> None:
    """Register ``lanes`` on an already deployed venue (owner = ``deployer_key``), and price
    each lane's collateral from ``markets`` (None: leave collateral prices alone).

    Raises:
        TxRejected: a lane is already registered or its limits are refused.
        DevnetError: a lane names an unknown collateral feed.
    """
    sender = await TxSender.connect(rpc_url, deployer_key)
    try:
        contract = sender.w3.eth.contract(
            to_checksum_address(venue), abi=load_artifact("IsolatedMarginVenue").abi
        )
        calls = _lane_calls(contract, lanes) + _collateral_calls(contract, lanes, markets)
        await _call_all(sender, calls)
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
    markets: VenueMarkets | None = None,
    risk_updater: str | None = None,
    pauser: str | None = None,
    feeder: str | None = None,
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
        plan = {s: (TOKENS[s][0], TOKENS[s][1]) for s in symbols}
        plan["vault"] = ("CollateralVault", (sender.address,))
        plan.update(extra)
        addresses = await _deploy_all(sender, plan)
        sources: dict[str, str] = {}
        if "oracle" in addresses and feeder is not None:
            # The publisher needs the oracle's address; the sources only the seed prices.
            second = _source_plan(markets) if markets is not None else {}
            second["feeds"] = ("FeedPublisher", (sender.address, to_checksum_address(feeder),
                                                 addresses["oracle"]))
            sources = await _deploy_all(sender, second)
            addresses["feeds"] = sources.pop("feeds")

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
            if markets is not None:
                oracle = sender.w3.eth.contract(
                    to_checksum_address(addresses["oracle"]), abi=load_artifact("MarkOracle").abi
                )
                calls += _mark_calls(oracle, markets, sources)
            calls += _market_calls(
                venue, addresses["oracle"], risk_updater or sender.address, markets
            )
            calls += _collateral_calls(venue, lanes, markets)
            if pauser is not None:
                calls.append(venue.functions.setPauser(to_checksum_address(pauser), True))
        for symbol, amount in mint_per_trader.items():
            token = sender.w3.eth.contract(
                to_checksum_address(addresses[symbol]), abi=load_artifact(TOKENS[symbol][0]).abi
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
        "assets": {s: {"address": addresses[s], "decimals": TOKENS[s][2]} for s in symbols},
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
    markets: VenueMarkets | None = DEFAULT_VENUE_MARKETS,
    feeder_key: str | None = None,
    risk_updater: str | None = None,
    pauser: str | None = None,
) -> dict[str, Any]:
    """Deploy evm-b: MarkOracle, its sources (:func:`_source_plan`: Chainlink and Pyth mocks
    per oracle id, configured per :class:`MarkSpec`), the FeedPublisher (``feeder`` holds its
    FEEDER_ROLE), IsolatedMarginVenue, and a CollateralVault with a registered USDC (6),
    minted to every trader.

    Args:
        attesters: EVM addresses of attester set 0, installed on the venue and on the vault.
            ``threshold`` defaults to floor(2n/3)+1.
        seize_recipient: where the vault's seized collateral goes; defaults to the deployer.
        lanes: source lane assets the venue credits (:func:`evm_lanes`, :func:`solana_lane`).
        markets: trading configuration (None: a venue without oracle, markets or collateral
            prices). Each lane's collateral is priced from it.
        feeder_key: the feeder's key (its address must be ``feeder``): publishes ``markets``'
            prices to every source (the Pyth one included) and seeds each mark's EMA. Without
            it the Chainlink mocks hold their deploy-time prices and the Pyth one none.
        risk_updater: the RISK role (sets buffers); defaults to the deployer.
        pauser: the accountant's address, allowed to pause lanes (none: only the owner).

    Raises:
        DevnetError: wrong chain id, unknown token symbol, bad lane or feed, or a feeder key
        that is not ``feeder``. ConfigError: an unsafe attester set (KEY-02). TxRejected: a
        deploy or a registration reverted.
    """
    admin = Account.from_key(deployer_key).address
    prices = markets.seed_prices() if markets is not None else {}
    if feeder_key is not None and Account.from_key(feeder_key).address != (
        to_checksum_address(feeder)
    ):
        raise DevnetError("feeder_key does not belong to the feeder address")
    manifest = await _deploy_chain(
        rpc_url,
        deployer_key=deployer_key,
        chain_id=chain_id,
        symbols=("USDC",),
        extra={
            "oracle": ("MarkOracle", (admin,)),
            "venue": ("IsolatedMarginVenue", (admin,)),
        },
        traders=traders,
        mint_per_trader=mint_per_trader,
        attesters=attesters,
        threshold=threshold,
        seize_recipient=seize_recipient,
        lanes=lanes,
        markets=markets,
        risk_updater=risk_updater,
        pauser=pauser,
        feeder=feeder,
    )
    if feeder_key is not None and prices:
        contracts = manifest["contracts"]
        await seed_prices(rpc_url, feeder_key=feeder_key, oracle=contracts["oracle"],
                          feeds=contracts["feeds"], prices=prices)
    return manifest
