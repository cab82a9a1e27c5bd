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
from web3 import Web3

from bulkhead.local.fleet import WorkerFleet
from chains.evm.artifacts import load_artifact
from tests.e2e.conftest import Cli, wait_for
from tests.e2e.test_bridge_credit import credited
from tests.e2e.test_devnet_locks import key_for
from tests.integration.evm.conftest import rpc

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
    cli.json("price", "--market", "ETH-USD", "--set", "2730")  # E < MM / 2: one full step
    rpc(url, "evm_setIntervalMining", 0)  # the liquidation transaction will wait unmined
    try:
        sent = wait_for(lambda: pending_liquidations(devnet, position), 60,
                        "liquidation transaction in flight")
        children = fleet.children("risk")
        assert children, "the risk worker has no pool child"
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        # The redelivered task runs against the same, still unmined, chain state: whatever it
        # sends now lands in the same block as the first transaction.
        time.sleep(6)
        assert fleet.procs["risk"].poll() is None, fleet.log_tail("risk")
    finally:
        rpc(url, "evm_setIntervalMining", 1)

    def closed() -> bool:
        return v.positionOf(bytes.fromhex(position[2:])).call()[1] == 0

    wait_for(closed, 60, "position liquidated")
    time.sleep(5)  # any duplicate attempt would land now
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
