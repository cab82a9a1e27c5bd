"""The API against a real devnet and Redis: a real lock on each chain kind, seen by a real
watcher pass, read back through every endpoint and ``/metrics``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from bulkhead.api import ApiOptions, create_app
from shared.settings import load_settings
from tests.support.chain import key_for
from tests.support.stack import Cli, wait_for

pytestmark = [pytest.mark.integration]

CHAINS = {"evm-a", "evm-b", "solana"}


def get(api_url: str, path: str, **params: Any) -> Any:
    r = httpx.get(f"{api_url}{path}", params=params, timeout=15)
    assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
    return r.json()


@pytest.fixture(scope="module")
def locked(devnet: dict[str, Any], cli: Cli, api_url: str) -> dict[str, dict[str, Any]]:
    """One lock on evm-a (alice) and one on solana (bob), followed to finalized by watcher
    passes (``bulkhead watch --once``) and observed through the API."""
    evm = cli.json("lock", "--chain", "evm-a", "--asset", "USDC", "--amount", "125.5",
                   "--position", key_for(devnet, "alice", b"api-evm"))
    sol = cli.json("lock", "--chain", "solana", "--asset", "USDC", "--amount", "2.5",
                   "--position", key_for(devnet, "bob", b"api-sol"), "--trader", "bob")
    txs = {evm["tx_id"]: "evm-a", sol["tx_id"]: "solana"}

    def final() -> dict[str, dict[str, Any]] | None:
        cli.run("watch", "--once")
        rows = {r["tx_id"]: r for r in get(api_url, "/api/v1/locks")["items"]
                if r["tx_id"] in txs}
        return ({txs[t]: r for t, r in rows.items()}
                if len(rows) == 2 and all(r["state"] == "finalized" for r in rows.values())
                else None)

    return wait_for(final, 90, "both locks finalized in the API")  # type: ignore[no-any-return]


def test_healthz_and_readyz_with_every_chain(api_url: str) -> None:
    assert get(api_url, "/healthz") == {"status": "ok"}
    ready = wait_for(lambda: httpx.get(f"{api_url}/readyz", timeout=15).status_code == 200, 30,
                     "readyz 200")
    assert ready
    body = get(api_url, "/readyz")
    assert body["ready"] and body["redis"]["ok"]
    assert {c["chain"] for c in body["chains"]} == CHAINS
    assert all(c["ok"] and c["lag"] <= c["max_lag"] for c in body["chains"])


def test_chains_report_heads_and_lag_and_move(api_url: str) -> None:
    first = {c["chain"]: c for c in get(api_url, "/api/v1/chains")["items"]}
    assert set(first) == CHAINS
    for c in first.values():
        assert c["reachable"], c
        assert c["finalized"] <= c["safe"] <= c["latest"]
        assert c["lag"] == c["latest"] - c["finalized"]

    def moved() -> bool:
        now = {c["chain"]: c for c in get(api_url, "/api/v1/chains")["items"]}
        return all(now[k]["latest"] > first[k]["latest"] for k in CHAINS)

    assert wait_for(moved, 15, "every head to advance")


def test_locks_filters_and_lookup(api_url: str, devnet: dict[str, Any],
                                  locked: dict[str, dict[str, Any]]) -> None:
    evm, sol = locked["evm-a"], locked["solana"]
    assert (evm["amount"], evm["amount_display"], evm["decimals"]) == ("125500000", "125.5", 6)
    assert sol["amount"] == "2500000"
    states = [t["state"] for t in evm["transitions"]]
    assert states[0] == "seen" and states[-1] == "finalized"
    alice = devnet["devnet"]["traders"]["alice"]["evm_address"]
    bob = devnet["devnet"]["traders"]["bob"]["evm_address"]
    mine = get(api_url, "/api/v1/locks", owner=alice)["items"]
    assert evm["key"] in {r["key"] for r in mine} and sol["key"] not in {r["key"] for r in mine}
    by_chain = get(api_url, "/api/v1/locks", chain="900001", state="finalized")["items"]
    assert sol["key"] in {r["key"] for r in by_chain} and all(r["chain"] == "solana"
                                                              for r in by_chain)
    assert [r["key"] for r in get(api_url, "/api/v1/locks",
                                  position=evm["position_key"])["items"]] == [evm["key"]]
    assert get(api_url, f"/api/v1/locks/{sol['key']}")["beneficiary"] == bob
    assert evm["signatures"] == {"have": 0, "need": 3}  # no attesters run in this module
    page = get(api_url, "/api/v1/locks", limit=1)
    rest = get(api_url, "/api/v1/locks", cursor=page["next"])
    assert page["items"][0]["key"] not in {r["key"] for r in rest["items"]}
    assert httpx.get(f"{api_url}/api/v1/locks", params={"chain": "0x1"}).status_code == 422


def test_attestations_and_pipeline(api_url: str, locked: dict[str, dict[str, Any]]) -> None:
    items = {i["key"]: i for i in get(api_url, "/api/v1/attestations")["items"]}
    for row in locked.values():
        item = items[row["key"]]
        assert (item["have"], item["need"], item["quorum"], item["signers"]) == (0, 3, False, [])
    pipeline = get(api_url, "/api/v1/pipeline")
    assert pipeline["states"]["finalized"] >= 2
    assert pipeline["chains"]["evm-a"]["finalized"] >= 1


def test_positions_and_liquidations_are_empty_but_valid(api_url: str) -> None:
    # nothing is credited without the bridge's workers: both lists are empty, not errors
    assert get(api_url, "/api/v1/positions") == {"items": [], "next": None}
    assert get(api_url, "/api/v1/liquidations") == {"items": [], "next": None}


def _families(api_url: str) -> dict[str, Any]:
    r = httpx.get(f"{api_url}/metrics", timeout=15)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def test_metrics_from_redis_and_chains(api_url: str, devnet: dict[str, Any],
                                       locked: dict[str, dict[str, Any]]) -> None:
    families = _families(api_url)
    queues = {s.labels["queue"]: s.value for s in families["bulkhead_queue_depth"].samples}
    assert set(queues) == {"watch.evm-a", "watch.evm-b", "watch.solana", "attest.att-1",
                           "attest.att-2", "attest.att-3", "attest.att-4", "relay.evm-b",
                           "reconcile", "risk", "liquidate.evm-b", "account"}
    locks = {(s.labels["chain"], s.labels["state"]): s.value
             for s in families["bulkhead_locks"].samples}
    assert locks[("evm-a", "finalized")] >= 1 and locks[("solana", "finalized")] >= 1
    sigs = {s.labels["attester"]: s.value
            for s in families["bulkhead_attester_signatures"].samples}
    assert sigs == {"att-1": 0, "att-2": 0, "att-3": 0, "att-4": 0}
    heads = {(s.labels["chain"], s.labels["finality"]) for s in
             families["bulkhead_chain_head"].samples}
    assert heads == {(c, f) for c in CHAINS for f in ("latest", "safe", "finalized")}
    up = {s.labels["source"]: s.value for s in families["bulkhead_scrape_source_up"].samples}
    assert all(up.values()), up
    assert "bulkhead_liquidations" in families
    assert "bulkhead_risk_screen_duration_seconds" not in families  # absent until written

    client = redis.Redis.from_url(devnet["redis_url"])
    try:
        client.lpush("risk", "queued-message")
        client.hset("bh:risk:last_screen", mapping={"duration_us": 1500, "positions": 12,
                                                    "candidates": 2, "at_ms": 1_700_000_000_000})
        families = _families(api_url)
    finally:
        client.delete("risk", "bh:risk:last_screen")
        client.close()
    assert families["bulkhead_risk_screen_duration_seconds"].samples[0].value == 0.0015
    assert families["bulkhead_risk_screen_candidates"].samples[0].value == 2
    queues = {s.labels["queue"]: s.value for s in families["bulkhead_queue_depth"].samples}
    assert queues["risk"] == 1


@pytest.fixture(scope="module")
def strict_client(devnet: dict[str, Any]) -> Iterator[TestClient]:
    """The app in-process, built from settings read the way the CLI reads them, with a finality
    bound no real chain meets on solana."""
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("BULKHEAD_")]:
            mp.delenv(key)
        mp.setenv("BULKHEAD_HOME", str(devnet["home"]))
        mp.setenv("BULKHEAD_CONFIG", str(devnet["home"] / "none.toml"))
        settings = load_settings()
    app = create_app(settings, options=ApiOptions(max_finality_lag={"solana": 0}))
    with TestClient(app) as client:
        yield client


def test_readyz_names_the_chain_behind_its_bound(strict_client: TestClient) -> None:
    deadline = time.monotonic() + 20
    while (r := strict_client.get("/readyz")).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.3)  # solana's finalized lag is never 0 on the devnet
    assert r.status_code == 503, r.text
    chains = {c["chain"]: c for c in r.json()["chains"]}
    assert not chains["solana"]["ok"] and chains["solana"]["max_lag"] == 0
    assert "exceeds 0" in chains["solana"]["error"]
    assert chains["evm-a"]["ok"] and chains["evm-b"]["ok"]
