"""The reference venue (evm-b, chain 31338) on its own anvil, as the venue tests drive it.

:func:`deployed_venue` starts anvil (mined on demand), deploys the devnet's venue chain with
test attester set 0 (3 of the 4 ``MEMBERS``), OTHER as risk updater and the insurance fund
seeded; :class:`VenueChain` sends and reads refusals, logs and chain time, and credits
attested locks. Test modules subclass it with their own scenario helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from eth_account import Account
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from chains.evm.artifacts import load_artifact
from chains.evm.bridge_codec import struct_tuple
from chains.evm.codec import decode_revert
from chains.evm.venue import VenueClient
from devnet.anvil import start_anvil
from devnet.evm_deploy import deploy_venue_chain
from devnet.evm_specs import DEFAULT_VENUE_MARKETS, LaneSpec, VenueMarkets, market_id
from shared.chain import ChainKind, ChainRef
from shared.ids import address_to_bytes32
from shared.messages import Domain, LockAttestation, sign
from shared.settings import RetrySettings
from tests.integration.evm.conftest import (
    ATTESTER_KEYS,
    DEPLOYER_KEY,
    FEEDER,
    FEEDER_KEY,
    OTHER,
    TRADER,
    TRADER_KEY,
    rpc,
)

T = TypeVar("T")
CHAIN_ID, SRC = 31338, 31337
DEPLOYER = Account.from_key(DEPLOYER_KEY).address
MEMBERS = ATTESTER_KEYS[:4]
E18, E8, PPM = 10**18, 10**8, 10**6
USDC_UNIT = 10**6
BIG = 10**30
INSURANCE_SEED = 10_000 * E18
VAULT = bytes.fromhex(address_to_bytes32("0x" + "a1" * 20)[2:])
USDC = bytes.fromhex(address_to_bytes32("0x" + "c6" * 20)[2:])
ETH = market_id("ETH-USD")
USDC_FEED = market_id("USDC")
VENUE_ABI = load_artifact("IsolatedMarginVenue").abi
ORACLE_ABI = load_artifact("MarkOracle").abi
FEEDS_ABI = load_artifact("FeedPublisher").abi
ANY_AGE = 2**256 - 1
RETRY = RetrySettings(max_attempts=2, initial_s=0.05, max_s=0.1, timeout_s=10)
CHAIN_B = ChainRef("evm-b", ChainKind.EVM, CHAIN_ID)


def run(body: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(body())


def unlimited_lane(src_chain_id: int, vault: bytes, asset: bytes, decimals: int,
                   **extra: Any) -> LaneSpec:
    """A lane whose limits never bind: ceiling, cap and large threshold ``BIG``."""
    return LaneSpec(src_chain_id, "0x" + vault.hex(), "0x" + asset.hex(), decimals,
                    ceiling=BIG, cap=BIG, large_threshold=BIG, delay_s=3600, **extra)


@dataclass
class VenueChain:
    """The venue and its oracle on one anvil, driven with anvil's unlocked dev accounts."""

    w3: Web3
    url: str
    venue: Contract
    oracle: Contract
    feeds: Contract

    receipt_timeout_s: ClassVar[float] = 10

    def send(self, fn: Any, sender: str = TRADER, **tx: Any) -> Any:
        receipt = self.w3.eth.wait_for_transaction_receipt(
            fn.transact({"from": sender, **tx}), timeout=self.receipt_timeout_s,
            poll_latency=0.02)
        assert receipt["status"] == 1, receipt
        return receipt

    def refused(self, fn: Any, sender: str = TRADER) -> str:
        """The decoded revert of calling ``fn`` as ``sender`` (it must revert)."""
        with pytest.raises(ContractLogicError) as info:
            fn.call({"from": sender})
        assert isinstance(info.value.data, str), info.value
        return decode_revert(info.value.data, [VENUE_ABI, ORACLE_ABI, FEEDS_ABI])

    def logs(self, event: str, receipt: Any) -> list[Any]:
        return list(self.venue.events[event]().process_receipt(receipt, errors=DISCARD))

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def advance(self, seconds: int) -> None:
        rpc(self.url, "evm_increaseTime", hex(seconds))
        rpc(self.url, "evm_mine")

    def set_prices(self, values: dict[bytes, int]) -> int:
        """Publish ``values`` (oracle id -> e8 price, as the feeder) to every source of each
        id, all at one publishTime later than every current one; returns that time."""
        last = max(int(self.feeds.functions.lastPublish(i).call()) for i in values)
        if self.now() <= last:
            self.advance(1)
        t = self.now()
        for oracle_id, value in values.items():
            self.send(self.publish_call(oracle_id, value, t), sender=FEEDER)
        return t

    def publish_call(self, oracle_id: bytes, value: int, t: int) -> Any:
        """The publisher's call writing ``value`` to every source of ``oracle_id`` at ``t``."""
        n = len(self.oracle.functions.sources(oracle_id).call())
        return self.feeds.functions.publish(oracle_id, [value] * n, [0] * n, t)

    def mark(self, oracle_id: bytes, max_age: int = ANY_AGE) -> tuple[int, int]:
        """(mark_e8, publish_time) of an id for ``max_age`` (reverts TooFewSources)."""
        mark, t, _ = self.oracle.functions.getMark(oracle_id, max_age).call()
        return int(mark), int(t)

    def signatures(self, attestation: LockAttestation) -> list[bytes]:
        """3 of the 4 members' signatures over the venue's domain, by ascending address."""
        domain = Domain(CHAIN_ID, self.venue.address)
        ordered = sorted(MEMBERS[:3], key=lambda k: int(Account.from_key(k).address, 16))
        return [sign(attestation, domain, k) for k in ordered]

    def credit_attested(self, attestation: LockAttestation) -> Any:
        """Credit one lock as the relayer would (sent by OTHER); returns the receipt."""
        return self.send(self.venue.functions.credit(struct_tuple(attestation),
                                                     self.signatures(attestation)),
                         sender=OTHER)

    async def client(self, key: str = TRADER_KEY) -> VenueClient:
        return await VenueClient.connect([self.url], self.venue.address, chain=CHAIN_B,
                                         sender_key=key, retry=RETRY)


