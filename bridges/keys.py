"""Signing keys: encrypted V3 keystores with password files for operators; the devnet
manifest's generated keys on the local default (devnet-only, never for value)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from orchestrator.errors import ConfigError
from orchestrator.settings import AttesterMember, Settings

__all__ = ["decrypt_keystore", "load_attester_account", "load_relayer_key", "write_keystore"]


def decrypt_keystore(keystore: Path, password_file: Path, field: str) -> LocalAccount:
    try:
        data = json.loads(keystore.read_text())
        password = password_file.read_text().rstrip("\n")
        return Account.from_key(Account.decrypt(data, password))
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(field, f"cannot open keystore {keystore}: {exc}") from exc


def write_keystore(account: LocalAccount, path: Path, password: str) -> None:
    path.write_text(json.dumps(Account.encrypt(account.key, password)))
    path.chmod(0o600)


def _devnet(settings: Settings) -> dict[str, Any]:
    path = settings.home / "devnet" / "manifest.json"
    if not path.is_file():
        return {}
    devnet: dict[str, Any] = json.loads(path.read_text()).get("devnet", {})
    return devnet


def load_attester_account(settings: Settings, member: AttesterMember) -> LocalAccount:
    """The member's key; it must match the configured address (a wrong key refuses to start)."""
    field = f"attesters.{member.name}"
    if member.keystore and member.password_file:
        account = decrypt_keystore(member.keystore, member.password_file, field)
    else:
        keys = _devnet(settings).get("attester_keys", {})
        if member.name not in keys:
            raise ConfigError(field, "no keystore configured and no devnet key")
        account = Account.from_key(keys[member.name]["evm_key"])
    if account.address.lower() != member.address.lower():
        raise ConfigError(field, f"key is for {account.address}, not {member.address}")
    return account


def load_relayer_key(settings: Settings) -> str:
    if settings.relayer.keystore and settings.relayer.password_file:
        account = decrypt_keystore(settings.relayer.keystore, settings.relayer.password_file,
                                   "relayer")
        return "0x" + bytes(account.key).hex()
    key = _devnet(settings).get("relayer_key")
    if not key:
        raise ConfigError("relayer", "no keystore configured and no devnet relayer key")
    return str(key)
