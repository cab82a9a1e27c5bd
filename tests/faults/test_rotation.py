"""ROT-01: an attester rotation under traffic, with real workers that read the live set.

The devnet's roster gains a fifth attester (``att-5``, a fresh key, no Solana key: the SPL
multisig is fixed) whose worker runs from the start but signs nothing until a set names it.
Locks and withdrawals are in flight on both kinds of chain when ``bulkhead admin attesters
propose|execute`` replaces ``att-4`` by ``att-5`` on the venue and the EVM vault, with the
shortest grace window. Nothing is restarted and no setting changes. Every lock is credited once
and every settlement executed once; the new member's signatures carry credits after the
rotation; once the window has passed in chain time, signatures under the old set are refused
by the venue and the vault, and the member that left signs nothing; the audit is clean.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from bulkhead.local.fleet import WorkerFleet
from chains.evm.artifacts import load_artifact
from chains.evm.vault import VaultClient
from chains.evm.venue import VenueClient
from shared.chain import ChainKind, ChainRef
from shared.errors import TxRejected
from shared.ids import address_to_bytes32
from shared.messages import Domain, LockAttestation, Settlement, SettlementKind, sign
from shared.settings import RetrySettings
from tests.support.chain import key_for, rpc, venue
from tests.support.stack import Cli, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

RETRY = RetrySettings(max_attempts=3, initial_s=0.05, max_s=0.2, timeout_s=10)
NEW_KEY = "0x" + "5a" * 32
GRACE_S = 60


def add_to_roster(home: Path) -> str:
    """Put ``att-5`` on the settings' roster (the devnet manifest) with its devnet key."""
    path = home / "devnet" / "manifest.json"
    manifest = json.loads(path.read_text())
    address = Account.from_key(NEW_KEY).address
    manifest["attesters"]["members"].append({"name": "att-5", "address": address})
    manifest["devnet"]["attester_keys"]["att-5"] = {"evm_key": NEW_KEY}
    path.write_text(json.dumps(manifest))
    return address


@pytest.fixture(scope="module")
def fleet(devnet: dict[str, Any],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerFleet]:
    add_to_roster(devnet["home"])
    workers = WorkerFleet(devnet["home"], tmp_path_factory.mktemp("rotation-logs"))
    workers.start_all(["att-1", "att-2", "att-3", "att-4", "att-5"])
    try:
        yield workers
    finally:
        workers.stop()


def dump(fleet: WorkerFleet) -> None:
    for label in fleet.procs:
        print(f"--- {label}\n{fleet.log_tail(label)}")


def b32(address: str) -> bytes:
    return bytes.fromhex(address_to_bytes32(address)[2:])


def old_set_keys(devnet: dict[str, Any]) -> list[str]:
    """Three of set 0's keys, in signing order."""
    keys = [devnet["devnet"]["attester_keys"][n]["evm_key"] for n in ("att-1", "att-2", "att-4")]
    return sorted(keys, key=lambda k: int(Account.from_key(k).address, 16))


async def old_set_credit(devnet: dict[str, Any]) -> None:
    """A credit signed by three members of set 0 (a lock id that never existed: the venue
    must refuse it on the set alone, before anything else could)."""
    a, b = devnet["chains"]["evm-a"], devnet["chains"]["evm-b"]
    alice = devnet["devnet"]["traders"]["alice"]
    att = LockAttestation(
        src_chain_id=a["chain_id"], src_vault=b32(a["vaults"][0]),
        lock_id=(2**255 + 7).to_bytes(32, "big"), owner=b32(alice["evm_address"]),
        beneficiary=alice["evm_address"], src_asset=b32(a["assets"]["USDC"]["address"]),
        amount=1_000_000, decimals=6,
        position_key=bytes.fromhex(key_for(devnet, "alice", b"rot-forged")[2:]),
        attester_set_index=0)
    domain = Domain(b["chain_id"], b["contracts"]["venue"])
    client = await VenueClient.connect(b["rpc_urls"], b["contracts"]["venue"],
                                       chain=ChainRef("evm-b", ChainKind.EVM, b["chain_id"]),
                                       sender_key=devnet["devnet"]["relayer_key"], retry=RETRY)
    try:
        await client.credit(att, [sign(att, domain, k) for k in old_set_keys(devnet)])
    finally:
        await client.aclose()


async def old_set_settlement(devnet: dict[str, Any]) -> dict[bytes, str]:
    """A release signed by three members of set 0, straight to the evm-a vault."""
    a = devnet["chains"]["evm-a"]
    alice = devnet["devnet"]["traders"]["alice"]
    message = Settlement(
        src_chain_id=a["chain_id"], src_vault=b32(a["vaults"][0]),
        lock_id=(1).to_bytes(32, "big"), recipient=b32(alice["evm_address"]), amount=1,
        kind=SettlementKind.RELEASE, settlement_id=b"\x77" * 32, attester_set_index=0)
    domain = Domain(a["chain_id"], a["vaults"][0])
    client = await VaultClient.connect(a["rpc_urls"], a["vaults"][0],
                                       chain=ChainRef("evm-a", ChainKind.EVM, a["chain_id"]),
                                       sender_key=devnet["devnet"]["relayer_key"], retry=RETRY)
    try:
        out = await client.settle_batch(
            [(message, [sign(message, domain, k) for k in old_set_keys(devnet)])])
        return dict(out.skipped)
    finally:
        await client.aclose()


