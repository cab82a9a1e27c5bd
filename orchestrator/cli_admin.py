"""``bulkhead admin``: operator actions on the venue (DESIGN §2.7, §5); I/O in
:mod:`orchestrator.admin`.

Owner actions (pause, resume, limits set, ceiling set) sign with ``--owner-keystore`` and
``--password-file``; on the embedded devnet, and only for the venue its manifest deployed,
they default to the devnet deployer (anvil's public test account). ``release`` may be sent by
any funded key and uses the same resolution. Refused inputs exit 2 naming the field; a chain
that refuses exits 1.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

if TYPE_CHECKING:
    from types import ModuleType

    from orchestrator.settings import Settings

__all__ = ["admin_app"]

admin_app = typer.Typer(no_args_is_help=True, add_completion=False,
                        pretty_exceptions_enable=False,
                        help="Operator actions on the venue: pause, held credits, limits.")
limits_app = typer.Typer(no_args_is_help=True,
                         help="Per (source chain, asset) 24 h cap and large-transfer delay.")
ceiling_app = typer.Typer(no_args_is_help=True,
                          help="Per (source chain, vault, asset) accountant ceiling.")
admin_app.add_typer(limits_app, name="limits")
admin_app.add_typer(ceiling_app, name="ceiling")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
KeystoreOpt = Annotated[Path | None, typer.Option(
    "--owner-keystore", help="Owner's V3 keystore (default on the devnet: the deployer)")]
PasswordOpt = Annotated[Path | None, typer.Option(help="File holding the keystore password")]
BaseUnitsOpt = Annotated[bool, typer.Option(help="Amounts are integer base units")]


def _cli() -> ModuleType:
    """The root CLI module (imported late: it registers this sub-app)."""
    import orchestrator.cli as root

    return root


def _owner(cfg: Settings, keystore: Path | None, password_file: Path | None) -> str:
    from orchestrator.admin import owner_key

    return owner_key(cfg, keystore, password_file)


def _rows_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(str(row.get(c, "")) for c in columns))
    return table


def _emit(title: str, row: dict[str, Any], as_json: bool) -> None:
    cli = _cli()
    if as_json:
        cli.emit_json(row)
    else:
        from orchestrator import views

        cli.out.print(views.kv_table(title, row))


@admin_app.command("pause")
def pause(keystore: KeystoreOpt = None, password_file: PasswordOpt = None,
          as_json: JsonOpt = False) -> None:
    """Pause the venue: credits, held-credit releases and user trades stop (liquidations go on)."""
    from orchestrator import admin

    cli = _cli()
    cfg = cli.settings()
    row = cli.guarded(lambda: asyncio.run(admin.pause(cfg, _owner(cfg, keystore, password_file))))
    _emit("venue paused" if row["changed"] else "venue was already paused", row, as_json)


@admin_app.command("resume")
def resume(keystore: KeystoreOpt = None, password_file: PasswordOpt = None,
           as_json: JsonOpt = False) -> None:
    """Unpause the venue."""
    from orchestrator import admin

    cli = _cli()
    cfg = cli.settings()
    row = cli.guarded(lambda: asyncio.run(admin.resume(cfg,
                                                       _owner(cfg, keystore, password_file))))
    _emit("venue resumed" if row["changed"] else "venue was not paused", row, as_json)


@admin_app.command("held")
def held(as_json: JsonOpt = False) -> None:
    """Credits the venue holds (large transfer or full window), with their release time."""
    from orchestrator import admin

    cli = _cli()
    cfg = cli.settings()
    rows = cli.guarded(lambda: asyncio.run(admin.held(cfg)))
    if as_json:
        cli.emit_json(rows)
        return
    cli.out.print(_rows_table("held credits", rows, [
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
    from orchestrator import admin

    cli = _cli()
    cfg = cli.settings()
    row = cli.guarded(lambda: asyncio.run(admin.release(
        cfg, _owner(cfg, keystore, password_file), lock_key)))
    _emit("held credit released", row, as_json)


@limits_app.command("show")
def limits_show(
    chain: Annotated[str | None, typer.Option(help="Only this source chain")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cap, large-transfer threshold, delay and the window's use per (chain, asset), with the
    accountant ceiling and outstanding amount per vault."""
    from orchestrator import admin

    cli = _cli()
    cfg = cli.settings()
    rows = cli.guarded(lambda: asyncio.run(admin.limits_show(cfg, chain)))
    if as_json:
        cli.emit_json(rows)
        return
    cli.out.print(_rows_table("limits", rows, [
        "chain", "asset", "cap_display", "large_threshold_display", "delay_s", "used_display",
        "ceiling_display", "outstanding_display"]))


@limits_app.command("set")
def limits_set(
    chain: Annotated[str, typer.Option(help="Source chain key, e.g. evm-a")],
    asset: Annotated[str, typer.Option(help="Asset symbol, e.g. USDC")],
    cap: Annotated[str, typer.Option(help="24 h credit cap (decimal tokens)")],
    large: Annotated[str, typer.Option(help="Large-transfer threshold (decimal tokens)")],
    delay: Annotated[int, typer.Option(min=0, help="Delay of a large transfer, seconds")],
    base_units: BaseUnitsOpt = False,
    keystore: KeystoreOpt = None,
    password_file: PasswordOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set the governor of (chain, asset) on the venue (owner)."""
    from orchestrator import admin

    cli = _cli()
    cfg = cli.settings()

    def run() -> dict[str, Any]:
        admin.lanes(cfg, chain, asset)  # refuse bad input before a keystore is opened
        return asyncio.run(admin.limits_set(
            cfg, _owner(cfg, keystore, password_file), chain=chain, asset=asset, cap=cap,
            large=large, delay_s=delay, base_units=base_units))

    _emit("rate limit set", cli.guarded(run), as_json)


@ceiling_app.command("set")
def ceiling_set(
    chain: Annotated[str, typer.Option(help="Source chain key, e.g. evm-a")],
    asset: Annotated[str, typer.Option(help="Asset symbol, e.g. USDC")],
    ceiling: Annotated[str, typer.Option(help="Ceiling on credited - released - seized "
                                         "(decimal tokens; 0 stops new credits)")],
    vault: Annotated[str | None, typer.Option(help="Vault (default: the chain's only one)")] = None,
    base_units: BaseUnitsOpt = False,
    keystore: KeystoreOpt = None,
    password_file: PasswordOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set the accountant ceiling of one lane on the venue (owner)."""
    from orchestrator import admin

    cli = _cli()
    cfg = cli.settings()

    def run() -> dict[str, Any]:
        admin.lanes(cfg, chain, asset)
        return asyncio.run(admin.ceiling_set(
            cfg, _owner(cfg, keystore, password_file), chain=chain, asset=asset,
            ceiling=ceiling, vault=vault, base_units=base_units))

    _emit("lane ceiling set", cli.guarded(run), as_json)


if __name__ == "__main__":
    admin_app()
