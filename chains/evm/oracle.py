"""The venue chain's mark price seen from Python (I/O): ``MarkOracle`` (the median of several
Chainlink and Pyth sources per oracle id, docs/mark.md) and, on the devnet, ``FeedPublisher``
(the feeder's seam that writes each source's mock). The chain's clock, the mark of an id for a
max age, every source's state, the mark's ``EmaUpdated`` history (the tick history's source)
and, as the FEEDER role, a publish to every source of an id at once (or one price per source).

Time (I14): the publisher refuses a publish time that is not strictly after the id's last one
or that is after the block's; callers stamp prices with :meth:`OracleClient.chain_time`.

Library errors stop at this edge: transport failures are :class:`RpcUnavailable` (reads are
retried with tenacity), refusals :class:`TxRejected` naming the contract's custom error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from eth_abi.abi import decode as abi_decode
from eth_utils.address import is_hex_address, to_checksum_address
from eth_utils.crypto import keccak
from web3.exceptions import ContractLogicError, Web3Exception

from chains.evm.artifacts import load_artifact
from chains.evm.codec import decode_revert
from chains.evm.rpc import TRANSIENT, RpcEndpoints
from chains.evm.sender import TxSender
from shared.errors import ConfigError, InputError, RpcUnavailable, TxRejected
from shared.positions import market_id
from shared.settings import RetrySettings, Settings

__all__ = ["EMA_UPDATED_TOPIC0", "OracleClient", "PriceUpdate", "SourceRow"]

T = TypeVar("T")
EMA_UPDATED_TOPIC0 = "0x" + keccak(text="EmaUpdated(bytes32,uint256,uint256,uint64)").hex()
_U256 = 2**256 - 1
_I64 = 2**63 - 1
PYTH = 1  # MarkOracle.SourceKind.Pyth
_POKE_GAS = 400_000  # a poke of up to 3 sources: ~125k used, ~107k free needed per read


@dataclass(frozen=True, slots=True)
class PriceUpdate:
    """One mark of an oracle id as poked (``EmaUpdated``): ``oracle_id`` = keccak256(name),
    ``publish_time_s`` the oldest publish time of the sources the mark used."""

    oracle_id: bytes
    price_e8: int
    publish_time_s: int
    block_number: int
    log_index: int


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One source of an oracle id as judged for a max age (``MarkOracle.sourceStates``):
    ``kind`` 0 Chainlink / 1 Pyth, ``reason`` the contract's code (0 ok, 1 stale, 2 future,
    3 bound, 4 confidence, 5 deviation, 6 unreadable, 7 non-positive)."""

    kind: int
    feed: str
    price_e8: int
    time_s: int
    reason: int


