"""The risk invariants of DESIGN §6 (I6–I10) as pure rules over what the venue chain says.

No I/O: :mod:`orchestrator.audit.risk_collect` reads the venue's events, the oracle's price history
and the venue's state at the block before each operation into a :class:`RiskAuditInput`; each
``check_*`` returns the :class:`~orchestrator.audit.rules.Violation` s of one invariant.

The values and the venue's fixed-point arithmetic are in
:mod:`orchestrator.audit.risk_values` (re-exported here).

An operation's pre-state is read at the block before it; an operation preceded in its own block
by another event of the same position cannot be valued from that state (``exact`` False): its
margin checks are counted as skipped in the summary, never guessed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from orchestrator.audit.risk_values import (
    CREDIT_EVENTS,
    PPM,
    SHORTFALL_RESIDUE_MAX,
    USER_OPS,
    CreditConversion,
    FeedRead,
    Lane,
    MarginValues,
    MarketView,
    OpKind,
    PositionView,
    RiskAuditInput,
    RiskOp,
    Seizure,
    Touch,
    collateral_value,
    fee,
    haircut_value,
    margin_values,
    pnl,
)
from orchestrator.audit.rules import Violation

__all__ = [
    "RISK_INVARIANTS",
    "CreditConversion",
    "FeedRead",
    "Lane",
    "MarginValues",
    "MarketView",
    "OpKind",
    "PositionView",
    "RiskAuditInput",
    "RiskOp",
    "Seizure",
    "Touch",
    "audit_risk",
    "check_isolation",
    "check_liquidations",
    "check_margin_safety",
    "check_price_validity",
    "check_rounding",
    "margin_values",
    "summarize_risk",
]


def _lanes_after_release(op: RiskOp) -> tuple[Lane, ...]:
    if op.released is None:
        return op.lanes
    chain_id, asset, amount18 = op.released
    return tuple(replace(lane, amount18=max(lane.amount18 - amount18, 0))
                 if (lane.src_chain_id, lane.src_asset) == (chain_id, asset) else lane
                 for lane in op.lanes)


def _release_checked(op: RiskOp) -> bool:
    """The venue checks E >= IM on a release with an open trade or a negative ledger."""
    return op.before.size_e18 != 0 or op.before.realized_usd_e18 < 0


# ----- I6 isolation -----------------------------------------------------------------------------


def frames(touches: Sequence[Touch]) -> list[list[Touch]]:
    """A transaction's touches split into its batch items, in log order: a ``liquidateBatch``
    runs each position in its own frame, and every item's events start with its
    ``Liquidated``; a transaction that is not a batch is one frame."""
    ordered = sorted(touches, key=lambda t: t.log_index)
    if sum(1 for t in ordered if t.event == "Liquidated") < 2:
        return [ordered]
    out: list[list[Touch]] = []
    for t in ordered:
        if t.event == "Liquidated" or not out:
            out.append([])
        out[-1].append(t)
    return out


def check_isolation(inp: RiskAuditInput) -> list[Violation]:
    """I6: every transaction's collateral and margin events touch ONE position, except a credit
    batch, whose items each credit their own attested key (and nothing else), and a
    liquidation batch, each of whose items touches one position (its own frame)."""
    by_tx: dict[str, list[Touch]] = defaultdict(list)
    for t in inp.touches:
        by_tx[t.tx_id].append(t)
    out: list[Violation] = []
    for tx, touches in sorted(by_tx.items()):
        if all(t.event in CREDIT_EVENTS for t in touches):
            continue
        for frame in frames(touches):
            keys = sorted({t.position_key for t in frame})
            if len(keys) < 2:
                continue
            events = ", ".join(f"{t.event}:{t.position_key[:10]}" for t in frame)
            out.append(Violation("I6", tx, f"one transaction frame changed {len(keys)} "
                                 f"positions ({events})"))
    return out


# ----- I7 margin safety -------------------------------------------------------------------------


def _after(op: RiskOp) -> tuple[PositionView, tuple[Lane, ...]] | None:
    """The position and lanes right after a checked user action (None: not checked)."""
    if op.kind in (OpKind.OPEN, OpKind.INCREASE):
        pos = replace(op.before, size_e18=op.size_after_e18, entry_e8=op.entry_after_e8,
                      realized_usd_e18=op.before.realized_usd_e18 - op.fee_usd_e18)
        return pos, op.lanes
    if op.kind == OpKind.RELEASE and _release_checked(op):
        return op.before, _lanes_after_release(op)
    return None


def check_margin_safety(inp: RiskAuditInput) -> list[Violation]:
    """I7: after every open, increase and checked release (remove margin / withdraw), E >= IM at
    the prices the operation used."""
    out: list[Violation] = []
    for op in inp.ops:
        after = _after(op)
        if after is None or not op.exact:
            continue
        pos, lanes = after
        collateral = collateral_value(lanes)
        mark = op.price_e8 if op.price_e8 is not None else op.mark.price_e8
        if collateral is None or (pos.size_e18 != 0 and mark is None):
            out.append(Violation("I7", op.subject, f"{op.kind} executed without a price for "
                                 "every collateral lane and the mark"))
            continue
        m = margin_values(collateral, pos, op.market, mark or 0)
        if m.equity < m.initial:
            out.append(Violation("I7", op.subject, f"after {op.kind} at block {op.height}: "
                                 f"E {m.equity} < IM {m.initial}"))
    return out


# ----- I8 liquidation correctness ---------------------------------------------------------------


def _liquidation_violations(op: RiskOp) -> list[Violation]:
    assert op.price_e8 is not None
    collateral = collateral_value(op.lanes)
    if collateral is None:
        return [Violation("I8", op.subject, "liquidated without a price for every lane")]
    pos, m, mark = op.before, op.market, op.price_e8
    r = margin_values(collateral, pos, m, mark)
    out: list[Violation] = []
    if r.maintenance == 0 or r.equity >= r.maintenance:
        out.append(Violation("I8", op.subject, f"liquidated at block {op.height} with E "
                             f"{r.equity} >= MM {r.maintenance} (mark {mark})"))
    forced = r.equity * PPM < r.maintenance * m.full_ratio_ppm
    until = pos.last_liquidation + m.cooldown_s
    if pos.last_liquidation and not forced and op.timestamp < until:
        out.append(Violation("I8", op.subject, f"liquidated at {op.timestamp} within the "
                             f"cooldown of the previous step (until {until})"))
    realized = pos.realized_usd_e18 + pnl(op.closed_size_e18, mark, pos.entry_e8)
    before_fee = collateral + realized + pnl(pos.size_e18 - op.closed_size_e18, mark,
                                              pos.entry_e8)
    due = min(fee(abs(op.closed_size_e18), mark, m.liq_fee_ppm), m.liq_fee_cap_usd_e18)
    charged = 0 if before_fee <= 0 else min(due, before_fee)
    if op.fee_usd_e18 != charged:
        out.append(Violation("I8", op.subject, f"fee charged {op.fee_usd_e18}, the rule "
                             f"gives {charged}"))
    if op.full:
        closed_equity = collateral + realized - op.fee_usd_e18
        shortfall = op.shortfall_usd_e18 or 0
        if closed_equity < 0 and shortfall != -closed_equity:
            out.append(Violation("I8", op.subject, f"equity after the close {closed_equity} < 0 "
                                 f"but shortfall recorded {shortfall}"))
        elif closed_equity >= 0 and shortfall > SHORTFALL_RESIDUE_MAX:
            out.append(Violation("I8", op.subject, f"shortfall {shortfall} recorded with "
                                 f"equity {closed_equity} >= 0 after the close"))
    return out


def _once_per_trigger(ops: Sequence[RiskOp]) -> list[Violation]:
    out: list[Violation] = []
    by_position: dict[str, list[RiskOp]] = defaultdict(list)
    for op in ops:
        if op.kind in (OpKind.LIQUIDATE, OpKind.OPEN):
            by_position[op.position_key].append(op)
    for key, seq in sorted(by_position.items()):
        seq.sort(key=lambda o: (o.height, o.log_index))
        prev: RiskOp | None = None
        for op in seq:
            if op.kind == OpKind.OPEN:  # a new trade starts a new liquidation sequence
                prev = None
                continue
            if prev is not None and (op.height == prev.height or (
                    op.plan_tick == prev.plan_tick
                    and op.timestamp < prev.timestamp + op.market.cooldown_s)):
                out.append(Violation("I8", key, f"liquidated twice for one trigger (blocks "
                                     f"{prev.height} and {op.height}, tick {op.plan_tick})"))
            prev = op
    return out


def check_liquidations(inp: RiskAuditInput) -> list[Violation]:
    """I8: every liquidation had E < MM at its mark (pre-state of the block before), waited out
    the cooldown unless forced, charged exactly the fee rule, recorded a shortfall equal to the
    negative equity of a full close; one liquidation per trigger (position, price tick) and per
    block; the insurance fund equals funding + liquidation fees - shortfalls and the fee pool
    the taker fees of every trade (each fee charged once)."""
    out: list[Violation] = []
    liquidations = [op for op in inp.ops if op.kind == OpKind.LIQUIDATE]
    for op in liquidations:
        if op.exact and op.price_e8 is not None:
            out += _liquidation_violations(op)
    out += _once_per_trigger(inp.ops)
    if inp.insurance_fund_usd_e18 is not None:
        expected = (sum(inp.insurance_funded_usd_e18) + sum(op.fee_usd_e18 for op in liquidations)
                    - sum(inp.shortfalls_usd_e18))
        if expected != inp.insurance_fund_usd_e18:
            out.append(Violation("I8", "insurance-fund", f"balance {inp.insurance_fund_usd_e18} "
                                 f"!= funding + liquidation fees - shortfalls = {expected}"))
    if inp.fee_pool_usd_e18 is not None:
        taker = sum(op.fee_usd_e18 for op in inp.ops if op.kind in USER_OPS)
        if taker != inp.fee_pool_usd_e18:
            out.append(Violation("I8", "fee-pool", f"balance {inp.fee_pool_usd_e18} != taker "
                                 f"fees of every Traded event {taker}"))
    return out


# ----- I9 price validity ------------------------------------------------------------------------


def _feed_problem(feed: FeedRead, now: int, max_age: int) -> str | None:
    if feed.price_e8 is None or feed.publish_time is None:
        return f"feed {feed.oracle_id[:10]} had no price"
    age = now - feed.publish_time
    if age > max_age:
        return f"feed {feed.oracle_id[:10]} price age {age} s > max age {max_age} s"
    if not feed.min_price_e8 < feed.price_e8 < feed.max_price_e8:
        return (f"feed {feed.oracle_id[:10]} price {feed.price_e8} at or beyond a bound "
                f"({feed.min_price_e8}, {feed.max_price_e8})")
    return None


def _feeds_read(op: RiskOp) -> list[FeedRead]:
    """The feeds the venue read for this operation (what its price checks applied to)."""
    mark = [op.mark]
    if op.kind in (OpKind.REDUCE, OpKind.CLOSE):
        return mark
    if op.kind == OpKind.RELEASE:
        if not _release_checked(op):
            return []
        lanes = _lanes_after_release(op)
        mark = mark if op.before.size_e18 != 0 else []
    else:
        lanes = op.lanes
    return mark + ([lane.feed for lane in lanes if lane.amount18 > 0] if op.exact else [])


def check_price_validity(inp: RiskAuditInput) -> list[Violation]:
    """I9: every trade, checked release and liquidation used prices within its class's max age
    (user actions: maxAgeUserS; liquidations: maxAgeLiqS) strictly inside the bounds, at the
    venue's block time; a trade's or liquidation's price is the oracle's, and a liquidation's
    plan tick is that price's publish time."""
    out: list[Violation] = []
    for op in inp.ops:
        liq = op.kind == OpKind.LIQUIDATE
        max_age = op.market.max_age_liq_s if liq else op.market.max_age_user_s
        for feed in _feeds_read(op):
            if problem := _feed_problem(feed, op.timestamp, max_age):
                out.append(Violation("I9", op.subject, f"{op.kind} used an invalid price: "
                                     f"{problem}"))
        if op.price_e8 is not None and op.price_e8 != op.mark.price_e8:
            out.append(Violation("I9", op.subject, f"{op.kind} at {op.price_e8}, the oracle's "
                                 f"price was {op.mark.price_e8}"))
        if liq and op.plan_tick != op.mark.publish_time:
            out.append(Violation("I9", op.subject, f"plan tick {op.plan_tick} != publish "
                                 f"time {op.mark.publish_time} of the price in effect"))
    return out


