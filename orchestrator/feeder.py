"""The devnet price feeder: push scripted paths to the venue chain's ``PriceOracle`` (I/O).

:class:`OracleClient` is the oracle seen from Python: the chain's clock, the latest price of a
market, ``setPrice`` as the FEEDER role, and the ``PriceUpdated`` logs (the tick history's
source). :class:`Feeder` publishes a :class:`~orchestrator.risk.price_paths.Scenario`'s prices
tick by tick.

Time (I14): every publish time is the venue chain's latest block timestamp, never the host's
clock. The oracle refuses a publish time that is not strictly after the market's last one or
that is after the block's, so a tick waits until the chain's clock has moved past the last
publish time of each market it updates; ``interval_s`` is only the wall-clock pause between
ticks. All markets of one tick share a publish time and are pipelined into one block.

Library errors stop at this edge: transport failures are :class:`RpcUnavailable` (reads are
retried with tenacity), refusals :class:`TxRejected` naming the oracle's custom error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from eth_abi.abi import decode as abi_decode
from eth_utils.address import is_hex_address, to_checksum_address
from eth_utils.crypto import keccak
from web3.exceptions import ContractLogicError, Web3Exception

from chains.evm.adapter import _TRANSIENT, make_web3
from chains.evm.artifacts import load_artifact
from chains.evm.codec import decode_revert
from chains.evm.locker import TxSender
from chains.retry import with_retries
from orchestrator.errors import ChainError, ConfigError, InputError, RpcUnavailable
from orchestrator.positions import market_id
from orchestrator.risk.price_paths import Scenario, scenario_from_text
from orchestrator.settings import RetrySettings, Settings

__all__ = [
    "PRICE_UPDATED_TOPIC0",
    "Feeder",
    "OracleClient",
    "PriceUpdate",
    "PushedTick",
    "feed_scenario",
    "load_scenario",
]

T = TypeVar("T")
PRICE_UPDATED_TOPIC0 = "0x" + keccak(text="PriceUpdated(bytes32,uint256,uint64)").hex()


@dataclass(frozen=True, slots=True)
class PriceUpdate:
    """One ``PriceUpdated`` log of the oracle: ``oracle_id`` = keccak256(feed name)."""

    oracle_id: bytes
    price_e8: int
    publish_time_s: int
    block_number: int
    log_index: int


@dataclass(frozen=True, slots=True)
class PushedTick:
    """One price the feeder published (``index`` counts the scenario's ticks from 0)."""

    index: int
    market: str
    price_e8: int
    publish_time_s: int
    tx_hash: str
    block_number: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class OracleClient:
    """``PriceOracle`` on the venue chain: reads through tenacity, sends as the feeder."""

    def __init__(self, rpc_url: str, oracle: str, *, chain: str, retry: RetrySettings,
                 sender: TxSender | None = None) -> None:
        if not is_hex_address(oracle):
            raise ConfigError(f"chains.{chain}.contracts.oracle", f"not an address: {oracle!r}")
        self.chain, self.url, self.address = chain, rpc_url, to_checksum_address(oracle)
        self._retry, self._sender = retry, sender
        self._w3 = make_web3(rpc_url, retry.timeout_s)
        self._abi = load_artifact("PriceOracle").abi
        self._contract = self._w3.eth.contract(address=self.address, abi=self._abi)

    @classmethod
    async def connect(cls, rpc_url: str, oracle: str, *, chain: str, retry: RetrySettings,
                      feeder_key: str | None = None) -> OracleClient:
        """Connect (with a feeder key: able to publish) and check the oracle has code.

        Raises:
            RpcUnavailable: the endpoint did not answer. ConfigError: no contract there.
        """
        sender = (await TxSender.connect(rpc_url, feeder_key, chain=chain,
                                         timeout_s=retry.timeout_s) if feeder_key else None)
        self = cls(rpc_url, oracle, chain=chain, retry=retry, sender=sender)
        try:
            code = await self._read("getCode", lambda: self._w3.eth.get_code(self.address))
        except BaseException:
            await self.aclose()
            raise
        if not code:
            await self.aclose()
            raise ConfigError(f"chains.{chain}.contracts.oracle", f"no code at {self.address}")
        return self

    @classmethod
    async def from_settings(cls, settings: Settings, *,
                            feeder_key: str | None = None) -> OracleClient:
        """The venue chain's oracle as configured (``chains.<venue_chain>.contracts.oracle``)."""
        cfg = settings.chain(settings.venue_chain)
        if "oracle" not in cfg.contracts:
            raise ConfigError(f"chains.{settings.venue_chain}.contracts.oracle", "not configured")
        return await cls.connect(str(cfg.rpc_urls[0]), cfg.contracts["oracle"],
                                 chain=settings.venue_chain, retry=settings.retry,
                                 feeder_key=feeder_key)

    async def aclose(self) -> None:
        await self._w3.provider.disconnect()
        if self._sender is not None:
            await self._sender.aclose()

    # ----- reads -------------------------------------------------------------------------------

    async def _read(self, op: str, fn: Callable[[], Awaitable[T]]) -> T:
        async def once() -> T:
            try:
                return await fn()
            except _TRANSIENT as exc:
                raise RpcUnavailable(self.chain, self.url, f"{op}: {exc!r}") from exc
            except Web3Exception as exc:
                raise ChainError(f"{self.chain}: {op} failed: {exc}") from exc

        return await with_retries(self._retry, once)

    async def chain_time(self) -> int:
        """The venue chain's clock: the latest block's timestamp (seconds)."""
        block = await self._read("getBlock", lambda: self._w3.eth.get_block("latest"))
        return int(block["timestamp"])

    async def block_number(self) -> int:
        return int(await self._read("blockNumber", lambda: self._w3.eth.block_number))

    async def price_of(self, market: str | bytes) -> tuple[int, int] | None:
        """(price_e8, publish_time_s) of an oracle market (a name or its 32-byte id); None if
        nothing was ever published for it."""
        oracle_id = _oracle_id(market)

        async def call() -> tuple[int, int] | None:
            try:
                price, published = await self._contract.functions.getPrice(oracle_id).call()
            except ContractLogicError as exc:
                if decode_revert(_revert_data(exc), [self._abi]).startswith("NoPrice("):
                    return None
                raise
            return int(price), int(published)

        return await self._read("getPrice", call)

    async def price_updates(self, start: int, end: int, oracle_ids: Iterable[bytes], *,
                            max_block_range: int = 2_000) -> list[PriceUpdate]:
        """``PriceUpdated`` logs of ``oracle_ids`` in blocks ``start..end``, in chain order."""
        if start < 0 or end < start:
            raise InputError("range", f"need 0 <= start <= end, got {start}..{end}")
        ids = sorted({bytes(i) for i in oracle_ids})
        if not ids:
            return []
        topic1 = ["0x" + i.hex() for i in ids]
        found: list[PriceUpdate] = []
        for lo in range(start, end + 1, max_block_range):
            params: Any = {"fromBlock": lo, "toBlock": min(lo + max_block_range - 1, end),
                           "address": self.address, "topics": [PRICE_UPDATED_TOPIC0, topic1]}
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
        if len(topics) != 2 or "0x" + topics[0].hex() != PRICE_UPDATED_TOPIC0:
            return None
        price, published = abi_decode(["uint256", "uint64"], bytes(raw["data"]))
        return PriceUpdate(topics[1], int(price), int(published), int(raw["blockNumber"]),
                           int(raw["logIndex"]))

    # ----- sends -------------------------------------------------------------------------------

    async def publish(self, prices: Mapping[str, int], publish_time_s: int
                      ) -> dict[str, tuple[str, int]]:
        """Publish ``{market: price_e8}`` at ``publish_time_s`` (pipelined, one tx each);
        returns ``{market: (tx hash, block)}`` once all are mined. Not idempotent.

        Raises:
            ConfigError: no feeder key. InputError: a price that is not a positive int.
            TxRejected: refused (``PublishTimeNotIncreasing``, ``PublishTimeInFuture``, not the
                feeder...). RpcUnavailable: the node failed while waiting for a receipt.
        """
        if self._sender is None:
            raise ConfigError("feeder_key", "publishing a price needs the oracle feeder's key")
        for market, price in prices.items():
            if isinstance(price, bool) or not isinstance(price, int) or not 0 < price < 2**256:
                raise InputError("price_e8", f"{market}: must be a positive int, got {price!r}")
        contract = self._sender.w3.eth.contract(address=self.address, abi=self._abi)
        hashes = {m: await self._sender.send(
            contract.functions.setPrice(market_id(m), p, publish_time_s))
            for m, p in prices.items()}
        mined = {}
        for market, tx_hash in hashes.items():
            receipt = await self._sender.wait(tx_hash)
            mined[market] = (tx_hash, int(receipt["blockNumber"]))
        return mined


class Feeder:
    """Publishes per-market price lists tick by tick, chain-time aware.

    Args:
        oracle: an :class:`OracleClient` with the feeder key.
        interval_s: wall-clock pause between ticks (>= 0).
        progress: called with every :class:`PushedTick`, in order.
        max_wait_s: how long to wait for the chain's clock to pass a market's last publish
            time before giving up with :class:`ChainError` (a chain that stopped producing
            blocks).
    """

    def __init__(self, oracle: OracleClient, *, interval_s: float = 1.0,
                 progress: Callable[[PushedTick], None] | None = None,
                 max_wait_s: float = 30.0, poll_s: float = 0.1) -> None:
        if not 0 <= interval_s <= 3_600:
            raise InputError("interval", f"must be within 0..3600 s, got {interval_s!r}")
        self.oracle, self.interval_s, self.progress = oracle, interval_s, progress
        self.max_wait_s, self.poll_s = max_wait_s, poll_s

    async def run(self, plan: Mapping[str, Sequence[int]]) -> list[PushedTick]:
        """Publish ``plan[market][i]`` for every market at tick ``i``; returns every tick."""
        last = {m: (p[1] if (p := await self.oracle.price_of(m)) else 0) for m in plan}
        pushed: list[PushedTick] = []
        for index in range(max((len(p) for p in plan.values()), default=0)):
            started = time.monotonic()
            prices = {m: p[index] for m, p in plan.items() if index < len(p)}
            now = await self._chain_time_after(max(last[m] for m in prices))
            mined = await self.oracle.publish(prices, now)
            for market, price in prices.items():
                last[market] = now
                tick = PushedTick(index, market, price, now, *mined[market])
                pushed.append(tick)
                if self.progress is not None:
                    self.progress(tick)
            if index + 1 < max(len(p) for p in plan.values()):
                await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))
        return pushed

    async def _chain_time_after(self, last_s: int) -> int:
        # INVARIANT (I14): publish time = the chain's clock, strictly after the last publish.
        deadline = time.monotonic() + self.max_wait_s
        while (now := await self.oracle.chain_time()) <= last_s:
            if time.monotonic() > deadline:
                raise ChainError(f"{self.oracle.chain}: chain time stuck at {now} <= last "
                                 f"publish {last_s} for {self.max_wait_s}s")
            await asyncio.sleep(self.poll_s)
        return now


