"""``bulkhead admin`` against a real devnet (two anvils, the local Solana RPC, redis).

No workers run: each credit is a real ``CollateralVault.lock`` on evm-a, attested by 3 of the
devnet's 4 attester keys over the venue's EIP-712 domain and sent by the devnet relayer key,
so the venue alone decides (paused, queued, credited). The admin commands run the typer app
``bulkhead admin`` mounts: a few as real subprocesses of the ``bulkhead.cli.admin`` entry,
the rest in-process through typer's runner (same code path, without paying the interpreter
start and imports each time on a shared machine).
"""

# ruff: noqa: F811  (the e2e fixtures are imported by name, then requested by name)
from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from typer.testing import CliRunner

from bulkhead.cli.admin import admin_app
from chains.evm.bridge_codec import LockStatus
from chains.evm.locker import lock_on_evm
from chains.evm.venue import VenueClient
from chains.evm.venue_base import CreditOutcome
from devnet.keys import TRADERS
from devnet.stack import MINT_EVM, MINT_SOLANA
from shared.chain import ChainKind, ChainRef
from shared.errors import TxRejected
from shared.ids import address_to_bytes32
from shared.messages import Domain, LockAttestation, sign
from shared.settings import RetrySettings
from tests.support.chain import key_for, rpc
from tests.support.stack import Cli, cli, devnet  # noqa: F401  (module-scoped fixtures)

pytestmark = [pytest.mark.integration]

RETRY = RetrySettings(max_attempts=3, initial_s=0.05, max_s=0.2, timeout_s=10)
_salts = itertools.count(1)


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def admin(cli: Cli, *args: str, code: int = 0, subprocess_: bool = False) -> Ran:
    """Run ``bulkhead admin ARGS`` and check its exit code."""
    if subprocess_:
        proc = subprocess.run([sys.executable, "-m", "bulkhead.cli.admin", *args],
                              env=cli.env, capture_output=True, text=True, timeout=90,
                              check=False)
        ran = Ran(proc.returncode, proc.stdout, proc.stderr)
    else:
        env = {k: v for k, v in cli.env.items() if k.startswith("BULKHEAD_")}
        result = CliRunner().invoke(admin_app, list(args), env=env)
        ran = Ran(result.exit_code, result.stdout, result.stderr)
    assert ran.returncode == code, f"{args}: rc={ran.returncode}\n{ran.stdout}\n{ran.stderr}"
    return ran


def admin_json(cli: Cli, *args: str, subprocess_: bool = False) -> Any:
    return json.loads(admin(cli, *args, "--json", subprocess_=subprocess_).stdout)


def keystore(path: Path, key: str, password: str) -> Path:
    """A V3 keystore as ``bulkhead keys import`` writes it, with a cheap KDF for the test."""
    path.write_text(json.dumps(Account.encrypt(key, password, kdf="pbkdf2", iterations=2)))
    return path


def b32(address: str) -> bytes:
    return bytes.fromhex(address_to_bytes32(address)[2:])


async def lock_and_credit(devnet: dict[str, Any], amount: int) -> CreditOutcome:
    """Lock ``amount`` USDC base units as alice on evm-a and send the 3-of-4 attested credit."""
    a, b = devnet["chains"]["evm-a"], devnet["chains"]["evm-b"]
    alice = devnet["devnet"]["traders"]["alice"]
    venue_address, usdc = b["contracts"]["venue"], a["assets"]["USDC"]["address"]
    position = key_for(devnet, "alice", f"admin-{next(_salts)}".encode())
    receipt = await lock_on_evm(
        a["rpc_urls"][0], private_key=alice["evm_key"], vault=a["vaults"][0], asset=usdc,
        amount=amount, position_key=position, dst_chain_id=b["chain_id"],
        dst_venue=venue_address, beneficiary=alice["evm_address"])
    att = LockAttestation(
        src_chain_id=a["chain_id"], src_vault=b32(a["vaults"][0]),
        lock_id=receipt.nonce.to_bytes(32, "big"), owner=b32(alice["evm_address"]),
        beneficiary=alice["evm_address"], src_asset=b32(usdc), amount=receipt.measured_amount,
        decimals=6, position_key=bytes.fromhex(position[2:]), attester_set_index=0)
    keys = [k["evm_key"] for k in devnet["devnet"]["attester_keys"].values()][:3]
    domain = Domain(b["chain_id"], venue_address)
    sigs = [sign(att, domain, k)
            for k in sorted(keys, key=lambda k: int(Account.from_key(k).address, 16))]
    venue = await VenueClient.connect(b["rpc_urls"], venue_address,
                                      chain=ChainRef("evm-b", ChainKind.EVM, b["chain_id"]),
                                      sender_key=devnet["devnet"]["relayer_key"], retry=RETRY)
    try:
        return await venue.credit(att, sigs)
    finally:
        await venue.aclose()


