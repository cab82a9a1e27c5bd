"""The venue chain's ``PriceOracle`` seen from Python (I/O): the chain's clock, the latest
price of a market, ``setPrice`` as the FEEDER role, and the ``PriceUpdated`` logs (the tick
history's source). The risk worker reads through it; the devnet feeder publishes through it.

Time (I14): the oracle refuses a publish time that is not strictly after the market's last one
or that is after the block's; callers stamp prices with :meth:`OracleClient.chain_time`.

Library errors stop at this edge: transport failures are :class:`RpcUnavailable` (reads are
retried with tenacity), refusals :class:`TxRejected` naming the oracle's custom error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from eth_abi.abi import decode as abi_decode
from eth_utils.address import is_hex_address, to_checksum_address
from eth_utils.crypto import keccak
from web3.exceptions import ContractLogicError

from chains.evm.artifacts import load_artifact
from chains.evm.codec import decode_revert
from chains.evm.rpc import RpcEndpoints
from chains.evm.sender import TxSender
from shared.errors import ConfigError, InputError
from shared.positions import market_id
from shared.settings import RetrySettings, Settings

__all__ = ["PRICE_UPDATED_TOPIC0", "OracleClient", "PriceUpdate"]

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


class OracleClient:
    """``PriceOracle`` on the venue chain: reads through tenacity, sends as the feeder."""

    def __init__(self, rpc_url: str, oracle: str, *, chain: str, retry: RetrySettings,
                 sender: TxSender | None = None) -> None:
        if not is_hex_address(oracle):
            raise ConfigError(f"chains.{chain}.contracts.oracle", f"not an address: {oracle!r}")
        self.chain, self.url, self.address = chain, rpc_url, to_checksum_address(oracle)
        self._retry, self._sender = retry, sender
        self._rpc = RpcEndpoints(chain, [rpc_url], retry)
        self._w3 = self._rpc.current
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
