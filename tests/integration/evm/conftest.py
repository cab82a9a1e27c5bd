"""Fixtures for the EVM integration tests: real anvil processes, mined on demand.

``block_time_s=None`` makes anvil mine one block per transaction and otherwise only on
``evm_mine`` / ``anvil_mine``, so heights in the tests are deterministic.
The keys below are anvil's default dev keys (the public "test test ... junk" mnemonic):
public test keys that every anvil prints; they must never hold value anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from devnet.anvil import start_anvil
from devnet.evm_deploy import deploy_collateral_chain, deploy_venue_chain
from devnet.evm_specs import evm_lanes
from devnet.process import ManagedProcess
from shared.settings import ChainSettings
from tests.support.chain import rpc

DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
)
DEPLOYER_KEY, TRADER_KEY, OTHER_KEY, FEEDER_KEY = DEV_KEYS
TRADER = Account.from_key(TRADER_KEY).address
OTHER = Account.from_key(OTHER_KEY).address
FEEDER = Account.from_key(FEEDER_KEY).address
MINT = {"USDC": 10**15, "WETH": 10**24, "FEE": 10**15}

# Attester keys for the bridge tests: derived from fixed labels, test-only, never funded.
ATTESTER_KEYS = tuple("0x" + keccak(text=f"bulkhead-test-attester-{i}").hex() for i in range(8))



def mine(url: str, blocks: int = 1) -> int:
    """Mine ``blocks`` empty blocks; return the new head height."""
    rpc(url, "anvil_mine", hex(blocks))
    return int(rpc(url, "eth_blockNumber"), 16)


@dataclass(frozen=True)
class Deployed:
    url: str
    manifest: dict[str, Any]

    @property
    def settings(self) -> ChainSettings:
        return ChainSettings(**self.manifest)

    @property
    def vault(self) -> str:
        return str(self.manifest["contracts"]["vault"])

    def asset(self, symbol: str) -> str:
        return str(self.manifest["assets"][symbol]["address"])


@contextlib.contextmanager
def _anvil(chain_id: int, tmp: Path) -> Iterator[ManagedProcess]:
    proc = start_anvil(chain_id, log_path=tmp / f"anvil-{chain_id}.log", block_time_s=None)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def anvil_a(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    with _anvil(31337, tmp_path_factory.mktemp("evm-a")) as proc:
        yield proc


@pytest.fixture(scope="module")
def evm_a(anvil_a: ManagedProcess) -> Deployed:
    """evm-a with USDC, WETH, FEE and a vault; TRADER and OTHER funded."""
    manifest = asyncio.run(
        deploy_collateral_chain(
            anvil_a.url,
            deployer_key=DEPLOYER_KEY,
            traders=[TRADER, OTHER],
            chain_id=31337,
            mint_per_trader=MINT,
        )
    )
    return Deployed(anvil_a.url, manifest)


@pytest.fixture(scope="module")
def evm_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """evm-b with oracle, venue, vault and USDC."""
    with _anvil(31338, tmp_path_factory.mktemp("evm-b")) as proc:
        manifest = asyncio.run(
            deploy_venue_chain(
                proc.url,
                deployer_key=DEPLOYER_KEY,
                chain_id=31338,
                feeder=FEEDER,
                traders=[TRADER],
                mint_per_trader={"USDC": 10**12},
            )
        )
        yield Deployed(proc.url, manifest)


@dataclass(frozen=True)
class BridgePair:
    """evm-a (collateral vault) and evm-b (venue) with attester set 0 = BRIDGE_ATTESTERS, 3 of 4,
    and the venue accepting every (vault, asset) lane of evm-a."""

    collateral: Deployed
    venue: Deployed

    @property
    def venue_address(self) -> str:
        return str(self.venue.manifest["contracts"]["venue"])


BRIDGE_ATTESTERS = ATTESTER_KEYS[:4]


@pytest.fixture(scope="module")
def bridge_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgePair]:
    members = [Account.from_key(k).address for k in BRIDGE_ATTESTERS]
    root = tmp_path_factory.mktemp("bridge-pair")
    with _anvil(31337, root) as proc_a, _anvil(31338, root) as proc_b:
        collateral = asyncio.run(
            deploy_collateral_chain(
                proc_a.url,
                deployer_key=DEPLOYER_KEY,
                traders=[TRADER, OTHER],
                chain_id=31337,
                mint_per_trader=MINT,
                attesters=members,
                threshold=3,
            )
        )
        venue = asyncio.run(
            deploy_venue_chain(
                proc_b.url,
                deployer_key=DEPLOYER_KEY,
                chain_id=31338,
                feeder=FEEDER,
                traders=[TRADER],
                mint_per_trader={"USDC": 10**12},
                attesters=members,
                threshold=3,
                lanes=evm_lanes(collateral),
            )
        )
        yield BridgePair(Deployed(proc_a.url, collateral), Deployed(proc_b.url, venue))
