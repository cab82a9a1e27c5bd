"""Pure row builders for the JSON API: venue events, position rows and counts -> response rows.

Lock rows come from ``bulkhead.cli.views.lock_row`` and position rows from
``orchestrator.actions.trading.position_rows`` unchanged; this module only adds what the API needs on
top (exact integer margins, owners, merged shortfalls, counts). No I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from shared.locks import LockRecord, LockState

__all__ = [
    "api_position_row",
    "decimal_to_units",
    "liquidation_rows",
    "pipeline_counts",
]

_DECIMAL = re.compile(r"^(-?)([0-9]+)(?:\.([0-9]+))?$")


def decimal_to_units(text: str, decimals: int) -> int:
    """The exact integer behind a decimal string ``format_amount`` produced (``"-1.5"``, 18 ->
    -1500000000000000000). Raises ValueError for anything that is not such a string."""
    match = _DECIMAL.match(text)
    if match is None or len(match.group(3) or "") > decimals:
        raise ValueError(f"not an exact decimal with <= {decimals} places: {text!r}")
    sign, whole, frac = match.group(1), match.group(2), match.group(3) or ""
    units = int(whole + frac.ljust(decimals, "0"))
    return -units if sign else units


def api_position_row(row: Mapping[str, Any], owner: str | None) -> dict[str, Any]:
    """A ``position_rows`` row with its owner and the USD figures as exact e18 integers."""
    out = dict(row)
    out["owner"] = owner
    for name in ("equity", "initial", "maintenance", "buffer"):
        out[f"{name}_usd_e18"] = str(decimal_to_units(row[name], 18))
    for name in ("entry_e8", "liquidation_price_e8", "bankruptcy_price_e8"):
        out[name] = None if row.get(name) is None else str(row[name])
    return out


def liquidation_rows(events: Iterable[Any], final_height: int) -> list[dict[str, Any]]:
    """``Liquidated`` events, each with the ``Shortfall`` of the same transaction and position;
    a shortfall without a liquidation stands alone. Newest first."""
    events = list(events)
    shortfalls = {(e.tx_id, bytes(e.position_key)): e for e in events
                  if type(e).__name__ == "ShortfallEvent"}
    rows: list[dict[str, Any]] = []
    for e in events:
        if type(e).__name__ != "LiquidatedEvent":
            continue
        short = shortfalls.pop((e.tx_id, bytes(e.position_key)), None)
        rows.append({
            "kind": "liquidation", "position": "0x" + bytes(e.position_key).hex(),
            "market": "0x" + bytes(e.market).hex(), "closed_size_e18": str(e.closed_size_e18),
            "mark_e8": str(e.mark_e8), "fee_usd_e18": str(e.fee_usd_e18), "full": bool(e.full),
            "plan_tick": int(e.plan_tick),
            "shortfall_usd_e18": str(short.usd_e18) if short else "0",
            "height": e.height, "tx_id": e.tx_id, "log_index": e.log_index,
            "final": e.height <= final_height,
        })
    for s in shortfalls.values():
        rows.append({
            "kind": "shortfall", "position": "0x" + bytes(s.position_key).hex(), "market": None,
            "closed_size_e18": None, "mark_e8": None, "fee_usd_e18": None, "full": None,
            "plan_tick": None, "shortfall_usd_e18": str(s.usd_e18), "height": s.height,
            "tx_id": s.tx_id, "log_index": s.log_index, "final": s.height <= final_height,
        })
    return sorted(rows, key=lambda r: (r["height"], r["log_index"]), reverse=True)


def pipeline_counts(records: Iterable[LockRecord]) -> dict[str, Any]:
    """Locks per lifecycle state, overall and per chain; every state is present (0 if none)."""
    total: Counter[str] = Counter()
    chains: dict[str, Counter[str]] = {}
    for r in records:
        total[r.state.value] += 1
        chains.setdefault(r.event.chain, Counter())[r.state.value] += 1
    zero = {s.value: 0 for s in LockState}
    return {"total": sum(total.values()), "states": {**zero, **total},
            "chains": {c: {**zero, **n} for c, n in sorted(chains.items())}}

