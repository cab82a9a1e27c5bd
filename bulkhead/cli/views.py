"""Pure presentation: records -> JSON-able rows -> rich tables. No I/O."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from orchestrator.actions.inputs import format_amount
from shared.locks import LockRecord

__all__ = [
    "audit_table",
    "kv_table",
    "lock_result",
    "lock_row",
    "locks_table",
    "manifest_summary",
    "manifest_table",
    "marks_table",
    "status_table",
]


def settled_by_lock(records: list[Any]) -> dict[str, dict[str, int]]:
    """Executed settlements summed per lock key: {"released": units, "seized": units}."""
    out: dict[str, dict[str, int]] = {}
    for rec in records:
        if rec.state != "executed":
            continue
        ev = rec.event
        key = f"{ev.src_chain_id}:0x{ev.src_vault.hex()}:0x{ev.lock_id.hex()}"
        kind = "released" if int(ev.kind) == 1 else "seized"
        sums = out.setdefault(key, {"released": 0, "seized": 0})
        sums[kind] += ev.amount
    return out


def lock_row(record: LockRecord, *, settled: dict[str, int] | None = None,
             signatures: tuple[int, int] | None = None) -> dict[str, Any]:
    """One lock for `locks`; ``signatures`` = (k signed, m needed) while in flight."""
    e = record.event
    sums = settled or {"released": 0, "seized": 0}
    return {
        "key": record.key,
        "chain": e.chain,
        "lock_id": e.lock_id,
        "state": record.state.value,
        "attributed": e.attributed,
        "unattributed_reason": e.unattributed_reason,
        "amount": str(e.amount),
        "amount_display": format_amount(e.amount, e.decimals),
        "decimals": e.decimals,
        "asset": e.asset,
        "owner": e.owner,
        "position_key": e.position_key,
        "beneficiary": e.beneficiary,
        "height": e.height,
        "tx_id": e.tx_id,
        "transitions": [{"state": t.state.value, "height": t.height, "at_ms": t.at_ms}
                        for t in record.transitions],
        "signatures": None if signatures is None else {"have": signatures[0],
                                                       "need": signatures[1]},
        "released": str(sums["released"]),
        "seized": str(sums["seized"]),
    }


def _short(text: str | None, keep: int = 10) -> str:
    if not text:
        return "-"
    return text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-4:]}"


def locks_table(rows: list[dict[str, Any]]) -> Table:
    """Heights where each state was reached; ``secs`` from first seen to credited (or to final
    while not credited)."""
    table = Table(title=f"locks ({len(rows)})")
    for col in ("chain", "lock id", "amount", "state", "seen@", "safe@", "final@", "secs",
                "back"):
        table.add_column(col, no_wrap=True, min_width=13 if col == "lock id" else None)
    for row in rows:
        at = {t["state"]: t for t in row["transitions"]}
        end = at.get("credited") or at.get("finalized") or at.get("dropped")
        took = f"{(end['at_ms'] - at['seen']['at_ms']) / 1000:.1f}" if end and "seen" in at else ""
        state = row["state"] if row["attributed"] else f"{row['state']} UNATTRIBUTED"
        if row.get("signatures"):
            state += f" ({row['signatures']['have']} of {row['signatures']['need']})"
        back = "/".join(x for x in (
            f"released {format_amount(int(row['released']), row['decimals'])}"
            if row.get("released", "0") != "0" else "",
            f"seized {format_amount(int(row['seized']), row['decimals'])}"
            if row.get("seized", "0") != "0" else "") if x)
        table.add_row(row["chain"], _short(row["lock_id"], 6), row["amount_display"], state,
                      *(str(at[s]["height"]) if s in at else "-"
                        for s in ("seen", "safe", "finalized")), took, back)
    return table


def settlement_row(record: Any) -> dict[str, Any]:
    ev = record.event
    return {"settlement_id": record.id_hex, "src_chain_id": ev.src_chain_id,
            "lock_id": "0x" + ev.lock_id.hex(), "kind": "release" if int(ev.kind) == 1 else "seize",
            "amount": str(ev.amount), "state": record.state, "executed_tx": record.executed_tx,
            "venue_height": ev.height}


def settlements_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"settlements ({len(rows)})")
    for col in ("settlement", "src", "kind", "amount", "state", "tx"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        table.add_row(_short(r["settlement_id"], 6), str(r["src_chain_id"]), r["kind"],
                      r["amount"], r["state"], _short(r["executed_tx"], 6))
    return table


def positions_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"positions ({len(rows)})")
    for col in ("position", "size", "equity", "IM", "MM", "buffer", "ratio", "liq px",
                "bankr px"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        table.add_row(_short(r["position"], 6), format_amount(abs(int(r["size_e18"])), 18)
                      + (" L" if int(r["size_e18"]) > 0 else " S"), r["equity"], r["initial"],
                      r["maintenance"], r["buffer"], r["margin_ratio"],
                      format_amount(r["liquidation_price_e8"], 8)
                      if r["liquidation_price_e8"] else "-",
                      format_amount(r["bankruptcy_price_e8"], 8)
                      if r["bankruptcy_price_e8"] else "-")
    return table


def _price(units: str | None) -> str:
    return format_amount(int(units), 8) if units is not None else "-"


def _mark(at: dict[str, Any]) -> str:
    return f"{_price(at['mark_e8']) if at['mark_e8'] else 'none'} ({at['max_age_s']} s)"


def marks_table(rows: list[dict[str, Any]]) -> Table:
    """Each mark (rows as ``/api/v1/marks`` gives them) over its sources, one source a line:
    the mark for a user action and for a liquidation ("none": too few valid sources, the
    venue refuses that class), then each source's price, age and verdict for both."""
    table = Table(title=f"marks ({len(rows)})")
    for col in ("market", "user mark", "liq. mark", "valid", "source", "price", "age",
                "verdict"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        head = [r["market"], _mark(r["user"]), _mark(r["liquidation"]),
                f"{r['user']['valid_sources']} of {r['min_sources']}"
                + ("" if r["user"]["quorum"] else " BELOW")]
        for i, s in enumerate(r["sources"]):
            verdict = s["reason"] if s["reason"] == s["reason_liquidation"] else (
                f"{s['reason']} / liq. {s['reason_liquidation']}")
            table.add_row(*(head if i == 0 else [""] * len(head)),
                          f"{s['kind']} {_short(s['feed'], 6)}", _price(s["price_e8"]),
                          "-" if s["age_s"] is None else f"{s['age_s']} s", verdict)
        if not r["sources"]:
            table.add_row(*head, "-", "-", "-", "-")
    return table


def kv_table(title: str, data: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in data.items():
        table.add_row(key, str(value))
    return table


def lock_result(req: Any, result: Any) -> dict[str, Any]:
    return {"chain": result.chain, "tx_id": result.tx_id, "asset": req.asset,
            "amount": str(result.amount),
            "amount_display": format_amount(result.amount, req.decimals),
            "position_key": req.position_key, "beneficiary": req.beneficiary,
            "height": result.height, "nonce": result.nonce}


def manifest_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "redis_url": manifest["redis_url"],
        "ready_s": manifest["devnet"]["ready_s"],
        "chains": {k: {"chain_id": c["chain_id"], "rpc_url": c["rpc_urls"][0],
                       "vaults": c["vaults"], "assets": c["assets"],
                       "contracts": c.get("contracts", {})}
                   for k, c in manifest["chains"].items()},
    }


def manifest_table(manifest: dict[str, Any]) -> Table:
    table = Table(title="devnet")
    for col in ("chain", "id", "rpc", "vault", "assets"):
        table.add_column(col, overflow="fold")
    for key, c in manifest["chains"].items():
        table.add_row(key, str(c["chain_id"]), c["rpc_urls"][0],
                      _short(c["vaults"][0] if c["vaults"] else None),
                      ", ".join(f"{s}({a['decimals']})" for s, a in c["assets"].items()))
    table.add_row("redis", "", manifest["redis_url"], "", "")
    return table


def status_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="chains")
    for col in ("chain", "kind", "up", "latest", "safe", "final", "lag", "error"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["chain"], r["kind"], "yes" if r["reachable"] else "NO",
                      *(str(r.get(k, "-")) for k in ("latest", "safe", "final", "lag")),
                      r.get("error") or "")
    return table


def audit_table(report: dict[str, Any]) -> Table:
    """Per invariant: items checked and violations found; then each violation on its own row."""
    summary = report["summary"]
    verdict = "clean" if report["clean"] else f"{len(report['violations'])} violation(s)"
    table = Table(title=f"audit: {verdict} ({summary['locks']} locks, {summary['credits']} "
                        f"credits, {summary['settlements_executed']} settlements)")
    for col in ("invariant", "checked", "violations", "subject", "detail"):
        table.add_column(col, overflow="fold")
    for inv, row in summary["invariants"].items():
        table.add_row(inv, str(row["checked"]), str(row["violations"]), "", "")
    for v in report["violations"]:
        table.add_row(v["invariant"], "", "", v["subject"], v["detail"])
    if not summary["store_checked"]:
        table.add_row("I12", "-", "-", "", "lock store unreachable: not checked")
    return table
