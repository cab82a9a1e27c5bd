"""``bulkhead admin``: operator actions on the venue (DESIGN §2.7, §5); I/O in
:mod:`orchestrator.actions.admin`.

Owner actions (pause, resume, limits set, ceiling set) sign with ``--owner-keystore`` and
``--password-file``; on the embedded devnet, and only for the venue its manifest deployed,
they default to the devnet deployer (anvil's public test account). ``release`` may be sent by
any funded key and uses the same resolution. Refused inputs exit 2 naming the field; a chain
that refuses exits 1.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from bulkhead.cli.common import (
    JsonOpt,
    emit_json,
    emit_row,
    guarded,
    out,
    settings,
    venue_owner_key,
)

if TYPE_CHECKING:
    from shared.settings import Settings

__all__ = ["admin_app"]

T = TypeVar("T")

admin_app = typer.Typer(no_args_is_help=True, add_completion=False,
                        pretty_exceptions_enable=False,
                        help="Operator actions on the venue: pause, held credits, limits, lanes.")
limits_app = typer.Typer(no_args_is_help=True,
                         help="Per (source chain, asset) 24 h cap and large-transfer delay.")
ceiling_app = typer.Typer(no_args_is_help=True,
                          help="Per (source chain, vault, asset) accountant ceiling.")
admin_app.add_typer(limits_app, name="limits")
lanes_app = typer.Typer(no_args_is_help=True,
                        help="Per (source chain, vault, asset): held vs credited, headroom, "
                             "pause and resume.")
admin_app.add_typer(ceiling_app, name="ceiling")
admin_app.add_typer(lanes_app, name="lanes")
attesters_app = typer.Typer(no_args_is_help=True,
                            help="The attester set each registry (venue, EVM vaults) holds.")
admin_app.add_typer(attesters_app, name="attesters")

KeystoreOpt = Annotated[Path | None, typer.Option(
    "--owner-keystore", help="Owner's V3 keystore (default on the devnet: the deployer)")]
PasswordOpt = Annotated[Path | None, typer.Option(help="File holding the keystore password")]
BaseUnitsOpt = Annotated[bool, typer.Option(help="Amounts are integer base units")]
ChainOpt = Annotated[str, typer.Option(help="Source chain key, e.g. evm-a")]
AssetOpt = Annotated[str, typer.Option(help="Asset symbol, e.g. USDC")]


def _as_owner(keystore: Path | None, password_file: Path | None,
              action: Callable[[Settings, str], Coroutine[Any, Any, T]],
              *, check: Callable[[Settings], object] | None = None) -> T:
    """Run one owner action: read the settings, ``check`` the input before any keystore is
    opened, resolve the owner key (``bulkhead.cli.common.venue_owner_key``) and run ``action``."""

    cfg = settings()

    def run() -> T:
        if check is not None:
            check(cfg)
        return asyncio.run(action(cfg, venue_owner_key(cfg, keystore, password_file)))

    return guarded(run)


def _rows_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    return table


@admin_app.command("pause")
def pause(keystore: KeystoreOpt = None, password_file: PasswordOpt = None,
          as_json: JsonOpt = False) -> None:
    """Pause the venue: credits, held-credit releases and user trades stop (liquidations go on)."""
    from orchestrator.actions import admin

    row = _as_owner(keystore, password_file, admin.pause)
    emit_row("venue paused" if row["changed"] else "venue was already paused", row, as_json)


@admin_app.command("resume")
def resume(keystore: KeystoreOpt = None, password_file: PasswordOpt = None,
           as_json: JsonOpt = False) -> None:
    """Unpause the venue."""
    from orchestrator.actions import admin

    row = _as_owner(keystore, password_file, admin.resume)
    emit_row("venue resumed" if row["changed"] else "venue was not paused", row, as_json)


@admin_app.command("held")
def held(as_json: JsonOpt = False) -> None:
    """Credits the venue holds (large transfer or full window), with their release time."""
    from orchestrator.actions import admin

    cfg = settings()
    rows = guarded(lambda: asyncio.run(admin.held(cfg)))
    if as_json:
        emit_json(rows)
        return
    out.print(_rows_table("held credits", rows, [
        "venue_key", "chain", "asset", "amount_display", "reason", "release_at_utc", "due",
        "position_key"]))


@admin_app.command("release")
def release(
    lock_key: Annotated[str, typer.Argument(
        help="Venue lock key (0x + 64 hex, as `admin held` prints it) or the lock key "
             "`bulkhead locks` prints")],
    keystore: Annotated[Path | None, typer.Option(
        "--owner-keystore", help="Sender's V3 keystore (any funded key may release)")] = None,
    password_file: PasswordOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Credit one held lock now; refused before its release time on the venue chain's clock."""
    from orchestrator.actions import admin

    row = _as_owner(keystore, password_file,
                    lambda cfg, key: admin.release(cfg, key, lock_key))
    emit_row("held credit released", row, as_json)