class OracleClient:
    """``MarkOracle`` (and the devnet's ``FeedPublisher``) on the venue chain: reads through
    tenacity, sends as the feeder."""

    def __init__(self, rpc_url: str, oracle: str, *, chain: str, retry: RetrySettings,
                 sender: TxSender | None = None, feeds: str | None = None,
                 conf_ppm: int = 500) -> None:
        for name, value in (("oracle", oracle), ("feeds", feeds)):
            if value is not None and not is_hex_address(value):
                raise ConfigError(f"chains.{chain}.contracts.{name}", f"not an address: {value!r}")
        self.chain, self.url, self.address = chain, rpc_url, to_checksum_address(oracle)
        self.feeds = to_checksum_address(feeds) if feeds is not None else None
        self._sender, self._conf_ppm = sender, conf_ppm
        self._rpc = RpcEndpoints(chain, [rpc_url], retry)
        self._w3 = self._rpc.current
        self._abi = load_artifact("MarkOracle").abi
        self._feeds_abi = load_artifact("FeedPublisher").abi
        self._contract = self._w3.eth.contract(address=self.address, abi=self._abi)
        self._sources: dict[bytes, list[tuple[int, str, bytes]]] = {}

    @classmethod
    async def connect(cls, rpc_url: str, oracle: str, *, chain: str, retry: RetrySettings,
                      feeder_key: str | None = None, feeds: str | None = None,
                      ) -> OracleClient:
        """Connect (with a feeder key and the publisher: able to publish) and check the oracle
        (and the publisher) have code.

        Raises:
            RpcUnavailable: the endpoint did not answer. ConfigError: no contract there, or a
                feeder key without a publisher.
        """
        if feeder_key and feeds is None:
            raise ConfigError(f"chains.{chain}.contracts.feeds",
                              "publishing needs the devnet's FeedPublisher; not configured")
        sender = (await TxSender.connect(rpc_url, feeder_key, chain=chain,
                                         timeout_s=retry.timeout_s) if feeder_key else None)
        self = cls(rpc_url, oracle, chain=chain, retry=retry, sender=sender, feeds=feeds)
        try:
            for name, address in (("oracle", self.address), ("feeds", self.feeds)):
                if address is None:
                    continue
                code = await self._read("getCode", self._get_code(address))
                if not code:
                    raise ConfigError(f"chains.{chain}.contracts.{name}", f"no code at {address}")
        except BaseException:
            await self.aclose()
            raise
        return self

    def _get_code(self, address: str) -> Callable[[], Awaitable[Any]]:
        return lambda: self._w3.eth.get_code(address)

    @classmethod
    async def from_settings(cls, settings: Settings, *,
                            feeder_key: str | None = None) -> OracleClient:
        """The venue chain's oracle as configured (``chains.<venue_chain>.contracts.oracle``,
        and ``.feeds`` the publisher when it is there)."""
        cfg = settings.chain(settings.venue_chain)
        if "oracle" not in cfg.contracts:
            raise ConfigError(f"chains.{settings.venue_chain}.contracts.oracle", "not configured")
        return await cls.connect(str(cfg.rpc_urls[0]), cfg.contracts["oracle"],
                                 chain=settings.venue_chain, retry=settings.retry,
                                 feeder_key=feeder_key, feeds=cfg.contracts.get("feeds"))

    async def aclose(self) -> None:
        await self._rpc.aclose()
        if self._sender is not None:
            await self._sender.aclose()

    # ----- reads -------------------------------------------------------------------------------

    async def _read(self, op: str, fn: Callable[[], Awaitable[T]]) -> T:
        return await self._rpc.call(op, lambda _w3: fn())

    async def chain_time(self) -> int:
        """The venue chain's clock: the latest block's timestamp (seconds)."""
        block = await self._read("getBlock", lambda: self._w3.eth.get_block("latest"))
        return int(block["timestamp"])

    async def block_number(self) -> int:
        return int(await self._read("blockNumber", lambda: self._w3.eth.block_number))

    async def price_of(self, market: str | bytes, max_age_s: int | None = None
                       ) -> tuple[int, int] | None:
        """(mark_e8, publish_time_s) of an oracle id (a name or its 32-byte id) for an
        operation of ``max_age_s`` (None: any age, as the venue's views read it); None when
        there is no mark (fewer valid sources than the minimum, or an unknown id)."""
        got = await self.mark_of(market, _U256 if max_age_s is None else max_age_s)
        return None if got is None else (got[0], got[1])

    async def mark_of(self, market: str | bytes, max_age_s: int
                      ) -> tuple[int, int, int] | None:
        """(mark_e8, publish_time_s, valid_sources) of ``getMark``; None when refused
        (``TooFewSources``, ``UnknownOracle``)."""
        oracle_id = _oracle_id(market)

        async def call() -> tuple[int, int, int] | None:
            try:
                mark, published, valid = await self._contract.functions.getMark(
                    oracle_id, max_age_s).call()
            except ContractLogicError as exc:
                reason = decode_revert(_revert_data(exc), [self._abi])
                if reason.startswith(("TooFewSources(", "UnknownOracle(")):
                    return None
                raise
            return int(mark), int(published), int(valid)

        return await self._read("getMark", call)

    async def sources(self, market: str | bytes) -> list[tuple[int, str, bytes]]:
        """(kind, feed address, pyth id) of every source of an id, in the oracle's order
        (cached: a reconfiguration needs a new client)."""
        oracle_id = _oracle_id(market)
        if oracle_id not in self._sources:
            rows = await self._read("sources", lambda: self._contract.functions.sources(
                oracle_id).call())
            self._sources[oracle_id] = [(int(k), to_checksum_address(f), bytes(i))
                                        for k, f, i in rows]
        return self._sources[oracle_id]

    async def source_states(self, market: str | bytes, max_age_s: int) -> list[SourceRow]:
        """Every source of an id as judged for ``max_age_s`` (never refused for bad sources);
        [] for an unknown id."""
        oracle_id = _oracle_id(market)
        listed = await self.sources(oracle_id)
        if not listed:
            return []
        rows = await self._read("sourceStates", lambda: self._contract.functions.sourceStates(
            oracle_id, max_age_s).call())
        return [SourceRow(kind, feed, int(p), int(t), int(r))
                for (kind, feed, _), (p, t, r) in zip(listed, rows, strict=True)]

    async def last_published(self, market: str | bytes) -> int:
        """The publisher's last publish time of an id (0: never; no publisher: 0)."""
        if self.feeds is None:
            return 0
        contract = self._w3.eth.contract(address=self.feeds, abi=self._feeds_abi)
        oracle_id = _oracle_id(market)
        return int(await self._read("lastPublish", lambda: contract.functions.lastPublish(
            oracle_id).call()))

    async def price_updates(self, start: int, end: int, oracle_ids: Iterable[bytes], *,
                            max_block_range: int = 2_000) -> list[PriceUpdate]:
        """The marks of ``oracle_ids`` poked in blocks ``start..end`` (``EmaUpdated``), in
        chain order."""
        if start < 0 or end < start:
            raise InputError("range", f"need 0 <= start <= end, got {start}..{end}")
        ids = sorted({bytes(i) for i in oracle_ids})
        if not ids:
            return []
        topic1 = ["0x" + i.hex() for i in ids]
        found: list[PriceUpdate] = []
        for lo in range(start, end + 1, max_block_range):
            params: Any = {"fromBlock": lo, "toBlock": min(lo + max_block_range - 1, end),
                           "address": self.address, "topics": [EMA_UPDATED_TOPIC0, topic1]}
            logs = await self._read(f"getLogs({lo})", self._get_logs(params))
            found += [u for raw in logs if (u := self._decode(raw)) is not None]
        return sorted(found, key=lambda u: (u.block_number, u.log_index))

    def _get_logs(self, params: Any) -> Callable[[], Awaitable[Any]]:
        return lambda: self._w3.eth.get_logs(params)

    def _decode(self, raw: Mapping[str, Any]) -> PriceUpdate | None:
        # SECURITY: the node's address filter is re-checked: anyone can emit a look-alike log.
        if raw.get("removed") or str(raw.get("address", "")).lower() != self.address.lower():
            return None
        topics = [bytes(t) for t in raw.get("topics") or []]
        if len(topics) != 2 or "0x" + topics[0].hex() != EMA_UPDATED_TOPIC0:
            return None
        price, _ema, published = abi_decode(["uint256", "uint256", "uint64"], bytes(raw["data"]))
        return PriceUpdate(topics[1], int(price), int(published), int(raw["blockNumber"]),
                           int(raw["logIndex"]))

    # ----- sends -------------------------------------------------------------------------------

    async def publish(self, prices: Mapping[str, int | Sequence[int]], publish_time_s: int,
                      *, conf_ppm: Mapping[str, Sequence[int | None]] | None = None,
                      ) -> dict[str, tuple[str, int]]:
        """Publish at ``publish_time_s`` (pipelined, one tx per id) and poke each mark;
        returns ``{market: (tx hash, block)}`` once all are mined. Not idempotent.

        A price is one int for every source of the id, or a sequence with one per source in
        the oracle's order (0: that source keeps its last value, a frozen feed). ``conf_ppm``
        gives each Pyth source's confidence relative to its price (None or absent: the
        client's default; Chainlink sources carry none).

        Raises:
            ConfigError: no feeder key. InputError: a price that is not a positive int, or the
                wrong number of per-source prices. TxRejected: refused
                (``PublishTimeNotIncreasing``, ``PublishTimeInFuture``, not the feeder...).
                RpcUnavailable: the node failed while waiting for a receipt.
        """
        if self._sender is None or self.feeds is None:
            raise ConfigError("feeder_key", "publishing a price needs the feeder's key")
        plan = {m: await self._per_source(m, p, (conf_ppm or {}).get(m))
                for m, p in prices.items()}
        contract = self._sender.w3.eth.contract(address=self.feeds, abi=self._feeds_abi)
        hashes = {}
        for m, (ps, cs) in plan.items():
            call = contract.functions.publish(market_id(m), ps, cs, publish_time_s)
            hashes[m] = await self._sender.send(call, gas=await self._limit(call))
        mined = {}
        for market, tx_hash in hashes.items():
            receipt = await self._sender.wait(tx_hash)
            mined[market] = (tx_hash, int(receipt["blockNumber"]))
        return mined

    async def _limit(self, call: Any) -> int:
        """The estimate plus a fifth plus a whole poke (``_POKE_GAS``): an estimate made in
        the block of the last poke sees ``PokeTooSoon`` (cheap, skipped) where the mined
        transaction, one block later, runs the poke and needs every source read's full
        allowance available (``ReadGasTooLow``). Unused gas is not paid for."""
        assert self._sender is not None
        try:
            gas = int(await call.estimate_gas({"from": self._sender.address}))
        except ContractLogicError as exc:
            abis = [self._feeds_abi, self._abi]
            raise TxRejected(self.chain, None, decode_revert(_revert_data(exc), abis)) from exc
        except TRANSIENT as exc:
            raise RpcUnavailable(self.chain, self.url, repr(exc)) from exc
        except Web3Exception as exc:
            raise TxRejected(self.chain, None, f"publish: {exc}") from exc
        return gas + gas // 5 + _POKE_GAS

    async def _per_source(self, market: str, price: int | Sequence[int],
                          conf_ppm: Sequence[int | None] | None) -> tuple[list[int], list[int]]:
        listed = await self.sources(market)
        if not listed:
            raise InputError("market", f"{market}: no sources configured on the oracle")
        prices = [price] * len(listed) if isinstance(price, int) else list(price)
        if len(prices) != len(listed):
            raise InputError("price_e8", f"{market}: {len(prices)} prices for "
                             f"{len(listed)} sources")
        for p in prices:
            if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= _I64:
                raise InputError("price_e8", f"{market}: must be a positive int, got {p!r}")
        if not any(prices):
            raise InputError("price_e8", f"{market}: every source held (all prices 0)")
        ppm = list(conf_ppm) if conf_ppm is not None else [None] * len(listed)
        if len(ppm) != len(listed) or any(
                c is not None and (isinstance(c, bool) or not isinstance(c, int)
                                   or not 0 <= c <= 10**6) for c in ppm):
            raise InputError("conf_ppm", f"{market}: one ppm (or None) per source, got {ppm!r}")
        # ROUNDING: floor; Chainlink sources carry no confidence.
        confs = [p * (self._conf_ppm if c is None else c) // 1_000_000 if k == PYTH else 0
                 for (k, _, _), p, c in zip(listed, prices, ppm, strict=True)]
        return prices, confs


def _oracle_id(market: str | bytes) -> bytes:
    if isinstance(market, str):
        return market_id(market)
    if len(market) != 32:
        raise InputError("market", "an oracle id must be 32 bytes")
    return bytes(market)


def _revert_data(exc: ContractLogicError) -> Any:
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data")
    if data is None and isinstance(exc.message, str) and exc.message.startswith("0x"):
        data = exc.message
    return data