async def status_of(devnet: dict[str, Any], venue_key: bytes) -> LockStatus:
    b = devnet["chains"]["evm-b"]
    venue = await VenueClient.connect(b["rpc_urls"], b["contracts"]["venue"],
                                      chain=ChainRef("evm-b", ChainKind.EVM, b["chain_id"]),
                                      retry=RETRY)
    try:
        return (await venue.lock_credit(venue_key)).status
    finally:
        await venue.aclose()


def test_pause_refuses_credits_until_resume(devnet: dict[str, Any], cli: Cli) -> None:
    paused = admin_json(cli, "pause", subprocess_=True)
    assert paused["paused"] is True and paused["changed"] is True and paused["tx_id"]
    again = admin_json(cli, "pause")
    assert again == {"paused": True, "changed": False, "tx_id": None}
    with pytest.raises(TxRejected) as refused:
        asyncio.run(lock_and_credit(devnet, 3_000_000))
    assert "EnforcedPause" in refused.value.reason
    resumed = admin_json(cli, "resume")
    assert resumed["paused"] is False and resumed["changed"] is True
    outcome = asyncio.run(lock_and_credit(devnet, 4_000_000))
    assert len(outcome.credited) == 1 and not outcome.queued


def test_owner_actions_need_the_owners_key(devnet: dict[str, Any], cli: Cli,
                                           tmp_path: Path) -> None:
    from devnet.keys import anvil_key

    password = tmp_path / "password"
    password.write_text("a devnet-only password\n")
    owner = keystore(tmp_path / "owner.json", anvil_key(0), "a devnet-only password")
    other = keystore(tmp_path / "other.json", devnet["devnet"]["traders"]["bob"]["evm_key"],
                     "a devnet-only password")
    wrong = admin(cli, "pause", "--owner-keystore", str(other), "--password-file", str(password),
                  code=2)
    assert "owner_keystore:" in wrong.stderr
    assert Account.from_key(anvil_key(0)).address in wrong.stderr
    half = admin(cli, "pause", "--owner-keystore", str(owner), code=2)
    assert "password_file:" in half.stderr
    row = admin_json(cli, "pause", "--owner-keystore", str(owner), "--password-file",
                     str(password))
    assert row["changed"] is True
    assert admin_json(cli, "resume", "--owner-keystore", str(owner), "--password-file",
                      str(password))["paused"] is False


def test_limits_set_then_show_and_refused_inputs(devnet: dict[str, Any], cli: Cli) -> None:
    row = admin_json(cli, "limits", "set", "--chain", "evm-a", "--asset", "USDC",
                     "--cap", "1000", "--large", "100.5", "--delay", "30")
    assert (row["cap"], row["large_threshold"], row["delay_s"]) == ("1000000000", "100500000", 30)
    shown = {(r["chain"], r["asset"]): r for r in admin_json(cli, "limits", "show",
                                                             "--chain", "evm-a")}
    usdc = shown[("evm-a", "USDC")]
    assert (usdc["cap"], usdc["large_threshold"], usdc["delay_s"]) == (
        "1000000000", "100500000", 30)
    assert usdc["cap_display"] == "1000" and usdc["lane_registered"] is True
    assert {"WETH", "FEE"} <= {asset for _, asset in shown}
    everything = admin_json(cli, "limits", "show")
    assert any(r["chain"] == "solana" and r["lane_registered"] for r in everything)

    for args, field in [
        (("--cap", "1000.0000001", "--large", "1"), "cap"),       # would need rounding
        (("--cap", "10", "--large", "11"), "large"),              # large above the cap
        (("--cap", "-5", "--large", "1"), "cap"),
        (("--cap", "0", "--large", "0"), "cap"),
    ]:
        bad = admin(cli, "limits", "set", "--chain", "evm-a", "--asset", "USDC", *args,
                    "--delay", "5", code=2)
        assert f"{field}:" in bad.stderr, bad.stderr
    unknown = admin(cli, "limits", "set", "--chain", "evm-a", "--asset", "DOGE", "--cap", "1",
                    "--large", "1", "--delay", "1", code=2)
    assert "asset:" in unknown.stderr
    nochain = admin(cli, "limits", "show", "--chain", "evm-z", code=2)
    assert "chain" in nochain.stderr
    # Nothing above was written: the limits are still the ones set first.
    again = {(r["chain"], r["asset"]): r for r in admin_json(cli, "limits", "show")}
    assert again[("evm-a", "USDC")]["cap"] == "1000000000"

    ceiling = admin_json(cli, "ceiling", "set", "--chain", "evm-a", "--asset", "USDC",
                         "--ceiling", "5000000")
    assert ceiling["ceiling"] == "5000000000000"


