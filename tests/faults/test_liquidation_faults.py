"""RT-01 for the liquidation task: the risk worker's pool child is SIGKILLed while its
liquidation transaction is in flight (sent, not yet mined: the venue chain's interval mining is
paused until the kill), and the redelivered task runs again before that transaction lands.
Afterwards there is exactly one ``Liquidated`` event for the trigger, the insurance fund grew by
exactly that event's fee (the fee was charged once), and ``bulkhead audit`` is clean."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest
import redis
from web3 import Web3

from bulkhead.local.fleet import WorkerFleet
from chains.evm.artifacts import load_artifact
from tests.support.chain import key_for, rpc
from tests.support.fleet import credited, open_longs
from tests.support.stack import Cli, publish_while_stalled, queues_drained, risk_ticks, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

LIQUIDATE_SELECTORS = tuple("0x" + Web3.keccak(text=sig)[:4].hex() for sig in (
    "liquidate(bytes32,uint256)", "liquidateBatch(bytes32[],uint256[])"))


def venue(devnet: dict[str, Any]) -> Any:
    b = devnet["chains"]["evm-b"]
    return Web3(Web3.HTTPProvider(b["rpc_urls"][0])).eth.contract(
        address=b["contracts"]["venue"], abi=load_artifact("IsolatedMarginVenue").abi)


def pending_liquidations(devnet: dict[str, Any], position: str) -> list[dict[str, Any]]:
    """Liquidation transactions for ``position`` waiting in the venue chain's pool."""
    b = devnet["chains"]["evm-b"]
    pool = rpc(b["rpc_urls"][0], "txpool_content")["pending"]
    found = []
    for by_nonce in pool.values():
        for tx in by_nonce.values():
            data = str(tx.get("input") or tx.get("data") or "").lower()
            if (str(tx.get("to") or "").lower() == b["contracts"]["venue"].lower()
                    and data.startswith(LIQUIDATE_SELECTORS) and position[2:].lower() in data):
                found.append(tx)
    return found


def redelivered(devnet: dict[str, Any]) -> set[bytes]:
    """Task deliveries the guarded transport counted twice or more (``bh:delivery:*``)."""
    client = redis.Redis.from_url(devnet["redis_url"])
    try:
        return {k for k in client.scan_iter("bh:delivery:*") if int(client.get(k) or 0) >= 2}
    finally:
        client.close()


def test_rt_01_risk_pool_child_killed_mid_liquidation(devnet: dict[str, Any], cli: Cli,
                                                      fleet: WorkerFleet) -> None:
    position = key_for(devnet, "alice", b"rt01-liq")
    lock = cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", "320",
                    "--position", position)
    credited(cli, {lock["tx_id"]}, fleet)
    cli.json("price", "--market", "ETH-USD", "--set", "3000")
    cli.json("price", "--market", "USDC", "--set", "1")
    cli.json("trade", "open", "--position", position, "--size", "1")

    fleet.kill("risk")
    fleet.start("risk", "risk", "--pool", "prefork")  # a pool child runs each task
    url = devnet["chains"]["evm-b"]["rpc_urls"][0]
    v = venue(devnet).functions
    fund_before = v.insuranceFund().call()
    # The chain stalls first and mines only the crash price's block, so the liquidation
    # transaction waits unmined however fast the worker sends it.
    rpc(url, "evm_setIntervalMining", 0)
    try:
        publish_while_stalled(cli, devnet, "ETH-USD", "2730")  # E < MM / 2: one full step
        sent = wait_for(lambda: pending_liquidations(devnet, position), 60,
                        "liquidation transaction in flight")
        children = fleet.children("risk")
        assert children, "the risk worker has no pool child"
        before = redelivered(devnet)
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        # The redelivered task runs against the same, still unmined, chain state: whatever it
        # sends now lands in the same block as the first transaction.
        wait_for(lambda: redelivered(devnet) - before, 60, "the killed task delivered again")
        queues_drained(devnet, "liquidate.evm-b")
        assert fleet.procs["risk"].poll() is None, fleet.log_tail("risk")
    finally:
        rpc(url, "evm_setIntervalMining", 1)

    def closed() -> bool:
        return v.positionOf(bytes.fromhex(position[2:])).call()[1] == 0

    wait_for(closed, 60, "position liquidated")
    # Any duplicate attempt would have landed by now: nothing queued, and the worker screened
    # the closed position twice more.
    queues_drained(devnet, "liquidate.evm-b")
    risk_ticks(devnet, 2)
    mine = [e for e in venue(devnet).events.Liquidated().get_logs(from_block=0)
            if e.args.positionKey == bytes.fromhex(position[2:])]
    assert len(mine) == 1, mine  # one liquidation for the trigger
    (event,) = mine
    assert event.args.full and event.args.feeUsdE18 > 0
    assert sent[0]["hash"] in {"0x" + e.transactionHash.hex().removeprefix("0x") for e in mine}
    shortfall = sum(e.args.usdE18 for e in venue(devnet).events.Shortfall().get_logs(
        from_block=0) if e.args.positionKey == bytes.fromhex(position[2:]))
    assert shortfall == 0
    assert v.insuranceFund().call() - fund_before == event.args.feeUsdE18  # charged once
    result = cli.run("audit", "--json", ok=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rt_03_risk_worker_killed_after_claiming_before_sending(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:
    """RT-03: the risk worker that planned a crash tick dies holding the plans' leases before
    anything was sent (made deterministic by a planning-only worker: ``--only-queue risk`` plans,
    claims and queues the batch but never sends it). A live risk worker then takes the dead
    holder's leases over at once and liquidates every position exactly once; the time from its
    start is printed (the bound the wait states)."""
    positions = [key_for(devnet, "alice", f"rt03-{i}".encode()) for i in range(3)]
    open_longs(cli, fleet, positions)

    fleet.kill("risk")
    fleet.start("risk-plan", "risk", "--pool", "solo", "--only-queue", "risk")
    client = redis.Redis.from_url(devnet["redis_url"])
    before = set(client.scan_iter("bh:plan:*"))
    cli.json("price", "--market", "ETH-USD", "--set", "2730")  # E < MM / 2: a full close each

    def claimed() -> set[bytes]:
        return set(client.scan_iter("bh:plan:*")) - before

    leases = wait_for(lambda: len(claimed()) >= len(positions) and claimed(), 60,
                      "the crash tick's plans leased by the planning worker")
    wait_for(lambda: client.llen("liquidate.evm-b") >= 1, 30, "their batch queued to send")
    holder = fleet.procs["risk-plan"].pid
    fleet.kill("risk-plan")  # SIGKILL while it holds every lease and sent nothing
    assert {(client.get(k) or b"").decode().rsplit(":", 1)[-1] for k in leases} == {str(holder)}
    v = venue(devnet).functions
    raws = [bytes.fromhex(p[2:]) for p in positions]
    assert all(v.positionOf(raw).call()[1] != 0 for raw in raws)  # nothing liquidated yet

    fleet.start("risk", "risk", "--pool", "solo")
    started = time.monotonic()
    wait_for(lambda: all(v.positionOf(raw).call()[1] == 0 for raw in raws), 60,
             "every leased position liquidated by the live worker")
    print(f"RT-03: {len(positions)} positions liquidated {time.monotonic() - started:.1f} s "
          "after the live risk worker started")
    queues_drained(devnet, "liquidate.evm-b")
    events = venue(devnet).events.Liquidated().get_logs(from_block=0)
    for raw in raws:
        assert len([e for e in events if e.args.positionKey == raw]) == 1  # exactly once
    client.close()
