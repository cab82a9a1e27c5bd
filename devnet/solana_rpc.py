"""A local Solana JSON-RPC node over solders' LiteSVM, for the devnet and the tests.

It speaks the subset of the real RPC that solana-py's ``AsyncClient`` uses in Bulkhead (same
method names, params, result shapes and error codes), so the adapter runs unchanged against
a real ``solana-test-validator``. Served methods: getLatestBlockhash, sendTransaction
(base58/base64), getSignatureStatuses, getTransaction (json, jsonParsed, base64, base58),
getSignaturesForAddress, getAccountInfo (base64, base58, jsonParsed for SPL Token accounts,
mints and multisigs), getBalance, getTokenAccountBalance, getSlot, getBlockHeight,
getBlockTime, getBlock, requestAirdrop, getMinimumBalanceForRentExemption, getHealth,
getVersion, getGenesisHash, getEpochInfo; batch requests too.

Commitment is honest for the ledger: a slot clock advances every ``--slot-ms``; ``processed``
is the newest slot, ``confirmed`` ``--confirmed-lag`` behind it and ``finalized``
``--finality-lag`` behind (never below genesis). A transaction landed at slot S is invisible to
getTransaction, getSignaturesForAddress, getBlock and getSignatureStatuses until the requested
commitment reaches S. As on the real node, getTransaction, getSignaturesForAddress and getBlock
refuse ``processed``. **Account and balance reads are served from the newest state at every
commitment** (only the ``context.slot`` follows the commitment); keeping per-slot snapshots
was not worth it for a devnet whose forks are only simulated.

Test-only controls (not part of the Solana RPC; ``bulkhead_`` prefix):
``bulkhead_stallSlots`` / ``bulkhead_resumeSlots`` stop and restart the clock;
``bulkhead_advanceSlots [n]`` produces n slots now; ``bulkhead_holdFinality [bool]`` freezes
the finalized slot while processed keeps moving; ``bulkhead_setFinalityLag [n]``;
``bulkhead_dropUnfinalized`` abandons every slot above finalized (its transactions are undone
and vanish from every read, its blockhashes change), as an abandoned fork would;
``bulkhead_dropSlotsAbove [slot]`` does the same above any slot, finalized ones included (a
reorg past finality, which only a broken or hostile cluster serves: REORG-01's Solana case).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from solders.pubkey import Pubkey

from chains.solana.codec import b58decode
from devnet.process import ManagedProcess, free_port, spawn
from devnet.solana_encoding import (
    RENT_EXEMPT_EPOCH,
    UnsupportedEncoding,
    encode_account,
    encode_meta,
    encode_transaction,
    memo_field,
)
from devnet.solana_ledger import (
    GENESIS_SLOT,
    MAX_BLOCKHASH_AGE,
    Ledger,
    RejectedTx,
    ui_token_amount,
)

__all__ = ["MAX_BODY_BYTES", "SolanaRpc", "main", "start_local_solana"]

MAX_BODY_BYTES = 1_000_000
_API_VERSION = "2.1.21"
_SLOTS_PER_EPOCH = 432_000
_COMMITMENTS = {"processed": "processed", "confirmed": "confirmed", "finalized": "finalized",
                "recent": "processed", "single": "confirmed", "singleGossip": "confirmed",
                "root": "finalized", "max": "finalized"}


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        self.code, self.message, self.data = code, message, data
        super().__init__(message)


def _invalid(message: str) -> RpcError:
    return RpcError(-32602, message)


def _pubkey(text: Any) -> Pubkey:
    try:
        return Pubkey.from_string(str(text))
    except ValueError as exc:
        raise _invalid("Invalid param: Invalid") from exc


class SolanaRpc:
    """Method handlers; each takes the JSON ``params`` list and returns the ``result``."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.stalled = False
        self.methods: dict[str, Callable[[list[Any]], Any]] = {
            name[len("rpc_"):]: getattr(self, name) for name in dir(self) if name.startswith("rpc_")
        }

    # --- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _config(params: list[Any], index: int) -> dict[str, Any]:
        config = params[index] if len(params) > index and params[index] is not None else {}
        if not isinstance(config, dict):
            raise _invalid("Invalid params: config must be an object")
        return config

    def _slot(self, config: dict[str, Any], *, at_least_confirmed: bool = False) -> int:
        commitment = _COMMITMENTS.get(config.get("commitment") or "finalized")
        if commitment is None:
            raise _invalid(f"Invalid commitment {config.get('commitment')!r}")
        if at_least_confirmed and commitment == "processed":
            raise _invalid("Method does not support commitment below `confirmed`")
        slot = self.ledger.commitment_slot(commitment)
        if (min_slot := config.get("minContextSlot")) is not None and slot < int(min_slot):
            raise RpcError(-32016, "Minimum context slot has not been reached",
                           {"contextSlot": slot})
        return slot

    def _context(self, slot: int, value: Any) -> dict[str, Any]:
        return {"context": {"apiVersion": _API_VERSION, "slot": slot}, "value": value}

    def _tx_with_meta(self, record: Any, config: dict[str, Any]) -> dict[str, Any]:
        encoding = config.get("encoding") or "json"
        max_version = config.get("maxSupportedTransactionVersion")
        is_v0 = record.tx.version == 0
        if is_v0 and max_version is None:
            raise RpcError(
                -32015, "Transaction version (0) is not supported by the requesting client. "
                "Please try the request again with the following configuration parameter: "
                '"maxSupportedTransactionVersion": 0')
        try:
            out = {"transaction": encode_transaction(record, encoding),
                   "meta": encode_meta(record, encoding)}
        except UnsupportedEncoding as exc:
            raise _invalid(f"Invalid params: unsupported encoding {exc}") from exc
        if max_version is not None:
            out["version"] = 0 if is_v0 else "legacy"
        return out

    # --- cluster ---------------------------------------------------------------------------

    def rpc_getHealth(self, params: list[Any]) -> str:
        return "ok"

    def rpc_getVersion(self, params: list[Any]) -> dict[str, Any]:
        return {"solana-core": _API_VERSION, "feature-set": 1725507508}

    def rpc_getGenesisHash(self, params: list[Any]) -> str:
        return self.ledger.genesis_hash

    def rpc_getSlot(self, params: list[Any]) -> int:
        return self._slot(self._config(params, 0))

    def rpc_getBlockHeight(self, params: list[Any]) -> int:
        return self._slot(self._config(params, 0))  # no skipped slots: height == slot

    def rpc_getEpochInfo(self, params: list[Any]) -> dict[str, Any]:
        slot = self._slot(self._config(params, 0))
        return {"absoluteSlot": slot, "blockHeight": slot, "epoch": slot // _SLOTS_PER_EPOCH,
                "slotIndex": slot % _SLOTS_PER_EPOCH, "slotsInEpoch": _SLOTS_PER_EPOCH,
                "transactionCount": len(self.ledger.txs)}

    def rpc_getLatestBlockhash(self, params: list[Any]) -> dict[str, Any]:
        slot = self._slot(self._config(params, 0))
        record = self.ledger.slot_record(slot)
        assert record is not None
        return self._context(slot, {"blockhash": record.blockhash,
                                    "lastValidBlockHeight": slot + MAX_BLOCKHASH_AGE})

    def rpc_getMinimumBalanceForRentExemption(self, params: list[Any]) -> int:
        if not params or not isinstance(params[0], int) or params[0] < 0:
            raise _invalid("Invalid params: expected a data length")
        return self.ledger.svm.minimum_balance_for_rent_exemption(params[0])

    # --- blocks ----------------------------------------------------------------------------

    def _block_record(self, slot: Any, limit_slot: int) -> Any:
        if not isinstance(slot, int) or slot < 0:
            raise _invalid("Invalid params: slot must be a u64")
        record = self.ledger.slot_record(slot)
        if record is None or slot > limit_slot:
            raise RpcError(-32004, f"Block not available for slot {slot}")
        return record

    def rpc_getBlockTime(self, params: list[Any]) -> int:
        record = self._block_record(params[0] if params else None, self.ledger.confirmed_slot)
        return int(record.block_time)

    def rpc_getBlock(self, params: list[Any]) -> dict[str, Any]:
        config = self._config(params, 1)
        record = self._block_record(params[0] if params else None,
                                    self._slot(config, at_least_confirmed=True))
        parent = self.ledger.slot_record(max(record.slot - 1, 0))
        assert parent is not None
        block: dict[str, Any] = {
            "blockHeight": record.slot, "blockTime": record.block_time,
            "blockhash": record.blockhash, "parentSlot": parent.slot,
            "previousBlockhash": parent.blockhash,
        }
        details = config.get("transactionDetails") or "full"
        if details == "full":
            block["transactions"] = [self._tx_with_meta(self.ledger.txs[s], config)
                                     for s in record.signatures]
        elif details == "signatures":
            block["signatures"] = list(record.signatures)
        elif details != "none":
            raise _invalid(f"Invalid params: transactionDetails {details!r} not supported")
        if config.get("rewards", True):
            block["rewards"] = []
        return block

    # --- transactions ----------------------------------------------------------------------

    def rpc_sendTransaction(self, params: list[Any]) -> str:
        config = self._config(params, 1)
        encoding = config.get("encoding") or "base58"
        if not params or not isinstance(params[0], str):
            raise _invalid("Invalid params: expected an encoded transaction")
        try:
            raw = base64.b64decode(params[0], validate=True) if encoding == "base64" \
                else b58decode(params[0])
        except ValueError as exc:
            raise _invalid(f"invalid {encoding} encoding: {exc}") from exc
        if encoding not in ("base58", "base64"):
            raise _invalid(f"unsupported encoding: {encoding}")
        try:
            return self.ledger.submit(raw, preflight=not config.get("skipPreflight", False))
        except RejectedTx as exc:
            raise RpcError(exc.code, exc.message, exc.data) from exc

    def rpc_requestAirdrop(self, params: list[Any]) -> str:
        if len(params) < 2 or not isinstance(params[1], int) or params[1] <= 0:
            raise _invalid("Invalid params: expected pubkey and lamports")
        try:
            return self.ledger.airdrop(_pubkey(params[0]), params[1])
        except RejectedTx as exc:
            raise RpcError(exc.code, exc.message, exc.data) from exc

    def rpc_getSignatureStatuses(self, params: list[Any]) -> dict[str, Any]:
        if not params or not isinstance(params[0], list) or len(params[0]) > 256:
            raise _invalid("Invalid params: expected up to 256 signatures")
        processed = self.ledger.processed_slot
        values: list[dict[str, Any] | None] = []
        for signature in params[0]:
            record = self.ledger.visible(str(signature), processed)
            if record is None:
                values.append(None)
                continue
            status = self.ledger.confirmation_status(record.slot)
            values.append({
                "slot": record.slot,
                "confirmations": None if status == "finalized" else processed - record.slot,
                "err": record.err,
                "status": {"Ok": None} if record.err is None else {"Err": record.err},
                "confirmationStatus": status,
            })
        return self._context(processed, values)

    def rpc_getTransaction(self, params: list[Any]) -> dict[str, Any] | None:
        config = self._config(params, 1)
        if isinstance(params[1] if len(params) > 1 else None, str):
            config = {"encoding": params[1]}  # legacy positional encoding
        slot = self._slot(config, at_least_confirmed=True)
        record = self.ledger.visible(str(params[0]) if params else "", slot)
        if record is None:
            return None
        block = self.ledger.slot_record(record.slot)
        return {"slot": record.slot, "blockTime": block.block_time if block else None,
                **self._tx_with_meta(record, config)}

    def rpc_getSignaturesForAddress(self, params: list[Any]) -> list[dict[str, Any]]:
        config = self._config(params, 1)
        slot = self._slot(config, at_least_confirmed=True)
        address = str(_pubkey(params[0] if params else None))
        limit = config.get("limit") or 1000
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise _invalid("Invalid limit; max 1000")
        before, until = config.get("before"), config.get("until")
        out: list[dict[str, Any]] = []
        started = before is None
        for record in self.ledger.history(address, slot):
            if not started:
                started = record.signature == before
                continue
            if record.signature == until or len(out) >= limit:
                break
            block = self.ledger.slot_record(record.slot)
            out.append({
                "signature": record.signature, "slot": record.slot, "err": record.err,
                "memo": memo_field(record), "blockTime": block.block_time if block else None,
                "confirmationStatus": self.ledger.confirmation_status(record.slot),
            })
        return out

    # --- accounts --------------------------------------------------------------------------

    def rpc_getAccountInfo(self, params: list[Any]) -> dict[str, Any]:
        config = self._config(params, 1)
        slot = self._slot(config)
        account = self.ledger.svm.get_account(_pubkey(params[0] if params else None))
        if account is None or (account.lamports == 0 and not account.data):
            return self._context(slot, None)
        decimals = None
        if (found := self.ledger.token_account(_pubkey(params[0]))) is not None:
            decimals = self.ledger.mint_decimals(Pubkey.from_bytes(found[1][0:32]))
        try:
            value = encode_account(account, config.get("encoding") or "base58",
                                   config.get("dataSlice"), mint_decimals=decimals)
        except UnsupportedEncoding as exc:
            raise _invalid(f"Invalid params: {exc}") from exc
        if value["rentEpoch"] == 0:
            value["rentEpoch"] = RENT_EXEMPT_EPOCH
        return self._context(slot, value)

    def rpc_getBalance(self, params: list[Any]) -> dict[str, Any]:
        slot = self._slot(self._config(params, 1))
        lamports = self.ledger.svm.get_balance(_pubkey(params[0] if params else None))
        return self._context(slot, lamports or 0)

    def rpc_getTokenAccountBalance(self, params: list[Any]) -> dict[str, Any]:
        slot = self._slot(self._config(params, 1))
        found = self.ledger.token_account(_pubkey(params[0] if params else None))
        if found is None:
            raise _invalid("Invalid param: not a Token account")
        data = found[1]
        decimals = self.ledger.mint_decimals(Pubkey.from_bytes(data[0:32]))
        return self._context(slot, ui_token_amount(int.from_bytes(data[64:72], "little"),
                                                    decimals))

    # --- test controls ---------------------------------------------------------------------

    def rpc_bulkhead_stallSlots(self, params: list[Any]) -> bool:
        self.stalled = True
        return True

    def rpc_bulkhead_resumeSlots(self, params: list[Any]) -> bool:
        self.stalled = False
        return True

    def rpc_bulkhead_advanceSlots(self, params: list[Any]) -> int:
        n = params[0] if params else 1
        if not isinstance(n, int) or not 0 <= n <= 100_000:
            raise _invalid("Invalid params: n must be 0..100000")
        return self.ledger.advance(n)

    def rpc_bulkhead_holdFinality(self, params: list[Any]) -> int:
        self.ledger.hold_finality(bool(params[0]) if params else True)
        return self.ledger.finalized_slot

    def rpc_bulkhead_setFinalityLag(self, params: list[Any]) -> int:
        if not params or not isinstance(params[0], int) or params[0] < self.ledger.confirmed_lag:
            raise _invalid("Invalid params: lag must be an int >= the confirmed lag")
        self.ledger.finality_lag = params[0]
        return self.ledger.finalized_slot

    def rpc_bulkhead_dropUnfinalized(self, params: list[Any]) -> list[str]:
        return self.ledger.drop_unfinalized()

    def rpc_bulkhead_dropSlotsAbove(self, params: list[Any]) -> list[str]:
        if not params or not isinstance(params[0], int) or params[0] < GENESIS_SLOT:
            raise _invalid("Invalid params: slot must be an int >= the genesis slot")
        return self.ledger.drop_above(params[0])

    # --- transport -------------------------------------------------------------------------

    def dispatch(self, request: Any) -> dict[str, Any] | None:
        if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" \
                or not isinstance(request.get("method"), str):
            return _error(None, -32600, "Invalid request")
        rid = request.get("id")
        handler = self.methods.get(request["method"])
        if handler is None:
            return _error(rid, -32601, "Method not found")
        params = request.get("params") or []
        if not isinstance(params, list):
            return _error(rid, -32602, "Invalid params: expected an array")
        try:
            result = handler(params)
        except RpcError as exc:
            return _error(rid, exc.code, exc.message, exc.data)
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            return _error(rid, -32602, f"Invalid params: {exc}")
        except Exception as exc:  # noqa: BLE001 - a node answers with an error, never crashes
            return _error(rid, -32603, f"Internal error: {exc!r}")
        return {"jsonrpc": "2.0", "result": result, "id": rid}

    async def handle(self, request: web.Request) -> web.Response:
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json(_error(None, -32600, f"request body exceeds {MAX_BODY_BYTES} bytes"), 413)
        try:
            payload = json.loads(body)
        except ValueError:
            return _json(_error(None, -32700, "Parse error"))
        if isinstance(payload, list):
            if not payload:
                return _json(_error(None, -32600, "Invalid request"))
            return _json([self.dispatch(item) for item in payload])
        return _json(self.dispatch(payload))

    async def run_clock(self, slot_ms: int) -> None:
        while True:
            await asyncio.sleep(slot_ms / 1000)
            if not self.stalled:
                self.ledger.advance()


