"""Liveness against a hostile broker and a congested chain (fault catalogue LIVE-01, LIVE-02).

LIVE-01: before the next lock is made, junk is written to Redis for its key, labelled with
every attester's address: a message that does not hash to its digest, junk bytes under the lock's
real digest, and a forged message with a larger amount. The lock is still credited once with its
real amount, and the junk is discarded and counted (``/metrics``).

LIVE-02: the venue chain stops mining, then mines with a base fee six times the keepers' price
and a lower gas limit, while 20 positions become liquidatable. Every one is liquidated exactly
once after mining resumes (replacements and re-pricings visible in the sending layer's counters
and logs), and the seizures then settle on a source chain that is congested the same way.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import redis
from web3 import Web3

from bulkhead.local.fleet import WorkerFleet
from chains.evm.artifacts import load_artifact
from chains.evm.sender import TxSender
from chains.evm.venue import VenueClient
from shared.chain import ChainKind, ChainRef
from shared.ids import address_to_bytes32, bytes32_hex
from shared.messages import Domain, LockAttestation, as_dict, digest
from shared.positions import market_id
from shared.settings import RetrySettings
from tests.support.chain import evm_balance, key_for, rpc, venue
from tests.support.fleet import credited
from tests.support.stack import Cli, publish_while_stalled, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

GWEI = 10**9


def _vault(devnet: dict[str, Any]) -> Any:
    a = devnet["chains"]["evm-a"]
    w3 = Web3(Web3.HTTPProvider(a["rpc_urls"][0]))
    return w3.eth.contract(address=a["vaults"][0], abi=load_artifact("CollateralVault").abi)


def test_live_01_junk_labelled_with_every_attester_never_blocks_a_lock(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:
    client = redis.Redis.from_url(devnet["redis_url"], decode_responses=True)
    a, b = devnet["chains"]["evm-a"], devnet["chains"]["evm-b"]
    vault32 = address_to_bytes32(a["vaults"][0])
    nonce = _vault(devnet).functions.lastNonce().call() + 1
    lock_id = bytes32_hex(nonce.to_bytes(32, "big"))
    key = f"{a['chain_id']}:{vault32}:{lock_id}"
    labels = [m["address"].lower() for m in devnet["attesters"]["members"]]
    position = key_for(devnet, "alice", b"live-01")
    alice = devnet["devnet"]["traders"]["alice"]["evm_address"]
    amount = 7_000_000
    domain = Domain(b["chain_id"], b["contracts"]["venue"])
    real = LockAttestation(a["chain_id"], bytes.fromhex(vault32[2:]), bytes.fromhex(lock_id[2:]),
                           bytes.fromhex(address_to_bytes32(alice)[2:]), alice,
                           bytes.fromhex(address_to_bytes32(a["assets"]["USDC"]["address"])[2:]),
                           amount, 6, bytes.fromhex(position[2:]),
                           devnet["attesters"].get("set_index", 0))
    forged = LockAttestation(*[getattr(real, f) for f in (
        "src_chain_id", "src_vault", "lock_id", "owner", "beneficiary", "src_asset")],
        amount=10**12, decimals=6, position_key=real.position_key,
        attester_set_index=real.attester_set_index)
    real_dig, forged_dig = ("0x" + digest(m, domain).hex() for m in (real, forged))
    body = {"message": {"type": "LockAttestation", **as_dict(forged)},
            "domain": {"chain_id": domain.chain_id,
                       "verifying_contract": domain.verifying_contract}}
    fake_dig = "0x" + "ee" * 32
    pipe = client.pipeline()
    pipe.sadd(f"bh:digests:{key}", fake_dig, real_dig, forged_dig)
    pipe.set(f"bh:msg:{fake_dig}", "{not json")
    pipe.set(f"bh:msg:{forged_dig}", json.dumps(body))
    for dig in (fake_dig, real_dig, forged_dig):
        pipe.hset(f"bh:sig:{dig}", mapping={label: "00" * 65 for label in labels})
    pipe.execute()
    discarded_before = int(client.get("bh:pool:discarded") or 0)

    lock = cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", "7",
                    "--position", position)
    assert lock["nonce"] == nonce
    (row,) = credited(cli, {lock["tx_id"]}, fleet)
    assert int(row["amount"]) == amount
    credits = [e for e in venue(devnet).events.Credited().get_logs(from_block=0)
               if e.args.lockId == bytes.fromhex(lock_id[2:])]
    assert len(credits) == 1 and credits[0].args.amount == amount
    # the forged message's junk signatures and the undecodable message, at least
    assert int(client.get("bh:pool:discarded") or 0) >= discarded_before + len(labels) + 1
    metrics = cli.run("locks", "--no-sync", "--json")  # the store still reads fine
    assert metrics.returncode == 0


def _pending_max_fee(url: str) -> int:
    """The highest max fee per gas among the chain's waiting transactions (0 if none)."""
    pool = rpc(url, "txpool_content")["pending"]
    fees = [int(tx.get("maxFeePerGas") or tx.get("gasPrice") or "0x0", 16)
            for by_nonce in pool.values() for tx in by_nonce.values()]
    return max(fees, default=0)


