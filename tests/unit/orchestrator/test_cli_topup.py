"""``bulkhead topup``: malformed values exit 2 naming the field, before any I/O.

The manifest points at a closed port, so a refusal must come from validation, never from a
failed connection (which exits 1)."""

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bulkhead.cli.topup import topup_app

VENUE = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ALICE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TARGET, RESERVE = "0x" + "ab" * 32, "0x" + "cd" * 32

app = typer.Typer()
app.add_typer(topup_app, name="topup")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    (home / "devnet").mkdir(parents=True)
    closed = "http://127.0.0.1:9"
    chains = {"evm-b": {"kind": "evm", "chain_id": 31338, "rpc_urls": [closed],
                        "vaults": [VENUE], "contracts": {"venue": VENUE, "oracle": VENUE}}}
    trader = {"evm_address": ALICE, "evm_key": "0x" + "11" * 32, "solana_pubkey": "x",
              "solana_secret": [1] * 64, "solana_token_accounts": {}}
    (home / "devnet" / "manifest.json").write_text(json.dumps(
        {"chains": chains, "venue_chain": "evm-b", "redis_url": "redis://127.0.0.1:9/0",
         "devnet": {"traders": {"alice": trader}}}))
    monkeypatch.setenv("BULKHEAD_HOME", str(home))
    monkeypatch.setenv("BULKHEAD_CONFIG", str(tmp_path / "none.toml"))
    return home


GOOD = {"--position": TARGET, "--source": RESERVE, "--threshold": "1.5", "--max": "500"}


def set_args(**override: str) -> list[str]:
    return ["topup", "set", *[p for k, v in GOOD.items() for p in (k, override.get(k, v))]]


@pytest.mark.parametrize(
    ("flag", "value", "field"),
    [
        ("--threshold", "1", "threshold"), ("--threshold", "0.9", "threshold"),
        ("--threshold", "1.0000001", "threshold"), ("--threshold", "5000", "threshold"),
        ("--threshold", "abc", "threshold"), ("--max", "0", "max"), ("--max", "-5", "max"),
        ("--position", "0x12", "position"), ("--source", "0x" + "00" * 32, "source"),
        ("--source", TARGET, "source"),
    ],
)
def test_set_refuses_and_names_field(home: Path, flag: str, value: str, field: str) -> None:
    result = CliRunner().invoke(app, set_args(**{flag: value}))
    assert result.exit_code == 2, result.output
    assert f"{field}:" in result.output


@pytest.mark.parametrize("command", ["clear", "show"])
def test_clear_and_show_refuse_a_bad_position(home: Path, command: str) -> None:
    result = CliRunner().invoke(app, ["topup", command, "--position", "0xzz"])
    assert result.exit_code == 2 and "position:" in result.output


def test_valid_input_reaches_the_chain_and_fails_there(home: Path) -> None:
    """Control case: valid values pass validation (exit 1: no node at the closed port)."""
    result = CliRunner().invoke(app, set_args())
    assert result.exit_code == 1, result.output
    assert "error:" in result.output and "127.0.0.1:9" in result.output
