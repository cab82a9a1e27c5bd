"""Pure row builders for the JSON API: venue events, position rows, marks and counts ->
response rows.

Lock rows come from ``bulkhead.cli.views.lock_row`` and position rows from
``orchestrator.actions.trading.position_rows`` unchanged; this module only adds what the API needs on
top (exact integer margins, owners, merged shortfalls, counts). Mark rows are built here from
the oracle's raw answers (:class:`MarkReading`), so the API, ``/metrics``, the dashboard and
``bulkhead marks`` show one judgement. No I/O.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.risk.mark import SourceKind, SourceReason
from shared.errors import ChainError
from shared.locks import LockRecord, LockState
from shared.positions import market_id

__all__ = [
    "MarkReading",
    "api_position_row",
    "decimal_to_units",
    "liquidation_rows",
    "mark_ages",
    "mark_row",
    "pipeline_counts",
]

PPM = 1_000_000

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



def mark_ages(names: Sequence[str], markets: Iterable[tuple[bytes, int, int]]
              ) -> dict[str, tuple[int, int]]:
    """(user, liquidation) max age each oracle name is judged for, from the venue's markets as
    (oracle id, max_age_user_s, max_age_liq_s): the strictest of the markets marked by it. A
    name no market is marked by (a collateral price) is valued for positions of every market,
    so it gets the strictest of all.

    Raises:
        ChainError: the venue has no market (nothing says how fresh a price must be).
    """
    configured = [(bytes(i), int(u), int(q)) for i, u, q in markets if any(i)]
    if not configured:
        raise ChainError("no market configured on the venue: no max price age to judge by")
    out = {}
    for name in names:
        mine = [m for m in configured if m[0] == market_id(name)] or configured
        out[name] = (min(m[1] for m in mine), min(m[2] for m in mine))
    return out


@dataclass(frozen=True, slots=True)
class MarkReading:
    """The oracle's answers for one name, all read at block ``height`` (``chain_time`` its
    timestamp, the clock the oracle judged by): ``params.minSources``, the ``getMark`` result
    (mark_e8, publish time, valid sources; None when refused) and ``sourceStates`` (price_e8,
    time, reason) for the user and the liquidation max age, and ``sources`` (kind, feed,
    pyth id) in the oracle's order."""

    name: str
    height: int
    chain_time: int
    min_sources: int
    ages: tuple[int, int]
    marks: tuple[Sequence[int] | None, Sequence[int] | None]
    sources: Sequence[tuple[int, str, bytes]]
    states: tuple[Sequence[Sequence[int]], Sequence[Sequence[int]]]


def _reason(code: int) -> str:
    """A source's verdict by the oracle's code (the core's :class:`SourceReason`)."""
    try:
        return SourceReason(code).name.lower()
    except ValueError:
        return f"unknown({code})"


def _kind(code: int) -> str:
    try:
        return SourceKind(code).name.lower()
    except ValueError:
        return f"unknown({code})"


def _mark_at(max_age_s: int, mark: Sequence[int] | None, states: Sequence[Sequence[int]],
             min_sources: int) -> dict[str, Any]:
    # Without a mark the oracle's own count is not returned: the ok verdicts are that count.
    valid = int(mark[2]) if mark is not None else sum(int(s[2]) == 0 for s in states)
    return {"max_age_s": max_age_s, "mark_e8": None if mark is None else str(int(mark[0])),
            "publish_time": None if mark is None else int(mark[1]), "valid_sources": valid,
            "quorum": valid >= min_sources}


def _source_label(kind: int, feed: str, pyth_id: bytes) -> str:
    """Unique per source of a name: several Pyth prices may share one Pyth contract."""
    return feed if kind != 1 else f"{feed}:0x{bytes(pyth_id).hex()}"


def mark_row(r: MarkReading) -> dict[str, Any]:
    """One name's mark for a user action and for a liquidation and each source's normalised
    price, age on the chain's clock and verdict for both. ``deviation_ppm`` is
    ``|price - mark| * 1e6 / mark`` (floor) against the user-action mark, None without one
    or without a price; prices are integer strings (None: the source gave none)."""
    user_mark = r.marks[0]
    sources = []
    for (kind, feed, pyth_id), (price, time_s, reason), liq in zip(
            r.sources, r.states[0], r.states[1], strict=True):
        price, time_s = int(price), int(time_s)
        mark = int(user_mark[0]) if user_mark is not None else 0
        sources.append({
            "source": _source_label(kind, feed, pyth_id),
            "kind": _kind(kind),
            "feed": feed, "pyth_id": "0x" + bytes(pyth_id).hex() if kind == 1 else None,
            "price_e8": str(price) if price else None, "time_s": time_s or None,
            "age_s": r.chain_time - time_s if time_s else None,
            "reason": _reason(int(reason)), "reason_liquidation": _reason(int(liq[2])),
            "deviation_ppm": abs(price - mark) * PPM // mark if price and mark else None,
        })
    return {"market": r.name, "oracle_id": "0x" + market_id(r.name).hex(), "height": r.height,
            "chain_time": r.chain_time, "min_sources": r.min_sources,
            "user": _mark_at(r.ages[0], user_mark, r.states[0], r.min_sources),
            "liquidation": _mark_at(r.ages[1], r.marks[1], r.states[1], r.min_sources),
            "sources": sources}