V = TypeVar("V", bound=VenueChain)


@contextlib.contextmanager
def deployed_venue(cls: type[V], tmp: Path, lanes: Sequence[LaneSpec], *,
                   markets: VenueMarkets | None = DEFAULT_VENUE_MARKETS,
                   http_timeout_s: float = 10) -> Iterator[V]:
    """A fresh anvil with the venue deployed and ``INSURANCE_SEED`` in its insurance fund,
    as ``cls``; anvil is stopped on exit (its log is ``tmp/anvil.log``)."""
    proc = start_anvil(CHAIN_ID, log_path=tmp / "anvil.log", block_time_s=None)
    try:
        manifest = asyncio.run(deploy_venue_chain(
            proc.url, deployer_key=DEPLOYER_KEY, chain_id=CHAIN_ID, feeder=FEEDER,
            traders=[TRADER], mint_per_trader={"USDC": 10**12},
            attesters=[Account.from_key(k).address for k in MEMBERS], threshold=3,
            lanes=lanes, markets=markets, feeder_key=FEEDER_KEY, risk_updater=OTHER))
        w3 = Web3(Web3.HTTPProvider(proc.url, request_kwargs={"timeout": http_timeout_s}))
        contracts = manifest["contracts"]
        chain = cls(w3, proc.url, w3.eth.contract(address=contracts["venue"], abi=VENUE_ABI),
                    w3.eth.contract(address=contracts["oracle"], abi=ORACLE_ABI),
                    w3.eth.contract(address=contracts["feeds"], abi=FEEDS_ABI))
        chain.send(chain.venue.functions.fundInsurance(INSURANCE_SEED), sender=DEPLOYER)
        yield chain
    finally:
        proc.stop()
