"""The conformance suite against the reference venue on a real anvil, plus its bulk read figure.

evm-b is deployed as the devnet deploys it (``deploy_venue_chain``: MarkOracle and its feeds, venue, the
default ETH-USD market and USDC / WETH collateral feeds) with test attester set 0 (3 of 4).
Collateral is credited through the adapter's own ``credit`` with attestations signed by 3 of
the 4 test attester keys, as the bridge's relayer would; trades are opened by the owner and
prices published by the feeder, with anvil's unlocked dev accounts. Anvil mines on demand, so
chain time only moves with our transactions.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from eth_utils.crypto import keccak

from orchestrator.venues import VenueAdapter
from orchestrator.venues.reference import ReferenceVenue
from shared.chain import ChainKind, ChainRef
from shared.ids import address_to_bytes32
from shared.messages import LockAttestation
from shared.settings import RetrySettings
from tests.conformance.suite import *  # the suite's tests are collected here
from tests.integration.evm.conftest import OTHER, OTHER_KEY, TRADER, rpc
from tests.integration.evm.venue_env import (
    CHAIN_ID,
    E8,
    ETH,
    SRC,
    USDC,
    USDC_FEED,
    USDC_UNIT,
    VAULT,
    VenueChain,
    deployed_venue,
    unlimited_lane,
)

pytestmark = pytest.mark.integration

OPEN_AT_E8, CRASH_AT_E8 = 3_000 * E8, 1_650 * E8  # 1 ETH on 320 USDC: -45 % is bankrupt
RETRY = RetrySettings(max_attempts=3, initial_s=0.05, max_s=0.2, timeout_s=20)
_ids = itertools.count(1)


class ReferenceDevnet(VenueChain):
    """evm-b with the reference venue; implements the suite's ``VenueScenarios``."""

    receipt_timeout_s: ClassVar[float] = 30

    def publish(self, eth_e8: int) -> None:
        """ETH-USD at ``eth_e8`` and USDC at 1, stamped with a fresh chain time."""
        self.set_prices({ETH: eth_e8, USDC_FEED: E8})

    def attestation(self, key: bytes, amount: int) -> tuple[LockAttestation, list[bytes]]:
        a = LockAttestation(
            src_chain_id=SRC, src_vault=VAULT, lock_id=keccak(text=f"conf-lock-{next(_ids)}"),
            owner=bytes.fromhex(address_to_bytes32(TRADER)[2:]), beneficiary=TRADER,
            src_asset=USDC, amount=amount, decimals=6, position_key=key, attester_set_index=0)
        return a, self.signatures(a)

    # ----- VenueScenarios ---------------------------------------------------------------------

    async def open_position(self, adapter: VenueAdapter) -> str:
        salt = keccak(text=f"conformance-{os.getpid()}-{next(_ids)}")
        key = bytes(self.venue.functions.positionKeyOf(TRADER, salt).call())
        await adapter.credit(*self.attestation(key, 320 * USDC_UNIT))
        self.publish(OPEN_AT_E8)
        self.send(self.venue.functions.open(key, ETH, 10**18), TRADER)
        return "0x" + key.hex()

    async def make_liquidatable(self, adapter: VenueAdapter, key: str) -> None:
        self.publish(CRASH_AT_E8)

    async def restore_prices(self, adapter: VenueAdapter) -> None:
        self.publish(OPEN_AT_E8)

    async def attested_lock(self, adapter: VenueAdapter, key: str
                            ) -> tuple[LockAttestation, list[bytes]]:
        return self.attestation(bytes.fromhex(key[2:]), 5 * USDC_UNIT)


@pytest.fixture(scope="module")
def reference_devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReferenceDevnet]:
    with deployed_venue(ReferenceDevnet, tmp_path_factory.mktemp("conformance"),
                        [unlimited_lane(SRC, VAULT, USDC, 6)], http_timeout_s=20) as devnet:
        yield devnet


@pytest.fixture
def venue_scenarios(reference_devnet: ReferenceDevnet) -> ReferenceDevnet:
    return reference_devnet


@pytest.fixture
def venue_adapter_factory(reference_devnet: ReferenceDevnet) -> Any:
    async def factory() -> VenueAdapter:
        return await ReferenceVenue.connect(
            [reference_devnet.url], reference_devnet.venue.address,
            chain=ChainRef("evm-b", ChainKind.EVM, CHAIN_ID), retry=RETRY,
            sender_key=OTHER_KEY, with_venue_margin=True)

    return factory


# ----- the bulk read: N positions in one pass ------------------------------------------------


def _batch_send(url: str, txs: list[dict[str, Any]]) -> None:
    body = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "eth_sendTransaction",
                        "params": [tx]} for i, tx in enumerate(txs)]).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        answers = json.loads(response.read())
    errors = [a["error"] for a in answers if "error" in a]
    assert not errors, errors[:3]


def _open_many(devnet: ReferenceDevnet, n: int) -> list[str]:
    """n positions of 320 USDC each, credited in batches and opened in a few blocks."""
    keys = [bytes(keccak(text=f"bulk-{os.getpid()}-{next(_ids)}")) for _ in range(n)]
    keys = [bytes(devnet.venue.functions.positionKeyOf(TRADER, salt).call()) for salt in keys]
    from chains.evm.bridge_codec import struct_tuple

    signed = [devnet.attestation(k, 320 * USDC_UNIT) for k in keys]
    for i in range(0, n, 40):
        chunk = signed[i:i + 40]
        devnet.send(devnet.venue.functions.creditBatch(
            [struct_tuple(a) for a, _ in chunk], [s for _, s in chunk]), OTHER)
    devnet.publish(OPEN_AT_E8)
    rpc(devnet.url, "evm_setAutomine", False)
    try:
        nonce = devnet.w3.eth.get_transaction_count(TRADER)
        data = [devnet.venue.encode_abi("open", args=[k, ETH, (1 + i % 4) * 10**17])
                for i, k in enumerate(keys)]
        txs = [{"from": TRADER, "to": devnet.venue.address, "data": d, "gas": hex(700_000),
                "nonce": hex(nonce + i)} for i, d in enumerate(data)]
        for i in range(0, n, 200):
            _batch_send(devnet.url, txs[i:i + 200])
        while int(rpc(devnet.url, "eth_getTransactionCount", TRADER, "latest"), 16) < nonce + n:
            rpc(devnet.url, "evm_mine")
    finally:
        rpc(devnet.url, "evm_setAutomine", True)
    return ["0x" + k.hex() for k in keys]


@pytest.mark.slow
def test_bulk_read_of_many_positions_takes_a_few_seconds(
        reference_devnet: ReferenceDevnet, venue_adapter_factory: Any) -> None:
    n = int(os.environ.get("BULKHEAD_BULK_POSITIONS", "500"))
    keys = _open_many(reference_devnet, n)

    async def read() -> tuple[int, float]:
        adapter = await venue_adapter_factory()
        try:
            await adapter.read_positions(keys[:10])  # warm the connection
            started = time.perf_counter()
            snaps = await adapter.read_positions(keys)
            return len(snaps), time.perf_counter() - started
        finally:
            await adapter.aclose()

    count, seconds = asyncio.run(read())
    print(f"\nread_positions: {count} open positions (with marginOf) in {seconds:.2f} s")
    assert count == n
    assert seconds < 10  # ~1 s per 1,000 positions on a loaded 2-core host
