"""The risk module end to end (LIQ-01 + LIQ-02): the same owner holds A (~9.4x) and B (1.5x)
in the same asset, vault and oracle; ETH falls 45 % in one tick; the risk worker liquidates A
in full, its collateral is seized on evm-a through the bridge, the loss beyond it is recorded
as a shortfall, and B's position, margin and collateral are bit-identical before and after."""

from __future__ import annotations

from typing import Any

import pytest
from web3 import Web3

from bulkhead.local.fleet import WorkerFleet
from chains.evm.artifacts import load_artifact
from tests.support.chain import evm_balance, key_for
from tests.support.fleet import credited, fleet  # noqa: F401 - the module's worker fleet
from tests.support.stack import Cli, risk_ticks, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def venue(devnet: dict[str, Any]) -> Any:
    b = devnet["chains"]["evm-b"]
    w3 = Web3(Web3.HTTPProvider(b["rpc_urls"][0]))
    return w3.eth.contract(address=b["contracts"]["venue"],
                           abi=load_artifact("IsolatedMarginVenue").abi)


def snapshot(devnet: dict[str, Any], key: str) -> tuple[Any, ...]:
    v, raw = venue(devnet).functions, bytes.fromhex(key[2:])
    usdc = bytes(12) + bytes.fromhex(devnet["chains"]["evm-a"]["assets"]["USDC"]["address"][2:])
    return (tuple(v.positionOf(raw).call()), tuple(v.marginOf(raw).call()),
            v.collateralOf(raw, 31337, usdc).call(), tuple(v.positionLocks(raw).call()))


def test_liq_01_02_crash_liquidates_one_position_and_never_touches_the_other(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:  # noqa: F811
    a_key, b_key = key_for(devnet, "alice", b"liq-A"), key_for(devnet, "alice", b"liq-B")
    locks = [cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", amount,
                      "--position", key) for key, amount in ((a_key, "320"), (b_key, "1000"))]
    credited(cli, {lock["tx_id"] for lock in locks}, fleet)
    cli.json("price", "--market", "ETH-USD", "--set", "3000")
    cli.json("price", "--market", "USDC", "--set", "1")
    cli.json("trade", "open", "--position", a_key, "--size", "1")
    cli.json("trade", "open", "--position", b_key, "--size", "0.4")
    cli.json("trade", "increase", "--position", b_key, "--size", "0.2")
    cli.json("trade", "reduce", "--position", b_key, "--size", "0.1")
    assert venue(devnet).functions.positionOf(bytes.fromhex(b_key[2:])).call()[1] == 5 * 10**17
    rows = {r["position"]: r for r in cli.json("positions")}
    assert not rows[a_key]["liquidatable"] and not rows[b_key]["liquidatable"]
    assert rows[a_key]["liquidation_price_e8"] > rows[b_key]["liquidation_price_e8"]

    fleet.kill("risk")  # so B can be observed at the crash price before A is liquidated
    cli.json("price", "--market", "ETH-USD", "--set", "1650")
    before_b = snapshot(devnet, b_key)
    rows = {r["position"]: r for r in cli.json("positions")}
    assert rows[a_key]["liquidatable"] and not rows[b_key]["liquidatable"]
    vault = devnet["chains"]["evm-a"]["vaults"][0]
    w3a = Web3(Web3.HTTPProvider(devnet["chains"]["evm-a"]["rpc_urls"][0]))
    seize_to = w3a.eth.contract(address=vault, abi=load_artifact("CollateralVault").abi) \
        .functions.seizeRecipient().call()
    seized_before = evm_balance(devnet, seize_to)
    fleet.start("risk", "risk", "--pool", "solo")

    def a_closed() -> bool:
        return venue(devnet).functions.positionOf(bytes.fromhex(a_key[2:])).call()[1] == 0

    wait_for(a_closed, 90, "position A liquidated")
    events = venue(devnet).events.Liquidated().get_logs(from_block=0)
    mine = [e for e in events if e.args.positionKey == bytes.fromhex(a_key[2:])]
    assert len(mine) == 1 and mine[0].args.full  # one liquidation, fee charged once
    shortfalls = [e for e in venue(devnet).events.Shortfall().get_logs(from_block=0)
                  if e.args.positionKey == bytes.fromhex(a_key[2:])]
    assert len(shortfalls) == 1 and shortfalls[0].args.usdE18 > 0  # LIQ-01: recorded
    assert snapshot(devnet, b_key) == before_b  # LIQ-02: bit-identical

    def seized() -> bool:
        return evm_balance(devnet, seize_to) - seized_before == 320_000_000

    wait_for(seized, 90, "A's collateral seized on evm-a")
    rows = {r["tx_id"]: r for r in cli.json("locks", "--no-sync")}
    assert rows[locks[0]["tx_id"]]["seized"] == "320000000"
    assert rows[locks[1]["tx_id"]]["seized"] == "0" and rows[locks[1]["tx_id"]]["released"] == "0"
    audit = cli.run("audit", "--json", ok=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_topup_rule_moves_reserve_collateral_before_liquidation(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:  # noqa: F811
    """An owner's rule (threshold 1.5, reserve R): when T's E / MM falls below 1.5 the risk
    worker moves R's lock into T, and a later price that would have liquidated T does not."""
    t_key, r_key = key_for(devnet, "alice", b"topup-T"), key_for(devnet, "alice", b"topup-R")
    locks = [cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", amount,
                      "--position", key) for key, amount in ((t_key, "320"), (r_key, "500"))]
    credited(cli, {lock["tx_id"] for lock in locks}, fleet)
    cli.json("price", "--market", "USDC", "--set", "1")
    cli.json("price", "--market", "ETH-USD", "--set", "3000")
    cli.json("trade", "open", "--position", t_key, "--size", "1")
    cli.json("topup", "set", "--position", t_key, "--source", r_key, "--threshold", "1.5",
             "--max", "1000")
    v, raw_t = venue(devnet), bytes.fromhex(t_key[2:])
    reserve_locks = tuple(v.functions.positionLocks(bytes.fromhex(r_key[2:])).call())
    assert len(reserve_locks) == 1

    cli.json("price", "--market", "ETH-USD", "--set", "2880")  # T at E / MM ~ 1.38: not liquidatable
    wait_for(lambda: reserve_locks[0] in venue(devnet).functions.positionLocks(raw_t).call(),
             60, "the reserve lock moved into T")
    moved = [e for e in venue(devnet).events.ToppedUp().get_logs(from_block=0)
             if e.args.positionKey == raw_t]
    assert len(moved) == 1 and moved[0].args.lockKey == reserve_locks[0]

    cli.json("price", "--market", "ETH-USD", "--set", "2750")  # T alone would be below MM here
    risk_ticks(devnet, 3)  # screened at the new price several times
    assert venue(devnet).functions.positionOf(raw_t).call()[1] != 0  # still open
    assert not [e for e in venue(devnet).events.Liquidated().get_logs(from_block=0)
                if e.args.positionKey == raw_t]
    audit = cli.run("audit", "--json", ok=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr
