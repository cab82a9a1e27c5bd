"""The venue seam: what the orchestrator needs from one margin venue, on any chain (pure).

A venue (the reference ``IsolatedMarginVenue`` on evm-b, or a partner's own contracts) plugs in
through one :class:`VenueAdapter`, found by name in :mod:`orchestrator.venues.registry`. The
adapter does the I/O; everything it returns is a frozen value defined here, in the units of the
pure risk core (:mod:`orchestrator.risk`: ``usd_e18``, ``price_e8``, ``size_e18``, ``_ppm``,
seconds of the venue chain's clock). No float ever holds an amount.

Identifiers are 0x-hex of 32 bytes, as everywhere that crosses chain kinds: position keys,
market ids, oracle feed ids, lock ids, settlement ids.

What an adapter promises (``tests/conformance/suite.py`` checks each point on a devnet):

- ``read_positions(keys)`` reads every OPEN position among ``keys`` in one pass: market
  parameters, collateral configurations and oracle prices are read once per call and shared
  by the positions, per-position reads run concurrently (bounded), and the whole snapshot is
  read at one height where the chain allows it. Flat or unknown keys are left out; the order
  is the order of ``keys``. A snapshot's ``params`` are the rules the venue itself re-checks.
- ``prices()`` the latest price of every oracle feed the venue values positions with.
- ``submit_liquidation(key, fraction_ppm)`` lets the venue re-check ``E < MM`` at its own
  oracle; a refusal raises :class:`~orchestrator.venues.errors.LiquidationRefused` (typed; a
  healthy position gives ``PositionNotLiquidatable``), so a second submission of a handled
  trigger is a typed no-op, never a second liquidation.
- ``settlement_events(start, end)`` the settlement requests (release / seize) the bridge
  settles on the source chains, in chain order; overlapping ranges return the same requests.
- ``credit(attestation, sigs)`` credits an attested lock once (a replay raises
  ``AlreadyConsumed``); ``chain_time()`` the venue chain's clock (never the host's, I14).

Every method raises only :mod:`shared.errors` types (library errors are converted at
the adapter's edge); reads are retried inside the adapter before ``RpcUnavailable``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from orchestrator.risk import Position, RiskParams
from shared.messages import SettlementKind

if TYPE_CHECKING:
    from orchestrator.venues.errors import LiquidationRefused
    from shared.chain import ChainRef
    from shared.messages import LockAttestation

__all__ = [
    "CreditReceipt",
    "LiquidationOutcome",
    "PositionSnapshot",
    "PriceQuote",
    "RiskTuning",
    "SettlementKind",
    "SettlementRequest",
    "VenueAdapter",
    "VenueMargin",
]


@dataclass(frozen=True, slots=True)
class RiskTuning:
    """Off-chain parts of a market's risk parameters (the volatility buffer's estimator)."""

    buffer_k_ppm: int = 0
    buffer_horizon_s: int = 0
    vol_lambda_ppm: int = 940_000


@dataclass(frozen=True, slots=True)
class VenueMargin:
    """The venue's own view of one position's margin (C, E, IM, MM, N in usd_e18) at the
    snapshot's height, when the venue exposes one: the core must agree with it exactly."""

    collateral_usd_e18: int
    equity_usd_e18: int
    initial_usd_e18: int
    maintenance_usd_e18: int
    notional_usd_e18: int


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """One open position as the pure risk core sees it, read in one pass with its prices.

    ``position.collateral`` holds one lot per collateral lane, named by the lane's oracle feed
    id, so a lot priced by the market's own feed moves with the mark. ``publish_time`` is the
    newest publish time among the prices used: with the position's ``version`` (its last
    liquidation time) it names one liquidation trigger (the plan id).
    """

    key: str
    market: str
    position: Position
    params: RiskParams
    prices_e8: Mapping[str, int]
    publish_time: int
    buffer_ppm: int
    last_liquidation: int
    height: int = 0
    venue_margin: VenueMargin | None = None

    @property
    def tick_id(self) -> str:
        """The price tick the snapshot was valued at (enters the liquidation plan id)."""
        return str(self.publish_time)

    @property
    def mark_e8(self) -> int:
        return self.prices_e8[self.params.base_asset]


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """The latest oracle price of one feed: validity (age, bounds) is the reader's judgement."""

    feed: str
    price_e8: int
    publish_time: int


