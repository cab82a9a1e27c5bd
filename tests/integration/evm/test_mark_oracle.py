"""MarkOracle on a real anvil, over the packages' own feed mocks (DESIGN §3, docs/mark.md).

Sources of ``ETH``: Chainlink ``MockV3Aggregator`` with 8 decimals, another with 18, and Pyth
``MockPyth`` (expo -8). Parameters: at least 2 sources, 2% deviation, 1% Pyth confidence,
bounds (100, 100_000) USD exclusive. Every scenario publishes its feeds relative to a fresh
block time ``N`` and mines exactly one block at ``N``, so reads are judged at ``N``.
The contract's pure ``computeMark`` is checked against ``orchestrator.risk.mark`` on random
inputs, and a read of the live feeds against the Python rule over the same readings.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_utils.crypto import keccak
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from chains.evm.artifacts import load_artifact
from chains.evm.codec import decode_revert
from devnet.process import ManagedProcess
from orchestrator.risk import TooFewSources
from orchestrator.risk.mark import (
    MarkParams,
    MarkResult,
    SourceKind,
    SourceReading,
    SourceReason,
    compute_mark,
    ema_step,
    normalize_e8,
)
from tests.integration.evm.conftest import DEPLOYER_KEY, OTHER
from tests.support.chain import rpc
from tests.unit.risk.constants import MARK_PARAMS

pytestmark = pytest.mark.integration

E8 = 10**8
DEPLOYER = Account.from_key(DEPLOYER_KEY).address
ETH = keccak(text="mark:ETH-USD")
PYTH_ETH = keccak(text="pyth:ETH/USD")
PYTH_MISSING = keccak(text="pyth:never-published")
CHAINLINK, PYTH = 0, 1
R = SourceReason
ABIS = [load_artifact(n).abi for n in ("MarkOracle", "MockPyth", "MockV3Aggregator")]
P = MARK_PARAMS
_ids = itertools.count(1)


def send(w3: Web3, fn: Any, sender: str = DEPLOYER) -> Any:
    receipt = w3.eth.wait_for_transaction_receipt(
        fn.transact({"from": sender}), timeout=10, poll_latency=0.02
    )
    assert receipt["status"] == 1, receipt
    return receipt


def deploy(w3: Web3, name: str, *args: Any) -> Contract:
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    address = send(w3, factory.constructor(*args))["contractAddress"]
    contract: Contract = w3.eth.contract(address=address, abi=artifact.abi)
    return contract


@dataclass
class Env:
    w3: Web3
    url: str
    oracle: Contract
    cl8: Contract
    cl18: Contract
    pyth: Contract
    rounds: Iterator[int] = field(default_factory=lambda: itertools.count(10))

    def send(self, fn: Any, sender: str = DEPLOYER) -> Any:
        return send(self.w3, fn, sender)

    def refused(self, fn: Any, sender: str = DEPLOYER) -> str:
        return self.refused_with(fn, sender=sender)

    def refused_with(self, fn: Any, sender: str = DEPLOYER, **tx: Any) -> str:
        with pytest.raises(ContractLogicError) as info:
            fn.call({"from": sender, **tx})
        assert isinstance(info.value.data, str), info.value
        return decode_revert(info.value.data, ABIS)

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def epoch(self) -> int:
        """A block time well past every publish time so far (Pyth's must increase)."""
        return self.now() + 10_000

    def mine_at(self, t: int) -> None:
        rpc(self.url, "evm_setNextBlockTimestamp", hex(t))
        rpc(self.url, "evm_mine")
        assert self.now() == t

    def chainlink(self, agg: Contract, price_e8: int, t: int) -> None:
        decimals = int(agg.functions.decimals().call())
        answer = price_e8 * 10 ** (decimals - 8)
        self.send(agg.functions.updateRoundData(next(self.rounds), answer, t, t))

    def pyth_price(self, pid: bytes, price: int, conf: int, t: int, expo: int = -8) -> None:
        data = self.pyth.functions.createPriceFeedUpdateData(
            pid, price, conf, expo, price, conf, t, t - 1
        ).call()
        self.send(self.pyth.functions.updatePriceFeeds([data]))

    def publish(
        self, n: int, cl8: tuple[int, int], cl18: tuple[int, int], pyth: tuple[int, int, int]
    ) -> None:
        """(price_e8, age) for each Chainlink, (price_e8, conf_e8, age) for Pyth; then mine
        one block at ``n``."""
        self.chainlink(self.cl8, cl8[0], n - cl8[1])
        self.chainlink(self.cl18, cl18[0], n - cl18[1])
        self.pyth_price(PYTH_ETH, pyth[0], pyth[1], n - pyth[2])
        self.mine_at(n)

    def sources(self) -> list[tuple[int, str, bytes]]:
        return [
            (CHAINLINK, self.cl8.address, b"\0" * 32),
            (CHAINLINK, self.cl18.address, b"\0" * 32),
            (PYTH, self.pyth.address, PYTH_ETH),
        ]

    def configure(
        self, oid: bytes, sources: list[tuple[int, str, bytes]], p: MarkParams = P
    ) -> Any:
        return self.send(self.oracle.functions.configure(oid, sources, p.as_tuple()))

    def mark(self, max_age: int, oid: bytes = ETH) -> tuple[int, int, int]:
        mark_e8, publish_time, valid = self.oracle.functions.getMark(oid, max_age).call()
        return int(mark_e8), int(publish_time), int(valid)

    def states(self, max_age: int, oid: bytes = ETH) -> list[SourceReason]:
        return [R(s[2]) for s in self.oracle.functions.sourceStates(oid, max_age).call()]


@pytest.fixture(scope="module")
def env(anvil_a: ManagedProcess) -> Env:
    w3 = Web3(Web3.HTTPProvider(anvil_a.url, request_kwargs={"timeout": 10}))
    e = Env(
        w3,
        anvil_a.url,
        oracle=deploy(w3, "MarkOracle", DEPLOYER),
        cl8=deploy(w3, "MockV3Aggregator", 8, 2_000 * E8),
        cl18=deploy(w3, "MockV3Aggregator", 18, 2_000 * 10**18),
        pyth=deploy(w3, "MockPyth", 60, 0),
    )
    e.configure(ETH, e.sources())
    return e


# ------------------------------------------------------------------ configuration


def test_configure_is_admin_only(env: Env) -> None:
    fn = env.oracle.functions.configure(keccak(text="x"), env.sources(), P.as_tuple())
    refused = env.refused(fn, sender=OTHER)
    assert refused.startswith(f"AccessControlUnauthorizedAccount({OTHER}, 0x{'00' * 32})")


def test_configuration_is_validated_with_typed_errors(env: Env) -> None:
    good, src = P.as_tuple(), env.sources()
    oid = keccak(text="validation")

    def refused(sources: Any, p: tuple[int, ...] = good) -> str:
        return env.refused(env.oracle.functions.configure(oid, sources, p))

    zero = "0x" + "00" * 20
    assert refused(src, (1, *good[1:])) == "MinSourcesBelowTwo(1)"
    assert refused(src[:1]) == "FewerSourcesThanMin(1, 2)"
    assert refused([*src[:2], (CHAINLINK, zero, b"\0" * 32)]) == "ZeroFeedAddress(2)"
    assert refused([*src[:2], (PYTH, env.pyth.address, b"\0" * 32)]) == "ZeroPythId(2)"
    assert refused([*src, src[1]]) == "DuplicateSource(3)"
    many = [(PYTH, env.pyth.address, keccak(text=f"id{i}")) for i in range(9)]
    assert refused(many) == "TooManySources(9, 8)"
    bounds = (*good[:6], 100 * E8, 100 * E8)
    assert refused(src, bounds) == f"InvalidBounds({100 * E8}, {100 * E8})"
    assert refused(src, (2, 0, *good[2:])) == "ParamOutOfRange('maxDeviationPpm', 0)"
    assert refused(src, (*good[:3], 1_000_000, *good[4:])) == (
        "ParamOutOfRange('emaCapPpm', 1000000)"
    )
    assert refused(src, (*good[:5], 0, *good[6:])) == "ParamOutOfRange('pokeMaxAge', 0)"


def test_configuration_is_stored_and_announced(env: Env) -> None:
    oid = keccak(text="announced")
    receipt = env.configure(oid, env.sources())
    (event,) = env.oracle.events.MarkConfigured().process_receipt(receipt)
    assert event["args"]["id"] == oid and tuple(event["args"]["params"].values()) == P.as_tuple()
    assert tuple(env.oracle.functions.params(oid).call()) == P.as_tuple()
    assert len(env.oracle.functions.sources(oid).call()) == 3
    assert env.refused(env.oracle.functions.getMark(keccak(text="nope"), 60)).startswith(
        "UnknownOracle("
    )


# ------------------------------------------------------------------ the gates on chain


def test_three_fresh_sources_give_their_median(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    n = env.epoch()
    env.publish(n, (2_000 * E8, 5), (2_010 * E8, 0), (2_005 * E8, 2 * E8, 3))
    assert env.mark(60) == (2_005 * E8, n - 5, 3)
    # the Python rule over the same on-chain readings gives the same mark
    readings = [SourceReading.from_tuple(t) for t in env.oracle.functions.readSources(ETH).call()]
    assert [r.expo for r in readings] == [-8, -18, -8]
    py = compute_mark(readings, P, n, 60)
    assert (py.mark_e8, py.publish_time_s, py.valid_sources) == env.mark(60)
    # the gas a 3-source read costs (as a transaction: 21000 intrinsic + calldata included)
    # and the limit it must be offered (each feed read needs its full READ_GAS available)
    used = env.send(env.oracle.functions.getMark(ETH, 3600))["gasUsed"]
    data = env.oracle.encode_abi("getMark", args=[ETH, 3600])
    limit = env.w3.eth.estimate_gas({"to": env.oracle.address, "data": data})
    with capsys.disabled():
        print(
            f"\ngetMark over 3 sources (2 Chainlink + 1 Pyth): gasUsed {used} "
            f"({used - 21_000} beyond the intrinsic), eth_estimateGas {limit}"
        )
    assert used < 110_000 and limit < 200_000


def test_a_starved_read_reverts_instead_of_dropping_a_source(env: Env) -> None:
    n = env.epoch()
    env.publish(n, (2_000 * E8, 0), (2_002 * E8, 0), (2_004 * E8, 0, 0))
    refused = env.refused_with(env.oracle.functions.getMark(ETH, 60), gas=80_000)
    assert refused.startswith("ReadGasTooLow(")


def test_a_source_is_fresh_up_to_the_max_age_inclusive(env: Env) -> None:
    n = env.epoch()
    env.publish(n, (2_000 * E8, 0), (2_004 * E8, 60), (2_002 * E8, 0, 61))
    assert env.states(60) == [R.OK, R.OK, R.STALE]
    assert env.mark(60) == (2_002 * E8, n - 60, 2)  # (2000 + 2004) / 2
    # the liquidation class reads with a longer max age: all three count
    assert env.mark(120) == (2_002 * E8, n - 61, 3)


def test_too_few_fresh_sources_refuse_the_mark(env: Env) -> None:
    n = env.epoch()
    env.publish(n, (2_000 * E8, 0), (2_000 * E8, 61), (2_000 * E8, 0, 90))
    assert env.refused(env.oracle.functions.getMark(ETH, 60)) == (
        f"TooFewSources(0x{ETH.hex()}, 1, 2)"
    )
    assert env.mark(120) == (2_000 * E8, n - 90, 3)


def test_future_bound_confidence_and_deviation(env: Env) -> None:
    n = env.epoch()
    env.publish(n, (2_000 * E8, -1), (2_000 * E8, 0), (2_001 * E8, 0, 0))
    assert env.states(60) == [R.FUTURE, R.OK, R.OK]
    assert env.mark(60) == (2_000 * E8 + E8 // 2, n, 2)

    n = env.epoch()
    env.publish(n, (100_000 * E8, 0), (2_000 * E8, 0), (2_001 * E8, 0, 0))
    assert env.states(60) == [R.BOUND, R.OK, R.OK]

    n = env.epoch()  # 1% of 2002 is 20.02: 20.02000001 is too wide
    env.publish(n, (2_000 * E8, 0), (2_001 * E8, 0), (2_002 * E8, 2_002_000_001, 0))
    assert env.states(60) == [R.OK, R.OK, R.CONFIDENCE]
    assert env.mark(60) == (2_000 * E8 + E8 // 2, n, 2)

    n = env.epoch()
    env.publish(n, (2_000 * E8, 0), (2_500 * E8, 0), (2_010 * E8, 0, 0))
    assert env.states(60) == [R.OK, R.DEVIATION, R.OK]
    assert env.mark(60) == (2_005 * E8, n, 2)


def test_non_positive_and_unreadable_sources_never_brick_the_mark(env: Env) -> None:
    n = env.epoch()
    env.publish(n, (2_000 * E8, 0), (2_002 * E8, 0), (2_004 * E8, 0, 0))
    eoa = Account.from_key(keccak(text="no-code-here")).address
    oid = keccak(text="with-broken-sources")
    env.configure(
        oid,
        [
            (CHAINLINK, env.cl8.address, b"\0" * 32),
            (PYTH, env.pyth.address, PYTH_MISSING),  # reverts PriceFeedNotFound
            (CHAINLINK, eoa, b"\0" * 32),  # no code: the call "succeeds" with no data
            (CHAINLINK, env.pyth.address, b"\0" * 32),  # not an aggregator: reverts
            (PYTH, env.cl18.address, PYTH_ETH),  # not a Pyth contract: reverts
            (PYTH, env.pyth.address, PYTH_ETH),
        ],
    )
    assert env.states(60, oid) == [
        R.OK,
        R.UNREADABLE,
        R.UNREADABLE,
        R.UNREADABLE,
        R.UNREADABLE,
        R.OK,
    ]
    assert env.mark(60, oid) == (2_002 * E8, n, 2)

    n = env.epoch()
    env.publish(n, (0, 0), (2_002 * E8, 0), (2_004 * E8, 0, 0))
    assert env.states(60, oid)[0] is R.NONPOSITIVE
    assert env.refused(env.oracle.functions.getMark(oid, 60)) == (
        f"TooFewSources(0x{oid.hex()}, 1, 2)"
    )


# ------------------------------------------------------------------ EMA: poke and cap


def test_poke_seeds_and_steps_the_ema_and_the_cap_clamps_the_mark(env: Env) -> None:
    oid = keccak(text=f"capped-{next(_ids)}")
    capped = P.model_copy(update={"ema_cap_ppm": 10_000, "ema_alpha_ppm": 500_000})
    env.configure(oid, env.sources(), capped)
    n = env.epoch()
    env.publish(n, (2_000 * E8, 0), (2_010 * E8, 0), (2_005 * E8, 0, 0))
    assert env.mark(60, oid) == (2_005 * E8, n, 3)  # unseeded: no cap

    rpc(env.url, "evm_setNextBlockTimestamp", hex(n + 1))
    receipt = env.send(env.oracle.functions.poke(oid), sender=OTHER)  # permissionless
    (event,) = env.oracle.events.EmaUpdated().process_receipt(receipt)
    assert (event["args"]["markE8"], event["args"]["emaE8"]) == (2_005 * E8, 2_005 * E8)
    assert tuple(env.oracle.functions.ema(oid).call()) == (2_005 * E8, receipt["blockNumber"])
    assert env.refused(env.oracle.functions.poke(oid)).startswith("PokeTooSoon(")
    print(f"poke gas used: {receipt['gasUsed']}")

    n = env.epoch()  # the market jumps 10%: the mark moves 1% per EMA step
    env.publish(n, (2_200 * E8, 0), (2_210 * E8, 0), (2_205 * E8, 0, 0))
    assert env.mark(60, oid) == (2_025_05 * E8 // 100, n, 3)  # 2005 * 1.01
    assert env.mark(60) == (2_205 * E8, n, 3)  # the uncapped id follows at once

    rpc(env.url, "evm_setNextBlockTimestamp", hex(n + 1))
    env.send(env.oracle.functions.poke(oid))
    ema = 2_005 * E8 + (2_025_05 * E8 // 100 - 2_005 * E8) // 2  # alpha 50%
    assert ema == 2_015_025 * E8 // 1_000
    assert env.oracle.functions.ema(oid).call()[0] == ema
    assert env.mark(60, oid)[0] == ema * 1_010_000 // 1_000_000

    env.configure(oid, env.sources(), capped)  # a new configuration resets the EMA
    assert tuple(env.oracle.functions.ema(oid).call()) == (0, 0)


# ------------------------------------------------------------------ the pure rule, both sides


def mostly(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> Any:
    """``usual`` about four draws in five, else ``rare`` (edge values)."""
    return st.integers(0, 4).flatmap(lambda i: usual if i else rare)


@st.composite
def mark_params(draw: st.DrawFn) -> MarkParams:
    low = draw(mostly(st.integers(1, 10**9), st.integers(1, 2**127)))
    high = draw(mostly(st.integers(low + 10**12, low + 10**14), st.just(2**128 - 1)))
    ppm = st.integers(1, 1_000_000)
    return MarkParams(
        min_sources=draw(mostly(st.integers(2, 3), st.integers(2, 8))),
        max_deviation_ppm=draw(mostly(st.integers(5_000, 100_000), ppm)),
        max_conf_ppm=draw(mostly(st.integers(5_000, 50_000), ppm)),
        ema_cap_ppm=draw(st.one_of(st.just(0), st.integers(1, 999_999))),
        ema_alpha_ppm=draw(ppm),
        poke_max_age_s=draw(st.integers(1, 2**32 - 1)),
        min_price_e8=low,
        max_price_e8=high,
    )


@st.composite
def reading(draw: st.DrawFn, center: int, now: int, max_age: int) -> SourceReading:
    kind = draw(st.sampled_from(SourceKind))
    if not draw(st.integers(0, 19)):
        return SourceReading.unreadable(kind)
    if kind is SourceKind.CHAINLINK:
        expo = -draw(mostly(st.sampled_from([6, 8, 18]), st.integers(0, 255)))
    else:
        rare = st.one_of(st.sampled_from([-20, -1, 0, 2]), st.integers(-(2**31), 2**31 - 1))
        expo = draw(mostly(st.sampled_from([-10, -8, -5]), rare))
    k = 8 + expo
    if draw(st.integers(0, 9)) and -40 <= k <= 40:  # near the center, in this exponent
        offset = draw(mostly(st.integers(-15_000, 15_000), st.integers(-200_000, 200_000)))
        price_e8 = center + center * offset // 1_000_000 + draw(st.integers(0, 99))
        answer = min(price_e8 // 10**k if k >= 0 else price_e8 * 10 ** (-k), 2**255 - 1)
    else:
        answer = draw(st.integers(-(2**255), 2**255 - 1))
    wide = st.integers(0, 2**64 - 1)
    conf = min(draw(mostly(st.integers(0, abs(answer) // 100), wide)), 2**64 - 1)
    oldest = max(now - min(max_age, 600), 0)
    edges = [now + 1, max(now - max_age - 1, 0), 0]
    edge = st.one_of(st.sampled_from(edges), st.integers(0, 2**256 - 1))
    time_s = draw(mostly(st.integers(oldest, now), edge))
    return SourceReading(kind, answer, time_s, expo=expo, conf=conf)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[SourceReading], MarkParams, int, int, int]:
    p = draw(mark_params())
    now = draw(mostly(st.integers(10**9, 2 * 10**9), st.integers(0, 2**64 - 1)))
    max_age = draw(mostly(st.integers(30, 300), st.integers(0, 2**256 - 1)))
    low, high = p.min_price_e8 + 1, p.max_price_e8 - 1
    usual = st.integers(max(low, 10**9), max(min(high, 10**13), low))  # 10 to 100k USD
    center = draw(mostly(usual, st.integers(low, high)))
    size = draw(mostly(st.integers(2, 6), st.integers(0, 8)))
    rs = draw(st.lists(reading(center, now, max_age), min_size=size, max_size=size))
    band = st.integers(center - center // 20, min(center + center // 20, 2**128 - 1))
    ema = draw(st.one_of(st.just(0), band, st.integers(0, 2**128 - 1)))
    return rs, p, now, max_age, ema


def same_on_both_sides(
    env: Env, rs: list[SourceReading], p: MarkParams, now: int, max_age: int, ema: int
) -> MarkResult | TooFewSources:
    """``computeMark`` by eth_call and ``compute_mark`` agree (result or refusal)."""
    fn = env.oracle.functions.computeMark(
        ETH, [r.as_tuple() for r in rs], p.as_tuple(), now, max_age, ema
    )
    try:
        expected = compute_mark(rs, p, now, max_age, ema)
    except TooFewSources as err:
        assert env.refused(fn) == f"TooFewSources(0x{ETH.hex()}, {err.valid}, {err.minimum})"
        return err
    mark_e8, median_e8, publish_time, valid, prices, reasons = fn.call()
    assert (mark_e8, median_e8, publish_time, valid) == (
        expected.mark_e8,
        expected.median_e8,
        expected.publish_time_s,
        expected.valid_sources,
    )
    assert tuple(prices) == expected.prices_e8
    assert tuple(R(r) for r in reasons) == expected.reasons
    return expected


T0 = 1_700_000_000


def cl(price_e8: int, age: int = 0, decimals: int = 8) -> SourceReading:
    return SourceReading.chainlink(price_e8 * 10 ** (decimals - 8), decimals, T0 - age)


def py(price_e8: int, conf_e8: int = 0, age: int = 0) -> SourceReading:
    return SourceReading.pyth(price_e8, conf_e8, -8, T0 - age)


CAPPED = P.model_copy(update={"ema_cap_ppm": 1})
EDGES: list[tuple[str, list[SourceReading], MarkParams, int, tuple[R, ...] | None]] = [
    (
        "deviation at the limit",
        [cl(1_000 * E8), py(1_000 * E8), cl(1_020 * E8)],
        P,
        0,
        (R.OK, R.OK, R.OK),
    ),
    (
        "deviation past it",
        [cl(1_000 * E8), py(1_000 * E8), cl(1_020 * E8 + 1)],
        P,
        0,
        (R.OK, R.OK, R.DEVIATION),
    ),
    (
        "confidence at and past the limit",
        [py(2_000 * E8, 20 * E8), py(2_000 * E8, 20 * E8 + 1), cl(2_000 * E8)],
        P,
        0,
        (R.OK, R.CONFIDENCE, R.OK),
    ),
    (
        "age at and past the max age, future",
        [cl(2_000 * E8, 60), py(2_000 * E8, age=61), cl(2_000 * E8, -1), py(2_000 * E8)],
        P,
        0,
        (R.OK, R.STALE, R.FUTURE, R.OK),
    ),
    (
        "bounds",
        [cl(100 * E8), py(100_000 * E8), cl(100 * E8 + 1), py(100 * E8 + 2)],
        P,
        0,
        (R.BOUND, R.BOUND, R.OK, R.OK),
    ),
    (
        "even median of an odd sum",
        [cl(2_000 * E8), cl(2_001 * E8), py(2_003 * E8 + 1), py(2_004 * E8)],
        P,
        0,
        None,
    ),
    ("cap band rounds inward, up", [cl(3_000 * E8), py(3_000 * E8)], CAPPED, 2_000 * E8 + 1, None),
    (
        "cap band rounds inward, down",
        [cl(1_000 * E8), py(1_000 * E8)],
        CAPPED,
        2_000 * E8 + 1,
        None,
    ),
    (
        "extreme exponents",
        [
            SourceReading.chainlink(2**255 - 1, 255, T0),
            SourceReading.pyth(1, 0, 2**31 - 1, T0),
            SourceReading.pyth(2**63 - 1, 2**64 - 1, -(2**31), T0),
            SourceReading(SourceKind.PYTH, 2**255 - 1, T0, expo=0),
            cl(500 * E8),
            py(500 * E8),
        ],
        P,
        0,
        (R.BOUND, R.BOUND, R.BOUND, R.BOUND, R.OK, R.OK),
    ),
    ("no sources", [], P, 0, None),
    ("two disagreeing", [cl(2_000 * E8), py(2_500 * E8)], P, 0, None),
]


@pytest.mark.parametrize(("name", "rs", "p", "ema", "reasons"), EDGES, ids=[e[0] for e in EDGES])
def test_edge_cases_match_the_python_rule(
    env: Env,
    name: str,
    rs: list[SourceReading],
    p: MarkParams,
    ema: int,
    reasons: tuple[R, ...] | None,
) -> None:
    got = same_on_both_sides(env, rs, p, T0, 60, ema)
    if reasons is not None:
        assert isinstance(got, MarkResult) and got.reasons == reasons
    if name == "even median of an odd sum":
        assert isinstance(got, MarkResult) and got.mark_e8 == 2_002 * E8
    if name.startswith("cap band"):
        assert isinstance(got, MarkResult)
        # ema 200_000_000_001 +- 1 ppm = +- 200_000.000001: the band rounds inward
        assert got.mark_e8 in (200_000_200_001, 199_999_800_001)
    if name in ("no sources", "two disagreeing"):
        assert isinstance(got, TooFewSources) and got.valid == 0


@pytest.mark.parametrize(
    ("ema", "mark", "alpha"),
    [(0, 7, 1), (100, 103, 500_000), (100, 97, 500_000), (100, 97, 1_000_000), (1, 2**127, 1)],
)
def test_ema_step_matches(env: Env, ema: int, mark: int, alpha: int) -> None:
    assert env.oracle.functions.emaStep(ema, mark, alpha).call() == ema_step(ema, mark, alpha)


@pytest.mark.parametrize(
    ("value", "expo"),
    [
        (0, 2**31 - 1),
        (1, 69),
        (1, 70),
        (2**255, -(2**31)),
        (10**76, -68),
        (123_456_789, -9),
        (2**200, 10),
        (2**230, 10),
    ],
)
def test_normalisation_matches(env: Env, value: int, expo: int) -> None:
    assert env.oracle.functions.normalizeE8(value, expo).call() == normalize_e8(value, expo)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=scenarios())
def test_compute_mark_matches_the_python_rule(
    env: Env, case: tuple[list[SourceReading], MarkParams, int, int, int]
) -> None:
    same_on_both_sides(env, *case)
