"""Settings: sources, nesting, refusal naming the field."""

import json
from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.settings import load_settings

EVM = {"kind": "evm", "chain_id": 31337, "rpc_urls": ["http://127.0.0.1:8545"],
       "vaults": ["0x" + "11" * 20], "contracts": {"venue": "0x" + "22" * 20}}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(__import__("os").environ):
        if key.startswith("BULKHEAD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("BULKHEAD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BULKHEAD_CONFIG", str(tmp_path / "bulkhead.toml"))
    return tmp_path


def test_manifest_is_the_lowest_source(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = isolated / "home" / "devnet" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"chains": {"evm-b": EVM}, "redis_url": "redis://127.0.0.1:7000/0",
                                    "devnet": {"ignored": True}}))
    assert load_settings().venue() == (31337, "0x" + "22" * 20)
    (isolated / "bulkhead.toml").write_text('redis_url = "redis://127.0.0.1:7001/0"\n')
    assert str(load_settings().redis_url) == "redis://127.0.0.1:7001/0"
    monkeypatch.setenv("BULKHEAD_REDIS_URL", "redis://127.0.0.1:7002/0")
    assert str(load_settings().redis_url) == "redis://127.0.0.1:7002/0"


def test_env_nesting_overrides_one_field(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (isolated / "bulkhead.toml").write_text(
        '[chains.evma]\nkind = "evm"\nchain_id = 1\nrpc_urls = ["https://rpc.example:8545"]\n')
    monkeypatch.setenv("BULKHEAD_CHAINS__EVMA__FINALITY__MODE", "confirmations")
    cfg = load_settings().chain("evma")
    assert cfg.chain_id == 1 and cfg.finality.mode == "confirmations"


@pytest.mark.parametrize(
    ("chain", "field"),
    [
        ({**EVM, "chain_id": 0}, "chains.evm-a.chain_id"),
        ({**EVM, "chain_id": "0x1"}, "chains.evm-a.chain_id"),
        ({**EVM, "rpc_urls": []}, "chains.evm-a.rpc_urls"),
        ({**EVM, "rpc_urls": ["ftp://x"]}, "chains.evm-a.rpc_urls"),
        ({**EVM, "finality": {"mode": "tag", "tag": "latest"}}, "chains.evm-a.finality"),
        ({**EVM, "finality": {"mode": "confirmations", "confirmations": 0}},
         "chains.evm-a.finality.confirmations"),
        ({**EVM, "kind": "solana", "finality": {"mode": "confirmations"}}, "chains.evm-a"),
        ({**EVM, "surprise": 1}, "chains.evm-a.surprise"),
    ],
)
def test_invalid_settings_name_the_field(chain: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as err:
        load_settings(chains={"evm-a": chain})
    assert err.value.field == field


def test_bad_chain_key_and_unknown_chain() -> None:
    with pytest.raises(ConfigError, match="chains"):
        load_settings(chains={"EVM A": EVM})
    with pytest.raises(ConfigError, match="unknown chain 'nope'"):
        load_settings().chain("nope")


def test_secret_file_source(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = isolated / "secrets"
    secrets.mkdir()
    (secrets / "BULKHEAD_REDIS_URL").write_text("redis://:pw@127.0.0.1:7003/0")
    monkeypatch.setenv("BULKHEAD_SECRETS_DIR", str(secrets))
    assert str(load_settings().redis_url) == "redis://:pw@127.0.0.1:7003/0"
