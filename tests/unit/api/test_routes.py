"""The routes over in-memory backends: filters, paging, status codes, metrics content."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from shared.errors import RpcUnavailable
from shared.locks import LockState
from tests.unit.api.conftest import (
    ALICE,
    ATTESTERS,
    POS_A,
    POS_B,
    Backends,
    liquidated,
    position_row,
    record,
    shortfall,
)

BOB = "0x" + "77" * 20


@pytest.fixture
def filled(backends: Backends) -> Backends:
    """Five locks on two chains, two positions (one liquidatable), one liquidation."""
    backends.store.put([
        record(1, LockState.CREDITED, at_ms=1_000, credit_after_ms=4_000),
        record(2, LockState.CREDITED, at_ms=2_000, credit_after_ms=40_000,
               position_key=POS_B, beneficiary=BOB),
        record(3, LockState.FINALIZED, at_ms=3_000),
        record(4, LockState.SEEN, at_ms=4_000, chain="solana"),
        record(5, LockState.DROPPED, at_ms=5_000),
    ])
    key3 = backends.store.all_records()[2].key
    sig = {a["address"]: b"\x01" for a in ATTESTERS[:2]}
    backends.pool.posted[key3] = {"0xd1": sig, "0xd2": {ATTESTERS[3]["address"]: b"\x02"}}
    backends.venue.rows = [position_row(POS_A), position_row(POS_B, ratio="0.9",
                                                              liquidatable=True)]
    a = bytes.fromhex(POS_A[2:])
    backends.venue.events = [liquidated(a, 10, "0xaa"), shortfall(a, 10, "0xaa", 7),
                             liquidated(a, 20, "0xbb", full=False)]
    backends.venue.final_height = 15
    for chain in backends.chains.values():
        for _ in range(10):
            chain.mine()
    return backends


def _states(body: dict) -> list[str]:  # type: ignore[type-arg]
    return [i["state"] for i in body["items"]]


@pytest.mark.usefixtures("filled")
def test_locks_newest_first_with_filters(client: TestClient) -> None:
    assert _states(client.get("/api/v1/locks").json()) == [
        "dropped", "seen", "finalized", "credited", "credited"]
    assert _states(client.get("/api/v1/locks?chain=solana").json()) == ["seen"]
    assert _states(client.get("/api/v1/locks?chain=31337&state=credited").json()) == [
        "credited", "credited"]
    assert len(client.get("/api/v1/locks", params={"position": POS_B}).json()["items"]) == 1
    bob = client.get("/api/v1/locks", params={"owner": BOB}).json()["items"]
    assert [i["beneficiary"] for i in bob] == [BOB]
    source_owner = "0x" + "00" * 12 + "22" * 20  # make_event's owner, as a 32-byte id
    assert len(client.get("/api/v1/locks", params={"owner": source_owner}).json()["items"]) == 5


@pytest.mark.usefixtures("filled")
def test_locks_paging_by_cursor_and_offset(client: TestClient) -> None:
    first = client.get("/api/v1/locks?limit=2").json()
    second = client.get("/api/v1/locks", params={"limit": 2, "cursor": first["next"]}).json()
    third = client.get("/api/v1/locks", params={"limit": 2, "cursor": second["next"]}).json()
    keys = [i["key"] for p in (first, second, third) for i in p["items"]]
    assert len(keys) == len(set(keys)) == 5 and third["next"] is None
    by_offset = client.get("/api/v1/locks?limit=2&offset=2").json()
    assert [i["key"] for i in by_offset["items"]] == [i["key"] for i in second["items"]]


@pytest.mark.usefixtures("filled")
def test_lock_by_key_and_amounts_are_strings(client: TestClient) -> None:
    listed = client.get("/api/v1/locks?state=finalized").json()["items"][0]
    r = client.get(f"/api/v1/locks/{listed['key'].upper().replace('0X', '0x')}")
    assert r.status_code == 200 and r.json()["key"] == listed["key"]
    assert r.json()["amount"] == "3000000" and r.json()["signatures"] == {"have": 3, "need": 3}
    missing = client.get("/api/v1/locks/31337:0x" + "11" * 32 + ":0x" + "99" * 32)
    assert missing.status_code == 404 and "no lock" in missing.json()["detail"]


@pytest.mark.usefixtures("filled")
def test_attestations_count_one_digest_only(client: TestClient) -> None:
    items = {i["state"]: i for i in client.get("/api/v1/attestations").json()["items"]}
    assert set(items) == {"finalized", "credited"}  # seen/dropped locks are not signable
    fin = items["finalized"]
    assert (fin["have"], fin["need"], fin["quorum"], fin["digests"]) == (2, 3, False, 2)
    assert {s["name"] for s in fin["signers"]} == {"att-1", "att-2", "att-4"}


@pytest.mark.usefixtures("filled")
def test_pipeline_counts(client: TestClient) -> None:
    body = client.get("/api/v1/pipeline").json()
    assert body["total"] == 5 and body["states"]["credited"] == 2
    assert body["chains"]["solana"]["seen"] == 1


@pytest.mark.usefixtures("filled")
def test_positions_filters_and_owner(client: TestClient) -> None:
    rows = client.get("/api/v1/positions").json()["items"]
    assert {r["position"]: r["owner"] for r in rows} == {POS_A: ALICE, POS_B: BOB}
    liq = client.get("/api/v1/positions?liquidatable=true").json()["items"]
    assert [r["position"] for r in liq] == [POS_B]
    assert [r["position"] for r in client.get(
        "/api/v1/positions", params={"owner": ALICE.upper().replace("0X", "0x")}
    ).json()["items"]] == [POS_A]
    padded = "0x" + "00" * 12 + BOB[2:]
    assert [r["position"] for r in client.get(
        "/api/v1/positions", params={"owner": padded}).json()["items"]] == [POS_B]
    assert client.get("/api/v1/positions", params={"owner": "0x" + "ab" * 32}).json()[
        "items"] == []


@pytest.mark.usefixtures("filled")
def test_liquidations_newest_first_with_shortfall(client: TestClient) -> None:
    items = client.get("/api/v1/liquidations").json()["items"]
    assert [(i["height"], i["full"], i["shortfall_usd_e18"], i["final"]) for i in items] == [
        (20, False, "0", False), (10, True, "7", True)]
    page = client.get("/api/v1/liquidations?limit=1").json()
    rest = client.get("/api/v1/liquidations", params={"cursor": page["next"]}).json()
    assert rest["items"][0]["height"] == 10 and rest["next"] is None
    assert client.get("/api/v1/liquidations", params={"position": POS_B}).json()["items"] == []


def test_venue_down_is_503_with_reason(client: TestClient, backends: Backends) -> None:
    backends.venue.fail = RpcUnavailable("evm-b", "http://127.0.0.1:1", "refused")
    for path in ("/api/v1/positions", "/api/v1/liquidations"):
        r = client.get(path)
        assert r.status_code == 503 and "evm-b" in r.json()["detail"], r.text
    metrics = client.get("/metrics").text
    assert 'bulkhead_scrape_source_up{source="venue"} 0.0' in metrics


@pytest.mark.usefixtures("filled")
def test_chains_and_readyz(client: TestClient, backends: Backends) -> None:
    chains = {c["chain"]: c for c in client.get("/api/v1/chains").json()["items"]}
    assert set(chains) == {"evm-a", "evm-b", "solana"}
    assert chains["evm-a"] | {"error": None} == {
        "chain": "evm-a", "kind": "evm", "chain_id": 31337, "reachable": True, "latest": 10,
        "safe": 8, "finalized": 6, "lag": 4, "error": None}
    assert client.get("/readyz").status_code == 200
    backends.chains["solana"].final_lag = 9  # the app's bound for solana is 8
    r = client.get("/readyz")
    assert r.status_code == 503, r.text
    detail = {c["chain"]: c for c in r.json()["chains"]}
    assert not detail["solana"]["ok"] and "exceeds 8" in detail["solana"]["error"]
    assert detail["evm-a"]["ok"] and not r.json()["ready"]


def test_unreachable_chain_is_reported_not_guessed(client: TestClient,
                                                   backends: Backends) -> None:
    async def dead(*_: object) -> None:
        raise RpcUnavailable("evm-a", "http://127.0.0.1:1", "refused")

    backends.chains["evm-a"].head = dead  # type: ignore[method-assign]
    row = next(c for c in client.get("/api/v1/chains").json()["items"] if c["chain"] == "evm-a")
    assert not row["reachable"] and row["latest"] is None and "refused" in row["error"]
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.usefixtures("filled")
def test_metrics_families(client: TestClient) -> None:
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    hist = {(s.name, s.labels.get("le")): s.value
            for s in families["bulkhead_lock_to_credit_seconds"].samples}
    assert hist[("bulkhead_lock_to_credit_seconds_count", None)] == 2
    assert hist[("bulkhead_lock_to_credit_seconds_bucket", "5.0")] == 1  # 4 s
    assert hist[("bulkhead_lock_to_credit_seconds_bucket", "45.0")] == 2  # and 40 s
    assert hist[("bulkhead_lock_to_credit_seconds_sum", None)] == 44
    liq = {s.labels["full"]: s.value for s in families["bulkhead_liquidations"].samples}
    assert liq == {"true": 1, "false": 1}
    heads = {(s.labels["chain"], s.labels["finality"]): s.value
             for s in families["bulkhead_chain_head"].samples}
    assert heads[("solana", "finalized")] == 6
    lags = {s.labels["chain"]: s.value for s in families["bulkhead_chain_finality_lag"].samples}
    assert lags == {"evm-a": 4, "evm-b": 4, "solana": 4}
    assert "bulkhead_risk_screen_duration_seconds" not in families  # no Redis: absent, not 0


def test_dashboard_is_served_without_external_resources(client: TestClient) -> None:
    assert client.get("/", follow_redirects=False).headers["location"] == "/dashboard"
    html = client.get("/dashboard").text
    for marker in ('id="chains-table"', 'id="positions-table"', 'id="locks-table"',
                   'id="margin-chart"', 'id="liquidations-table"', 'id="pipeline"',
                   'id="marks-table"'):
        assert marker in html
    for asset in ("/static/dashboard.js", "/static/dashboard.css"):
        body = client.get(asset).text
        assert "http://" not in body and "https://" not in body
    assert "http" not in html.replace('href="/', "")
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/dashboard.html").status_code == 404


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    paths = set(client.get("/openapi.json").json()["paths"])
    assert paths == {"/healthz", "/readyz", "/metrics", "/api/v1/locks", "/api/v1/locks/{key}",
                     "/api/v1/pipeline", "/api/v1/attestations", "/api/v1/chains",
                     "/api/v1/positions", "/api/v1/liquidations", "/api/v1/deadletters",
                     "/api/v1/operations", "/api/v1/marks"}
    assert client.get("/docs").status_code == 200