def test_a_large_transfer_is_held_then_released_after_its_delay(devnet: dict[str, Any],
                                                                cli: Cli) -> None:
    admin_json(cli, "limits", "set", "--chain", "evm-a", "--asset", "USDC", "--cap", "1000",
               "--large", "100", "--delay", "3600")
    outcome = asyncio.run(lock_and_credit(devnet, 150_000_000))
    assert len(outcome.queued) == 1 and not outcome.credited
    venue_key = "0x" + outcome.queued[0].hex()

    rows = {r["venue_key"]: r for r in admin_json(cli, "held", subprocess_=True)}
    row = rows[venue_key]
    assert (row["chain"], row["asset"], row["amount"], row["amount_display"]) == (
        "evm-a", "USDC", "150000000", "150")
    assert row["reason"] == "large-transfer" and row["due"] is False
    assert 3500 <= row["wait_s"] <= 3600

    early = admin(cli, "release", venue_key, code=2, subprocess_=True)
    assert "lock_key:" in early.stderr and "held until" in early.stderr
    assert asyncio.run(status_of(devnet, outcome.queued[0])) == LockStatus.QUEUED

    b_url = devnet["chains"]["evm-b"]["rpc_urls"][0]
    rpc(b_url, "evm_increaseTime", 3601)
    rpc(b_url, "evm_mine")
    # The store's key form (`bulkhead locks`) is accepted too.
    released = admin_json(cli, "release", row["lock"])
    assert released["venue_key"] == venue_key and released["amount"] == "150000000"
    assert asyncio.run(status_of(devnet, outcome.queued[0])) == LockStatus.CREDITED
    assert venue_key not in {r["venue_key"] for r in admin_json(cli, "held")}
    twice = admin(cli, "release", venue_key, code=2)
    assert "already credited" in twice.stderr
    malformed = admin(cli, "release", "0x1234", code=2)
    assert "lock_key:" in malformed.stderr


def test_lanes_show_pause_resume_and_refused_inputs(devnet: dict[str, Any], cli: Cli) -> None:
    """Each lane's book read live (held, credited, headroom); the owner pauses one lane and
    credits on it are refused ``LaneIsPaused`` while the others go on; resume; bad inputs named."""
    rows = admin_json(cli, "lanes", "show")
    lanes = {(r["chain"], r["asset"]): r for r in rows}
    assert {("evm-a", "USDC"), ("evm-a", "WETH"), ("solana", "USDC")} <= set(lanes)
    usdc = lanes[("evm-a", "USDC")]
    assert int(usdc["held"]) >= int(usdc["outstanding"]) and not usdc["paused"]
    assert int(usdc["headroom"]) == min(int(usdc["ceiling"]) - int(usdc["outstanding"]),
                                        int(usdc["held"]) - int(usdc["outstanding"]))
    # Ceilings sized by the deployment: all the devnet minted on that chain (the USDC one on
    # evm-a was changed by the limits test above).
    assert int(lanes[("evm-a", "WETH")]["ceiling"]) == MINT_EVM["WETH"] * len(TRADERS)
    assert int(lanes[("solana", "USDC")]["ceiling"]) == MINT_SOLANA * len(TRADERS)

    paused = admin_json(cli, "lanes", "pause", "--chain", "evm-a", "--asset", "USDC")
    assert paused["changed"] and paused["paused"]
    try:
        with pytest.raises(TxRejected, match="LaneIsPaused"):
            asyncio.run(lock_and_credit(devnet, 1_000_000))
        after = {(r["chain"], r["asset"]): r for r in admin_json(cli, "lanes", "show")}
        assert after[("evm-a", "USDC")]["paused"] and after[("evm-a", "USDC")]["headroom"] == "0"
        assert not after[("solana", "USDC")]["paused"]
        again = admin_json(cli, "lanes", "pause", "--chain", "evm-a", "--asset", "USDC")
        assert not again["changed"]
    finally:
        resumed = admin_json(cli, "lanes", "resume", "--chain", "evm-a", "--asset", "USDC")
    assert resumed["changed"] and not resumed["paused"]
    assert len(asyncio.run(lock_and_credit(devnet, 1_000_000)).credited) == 1

    bad = admin(cli, "lanes", "pause", "--chain", "evm-a", "--asset", "DOGE", code=2)
    assert "asset" in bad.stderr and "DOGE" in bad.stderr
    bad = admin(cli, "lanes", "pause", "--chain", "evm-a", "--asset", "USDC",
                "--vault", "0x" + "00" * 19 + "01", code=2)
    assert "vault" in bad.stderr


