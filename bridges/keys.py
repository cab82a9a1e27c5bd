"""Signing keys: encrypted V3 keystores with password files for operators; the devnet
manifest's generated keys on the local default (devnet-only, never for value)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chains.solana.keys import SolanaKey
from shared.errors import ConfigError
from shared.settings import AttesterMember, KeySettings, Settings

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

__all__ = [
    "decrypt_keystore",
    "load_accountant_key",
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
        from eth_account import Account  # on first use: a second of start-up otherwise
        account: LocalAccount = Account.from_key(Account.decrypt(data, password))
        return account
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(field, f"cannot open keystore {keystore}: {exc}") from exc


def write_keystore(account: LocalAccount, path: Path, password: str) -> None:
    from eth_account import Account
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
        from eth_account import Account
        account = Account.from_key(keys[member.name]["evm_key"])
    if account.address.lower() != member.address.lower():
        raise ConfigError(field, f"key is for {account.address}, not {member.address}")
    return account


def _solana_keypair(path: Path | None, devnet_secret: list[int] | None,
                    field: str) -> SolanaKey | None:
    if path is not None:
        return SolanaKey.from_file(path, field=field)
    return SolanaKey.from_secret(devnet_secret, field=field) if devnet_secret else None


def load_attester_solana(settings: Settings, member: AttesterMember) -> SolanaKey | None:
    """The member's ed25519 key for the Solana vault multisig; must match ``solana_pubkey``."""
    devnet = _devnet(settings).get("attester_keys", {}).get(member.name, {})
    keypair = _solana_keypair(member.solana_keypair, devnet.get("solana_secret"),
                              f"attesters.{member.name}.solana_keypair")
    if keypair is not None and member.solana_pubkey and keypair.pubkey != member.solana_pubkey:
        raise ConfigError(f"attesters.{member.name}.solana_keypair",
                          f"key is for {keypair.pubkey}, not {member.solana_pubkey}")
    return keypair


def load_relayer_solana(settings: Settings) -> SolanaKey | None:
    """The relayer's Solana fee payer."""
    return _solana_keypair(settings.relayer.solana_keypair, _devnet(settings).get("solana_payer"),
                           "relayer.solana_keypair")


def load_risk_key(settings: Settings) -> str:
    """The risk worker's key (venue RISK role; sends liquidations)."""
    return _role_key(settings, settings.risk_key, "risk_key", "risk_key")


def load_accountant_key(settings: Settings) -> str:
    """The accountant's key (venue pauser role: pauses a lane, nothing else)."""
    return _role_key(settings, settings.accountant.key, "accountant_key", "accountant.key")


def load_relayer_key(settings: Settings) -> str:
    """The relayer's key (sends credits and settlements)."""
    return _role_key(settings, settings.relayer, "relayer_key", "relayer")


def _role_key(settings: Settings, keys: KeySettings, devnet_name: str, field: str) -> str:
    """A role's EVM key: its keystore + password file, else the devnet manifest's key."""
    if keys.keystore and keys.password_file:
        return "0x" + bytes(decrypt_keystore(keys.keystore, keys.password_file, field).key).hex()
    key = _devnet(settings).get(devnet_name)
    if not key:
        raise ConfigError(field, "no keystore configured and no devnet key")
    return str(key)