@dataclass(frozen=True, slots=True)
class SettlementRequest:
    """One settlement the venue asked for: ``amount`` source units of one lock, released to
    ``recipient`` (its source owner) or seized. The bridge's attesters sign it at finality."""

    settlement_id: str
    src_chain_id: int
    src_vault: str
    lock_id: str
    recipient: str
    amount: int
    kind: SettlementKind
    height: int
    tx_id: str
    log_index: int


@dataclass(frozen=True, slots=True)
class LiquidationOutcome:
    """What one landed liquidation did: the closed size (signed like the position), the mark
    and tick it used, the fee charged, and for a full one its settlements and shortfall."""

    position_key: str
    tx_id: str
    height: int
    full: bool
    closed_size_e18: int
    mark_e8: int
    fee_usd_e18: int
    plan_tick: int
    settlements: tuple[SettlementRequest, ...] = ()
    shortfall_usd_e18: int = 0

    @property
    def seized(self) -> tuple[SettlementRequest, ...]:
        return tuple(s for s in self.settlements if s.kind is SettlementKind.SEIZE)

    @property
    def released(self) -> tuple[SettlementRequest, ...]:
        return tuple(s for s in self.settlements if s.kind is SettlementKind.RELEASE)


@dataclass(frozen=True, slots=True)
class CreditReceipt:
    """A landed credit: lock keys credited now and lock keys queued by the venue's limits."""

    tx_id: str
    height: int
    credited: tuple[str, ...] = ()
    queued: tuple[str, ...] = field(default=())


@runtime_checkable
class VenueAdapter(Protocol):
    """One connection to one margin venue. I/O only; values and rules are pure elsewhere.

    ``name`` is the venue's identity in risk parameters and logs (``evm-b:0xVenue``);
    ``chain`` the chain the venue runs on.
    """

    name: str
    chain: ChainRef

    async def read_positions(self, keys: Sequence[str]) -> list[PositionSnapshot]:
        """Every open position among ``keys`` (0x-hex), in one pass, in the order given."""
        ...

    async def prices(self) -> Mapping[str, PriceQuote]:
        """Latest price of every feed the venue values positions with, by feed id."""
        ...

    async def submit_liquidation(self, position_key: str, fraction_ppm: int
                                 ) -> LiquidationOutcome:
        """Ask the venue to liquidate ``fraction_ppm`` (1..1e6) of a position; it re-checks.

        Raises:
            LiquidationRefused: the venue refused (``no_op`` says the trigger was handled).
            InputError: a malformed key or fraction (nothing sent).
        """
        ...

    async def submit_liquidations(self, plans: Sequence[tuple[str, int]]
                                  ) -> list[LiquidationOutcome | LiquidationRefused]:
        """Liquidate several positions in one transaction, in the order given, each re-checked
        by the venue; one result per plan (its outcome, or the typed refusal of a skipped
        item). A venue without batches raises ``UnsupportedOperation`` and the keeper sends
        one plan per transaction instead.

        Raises:
            LiquidationRefused: the whole transaction was refused (nothing liquidated).
        """
        ...

    async def settlement_events(self, start: int, end: int) -> Sequence[SettlementRequest]:
        """Settlement requests landed in heights ``start..end`` inclusive, in chain order."""
        ...

    async def credit(self, attestation: LockAttestation, sigs: Sequence[bytes]
                     ) -> CreditReceipt:
        """Credit one attested lock. Raises: AlreadyConsumed (a replay), TxRejected."""
        ...

    async def chain_time(self) -> int:
        """The venue chain's clock: the newest block's timestamp, seconds."""
        ...

    async def aclose(self) -> None: ...
