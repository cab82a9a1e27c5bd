"""ORA-01 and LIQ-03 end to end, with the real worker fleet and the venue's own clock.

ORA-01: a price older than the user max age (chain time moved with ``evm_increaseTime``, no new
publish) refuses opening a trade and removing margin, naming the staleness, while the risk
worker still liquidates on it within the liquidation max age and cannot beyond it; a price
stuck on the market's bound refuses user actions and no liquidation is valued on it.
LIQ-03: a withdrawal that passed against the old price is re-checked at execution against a
price published earlier in the same block and refused; while a partial liquidation's cooldown
is pending, a withdrawal is refused. The module ends with a clean ``bulkhead audit``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3

from bulkhead.local.fleet import WorkerFleet
from chains.evm.artifacts import load_artifact
from chains.evm.venue import VenueClient
from shared.chain import ChainKind, ChainRef
from shared.errors import TxRejected
from shared.positions import market_id
from shared.settings import RetrySettings
from tests.support.chain import key_for, rpc
from tests.support.fleet import credited, fleet  # noqa: F401 - the module's worker fleet
from tests.support.stack import Cli, risk_ticks, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

E18 = 10**18
ETH = market_id("ETH-USD")


def w3b(devnet: dict[str, Any]) -> Web3:
    return Web3(Web3.HTTPProvider(devnet["chains"]["evm-b"]["rpc_urls"][0]))


def venue(devnet: dict[str, Any]) -> Any:
    return w3b(devnet).eth.contract(address=devnet["chains"]["evm-b"]["contracts"]["venue"],
                                    abi=load_artifact("IsolatedMarginVenue").abi)


def oracle(devnet: dict[str, Any]) -> Any:
    return w3b(devnet).eth.contract(address=devnet["chains"]["evm-b"]["contracts"]["oracle"],
                                    abi=load_artifact("MarkOracle").abi)


def feeds(devnet: dict[str, Any]) -> Any:
    return w3b(devnet).eth.contract(address=devnet["chains"]["evm-b"]["contracts"]["feeds"],
                                    abi=load_artifact("FeedPublisher").abi)


def publish_call(devnet: dict[str, Any], feed: bytes, price_e8: int, stamp: int) -> Any:
    """The publisher's call writing ``price_e8`` to every source of ``feed``."""
    n = len(oracle(devnet).functions.sources(feed).call())
    return feeds(devnet).functions.publish(feed, [price_e8] * n, [0] * n, stamp)


def raw(key: str) -> bytes:
    return bytes.fromhex(key[2:])


def fund(cli: Cli, fleet: WorkerFleet, devnet: dict[str, Any],  # noqa: F811
         amounts: dict[bytes, str]) -> dict[bytes, dict[str, Any]]:
    """Lock USDC on evm-a for alice's position of each salt; wait until all are credited."""
    keys = {salt: key_for(devnet, "alice", salt) for salt in amounts}
    locks = {salt: cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", amount,
                            "--position", keys[salt]) for salt, amount in amounts.items()}
    rows = {r["tx_id"]: r for r in credited(cli, {v["tx_id"] for v in locks.values()}, fleet)}
    return {salt: {**rows[lock["tx_id"]], "position": keys[salt]} for salt, lock in locks.items()}


def publish(devnet: dict[str, Any], market: str, price_e8: int) -> int:
    """The devnet feeder publishes ``price_e8`` stamped with the venue chain's newest block
    time (as ``bulkhead price`` does); returns the publish time."""
    feed = market_id(market)
    stamp = next_stamp(devnet, feed)
    tx = _send(devnet, devnet["devnet"]["feeder_key"],
               publish_call(devnet, feed, price_e8, stamp), 2)
    assert w3b(devnet).eth.wait_for_transaction_receipt(tx, timeout=30).status == 1
    return stamp


def next_stamp(devnet: dict[str, Any], feed: bytes) -> int:
    """The venue chain's newest block time, once it is later than ``feed``'s publish time."""
    last = int(feeds(devnet).functions.lastPublish(feed).call())
    return int(wait_for(lambda: (t := chain_now(devnet)) > last and t, 10, "a newer block time"))


def prices(devnet: dict[str, Any], eth_e8: int = 3000 * 10**8) -> int:
    """ETH-USD at ``eth_e8`` and USDC at 1, both fresh; returns ETH's publish time."""
    publish(devnet, "USDC", 10**8)
    return publish(devnet, "ETH-USD", eth_e8)


