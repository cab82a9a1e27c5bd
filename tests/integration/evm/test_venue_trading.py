"""Trading and liquidation on the reference venue, on a real anvil (DESIGN §2.5, §3, I6-I10;
RELIABILITY ORA-01, LIQ-01..03).

Collateral is credited the real way (attestations signed by 3 of 4 attesters over the venue's
EIP-712 domain). Every margin number the contract reports is compared, exactly, with the
fixed-point rules recomputed here with Python ints from the contract's inputs (positions,
collateral entries, oracle prices, market parameters and buffers).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from eth_utils.crypto import keccak
from web3.exceptions import ContractLogicError

from chains.evm.artifacts import load_artifact
from chains.evm.bridge_codec import lock_key
from chains.evm.bridge_codec import struct_tuple as as_tuple
from chains.evm.codec import decode_revert
from chains.evm.venue_codec import (
    LIQUIDATED_TOPIC0,
    TRADED_TOPIC0,
    CollateralConfig,
    LiquidatedEvent,
    MarginState,
    MarketParams,
    PositionState,
    TradedEvent,
    decode_liquidated,
    decode_traded,
    decode_venue_log,
    market_params_tuple,
)
from devnet.evm_specs import MarketSpec, PriceFeedSpec, VenueMarkets, market_id
from orchestrator.risk import (
    CollateralLot,
    CollateralParams,
    InsufficientMargin,
    LiquidationCooldown,
    PlanKind,
    PlanReason,
    PositionPrices,
    RiskParams,
    UserAction,
    check_user_action,
    position_prices,
    position_risk,
)
from orchestrator.risk import Position as CorePosition
from orchestrator.risk.oracle import PriceTick
from orchestrator.risk.planner import LiquidationPlan, plan_at_prices
from shared.errors import InputError, LogMalformed, TxRejected
from shared.ids import address_to_bytes32
from shared.messages import LockAttestation, SettlementKind
from tests.integration.evm.conftest import DEPLOYER_KEY, FEEDER, OTHER, OTHER_KEY, TRADER, rpc
from tests.integration.evm.venue_env import (
    DEPLOYER,
    E8,
    E18,
    ETH,
    INSURANCE_SEED,
    PPM,
    SRC,
    USDC,
    USDC_FEED,
    USDC_UNIT,
    VAULT,
    VenueChain,
    deployed_venue,
    run,
    unlimited_lane,
)

pytestmark = pytest.mark.integration

WETH = bytes.fromhex(address_to_bytes32("0x" + "e1" * 20)[2:])
ETH_B = market_id("ETH-USD-B")  # same oracle as ETH-USD; its buffer is moved by the tests
MARKETS = VenueMarkets(
    markets=(
        MarketSpec("ETH-USD", 3_000 * E8),
        MarketSpec("ETH-USD-B", 3_000 * E8, oracle="ETH-USD"),
    ),
    collateral=(PriceFeedSpec("USDC", E8, 0), PriceFeedSpec("ETH-USD", None, 100_000)),
)
_ids = itertools.count(1)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# ----- the fixed-point rules, in Python ints (the spec the contract must match) -----------------


def collateral_value(entries: Sequence[tuple[int, int, int]]) -> int:
    """C = sum floor(floor(amount18 * price / 1e8) * (1e6 - haircut) / 1e6)."""
    return sum((a * p // E8) * (PPM - h) // PPM for a, p, h in entries if a)


def margin(
    entries: Sequence[tuple[int, int, int]], pos: PositionState, mark: int, params: MarketParams,
    buffer_ppm: int,
) -> MarginState:
    c = collateral_value(entries)
    e = c + pos.realized_usd_e18
    n = im = mm = 0
    if pos.size_e18:
        n = ceil_div(abs(pos.size_e18) * mark, E8)
        e += pos.size_e18 * (mark - pos.entry_e8) // E8  # Python // floors toward -inf
        im = ceil_div(n * params.imr_ppm, PPM)
        mm = ceil_div(n * (params.mmr_ppm + buffer_ppm), PPM)
    return MarginState(c, e, im, mm, n)


def fee(size: int, mark: int, rate_ppm: int) -> int:
    return ceil_div(ceil_div(size * mark, E8) * rate_ppm, PPM)


def pnl(closed: int, mark: int, entry: int) -> int:
    return closed * (mark - entry) // E8


def mirror_settle(
    locks: Sequence[tuple[bytes, int, int, int, int]], loss: int, collateral: int,
    release_rest: bool,
) -> tuple[list[tuple[bytes, SettlementKind, int]], int]:
    """The settlement of a flat position with ledger -loss and collateral value C: locks (key,
    remaining, decimals, price, haircut) in list order. If C <= loss everything is seized and
    the shortfall is loss - C (= -E); otherwise each lock, last listed first, gives the fewest
    units whose haircut value covers the rest. Returns (requests, shortfall)."""
    out = []
    seize_all = 0 < loss and collateral <= loss
    for key, remaining, decimals, price, haircut in reversed(locks):
        seized = remaining if seize_all else 0
        if loss and not seize_all:
            scale = 10 ** (18 - decimals)
            gross = ceil_div(loss * PPM, PPM - haircut)
            need = ceil_div(ceil_div(gross * E8, price), scale)
            if need <= remaining:
                seized, loss = need, 0
            else:
                covered = collateral_value([(remaining * scale, price, haircut)])
                seized, loss = remaining, max(loss - covered, 0)
        if seized:
            out.append((key, SettlementKind.SEIZE, seized))
        remaining -= seized
        if release_rest and remaining:
            out.append((key, SettlementKind.RELEASE, remaining))
    return out, (loss - collateral if seize_all else loss)


# ----- the chain ----------------------------------------------------------------------------------


class Env(VenueChain):
    # prices
    def price(self, oracle_id: bytes) -> tuple[int, int]:
        return self.mark(oracle_id)

    def publish(self, eth: int | None = None, usdc: int | None = None) -> int:
        """Publish ETH-USD / USDC (None: the current value again) at a fresh publishTime."""
        return self.set_prices({ETH: eth or self.price(ETH)[0],
                                USDC_FEED: usdc or self.price(USDC_FEED)[0]})

    # positions
    def position(self) -> bytes:
        salt = keccak(text=f"trading-salt-{next(_ids)}")
        return bytes(self.venue.functions.positionKeyOf(TRADER, salt).call())

    def credit(self, position: bytes, amount: int, asset: bytes = USDC, decimals: int = 6) -> bytes:
        """Credit one attested lock of ``amount`` source units; returns its lock key."""
        a = LockAttestation(
            src_chain_id=SRC, src_vault=VAULT, lock_id=keccak(text=f"lock-{next(_ids)}"),
            owner=bytes.fromhex(address_to_bytes32(TRADER)[2:]), beneficiary=TRADER,
            src_asset=asset, amount=amount, decimals=decimals, position_key=position,
            attester_set_index=0,
        )
        self.credit_attested(a)
        return lock_key(SRC, VAULT, a.lock_id)

    def position_of(self, position: bytes) -> PositionState:
        market, size, entry, realized, last = self.venue.functions.positionOf(position).call()
        return PositionState(bytes(market), size, entry, realized, last)

    def margin_of(self, position: bytes) -> MarginState:
        return MarginState(*self.venue.functions.marginOf(position).call())

    def market(self, market: bytes) -> tuple[MarketParams, int]:
        params, buffer_ppm = self.venue.functions.marketOf(market).call()
        return MarketParams(bytes(params[0]), *params[1:]), int(buffer_ppm)

    def locks(self, position: bytes) -> list[tuple[bytes, int, int, bytes]]:
        """(lock key, remaining, decimals, src asset) of the position's locks, in list order."""
        out = []
        for key in self.venue.functions.positionLocks(position).call():
            credit = self.venue.functions.lockCredit(key).call()
            out.append((bytes(key), int(credit[3]), int(credit[6]), bytes(credit[1])))
        return out

    def collateral_price(self, asset: bytes) -> tuple[int, int]:
        oracle_id, haircut, _, _ = self.venue.functions.collateralConfigOf(SRC, asset).call()
        return self.price(bytes(oracle_id))[0], int(haircut)

    def expected(self, position: bytes) -> MarginState:
        """marginOf recomputed from the contract's inputs with the rules above."""
        pos = self.position_of(position)
        entries = []
        for asset in dict.fromkeys(a for _, _, _, a in self.locks(position)):
            amount18 = self.venue.functions.collateralOf(position, SRC, asset).call()
            entries.append((amount18, *self.collateral_price(asset)))
        params, buffer_ppm = self.market(pos.market)
        mark = self.price(params.oracle_id)[0] if pos.size_e18 else 0
        return margin(entries, pos, mark, params, buffer_ppm)

    def assert_margin(self, position: bytes) -> MarginState:
        got = self.margin_of(position)
        assert got == self.expected(position)
        return got

    def snapshot(self, position: bytes) -> tuple[Any, ...]:
        """Everything a position's margin and liquidation price are computed from."""
        return (
            self.position_of(position),
            self.margin_of(position),
            [self.venue.functions.lockCredit(k).call() for k, *_ in self.locks(position)],
            [self.venue.functions.collateralOf(position, SRC, a).call() for a in (USDC, WETH)],
            self.venue.functions.positionLocks(position).call(),
        )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    lanes = [unlimited_lane(SRC, VAULT, USDC, 6),
             unlimited_lane(SRC, VAULT, WETH, 18, price_feed="ETH-USD")]
    with deployed_venue(Env, tmp_path_factory.mktemp("trading"), lanes, markets=MARKETS) as env:
        yield env


