"""``bulkhead deploy``: deploy the reference contracts to the chains named in the settings and
write the manifest the workers read (the docker-compose ``deployer`` service).

What it deploys is the **reference / test stack** of ``chains/devnet``: on every EVM
collateral chain mintable test tokens (USDC, WETH, FEE) and a ``CollateralVault``; on the
venue chain a ``MarkOracle`` with its feeds, the ``IsolatedMarginVenue`` and a vault; on Solana a test USDC
mint, the attesters' SPL multisig and the vault token account. The attester set installed
everywhere is the one in the settings (``attesters.members``: EVM ``address`` and
``solana_pubkey`` of each member, ``attesters.threshold``); every lane gets the devnet's
default limits (change them with ``bulkhead admin limits set``).

Devnet-only parts, stated plainly: the tokens are test tokens anyone with the deployer key can
mint; a fresh Solana payer is funded by airdrop and ``--fund`` uses ``anvil_setBalance`` and
airdrops, which only local nodes (anvil, solana-test-validator, the local Solana RPC) serve;
``--devnet-deployer`` signs with anvil's public test account 0. Putting real collateral behind
Bulkhead needs the real assets registered instead of test tokens, which this command does not do.

The manifest goes to ``<home>/devnet/manifest.json`` (the settings' lowest-priority source), in
the settings' own shape, with no private key in it. With ``--if-missing`` an existing manifest
is kept and nothing is deployed, so a restarted one-shot deployer never deploys twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer

from shared.errors import ConfigError, InputError
from shared.settings import Settings

__all__ = ["deploy", "deploy_stack"]

ANVIL_FUND_WEI = 1_000 * 10**18
SOLANA_FUND_LAMPORTS = 10 * 10**9


def _evm_key(keystore: Path | None, password_file: Path | None, devnet_deployer: bool) -> str:
    if devnet_deployer:
        if keystore is not None:
            raise InputError("deployer_keystore", "give a keystore or --devnet-deployer, not both")
        from devnet.keys import DevnetRoles, anvil_key

        return anvil_key(DevnetRoles().deployer)
    if keystore is None or password_file is None:
        missing = "deployer_keystore" if keystore is None else "password_file"
        raise InputError(missing, "--deployer-keystore and --password-file are required "
                                  "(or --devnet-deployer on a local anvil)")
    from bridges.keys import decrypt_keystore

    return "0x" + bytes(decrypt_keystore(keystore, password_file, "deployer_keystore").key).hex()


def evm_address_of(text: str, field: str) -> str:
    """An EVM address given as ``0x...`` or as a V3 keystore path (its public ``address``
    field is read; the keystore is not decrypted)."""
    from orchestrator.actions.inputs import parse_evm_address

    if text.strip().startswith("0x"):
        return parse_evm_address(text, field=field)
    from bulkhead.cli.keys import keystore_info

    try:
        return str(keystore_info(Path(text))["address"])
    except InputError as exc:
        raise InputError(field, str(exc)) from exc


def solana_pubkey_of(text: str, field: str) -> str:
    """A Solana pubkey given as base58 or as a keypair file path."""
    from solders.pubkey import Pubkey

    path = Path(text)
    if path.is_file():
        return str(_solana_payer(path, field).pubkey())
    try:
        return str(Pubkey.from_string(text.strip()))
    except ValueError as exc:
        raise InputError(field, f"{text!r} is neither a pubkey nor a keypair file") from exc


def _solana_payer(path: Path | None, field: str = "solana_payer") -> Any:
    from solders.keypair import Keypair

    if path is None:
        return Keypair()
    try:
        return Keypair.from_bytes(bytes(json.loads(path.read_text())))
    except (OSError, ValueError) as exc:
        raise InputError(field, f"cannot read Solana keypair {path}: "
                                f"{exc.__class__.__name__}") from exc


def _plan(settings: Settings) -> tuple[list[str], str, list[str]]:
    """(EVM collateral chains, venue chain, Solana chains) from the settings."""
    from shared.chain import ChainKind

    if settings.venue_chain not in settings.chains:
        raise ConfigError("venue_chain", f"{settings.venue_chain!r} is not in chains")
    if settings.chain(settings.venue_chain).kind != ChainKind.EVM:
        raise ConfigError("venue_chain", "the venue chain must be an EVM chain")
    evm = sorted(k for k, c in settings.chains.items()
                 if c.kind == ChainKind.EVM and k != settings.venue_chain)
    sol = sorted(k for k, c in settings.chains.items() if c.kind == ChainKind.SOLANA)
    if len(sol) > 1:
        raise ConfigError("chains", f"one Solana chain at most, got {sol}")
    members = settings.attesters.members
    if not members:
        raise ConfigError("attesters.members", "the attester set to install is empty")
    if sol and any(not m.solana_pubkey for m in members):
        raise ConfigError("attesters.members", "every member needs solana_pubkey for the "
                                               "Solana vault multisig")
    return evm, settings.venue_chain, sol


async def _fund(settings: Settings, evm_addresses: list[str], sol_pubkeys: list[str]) -> None:
    """Local nodes only: anvil_setBalance on every EVM chain, airdrops on Solana."""
    from chains.evm.rpc import make_web3
    from shared.chain import ChainKind

    for cfg in settings.chains.values():
        if cfg.kind == ChainKind.EVM and evm_addresses:
            w3 = make_web3(str(cfg.rpc_urls[0]), settings.retry.timeout_s)
            try:
                for address in evm_addresses:
                    await w3.provider.make_request("anvil_setBalance",
                                                   [address, hex(ANVIL_FUND_WEI)])
            finally:
                await w3.provider.disconnect()
        elif cfg.kind == ChainKind.SOLANA and sol_pubkeys:
            from solana.rpc.async_api import AsyncClient
            from solana.rpc.commitment import Confirmed
            from solders.pubkey import Pubkey

            async with AsyncClient(str(cfg.rpc_urls[0]), commitment=Confirmed) as client:
                for pubkey in sol_pubkeys:
                    await client.request_airdrop(Pubkey.from_string(pubkey),
                                                 SOLANA_FUND_LAMPORTS, Confirmed)


async def deploy_stack(settings: Settings, *, deployer_key: str, solana_payer: Any,
                       feeder: str | None = None, risk_updater: str | None = None,
                       pauser: str | None = None) -> dict[str, Any]:
    """Deploy to every configured chain and register the lanes; returns the manifest.

    Raises:
        ConfigError: settings that cannot be deployed (see ``_plan``), a chain id that does
            not match its node. DevnetError, TxRejected, RpcUnavailable: a deploy failed.
    """
    from eth_account import Account
    from solders.pubkey import Pubkey

    from devnet.evm_deploy import deploy_collateral_chain, deploy_venue_chain, register_lanes
    from devnet.evm_specs import evm_lanes, solana_lane
    from devnet.solana_deploy import SOLANA_CHAIN_ID, deploy_solana
    evm, venue_key, sol = _plan(settings)
    admin = Account.from_key(deployer_key).address
    feeder_addr = evm_address_of(feeder, "feeder") if feeder else admin
    risk_addr = evm_address_of(risk_updater, "risk_updater") if risk_updater else admin
    pauser_addr = evm_address_of(pauser, "pauser") if pauser else None
    members = settings.attesters.members
    addresses = [m.address for m in members]
    threshold = settings.attesters.threshold
    url = {k: str(settings.chain(k).rpc_urls[0]) for k in settings.chains}
    jobs: list[Coroutine[Any, Any, Any]] = [deploy_collateral_chain(url[k], deployer_key=deployer_key, traders=[],
                                    chain_id=settings.chain(k).chain_id, mint_per_trader={},
                                    attesters=addresses, threshold=threshold) for k in evm]
    jobs.append(deploy_venue_chain(
        url[venue_key], deployer_key=deployer_key, chain_id=settings.chain(venue_key).chain_id,
        feeder=feeder_addr, traders=[], mint_per_trader={}, attesters=addresses,
        threshold=threshold, risk_updater=risk_addr, pauser=pauser_addr,
        feeder_key=deployer_key if feeder_addr == admin else None))
    if sol:
        if settings.chain(sol[0]).chain_id != SOLANA_CHAIN_ID:
            raise ConfigError(f"chains.{sol[0]}.chain_id", f"the Solana vault is deployed for "
                                                           f"chain id {SOLANA_CHAIN_ID}")
        jobs.append(deploy_solana(
            url[sol[0]], payer=solana_payer,
            attesters=[Pubkey.from_string(str(m.solana_pubkey)) for m in members],
            threshold=threshold or (2 * len(members)) // 3 + 1, traders=[], mint_per_trader=0))
    results = await asyncio.gather(*jobs)
    chains: dict[str, Any] = dict(zip([*evm, venue_key], results[:len(evm) + 1], strict=True))
    lanes = [lane for k in evm for lane in evm_lanes(chains[k])]
    if sol:
        section = results[-1].chain_section
        chains[sol[0]] = section
        lanes.append(solana_lane(
            SOLANA_CHAIN_ID, bytes(Pubkey.from_string(section["vaults"][0])),
            bytes(Pubkey.from_string(section["assets"]["USDC"]["address"]))))
    await register_lanes(url[venue_key], deployer_key=deployer_key,
                         venue=chains[venue_key]["contracts"]["venue"], lanes=lanes)
    return {
        "redis_url": str(settings.redis_url),
        "chains": chains,
        "deployment": {"deployer": admin, "feeder": feeder_addr, "risk_updater": risk_addr,
                       "pauser": pauser_addr, "attesters": addresses, "deployed_at": int(time.time()),
                       "solana_payer": str(solana_payer.pubkey()) if sol else None,
                       "test_tokens": True},
    }


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def deploy(
    deployer_keystore: Annotated[Path | None, typer.Option(
        help="Deployer (venue owner) V3 keystore")] = None,
    password_file: Annotated[Path | None, typer.Option(
        help="File holding the deployer keystore password")] = None,
    devnet_deployer: Annotated[bool, typer.Option(
        help="Sign with anvil's public test account 0 (local anvil only)")] = False,
    solana_payer: Annotated[Path | None, typer.Option(
        help="Solana fee payer keypair (default: a fresh one, airdropped)")] = None,
    feeder: Annotated[str | None, typer.Option(
        help="Oracle feeder: address or keystore (default: the deployer, which also seeds "
             "prices)")] = None,
    risk_updater: Annotated[str | None, typer.Option(
        help="Venue RISK role: the risk worker's address or keystore (default: the "
             "deployer)")] = None,
    pauser: Annotated[str | None, typer.Option(
        help="The accountant's address or keystore: may pause a lane, nothing else (default: "
             "none, only the owner pauses)")] = None,
    fund: Annotated[list[str] | None, typer.Option(
        help="EVM address or keystore to fund on every EVM chain (anvil_setBalance; "
             "repeatable)")] = None,
    fund_solana: Annotated[list[str] | None, typer.Option(
        help="Solana pubkey or keypair file to airdrop SOL to (local validators; "
             "repeatable)")] = None,
    if_missing: Annotated[bool, typer.Option(
        help="Keep an existing manifest and deploy nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Deploy the reference contracts to the configured chains and write the manifest
    (test tokens: a devnet / test-network deployment; see the module docstring)."""
    from bulkhead.cli import common as cli

    cfg = cli.settings()
    path = cfg.home / "devnet" / "manifest.json"
    if if_missing and path.is_file():
        cli.err.print(f"manifest {path} exists; nothing deployed")
        if as_json:
            cli.emit_json(json.loads(path.read_text()))
        return

    def run() -> dict[str, Any]:
        key = _evm_key(deployer_keystore, password_file, devnet_deployer)
        payer = _solana_payer(solana_payer)
        evm_funded = [evm_address_of(a, "fund") for a in fund or []]
        # the payer itself is airdropped by the deploy
        sol_funded = [solana_pubkey_of(k, "fund_solana") for k in fund_solana or []]
        _plan(cfg)
        asyncio.run(_fund(cfg, evm_funded, sol_funded))
        manifest = asyncio.run(deploy_stack(cfg, deployer_key=key, solana_payer=payer,
                                            feeder=feeder, risk_updater=risk_updater,
                                            pauser=pauser))
        _write_manifest(path, manifest)
        return manifest

    manifest = cli.guarded(run)
    if as_json:
        cli.emit_json(manifest)
        return
    for key, section in sorted(manifest["chains"].items()):
        contracts = ", ".join(f"{k}={v}" for k, v in sorted(section.get("contracts", {}).items()))
        cli.out.print(f"{key}: vaults={section.get('vaults')} {contracts}")
    cli.out.print(f"manifest: {path}")


if __name__ == "__main__":
    typer.run(deploy)