def test_attesters_show_propose_execute_and_the_drift_the_settings_then_show(
        devnet: dict[str, Any], cli: Cli) -> None:
    """Last in this module: it rotates every registry's set (same members, 4 of 4, one hour of
    grace, so index 0 stays accepted). Before, every registry agrees with the settings. A proposal is
    validated (bad inputs named, nothing written), executed on the venue and every EVM vault,
    and a second execute changes nothing; the settings still name index 0, so ``show`` now names
    the drift on every registry and exits 1."""
    rows = admin_json(cli, "attesters", "show")
    vaults = [(k, "vault") for k in sorted(devnet["chains"])
              if devnet["chains"][k]["kind"] == "evm" for _ in devnet["chains"][k]["vaults"]]
    assert [(r["chain"], r["registry"]) for r in rows] == [("evm-b", "venue"), *vaults]
    assert ("evm-a", "vault") in vaults
    members = sorted(m["address"] for m in devnet["attesters"]["members"])
    for row in rows:
        assert row["in_sync"] and row["drift"] == [] and row["index"] == 0
        assert row["threshold"] == 3
        assert {m.lower() for m in row["members"]} == {m.lower() for m in members}
        assert row["previous"] is None

    each = [a for m in members for a in ("--member", m)]
    bad = admin(cli, "attesters", "propose", "--member", "0x1234", *each[2:], code=2)
    assert "members" in bad.stderr
    bad = admin(cli, "attesters", "propose", *each, "--threshold", "2", code=2)
    assert "threshold" in bad.stderr
    bad = admin(cli, "attesters", "propose", *each, "--grace", "5", code=2)
    assert "grace" in bad.stderr
    bad = admin(cli, "attesters", "execute", code=2)  # nothing proposed yet
    assert "proposal" in bad.stderr

    proposed = admin_json(cli, "attesters", "propose", *each, "--threshold", "4",
                          "--grace", "3600")
    assert proposed["threshold"] == 4 and proposed["added"] == proposed["removed"] == []
    done = admin_json(cli, "attesters", "execute")
    assert [(r["chain"], r["registry"]) for r in done] == [("evm-b", "venue"), *vaults]
    assert all(r["changed"] and r["index"] == 1 and r["tx_id"] for r in done), done
    again = admin_json(cli, "attesters", "execute")
    assert not any(r["changed"] for r in again)  # idempotent: nothing rotates twice

    ran = admin(cli, "attesters", "show", "--json", code=1)
    after = json.loads(ran.stdout)
    for row in after:
        assert not row["in_sync"] and row["index"] == 1
        assert row["drift"] == ["set index 1 on chain, 0 in settings",
                                "threshold 4 on chain, 3 in settings"]
        assert row["previous"]["index"] == 0 and row["previous"]["live"]
    table = admin(cli, "attesters", "show", code=1)
    b = devnet["chains"]["evm-b"]
    assert f"error: evm-b venue {b['contracts']['venue']}: set index 1 on chain, 0 in settings" \
        in table.stderr
    assert "NO" in table.stdout and "attester sets" in table.stdout