# ----- deployment -------------------------------------------------------------------------------


def test_deploy_configures_markets_collateral_prices_and_roles(env: Env) -> None:
    venue = env.venue.functions
    assert venue.oracle().call() == env.oracle.address
    assert venue.riskUpdater().call() == OTHER
    assert env.w3.eth.get_code(venue.riskModule().call())  # created by the venue's constructor
    params, buffer_ppm = env.market(ETH)
    assert params == MARKETS.markets[0].params() and buffer_ppm == 0
    assert env.market(ETH_B)[0].oracle_id == ETH  # shares the ETH-USD oracle
    assert venue.collateralConfigOf(SRC, USDC).call() == (USDC_FEED, 0, 1, 10**20)
    assert venue.collateralConfigOf(SRC, WETH).call() == (ETH, 100_000, 1, 10**20)
    assert env.price(ETH)[0] == 3_000 * E8 and env.price(USDC_FEED)[0] == E8  # seeded
    assert venue.insuranceFund().call() == INSURANCE_SEED
    # the module runs only through the venue (DELEGATECALL); called directly it refuses
    module_abi = load_artifact("VenueRiskModule").abi
    module = env.w3.eth.contract(address=venue.riskModule().call(), abi=module_abi)
    with pytest.raises(ContractLogicError) as info:
        module.functions.liquidate(bytes(32), 1).call({"from": OTHER})
    assert decode_revert(info.value.data, [module_abi]) == "OnlyDelegated()"


# ----- user actions -----------------------------------------------------------------------------