def _stall(url: str) -> None:
    rpc(url, "evm_setIntervalMining", 0)


def _congest_and_resume(url: str, *, gas_limit: int) -> int:
    """Once transactions wait unmined: the next block's base fee six times the best price they
    offer, a lower gas limit, and mining again. Returns the base fee set."""
    offered = wait_for(lambda: _pending_max_fee(url), 60, "transactions waiting unmined")
    rpc(url, "anvil_setNextBlockBaseFeePerGas", hex(6 * offered))
    rpc(url, "evm_setBlockGasLimit", hex(gas_limit))
    rpc(url, "evm_setIntervalMining", 1)
    return 6 * offered


async def _lock_all(devnet: dict[str, Any], keys: list[str], amount: int) -> list[str]:
    """alice locks ``amount`` USDC on evm-a for each position, all transactions in flight."""
    a, b = devnet["chains"]["evm-a"], devnet["chains"]["evm-b"]
    alice = devnet["devnet"]["traders"]["alice"]
    sender = await TxSender.connect(a["rpc_urls"][0], alice["evm_key"])
    try:
        usdc = sender.w3.eth.contract(address=a["assets"]["USDC"]["address"],
                                      abi=load_artifact("TestToken").abi)
        vault = sender.w3.eth.contract(address=a["vaults"][0],
                                       abi=load_artifact("CollateralVault").abi)
        await sender.wait(await sender.send(usdc.functions.approve(
            vault.address, amount * len(keys))))
        hashes = [await sender.send(vault.functions.lock(
            usdc.address, amount, bytes.fromhex(k[2:]), b["chain_id"], b["contracts"]["venue"],
            alice["evm_address"])) for k in keys]
        await asyncio.gather(*(sender.wait(h) for h in hashes))
        return hashes
    finally:
        await sender.aclose()


async def _open_all(devnet: dict[str, Any], keys: list[str], size_e18: int) -> None:
    """alice opens a long of ``size_e18`` on each position, all transactions in flight."""
    b = devnet["chains"]["evm-b"]
    venue_client = await VenueClient.connect(
        b["rpc_urls"], b["contracts"]["venue"],
        chain=ChainRef("evm-b", ChainKind.EVM, b["chain_id"]),
        sender_key=devnet["devnet"]["traders"]["alice"]["evm_key"], retry=RetrySettings())
    try:
        await asyncio.gather(*(venue_client.open_position(bytes.fromhex(k[2:]),
                                                          market_id("ETH-USD"), size_e18)
                               for k in keys))
    finally:
        await venue_client.aclose()


def _tx_events(client: redis.Redis, chain: str) -> dict[str, int]:
    raw = client.hgetall("bh:tx-events")
    out: dict[str, int] = {}
    for k, v in raw.items():
        name = k.decode() if isinstance(k, bytes) else k
        if name.startswith(f"{chain}:"):
            out[name.split(":", 1)[1]] = int(v)
    return out


