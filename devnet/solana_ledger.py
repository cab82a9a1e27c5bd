"""The ledger behind the local Solana RPC: LiteSVM plus a slot clock and a transaction log.

LiteSVM has accounts and a runtime but no blocks, so this module adds what the RPC needs to
answer every commitment level honestly: one record per slot (its own blockhash, time and the
transactions that landed in it) and a log of every mutating operation, so an abandoned fork
can be simulated by replaying the operations at or below the finalized slot into a fresh VM.

LiteSVM's own blockhash check only accepts its latest hash; the ledger disables it and
enforces the real rule itself (the blockhash of one of the last 150 slots). Airdrops are
ordinary system transfers from a faucet account, so they land, replay and read like any
transaction. No network I/O happens here; ``solana_rpc`` serves it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from solders.account import Account
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM_ID
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from spl.token.constants import TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID

__all__ = ["MAX_BLOCKHASH_AGE", "Ledger", "RejectedTx", "SlotRecord", "TxRecord", "ui_token_amount"]

MAX_BLOCKHASH_AGE = 150  # slots a blockhash stays valid, as on the real cluster
GENESIS_SLOT = 0
_FAUCET_LAMPORTS = 10**18
_TOKEN_PROGRAMS = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)
_TOKEN_ACCOUNT_LEN = 165


class RejectedTx(Exception):
    """A transaction refused before landing; fields mirror the real node's error object."""

    def __init__(self, code: int, message: str, data: dict[str, Any] | None = None) -> None:
        self.code, self.message, self.data = code, message, data
        super().__init__(message)


@dataclass
class SlotRecord:
    slot: int
    blockhash: str
    block_time: int
    signatures: list[str] = field(default_factory=list)


@dataclass
class TxRecord:
    """A landed transaction and the metadata ``getTransaction`` serves for it."""

    signature: str
    slot: int
    raw: bytes
    tx: VersionedTransaction
    err: Any  # wire form: None, "Name" or {"Name": ...}
    fee: int
    logs: list[str]
    compute_units: int
    inner: list[list[dict[str, Any]]]
    pre_balances: list[int]
    post_balances: list[int]
    pre_token_balances: list[dict[str, Any]]
    post_token_balances: list[dict[str, Any]]

    @property
    def account_keys(self) -> list[Pubkey]:
        return list(self.tx.message.account_keys)


def ui_token_amount(amount: int, decimals: int) -> dict[str, Any]:
    """The RPC's ``UiTokenAmount``. ``uiAmount`` is a float only because the wire format has one."""
    whole, frac = divmod(amount, 10**decimals)
    frac_s = f"{frac:0{decimals}d}".rstrip("0") if decimals else ""
    ui_string = f"{whole}.{frac_s}" if frac_s else str(whole)
    return {
        "amount": str(amount),
        "decimals": decimals,
        "uiAmount": float(ui_string),
        "uiAmountString": ui_string,
    }


def _wire_err(result: FailedTransactionMetadata) -> Any:
    return json.loads(result.to_json())["err"]


