"""Automated top-up rules on the reference venue, on a real anvil (DESIGN §3 "Automated
rebalancing", I1, I6, I8, I9).

Collateral is credited the real way (3-of-4 attester signatures over the venue's EIP-712
domain). The reserve's locks come from another source lane (chain 900001, its own vault and
asset, a distinct source owner) so a settlement of a moved lock shows exactly where it goes.

Numbers used throughout (market ETH-USD: IM 10 %, MM 5 %, no buffer, 5 bps taker fee): the
target holds 1000 USDC and opens long 2 ETH at 3000 (fee 3 USD). At 2650 its E = 297 and
MM = 265 (ratio 1.12 < 1.5: act); at 2730 E = 457, MM = 273 (1.67: healthy). At 2550 without
a top-up E = 97 < MM = 255 (liquidatable); with a 500 USD reserve lock moved in, E = 597.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_utils.crypto import keccak

from chains.evm.bridge_codec import lock_key
from chains.evm.oracle import OracleClient
from chains.evm.venue_codec import ToppedUp, TopUpRuleState
from devnet.evm_specs import MarketSpec, PriceFeedSpec, VenueMarkets
from orchestrator.liquidation.topup_keeper import TopUpKeeper
from shared.errors import InputError, TxRejected
from shared.ids import address_to_bytes32
from shared.messages import LockAttestation, SettlementKind
from tests.integration.evm.conftest import OTHER, OTHER_KEY, TRADER
from tests.integration.evm.venue_env import (
    E8,
    E18,
    ETH,
    PPM,
    RETRY,
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

SOL = 900001
SOL_VAULT = keccak(text="solana-vault-token-account")  # a Solana pubkey's 32 bytes
SOL_USDC = keccak(text="solana-usdc-mint")
SOL_OWNER = keccak(text="solana-owner-of-the-reserve")
EVM_OWNER = bytes.fromhex(address_to_bytes32(TRADER)[2:])
MARKETS = VenueMarkets(markets=(MarketSpec("ETH-USD", 3_000 * E8),),
                       collateral=(PriceFeedSpec("USDC", E8, 0),))
THRESHOLD = 1_500_000
_ids = itertools.count(1)


@dataclass
class Env(VenueChain):
    lock_ids: dict[bytes, bytes] = field(default_factory=dict)

    def publish(self, eth: int) -> None:
        """ETH-USD = ``eth`` and USDC = 1, both at a fresh publishTime."""
        self.set_prices({ETH: eth, USDC_FEED: E8})

    def position(self, owner: str = TRADER) -> bytes:
        salt = keccak(text=f"topup-salt-{next(_ids)}")
        return bytes(self.venue.functions.positionKeyOf(owner, salt).call())

    def claim(self, owner: str) -> bytes:
        salt = keccak(text=f"topup-claim-{next(_ids)}")
        key = bytes(self.venue.functions.positionKeyOf(owner, salt).call())
        self.send(self.venue.functions.claimPosition(salt), sender=owner)
        return key

    def credit(self, position: bytes, units: int, *, reserve: bool = False) -> bytes:
        """Credit one attested USDC lock (6 decimals): from evm-a, or for a reserve from the
        Solana lane with its own source owner. Returns the venue's lock key."""
        chain, vault, asset, owner = ((SOL, SOL_VAULT, SOL_USDC, SOL_OWNER) if reserve
                                      else (SRC, VAULT, USDC, EVM_OWNER))
        a = LockAttestation(
            src_chain_id=chain, src_vault=vault, lock_id=keccak(text=f"topup-lock-{next(_ids)}"),
            owner=owner, beneficiary=TRADER, src_asset=asset, amount=units, decimals=6,
            position_key=position, attester_set_index=0)
        self.credit_attested(a)
        key = lock_key(chain, vault, a.lock_id)
        self.lock_ids[key] = a.lock_id
        return key

    def margin(self, position: bytes) -> tuple[int, int]:
        """(E, MM) from marginOf."""
        _c, e, _im, mm, _n = self.venue.functions.marginOf(position).call()
        return int(e), int(mm)

    def locks(self, position: bytes) -> list[bytes]:
        return [bytes(k) for k in self.venue.functions.positionLocks(position).call()]

    def lane_outstanding(self) -> int:
        return int(self.venue.functions.laneAsset(SOL, SOL_VAULT, SOL_USDC).call()[3])

    def target(self, collateral: int = 1_000) -> bytes:
        """A position with ``collateral`` USDC, long 2 ETH opened at 3000."""
        self.publish(3_000 * E8)
        pk = self.position()
        self.credit(pk, collateral * USDC_UNIT)
        self.send(self.venue.functions.open(pk, ETH, 2 * E18))
        return pk

    def set_rule(self, target: bytes, source: bytes, max_usd: int,
                 threshold: int = THRESHOLD) -> None:
        self.send(self.venue.functions.setTopUpRule(target, source, threshold, max_usd * E18))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    lanes = [unlimited_lane(SRC, VAULT, USDC, 6), unlimited_lane(SOL, SOL_VAULT, SOL_USDC, 6)]
    with deployed_venue(Env, tmp_path_factory.mktemp("topup"), lanes, markets=MARKETS) as env:
        yield env


