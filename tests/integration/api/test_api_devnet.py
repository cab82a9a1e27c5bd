"""The API against a real devnet and Redis: a real lock on each chain kind, seen by a real
watcher pass, and a real published price, read back through every endpoint, ``/metrics`` and
the CLI."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from eth_utils.address import is_checksum_address
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from bulkhead.api import ApiOptions, create_app
from shared.settings import Settings, load_settings
from tests.integration.api.apiproc import free_port
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


def _consistent(item: dict[str, Any]) -> None:
    """A mark exists exactly when enough sources are valid, at either max age."""
    for at in (item["user"], item["liquidation"]):
        assert (at["mark_e8"] is not None) == at["quorum"] == (
            at["valid_sources"] >= item["min_sources"]), item
        assert at["valid_sources"] <= len(item["sources"])


def test_marks_show_every_source_of_the_published_price(api_url: str, cli: Cli) -> None:
    published = cli.json("price", "--market", "ETH-USD", "--set", "2999.5")
    price, at = str(published["price_e8"]), published["publish_time"]

    def seen() -> dict[str, Any] | None:
        items = {i["market"]: i for i in get(api_url, "/api/v1/marks")["items"]}
        return items if items["ETH-USD"]["user"]["mark_e8"] == price else None

    items = wait_for(seen, 30, "the published price as the ETH-USD mark")
    assert set(items) == {"ETH-USD", "USDC"}  # every oracle name the devnet prices
    eth = items["ETH-USD"]
    mark = {"mark_e8": price, "publish_time": at, "valid_sources": 3, "quorum": True}
    assert eth["user"] == {"max_age_s": 60, **mark}
    assert eth["liquidation"] == {"max_age_s": 600, **mark}
    assert eth["min_sources"] == 2 and eth["chain_time"] >= at
    assert [(s["kind"], s["price_e8"], s["time_s"], s["reason"], s["reason_liquidation"],
             s["deviation_ppm"]) for s in eth["sources"]] == [
        ("chainlink", price, at, "ok", "ok", 0), ("chainlink", price, at, "ok", "ok", 0),
        ("pyth", price, at, "ok", "ok", 0)]
    assert all(s["age_s"] == eth["chain_time"] - at >= 0 for s in eth["sources"])
    assert len({s["source"] for s in eth["sources"]}) == 3
    assert all(is_checksum_address(s["feed"]) for s in eth["sources"])
    usdc = items["USDC"]
    assert [s["price_e8"] for s in usdc["sources"]] == ["100000000"] * 3  # the devnet's seed
    assert all(s["age_s"] >= 0 for s in usdc["sources"])
    for item in items.values():
        _consistent(item)

    # the CLI prints the same rows; ``positions --json`` keeps its shape, the table shows marks
    rows = {r["market"]: r for r in cli.json("marks")}
    assert set(rows) == set(items) and rows["ETH-USD"]["user"] == eth["user"]
    assert [s["feed"] for s in rows["ETH-USD"]["sources"]] == [
        s["feed"] for s in eth["sources"]]
    listed = cli.run("positions", "--json")
    assert json.loads(listed.stdout) == [] and listed.stderr == ""
    table = cli.run("positions").stdout
    assert "marks (2)" in table and "2999.5 (60 s)" in table


def _by_source(family: Any) -> dict[tuple[str, str, str], float]:
    return {(s.labels["market"], s.labels["source"], s.labels["kind"]): s.value
            for s in family.samples}


def test_metrics_report_every_mark_source(api_url: str, cli: Cli) -> None:
    cli.json("price", "--market", "ETH-USD", "--set", "3001")

    def fresh() -> dict[str, Any] | None:
        families = _families(api_url)
        valid = families.get("bulkhead_mark_valid_sources")
        counts = {s.labels["market"]: s.value for s in valid.samples} if valid else {}
        return families if counts.get("ETH-USD") == 3 else None

    families = wait_for(fresh, 30, "three valid ETH-USD sources on /metrics")
    up = {s.labels["source"]: s.value for s in families["bulkhead_scrape_source_up"].samples}
    assert up["marks"] == 1
    ages = _by_source(families["bulkhead_mark_source_age_seconds"])
    eth = {k: v for k, v in ages.items() if k[0] == "ETH-USD"}
    assert sorted(kind for _, _, kind in eth) == ["chainlink", "chainlink", "pyth"]
    assert all(0 <= v <= 60 for v in eth.values()), eth
    assert {k[0] for k in ages} == {"ETH-USD", "USDC"}
    deviation = _by_source(families["bulkhead_mark_source_deviation_ppm"])
    assert {k: v for k, v in deviation.items() if k[0] == "ETH-USD"} == dict.fromkeys(eth, 0)
    valid = _by_source(families["bulkhead_mark_source_valid"])
    assert {k: v for k, v in valid.items() if k[0] == "ETH-USD"} == dict.fromkeys(eth, 1)

    def per_market(name: str) -> dict[str, float]:
        return {s.labels["market"]: s.value for s in families[name].samples}

    assert per_market("bulkhead_mark_min_sources") == {"ETH-USD": 2, "USDC": 2}
    counts, below = per_market("bulkhead_mark_valid_sources"), per_market(
        "bulkhead_mark_below_quorum")
    assert below["ETH-USD"] == 0
    assert below["USDC"] == (1 if counts["USDC"] < 2 else 0)  # stale after 60 s unfed


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


def _settings(devnet: dict[str, Any]) -> Settings:
    """The devnet's settings, read the way the CLI reads them."""
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("BULKHEAD_")]:
            mp.delenv(key)
        mp.setenv("BULKHEAD_HOME", str(devnet["home"]))
        mp.setenv("BULKHEAD_CONFIG", str(devnet["home"] / "none.toml"))
        return load_settings()


@pytest.fixture(scope="module")
def strict_client(devnet: dict[str, Any]) -> Iterator[TestClient]:
    """The app in-process, built from settings read the way the CLI reads them, with a finality
    bound no real chain meets on solana."""
    app = create_app(_settings(devnet), options=ApiOptions(max_finality_lag={"solana": 0}))
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


def test_marks_of_an_unreachable_venue_chain_are_503_and_source_down(
        devnet: dict[str, Any]) -> None:
    """The venue chain's RPC is a closed port: the marks are refused, not guessed, and
    ``/metrics`` says their source is down instead of reporting zeros."""
    settings = _settings(devnet)
    dead = settings.chains["evm-b"].model_copy(
        update={"rpc_urls": [f"http://127.0.0.1:{free_port()}"]})
    app = create_app(settings.model_copy(update={"chains": {**settings.chains, "evm-b": dead}}),
                     options=ApiOptions(read_timeout_s=2))
    with TestClient(app) as client:
        r = client.get("/api/v1/marks")
        assert r.status_code == 503 and "evm-b" in r.json()["detail"], r.text
        families = {f.name: f for f in text_string_to_metric_families(
            client.get("/metrics").text)}
    up = {s.labels["source"]: s.value for s in families["bulkhead_scrape_source_up"].samples}
    assert up["marks"] == 0 and up["chain:evm-a"] == 1
    assert not [name for name in families if name.startswith("bulkhead_mark_")]
