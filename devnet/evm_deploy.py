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

Trading (``markets``, :class:`VenueMarkets`; default :data:`DEFAULT_VENUE_MARKETS`: one market
"ETH-USD" and a "USDC" collateral price at 1e8): the venue gets the oracle, the RISK role
(``risk_updater``, default the deployer), every market's parameters, and each lane's collateral
price (oracle market + haircut; a lane names its feed in ``LaneSpec.price_feed``). With
``feeder_key`` (the oracle's feeder) the oracle is also seeded with each market's and feed's
price at the chain's current time. Oracle and market ids are ``keccak256(name)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from bridges.quorum import AttesterSet
from chains.evm.artifacts import load_artifact
from chains.evm.bridge_codec import (
    CollateralConfig,
    MarketParams,
    collateral_config_tuple,
    market_params_tuple,
)
from chains.evm.locker import TxSender
from shared.errors import DevnetError
from shared.ids import address_to_bytes32

__all__ = [
    "DEFAULT_VENUE_MARKETS",
    "FEE_BPS",
    "LaneSpec",
    "MarketSpec",
    "PriceFeedSpec",
    "VenueMarkets",
    "deploy_collateral_chain",
    "deploy_venue_chain",
    "evm_lanes",
    "market_id",
    "register_lanes",
    "seed_prices",
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
    # Collateral price of the lane on the venue: a feed of VenueMarkets.collateral by name
    # ("" = its default_collateral) and a haircut overriding the feed's (None = the feed's).
    price_feed: str = ""
    haircut_ppm: int | None = None

    def __post_init__(self) -> None:
        if self.haircut_ppm is not None and (
            isinstance(self.haircut_ppm, bool) or not isinstance(self.haircut_ppm, int)
            or not 0 <= self.haircut_ppm < PPM
        ):
            raise DevnetError(f"lane haircut_ppm must be an int in 0..1e6-1, got {self.haircut_ppm!r}")
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


PPM = 10**6
E18 = 10**18


def market_id(name: str) -> bytes:
    """Market / oracle id of a name: ``keccak256(name)`` (e.g. ``market_id("ETH-USD")``)."""
    return keccak(text=name)


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One venue market: its name (market id = keccak256(name)), the oracle market of its mark
    (``oracle``, default the name), the price the feeder seeds, and the owner-set parameters
    (see ``VenueCore.MarketParams``). Defaults: 10x max leverage (IM 10 %), MM 5 % + a buffer up
    to 5 %, 5 bps taker fee, 1 % liquidation fee capped at 1000 USD, prices valid 60 s for users
    and 600 s for liquidations."""

    name: str
    price_e8: int
    imr_ppm: int = 100_000
    mmr_ppm: int = 50_000
    taker_fee_ppm: int = 500
    liq_fee_ppm: int = 10_000
    liq_fee_cap_usd_e18: int = 1_000 * E18
    max_age_user_s: int = 60
    max_age_liq_s: int = 600
    min_price_e8: int = 1
    max_price_e8: int = 10**20
    step_max_ppm: int = 250_000
    full_ratio_ppm: int = 500_000
    dust_notional_usd_e18: int = 10 * E18
    cooldown_s: int = 30
    buffer_max_ppm: int = 50_000
    oracle: str = ""

    @property
    def market_id(self) -> bytes:
        return market_id(self.name)

    @property
    def oracle_name(self) -> str:
        return self.oracle or self.name

    def params(self) -> MarketParams:
        return MarketParams(
            market_id(self.oracle_name), self.imr_ppm, self.mmr_ppm, self.taker_fee_ppm,
            self.liq_fee_ppm, self.liq_fee_cap_usd_e18, self.max_age_user_s, self.max_age_liq_s,
            self.min_price_e8, self.max_price_e8, self.step_max_ppm, self.full_ratio_ppm,
            self.dust_notional_usd_e18, self.cooldown_s, self.buffer_max_ppm,
        )


@dataclass(frozen=True, slots=True)
class PriceFeedSpec:
    """A collateral price (oracle market ``name``), the haircut of lanes priced by it (< 1e6)
    and the feed's exclusive bounds. ``price_e8`` is seeded by the feeder (None: another spec
    seeds it, e.g. a market)."""

    name: str
    price_e8: int | None
    haircut_ppm: int = 0
    min_price_e8: int = 1
    max_price_e8: int = 10**20


@dataclass(frozen=True, slots=True)
class VenueMarkets:
    """Markets, collateral feeds and the feed of lanes that name none."""

    markets: tuple[MarketSpec, ...] = ()
    collateral: tuple[PriceFeedSpec, ...] = ()
    default_collateral: str = "USDC"

    def __post_init__(self) -> None:
        for spec in self.markets:
            spec.params().check()  # InputError names the field
        names = [f.name for f in self.collateral]
        if len(set(names)) != len(names):
            raise DevnetError(f"duplicate collateral feeds: {names}")
        for feed in self.collateral:
            CollateralConfig(market_id(feed.name), feed.haircut_ppm, feed.min_price_e8,
                             feed.max_price_e8).check()  # InputError names the field

    def seed_prices(self) -> dict[str, int]:
        """Oracle market name -> price_e8 to publish (a name seeded twice must agree)."""
        prices: dict[str, int] = {}
        pairs = [(m.oracle_name, m.price_e8) for m in self.markets]
        pairs += [(f.name, f.price_e8) for f in self.collateral if f.price_e8 is not None]
        for name, price in pairs:
            if isinstance(price, bool) or not isinstance(price, int) or price <= 0:
                raise DevnetError(f"price of {name} must be a positive int (e8), got {price!r}")
            if prices.setdefault(name, price) != price:
                raise DevnetError(f"two seed prices for {name}: {prices[name]} and {price}")
        return prices

    def lane_price(self, lane: LaneSpec) -> CollateralConfig:
        """The collateral price of a lane. Raises: DevnetError for an unknown feed."""
        name = lane.price_feed or self.default_collateral
        feeds = {f.name: f for f in self.collateral}
        if name not in feeds:
            raise DevnetError(f"lane feed {name!r} is not a collateral feed; have {sorted(feeds)}")
        feed = feeds[name]
        haircut = feed.haircut_ppm if lane.haircut_ppm is None else lane.haircut_ppm
        return CollateralConfig(market_id(name), haircut, feed.min_price_e8, feed.max_price_e8)


DEFAULT_VENUE_MARKETS = VenueMarkets(
    markets=(MarketSpec("ETH-USD", 3_000 * 10**8),),
    collateral=(PriceFeedSpec("USDC", 10**8, 0), PriceFeedSpec("ETH-USD", None, 100_000)),
)
# evm_lanes: the collateral feed of a collateral-chain token symbol (others: the default feed)
_SYMBOL_FEEDS = {"WETH": "ETH-USD"}


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
        for symbol, asset in manifest["assets"].items():
            decimals = int(asset["decimals"])
            lanes.append(
                LaneSpec(
                    src_chain_id=int(manifest["chain_id"]),
                    src_vault=address_to_bytes32(vault),
                    src_asset=address_to_bytes32(asset["address"]),
                    decimals=decimals,
                    **{**_default_limits(decimals), **limits},
                    price_feed=_SYMBOL_FEEDS.get(symbol, ""),
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
        price_feed="",  # the default collateral feed (USDC)
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
    rpc_url: str, *, feeder_key: str, oracle: str, prices: Mapping[str, int]
) -> int:
    """Publish ``{oracle market name: price_e8}`` at the chain's latest block time (after any
    earlier publish of the same markets). Returns the publish time used.

    Raises:
        TxRejected: the key is not the oracle's feeder, or a market already has a price at or
        after that time.
    """
    sender = await TxSender.connect(rpc_url, feeder_key)
    try:
        contract = sender.w3.eth.contract(
            to_checksum_address(oracle), abi=load_artifact("PriceOracle").abi
        )
        now = int((await sender.w3.eth.get_block("latest"))["timestamp"])
        await _call_all(
            sender,
            [contract.functions.setPrice(market_id(n), p, now) for n, p in prices.items()],
        )
    finally:
        await sender.aclose()
    return now


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
            calls += _market_calls(
                venue, addresses["oracle"], risk_updater or sender.address, markets
            )
            calls += _collateral_calls(venue, lanes, markets)
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
    markets: VenueMarkets | None = DEFAULT_VENUE_MARKETS,
    feeder_key: str | None = None,
    risk_updater: str | None = None,
) -> dict[str, Any]:
    """Deploy evm-b: PriceOracle (``feeder`` holds FEEDER_ROLE), IsolatedMarginVenue, and a
    CollateralVault with a registered USDC (6), minted to every trader.

    Args:
        attesters: EVM addresses of attester set 0, installed on the venue and on the vault.
            ``threshold`` defaults to floor(2n/3)+1.
        seize_recipient: where the vault's seized collateral goes; defaults to the deployer.
        lanes: source lane assets the venue credits (:func:`evm_lanes`, :func:`solana_lane`).
        markets: trading configuration (None: a venue without oracle, markets or collateral
            prices). Each lane's collateral is priced from it.
        feeder_key: the feeder's key (its address must be ``feeder``): seeds the oracle with
            ``markets``' prices. Without it the oracle stays empty until a feeder publishes.
        risk_updater: the RISK role (sets buffers); defaults to the deployer.

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
            "oracle": ("PriceOracle", (admin, to_checksum_address(feeder))),
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
    )
    if feeder_key is not None and prices:
        await seed_prices(
            rpc_url, feeder_key=feeder_key, oracle=manifest["contracts"]["oracle"], prices=prices
        )
    return manifest
