"""Devnet identities. EVM keys are anvil's public test mnemonic (never use them elsewhere);
Solana keys are generated per ``devnet up`` and written to the devnet manifest."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ANVIL_MNEMONIC", "TRADERS", "DevnetRoles", "anvil_key"]

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
TRADERS = ("alice", "bob")


def anvil_key(index: int) -> str:
    """Private key (0x-hex) of anvil's default account ``index``."""
    from eth_account import Account  # on first use: it costs a second of every CLI start

    Account.enable_unaudited_hdwallet_features()
    acct = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return "0x" + bytes(acct.key).hex()


@dataclass(frozen=True)
class DevnetRoles:
    """Which anvil account plays which role on the devnet."""

    deployer: int = 0
    feeder: int = 3
    relayer: int = 4
    risk: int = 5  # the risk worker: pushes volatility buffers, submits liquidations
    accountant: int = 6  # the venue's lane pauser (pauses only; the owner resumes)
    first_trader: int = 1  # alice = 1, bob = 2

    def trader_key(self, position: int) -> str:
        return anvil_key(self.first_trader + position)
