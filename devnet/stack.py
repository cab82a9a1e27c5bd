"""``bulkhead devnet up | status | down``: the embedded local default of DESIGN §1.

``up`` starts redis-server, two anvil chains (``evm-a`` 31337, ``evm-b`` 31338) and the local
Solana RPC on free loopback ports, deploys the contracts and SPL accounts, and writes
``<home>/devnet/manifest.json`` in the settings' own shape, so every later command loads it
with no flags. Process ids go to ``<home>/devnet/processes.json`` before deploying, so ``down``
can stop a half-started stack too. Keys in the manifest are devnet-only test keys.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from solders.keypair import Keypair

from devnet.anvil import start_anvil
from devnet.keys import TRADERS, DevnetRoles, anvil_key
from devnet.process import ManagedProcess, pid_alive, stop_pid
from devnet.redis_server import start_redis
from shared.errors import DevnetError

__all__ = ["DevnetOptions", "devnet_dir", "down", "read_manifest", "up"]

EVM_A, EVM_B, SOLANA = "evm-a", "evm-b", "solana"
CHAIN_IDS = {EVM_A: 31337, EVM_B: 31338, SOLANA: 900001}
ATTESTERS, THRESHOLD = 4, 3
MINT_EVM = {"USDC": 1_000_000 * 10**6, "WETH": 1_000 * 10**18, "FEE": 1_000_000 * 10**6}
MINT_SOLANA = 1_000_000 * 10**6


@dataclass(frozen=True)
class DevnetOptions:
    block_time_s: float | None = 1.0
    slots_in_an_epoch: int = 4  # anvil: safe = latest-4, finalized = latest-8
    slot_ms: int = 400
    solana_finality_lag: int = 32
    detach: bool = True  # False ties the processes to this one (tests)
    # Markets whose EWMA volatility buffer the risk worker drives (``risk.buffer_markets`` in
    # the manifest): every devnet market. Suites that check liquidation arithmetic against a
    # fixed maintenance rate pass () and test the buffer on its own.
    buffer_markets: tuple[str, ...] = ("ETH-USD",)
    # The venue chain's block gas limit (anvil's default, 30M, when None): the benchmarks lift
    # it to show how the credit burst grows when the venue chain's capacity does.
    venue_gas_limit: int | None = None


def devnet_dir(home: Path) -> Path:
    return home / "devnet"


def read_manifest(home: Path) -> dict[str, Any]:
    path = devnet_dir(home) / "manifest.json"
    if not path.is_file():
        raise DevnetError(f"no devnet manifest at {path}: run `bulkhead devnet up`")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def running_processes(home: Path) -> dict[str, dict[str, Any]]:
    path = devnet_dir(home) / "processes.json"
    if not path.is_file():
        return {}
    procs: dict[str, dict[str, Any]] = json.loads(path.read_text())
    return procs


def up(home: Path, opts: DevnetOptions = DevnetOptions(),
       progress: Callable[[str], None] = lambda _msg: None) -> dict[str, Any]:
    """Start and deploy the local stack; returns the manifest. Refuses if one is already up."""
    root = devnet_dir(home)
    live = {k: v for k, v in running_processes(home).items() if pid_alive(int(v["pid"]))}
    if live:
        raise DevnetError(f"a devnet is already running ({', '.join(sorted(live))}); "
                          "`bulkhead devnet down` first")
    root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    procs: dict[str, ManagedProcess] = {}
    try:
        procs.update(_start_processes(root, opts, progress))
        progress("deploying contracts and SPL accounts")
        manifest = asyncio.run(_deploy(procs, opts))
    except BaseException:
        for proc in procs.values():
            proc.stop()
        (root / "processes.json").unlink(missing_ok=True)
        raise
    manifest["devnet"]["ready_s"] = round(time.monotonic() - started, 3)
    _write_json(root / "manifest.json", manifest)
    return manifest


def _start_processes(root: Path, opts: DevnetOptions,
                     progress: Callable[[str], None]) -> dict[str, ManagedProcess]:
    from devnet.solana_rpc import start_local_solana

    logs = root / "logs"
    procs: dict[str, ManagedProcess] = {}

    def record(name: str, proc: ManagedProcess) -> None:
        procs[name] = proc
        _write_json(root / "processes.json", {
            k: {"pid": p.pid, "port": p.port, "log": str(p.log_path)} for k, p in procs.items()})

    progress("starting redis-server")
    record("redis", start_redis(log_path=logs / "redis.log", data_dir=root / "redis",
                                detach=opts.detach))
    for key in (EVM_A, EVM_B):
        progress(f"starting anvil {key} (chain id {CHAIN_IDS[key]})")
        extra = ("--gas-limit", str(opts.venue_gas_limit)) \
            if key == EVM_B and opts.venue_gas_limit else ()
        record(key, start_anvil(CHAIN_IDS[key], log_path=logs / f"{key}.log",
                                block_time_s=opts.block_time_s,
                                slots_in_an_epoch=opts.slots_in_an_epoch, detach=opts.detach,
                                extra_args=extra))
    progress("starting the local Solana RPC")
    record(SOLANA, start_local_solana(log_path=logs / "solana.log", slot_ms=opts.slot_ms,
                                      finality_lag=opts.solana_finality_lag, detach=opts.detach))
    return procs


async def _deploy(procs: dict[str, ManagedProcess], opts: DevnetOptions) -> dict[str, Any]:
    from solders.pubkey import Pubkey

    from devnet.evm_deploy import deploy_collateral_chain, deploy_venue_chain, register_lanes
    from devnet.evm_specs import evm_lanes, solana_lane
    from devnet.solana_deploy import deploy_solana

    roles = DevnetRoles()
    deployer = anvil_key(roles.deployer)
    trader_keys = [roles.trader_key(i) for i in range(len(TRADERS))]
    trader_addrs = [Account.from_key(k).address for k in trader_keys]
    sol_payer, sol_traders = Keypair(), [Keypair() for _ in TRADERS]
    evm_attesters = [Account.create() for _ in range(ATTESTERS)]
    sol_attesters = [Keypair() for _ in range(ATTESTERS)]
    members = [a.address for a in evm_attesters]
    evm_a, evm_b, sol = await asyncio.gather(
        deploy_collateral_chain(procs[EVM_A].url, deployer_key=deployer, traders=trader_addrs,
                                chain_id=CHAIN_IDS[EVM_A], mint_per_trader=MINT_EVM,
                                attesters=members, threshold=THRESHOLD),
        deploy_venue_chain(procs[EVM_B].url, deployer_key=deployer, chain_id=CHAIN_IDS[EVM_B],
                           feeder=Account.from_key(anvil_key(roles.feeder)).address,
                           traders=trader_addrs, mint_per_trader={"USDC": MINT_EVM["USDC"]},
                           attesters=members, threshold=THRESHOLD,
                           feeder_key=anvil_key(roles.feeder),
                           risk_updater=Account.from_key(anvil_key(roles.risk)).address,
                           pauser=Account.from_key(anvil_key(roles.accountant)).address),
        deploy_solana(procs[SOLANA].url, payer=sol_payer,
                      attesters=[k.pubkey() for k in sol_attesters], threshold=THRESHOLD,
                      traders=sol_traders, mint_per_trader=MINT_SOLANA),
    )
    sol_section, sol_extra = _split_solana(sol)
    # Each lane's accountant ceiling is sized by the deployment: all the token this devnet
    # ever minted on that chain (every trader's mint), so no credit, however well signed, can
    # outgrow what the vault could ever hold (I1); `bulkhead admin ceiling set` changes it.
    supply = {symbol: amount * len(TRADERS) for symbol, amount in MINT_EVM.items()}
    lanes = [*evm_lanes(evm_a, ceilings=supply), solana_lane(
        CHAIN_IDS[SOLANA], bytes(Pubkey.from_string(sol_section["vaults"][0])),
        bytes(Pubkey.from_string(sol_section["assets"]["USDC"]["address"])),
        ceiling=MINT_SOLANA * len(TRADERS))]
    await register_lanes(procs[EVM_B].url, deployer_key=deployer,
                         venue=evm_b["contracts"]["venue"], lanes=lanes)
    names = [f"att-{i + 1}" for i in range(ATTESTERS)]
    return {
        "redis_url": f"redis://127.0.0.1:{procs['redis'].port}/0",
        "chains": {EVM_A: evm_a, EVM_B: evm_b, SOLANA: sol_section},
        "risk": {"buffer_markets": list(opts.buffer_markets)},
        "attesters": {
            "set_index": 0, "threshold": THRESHOLD,
            "members": [{"name": n, "address": a.address, "solana_pubkey": str(k.pubkey())}
                        for n, a, k in zip(names, evm_attesters, sol_attesters, strict=True)],
        },
        "devnet": {
            "options": {"block_time_s": opts.block_time_s, "slot_ms": opts.slot_ms,
                        "slots_in_an_epoch": opts.slots_in_an_epoch,
                        "solana_finality_lag": opts.solana_finality_lag,
                        "buffer_markets": list(opts.buffer_markets)},
            "processes": {k: {"pid": p.pid, "port": p.port, "log": str(p.log_path)}
                          for k, p in procs.items()},
            "traders": {
                name: {"evm_address": addr, "evm_key": key,
                       "solana_pubkey": str(kp.pubkey()), "solana_secret": list(bytes(kp)),
                       "solana_token_accounts": sol_extra.get("trader_token_accounts", {})
                       .get(str(kp.pubkey()), {})}
                for name, addr, key, kp in zip(TRADERS, trader_addrs, trader_keys, sol_traders,
                                               strict=True)
            },
            "attester_keys": {
                n: {"evm_key": "0x" + bytes(a.key).hex(), "solana_secret": list(bytes(k))}
                for n, a, k in zip(names, evm_attesters, sol_attesters, strict=True)
            },
            "relayer_key": anvil_key(roles.relayer),
            "solana_payer": list(bytes(sol_payer)),
            "feeder_key": anvil_key(roles.feeder),
            "risk_key": anvil_key(roles.risk),
            "accountant_key": anvil_key(roles.accountant),
        },
    }


def _split_solana(result: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """deploy_solana returns its chain section plus extras (trader token accounts)."""
    if isinstance(result, dict):
        return result, {}
    return result.chain_section, dict(getattr(result, "extras", {}) or {})


def down(home: Path) -> list[str]:
    """Stop every devnet process recorded for ``home``; returns the names stopped."""
    stopped = []
    for name, info in running_processes(home).items():
        pid = int(info["pid"])
        if pid_alive(pid):
            stop_pid(pid)
            stopped.append(name)
    (devnet_dir(home) / "processes.json").unlink(missing_ok=True)
    return stopped