class Ledger:
    """Slot clock, commitment levels and transaction history over one LiteSVM instance."""

    def __init__(self, *, finality_lag: int = 32, confirmed_lag: int = 1) -> None:
        self.finality_lag = finality_lag
        self.confirmed_lag = confirmed_lag
        self.held_finalized: int | None = None
        self.faucet = Keypair()
        self.slots: list[SlotRecord] = []
        self.txs: dict[str, TxRecord] = {}
        self.by_address: dict[str, list[str]] = {}
        self._fork = 0
        self.svm = self._fresh_svm()
        self._open_slot(GENESIS_SLOT)
        self.genesis_hash = self.slots[0].blockhash

    # --- clock and commitment -------------------------------------------------------------

    def _fresh_svm(self) -> LiteSVM:
        svm = LiteSVM().with_blockhash_check(False).with_sigverify(True)
        svm.set_account(
            self.faucet.pubkey(),
            Account(lamports=_FAUCET_LAMPORTS, data=b"", owner=SYSTEM_PROGRAM_ID),
        )
        return svm

    def _open_slot(self, slot: int) -> None:
        self.svm.warp_to_slot(slot)
        self.svm.expire_blockhash()
        record = SlotRecord(slot, str(self.svm.latest_blockhash()), int(time.time()))
        self.slots.append(record)

    @property
    def processed_slot(self) -> int:
        return self.slots[-1].slot

    @property
    def confirmed_slot(self) -> int:
        return max(GENESIS_SLOT, self.processed_slot - self.confirmed_lag)

    @property
    def finalized_slot(self) -> int:
        slot = max(GENESIS_SLOT, self.processed_slot - self.finality_lag)
        if self.held_finalized is not None:
            slot = min(slot, self.held_finalized)
        return min(slot, self.confirmed_slot)

    def commitment_slot(self, commitment: str) -> int:
        return {
            "processed": self.processed_slot,
            "confirmed": self.confirmed_slot,
            "finalized": self.finalized_slot,
        }[commitment]

    def confirmation_status(self, slot: int) -> str:
        if slot <= self.finalized_slot:
            return "finalized"
        return "confirmed" if slot <= self.confirmed_slot else "processed"

    def advance(self, n: int = 1) -> int:
        """Produce ``n`` new (empty) slots; returns the newest slot."""
        for _ in range(n):
            self._open_slot(self.processed_slot + 1)
        return self.processed_slot

    def hold_finality(self, hold: bool) -> None:
        self.held_finalized = self.finalized_slot if hold else None

    def slot_record(self, slot: int) -> SlotRecord | None:
        index = slot - GENESIS_SLOT
        if 0 <= index < len(self.slots):
            return self.slots[index]
        return None

    def blockhash_slot(self, blockhash: str) -> int | None:
        """The slot whose blockhash this is, if it is still valid for new transactions."""
        for record in reversed(self.slots[-(MAX_BLOCKHASH_AGE + 1):]):
            if record.blockhash == blockhash:
                return record.slot
        return None

    # --- transactions -------------------------------------------------------------------

    def submit(self, raw: bytes, *, preflight: bool) -> str:
        """Verify, (optionally) simulate, execute and record one wire transaction.

        Raises:
            RejectedTx: shaped like the real node's preflight errors. With ``preflight``
                off, a transaction that would not land is silently dropped instead.
        """
        try:
            tx = VersionedTransaction.from_bytes(raw)
        except Exception as exc:
            raise RejectedTx(-32602, f"failed to deserialize VersionedTransaction: {exc}") from exc
        signature = str(tx.signatures[0])
        if not all(tx.verify_with_results()):
            raise RejectedTx(-32003, "Transaction signature verification failure")
        if signature in self.txs:
            return self._reject(preflight, signature, "AlreadyProcessed")
        if self.blockhash_slot(str(tx.message.recent_blockhash)) is None:
            return self._reject(preflight, signature, "BlockhashNotFound")
        if preflight:
            sim = self.svm.simulate_transaction(tx)
            if isinstance(sim, FailedTransactionMetadata):
                meta = sim.meta()
                raise RejectedTx(
                    -32002,
                    f"Transaction simulation failed: {_describe(_wire_err(sim))}",
                    _sim_data(_wire_err(sim), meta.logs(), meta.compute_units_consumed()),
                )
        self._execute(raw, tx, self.processed_slot)
        return signature

    def _reject(self, preflight: bool, signature: str, err: str) -> str:
        if not preflight:
            return signature  # the real node accepts it and it simply never lands
        message = "Blockhash not found" if err == "BlockhashNotFound" else _describe(err)
        raise RejectedTx(-32002, f"Transaction simulation failed: {message}", _sim_data(err, [], 0))

    def _execute(self, raw: bytes, tx: VersionedTransaction, slot: int) -> TxRecord | None:
        keys = list(tx.message.account_keys)
        pre_balances = [self.svm.get_balance(k) or 0 for k in keys]
        pre_tokens = self._token_balances(keys)
        result = self.svm.send_transaction(tx)
        err = None
        if isinstance(result, FailedTransactionMetadata):
            err = _wire_err(result)
            if not isinstance(err, dict):  # fee payer / load failures never land
                return None
            meta: TransactionMetadata = result.meta()
        else:
            meta = result
        record = TxRecord(
            signature=str(tx.signatures[0]), slot=slot, raw=raw, tx=tx, err=err,
            fee=meta.fee(), logs=list(meta.logs()),
            compute_units=meta.compute_units_consumed(),
            inner=[[_inner_instruction(i) for i in group] for group in meta.inner_instructions()],
            pre_balances=pre_balances,
            post_balances=[self.svm.get_balance(k) or 0 for k in keys],
            pre_token_balances=pre_tokens, post_token_balances=self._token_balances(keys),
        )
        self._index(record)
        return record

    def _index(self, record: TxRecord) -> None:
        self.txs[record.signature] = record
        slot = self.slot_record(record.slot)
        assert slot is not None
        slot.signatures.append(record.signature)
        for key in dict.fromkeys(str(k) for k in record.account_keys):
            self.by_address.setdefault(key, []).append(record.signature)

    def airdrop(self, recipient: Pubkey, lamports: int) -> str:
        """A faucet transfer signed with a recent blockhash not yet used for the same transfer."""
        ix = transfer(TransferParams(
            from_pubkey=self.faucet.pubkey(), to_pubkey=recipient, lamports=lamports))
        for record in reversed(self.slots[-(MAX_BLOCKHASH_AGE + 1):]):
            msg = MessageV0.try_compile(
                self.faucet.pubkey(), [ix], [], Hash.from_string(record.blockhash))
            tx = VersionedTransaction(msg, [self.faucet])
            if str(tx.signatures[0]) not in self.txs:
                return self.submit(bytes(tx), preflight=True)
        raise RejectedTx(-32603, "airdrop rate limit: retry in the next slot")

    def visible(self, signature: str, commitment_slot: int) -> TxRecord | None:
        record = self.txs.get(signature)
        return record if record is not None and record.slot <= commitment_slot else None

    def history(self, address: str, commitment_slot: int) -> Iterator[TxRecord]:
        """Transactions touching ``address`` at or below the slot, newest first."""
        for signature in reversed(self.by_address.get(address, [])):
            record = self.txs[signature]
            if record.slot <= commitment_slot:
                yield record

    # --- forks ----------------------------------------------------------------------------

    def drop_unfinalized(self) -> list[str]:
        """Abandon every slot above the finalized one (an abandoned fork)."""
        return self.drop_above(self.finalized_slot)

    def drop_above(self, cutoff: int) -> list[str]:
        """Abandon every slot above ``cutoff``, finalized or not: undo its transactions, rehash
        it. Below finality this is what a broken or hostile cluster would serve (a reorg past
        finality, REORG-01), for fault tests only.

        The VM is rebuilt by replaying the operations that landed at or below ``cutoff``; the
        clock keeps its position. Returns the dropped signatures.
        """
        kept = [r for r in self.txs.values() if r.slot <= cutoff]
        dropped = [s for s, r in self.txs.items() if r.slot > cutoff]
        self.svm = self._fresh_svm()
        self.txs, self.by_address = {}, {}
        for record in self.slots:
            record.signatures = []
        self._fork += 1
        for slot in self.slots:
            if slot.slot > cutoff:
                digest = hashlib.sha256(f"{slot.blockhash}/fork{self._fork}".encode()).digest()
                slot.blockhash = str(Hash(digest))
        for tx in sorted(kept, key=lambda r: r.slot):  # dict order is landing order
            self.svm.warp_to_slot(tx.slot)
            replayed = self._execute(tx.raw, tx.tx, tx.slot)
            if replayed is None or (replayed.err is None) != (tx.err is None):
                raise RuntimeError(f"replay diverged at {tx.signature}")
        self.svm.warp_to_slot(self.processed_slot)
        return dropped

    # --- token accounts -------------------------------------------------------------------

    def token_account(self, key: Pubkey) -> tuple[Account, bytes] | None:
        account = self.svm.get_account(key)
        if account is None or account.owner not in _TOKEN_PROGRAMS:
            return None
        data = bytes(account.data)
        if len(data) < _TOKEN_ACCOUNT_LEN or data[108] == 0:
            return None
        if len(data) > _TOKEN_ACCOUNT_LEN and (account.owner != TOKEN_2022_PROGRAM_ID
                                               or data[_TOKEN_ACCOUNT_LEN] != 2):
            return None
        return account, data

    def mint_decimals(self, mint: Pubkey) -> int:
        account = self.svm.get_account(mint)
        return bytes(account.data)[44] if account is not None and len(account.data) >= 82 else 0

    def _token_balances(self, keys: list[Pubkey]) -> list[dict[str, Any]]:
        out = []
        for index, key in enumerate(keys):
            found = self.token_account(key)
            if found is None:
                continue
            account, data = found
            mint = Pubkey.from_bytes(data[0:32])
            out.append({
                "accountIndex": index,
                "mint": str(mint),
                "owner": str(Pubkey.from_bytes(data[32:64])),
                "programId": str(account.owner),
                "uiTokenAmount": ui_token_amount(
                    int.from_bytes(data[64:72], "little"), self.mint_decimals(mint)),
            })
        return out


def _sim_data(err: Any, logs: list[str], units: int) -> dict[str, Any]:
    return {
        "accounts": None, "err": err, "innerInstructions": None, "logs": list(logs),
        "replacementBlockhash": None, "returnData": None, "unitsConsumed": units,
    }


def _describe(err: Any) -> str:
    """A human message in the style of the real node's ``TransactionError`` Display."""
    if isinstance(err, dict) and "InstructionError" in err:
        index, inner = err["InstructionError"]
        if isinstance(inner, dict) and "Custom" in inner:
            detail = f"custom program error: {inner['Custom']:#x}"
        else:
            detail = json.dumps(inner)
        return f"Error processing Instruction {index}: {detail}"
    if err == "AlreadyProcessed":
        return "This transaction has already been processed"
    return json.dumps(err) if not isinstance(err, str) else err


def _inner_instruction(item: Any) -> dict[str, Any]:
    """One CPI instruction as plain data (solders' to_json keeps short-vec length prefixes)."""
    ix = item.instruction()
    return {"instruction": {"program_id_index": ix.program_id_index,
                            "accounts": list(bytes(ix.accounts)), "data": list(bytes(ix.data))},
            "stack_height": item.stack_height()}
