"""Foundation end to end: devnet up, locks on evm-a and solana through the CLI, watchers move
them to finalized, `locks` reports them; unattributed transfers reported, never attributed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chains.solana.locker import transfer_with_memo_text, transfer_without_memo
from devnet.process import pid_alive
from tests.support.chain import key_for
from tests.support.stack import Cli, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]



def test_status_reports_every_chain(cli: Cli) -> None:
    rows = {r["chain"]: r for r in cli.json("devnet", "status")}
    assert set(rows) == {"evm-a", "evm-b", "solana"}
    for row in rows.values():
        assert row["reachable"], row
        assert row["final"] <= row["safe"] <= row["latest"]
        assert row["lag"] == row["latest"] - row["final"]


def test_locks_on_both_kinds_reach_finalized(devnet: dict[str, Any], cli: Cli) -> None:
    alice_key = key_for(devnet, "alice", b"e2e-evm")
    bob_key = key_for(devnet, "bob", b"e2e-sol")
    evm = cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", "125.5",
                   "--position", alice_key)
    sol = cli.json("lock", "--chain", "solana", "--asset", "USDC", "--amount", "0.000001",
                   "--position", bob_key, "--trader", "bob")
    assert evm["amount"] == "125500000" and sol["amount"] == "1"

    def both_final() -> list[dict[str, Any]] | None:
        rows = [r for r in cli.json("locks") if r["tx_id"] in (evm["tx_id"], sol["tx_id"])]
        return rows if len(rows) == 2 and all(r["state"] == "finalized" for r in rows) else None

    rows = {r["chain"]: r for r in wait_for(both_final, 60, "both locks finalized")}
    alice = devnet["devnet"]["traders"]["alice"]["evm_address"]
    bob = devnet["devnet"]["traders"]["bob"]["evm_address"]
    assert (rows["evm-a"]["amount"], rows["evm-a"]["position_key"], rows["evm-a"]["beneficiary"]) \
        == ("125500000", alice_key, alice)
    assert (rows["solana"]["amount"], rows["solana"]["position_key"],
            rows["solana"]["beneficiary"]) == ("1", bob_key, bob)
    for row in rows.values():
        states = [t["state"] for t in row["transitions"]]
        assert states[0] == "seen" and states[-1] == "finalized"
        heights = [t["height"] for t in row["transitions"]]
        assert heights == sorted(heights) and heights[0] == row["height"]


def test_unattributed_solana_transfers_reported_not_attributed(devnet: dict[str, Any],
                                                              cli: Cli) -> None:
    sol = devnet["chains"]["solana"]
    trader = devnet["devnet"]["traders"]["alice"]
    keypair = Keypair.from_bytes(bytes(trader["solana_secret"]))
    source = Pubkey.from_string(trader["solana_token_accounts"]["USDC"])
    url = sol["rpc_urls"][0]
    common: dict[str, Any] = {
        "trader": keypair, "trader_token_account": source,
        "dest_token_account": Pubkey.from_string(sol["vaults"][0]),
        "mint": Pubkey.from_string(sol["assets"]["USDC"]["address"]), "decimals": 6}

    async def send() -> tuple[str, str]:
        bare = await transfer_without_memo(url, amount=7, **common)
        bad = await transfer_with_memo_text(url, amount=9, memo="bulkhead:v1:lock:nope", **common)
        return bare, bad

    bare, bad = asyncio.run(send())

    def seen() -> list[dict[str, Any]] | None:
        rows = [r for r in cli.json("locks", "--chain", "solana") if r["tx_id"] in (bare, bad)]
        return rows if len(rows) == 2 else None

    rows = {r["tx_id"]: r for r in wait_for(seen, 30, "unattributed transfers listed")}
    assert rows[bare]["amount"] == "7" and rows[bad]["amount"] == "9"
    for row in rows.values():
        assert row["attributed"] is False and row["unattributed_reason"]
        assert row["position_key"] == "0x" + "00" * 32
    table = cli.run("locks", "--no-sync", "--chain", "solana").stdout
    assert "UNATTRIBUTED" in table


def test_redis_loss_is_rebuilt_from_the_chains(devnet: dict[str, Any], cli: Cli) -> None:
    """RT-04 for the watchers: after FLUSHALL the same locks come back in the same states."""
    key = key_for(devnet, "alice", b"e2e-flush")
    cli.json("lock", "--chain", "evm-a", "--asset", "WETH", "--amount", "0.5", "--position", key)

    def final_rows() -> dict[str, str] | None:
        rows = {r["key"]: r["state"] for r in cli.json("locks")}
        return rows if rows and all(s == "finalized" for s in rows.values() if s != "dropped") \
            and any(v == "finalized" for v in rows.values()) else None

    before = wait_for(final_rows, 60, "locks finalized")
    redis.Redis.from_url(devnet["redis_url"]).flushall()
    after = {r["key"]: r["state"] for r in cli.json("locks")}
    assert after == before


def test_devnet_up_is_refused_while_running_and_down_stops_everything(cli: Cli,
                                                                      tmp_path: Any) -> None:
    own = Cli(tmp_path / "own")
    up = own.json("devnet", "up", "--slot-ms", "200")
    assert set(up["chains"]) == {"evm-a", "evm-b", "solana"} and up["ready_s"] > 0
    again = own.run("devnet", "up", ok=False)
    assert again.returncode == 1 and "already running" in again.stderr
    import json as _json

    procs = _json.loads((tmp_path / "own" / "devnet" / "processes.json").read_text())
    pids = [int(p["pid"]) for p in procs.values()]
    assert len(pids) == 4 and all(pid_alive(p) for p in pids)
    out = own.run("devnet", "down").stdout
    assert "evm-a" in out and "solana" in out
    assert not any(pid_alive(p) for p in pids)