# ----- rules: who may set and clear them ---------------------------------------------------------


def test_only_the_owner_of_both_positions_sets_and_clears_a_rule(env: Env) -> None:
    venue = env.venue.functions
    target, reserve = env.position(), env.position()
    env.credit(target, 100 * USDC_UNIT)
    env.credit(reserve, 100 * USDC_UNIT, reserve=True)
    foreign = env.claim(OTHER)
    hx = "0x" + target.hex()
    assert env.refused(venue.setTopUpRule(target, reserve, THRESHOLD, E18), OTHER) == (
        f"NotPositionOwner({hx}, {OTHER})")
    assert env.refused(venue.setTopUpRule(target, foreign, THRESHOLD, E18)) == (
        f"NotPositionOwner(0x{foreign.hex()}, {TRADER})")
    assert env.refused(venue.setTopUpRule(target, env.position(), THRESHOLD, E18)).startswith(
        "NotPositionOwner(")  # an unowned key is nobody's reserve
    for bad in ((target, target, THRESHOLD, E18), (target, reserve, PPM, E18),
                (target, reserve, THRESHOLD, 0)):
        assert env.refused(venue.setTopUpRule(*bad)) == "InvalidTopUpRule()"
    assert env.refused(venue.clearTopUpRule(target)) == f"NoTopUpRule({hx})"

    async def body() -> tuple[Any, ...]:
        client = await env.client()
        try:
            with pytest.raises(InputError):
                await client.set_topup_rule(target, target, THRESHOLD, E18)
            with pytest.raises(InputError):
                await client.set_topup_rule(target, reserve, PPM, E18)
            none = await client.topup_rule_of(target)
            await client.set_topup_rule(target, reserve, THRESHOLD, 500 * E18)
            rule = await client.topup_rule_of(target)
            await client.clear_topup_rule(target)
            return none, rule, await client.topup_rule_of(target)
        finally:
            await client.aclose()

    none, rule, cleared = run(body)
    assert none is None and cleared is None
    assert rule == TopUpRuleState("0x" + reserve.hex(), THRESHOLD, 500 * E18, 0)
    env.set_rule(target, reserve, 500)
    assert env.refused(venue.clearTopUpRule(target), OTHER) == f"NotPositionOwner({hx}, {OTHER})"


# ----- topUp: refusals ---------------------------------------------------------------------------


