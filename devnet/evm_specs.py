"""What the devnet deploys on its EVM chains, as values (DESIGN §1). Pure.

:class:`LaneSpec` (a source lane the venue credits, with the accountant ceiling and the
governor's cap, large-transfer threshold and delay), :class:`MarketSpec` / :class:`PriceFeedSpec`
/ :class:`VenueMarkets` (the venue's markets and collateral feeds) and the devnet defaults.
Oracle and market ids are ``keccak256(name)``. :mod:`devnet.evm_deploy` sends them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chains.evm.venue_codec import CollateralConfig, MarketParams
from shared.errors import DevnetError
from shared.ids import address_to_bytes32
from shared.positions import market_id

__all__ = [
    "DEFAULT_VENUE_MARKETS",
    "FEE_BPS",
    "TOKENS",
    "LaneSpec",
    "MarkSpec",
    "MarketSpec",
    "OracleIdSpec",
    "PriceFeedSpec",
    "VenueMarkets",
    "evm_lanes",
    "market_id",
    "solana_lane",
]

FEE_BPS = 100  # FeeToken burns 1 % of every transfer (SRC-01)

# symbol -> (artifact, constructor args after name/symbol, decimals)
#: symbol -> (artifact, constructor args, decimals) of the devnet test tokens on evm-a
TOKENS: dict[str, tuple[str, tuple[Any, ...], int]] = {
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
DEFAULT_POKE_MAX_AGE_S = 600  # a collateral-only id: the markets' default liquidation max age


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
class MarkSpec:
    """How the devnet marks every oracle id (docs/mark.md): one Chainlink ``MockV3Aggregator``
    per entry of ``chainlink_decimals`` plus one Pyth price on the chain's ``MockPyth`` (three
    sources), and the rule's parameters. The bounds of an id are the widest of the market and
    collateral bounds that use it (the venue still applies its own), its poke max age the
    longest liquidation max age of the markets on it (600 s for a collateral-only id).

    The EMA cap is off on the devnet (``ema_cap_ppm`` 0): its scenario files move the price by
    up to a third in one tick on purpose, and a cap would hold the mark back from a crash the
    tests want liquidated; the contract and its tests carry the cap for deployments that want
    it. The default Pyth confidence published is 5 bp of the price."""

    min_sources: int = 2
    max_deviation_ppm: int = 30_000
    max_conf_ppm: int = 10_000
    ema_cap_ppm: int = 0
    ema_alpha_ppm: int = 200_000
    chainlink_decimals: tuple[int, ...] = (8, 18)
    conf_ppm: int = 500

    @property
    def sources(self) -> int:
        return len(self.chainlink_decimals) + 1


@dataclass(frozen=True, slots=True)
class OracleIdSpec:
    """One oracle id the devnet configures on its MarkOracle: seed price and widest bounds."""

    name: str
    price_e8: int
    min_price_e8: int
    max_price_e8: int
    poke_max_age_s: int


@dataclass(frozen=True, slots=True)
class VenueMarkets:
    """Markets, collateral feeds, the feed of lanes that name none, and how ids are marked."""

    markets: tuple[MarketSpec, ...] = ()
    collateral: tuple[PriceFeedSpec, ...] = ()
    default_collateral: str = "USDC"
    mark: MarkSpec = MarkSpec()

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

    def oracle_ids(self) -> list[OracleIdSpec]:
        """Every oracle id the markets and collateral feeds read, with its seed price, the
        widest bounds of its users and the longest liquidation max age (for ``poke``)."""
        prices = self.seed_prices()
        users: dict[str, list[tuple[int, int, int]]] = {}
        for m in self.markets:
            users.setdefault(m.oracle_name, []).append(
                (m.min_price_e8, m.max_price_e8, m.max_age_liq_s))
        for f in self.collateral:
            users.setdefault(f.name, []).append((f.min_price_e8, f.max_price_e8, 0))
        out = []
        for name, rows in users.items():
            if name not in prices:
                raise DevnetError(f"oracle id {name!r} has no seed price")
            out.append(OracleIdSpec(name, prices[name], min(r[0] for r in rows),
                                    max(r[1] for r in rows),
                                    max(r[2] for r in rows) or DEFAULT_POKE_MAX_AGE_S))
        return out

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


def evm_lanes(manifest: Mapping[str, Any], *, ceilings: Mapping[str, int] | None = None,
              **limits: int) -> list[LaneSpec]:
    """One lane per (vault, asset) of an EVM collateral-chain manifest from this module;
    ``ceilings`` (symbol -> base units) size each asset's accountant ceiling, and ``limits``
    (ceiling, cap, large_threshold, delay_s) override the devnet defaults for every asset."""
    lanes = []
    for vault in manifest["vaults"]:
        for symbol, asset in manifest["assets"].items():
            decimals = int(asset["decimals"])
            sized = {"ceiling": ceilings[symbol]} if ceilings and symbol in ceilings else {}
            lanes.append(
                LaneSpec(
                    src_chain_id=int(manifest["chain_id"]),
                    src_vault=address_to_bytes32(vault),
                    src_asset=address_to_bytes32(asset["address"]),
                    decimals=decimals,
                    **{**_default_limits(decimals), **sized, **limits},
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