@pytest.mark.timeout(900)
def test_live_02_liquidations_and_settlements_land_through_congestion(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:
    client = redis.Redis.from_url(devnet["redis_url"])
    url_a, url_b = (devnet["chains"][k]["rpc_urls"][0] for k in ("evm-a", "evm-b"))
    keys = [key_for(devnet, "alice", f"live-02-{i}".encode()) for i in range(20)]
    lock_txs = asyncio.run(_lock_all(devnet, keys, 320_000_000))
    credited(cli, set(lock_txs), fleet)
    cli.json("price", "--market", "ETH-USD", "--set", "3000")
    cli.json("price", "--market", "USDC", "--set", "1")
    asyncio.run(_open_all(devnet, keys, 10**18))  # all in flight: within the price's max age
    seize_to = _vault(devnet).functions.seizeRecipient().call()
    seized_before = evm_balance(devnet, seize_to)

    # The keepers must send into a chain that does not mine: stall it first, then mine block
    # by block only until the crash price has landed (a keeper fast enough to liquidate in the
    # price's own block interval would otherwise finish before the stall).
    _stall(url_b)
    publish_while_stalled(cli, devnet, "ETH-USD", "2730")  # every position: E < MM / 2
    try:  # ... which then mines at six times the keepers' price, with a lower gas limit
        _congest_and_resume(url_b, gas_limit=8_000_000)
    finally:
        rpc(url_b, "evm_setIntervalMining", 1)
    resumed = time.monotonic()
    v = venue(devnet)

    def all_liquidated() -> bool:
        return all(v.functions.positionOf(bytes.fromhex(k[2:])).call()[1] == 0 for k in keys)

    wait_for(all_liquidated, 90, "20 positions liquidated after the congestion eased")
    liquidated_in_s = time.monotonic() - resumed
    events = [e for e in v.events.Liquidated().get_logs(from_block=0)
              if "0x" + e.args.positionKey.hex() in keys]
    assert sorted("0x" + e.args.positionKey.hex() for e in events) == sorted(keys)  # once each
    fees = _tx_events(client, "evm-b")
    assert fees.get("replaced", 0) + fees.get("repriced", 0) >= 1, fees
    risk_log = (fleet.logs / "risk.log").read_text(errors="replace")
    assert "tx_replaced" in risk_log or "tx_repriced" in risk_log

    # The seizures settle on evm-a through the same kind of congestion.
    _stall(url_a)
    try:
        _congest_and_resume(url_a, gas_limit=8_000_000)
    finally:
        rpc(url_a, "evm_setIntervalMining", 1)
    def all_settled() -> list[dict[str, Any]] | None:
        rows = cli.json("settlements")
        done = len(rows) >= 2 * len(keys) and all(r["state"] == "executed" for r in rows)
        return rows if done else None

    rows = wait_for(all_settled, 120, "every seizure and release executed on evm-a")
    seized = sum(int(r["amount"]) for r in rows if r["kind"] == "seize")
    assert evm_balance(devnet, seize_to) - seized_before == seized > 0
    assert sum(_tx_events(client, "evm-a").get(k, 0) for k in ("replaced", "repriced")) >= 1
    assert liquidated_in_s < 90
    audit = cli.run("audit", "--json", ok=False)
    assert audit.returncode == 0, audit.stdout + audit.stderr


def _lane(cli: Cli, asset: str) -> dict[str, Any]:
    rows = cli.json("admin", "lanes", "show", "--chain", "evm-a")
    return next(r for r in rows if r["asset"] == asset)


def _book_at_ms(devnet: dict[str, Any], asset: str) -> int:
    """When the accountant last published this evm-a lane's book (0: never)."""
    raw = redis.Redis.from_url(devnet["redis_url"]).hgetall("bh:acct:books")
    rows = [json.loads(v) for v in raw.values()]
    return max((int(r["at_ms"]) for r in rows
                if r["chain"] == "evm-a" and r["asset"] == asset), default=0)


def test_acct_01_fabricated_credits_from_a_quorum_of_keys_pause_their_lane(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:
    """ACCT-01: m = 3 leaked attester keys sign credits for WETH lock ids that never existed on
    evm-a and send them straight to the venue, one after another. The accountant pauses the
    evm-a WETH lane; the next fabricated credit is refused ``LaneIsPaused``; what landed before
    the pause is exactly the lane's deficit (printed: the loss bound). The owner resumes the lane
    and the accountant leaves it alone while the deficit does not grow."""
    from bridges.observation import attestation_for
    from shared.errors import TxRejected
    from shared.events import LockEvent
    from shared.messages import sign

    a, b = devnet["chains"]["evm-a"], devnet["chains"]["evm-b"]
    before = _lane(cli, "WETH")
    assert not before["paused"] and before["deficit"] == "0", before
    bob = devnet["devnet"]["traders"]["bob"]
    position = key_for(devnet, "bob", b"acct-01")
    domain = Domain(b["chain_id"], b["contracts"]["venue"])
    keys = devnet["devnet"]["attester_keys"]
    members = {m["name"]: m["address"].lower() for m in devnet["attesters"]["members"]}
    quorum = sorted(("att-1", "att-2", "att-3"), key=lambda n: members[n])

    def fabricated(nonce: int, amount: int) -> tuple[Any, list[bytes]]:
        event = LockEvent(
            chain="evm-a", chain_id=a["chain_id"], lock_id=bytes32_hex(nonce.to_bytes(32, "big")),
            vault=address_to_bytes32(a["vaults"][0]),
            owner=address_to_bytes32(bob["evm_address"]),
            asset=address_to_bytes32(a["assets"]["WETH"]["address"]), amount=amount,
            decimals=18, position_key=position, dst_chain_id=b["chain_id"],
            dst_venue=b["contracts"]["venue"], beneficiary=bob["evm_address"], height=1,
            block_hash="0x" + "00" * 32, tx_id=f"0x{nonce:064x}", nonce=nonce)
        att = attestation_for(event, 0)
        return att, [sign(att, domain, keys[n]["evm_key"]) for n in quorum]

    one = 10**18
    landed: list[int] = []

    async def attack() -> str:
        client = await VenueClient.connect(
            b["rpc_urls"], b["contracts"]["venue"], chain=ChainRef("evm-b", ChainKind.EVM,
                                                                   b["chain_id"]),
            sender_key=bob["evm_key"], retry=RetrySettings())
        try:
            for i in range(120):  # ~one block each: far more than one accountant pass
                att, sigs = fabricated(2**50 + i, one)
                try:
                    await client.credit(att, sigs)
                except TxRejected as exc:
                    return exc.reason
                landed.append(one)
            return "never paused"
        finally:
            await client.aclose()

    started = time.monotonic()
    reason = asyncio.run(attack())
    elapsed = time.monotonic() - started
    # Refused at the estimate, or (when the pause lands between estimate and block) reverted
    # in the block, the replay naming the same reason.
    assert reason.startswith("LaneIsPaused("), reason
    lane = _lane(cli, "WETH")
    assert lane["paused"] and lane["headroom"] == "0", lane
    # Everything that landed is unbacked, and the deficit says so to the unit.
    assert int(lane["deficit"]) - int(before["deficit"]) == sum(landed) > 0, (lane, landed)
    print(f"ACCT-01: {len(landed)} fabricated credits ({sum(landed) / one:g} WETH) landed in "
          f"{elapsed:.1f} s before the accountant paused the lane")
    log = (fleet.logs / "accountant.log").read_text(errors="replace")
    assert "lane_breach" in log and "WETH" in log

    resumed = cli.json("admin", "lanes", "resume", "--chain", "evm-a", "--asset", "WETH")
    assert resumed["changed"], resumed
    since = _book_at_ms(devnet, "WETH")
    wait_for(lambda: _book_at_ms(devnet, "WETH") > since, 60, "an accountant pass after resume")
    since = _book_at_ms(devnet, "WETH")
    wait_for(lambda: _book_at_ms(devnet, "WETH") > since, 60, "a second pass after resume")
    assert not _lane(cli, "WETH")["paused"]  # the acknowledged deficit alone pauses nothing


def test_reorg_01_a_credited_lock_whose_block_vanished_after_finality_is_orphaned(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:
    """REORG-01 (last in this module: it leaves evm-a with an incident the audit reports):
    evm_snapshot before a lock, evm_revert after its credit, then mine past the old head."""
    url = devnet["chains"]["evm-a"]["rpc_urls"][0]
    snapshot = rpc(url, "evm_snapshot")
    position = key_for(devnet, "alice", b"reorg-01")
    lock = cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", "11",
                    "--position", position)
    credited(cli, {lock["tx_id"]}, fleet)
    head = int(rpc(url, "eth_blockNumber"), 16)
    assert rpc(url, "evm_revert", snapshot)
    rpc(url, "anvil_mine", hex(head - int(rpc(url, "eth_blockNumber"), 16) + 8))

    def orphaned() -> dict[str, Any] | None:
        rows = [r for r in cli.json("locks", "--no-sync") if r["tx_id"] == lock["tx_id"]]
        return rows[0] if rows and rows[0]["state"] == "orphaned" else None

    row = wait_for(orphaned, 60, "the credited lock marked orphaned")
    # The accountant pauses the lane: the vault lost the lock, the venue still counts its credit.
    lane = wait_for(lambda: (r := _lane(cli, "USDC"))["paused"] and r, 60, "USDC lane paused")
    assert int(lane["deficit"]) > 0, lane
    watcher_log = (fleet.logs / "watcher.log").read_text(errors="replace")
    assert "lock_orphaned" in watcher_log and lock["tx_id"] in watcher_log
    # A new lock now reuses the orphan's nonce: it is a record of its own, listed apart.
    again = cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", "12",
                     "--position", position)
    assert again["nonce"] == lock["nonce"]

    def both_listed() -> bool:
        rows = {r["tx_id"]: r for r in cli.json("locks", "--no-sync")}
        return rows.get(lock["tx_id"], {}).get("state") == "orphaned" and again["tx_id"] in rows

    wait_for(both_listed, 60, "the orphan and the new lock listed apart")
    audit = cli.run("audit", "--json", ok=False)
    assert audit.returncode == 1  # the incident stays visible to an operator
    assert row["key"] in audit.stdout or lock["tx_id"] in audit.stdout or "I1" in audit.stdout


def test_reorg_01_solana_a_credited_lock_whose_finalized_slot_was_dropped_is_orphaned(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:
    """REORG-01 on Solana (after the EVM case; it leaves the solana lane paused): the local RPC
    drops every slot from the credited lock's on, finalized ones included, as a broken or
    hostile cluster would serve it. The lock's slot now has another blockhash and no lock."""
    url = devnet["chains"]["solana"]["rpc_urls"][0]
    lock = cli.json("lock", "--chain", "solana", "--asset", "USDC", "--amount", "6",
                    "--position", key_for(devnet, "bob", b"reorg-01-sol"), "--trader", "bob")
    (row,) = credited(cli, {lock["tx_id"]}, fleet)
    assert row["state"] == "credited" and row["height"] > 0
    dropped = rpc(url, "bulkhead_dropSlotsAbove", row["height"] - 1)
    assert lock["tx_id"] in dropped

    def orphaned() -> dict[str, Any] | None:
        rows = [r for r in cli.json("locks", "--no-sync") if r["tx_id"] == lock["tx_id"]]
        return rows[0] if rows and rows[0]["state"] == "orphaned" else None

    found = wait_for(orphaned, 60, "the credited Solana lock marked orphaned")
    watcher_log = (fleet.logs / "watcher.log").read_text(errors="replace")
    assert "lock_orphaned" in watcher_log and lock["tx_id"] in watcher_log

    def solana_lane() -> dict[str, Any] | None:
        rows = cli.json("admin", "lanes", "show", "--chain", "solana")
        lane = next(r for r in rows if r["asset"] == "USDC")
        return lane if lane["paused"] else None

    lane = wait_for(solana_lane, 60, "solana USDC lane paused")
    assert int(lane["deficit"]) > 0, lane
    audit = cli.run("audit", "--json", ok=False)
    assert audit.returncode == 1
    assert found["key"] in audit.stdout or lock["tx_id"] in audit.stdout, audit.stdout