def advance(devnet: dict[str, Any], seconds: int) -> None:
    """Move the venue chain's clock (the judged clock, I14) forward without a new publish."""
    url = devnet["chains"]["evm-b"]["rpc_urls"][0]
    rpc(url, "evm_increaseTime", seconds)
    rpc(url, "evm_mine")


def chain_now(devnet: dict[str, Any]) -> int:
    return int(w3b(devnet).eth.get_block("latest")["timestamp"])


def liquidations(devnet: dict[str, Any], key: str) -> list[Any]:
    return [e for e in venue(devnet).events.Liquidated().get_logs(from_block=0)
            if e.args.positionKey == raw(key)]


def refused(proc: Any, *needles: str) -> str:
    """A refused CLI call: exit 1 (an operation the venue refused), the reason named, and
    nothing on stderr but the error itself (no library warnings)."""
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert any(n in text for n in needles), text
    assert "warn" not in proc.stderr.lower() and proc.stderr.startswith("error:"), proc.stderr
    return text


def liquidate_directly(devnet: dict[str, Any], key: str) -> str:
    """Anyone may call liquidate: the venue's own refusal, as a keeper would get it."""
    b = devnet["chains"]["evm-b"]

    async def go() -> str:
        client = await VenueClient.connect(b["rpc_urls"], b["contracts"]["venue"],
                                           chain=ChainRef("evm-b", ChainKind.EVM, b["chain_id"]),
                                           sender_key=devnet["devnet"]["traders"]["bob"]["evm_key"],
                                           retry=RetrySettings())
        try:
            with pytest.raises(TxRejected) as info:
                await client.liquidate(raw(key), 1_000_000)
            return info.value.reason
        finally:
            await client.aclose()

    return asyncio.run(go())