def test_top_up_refused_without_rule_when_healthy_or_above_threshold(env: Env) -> None:
    venue = env.venue.functions
    target, reserve = env.target(), env.position()
    lock = env.credit(reserve, 500 * USDC_UNIT, reserve=True)
    hx = "0x" + target.hex()
    assert env.refused(venue.topUp(target, lock), OTHER) == f"NoTopUpRule({hx})"
    env.set_rule(target, reserve, 1_000)
    # healthy: at the opening price E/MM = 997 / 300
    e, mm = env.margin(target)
    assert env.refused(venue.topUp(target, lock), OTHER) == (
        f"TopUpNotNeeded({e}, {mm}, {THRESHOLD})")
    # below IM but above the threshold: 457 / 273 = 1.67 >= 1.5
    env.publish(2_730 * E8)
    e, mm = env.margin(target)
    assert (e, mm) == (457 * E18, 273 * E18)
    assert env.refused(venue.topUp(target, lock), OTHER) == (
        f"TopUpNotNeeded({e}, {mm}, {THRESHOLD})")
    # a flat target (no open trade) has nothing to protect
    flat = env.position()
    env.credit(flat, 10 * USDC_UNIT)
    env.set_rule(flat, reserve, 1_000)
    env.publish(2_650 * E8)
    assert env.refused(venue.topUp(flat, lock), OTHER) == f"NoOpenTrade(0x{flat.hex()})"
    assert env.locks(reserve) == [lock]


