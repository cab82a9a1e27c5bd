"""An ed25519 signing key for Solana, behind a small value type (I/O only to read a file).

Layers above ``chains`` hold a :class:`SolanaKey` and never touch solders: they read its
base58 ``pubkey`` and ask it to ``sign`` message bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from solders.keypair import Keypair

from shared.errors import ConfigError

__all__ = ["SolanaKey"]


@dataclass(frozen=True, slots=True, repr=False)
class SolanaKey:
    """A Solana keypair. ``repr`` shows the public key only."""

    keypair: Keypair

    @classmethod
    def from_secret(cls, secret: bytes | list[int], *, field: str = "solana_keypair") -> SolanaKey:
        """From the 64-byte secret (solana-keygen's JSON array, or bytes).

        Raises:
            ConfigError: not a 64-byte keypair secret (``field`` names the setting).
        """
        try:
            return cls(Keypair.from_bytes(bytes(secret)))
        except (ValueError, TypeError) as exc:
            raise ConfigError(field, "not a 64-byte Solana keypair") from exc

    @classmethod
    def from_file(cls, path: Path, *, field: str = "solana_keypair") -> SolanaKey:
        """A solana-keygen JSON file.

        Raises:
            ConfigError: unreadable or malformed (``field`` names the setting).
        """
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(field, f"cannot read Solana keypair {path}: {exc}") from exc
        return cls.from_secret(data, field=field)

    @property
    def pubkey(self) -> str:
        return str(self.keypair.pubkey())

    def sign(self, message: bytes) -> bytes:
        """The 64-byte ed25519 signature over ``message``, as Solana verifies it."""
        return bytes(self.keypair.sign_message(bytes(message)))

    def __repr__(self) -> str:
        return f"SolanaKey({self.pubkey})"