def audit_clean(cli: Cli) -> None:
    result = cli.run("audit", "--json", ok=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ora_01_stale_price_user_refused_liquidation_has_its_own_max_age(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:  # noqa: F811
    rows = fund(cli, fleet, devnet, {b"ora-liq": "320", b"ora-wd": "1000", b"ora-new": "500"})
    liq, wd, new = (rows[s]["position"] for s in (b"ora-liq", b"ora-wd", b"ora-new"))
    params, _ = venue(devnet).functions.marketOf(ETH).call()
    max_user, max_liq = params[6], params[7]
    prices(devnet)
    cli.json("trade", "open", "--position", liq, "--size", "1")
    cli.json("trade", "open", "--position", wd, "--size", "0.5")
    fleet.kill("risk")  # the crash is set up before anyone may liquidate
    prices(devnet, 2730 * 10**8)  # liq: E < MM / 2: a full step, equity left (no shortfall)
    m = venue(devnet).functions.marginOf(raw(liq)).call()
    assert 0 < m[1] < m[3], m

    # Beyond the liquidation max age: nothing may be valued on it, not even a liquidation.
    advance(devnet, max_liq + 30)
    fleet.start("risk", "risk", "--pool", "solo")
    assert "TooFewSources" in liquidate_directly(devnet, liq)  # every source stale
    risk_ticks(devnet, 3)  # the restarted worker screened the stale price several times
    assert liquidations(devnet, liq) == []

    # Re-published, then older than the user max age but within the liquidation max age.
    fleet.kill("risk")
    published = prices(devnet, 2730 * 10**8)
    advance(devnet, max_user + 20)
    assert max_user < chain_now(devnet) - published < max_liq
    refused(cli.run("trade", "open", "--position", new, "--size", "0.01", ok=False), "TooFewSources")
    refused(cli.run("withdraw", "--position", wd, "--lock", rows[b"ora-wd"]["key"],
                    "--amount", "1", ok=False), "TooFewSources")
    fleet.start("risk", "risk", "--pool", "solo")
    wait_for(lambda: liquidations(devnet, liq), 60, "liquidation on a user-stale price")
    (event,) = liquidations(devnet, liq)
    assert event.args.full and event.args.planTick == published
    age = w3b(devnet).eth.get_block(event.blockNumber)["timestamp"] - published
    assert max_user < age <= max_liq  # valued on a price users may no longer use
    assert venue(devnet).functions.positionOf(raw(wd)).call()[1] == E18 // 2  # untouched


def test_ora_01_price_stuck_on_a_bound_values_nothing(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:  # noqa: F811
    rows = fund(cli, fleet, devnet, {b"bound-pos": "400", b"bound-new": "400"})
    pos, new = rows[b"bound-pos"]["position"], rows[b"bound-new"]["position"]
    params, _ = venue(devnet).functions.marketOf(ETH).call()
    prices(devnet)
    cli.json("trade", "open", "--position", pos, "--size", "1")
    before = venue(devnet).functions.positionOf(raw(pos)).call()

    prices(devnet, params[8])  # exactly the market's lower bound
    refused(cli.run("trade", "open", "--position", new, "--size", "0.01", ok=False),
            "TooFewSources")
    refused(cli.run("withdraw", "--position", pos, "--lock", rows[b"bound-pos"]["key"],
                    "--amount", "1", ok=False), "TooFewSources")
    assert "TooFewSources" in liquidate_directly(devnet, pos)  # every source on the bound
    risk_ticks(devnet, 3)  # the risk worker runs: a long at ~0 looks bankrupt, on a bound price
    assert liquidations(devnet, pos) == []
    assert venue(devnet).functions.positionOf(raw(pos)).call() == before
    prices(devnet)  # back inside the bounds: the position is healthy, nothing happens
    risk_ticks(devnet, 2)
    assert liquidations(devnet, pos) == []


def _send(devnet: dict[str, Any], key: str, call: Any, tip_gwei: int) -> bytes:
    w3 = w3b(devnet)
    account = Account.from_key(key)
    tx = call.build_transaction({
        "from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
        "gas": 900_000, "maxFeePerGas": Web3.to_wei(200, "gwei"),
        "maxPriorityFeePerGas": Web3.to_wei(tip_gwei, "gwei"), "chainId": w3.eth.chain_id})
    return bytes(w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))


def _haircut_value(units: int, haircut_ppm: int) -> int:
    """USDC (6 decimals, priced 1.00000000) as the venue values collateral, usdE18."""
    return units * 10**12 * (10**6 - haircut_ppm) // 10**6


def test_liq_03_withdrawal_rechecked_on_the_newest_price_in_the_same_block(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:  # noqa: F811
    rows = fund(cli, fleet, devnet, {b"race": "320"})
    row, pos = rows[b"race"], rows[b"race"]["position"]
    v = venue(devnet).functions
    prices(devnet)
    cli.json("trade", "open", "--position", pos, "--size", "1")
    params, _ = v.marketOf(ETH).call()
    usdc = bytes.fromhex(row["asset"][2:])
    haircut = v.collateralConfigOf(31337, usdc).call()[1]
    _, equity, initial, _, _ = v.marginOf(raw(pos)).call()
    drop = 10  # USD: the new price is 2990
    equity2 = equity - drop * E18
    initial2 = -(-(2990 * E18) * params[1] // 10**6)
    # The most that may be withdrawn at 3000; at 2990 it would leave E < IM.
    units = max(u for u in range(1, 321) if equity - _haircut_value(u * 10**6, haircut) >= initial)
    amount = units * 10**6
    assert equity2 - _haircut_value(amount, haircut) < initial2 <= equity2  # not liquidatable

    url = devnet["chains"]["evm-b"]["rpc_urls"][0]
    published = next_stamp(devnet, ETH)
    vault, lock_id = row["key"].split(":")[1:]
    rpc(url, "evm_setIntervalMining", 0)
    try:
        price_tx = _send(devnet, devnet["devnet"]["feeder_key"],
                         publish_call(devnet, ETH, 2990 * 10**8, published), 50)
        release_tx = _send(devnet, devnet["devnet"]["traders"]["alice"]["evm_key"],
                           v.requestRelease(raw(pos), 31337, raw(vault), raw(lock_id), amount), 1)
        rpc(url, "evm_mine")
    finally:
        rpc(url, "evm_setIntervalMining", 1)
    w3 = w3b(devnet)
    first, second = (w3.eth.wait_for_transaction_receipt(t, timeout=30)
                     for t in (price_tx, release_tx))
    assert first.status == 1 and second.status == 0  # refused at execution, on the new price
    assert (first.blockNumber, first.transactionIndex) < (second.blockNumber,
                                                          second.transactionIndex)
    assert not venue(devnet).events.SettlementRequested().process_receipt(second)
    refused(cli.run("withdraw", "--position", pos, "--lock", row["key"], "--amount",
                    str(units), ok=False), "InsufficientMargin")


def test_liq_03_withdrawal_refused_while_a_liquidation_is_pending(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:  # noqa: F811
    rows = fund(cli, fleet, devnet, {b"pending": "320"})
    row, pos = rows[b"pending"], rows[b"pending"]["position"]
    v = venue(devnet).functions
    prices(devnet)
    cli.json("trade", "open", "--position", pos, "--size", "1")
    fleet.kill("risk")
    params, buffer = v.marketOf(ETH).call()
    rate = params[2] + buffer  # MM rate, ppm
    _, equity, _, _, _ = v.marginOf(raw(pos)).call()
    # E(p) = equity + (p - 3000) per ETH; aim at E = 0.8 * MM: a partial step, not a forced full.
    target = (3000 * E18 - equity) * 10**6 // (10**6 - rate * 8 // 10) // 10**10  # priceE8
    prices(devnet, target)
    _, e, _, mm, _ = v.marginOf(raw(pos)).call()
    assert mm * params[11] // 10**6 <= e < mm, (e, mm)
    fleet.start("risk", "risk", "--pool", "solo")
    wait_for(lambda: liquidations(devnet, pos), 60, "a partial liquidation")
    (event,) = liquidations(devnet, pos)
    assert not event.args.full
    size = v.positionOf(raw(pos)).call()[1]
    assert 0 < size < E18
    last = v.positionOf(raw(pos)).call()[4]
    assert chain_now(devnet) < last + params[13]  # still within the cooldown
    refused(cli.run("withdraw", "--position", pos, "--lock", row["key"], "--amount", "1",
                    ok=False), "LiquidationPending")
    prices(devnet)  # recovered: no further step
    audit_clean(cli)


def test_ora_02_one_bad_source_in_a_crash_never_sets_the_mark(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet,  # noqa: F811
        tmp_path: Path) -> None:
    """A crash of 9 % on the honest sources while the Pyth source alone reports 45 % lower
    (``bulkhead feed --scenario`` with a source fault): the mark follows the honest median,
    the position truly underwater at 2,730 is liquidated, the one that would only be
    underwater on the bad source's price is untouched, and the source is shown as deviating."""
    rows = fund(cli, fleet, devnet, {b"src-under": "320", b"src-safe": "1000"})
    under, safe = rows[b"src-under"]["position"], rows[b"src-safe"]["position"]
    prices(devnet)
    cli.json("trade", "open", "--position", under, "--size", "1")
    cli.json("trade", "open", "--position", safe, "--size", "1")
    scenario = tmp_path / "bad-source.toml"
    scenario.write_text('interval_s = 0\n[[feeds]]\nmarket = "ETH-USD"\n'
                        '[[feeds.segments]]\npath = "crash"\nsteps = 1\npct_ppm = 90000\n'
                        '[[feeds.faults]]\nsource = 2\nkind = "jump"\nppm = -450000\n')
    (tick,) = [json.loads(line) for line in cli.run(
        "feed", "--scenario", str(scenario), "--json").stdout.splitlines() if line.strip()]
    assert tick["price_e8"] == 2730 * 10**8
    mark, published, valid = oracle(devnet).functions.getMark(ETH, 60).call()
    assert (mark, published, valid) == (2730 * 10**8, tick["publish_time_s"], 2)
    states = oracle(devnet).functions.sourceStates(ETH, 60).call()
    assert [int(s[2]) for s in states] == [0, 0, 5]  # ok, ok, deviation
    assert int(states[2][0]) == 2730 * 10**8 * 550_000 // 10**6  # what it reported

    wait_for(lambda: liquidations(devnet, under), 60, "the truly underwater position liquidated")
    (event,) = liquidations(devnet, under)
    assert event.args.markE8 == 2730 * 10**8
    risk_ticks(devnet, 3)  # the worker screened the bad source's crash several times
    assert liquidations(devnet, safe) == []
    _, equity, _, maintenance, _ = venue(devnet).functions.marginOf(raw(safe)).call()
    assert equity >= maintenance > 0
    prices(devnet)  # every source honest again


def test_audit_is_clean_after_the_oracle_and_race_cases(cli: Cli) -> None:
    audit_clean(cli)
    listed = cli.run("positions", "--json")
    assert json.loads(listed.stdout) and listed.stderr == ""  # no warnings around the JSON
    checked = cli.json("audit")["summary"]["invariants"]
    # Not vacuous: the trades, and both liquidations above
    # were valued from the chain (I7–I9), and every credit's conversion checked (I10).
    assert checked["I7"]["checked"] >= 5 and checked["I8"]["checked"] >= 2 + 2
    assert checked["I9"]["checked"] >= 7 and checked["I10"]["checked"] >= 6
    assert checked["I6"]["checked"] >= 8