def test_top_up_refused_for_wrong_lock_reserve_trading_and_over_max(env: Env) -> None:
    venue = env.venue.functions
    target, reserve = env.target(), env.position()
    own = env.locks(target)[0]
    big = env.credit(reserve, 500 * USDC_UNIT, reserve=True)
    env.set_rule(target, reserve, 400)
    env.publish(2_650 * E8)
    src = "0x" + reserve.hex()
    assert env.refused(venue.topUp(target, own), OTHER) == f"LockNotInPosition(0x{own.hex()}, {src})"
    unknown = keccak(text="never-credited")
    assert env.refused(venue.topUp(target, unknown), OTHER) == f"NotCredited(0x{unknown.hex()})"
    # the lock is worth 500 USD, the rule allows 400 in total
    assert env.refused(venue.topUp(target, big), OTHER) == (
        f"TopUpAboveMax(0, {500 * E18}, {400 * E18})")
    # a reserve with an open trade holds no free collateral
    busy = env.position()
    busy_lock = env.credit(busy, 1_000 * USDC_UNIT, reserve=True)
    env.send(venue.open(busy, ETH, E18 // 10))
    env.set_rule(target, busy, 1_000)
    assert env.refused(venue.topUp(target, busy_lock), OTHER) == f"PositionOpen(0x{busy.hex()})"
    # cumulative: a 1000 USD budget takes the 500 lock, then refuses a 600 one
    env.set_rule(target, reserve, 1_000)
    second = env.credit(reserve, 600 * USDC_UNIT, reserve=True)
    env.send(venue.topUp(target, big), OTHER)
    assert venue.topUpRuleOf(target).call()[3] == 500 * E18
    env.publish(2_400 * E8)  # E = 1000 - 3 - 1200 + 500 = 297 < 1.5 * 240
    assert env.refused(venue.topUp(target, second), OTHER) == (
        f"TopUpAboveMax({500 * E18}, {600 * E18}, {1_000 * E18})")
    # re-registering grants a fresh budget
    env.set_rule(target, reserve, 1_000)
    env.send(venue.topUp(target, second), OTHER)
    assert venue.topUpRuleOf(target).call()[3] == 600 * E18


def test_top_up_refused_while_a_liquidation_is_pending(env: Env) -> None:
    venue = env.venue.functions
    target, reserve = env.target(), env.position()
    lock = env.credit(reserve, 500 * USDC_UNIT, reserve=True)
    env.set_rule(target, reserve, 1_000)
    env.publish(2_580 * E8)  # E = 157 < MM = 258, above MM * full ratio: a partial step
    env.send(venue.liquidate(target, 250_000), OTHER)
    last = venue.positionOf(target).call()[4]
    assert env.refused(venue.topUp(target, lock), OTHER) == (
        f"LiquidationPending(0x{target.hex()}, {last + 30})")
    env.advance(31)
    env.publish(2_580 * E8)
    env.send(venue.topUp(target, lock), OTHER)
    assert lock in env.locks(target)


# ----- topUp: the move ---------------------------------------------------------------------------


def test_top_up_moves_the_whole_lock_and_raises_equity(env: Env) -> None:
    venue = env.venue.functions
    target, reserve = env.target(), env.position()
    keep = env.credit(reserve, 300 * USDC_UNIT, reserve=True)
    lock = env.credit(reserve, 500 * USDC_UNIT, reserve=True)
    env.set_rule(target, reserve, 1_000)
    env.publish(2_650 * E8)
    e0, mm = env.margin(target)
    assert (e0, mm) == (297 * E18, 265 * E18)
    outstanding = env.lane_outstanding()
    credit_before = venue.lockCredit(lock).call()

    async def body() -> ToppedUp:
        client = await env.client(OTHER_KEY)  # anyone may execute the owner's rule
        try:
            done = await client.top_up(target, lock)
            with pytest.raises(TxRejected, match=r"LockNotInPosition\("):
                await client.top_up(target, lock)  # a retry after the move is refused
            return done
        finally:
            await client.aclose()

    done = run(body)
    assert done == ToppedUp("0x" + target.hex(), "0x" + reserve.hex(), "0x" + lock.hex(),
                            500 * E18, 500 * E18, done.tx_id, done.height)
    e1, mm1 = env.margin(target)
    assert (e1, mm1) == (e0 + 500 * E18, mm)
    assert env.locks(reserve) == [keep] and env.locks(target)[-1] == lock
    assert venue.collateralOf(reserve, SOL, SOL_USDC).call() == 300 * E18
    assert venue.collateralOf(target, SOL, SOL_USDC).call() == 500 * E18
    credit_after = venue.lockCredit(lock).call()
    # only the position changed: lane, source owner, remaining, decimals stay
    assert credit_after[0] == target and list(credit_after[1:]) == list(credit_before[1:])
    assert env.lane_outstanding() == outstanding  # I1: the move credits nothing new
    assert venue.topUpRuleOf(target).call()[3] == 500 * E18
    # a second call for the same lock finds it gone from the reserve
    assert env.refused(venue.topUp(target, lock), OTHER) == (
        f"LockNotInPosition(0x{lock.hex()}, 0x{reserve.hex()})")


def test_a_top_up_in_time_prevents_liquidation_at_the_next_price(env: Env) -> None:
    venue = env.venue.functions
    protected, bare = env.target(), env.target()
    reserve = env.position()
    lock = env.credit(reserve, 500 * USDC_UNIT, reserve=True)
    env.set_rule(protected, reserve, 1_000)
    env.publish(2_650 * E8)
    env.send(venue.topUp(protected, lock), OTHER)
    env.publish(2_550 * E8)
    e, mm = env.margin(bare)
    assert (e, mm) == (97 * E18, 255 * E18)  # liquidatable without a top-up
    assert env.margin(protected) == (597 * E18, 255 * E18)
    assert env.refused(venue.liquidate(protected, PPM), OTHER) == (
        f"NotLiquidatable({597 * E18}, {255 * E18})")
    receipt = env.send(venue.liquidate(bare, PPM), OTHER)
    assert env.logs("Liquidated", receipt)


def test_liquidation_seizes_a_moved_lock_on_its_source_lane(env: Env) -> None:
    venue = env.venue.functions
    target, reserve = env.target(), env.position()
    lock = env.credit(reserve, 500 * USDC_UNIT, reserve=True)
    env.set_rule(target, reserve, 1_000)
    env.publish(2_650 * E8)
    receipt = env.send(venue.topUp(target, lock), OTHER)
    (moved,) = env.logs("ToppedUp", receipt)
    assert (moved.args.lockKey, moved.args.amount18) == (lock, 500 * E18)
    outstanding = env.lane_outstanding()
    # a crash: E = 1500 - 3 - 1440 = 57 < MM / 2 = 114, a forced full liquidation. The loss
    # (1488.6 USD with the fee) is seized last listed lock first: the moved one (all 500),
    # then 988.6 from the target's own lock, whose rest is released to its own source owner.
    env.publish(2_280 * E8)
    receipt = env.send(venue.liquidate(target, PPM), OTHER)
    requests = [r.args for r in env.logs("SettlementRequested", receipt)]
    assert [(r.srcChainId, r.srcVault, r.lockId, r.kind, r.recipient, r.amount)
            for r in requests if r.srcChainId == SOL] == [
        (SOL, SOL_VAULT, env.lock_ids[lock], SettlementKind.SEIZE, bytes(32), 500 * USDC_UNIT)]
    own = [(r.srcVault, r.kind, r.recipient, r.amount) for r in requests if r.srcChainId == SRC]
    assert own == [(VAULT, SettlementKind.SEIZE, bytes(32), 988_600_000),
                   (VAULT, SettlementKind.RELEASE, EVM_OWNER, 11_400_000)]
    assert env.lane_outstanding() == outstanding - 500 * USDC_UNIT  # I1, per lock and lane
    assert env.locks(target) == [] and venue.lockCredit(lock).call()[3] == 0


def test_release_of_a_moved_lock_after_close_goes_to_its_source_owner(env: Env) -> None:
    venue = env.venue.functions
    target, reserve = env.target(), env.position()
    lock = env.credit(reserve, 500 * USDC_UNIT, reserve=True)
    env.set_rule(target, reserve, 1_000, threshold=4_000_000)  # 997 / 300 = 3.3 < 4: act now
    env.send(venue.topUp(target, lock), OTHER)
    env.publish(3_100 * E8)
    closed = env.send(venue.close(target))  # a profit: nothing is seized
    assert env.logs("SettlementRequested", closed) == []
    lock_id = env.lock_ids[lock]
    # the reserve's owner side no longer holds it; the target releases it to the source owner
    assert env.refused(venue.requestRelease(reserve, SOL, SOL_VAULT, lock_id, 1)) == (
        f"LockNotInPosition(0x{lock.hex()}, 0x{reserve.hex()})")
    outstanding = env.lane_outstanding()
    receipt = env.send(venue.requestRelease(target, SOL, SOL_VAULT, lock_id, 500 * USDC_UNIT))
    (req,) = [r.args for r in env.logs("SettlementRequested", receipt)]
    assert (req.srcChainId, req.srcVault, req.lockId, req.recipient, req.amount, req.kind) == (
        SOL, SOL_VAULT, lock_id, SOL_OWNER, 500 * USDC_UNIT, SettlementKind.RELEASE)
    assert env.lane_outstanding() == outstanding - 500 * USDC_UNIT
    assert lock not in env.locks(target)
    assert venue.collateralOf(target, SOL, SOL_USDC).call() == 0


# ----- the keeper --------------------------------------------------------------------------------


def test_keeper_moves_the_cheapest_restoring_lock_once(env: Env) -> None:
    target, reserve = env.target(), env.position()
    small = env.credit(reserve, 100 * USDC_UNIT, reserve=True)  # 297 + 100 < 1.5 * 265
    enough = env.credit(reserve, 200 * USDC_UNIT, reserve=True)  # 497 >= 397.5
    env.credit(reserve, 900 * USDC_UNIT, reserve=True)
    env.set_rule(target, reserve, 1_000)

    async def body() -> tuple[list[Any], list[Any], list[Any]]:
        client = await env.client(OTHER_KEY)
        oracle = await OracleClient.connect(env.url, env.oracle.address, chain="evm-b",
                                            retry=RETRY)
        keeper = TopUpKeeper(client, oracle, chain_time=oracle.chain_time)
        try:
            healthy = await keeper.run([target])
            env.publish(2_650 * E8)
            first = await keeper.run([target, reserve])
            second = await keeper.run([target, reserve])
            return healthy, first, second
        finally:
            await client.aclose()
            await oracle.aclose()

    healthy, first, second = run(body)
    assert healthy == [] and second == []
    assert [(r["lock"], r["outcome"]) for r in first] == [("0x" + enough.hex(), "moved")]
    assert enough in env.locks(target) and small in env.locks(reserve)
    assert env.margin(target)[0] == 497 * E18
