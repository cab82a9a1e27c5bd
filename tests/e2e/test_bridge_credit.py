"""The bridge end to end with real Celery worker processes on Redis: locks on evm-a and on
solana are observed by 4 attesters, 3 of 4 signatures relayed, and credited exactly once to
the named position on the venue on evm-b."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chains.evm.artifacts import load_artifact
from shared.ids import address_to_bytes32
from tests.e2e.workers import WorkerFleet
from tests.support.chain import evm_balance, key_for, venue
from tests.support.fleet import credited
from tests.support.stack import Cli, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

def test_locks_on_evm_and_solana_are_credited_once(devnet: dict[str, Any], cli: Cli,
                                                   fleet: WorkerFleet) -> None:
    alice_pos = key_for(devnet, "alice", b"bridge-evm")
    bob_pos = key_for(devnet, "bob", b"bridge-sol")
    evm = cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", "125.5",
                   "--position", alice_pos)
    sol = cli.json("lock", "--chain", "solana", "--asset", "USDC", "--amount", "250",
                   "--position", bob_pos, "--trader", "bob")
    rows = {r["chain"]: r for r in credited(cli, {evm["tx_id"], sol["tx_id"]}, fleet)}
    for row in rows.values():
        states = [t["state"] for t in row["transitions"]]
        assert states[0] == "seen" and "finalized" in states and states[-1] == "credited"
    contract = venue(devnet)
    a, s = devnet["chains"]["evm-a"], devnet["chains"]["solana"]
    usdc_a = bytes.fromhex(address_to_bytes32(a["assets"]["USDC"]["address"])[2:])
    from solders.pubkey import Pubkey

    usdc_s = bytes(Pubkey.from_string(s["assets"]["USDC"]["address"]))
    alice_amount = contract.functions.collateralOf(bytes.fromhex(alice_pos[2:]), 31337,
                                                   usdc_a).call()
    bob_amount = contract.functions.collateralOf(bytes.fromhex(bob_pos[2:]), 900001,
                                                 usdc_s).call()
    assert alice_amount == 125_500_000 * 10**12  # 6 -> 18 decimals, exact
    assert bob_amount == 250_000_000 * 10**12
    owner = contract.functions.ownerOfPosition(bytes.fromhex(alice_pos[2:])).call()
    assert owner == devnet["devnet"]["traders"]["alice"]["evm_address"]
    # I2: nothing was credited twice, whatever the retries: one Credited event per lock.
    events = contract.events.Credited().get_logs(from_block=0)
    keys = [(e.args.srcChainId, e.args.lockId) for e in events]
    assert len(keys) == len(set(keys))


def solana_balance(devnet: dict[str, Any], wallet: str) -> int:
    import asyncio

    from solana.rpc.async_api import AsyncClient
    from solders.pubkey import Pubkey
    from spl.token.instructions import get_associated_token_address

    s = devnet["chains"]["solana"]
    ata = get_associated_token_address(Pubkey.from_string(wallet),
                                       Pubkey.from_string(s["assets"]["USDC"]["address"]))

    async def read() -> int:
        async with AsyncClient(s["rpc_urls"][0]) as client:
            resp = await client.get_token_account_balance(ata)
            return int(resp.value.amount)

    return asyncio.run(read())


def test_withdrawals_settle_back_on_both_kinds(devnet: dict[str, Any], cli: Cli,
                                               fleet: WorkerFleet) -> None:
    """Credited margin withdrawn on the venue is released on its source chain, exactly once:
    part of a lock on evm-a (CollateralVault.settle) and a whole lock on solana (3-of-4 SPL
    multisig transfer)."""
    alice_pos = key_for(devnet, "alice", b"settle-evm")
    bob_pos = key_for(devnet, "bob", b"settle-sol")
    evm = cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", "40",
                   "--position", alice_pos)
    sol = cli.json("lock", "--chain", "solana", "--asset", "USDC", "--amount", "12.5",
                   "--position", bob_pos, "--trader", "bob")
    rows = {r["chain"]: r for r in credited(cli, {evm["tx_id"], sol["tx_id"]}, fleet)}
    alice = devnet["devnet"]["traders"]["alice"]["evm_address"]
    bob_wallet = devnet["devnet"]["traders"]["bob"]["solana_pubkey"]
    alice_before, bob_before = evm_balance(devnet, alice), solana_balance(devnet, bob_wallet)

    first = cli.json("withdraw", "--position", alice_pos, "--lock", rows["evm-a"]["key"],
                     "--amount", "15.25")
    second = cli.json("withdraw", "--position", bob_pos, "--lock", rows["solana"]["key"],
                      "--amount", "12.5", "--trader", "bob")
    ids = {first["settlement_id"], second["settlement_id"]}

    def executed() -> list[dict[str, Any]] | None:
        rows = [r for r in cli.json("settlements") if r["settlement_id"] in ids]
        return rows if len(rows) == 2 and all(r["state"] == "executed" for r in rows) else None

    try:
        wait_for(executed, 90, "settlements executed")
    except AssertionError:
        for label in fleet.procs:
            print(f"--- {label}\n{fleet.log_tail(label)}")
        raise
    assert evm_balance(devnet, alice) - alice_before == 15_250_000
    assert solana_balance(devnet, bob_wallet) - bob_before == 12_500_000
    back = {r["chain"]: r for r in cli.json("locks", "--no-sync")
            if r["tx_id"] in (evm["tx_id"], sol["tx_id"])}
    assert (back["evm-a"]["released"], back["solana"]["released"]) == ("15250000", "12500000")
    assert back["evm-a"]["seized"] == "0"
    # More than the lock's remaining credit is refused before anything is signed.
    over = cli.run("withdraw", "--position", alice_pos, "--lock", rows["evm-a"]["key"],
                   "--amount", "30", ok=False)
    assert over.returncode == 2 and "amount" in over.stderr


def test_rpl_01_resubmitting_a_credited_lock_is_a_typed_noop(devnet: dict[str, Any], cli: Cli,
                                                              fleet: WorkerFleet) -> None:
    lock = cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", "1",
                    "--position", key_for(devnet, "alice", b"rpl01"))
    (row,) = credited(cli, {lock["tx_id"]}, fleet)
    again = cli.json("credit", "--lock", row["key"])
    assert again == {"lock": row["key"], "outcome": "already-consumed"}
    lock_id = bytes.fromhex(row["lock_id"][2:])
    events = [e for e in venue(devnet).events.Credited().get_logs(from_block=0)
              if e.args.lockId == lock_id and e.args.srcChainId == 31337]
    assert len(events) == 1


def test_operator_credits_on_the_relayer_key_at_once_get_a_typed_outcome(
        devnet: dict[str, Any], cli: Cli, fleet: WorkerFleet) -> None:
    """Four ``bulkhead credit --lock`` processes sending with the relayer's key at the same
    moment (the relayer is down, its quorums pile up): each credits its lock, none fails on a
    nonce taken by another (the sending layer re-reads the pending nonce); the relayer, back,
    finds them consumed and skips them typed. Every lock is credited once."""
    import subprocess
    import sys

    import redis

    fleet.kill("relayer")
    client = redis.Redis.from_url(devnet["redis_url"])
    try:
        backlog = client.xlen("bh:ready")
        locks = [cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", "2",
                          "--position", key_for(devnet, "alice", f"race-{i}".encode()))
                 for i in range(4)]
        txs = {lk["tx_id"] for lk in locks}
        wait_for(lambda: client.xlen("bh:ready") >= backlog + len(locks), 90, "quorums ready")
        rows = [r for r in cli.json("locks", "--no-sync") if r["tx_id"] in txs]
        procs = [subprocess.Popen([sys.executable, "-m", "bulkhead", "credit", "--lock",
                                   r["key"], "--json"], env=cli.env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for r in rows]
        outcomes = []
        for proc in procs:
            out, err = proc.communicate(timeout=90)
            # The sending layer may log a re-priced or re-synced send (a warning line); the
            # command itself must succeed with a typed outcome, no error.
            assert proc.returncode == 0 and "error:" not in err, out + err
            outcomes.append(json.loads(out)["outcome"])
        assert outcomes == ["credited"] * len(rows), outcomes
    finally:
        fleet.restart("relayer")
    credited(cli, txs, fleet)
    wait_for(lambda: client.xlen("bh:ready") <= backlog, 60, "the relayer to clear its backlog")
    events = venue(devnet).events.Credited().get_logs(from_block=0)
    keys = [(e.args.srcChainId, e.args.lockId) for e in events]
    assert len(keys) == len(set(keys))


def test_lim_01_cap_large_transfer_delay_and_refusal(devnet: dict[str, Any], cli: Cli,
                                                     fleet: WorkerFleet) -> None:
    """Cap 10 WETH per window, large above 4 WETH with a delay: the large one is held, small
    ones are credited until the window is full and then held (not dropped), one above the
    whole cap is refused; after the delay and the window roll, the held ones are credited."""
    from chains.evm.sender import TxSender
    from devnet.keys import anvil_key
    from tests.support.chain import rpc

    a, b = devnet["chains"]["evm-a"], devnet["chains"]["evm-b"]
    weth = bytes.fromhex(address_to_bytes32(a["assets"]["WETH"]["address"])[2:])

    async def set_limit() -> None:  # the venue owner (devnet deployer) sets the lane's limits
        sender = await TxSender.connect(b["rpc_urls"][0], anvil_key(0))
        try:
            contract = sender.w3.eth.contract(address=b["contracts"]["venue"],
                                              abi=load_artifact("IsolatedMarginVenue").abi)
            await sender.wait(await sender.send(contract.functions.setRateLimit(
                31337, weth, 10 * 10**18, 4 * 10**18, 600)))
        finally:
            await sender.aclose()

    import asyncio

    asyncio.run(set_limit())
    # Start from a fresh window so earlier WETH credits don't count against the cap.
    stamp = int(rpc(b["rpc_urls"][0], "eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    rpc(b["rpc_urls"][0], "evm_setNextBlockTimestamp", stamp - stamp % 86400 + 86400 + 10)
    rpc(b["rpc_urls"][0], "evm_mine")
    amounts = {"large": "5", "s1": "2", "s2": "2", "s3": "3", "s4": "3", "late": "1",
               "huge": "11"}
    txs = {}
    for name, amount in amounts.items():
        txs[name] = cli.json("lock", "--chain", "evm-a", "--asset", "WETH", "--amount", amount,
                             "--position", key_for(devnet, "alice", f"lim01-{name}".encode()))

    def states() -> dict[str, str]:
        by_tx = {r["tx_id"]: r["state"] for r in cli.json("locks", "--no-sync")}
        return {n: by_tx.get(t["tx_id"], "-") for n, t in txs.items()}

    want = {"large": "held", "s1": "credited", "s2": "credited", "s3": "credited",
            "s4": "credited", "late": "held", "huge": "refused"}
    try:
        wait_for(lambda: states() == want, 90, f"limits applied: {want}")
    except AssertionError:
        print(states())
        raise
    rpc(b["rpc_urls"][0], "evm_increaseTime", 86400)
    rpc(b["rpc_urls"][0], "evm_mine")
    want.update(large="credited", late="credited")
    wait_for(lambda: states() == want, 60, "held credits released after delay and window roll")
