"""``bulkhead audit`` on a live devnet with real workers: clean after locks on evm-a and solana
are credited; then a store claim no chain backs (a fake ``credited`` record) fails it on I12."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.ids import bytes32_hex
from shared.locks import LockRecord, LockState, Transition
from tests.e2e.workers import WorkerFleet
from tests.support.chain import key_for
from tests.support.fleet import credited, fleet  # noqa: F401 - the module's worker fleet
from tests.support.stack import Cli
from workers.stores.locks import RedisLockStore

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def fake_credited_record(devnet: dict[str, Any]) -> LockRecord:
    """A ``credited`` record for nonce 2**40 of the evm-a vault: no such lock exists."""
    from shared.events import LockEvent
    from shared.ids import address_to_bytes32

    a, b = devnet["chains"]["evm-a"], devnet["chains"]["evm-b"]
    event = LockEvent(
        chain="evm-a", chain_id=a["chain_id"],
        lock_id=bytes32_hex((2**40).to_bytes(32, "big")),
        vault=address_to_bytes32(a["vaults"][0]),
        owner=address_to_bytes32(devnet["devnet"]["traders"]["alice"]["evm_address"]),
        asset=address_to_bytes32(a["assets"]["USDC"]["address"]), amount=1_000_000, decimals=6,
        position_key=key_for(devnet, "alice", b"fake"), dst_chain_id=b["chain_id"],
        dst_venue=b["contracts"]["venue"],
        beneficiary=devnet["devnet"]["traders"]["alice"]["evm_address"], height=1,
        block_hash="0x" + "00" * 32, tx_id="0x" + "fa" * 32, nonce=2**40)
    return LockRecord(event, LockState.CREDITED, (Transition(LockState.SEEN, 1, 1),
                                                  Transition(LockState.CREDITED, 1, 2)))


def test_audit_is_clean_after_credits_and_names_a_fake_store_claim(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:  # noqa: F811
    evm = cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", "12.5",
                   "--position", key_for(devnet, "alice", b"audit-evm"))
    sol = cli.json("lock", "--chain", "solana", "--asset", "USDC", "--amount", "7",
                   "--position", key_for(devnet, "bob", b"audit-sol"), "--trader", "bob")
    credited(cli, {evm["tx_id"], sol["tx_id"]}, fleet)

    proc = cli.run("audit", "--json", ok=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["clean"] and report["violations"] == []
    summary = report["summary"]
    assert summary["store_checked"] and summary["store_records"] >= 2
    assert summary["chains"]["evm-a"]["locks"] >= 1 and summary["chains"]["evm-a"]["credits"] >= 1
    assert summary["chains"]["solana"]["locks"] >= 1
    assert summary["chains"]["solana"]["credits"] >= 1
    for inv in ("I1", "I2", "I3", "I5", "I11", "I12"):
        assert summary["invariants"][inv]["checked"] > 0, inv

    fake = fake_credited_record(devnet)
    store = RedisLockStore(devnet["redis_url"])
    try:
        store.put([fake])
    finally:
        store.close()
    proc = cli.run("audit", "--json", ok=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: audit found")
    assert lines[1:] and all(line.startswith("I12 ") for line in lines[1:]), proc.stderr
    assert any(fake.key in line for line in lines[1:]), proc.stderr
    assert {v["invariant"] for v in json.loads(proc.stdout)["violations"]} == {"I12"}