def _error(rid: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "error": error, "id": rid}


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(payload), status=status, content_type="application/json")


async def serve(port: int, *, slot_ms: int, finality_lag: int, confirmed_lag: int) -> None:
    rpc = SolanaRpc(Ledger(finality_lag=finality_lag, confirmed_lag=confirmed_lag))
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/", rpc.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"Listening on 127.0.0.1:{port}", flush=True)
    try:
        await rpc.run_clock(slot_ms)
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local Solana JSON-RPC over LiteSVM")
    parser.add_argument("--port", type=int, default=8899)
    parser.add_argument("--slot-ms", type=int, default=400)
    parser.add_argument("--finality-lag", type=int, default=32)
    parser.add_argument("--confirmed-lag", type=int, default=1)
    args = parser.parse_args(argv)
    if not 0 <= args.confirmed_lag <= args.finality_lag or args.slot_ms <= 0:
        parser.error("need slot-ms > 0 and 0 <= confirmed-lag <= finality-lag")
    asyncio.run(serve(args.port, slot_ms=args.slot_ms, finality_lag=args.finality_lag,
                      confirmed_lag=args.confirmed_lag))


def start_local_solana(
    *,
    log_path: Path,
    port: int | None = None,
    slot_ms: int = 400,
    finality_lag: int = 32,
    detach: bool = False,
) -> ManagedProcess:
    """Start the local Solana RPC in a child process and wait for its "Listening on" line.

    Raises:
        DevnetError: it exited or was not ready in time (the log tail says why).
    """
    port = port or free_port()
    root = str(Path(__file__).resolve().parents[1])
    pythonpath = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", "devnet.solana_rpc", "--port", str(port),
            "--slot-ms", str(slot_ms), "--finality-lag", str(finality_lag)]
    return spawn("solana-rpc", argv, port=port, log_path=log_path, ready_pattern=r"Listening on",
                 ready_timeout_s=30, env={"PYTHONPATH": pythonpath}, detach=detach)


if __name__ == "__main__":
    main()
