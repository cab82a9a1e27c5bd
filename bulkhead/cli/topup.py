"""``bulkhead topup``: register, clear and show automated top-up rules (DESIGN §3).

    bulkhead topup set --position 0x<target> --source 0x<reserve> --threshold 1.5 --max 500
    bulkhead topup clear --position 0x<target>
    bulkhead topup show --position 0x<target> [--json]

``--threshold`` is the margin ratio E/MM (decimal, above 1, at most 6 decimals) below which the
risk worker moves a whole reserve lock in; ``--max`` the total USD value (decimal, at most 18
decimals) the rule may move. ``set`` and ``clear`` sign as the owner of the positions (a devnet
trader, or ``--key-file``). Exit codes as ``bulkhead``: 2 for a refused input, 1 for a failed
operation.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from bulkhead.cli.common import (
    JsonOpt,
    KeyFileOpt,
    emit_json,
    guarded,
    out,
    owner_evm_key,
    settings,
)
from orchestrator.actions.inputs import format_amount, parse_amount, parse_bytes32
from shared.errors import InputError
from shared.settings import Settings

__all__ = ["clear_rule", "set_rule", "show_rule", "topup_app"]

topup_app = typer.Typer(no_args_is_help=True,
                        help="Automated top-up rules: move reserve collateral in before "
                             "liquidation.")
_PPM_DECIMALS, _USD_DECIMALS = 6, 18

Position = Annotated[str, typer.Option(help="Target position key: 0x + 64 hex")]
Trader = Annotated[str, typer.Option(help="Devnet trader name (the positions' owner)")]


def _emit(row: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        emit_json(row)
        return
    from bulkhead.cli import views

    out.print(views.kv_table(title, {k: v for k, v in row.items() if not isinstance(v, list)}))
    for lock in row.get("reserve", []):
        out.print(f"  reserve lock {lock['lock']}: value {lock['value_usd']} USD, "
                   f"adds {lock['credit_usd']} USD", highlight=False)


def _owner_key(cfg: Settings, trader: str, key_file: Path | None) -> str:
    return owner_evm_key(cfg, trader, key_file,
                         missing="top-up rules need the positions' owner's EVM key")


# ----- operations (I/O) ------------------------------------------------------------------------


async def set_rule(cfg: Settings, owner_key: str, *, position: str, source: str,
                   threshold: str, max_usd: str) -> dict[str, Any]:
    """Validate, then register the rule as the owner. Raises: InputError, TxRejected."""
    pos = parse_bytes32(position, field="position")
    src = parse_bytes32(source, field="source")
    if pos == src:
        raise InputError("source", "the reserve must be another position")
    threshold_ppm = parse_amount(threshold, _PPM_DECIMALS, field="threshold")
    if not 10**6 < threshold_ppm < 2**32:
        raise InputError("threshold", "must be a ratio above 1 (e.g. 1.5) and below 4294")
    max_usd_e18 = parse_amount(max_usd, _USD_DECIMALS, field="max")
    from orchestrator.actions.trading import venue_session

    async with venue_session(cfg, owner_key) as venue:
        tx = await venue.set_topup_rule(bytes.fromhex(pos[2:]), bytes.fromhex(src[2:]),
                                        threshold_ppm, max_usd_e18)
    return {"position": pos, "source": src, "threshold_ppm": threshold_ppm,
            "max_usd_e18": str(max_usd_e18), "tx": tx}


async def clear_rule(cfg: Settings, owner_key: str, *, position: str) -> dict[str, Any]:
    """Remove the rule as the owner. Raises: InputError, TxRejected (NoTopUpRule...)."""
    from orchestrator.actions.trading import venue_session

    pos = parse_bytes32(position, field="position")
    async with venue_session(cfg, owner_key) as venue:
        tx = await venue.clear_topup_rule(bytes.fromhex(pos[2:]))
    return {"position": pos, "tx": tx}


async def show_rule(cfg: Settings, *, position: str) -> dict[str, Any]:
    """The rule, the target's state against it and what the keeper would move now."""
    from chains.evm.oracle import OracleClient
    from orchestrator.actions.trading import venue_session
    from orchestrator.liquidation.topup_keeper import TopUpKeeper, rule_of

    pos = parse_bytes32(position, field="position")
    key = bytes.fromhex(pos[2:])
    oracle = await OracleClient.from_settings(cfg)
    try:
        async with venue_session(cfg, None) as venue:
            state = await venue.topup_rule_of(key)
            if state is None:
                return {"position": pos, "rule": None}
            rule = rule_of(state)
            keeper = TopUpKeeper(venue, oracle, chain_time=oracle.chain_time)
            view = await keeper.view(key, await oracle.chain_time())
    finally:
        await oracle.aclose()
    row: dict[str, Any] = {
        "position": pos, "source": rule.source_key,
        "threshold": format_amount(rule.threshold_ppm, _PPM_DECIMALS),
        "threshold_ppm": rule.threshold_ppm, "max_usd_e18": str(rule.max_usd_e18),
        "used_usd_e18": str(rule.used_usd_e18),
        "remaining_usd": format_amount(rule.remaining_usd_e18, _USD_DECIMALS),
    }
    if view is None:
        return row | {"state": "no open trade"}
    t = view.target
    row |= {"equity_usd_e18": str(t.equity_usd_e18),
            "maintenance_usd_e18": str(t.maintenance_usd_e18),
            "liquidation_pending": t.liquidation_pending, "reserve_open": view.reserve_open,
            "reserve": [{"lock": r.lock_key, "value_usd": format_amount(r.value_usd_e18, 18),
                         "credit_usd": format_amount(r.credit_usd_e18, 18)}
                        for r in view.reserve],
            "would_move": [m.lock_key for m in view.plan.moves] if view.plan else []}
    if t.maintenance_usd_e18 > 0:  # E/MM floored to 6 decimals
        ratio_ppm = t.equity_usd_e18 * 10**6 // t.maintenance_usd_e18
        row["ratio"] = ("-" if ratio_ppm < 0 else "") + format_amount(abs(ratio_ppm), 6)
    return row


# ----- commands --------------------------------------------------------------------------------


@topup_app.command("set")
def topup_set(
    position: Position,
    source: Annotated[str, typer.Option(help="Reserve position key (same owner, no trade)")],
    threshold: Annotated[str, typer.Option(help="Margin ratio E/MM to act below, e.g. 1.5")],
    max_usd: Annotated[str, typer.Option("--max", help="Total USD the rule may move, e.g. 500")],
    trader: Trader = "alice",
    key_file: KeyFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register (or replace) the position's top-up rule; replacing starts a fresh budget."""
    cfg = settings()
    row = guarded(lambda: asyncio.run(set_rule(cfg, _owner_key(cfg, trader, key_file),
                                                position=position, source=source,
                                                threshold=threshold, max_usd=max_usd)))
    _emit(row, as_json, "top-up rule set")


@topup_app.command("clear")
def topup_clear(position: Position, trader: Trader = "alice", key_file: KeyFileOpt = None,
                as_json: JsonOpt = False) -> None:
    """Remove the position's top-up rule."""
    cfg = settings()
    row = guarded(lambda: asyncio.run(clear_rule(cfg, _owner_key(cfg, trader, key_file),
                                                  position=position)))
    _emit(row, as_json, "top-up rule cleared")


@topup_app.command("show")
def topup_show(position: Position, as_json: JsonOpt = False) -> None:
    """The rule, the position's margin against it, the reserve's locks and the next move."""
    cfg = settings()
    row = guarded(lambda: asyncio.run(show_rule(cfg, position=position)))
    _emit(row, as_json, "top-up rule")