async def feed_scenario(settings: Settings, feeder_key: str, scenario: Scenario, *,
                        progress: Callable[[PushedTick], None] | None = None,
                        interval_s: float | None = None) -> list[PushedTick]:
    """Push ``scenario`` to the venue chain's oracle as the feeder (the CLI's and demo's way).

    A feed without a start continues from the oracle's current price of its market.

    Raises:
        InputError: a feed without a start whose market has no price yet, or a path out of
            range. TxRejected, RpcUnavailable, ChainError: from the chain.
    """
    oracle = await OracleClient.from_settings(settings, feeder_key=feeder_key)
    try:
        current = {}
        for feed in scenario.feeds:
            if feed.start_price_e8 is None and (found := await oracle.price_of(feed.market)):
                current[feed.market] = found[0]
        plan = scenario.prices(current)
        feeder = Feeder(oracle, progress=progress,
                        interval_s=scenario.interval_s if interval_s is None else interval_s)
        return await feeder.run(plan)
    finally:
        await oracle.aclose()


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


def load_scenario(path: Path) -> Scenario:
    """Read a ``.toml`` or ``.json`` scenario file (by suffix; anything else is read as TOML).

    Raises:
        InputError: unreadable or malformed file (field ``scenario``), or a bad field.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError("scenario", f"{path}: {exc.strerror or exc}") from exc
    return scenario_from_text(text, name=str(path), json_format=path.suffix.lower() == ".json")