@limits_app.command("show")
def limits_show(
    chain: Annotated[str | None, typer.Option(help="Only this source chain")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cap, large-transfer threshold, delay and the window's use per (chain, asset), with the
    accountant ceiling and outstanding amount per vault."""
    from orchestrator.actions import admin

    cfg = settings()
    rows = guarded(lambda: asyncio.run(admin.limits_show(cfg, chain)))
    if as_json:
        emit_json(rows)
        return
    out.print(_rows_table("limits", rows, [
        "chain", "asset", "cap_display", "large_threshold_display", "delay_s", "used_display",
        "ceiling_display", "outstanding_display"]))


@limits_app.command("set")
def limits_set(
    chain: ChainOpt,
    asset: AssetOpt,
    cap: Annotated[str, typer.Option(help="24 h credit cap (decimal tokens)")],
    large: Annotated[str, typer.Option(help="Large-transfer threshold (decimal tokens)")],
    delay: Annotated[int, typer.Option(min=0, help="Delay of a large transfer, seconds")],
    base_units: BaseUnitsOpt = False,
    keystore: KeystoreOpt = None,
    password_file: PasswordOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set the governor of (chain, asset) on the venue (owner)."""
    from orchestrator.actions import admin
    from orchestrator.venues.lanes import lanes

    row = _as_owner(keystore, password_file,
                    lambda cfg, key: admin.limits_set(
                        cfg, key, chain=chain, asset=asset, cap=cap, large=large,
                        delay_s=delay, base_units=base_units),
                    check=lambda cfg: lanes(cfg, chain, asset))
    emit_row("rate limit set", row, as_json)


@ceiling_app.command("set")
def ceiling_set(
    chain: ChainOpt,
    asset: AssetOpt,
    ceiling: Annotated[str, typer.Option(help="Ceiling on credited - released - seized "
                                         "(decimal tokens; 0 stops new credits)")],
    vault: Annotated[str | None, typer.Option(help="Vault (default: the chain's only one)")] = None,
    base_units: BaseUnitsOpt = False,
    keystore: KeystoreOpt = None,
    password_file: PasswordOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set the accountant ceiling of one lane on the venue (owner)."""
    from orchestrator.actions import admin
    from orchestrator.venues.lanes import lanes

    row = _as_owner(keystore, password_file,
                    lambda cfg, key: admin.ceiling_set(
                        cfg, key, chain=chain, asset=asset, ceiling=ceiling, vault=vault,
                        base_units=base_units),
                    check=lambda cfg: lanes(cfg, chain, asset))
    emit_row("lane ceiling set", row, as_json)


VaultOpt = Annotated[str | None, typer.Option(help="Vault (default: the chain's only one)")]


@lanes_app.command("show")
def lanes_show(
    chain: Annotated[str | None, typer.Option(help="Only this source chain")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Each lane live: what the vault holds, what the venue credited and has not asked back,
    the ceiling, the headroom left and whether the lane is paused."""
    from orchestrator.actions import admin

    cfg = settings()
    rows = guarded(lambda: asyncio.run(admin.lanes_show(cfg, chain)))
    if as_json:
        emit_json(rows)
        return
    out.print(_rows_table("lanes", rows, [
        "chain", "asset", "held_display", "outstanding_display", "ceiling_display",
        "headroom_display", "deficit_display", "paused", "vault"]))


@lanes_app.command("pause")
def lane_pause(chain: ChainOpt, asset: AssetOpt, vault: VaultOpt = None,
               keystore: KeystoreOpt = None, password_file: PasswordOpt = None,
               as_json: JsonOpt = False) -> None:
    """Stop credits on one lane (owner); everything else on the venue goes on."""
    _lane_switch(True, chain, asset, vault, keystore, password_file, as_json)


@lanes_app.command("resume")
def lane_resume(chain: ChainOpt, asset: AssetOpt, vault: VaultOpt = None,
                keystore: KeystoreOpt = None, password_file: PasswordOpt = None,
                as_json: JsonOpt = False) -> None:
    """Resume a lane the accountant (or the owner) paused (owner only)."""
    _lane_switch(False, chain, asset, vault, keystore, password_file, as_json)


def _lane_switch(pause: bool, chain: str, asset: str, vault: str | None,
                 keystore: Path | None, password_file: Path | None, as_json: bool) -> None:
    from orchestrator.actions import admin
    from orchestrator.venues.lanes import lanes

    action = admin.lane_pause if pause else admin.lane_resume
    row = _as_owner(keystore, password_file,
                    lambda cfg, key: action(cfg, key, chain=chain, asset=asset, vault=vault),
                    check=lambda cfg: lanes(cfg, chain, asset))
    done, noop = ("lane paused", "lane was already paused") if pause else (
        "lane resumed", "lane was not paused")
    emit_row(done if row["changed"] else noop, row, as_json)


def _previous(prev: dict[str, Any] | None) -> str:
    if prev is None:
        return ""
    return f"{prev['index']} " + (f"(live until {prev['grace_end_utc']})" if prev["live"]
                                  else "(expired)")


@attesters_app.command("show")
def attesters_show(as_json: JsonOpt = False) -> None:
    """Each EVM registry's current attester set (index, threshold, members), the previous set's
    grace window, and whether the settings the workers sign and verify with agree (exit 1 if
    any registry drifted: attesters or the relayer would stop)."""
    from orchestrator.actions.attesters import attesters_show as show

    cfg = settings()
    rows = guarded(lambda: asyncio.run(show(cfg)))
    if as_json:
        emit_json(rows)
    else:
        view = [{**r, "members": len(r["members"]), "previous": _previous(r["previous"]),
                 "in_sync": "yes" if r["in_sync"] else "NO"} for r in rows]
        out.print(_rows_table("attester sets", view, [
            "chain", "registry", "index", "threshold", "members", "previous", "in_sync",
            "address"]))
    drifted = [(r, d) for r in rows for d in r["drift"]]
    for row, what in drifted:
        sys.stderr.write(f"error: {row['chain']} {row['registry']} {row['address']}: {what}\n")
    if drifted:
        raise typer.Exit(1)


@attesters_app.command("propose")
def attesters_propose(
    member: Annotated[list[str], typer.Option(
        help="A member's EVM address (repeat for each; order does not matter)")],
    threshold: Annotated[int | None, typer.Option(
        help="m of n (default floor(2n/3)+1; must be > n/2)")] = None,
    grace: Annotated[int, typer.Option(
        help="Seconds of chain time the current set stays valid after execute")] = 3_600,
    as_json: JsonOpt = False,
) -> None:
    """Validate the next attester set and write it as the proposal (sends nothing); shows who
    joins and who leaves against the settings."""
    from orchestrator.actions.attesters import attesters_propose as propose
    from orchestrator.actions.attesters import parse_proposal

    cfg = settings()
    row = guarded(lambda: propose(cfg, parse_proposal(member, threshold, grace)))
    emit_row("attester set proposed", {**row, "members": ", ".join(row["members"]),
                                       "added": ", ".join(row["added"]) or "-",
                                       "removed": ", ".join(row["removed"]) or "-"}
             if not as_json else row, as_json)


@attesters_app.command("execute")
def attesters_execute(keystore: KeystoreOpt = None, password_file: PasswordOpt = None,
                      as_json: JsonOpt = False) -> None:
    """Install the proposal on the venue and every EVM vault that does not hold it yet (owner).
    Running workers follow it from the chain (no restart); a member it adds must already be on
    the settings' roster with its worker running. Updating the settings' attesters.set_index and
    threshold afterwards turns `admin attesters show` back to in sync."""
    from orchestrator.actions.attesters import attesters_execute as execute

    rows = _as_owner(keystore, password_file, execute)
    if as_json:
        emit_json(rows)
        return
    out.print(_rows_table("attester set rotation", rows, [
        "chain", "registry", "index", "changed", "tx_id", "address"]))


if __name__ == "__main__":
    admin_app()
