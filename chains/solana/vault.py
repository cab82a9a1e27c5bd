"""The Solana collateral vault as the settlement path sees it (I/O).

:class:`SolanaVault` is one vault token account of one mint, owned by the attesters' SPL
multisig; :class:`SolanaVaultClient` is everything the settler needs from it, in plain values
(base58 strings, bytes, ints), so ``bridges`` never touches solders or solana-py:

- ``find_settlement``: the on-chain idempotency check (the settle memo in the vault's history);
- ``propose``: a fresh multisig transfer message with its last valid block height;
- ``check_proposal``: an attester's check of a proposed message against its own observation;
- ``submit``: assemble the m signatures and send; ``TxExpired`` when the blockhash expired.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from solana.rpc.async_api import AsyncClient
from solders.pubkey import Pubkey

from chains.solana import settlement as io
from chains.solana import settlement_codec as codec
from chains.solana.keys import SolanaKey
from shared.errors import ConfigError, RpcUnavailable
from shared.settings import ChainSettings

__all__ = ["SettlementOrder", "SolanaVault", "SolanaVaultClient"]


@dataclass(frozen=True, slots=True)
class SettlementOrder:
    """One settlement out of a Solana vault, as the venue requested it."""

    settlement_id: bytes
    lock_id: bytes
    kind: int  # SettlementKind: 1 release, 2 seize
    amount: int
    recipient: bytes  # the owner's wallet pubkey (32 bytes) for a release


@dataclass(frozen=True)
class SolanaVault:
    """What a Solana settlement needs from settings: one vault token account of one mint."""

    chain: str
    rpc_url: str
    vault: Pubkey
    mint: Pubkey
    decimals: int
    multisig: Pubkey
    seize_account: Pubkey

    @classmethod
    def from_settings(cls, key: str, cfg: ChainSettings, rpc_url: str | None = None) -> SolanaVault:
        """Raises: ConfigError naming the field when the vault is not one mint + multisig."""
        if len(cfg.assets) != 1 or not cfg.vaults:
            raise ConfigError(f"chains.{key}.assets", "a Solana vault holds exactly one mint")
        for name in ("multisig", "seize_account"):
            if name not in cfg.contracts:
                raise ConfigError(f"chains.{key}.contracts.{name}", "not configured")
        (asset,) = cfg.assets.values()
        try:
            return cls(key, rpc_url or str(cfg.rpc_urls[0]), Pubkey.from_string(cfg.vaults[0]),
                       Pubkey.from_string(asset.address), asset.decimals,
                       Pubkey.from_string(cfg.contracts["multisig"]),
                       Pubkey.from_string(cfg.contracts["seize_account"]))
        except ValueError as exc:
            raise ConfigError(f"chains.{key}", f"not a Solana pubkey: {exc}") from exc

    def expectation(self, order: SettlementOrder) -> codec.SettlementExpectation:
        dest = codec.destination_for(order.kind, owner_wallet=Pubkey(order.recipient),
                                     mint=self.mint, seize_token_account=self.seize_account)
        return codec.SettlementExpectation(order.settlement_id, order.lock_id, order.kind,
                                           order.amount, self.vault, self.mint, self.decimals,
                                           self.multisig, dest)


class SolanaVaultClient:
    """Settlement I/O against one :class:`SolanaVault` (every error already ours)."""

    def __init__(self, vault: SolanaVault) -> None:
        self.vault = vault

    @property
    def chain(self) -> str:
        return self.vault.chain

    async def block_height(self) -> int:
        """The cluster's ``confirmed`` block height (what a blockhash's validity is judged by).

        Raises:
            RpcUnavailable: the node could not be reached.
        """
        try:
            async with AsyncClient(self.vault.rpc_url) as client:
                return int((await client.get_block_height("confirmed")).value)
        except Exception as exc:
            raise RpcUnavailable(self.chain, self.vault.rpc_url, str(exc)) from exc

    async def find_settlement(self, settlement_id: bytes) -> str | None:
        """The signature of the executed settlement, if it landed (the on-chain record)."""
        return await io.find_settlement(self.vault.rpc_url, self.vault.vault, settlement_id)

    async def propose(self, order: SettlementOrder, signers: Sequence[str],
                      fee_payer: SolanaKey) -> tuple[bytes, int]:
        """A fresh multisig transfer message for ``order`` signed by ``signers`` (base58), and
        its last valid block height. Creates the recipient's token account first for a release.
        """
        expect = self.vault.expectation(order)
        if order.kind == 1:
            await io.ensure_token_account(self.vault.rpc_url, fee_payer.keypair,
                                          Pubkey(order.recipient), self.vault.mint)
        blockhash, last_valid = await io.fetch_recent_blockhash(self.vault.rpc_url)
        message = codec.build_settlement_message(
            settlement_id=expect.settlement_id, lock_id=expect.lock_id, kind=expect.kind,
            amount=expect.amount, vault=self.vault.vault, mint=self.vault.mint,
            decimals=self.vault.decimals, multisig=self.vault.multisig,
            destination=expect.destination, signers=[Pubkey.from_string(s) for s in signers],
            fee_payer=fee_payer.keypair.pubkey(), recent_blockhash=blockhash)
        return bytes(message), last_valid

    def check_proposal(self, message: bytes, order: SettlementOrder, attester: SolanaKey) -> None:
        """Raises SettlementMessageMismatch unless ``message`` is exactly ``order`` out of this
        vault, to be signed by ``attester`` (pure)."""
        codec.verify_settlement_message(message, expected=self.vault.expectation(order),
                                        attester=attester.keypair.pubkey())

    async def submit(self, message: bytes, signatures: Mapping[str, bytes],
                     fee_payer: SolanaKey, *, last_valid: int) -> str:
        """Send the assembled transaction; see :func:`chains.solana.settlement.submit_settlement`.

        Raises:
            TxExpired: the blockhash expired unlanded (re-propose). TxRejected, RpcUnavailable.
        """
        sigs = {Pubkey.from_string(k): v for k, v in signatures.items()}
        return await io.submit_settlement(self.vault.rpc_url, message, sigs, fee_payer.keypair,
                                          last_valid_block_height=last_valid)
