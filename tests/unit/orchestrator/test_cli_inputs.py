"""INP-02 for the CLI: malformed values exit non-zero naming the field, before any I/O.

The manifest here points at a closed port: a refusal must come from validation, never from a
failed connection (which would exit 1, not 2)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bulkhead.cli.main import app

VENUE = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
KEY = "0x" + "ab" * 32


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / "devnet").mkdir(parents=True)
    closed = "http://127.0.0.1:9"
    chains = {
        "evm-a": {"kind": "evm", "chain_id": 31337, "rpc_urls": [closed],
                  "vaults": [VENUE], "assets": {"USDC": {"address": VENUE, "decimals": 6}}},
        "evm-b": {"kind": "evm", "chain_id": 31338, "rpc_urls": [closed], "vaults": [VENUE],
                  "contracts": {"venue": VENUE}},
        "solana": {"kind": "solana", "chain_id": 900001, "rpc_urls": [closed],
                   "vaults": ["11111111111111111111111111111111"],
                   "assets": {"USDC": {"address": "11111111111111111111111111111111",
                                       "decimals": 6}}},
    }
    trader = {"evm_address": ALICE, "evm_key": KEY, "solana_pubkey": "x",
              "solana_secret": [1] * 64, "solana_token_accounts": {}}
    (home / "devnet" / "manifest.json").write_text(json.dumps(
        {"chains": chains, "redis_url": "redis://127.0.0.1:9/0",
         "devnet": {"traders": {"alice": trader}}}))
    monkeypatch.setenv("BULKHEAD_HOME", str(home))
    monkeypatch.setenv("BULKHEAD_CONFIG", str(tmp_path / "none.toml"))
    return home


GOOD = {"--chain": "evm-a", "--asset": "USDC", "--amount": "125.5", "--position": KEY,
        "--beneficiary": ALICE}


def flags(**override: str) -> list[str]:
    return [part for k, v in GOOD.items() for part in (k, override.get(k, v))]


@pytest.mark.parametrize(
    ("flag", "value", "field"),
    [
        ("--amount", "-1", "amount"), ("--amount", "0", "amount"), ("--amount", "1e18", "amount"),
        ("--amount", "NaN", "amount"), ("--amount", "1.0000001", "amount"),
        ("--amount", "12,5", "amount"),
        ("--beneficiary", "0x0000000000000000000000000000000000000000", "beneficiary"),
        ("--beneficiary", ALICE[:-1] + "9", "beneficiary"),
        ("--beneficiary", ALICE.replace("C", "c", 1), "beneficiary"),
        ("--position", "0x12", "position"), ("--position", "0x" + "00" * 32, "position"),
        ("--chain", "evm-z", "chain"), ("--chain", "evm-b", "chain"),
        ("--asset", "DOGE", "asset"),
    ],
)
def test_lock_refuses_and_names_field(home: Path, flag: str, value: str, field: str) -> None:
    args = ["lock", *flags(**{flag: value})]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert f"{field}:" in result.output


def test_solana_amount_above_u64_refused(home: Path) -> None:
    args = ["lock", "--chain", "solana", "--asset", "USDC", "--amount", str(2**64),
            "--base-units", "--position", KEY, "--beneficiary", ALICE]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "amount:" in result.output


def test_num_01_amount_past_the_venue_width_refused(home: Path) -> None:
    result = CliRunner().invoke(app, ["lock", *flags(**{"--amount": str(2**128)}),
                                      "--base-units"])
    assert result.exit_code == 2 and "uint128" in result.output


def test_unknown_trader_refused(home: Path) -> None:
    args = ["lock", *flags(), "--trader", "mallory"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "trader:" in result.output


def test_valid_input_reaches_the_chain_and_fails_there(home: Path) -> None:
    """Control case: the same command with valid values passes validation (exit 1: no node)."""
    result = CliRunner().invoke(app, ["lock", *flags()])
    assert result.exit_code == 1, result.output
    assert "error:" in result.output and "127.0.0.1:9" in result.output


def test_bad_settings_refuse_to_start(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BULKHEAD_REDIS_URL", "not-a-url")
    result = CliRunner().invoke(app, ["locks", "--json"])
    assert result.exit_code == 2 and "redis_url" in result.output
