"""Signing keys: encrypted V3 keystores with password files for operators; the devnet
manifest's generated keys on the local default (devnet-only, never for value)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from solders.keypair import Keypair

from orchestrator.errors import ConfigError
from orchestrator.settings import AttesterMember, Settings

__all__ = [
    "decrypt_keystore",
    "load_attester_account",
    "load_attester_solana",
    "load_relayer_key",
    "load_relayer_solana",
    "load_risk_key",
    "write_keystore",
]


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


def _solana_keypair(path: Path | None, devnet_secret: list[int] | None, field: str) -> Keypair | None:
    if path is not None:
        try:
            return Keypair.from_bytes(bytes(json.loads(path.read_text())))
        except (OSError, ValueError) as exc:
            raise ConfigError(field, f"cannot read Solana keypair {path}: {exc}") from exc
    return Keypair.from_bytes(bytes(devnet_secret)) if devnet_secret else None


def load_attester_solana(settings: Settings, member: AttesterMember) -> Keypair | None:
    """The member's ed25519 key for the Solana vault multisig; must match ``solana_pubkey``."""
    devnet = _devnet(settings).get("attester_keys", {}).get(member.name, {})
    keypair = _solana_keypair(member.solana_keypair, devnet.get("solana_secret"),
                              f"attesters.{member.name}.solana_keypair")
    if keypair is not None and member.solana_pubkey and str(keypair.pubkey()) != member.solana_pubkey:
        raise ConfigError(f"attesters.{member.name}.solana_keypair",
                          f"key is for {keypair.pubkey()}, not {member.solana_pubkey}")
    return keypair


def load_relayer_solana(settings: Settings) -> Keypair | None:
    """The relayer's Solana fee payer."""
    return _solana_keypair(settings.relayer.solana_keypair, _devnet(settings).get("solana_payer"),
                           "relayer.solana_keypair")


def load_risk_key(settings: Settings) -> str:
    """The risk worker's key (venue RISK role; sends liquidations)."""
    if settings.risk_key.keystore and settings.risk_key.password_file:
        account = decrypt_keystore(settings.risk_key.keystore, settings.risk_key.password_file,
                                   "risk_key")
        return "0x" + bytes(account.key).hex()
    key = _devnet(settings).get("risk_key")
    if not key:
        raise ConfigError("risk_key", "no keystore configured and no devnet risk key")
    return str(key)


def load_relayer_key(settings: Settings) -> str:
    if settings.relayer.keystore and settings.relayer.password_file:
        account = decrypt_keystore(settings.relayer.keystore, settings.relayer.password_file,
                                   "relayer")
        return "0x" + bytes(account.key).hex()
    key = _devnet(settings).get("relayer_key")
    if not key:
        raise ConfigError("relayer", "no keystore configured and no devnet relayer key")
    return str(key)
