"""Response models of the JSON API: they are the OpenAPI document clients and the contract
test read. Amounts and prices are integer base units (or fixed point, named by suffix:
``_e8``, ``_e18``) as decimal strings, so no client parses money into a float."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

__all__ = [
    "AttestationItem",
    "AttestationPage",
    "ChainItem",
    "ChainList",
    "Health",
    "LiquidationItem",
    "LiquidationPage",
    "LockItem",
    "LockPage",
    "MarkItem",
    "MarkList",
    "Pipeline",
    "PositionItem",
    "PositionPage",
    "Readiness",
]

Units = Annotated[str, Field(pattern=r"^[0-9]+$", description="Integer base units.")]
SignedUnits = Annotated[str, Field(pattern=r"^-?[0-9]+$", description="Signed integer units.")]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class TransitionItem(BaseModel):
    state: str
    height: int
    at_ms: int


class SignatureCount(BaseModel):
    have: int
    need: int


class LockItem(BaseModel):
    """One lock as ``bulkhead locks --json`` prints it (``views.lock_row``)."""

    key: str
    chain: str
    lock_id: str
    state: str
    attributed: bool
    unattributed_reason: str | None
    amount: Units
    amount_display: str
    decimals: int
    asset: str
    owner: str
    position_key: str
    beneficiary: str
    height: int
    tx_id: str
    transitions: list[TransitionItem]
    signatures: SignatureCount | None
    released: Units
    seized: Units


class LockPage(BaseModel):
    items: list[LockItem]
    next: str | None


class Pipeline(BaseModel):
    """How many locks sit in each lifecycle state, overall and per chain."""

    total: int
    states: dict[str, int]
    chains: dict[str, dict[str, int]]


class Signer(BaseModel):
    address: str
    name: str | None


class AttestationItem(BaseModel):
    key: str
    chain: str
    state: str
    position_key: str
    have: int = Field(description="Most signatures over one digest.")
    need: int
    quorum: bool
    signers: list[Signer] = Field(description="Every attester that signed anything for it.")
    digests: int = Field(description="Distinct messages signed for this lock; >1 means "
                                     "attesters disagree (only a quorum digest is relayed).")


class AttestationPage(BaseModel):
    items: list[AttestationItem]
    next: str | None


class PositionItem(BaseModel):
    """A position as ``bulkhead positions --json`` prints it, plus exact integer margins."""

    position: str
    owner: str | None
    size_e18: SignedUnits
    entry_e8: Units
    equity: str
    initial: str
    maintenance: str
    buffer: str
    equity_usd_e18: SignedUnits
    initial_usd_e18: Units
    maintenance_usd_e18: Units
    buffer_usd_e18: Units
    margin_ratio: str = Field(description="Equity / maintenance margin, 3 decimals; '-' "
                                          "without a requirement.")
    liquidatable: bool
    liquidation_price_e8: Units | None
    bankruptcy_price_e8: Units | None
    method: str


class PositionPage(BaseModel):
    items: list[PositionItem]
    next: str | None


class LiquidationItem(BaseModel):
    """A venue ``Liquidated`` event with the ``Shortfall`` of the same transaction, or a
    ``Shortfall`` with no liquidation (a close whose loss exceeded the collateral)."""

    kind: Literal["liquidation", "shortfall"]
    position: str
    market: str | None
    closed_size_e18: SignedUnits | None
    mark_e8: Units | None
    fee_usd_e18: Units | None
    full: bool | None
    plan_tick: int | None
    shortfall_usd_e18: Units
    height: int
    tx_id: str
    log_index: int
    final: bool = Field(description="At or below the venue chain's finalized head.")


class LiquidationPage(BaseModel):
    items: list[LiquidationItem]
    next: str | None


class ChainItem(BaseModel):
    chain: str
    kind: str
    chain_id: int
    reachable: bool
    latest: int | None = None
    safe: int | None = None
    finalized: int | None = None
    lag: int | None = Field(None, description="latest - finalized under the chain's policy.")
    error: str | None = None


class ChainList(BaseModel):
    items: list[ChainItem]


class MarkAt(BaseModel):
    """The mark for one operation class (its max price age)."""

    max_age_s: int
    mark_e8: Units | None = Field(description="None: fewer valid sources than the minimum "
                                                "(the venue refuses operations of this class).")
    publish_time: int | None = Field(description="Oldest publish time of the sources used.")
    valid_sources: int
    quorum: bool = Field(description="valid_sources >= min_sources.")


class MarkSource(BaseModel):
    source: str = Field(description="The feed, with the Pyth price id for a Pyth source.")
    kind: str = Field(description="chainlink or pyth.")
    feed: str
    pyth_id: str | None
    price_e8: Units | None = Field(description="Normalised to 8 decimals; None when the "
                                               "source gave no positive price.")
    time_s: int | None = Field(description="The source's publish time; None if unreadable.")
    age_s: int | None = Field(description="chain_time - time_s (negative: in the future).")
    reason: str = Field(description="Verdict for a user action: ok, stale, future, bound, "
                                    "confidence, deviation, unreadable, nonpositive.")
    reason_liquidation: str = Field(description="Verdict for a liquidation.")
    deviation_ppm: int | None = Field(description="|price - mark| * 1e6 / mark (floor), "
                                                  "against the user-action mark.")


class MarkItem(BaseModel):
    """One oracle name as the venue reads it (``bulkhead marks --json`` prints the same)."""

    market: str
    oracle_id: str
    height: int = Field(description="The venue chain block everything was read at.")
    chain_time: int = Field(description="That block's timestamp: the oracle's clock.")
    min_sources: int
    user: MarkAt
    liquidation: MarkAt
    sources: list[MarkSource]


class MarkList(BaseModel):
    items: list[MarkItem]


class ReadyChain(BaseModel):
    chain: str
    ok: bool
    reachable: bool
    lag: int | None
    max_lag: int
    error: str | None


class ReadyRedis(BaseModel):
    ok: bool
    error: str | None


class ReadyWorker(BaseModel):
    worker: str
    alive: bool


class Readiness(BaseModel):
    ready: bool
    redis: ReadyRedis
    chains: list[ReadyChain]
    workers: list[ReadyWorker] = []


class ErrorBody(BaseModel):
    detail: str
