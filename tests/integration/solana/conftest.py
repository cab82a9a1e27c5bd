"""Fixtures for the Solana integration tests: the local Solana RPC on a free port, deployed.

Slots are 100 ms and finality lags 8 slots, so "finalized" is under a second away. Every node
is stopped in a ``finally`` even when a test crashes.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from chains.solana.adapter import SolanaAdapter
from chains.solana.locker import lock_on_solana
from devnet.process import ManagedProcess
from devnet.solana_deploy import SolanaDeployment, deploy_solana
from devnet.solana_rpc import start_local_solana
from shared.chain import ChainKind, ChainRef, Finality
from shared.settings import RetrySettings

SLOT_MS, FINALITY_LAG = 100, 8
THRESHOLD, N_ATTESTERS = 3, 4
MINT_PER_TRADER = 1_000_000 * 10**6
VENUE = "0x" + "5e" * 20
BENEFICIARY = "0x" + "be" * 20
POSITION_KEY = "0x" + "a1" * 32
VAULT_FUNDING = 100 * 10**6


def rpc(url: str, method: str, *params: Any) -> Any:
    """One raw JSON-RPC call (the ``bulkhead_`` test controls, raw wire checks)."""
    answer = rpc_raw(url, {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def rpc_raw(url: str, payload: Any) -> Any:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # loopback only
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # e.g. 413 still carries a JSON-RPC error body
        return json.loads(exc.read())


def wait_until(predicate: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def wait_finalized(url: str, slot: int) -> None:
    wait_until(lambda: rpc(url, "getSlot", {"commitment": "finalized"}) >= slot)


@dataclass
class SolanaEnv:
    """A running node with a deployment: keys, accounts and the settings section."""

    node: ManagedProcess
    deployment: SolanaDeployment
    payer: Keypair
    attesters: list[Keypair]
    traders: list[Keypair]

    @property
    def url(self) -> str:
        return self.node.url

    @property
    def mint(self) -> Pubkey:
        return Pubkey.from_string(self.deployment.extras["mint"])

    @property
    def vault(self) -> Pubkey:
        return Pubkey.from_string(self.deployment.extras["vault"])

    @property
    def multisig(self) -> Pubkey:
        return Pubkey.from_string(self.deployment.extras["multisig"])

    @property
    def seize_token_account(self) -> Pubkey:
        return Pubkey.from_string(self.deployment.extras["seize_token_account"])

    def token_balance(self, account: Pubkey) -> int:
        """Base units held by a token account (0 if it does not exist)."""
        answer = rpc_raw(self.url, {"jsonrpc": "2.0", "id": 1, "method": "getTokenAccountBalance",
                                    "params": [str(account), {"commitment": "confirmed"}]})
        return int(answer["result"]["value"]["amount"]) if "result" in answer else 0

    def token_account(self, trader: Keypair) -> Pubkey:
        accounts = self.deployment.extras["trader_token_accounts"]
        return Pubkey.from_string(accounts[str(trader.pubkey())]["USDC"])

    def adapter(self, finality: Finality = Finality.FINALIZED) -> SolanaAdapter:
        return SolanaAdapter(
            ChainRef("solana", ChainKind.SOLANA, 900001), [self.url],
            vaults=[str(self.vault)], assets={str(self.mint): 6}, finality=finality,
            retry=RetrySettings(max_attempts=2, initial_s=0.05, max_s=0.1, timeout_s=5))


def _start(tmp: Path) -> ManagedProcess:
    return start_local_solana(log_path=tmp / "solana.log", slot_ms=SLOT_MS,
                              finality_lag=FINALITY_LAG)


def _deploy(node: ManagedProcess) -> SolanaEnv:
    payer, attesters = Keypair(), [Keypair() for _ in range(N_ATTESTERS)]
    traders = [Keypair() for _ in range(2)]
    deployment = asyncio.run(deploy_solana(
        node.url, payer=payer, attesters=[a.pubkey() for a in attesters], threshold=THRESHOLD,
        traders=traders, mint_per_trader=MINT_PER_TRADER))
    env = SolanaEnv(node, deployment, payer, attesters, traders)
    wait_finalized(node.url, rpc(node.url, "getSlot", {"commitment": "confirmed"}))
    return env


@pytest.fixture(scope="module")
def solana_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    node = _start(tmp_path_factory.mktemp("solana"))
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def solana_env(solana_node: ManagedProcess) -> SolanaEnv:
    return _deploy(solana_node)


@pytest.fixture
def fresh_solana_env(tmp_path: Path) -> Iterator[SolanaEnv]:
    """A node of its own, for tests that rewrite history (dropUnfinalized)."""
    node = _start(tmp_path)
    try:
        yield _deploy(node)
    finally:
        node.stop()


@pytest.fixture
def released_finality(solana_env: SolanaEnv) -> Iterator[SolanaEnv]:
    """The shared node, with finality released again whatever the test did."""
    try:
        yield solana_env
    finally:
        rpc(solana_env.url, "bulkhead_holdFinality", False)
        rpc(solana_env.url, "bulkhead_resumeSlots")


@pytest.fixture(scope="module")
def funded_vault(solana_env: SolanaEnv) -> SolanaEnv:
    """The module's deployment with ``VAULT_FUNDING`` base units locked into the vault."""
    trader = solana_env.traders[0]
    asyncio.run(lock_on_solana(
        solana_env.url, trader=trader, trader_token_account=solana_env.token_account(trader),
        vault_token_account=solana_env.vault, mint=solana_env.mint, decimals=6,
        amount=VAULT_FUNDING, dst_chain_id=31338, dst_venue=VENUE, position_key=POSITION_KEY,
        beneficiary=BENEFICIARY))
    return solana_env