def test_open_increase_reduce_close_round_trip_with_fees(env: Env) -> None:
    env.publish(eth=3_000 * E8, usdc=E8)
    pk = env.position()
    env.credit(pk, 600 * USDC_UNIT)
    env.credit(pk, 400 * USDC_UNIT)
    env.credit(pk, E18 // 10, asset=WETH, decimals=18)  # 0.1 WETH, 10 % haircut
    params = env.market(ETH)[0]
    margin0 = env.assert_margin(pk)
    assert margin0.collateral_usd_e18 == 1_000 * E18 + 270 * E18  # 300 USD of WETH - 10 %
    fees_before = env.venue.functions.feePool().call()

    async def trade() -> list[Any]:
        client = await env.client()
        try:
            with pytest.raises(InputError):
                await client.open_position(pk, ETH, 0)
            opened = await client.open_position(pk, ETH, 2 * E18)
            after_open = (await client.position_of(pk), await client.margin_of(pk))
            env.publish(eth=3_100 * E8)
            increased = await client.increase_position(pk, E18)
            env.publish(eth=3_050 * E8)
            reduced = await client.reduce_position(pk, E18 // 2)
            with pytest.raises(TxRejected, match=r"ReduceExceedsSize\("):
                await client.reduce_position(pk, 3 * E18)
            closed = await client.close_position(pk)
            return [opened, after_open, increased, reduced, closed, await client.fee_pool()]
        finally:
            await client.aclose()

    opened, (pos, got), increased, reduced, closed, fee_pool = run(trade)
    open_fee = fee(2 * E18, 3_000 * E8, params.taker_fee_ppm)
    assert open_fee == 3 * E18  # 5 bps of 6000 USD
    assert opened.traded is not None and opened.gas_used > 0
    assert (opened.traded.size_delta_e18, opened.traded.price_e8, opened.traded.fee_usd_e18) == (
        2 * E18, 3_000 * E8, open_fee)
    assert pos == PositionState(ETH, 2 * E18, 3_000 * E8, -open_fee, 0)
    assert got.initial_usd_e18 == 600 * E18 and got.notional_usd_e18 == 6_000 * E18
    print(f"\ngas: open (3 locks) {opened.gas_used}, close {closed.gas_used}")

    # increase: the entry is the size-weighted average rounded against the long (up)
    entry = ceil_div(2 * E18 * 3_000 * E8 + E18 * 3_100 * E8, 3 * E18)
    assert increased.traded is not None
    assert (increased.traded.size_e18, increased.traded.entry_e8) == (3 * E18, entry)
    assert entry == 303_333_333_334  # 3033.33333334: rounded up
    inc_fee = fee(E18, 3_100 * E8, params.taker_fee_ppm)

    # reduce: realized PnL of the closed part minus the fee goes to the ledger
    assert reduced.traded is not None
    red_pnl, red_fee = pnl(E18 // 2, 3_050 * E8, entry), fee(E18 // 2, 3_050 * E8, 500)
    assert (reduced.traded.realized_pnl_usd_e18, reduced.traded.fee_usd_e18) == (red_pnl, red_fee)
    assert not reduced.settlements

    # close: the rest's PnL is realized; the ledger ends positive, so nothing is settled
    close_pnl, close_fee = pnl(5 * E18 // 2, 3_050 * E8, entry), fee(5 * E18 // 2, 3_050 * E8, 500)
    realized = -open_fee - inc_fee + red_pnl - red_fee + close_pnl - close_fee
    assert closed.traded is not None
    assert closed.traded.realized_pnl_usd_e18 == close_pnl and closed.traded.size_e18 == 0
    assert fee_pool - fees_before == open_fee + inc_fee + red_fee + close_fee
    assert realized > 0  # a winning round trip: nothing seized, the profit stays on the ledger
    assert not closed.settlements and closed.shortfall is None
    assert env.position_of(pk) == PositionState(ETH, 0, 0, realized, 0)
    env.assert_margin(pk)

    # a losing round trip on the same position: the booked loss is seized at close
    env.publish(eth=3_050 * E8)
    env.send(env.venue.functions.open(pk, ETH, -2 * E18))  # short
    env.publish(eth=3_081 * E8)
    receipt = env.send(env.venue.functions.increase(pk, E18))
    # a short's average entry rounds down (against the short)
    short_entry = (2 * E18 * 3_050 * E8 + E18 * 3_081 * E8) // (3 * E18)
    assert short_entry == 306_033_333_333
    [traded] = env.logs("Traded", receipt)
    assert (traded["args"]["sizeE18"], traded["args"]["entryE8"]) == (-3 * E18, short_entry)
    env.publish(eth=3_100 * E8)
    locks_before = env.locks(pk)
    collateral = env.expected(pk).collateral_usd_e18
    receipt = env.send(env.venue.functions.close(pk))
    short_fees = fee(2 * E18, 3_050 * E8, 500) + fee(E18, 3_081 * E8, 500)
    close_fee2 = fee(3 * E18, 3_100 * E8, 500)
    booked = realized - short_fees + pnl(-3 * E18, 3_100 * E8, short_entry) - close_fee2
    assert booked < 0
    prices = {USDC: (E8, 0), WETH: (3_100 * E8, 100_000)}
    expected, shortfall = mirror_settle(
        [(k, r, d, *prices[a]) for k, r, d, a in locks_before], -booked, collateral, False)
    assert [k for k, *_ in expected] == [locks_before[-1][0]]  # the WETH lock covers it
    requests = env.logs("SettlementRequested", receipt)
    got_requests = [(lock_key(SRC, VAULT, bytes(e["args"]["lockId"])), e["args"]["kind"],
                     e["args"]["amount"]) for e in requests]
    assert got_requests == expected and shortfall == 0
    assert all(bytes(e["args"]["recipient"]) == bytes(32) for e in requests)  # seize: the vault's
    assert env.position_of(pk).realized_usd_e18 == 0
    env.assert_margin(pk)


def test_open_refused_below_initial_margin(env: Env) -> None:
    env.publish(eth=3_000 * E8, usdc=E8)
    pk = env.position()
    env.credit(pk, 100 * USDC_UNIT)
    params = env.market(ETH)[0]
    size = E18  # 3000 USD notional on 100 USD: IM 300
    e = 100 * E18 - fee(size, 3_000 * E8, params.taker_fee_ppm)
    assert env.refused(env.venue.functions.open(pk, ETH, size)) == (
        f"InsufficientMargin({e}, {300 * E18})"
    )
    # about 10x opens (E >= IM); increasing it further does not
    ok = 990 * E18 // 3_000
    env.send(env.venue.functions.open(pk, ETH, -ok))
    m = env.assert_margin(pk)
    assert m.equity_usd_e18 >= m.initial_usd_e18
    assert env.refused(env.venue.functions.increase(pk, E18 // 100)).startswith(
        "InsufficientMargin(")
    other = env.position()
    env.credit(other, 100 * USDC_UNIT)
    assert env.refused(env.venue.functions.open(other, ETH, size), sender=OTHER) == (
        f"NotPositionOwner(0x{other.hex()}, {OTHER})"
    )
    assert env.refused(env.venue.functions.open(other, keccak(text="NOPE"), size)) == (
        f"UnknownMarket(0x{keccak(text='NOPE').hex()})"
    )
    assert env.refused(env.venue.functions.open(pk, ETH, size)) == f"PositionOpen(0x{pk.hex()})"


# ----- ORA-01 and the release rule ----------------------------------------------------------------


def test_ora01_release_needs_im_and_a_fresh_price_liquidation_accepts_an_older_one(
    env: Env,
) -> None:
    env.publish(eth=3_000 * E8, usdc=E8)
    pk = env.position()
    lock_id_bytes = _lock_id(env, env.credit(pk, 1_000 * USDC_UNIT))
    release = env.venue.functions.requestRelease
    env.send(env.venue.functions.open(pk, ETH, 3 * E18))  # N 9000, IM 900, E 995.5
    params = env.market(ETH)[0]
    e_now = env.assert_margin(pk).equity_usd_e18
    assert e_now == 1_000 * E18 - fee(3 * E18, 3_000 * E8, params.taker_fee_ppm)

    # removing 200 USDC would leave E 795.5 < IM 900: refused with the numbers after removal
    assert env.refused(release(pk, SRC, VAULT, lock_id_bytes, 200 * USDC_UNIT)) == (
        f"InsufficientMargin({e_now - 200 * E18}, {900 * E18})"
    )
    receipt = env.send(release(pk, SRC, VAULT, lock_id_bytes, 50 * USDC_UNIT))
    [event] = env.logs("SettlementRequested", receipt)
    assert (event["args"]["amount"], event["args"]["kind"]) == (50 * USDC_UNIT, 1)
    env.assert_margin(pk)

    # a drop makes it liquidatable (E 345.5 < MM 420); the price then ages past the user max
    # age (60 s) but not the liquidation one (600 s)
    t0 = env.publish(eth=2_800 * E8)
    m = env.assert_margin(pk)
    assert 0 < m.maintenance_usd_e18 and m.equity_usd_e18 < m.maintenance_usd_e18
    env.advance(params.max_age_user_s + 1)
    # every source of the mark is stale for a user action: no mark (none of 3 valid, min 2)
    no_mark = f"TooFewSources(0x{ETH.hex()}, 0, 2)"
    assert env.refused(release(pk, SRC, VAULT, lock_id_bytes, 1)) == no_mark
    assert env.refused(env.venue.functions.increase(pk, 1)) == no_mark
    assert env.mark(ETH, params.max_age_liq_s) == (2_800 * E8, t0)
    env.venue.functions.liquidate(pk, PPM).call({"from": OTHER})  # accepted for liquidation
    env.advance(params.max_age_liq_s - params.max_age_user_s)  # now older than 600 s
    assert env.refused(env.venue.functions.liquidate(pk, PPM), sender=OTHER) == no_mark

    # a price stuck on a bound is invalid for both classes: every source sits on it
    env.publish(eth=params.min_price_e8)
    assert env.refused(env.venue.functions.liquidate(pk, PPM), sender=OTHER) == no_mark
    assert env.refused(release(pk, SRC, VAULT, lock_id_bytes, 1)) == no_mark
    env.publish(eth=2_800 * E8, usdc=1)  # the collateral's feed at its lower bound
    assert env.refused(env.venue.functions.liquidate(pk, PPM), sender=OTHER) == (
        f"TooFewSources(0x{USDC_FEED.hex()}, 0, 2)"
    )
    env.publish(usdc=E8)
    receipt = env.send(env.venue.functions.liquidate(pk, PPM), sender=OTHER)
    [liquidated] = env.logs("Liquidated", receipt)
    assert liquidated["args"]["full"] is True
    assert env.position_of(pk).size_e18 == 0


# ----- LIQ-01 / LIQ-02 ----------------------------------------------------------------------------


def test_liq01_gap_through_bankruptcy_full_liquidation_and_shortfall(env: Env) -> None:
    env.publish(eth=3_000 * E8, usdc=E8)
    pk = env.position()
    first = env.credit(pk, 600 * USDC_UNIT)
    second = env.credit(pk, 400 * USDC_UNIT)
    bystander = env.position()  # same owner, same lane: must not be touched
    env.credit(bystander, 500 * USDC_UNIT)
    size = 33 * E18 // 10  # 3.3 ETH on 1000 USD: ~10x
    env.send(env.venue.functions.open(pk, ETH, size))
    params = env.market(ETH)[0]
    m = env.assert_margin(pk)
    assert (m.notional_usd_e18, m.initial_usd_e18) == (9_900 * E18, 990 * E18)
    assert m.equity_usd_e18 >= m.initial_usd_e18
    before_bystander = env.snapshot(bystander)
    insurance_before = env.venue.functions.insuranceFund().call()

    tick = env.publish(eth=1_650 * E8)  # -45 % in one tick
    m = env.assert_margin(pk)
    assert m.equity_usd_e18 < 0 < m.maintenance_usd_e18

    async def keeper() -> Any:
        client = await env.client(OTHER_KEY)
        try:
            # a partial fraction is asked, but E < MM * full_ratio forces a full liquidation
            return await client.liquidate(pk, 100_000)
        finally:
            await client.aclose()

    outcome = run(keeper)
    print(f"\ngas: full liquidation with 2 seizures + shortfall {outcome.gas_used}")
    liq = outcome.liquidated
    # the liquidation fee is taken from equity only: E < 0 here, so it is waived entirely
    assert liq is not None and liq.full and liq.plan_tick == tick
    assert (liq.closed_size_e18, liq.mark_e8, liq.fee_usd_e18) == (size, 1_650 * E8, 0)
    loss = fee(size, 3_000 * E8, params.taker_fee_ppm) - pnl(size, 1_650 * E8, 3_000 * E8)
    assert loss == 4_459_950_000_000_000_000_000  # 4.95 taker fee + 4455 loss
    # seizures: only this position's own locks, last credited first, each capped at the lock
    assert [(e.lock_id, e.kind, e.amount) for e in outcome.settlements] == [
        (_lock_id(env, second), SettlementKind.SEIZE, 400 * USDC_UNIT),
        (_lock_id(env, first), SettlementKind.SEIZE, 600 * USDC_UNIT),
    ]
    assert not outcome.released
    # shortfall = -E after the close: the loss beyond this position's own collateral
    assert outcome.shortfall is not None and outcome.shortfall.usd_e18 == loss - 1_000 * E18
    assert outcome.shortfall.usd_e18 == -m.equity_usd_e18
    assert env.venue.functions.insuranceFund().call() == (
        insurance_before - outcome.shortfall.usd_e18
    )
    assert env.position_of(pk) == PositionState(ETH, 0, 0, 0, _ts(env, liq.height))
    assert env.venue.functions.positionLocks(pk).call() == []
    assert env.venue.functions.collateralOf(pk, SRC, USDC).call() == 0
    assert env.snapshot(bystander) == before_bystander
    # once per trigger: the state changed
    assert env.refused(env.venue.functions.liquidate(pk, PPM), sender=OTHER) == (
        f"NoOpenTrade(0x{pk.hex()})"
    )


def test_liq01_full_liquidation_releases_what_remains_to_the_owner(env: Env) -> None:
    env.publish(eth=3_000 * E8, usdc=E8)
    pk = env.position()
    lock = env.credit(pk, 1_000 * USDC_UNIT)
    env.send(env.venue.functions.open(pk, ETH, -2 * E18))  # 6x short
    env.publish(eth=3_390 * E8)  # E = 1000 - 3 - 780 = 217 < MM 339, not below MM / 2
    m = env.assert_margin(pk)
    assert m.maintenance_usd_e18 // 2 < m.equity_usd_e18 < m.maintenance_usd_e18
    collateral = m.collateral_usd_e18
    receipt = env.send(env.venue.functions.liquidate(pk, PPM), sender=OTHER)  # full on request
    [liq] = env.logs("Liquidated", receipt)
    assert liq["args"]["feeUsdE18"] == fee(2 * E18, 3_390 * E8, 10_000)  # E covers the fee
    assert liq["args"]["full"] is True
    assert env.position_of(pk).realized_usd_e18 == 0  # the booked loss was seized
    booked = -(fee(2 * E18, 3_000 * E8, 500) - pnl(-2 * E18, 3_390 * E8, 3_000 * E8)
               + liq["args"]["feeUsdE18"])
    expected, shortfall = mirror_settle(
        [(lock, 1_000 * USDC_UNIT, 6, E8, 0)], -booked, collateral, True)
    got = [(lock_key(SRC, VAULT, bytes(e["args"]["lockId"])), e["args"]["kind"],
            e["args"]["amount"]) for e in env.logs("SettlementRequested", receipt)]
    assert got == expected and shortfall == 0
    assert [k for _, k, _ in got] == [SettlementKind.SEIZE, SettlementKind.RELEASE]
    assert sum(a for *_, a in got) == 1_000 * USDC_UNIT
    assert not env.logs("Shortfall", receipt)
    credit = env.venue.functions.lockCredit(lock).call()
    assert credit[3] == 0  # remaining


def test_liq02_isolation_same_owner_same_asset(env: Env) -> None:
    env.publish(eth=3_000 * E8, usdc=E8)
    a, b = env.position(), env.position()
    env.credit(a, 1_000 * USDC_UNIT)
    env.credit(b, 1_000 * USDC_UNIT)
    env.send(env.venue.functions.open(a, ETH, 33 * E18 // 10))  # ~10x
    env.send(env.venue.functions.open(b, ETH, 2 * E18 // 3))  # ~2x
    env.publish(eth=1_650 * E8)
    ma, mb = env.assert_margin(a), env.assert_margin(b)
    assert ma.equity_usd_e18 < ma.maintenance_usd_e18
    assert mb.equity_usd_e18 >= mb.maintenance_usd_e18  # B survives the crash
    before = env.snapshot(b)
    prices_before = _core_prices(env, b)
    assert prices_before.liquidation_price_e8 == _liquidation_price(env, b)
    receipt = env.send(env.venue.functions.liquidate(a, PPM), sender=OTHER)
    seized_ids = {bytes(e["args"]["lockId"]) for e in env.logs("SettlementRequested", receipt)}
    assert seized_ids and seized_ids.isdisjoint(
        {_lock_id(env, k) for k, *_ in env.locks(b)})
    assert env.snapshot(b) == before  # bit-identical: position, margin, locks, collateral
    assert _core_prices(env, b) == prices_before  # liquidation and bankruptcy prices
    env.assert_margin(b)


# ----- partial liquidation ------------------------------------------------------------------------


def test_partial_liquidation_restores_im_with_step_max_dust_and_cooldown(env: Env) -> None:
    env.publish(eth=3_000 * E8, usdc=E8)
    venue = env.venue.functions

    async def buffers() -> None:
        risk, trader = await env.client(OTHER_KEY), await env.client()
        try:
            with pytest.raises(TxRejected, match=r"NotRiskUpdater\("):
                await trader.set_buffer(ETH_B, 10_000)
            with pytest.raises(TxRejected, match=r"BufferAboveMax\(50001, 50000\)"):
                await risk.set_buffer(ETH_B, 50_001)
            event = await risk.set_buffer(ETH_B, 45_000)  # MM = 9.5 % of N, IM = 10 %
            assert (event.market, event.buffer_ppm) == (ETH_B, 45_000)
        finally:
            await risk.aclose()
            await trader.aclose()

    run(buffers)
    params, buffer_ppm = env.market(ETH_B)
    assert buffer_ppm == 45_000
    pk, dusty = env.position(), env.position()
    lock = env.credit(pk, 1_000 * USDC_UNIT)
    env.credit(dusty, 13 * USDC_UNIT // 10)
    env.send(venue.open(pk, ETH_B, 3 * E18))
    env.send(venue.open(dusty, ETH_B, 4 * E18 // 1_000))  # 12 USD notional
    env.publish(eth=2_945 * E8)
    m = env.assert_margin(pk)
    assert m.maintenance_usd_e18 * params.full_ratio_ppm <= m.equity_usd_e18 * PPM
    assert m.equity_usd_e18 < m.maintenance_usd_e18  # liquidatable, not deep enough to force

    # dust: closing 25 % would leave 8.8 USD < 10 USD of notional, so it closes everything
    receipt = env.send(venue.liquidate(dusty, params.step_max_ppm), sender=OTHER)
    [liq] = env.logs("Liquidated", receipt)
    assert liq["args"]["full"] is True and env.position_of(dusty).size_e18 == 0

    # step max
    assert env.refused(venue.liquidate(pk, params.step_max_ppm + 1), sender=OTHER) == (
        f"StepTooLarge({params.step_max_ppm + 1}, {params.step_max_ppm})"
    )
    # a 1 % step does not restore the margin; its fee is charged once, PnL realized
    pos = env.position_of(pk)
    receipt = env.send(venue.liquidate(pk, 10_000), sender=OTHER)
    [liq] = env.logs("Liquidated", receipt)
    closed = ceil_div(3 * E18 * 10_000, PPM)
    liq_fee = fee(closed, 2_945 * E8, params.liq_fee_ppm)
    assert (liq["args"]["closedSizeE18"], liq["args"]["feeUsdE18"], liq["args"]["full"]) == (
        closed, liq_fee, False)
    assert not env.logs("SettlementRequested", receipt)  # partial: booked, not seized
    now = _ts(env, receipt["blockNumber"])
    assert env.position_of(pk) == PositionState(
        ETH_B, 3 * E18 - closed, 3_000 * E8,
        pos.realized_usd_e18 + pnl(closed, 2_945 * E8, 3_000 * E8) - liq_fee, now)
    m = env.assert_margin(pk)
    assert m.equity_usd_e18 < m.maintenance_usd_e18
    print(f"\ngas: partial liquidation {receipt['gasUsed']}")

    # cooldown: the next (non-forced) liquidation waits; a release is refused meanwhile
    fraction = _smallest_restoring_fraction(env, pk, 2_945 * E8)
    assert 0 < fraction <= params.step_max_ppm
    until = now + params.cooldown_s
    assert env.refused(venue.liquidate(pk, fraction), sender=OTHER) == (
        f"LiquidationCooldown({until})"
    )
    assert env.refused(venue.requestRelease(pk, SRC, VAULT, _lock_id(env, lock), 1)) == (
        f"LiquidationPending(0x{pk.hex()}, {until})"
    )
    env.advance(params.cooldown_s)
    env.publish()
    # one ppm less than the planned fraction would not restore E >= IM ...
    m_short = _simulate_partial(env, pk, fraction - 1, 2_945 * E8)
    assert m_short.equity_usd_e18 < m_short.initial_usd_e18
    planned = _simulate_partial(env, pk, fraction, 2_945 * E8)
    env.send(venue.liquidate(pk, fraction), sender=OTHER)
    m = env.assert_margin(pk)
    assert m == planned and m.equity_usd_e18 >= m.initial_usd_e18  # ... the planned one does
    # once per trigger: the state changed, so a second liquidation is refused
    assert env.refused(venue.liquidate(pk, fraction), sender=OTHER) == (
        f"NotLiquidatable({m.equity_usd_e18}, {m.maintenance_usd_e18})"
    )


def test_liquidate_when_not_liquidatable_reverts(env: Env) -> None:
    env.publish(eth=3_000 * E8, usdc=E8)
    pk = env.position()
    env.credit(pk, 1_000 * USDC_UNIT)
    venue = env.venue.functions
    assert env.refused(venue.liquidate(pk, PPM), sender=OTHER) == f"NoOpenTrade(0x{pk.hex()})"
    env.send(venue.open(pk, ETH, 2 * E18))
    m = env.assert_margin(pk)
    assert env.refused(venue.liquidate(pk, PPM), sender=OTHER) == (
        f"NotLiquidatable({m.equity_usd_e18}, {m.maintenance_usd_e18})"
    )
    for bad in (0, PPM + 1):
        assert env.refused(venue.liquidate(pk, bad), sender=OTHER) == f"InvalidFraction({bad})"

    async def keeper() -> None:
        client = await env.client(OTHER_KEY)
        try:
            with pytest.raises(TxRejected, match=r"^.*NotLiquidatable\(") as info:
                await client.liquidate(pk, 500_000)
            assert info.value.tx_id is None  # refused at estimate: nothing mined
            with pytest.raises(InputError):
                await client.liquidate(pk, 0)
        finally:
            await client.aclose()

    run(keeper)


# ----- LIQ-03 -------------------------------------------------------------------------------------


def test_liq03_release_racing_a_price_drop_is_rechecked_at_execution(env: Env) -> None:
    env.publish(eth=3_000 * E8, usdc=E8)
    pk = env.position()
    lock = env.credit(pk, 1_000 * USDC_UNIT)
    lock_id = _lock_id(env, lock)
    venue = env.venue.functions
    env.send(venue.open(pk, ETH, 3 * E18))  # E 995.5, IM 900
    release = venue.requestRelease(pk, SRC, VAULT, lock_id, 80 * USDC_UNIT)
    release.call({"from": TRADER})  # fine at the price the trader sees (E 915.5 >= 900)

    last = max(env.price(ETH)[1], env.price(USDC_FEED)[1])
    if env.now() <= last:
        env.advance(1)
    rpc(env.url, "evm_setAutomine", False)
    try:
        # the feeder's update lands first in the block (sent first, higher tip); the trader's
        # release, checked against the old price, executes after it
        tip = {"maxFeePerGas": 200 * 10**9}
        tx_price = env.publish_call(ETH, 2_990 * E8, env.now()).transact(
            {"from": FEEDER, "gas": 900_000, "maxPriorityFeePerGas": 50 * 10**9, **tip})
        tx_release = release.transact({"from": TRADER, "gas": 600_000,
                                       "maxPriorityFeePerGas": 10**9, **tip})
        rpc(env.url, "evm_mine")
    finally:
        rpc(env.url, "evm_setAutomine", True)
    r_price = env.w3.eth.get_transaction_receipt(tx_price)
    r_release = env.w3.eth.get_transaction_receipt(tx_release)
    assert r_price["blockNumber"] == r_release["blockNumber"]
    assert r_price["transactionIndex"] < r_release["transactionIndex"]
    assert (r_price["status"], r_release["status"]) == (1, 0)  # re-checked on the newest price
    assert env.venue.functions.collateralOf(pk, SRC, USDC).call() == 1_000 * E18
    m = env.assert_margin(pk)
    assert env.refused(release) == (
        f"InsufficientMargin({m.equity_usd_e18 - 80 * E18}, {m.initial_usd_e18})"
    )
    # a liquidatable position releases nothing at all
    env.publish(eth=2_800 * E8)
    m = env.assert_margin(pk)
    assert m.equity_usd_e18 < m.maintenance_usd_e18
    assert env.refused(venue.requestRelease(pk, SRC, VAULT, lock_id, 1)).startswith(
        "InsufficientMargin(")


# ----- helpers --------------------------------------------------------------------------------------


def _lock_id(env: Env, key: bytes) -> bytes:
    [event] = [e for e in env.venue.events.Credited().get_logs(from_block=0)
               if lock_key(SRC, VAULT, bytes(e["args"]["lockId"])) == key]
    return bytes(event["args"]["lockId"])


def _core_prices(env: Env, position: bytes) -> PositionPrices:
    core_position, prices, params, buffer_ppm, _ = _core(env, position)
    return position_prices(core_position, prices, params, buffer_ppm)


def _ts(env: Env, height: int) -> int:
    return int(env.w3.eth.get_block(height)["timestamp"])


def _liquidation_price(env: Env, position: bytes) -> int:
    """A long's liquidation price, bisected on integer prices with the rules above: the
    smallest mark at which E >= MM (one stable collateral asset)."""
    pos = env.position_of(position)
    params, buffer_ppm = env.market(pos.market)
    entries = [(env.venue.functions.collateralOf(position, SRC, USDC).call(), E8, 0)]
    lo, hi = 1, pos.entry_e8
    while lo < hi:  # largest p with E < MM
        mid = (lo + hi + 1) // 2
        m = margin(entries, pos, mid, params, buffer_ppm)
        if m.equity_usd_e18 < m.maintenance_usd_e18:
            lo = mid
        else:
            hi = mid - 1
    return lo + 1


def _simulate_partial(env: Env, position: bytes, fraction: int, mark: int) -> MarginState:
    """Margin after liquidating ``fraction`` of ``position`` at ``mark`` (the contract's rules)."""
    return _partial(_inputs(env, position), fraction, mark)


def _inputs(env: Env, position: bytes) -> tuple[Any, ...]:
    pos = env.position_of(position)
    entries = [(env.venue.functions.collateralOf(position, SRC, USDC).call(), E8, 0)]
    return (pos, *env.market(pos.market), entries)


def _partial(inputs: tuple[Any, ...], fraction: int, mark: int) -> MarginState:
    pos, params, buffer_ppm, entries = inputs
    closed = ceil_div(abs(pos.size_e18) * fraction, PPM)
    sign = 1 if pos.size_e18 > 0 else -1
    realized = pos.realized_usd_e18 + pnl(sign * closed, mark, pos.entry_e8)
    rest = pos.size_e18 - sign * closed
    before_fee = collateral_value(entries) + realized + pnl(rest, mark, pos.entry_e8)
    liq_fee = min(fee(closed, mark, params.liq_fee_ppm), params.liq_fee_cap_usd_e18,
                  max(before_fee, 0))  # taken from equity only
    after = PositionState(pos.market, rest, pos.entry_e8, realized - liq_fee,
                          pos.last_liquidation)
    return margin(entries, after, mark, params, buffer_ppm)


def _smallest_restoring_fraction(env: Env, position: bytes, mark: int) -> int:
    """The plan of DESIGN §3: the smallest fraction (ppm) after which E >= IM."""
    inputs = _inputs(env, position)
    lo, hi = 1, PPM
    while lo < hi:
        mid = (lo + hi) // 2
        m = _partial(inputs, mid, mark)
        if m.equity_usd_e18 >= m.initial_usd_e18:
            hi = mid
        else:
            lo = mid + 1
    return lo


# ----- the chain against the Python risk core (orchestrator.risk) ------------------------------


def _core(
    env: Env, position: bytes
) -> tuple[CorePosition, dict[str, int], RiskParams, int, int | None]:
    """(core Position, prices, RiskParams, buffer, last step) of an on-chain position."""
    pos = env.position_of(position)
    params, buffer_ppm = env.market(pos.market)
    names = {USDC: "USDC", WETH: "ETH"}
    lots = tuple(
        CollateralLot(names[a], env.venue.functions.collateralOf(position, SRC, a).call())
        for a in dict.fromkeys(a for *_, a in env.locks(position))
    )
    feeds = {name: env.venue.functions.collateralConfigOf(SRC, a).call()
             for a, name in names.items()}
    risk_params = RiskParams(
        venue="evm-b", market="ETH-USD-B", base_asset="ETH",
        imr_ppm=params.imr_ppm, mmr_ppm=params.mmr_ppm, buffer_k_ppm=0, buffer_horizon_s=0,
        buffer_max_ppm=params.buffer_max_ppm, vol_lambda_ppm=940_000, vol_sigma0_ppb=0,
        liq_fee_ppm=params.liq_fee_ppm, fee_cap_usd_e18=params.liq_fee_cap_usd_e18,
        step_max_ppm=params.step_max_ppm, full_ratio_ppm=params.full_ratio_ppm,
        dust_usd_e18=params.dust_notional_usd_e18, cooldown_s=params.cooldown_s,
        max_price_age_user_s=params.max_age_user_s,
        max_price_age_liquidation_s=params.max_age_liq_s,
        min_price_e8=params.min_price_e8, max_price_e8=params.max_price_e8,
        collateral={
            name: CollateralParams(haircut_ppm=haircut, stable=name == "USDC",
                                   min_price_e8=low, max_price_e8=high)
            for name, (_, haircut, low, high) in feeds.items()
        },
    )
    core_position = CorePosition(
        key="0x" + position.hex(), version=0, size_e18=pos.size_e18, entry_e8=pos.entry_e8,
        collateral=lots, accrued_fees_usd_e18=-pos.realized_usd_e18,
    )
    prices = {"ETH": env.price(ETH)[0], "USDC": env.price(USDC_FEED)[0]}
    return core_position, prices, risk_params, buffer_ppm, pos.last_liquidation or None


def _core_risk(env: Env, position: bytes) -> MarginState:
    core_position, prices, params, buffer_ppm, _ = _core(env, position)
    r = position_risk(core_position, prices, params, buffer_ppm)
    return MarginState(r.collateral_usd_e18, r.equity_usd_e18, r.initial_margin_usd_e18,
                       r.maintenance_margin_usd_e18, r.notional_usd_e18)


def _core_plan(env: Env, position: bytes) -> LiquidationPlan:
    core_position, prices, params, buffer_ppm, last = _core(env, position)
    return plan_at_prices(core_position, prices, params, buffer_ppm, tick_id="t",
                          now_chain_s=env.now(), last_step_at_s=last)


def test_chain_agrees_with_the_python_risk_core(env: Env) -> None:
    env.publish(eth=3_000 * E8, usdc=E8)
    env.send(env.venue.functions.setBuffer(ETH_B, 45_000), sender=OTHER)
    venue = env.venue.functions
    partial, deep, mixed = env.position(), env.position(), env.position()
    for pk in (partial, deep):
        env.credit(pk, 1_000 * USDC_UNIT)
    env.credit(mixed, 700 * USDC_UNIT)
    env.credit(mixed, 2 * E18 // 10, asset=WETH, decimals=18)
    env.send(venue.open(partial, ETH_B, 3 * E18))
    env.send(venue.open(deep, ETH_B, -33 * E18 // 10))
    env.send(venue.open(mixed, ETH_B, 2 * E18))
    for pk in (partial, deep, mixed):  # C, E, IM, MM, N: the same integers
        assert env.margin_of(pk) == _core_risk(env, pk) == env.expected(pk)

    # remove margin: the core's largest accepted release is exactly the chain's
    lock = env.locks(partial)[0][0]
    core_position, prices, params, buffer_ppm, _ = _core(env, partial)
    now = env.now()
    ticks = {a: PriceTick(a, p, env.price(ETH if a == "ETH" else USDC_FEED)[1], a)
             for a, p in prices.items()}

    def accepted(units: int) -> bool:
        lot = core_position.collateral[0]
        after = CorePosition(
            key=core_position.key, version=0, size_e18=core_position.size_e18,
            entry_e8=core_position.entry_e8,
            collateral=(CollateralLot(lot.asset, lot.amount18 - units * 10**12),),
            accrued_fees_usd_e18=core_position.accrued_fees_usd_e18)
        try:
            check_user_action(UserAction.REMOVE_MARGIN, after, ticks, now, params, buffer_ppm)
        except InsufficientMargin:
            return False
        return True

    lo, hi = 0, 1_000 * USDC_UNIT
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if accepted(mid) else (lo, mid - 1)
    release = venue.requestRelease
    assert env.refused(release(partial, SRC, VAULT, _lock_id(env, lock), lo + 1)).startswith(
        "InsufficientMargin(")
    release(partial, SRC, VAULT, _lock_id(env, lock), lo).call({"from": TRADER})

    # a crash: the mixed position is valued the same (WETH moves with the mark, 10 % haircut)
    env.publish(eth=2_945 * E8)
    assert env.margin_of(mixed) == _core_risk(env, mixed)

    # partial: the core's plan, sent as is, lands exactly where the core said
    plan = _core_plan(env, partial)
    assert (plan.kind, plan.reason) == (PlanKind.PARTIAL, PlanReason.TO_INITIAL_MARGIN)
    assert plan.close_fraction_ppm == _smallest_restoring_fraction(env, partial, 2_945 * E8)
    receipt = env.send(venue.liquidate(partial, plan.close_fraction_ppm), sender=OTHER)
    [liq] = env.logs("Liquidated", receipt)
    assert (liq["args"]["closedSizeE18"], liq["args"]["feeUsdE18"], liq["args"]["full"]) == (
        plan.close_size_e18, plan.fee_usd_e18, False)
    after = env.margin_of(partial)
    assert (after.equity_usd_e18, after.initial_usd_e18, after.maintenance_usd_e18) == (
        plan.equity_after_usd_e18, plan.initial_margin_after_usd_e18,
        plan.maintenance_after_usd_e18)
    assert after == _core_risk(env, partial)

    # deep (a short through bankruptcy): full, fee waived, shortfall = -E_after on both sides
    env.publish(eth=3_400 * E8)
    plan = _core_plan(env, deep)
    assert (plan.kind, plan.reason) == (PlanKind.FULL, PlanReason.BELOW_FULL_RATIO)
    insurance = venue.insuranceFund().call()
    receipt = env.send(venue.liquidate(deep, plan.close_fraction_ppm), sender=OTHER)
    [liq] = env.logs("Liquidated", receipt)
    [shortfall] = env.logs("Shortfall", receipt)
    assert liq["args"]["full"] is True and liq["args"]["feeUsdE18"] == plan.fee_usd_e18 == 0
    assert shortfall["args"]["usdE18"] == plan.shortfall_usd_e18 > 0
    assert venue.insuranceFund().call() == insurance - plan.shortfall_usd_e18
    assert [e["args"]["kind"] for e in env.logs("SettlementRequested", receipt)] == [
        SettlementKind.SEIZE]

    # liquidatable again within the cooldown: both refuse the next partial step until the same
    # chain time
    env.publish(eth=2_920 * E8)
    m = env.margin_of(partial)
    assert m.maintenance_usd_e18 * 500_000 <= m.equity_usd_e18 * PPM < m.maintenance_usd_e18 * PPM
    with pytest.raises(LiquidationCooldown) as info:
        _core_plan(env, partial)
    assert env.refused(venue.liquidate(partial, 10_000), sender=OTHER) == (
        f"LiquidationCooldown({info.value.ready_at_s})"
    )


def test_too_many_locks_per_position_and_a_full_release_frees_a_slot(env: Env) -> None:
    pk = env.position()
    cap = env.venue.functions.MAX_POSITION_LOCKS().call()
    keys = [env.credit(pk, USDC_UNIT) for _ in range(cap)]
    a = LockAttestation(
        src_chain_id=SRC, src_vault=VAULT, lock_id=keccak(text=f"lock-{next(_ids)}"),
        owner=bytes.fromhex(address_to_bytes32(TRADER)[2:]), beneficiary=TRADER,
        src_asset=USDC, amount=USDC_UNIT, decimals=6, position_key=pk, attester_set_index=0,
    )
    credit = env.venue.functions.credit(as_tuple(a), env.signatures(a))
    assert env.refused(credit, sender=OTHER) == f"TooManyLocks(0x{pk.hex()}, {cap})"
    env.send(env.venue.functions.requestRelease(pk, SRC, VAULT, _lock_id(env, keys[0]),
                                                USDC_UNIT))
    assert len(env.venue.functions.positionLocks(pk).call()) == cap - 1
    env.send(credit, sender=OTHER)
    assert len(env.venue.functions.positionLocks(pk).call()) == cap


def test_client_settings_views_and_event_decoders(env: Env) -> None:
    env.publish(eth=3_000 * E8, usdc=E8)
    new_market = market_id("TEST-USD")
    good = MARKETS.markets[0].params()

    async def admin() -> tuple[Any, ...]:
        owner, trader = await env.client(DEPLOYER_KEY), await env.client()
        try:
            with pytest.raises(InputError, match="liq_fee_ppm"):
                await owner.set_market(new_market, MarketParams(
                    **{**_fields(good), "liq_fee_ppm": good.mmr_ppm}))
            with pytest.raises(TxRejected, match=r"OwnableUnauthorizedAccount\("):
                await trader.set_market(new_market, good)
            await owner.set_market(new_market, good)
            market = await owner.market_of(new_market)
            config = CollateralConfig(USDC_FEED, 20_000, 50_000_000, 2 * E8)
            await owner.set_collateral(999, USDC, config)
            got = await owner.collateral_config_of(999, USDC)
            return market, got, config
        finally:
            await owner.aclose()
            await trader.aclose()

    market, got, config = run(admin)
    assert market == (good, 0) and got == config
    # the contract applies the same market rules as the client
    bad = list(market_params_tuple(good))
    bad[4] = good.mmr_ppm  # liq fee not below mmr
    assert env.refused(env.venue.functions.setMarket(new_market, tuple(bad)),
                       sender=DEPLOYER) == "InvalidMarketParams()"

    # raw logs decode like receipts; malformed ones are refused
    pk = env.position()
    env.credit(pk, 1_000 * USDC_UNIT)
    receipt = env.send(env.venue.functions.open(pk, ETH, E18))
    height = receipt["blockNumber"]
    [raw] = rpc(env.url, "eth_getLogs", {"fromBlock": hex(height), "toBlock": hex(height),
                                         "address": env.venue.address, "topics": [[TRADED_TOPIC0]]})
    traded = decode_traded(raw)
    assert isinstance(decode_venue_log(raw), TradedEvent) and traded.size_e18 == E18
    for bad_log in ({**raw, "data": raw["data"][:-2]}, {**raw, "topics": raw["topics"][:2]}):
        with pytest.raises(LogMalformed):
            decode_traded(bad_log)

    async def events() -> list[Any]:
        client = await env.client(OTHER_KEY)
        try:
            return await client.risk_events(height, height)
        finally:
            await client.aclose()

    assert run(events) == [traded]
    env.publish(eth=2_000 * E8)
    receipt = env.send(env.venue.functions.liquidate(pk, PPM), sender=OTHER)
    height = receipt["blockNumber"]
    [raw] = rpc(env.url, "eth_getLogs", {"fromBlock": hex(height), "toBlock": hex(height),
                                         "address": env.venue.address,
                                         "topics": [[LIQUIDATED_TOPIC0]]})
    liquidated = decode_liquidated(raw)
    assert isinstance(liquidated, LiquidatedEvent) and liquidated.full
    words = raw["data"][2:]
    dirty_bool = "0x" + words[:192] + "00" * 31 + "02" + words[256:]
    with pytest.raises(LogMalformed):
        decode_liquidated({**raw, "data": dirty_bool})


def _fields(p: MarketParams) -> dict[str, Any]:
    return {name: getattr(p, name) for name in p.__dataclass_fields__}