# ----- I10 rounding -----------------------------------------------------------------------------


def _floats(value: Any, path: str) -> Iterable[str]:
    if isinstance(value, float):
        yield path
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _floats(v, f"{path}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _floats(v, f"{path}[{i}]")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _seizure_violations(op: RiskOp) -> list[Violation]:
    """Seizures round up: the seized units' collateral value plus any recorded shortfall cover
    the loss settled (never less, in the protocol's favour)."""
    if op.kind == OpKind.LIQUIDATE and op.full and op.price_e8 is not None:
        realized = (op.before.realized_usd_e18 + pnl(op.closed_size_e18, op.price_e8,
                                                      op.before.entry_e8) - op.fee_usd_e18)
    elif op.kind == OpKind.CLOSE:
        realized = op.before.realized_usd_e18 + op.realized_pnl_usd_e18 - op.fee_usd_e18
    else:
        return []
    loss = max(-realized, 0)
    lanes = {(lane.src_chain_id, lane.src_asset): lane for lane in op.lanes}
    covered = op.shortfall_usd_e18 or 0
    for s in op.seized:
        lane = lanes.get((s.src_chain_id, s.src_asset))
        if lane is None or lane.feed.price_e8 is None:
            return [Violation("I10", op.subject, "a seized lock's lane was not priced")]
        covered += haircut_value(s.amount * 10 ** (18 - s.decimals), lane.feed.price_e8,
                                  lane.haircut_ppm)
    if covered < loss:
        return [Violation("I10", op.subject, f"seized value + shortfall {covered} < loss "
                          f"{loss}: the seizure rounded against the protocol")]
    return []


def check_rounding(inp: RiskAuditInput) -> list[Violation]:
    """I10: credits convert exactly (amount18 == amount * 10^(18 - decimals), decimals <= 18);
    every amount is an int; seizures round up; no JSON shown to users holds a float."""
    out: list[Violation] = []
    for c in inp.conversions:
        if not all(_is_int(v) for v in (c.amount, c.amount18, c.decimals)):
            out.append(Violation("I10", c.lock, "a credit amount is not an int"))
        elif not 0 <= c.decimals <= 18 or c.amount18 != c.amount * 10 ** (18 - c.decimals):
            out.append(Violation("I10", c.lock, f"credited amount18 {c.amount18} != {c.amount}"
                                 f" * 10^(18 - {c.decimals})"))
    for op in inp.ops:
        amounts = (op.fee_usd_e18, op.size_after_e18, op.closed_size_e18,
                   *(s.amount for s in op.seized))
        if not all(_is_int(v) for v in amounts):
            out.append(Violation("I10", op.subject, "an amount is not an int"))
            continue
        if op.exact:
            out += _seizure_violations(op)
    for name, doc in sorted(inp.documents.items()):
        out += [Violation("I10", name, f"float at {path}") for path in _floats(doc, "$")]
    return out


# ----- all of them ------------------------------------------------------------------------------

RISK_INVARIANTS: Mapping[str, Callable[[RiskAuditInput], list[Violation]]] = {
    "I6": check_isolation,
    "I7": check_margin_safety,
    "I8": check_liquidations,
    "I9": check_price_validity,
    "I10": check_rounding,
}


def audit_risk(inp: RiskAuditInput) -> list[Violation]:
    """Every risk invariant's violations, in invariant order."""
    return [v for check in RISK_INVARIANTS.values() for v in check(inp)]


def summarize_risk(inp: RiskAuditInput, violations: Iterable[Violation]) -> dict[str, Any]:
    """Per risk invariant: items checked, violations, and margin checks skipped (not exact)."""
    found = Counter(v.invariant for v in violations)
    kinds = Counter(op.kind for op in inp.ops)
    inexact = sum(1 for op in inp.ops if not op.exact)
    checked = {
        "I6": len({t.tx_id for t in inp.touches}),
        "I7": sum(1 for op in inp.ops if op.exact and _after(op) is not None),
        "I8": kinds[OpKind.LIQUIDATE] + (inp.insurance_fund_usd_e18 is not None)
        + (inp.fee_pool_usd_e18 is not None),
        "I9": len(inp.ops),
        "I10": len(inp.conversions) + len(inp.ops) + len(inp.documents),
    }
    out: dict[str, Any] = {inv: {"checked": n, "violations": found.get(inv, 0)}
                           for inv, n in checked.items()}
    out["I7"]["skipped_not_exact"] = inexact
    return out
