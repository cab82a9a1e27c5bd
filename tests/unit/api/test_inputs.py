"""INP-02 over every endpoint's parameters: each bad value is a 422 whose body names the
parameter, and nothing else about the request matters. Unknown and repeated parameters are
refused the same way, so a typo never silently widens a filter."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from bulkhead.api.paging import encode_cursor

CHECKSUMMED = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
BAD_CHECKSUM = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"
VALID_CURSOR = {"/api/v1/locks": encode_cursor((1, "k")),
                "/api/v1/attestations": encode_cursor((1, "k")),
                "/api/v1/positions": encode_cursor(("0x",)),
                "/api/v1/liquidations": encode_cursor((1, 2))}
LISTS = ["/api/v1/locks", "/api/v1/attestations", "/api/v1/positions", "/api/v1/liquidations"]

PAGING = [
    ("limit", "0"), ("limit", "501"), ("limit", "-1"), ("limit", "1e18"), ("limit", "NaN"),
    ("limit", "inf"), ("limit", "1.0"), ("limit", "1.5"), ("limit", "+5"), ("limit", "1_0"),
    ("limit", " 5"), ("limit", "0x10"), ("limit", ""), ("limit", "99999999999999999999"),
    ("offset", "-1"), ("offset", "1e3"), ("offset", "NaN"), ("offset", "2.0"),
    ("offset", "1000000001"), ("cursor", "not-a-cursor!"), ("cursor", "W10"),
    ("cursor", "x" * 600),
]
BYTES32 = [
    "0x" + "00" * 32, "0x" + "zz" * 32, "0x" + "ab" * 31, "ab" * 32, "0x" + "ab" * 33, "1e18",
    "NaN", "-1", "",
]
OWNERS = [
    "0x" + "00" * 20, BAD_CHECKSUM, "0x" + "zz" * 20, "0x" + "ab" * 19, "0x" + "00" * 32,
    "1e18", "NaN", "-1", "0x1",
]
CHAINS = ["0x1", "0", "-1", "1e18", "NaN", "1.5", "18446744073709551616", "EVM-A", "evm_a", ""]

CASES = (
    [(path, name, value) for path in LISTS for name, value in PAGING]
    + [(path, "position", v) for path in ("/api/v1/locks", "/api/v1/attestations",
                                          "/api/v1/liquidations") for v in BYTES32]
    + [(path, "owner", v) for path in ("/api/v1/locks", "/api/v1/positions") for v in OWNERS]
    + [(path, "chain", v) for path in ("/api/v1/locks", "/api/v1/attestations") for v in CHAINS]
    + [(path, "state", v) for path in ("/api/v1/locks", "/api/v1/attestations")
       for v in ("credit", "CREDITED", "1", "")]
    + [("/api/v1/positions", "liquidatable", v) for v in ("yes", "1", "True", "", "maybe")]
)


def _names(body: dict) -> set[str]:  # type: ignore[type-arg]
    return {str(e["loc"][-1]) for e in body["detail"]}


@pytest.mark.parametrize(("path", "name", "value"), CASES,
                         ids=[f"{p.rsplit('/', 1)[1]}-{n}={v[:20]!r}" for p, n, v in CASES])
def test_inp_02_bad_value_is_422_naming_the_parameter(client: TestClient, path: str, name: str,
                                                      value: str) -> None:
    r = client.get(path, params={name: value})
    assert r.status_code == 422, r.text
    assert _names(r.json()) == {name}, r.text


@pytest.mark.parametrize("path", LISTS)
def test_inp_02_unknown_parameter_is_refused_by_name(client: TestClient, path: str) -> None:
    r = client.get(path, params={"limt": "5"})
    assert r.status_code == 422 and _names(r.json()) == {"limt"}, r.text


@pytest.mark.parametrize("path", LISTS)
def test_inp_02_repeated_parameter_is_refused(client: TestClient, path: str) -> None:
    r = client.get(f"{path}?limit=1&limit=7")
    assert r.status_code == 422 and _names(r.json()) == {"limit"}, r.text


@pytest.mark.parametrize("path", LISTS)
def test_inp_02_cursor_and_offset_together_are_refused(client: TestClient, path: str) -> None:
    r = client.get(path, params={"cursor": VALID_CURSOR[path], "offset": "1"})
    assert r.status_code == 422 and "offset" in _names(r.json()), r.text


@pytest.mark.parametrize("path", LISTS)
def test_cursor_of_another_list_is_refused(client: TestClient, path: str) -> None:
    other = "WyJ4Il0"  # ["x"]: a positions cursor
    if path == "/api/v1/positions":
        other = "WzEsMl0"  # [1,2]: a liquidations cursor
    r = client.get(path, params={"cursor": other})
    assert r.status_code == 422 and _names(r.json()) == {"cursor"}, r.text


@pytest.mark.parametrize("key", [
    "31337:0x" + "11" * 32, "0x1:0x" + "11" * 32 + ":0x" + "22" * 32,
    "0:0x" + "11" * 32 + ":0x" + "22" * 32, "18446744073709551616:0x" + "11" * 32 + ":0x" + "22" * 32,
    "31337:0x" + "zz" * 32 + ":0x" + "22" * 32, "-1:0x" + "11" * 32 + ":0x" + "22" * 32,
    "1e18:0x" + "11" * 32 + ":0x" + "22" * 32,
])
def test_inp_02_bad_lock_key_is_422_naming_key(client: TestClient, key: str) -> None:
    r = client.get(f"/api/v1/locks/{key}")
    assert r.status_code == 422 and _names(r.json()) == {"key"}, r.text


@pytest.mark.parametrize("chain", ["solana", "900001", "evm-b"])
def test_configured_chains_accepted_by_key_or_decimal_id(client: TestClient, chain: str) -> None:
    assert client.get("/api/v1/locks", params={"chain": chain}).status_code == 200


@pytest.mark.parametrize("chain", ["evm-z", "1"])
def test_unconfigured_chain_is_422_naming_chain(client: TestClient, chain: str) -> None:
    r = client.get("/api/v1/locks", params={"chain": chain})
    assert r.status_code == 422 and _names(r.json()) == {"chain"}, r.text
    assert "configured" in r.text


@pytest.mark.parametrize("owner", [CHECKSUMMED, CHECKSUMMED.lower(), "0x" + CHECKSUMMED[2:].upper(),
                                   "0x" + "ab" * 32])
def test_valid_owners_are_accepted(client: TestClient, owner: str) -> None:
    assert client.get("/api/v1/locks", params={"owner": owner}).status_code == 200
    assert client.get("/api/v1/positions", params={"owner": owner}).status_code == 200