def test_rot_01_rotation_under_traffic_loses_nothing_and_retires_the_old_set(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:
    locks: dict[str, dict[str, Any]] = {}

    def lock(chain: str, amount: str, salt: bytes, trader: str = "alice") -> None:
        args = ["lock", "--chain", chain, "--asset", "USDC", "--amount", amount,
                "--position", key_for(devnet, trader, salt)]
        if chain == "solana":
            args += ["--trader", trader]
        row = cli.json(*args)
        locks[row["tx_id"]] = {"chain": chain, "trader": trader, "salt": salt}

    def credited(tx_ids: set[str]) -> dict[str, dict[str, Any]]:
        def done() -> dict[str, dict[str, Any]] | None:
            rows = {r["tx_id"]: r for r in cli.json("locks", "--no-sync")
                    if r["tx_id"] in tx_ids}
            return rows if len(rows) == len(tx_ids) and all(
                r["state"] == "credited" for r in rows.values()) else None
        try:
            return wait_for(done, 180, "locks credited")
        except AssertionError:
            dump(fleet)
            raise

    # Before: traffic under set 0.
    lock("evm-a", "30", b"rot-a1")
    lock("evm-a", "20", b"rot-a2")
    lock("solana", "10", b"rot-s1", "bob")
    before = credited(set(locks))
    by_salt = {locks[t]["salt"]: r for t, r in before.items()}
    settlements = [cli.json("withdraw", "--position", key_for(devnet, "alice", b"rot-a1"),
                            "--lock", by_salt[b"rot-a1"]["key"], "--amount", "5")]
    lock("evm-a", "11", b"rot-a3")
    lock("solana", "7", b"rot-s2", "bob")

    # The rotation, with all of that in flight: att-4 out, att-5 in, 3 of 4, shortest grace.
    members = [m["address"] for m in devnet["attesters"]["members"] if m["name"] != "att-4"]
    members.append(Account.from_key(NEW_KEY).address)
    each = [a for m in members for a in ("--member", m)]
    cli.json("admin", "attesters", "propose", *each, "--threshold", "3",
             "--grace", str(GRACE_S))
    done = cli.json("admin", "attesters", "execute")
    assert {("evm-b", "venue"), ("evm-a", "vault")} <= {(r["chain"], r["registry"]) for r in done}
    assert all(r["changed"] and r["index"] == 1 for r in done), done

    # After: more traffic, including withdrawals from locks credited under set 0.
    settlements.append(cli.json("withdraw", "--position", key_for(devnet, "bob", b"rot-s1"),
                                "--lock", by_salt[b"rot-s1"]["key"], "--amount", "4",
                                "--trader", "bob"))
    settlements.append(cli.json("withdraw", "--position", key_for(devnet, "alice", b"rot-a2"),
                                "--lock", by_salt[b"rot-a2"]["key"], "--amount", "2.5"))
    lock("evm-a", "13", b"rot-a4")
    lock("solana", "3", b"rot-s3", "bob")
    rows = credited(set(locks))
    ids = {s["settlement_id"] for s in settlements}

    def executed() -> list[dict[str, Any]] | None:
        found = [r for r in cli.json("settlements") if r["settlement_id"] in ids]
        return found if len(found) == len(ids) and all(
            r["state"] == "executed" for r in found) else None

    try:
        wait_for(executed, 180, "settlements executed")
    except AssertionError:
        dump(fleet)
        raise

    # Exactly once on the venue (I2) and on the vault.
    credits = venue(devnet).events.Credited().get_logs(from_block=0)
    keys = [(e.args.srcChainId, e.args.lockId) for e in credits]
    assert len(keys) == len(set(keys)) == len(rows)
    a = devnet["chains"]["evm-a"]
    from web3 import Web3

    vault = Web3(Web3.HTTPProvider(a["rpc_urls"][0])).eth.contract(
        address=a["vaults"][0], abi=load_artifact("CollateralVault").abi)
    settled = [e.args.settlementId for e in vault.events.Settled().get_logs(from_block=0)]
    assert len(settled) == len(set(settled)) == 2  # the two evm-a withdrawals
    # The new member signed after the rotation (it is in no set before it), and no signature
    # any attester posted was thrown away as not verifying under the set it names.
    assert "attested" in (fleet.logs / "att-5.log").read_text()
    assert "pool_entries_discarded" not in (fleet.logs / "relayer.log").read_text()

    # The grace window passes in chain time: set 0 is no longer accepted anywhere.
    for chain in ("evm-a", "evm-b"):
        url = devnet["chains"][chain]["rpc_urls"][0]
        rpc(url, "evm_increaseTime", GRACE_S + 5)
        rpc(url, "evm_mine")
    with pytest.raises(TxRejected) as refused:
        asyncio.run(old_set_credit(devnet))
    assert "AttesterSetNotLive" in refused.value.reason
    skipped = asyncio.run(old_set_settlement(devnet))
    assert any("AttesterSetNotLive" in str(reason) for reason in skipped.values()), skipped

    # Traffic after the window goes on under set 1; the member that left signs nothing.
    lock("evm-a", "9", b"rot-a5")
    credited(set(locks))
    wait_for(lambda: "attester_not_in_live_set" in (fleet.logs / "att-4.log").read_text(),
             60, "att-4 to notice it is in no live set")

    proc = cli.run("audit", "--json", ok=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["clean"]
