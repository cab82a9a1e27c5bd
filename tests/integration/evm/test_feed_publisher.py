"""FeedPublisher on a real anvil: the devnet's feeder seam writes each source of a mark into
the packages' own mocks and pokes the mark (docs/mark.md).

Sources of the id: Chainlink ``MockV3Aggregator`` with 8 decimals, another with 18, and a Pyth
price on ``MockPyth``, configured on a ``MarkOracle`` at least 2 sources, 2 % deviation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from chains.evm.artifacts import load_artifact
from chains.evm.codec import decode_revert
from devnet.process import ManagedProcess
from orchestrator.risk.mark import SourceReading
from tests.integration.evm.conftest import DEPLOYER_KEY, FEEDER, OTHER
from tests.support.chain import rpc
from tests.unit.risk.constants import MARK_PARAMS

pytestmark = pytest.mark.integration

E8 = 10**8
DEPLOYER = Account.from_key(DEPLOYER_KEY).address
ETH = keccak(text="publisher:ETH-USD")
PYTH_ETH = keccak(text="pyth:publisher:ETH-USD")
ABIS = [load_artifact(n).abi for n in ("FeedPublisher", "MarkOracle", "MockPyth")]


@dataclass
class Env:
    w3: Web3
    url: str
    oracle: Contract
    feeds: Contract
    pyth: Contract

    def send(self, fn: Any, sender: str = FEEDER) -> Any:
        receipt = self.w3.eth.wait_for_transaction_receipt(
            fn.transact({"from": sender, "gas": 2_000_000}), timeout=10, poll_latency=0.02)
        assert receipt["status"] == 1, receipt
        return receipt

    def refused(self, fn: Any, sender: str = FEEDER) -> str:
        with pytest.raises(ContractLogicError) as info:
            fn.call({"from": sender})
        assert isinstance(info.value.data, str), info.value
        return decode_revert(info.value.data, ABIS)

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def fresh_time(self, after_s: int = 10) -> int:
        """A publish time ``after_s`` past any so far, with a block mined at it."""
        t = max(self.now(), int(self.feeds.functions.lastPublish(ETH).call())) + after_s
        rpc(self.url, "evm_setNextBlockTimestamp", hex(t))
        rpc(self.url, "evm_mine")
        return t

    def readings(self) -> list[SourceReading]:
        return [SourceReading.from_tuple(r) for r in self.oracle.functions.readSources(ETH).call()]


def deploy(w3: Web3, name: str, *args: Any) -> Contract:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = w3.eth.wait_for_transaction_receipt(
        factory.constructor(*args).transact({"from": DEPLOYER}), timeout=10)
    return w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


@pytest.fixture(scope="module")
def env(anvil_a: ManagedProcess) -> Env:
    w3 = Web3(Web3.HTTPProvider(anvil_a.url, request_kwargs={"timeout": 10}))
    oracle = deploy(w3, "MarkOracle", DEPLOYER)
    cl8 = deploy(w3, "MockV3Aggregator", 8, 2_000 * E8)
    cl18 = deploy(w3, "MockV3Aggregator", 18, 2_000 * 10**18)
    pyth = deploy(w3, "MockPyth", 60, 0)
    feeds = deploy(w3, "FeedPublisher", DEPLOYER, FEEDER, oracle.address)
    e = Env(w3, anvil_a.url, oracle, feeds, pyth)
    sources = [(0, cl8.address, bytes(32)), (0, cl18.address, bytes(32)),
               (1, pyth.address, PYTH_ETH)]
    e.send(oracle.functions.configure(ETH, sources, MARK_PARAMS.as_tuple()), sender=DEPLOYER)
    return e


def test_only_the_feeder_publishes_and_the_sources_must_match(env: Env) -> None:
    t = env.fresh_time()
    fn = env.feeds.functions.publish(ETH, [E8] * 3, [0] * 3, t)
    assert env.refused(fn, sender=OTHER).startswith("AccessControlUnauthorizedAccount(")
    assert env.refused(env.feeds.functions.publish(ETH, [E8] * 2, [0] * 2, t)) == (
        f"SourceCountMismatch(0x{ETH.hex()}, 2, 3)")
    unknown = keccak(text="publisher:unknown")
    assert env.refused(env.feeds.functions.publish(unknown, [E8], [0], t)) == (
        f"SourceCountMismatch(0x{unknown.hex()}, 1, 0)")
    too_large = 2**63
    assert env.refused(env.feeds.functions.publish(ETH, [E8, E8, too_large], [0] * 3, t)) == (
        f"PriceTooLarge(2, {too_large})")


def test_each_source_gets_its_own_price_and_the_mark_is_poked(env: Env) -> None:
    t = env.fresh_time()
    prices = [2_000 * E8, 2_010 * E8, 2_005 * E8]
    receipt = env.send(env.feeds.functions.publish(ETH, prices, [0, 0, 3 * E8], t))
    (published,) = env.feeds.events.SourcesPublished().process_receipt(receipt, errors=DISCARD)
    assert list(published["args"]["pricesE8"]) == prices and published["args"]["publishTime"] == t
    readings = env.readings()
    assert [(r.answer, r.expo, r.time_s) for r in readings] == [
        (2_000 * E8, -8, t), (2_010 * 10**18, -18, t), (2_005 * E8, -8, t)]
    assert readings[2].conf == 3 * E8
    (poked,) = env.oracle.events.EmaUpdated().process_receipt(receipt, errors=DISCARD)
    assert (poked["args"]["markE8"], poked["args"]["publishTime"]) == (2_005 * E8, t)
    assert env.oracle.functions.getMark(ETH, 60).call() == [2_005 * E8, t, 3]


def test_a_zero_price_holds_its_source_and_a_poke_without_a_mark_is_skipped(env: Env) -> None:
    t0 = env.fresh_time()
    env.send(env.feeds.functions.publish(ETH, [2_000 * E8] * 3, [0] * 3, t0))
    t1 = env.fresh_time(MARK_PARAMS.poke_max_age_s + 10)
    receipt = env.send(env.feeds.functions.publish(ETH, [0, 0, 2_001 * E8], [0] * 3, t1))
    readings = env.readings()
    assert [r.time_s for r in readings] == [t0, t0, t1]  # the Chainlink feeds held
    assert readings[2].answer == 2_001 * E8
    # the held sources are older than the poke's max age: one valid source, no mark, no poke
    (skipped,) = env.feeds.events.PokeSkipped().process_receipt(receipt, errors=DISCARD)
    assert decode_revert(skipped["args"]["reason"], ABIS) == f"TooFewSources(0x{ETH.hex()}, 1, 2)"
    assert env.oracle.events.EmaUpdated().process_receipt(receipt, errors=DISCARD) == ()


def test_publish_time_only_moves_forward_and_never_past_the_block(env: Env) -> None:
    t = env.fresh_time()
    env.send(env.feeds.functions.publish(ETH, [2_000 * E8] * 3, [0] * 3, t))
    assert env.refused(env.feeds.functions.publish(ETH, [E8] * 3, [0] * 3, t)) == (
        f"PublishTimeNotIncreasing(0x{ETH.hex()}, {t}, {t})")
    future = env.now() + 3_600
    assert env.refused(env.feeds.functions.publish(ETH, [E8] * 3, [0] * 3, future)).startswith(
        f"PublishTimeInFuture({future}, ")
