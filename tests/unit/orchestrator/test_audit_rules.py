"""The audit's invariant rules on hand-built chain states: one clean and violating rows per rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from orchestrator.audit.rules import (
    INVARIANTS,
    AttesterIndexSample,
    AuditInput,
    ChainHead,
    CreditedRow,
    CreditQueuedRow,
    ExecutedSettlement,
    QueuedReleaseRow,
    RateCap,
    SettlementRequestRow,
    audit,
    summarize,
)
from shared.events import LockEvent
from shared.ids import bytes32_hex
from shared.locks import LockRecord, LockState, Transition, lock_key

DAY = 86_400
T0 = 1_700_006_400  # a whole day of chain time
VENUE = "0x" + "55" * 20
BENEFICIARY = "0x" + "66" * 20
VAULT = bytes32_hex(bytes(12) + b"\x11" * 20)
SOL_VAULT = bytes32_hex(b"\x77" * 32)
USDC = bytes32_hex(bytes(12) + b"\x33" * 20)
SOL_USDC = bytes32_hex(b"\x88" * 32)
POSITION = bytes32_hex(b"\x44" * 32)
OWNER = bytes32_hex(bytes(12) + b"\x22" * 20)


def evm_lock(nonce: int, amount: int, height: int) -> LockEvent:
    return LockEvent(
        chain="evm-a", chain_id=31337, lock_id=bytes32_hex(nonce.to_bytes(32, "big")),
        vault=VAULT, owner=OWNER, asset=USDC, amount=amount, decimals=6, position_key=POSITION,
        dst_chain_id=31338, dst_venue=VENUE, beneficiary=BENEFICIARY, height=height,
        block_hash="0x" + "ab" * 32, tx_id=f"0x{nonce:064x}", nonce=nonce)


def sol_lock(tag: int, amount: int, slot: int) -> LockEvent:
    return LockEvent(
        chain="solana", chain_id=900001, lock_id=bytes32_hex(bytes([tag]) * 32), vault=SOL_VAULT,
        owner=bytes32_hex(b"\x99" * 32), asset=SOL_USDC, amount=amount, decimals=6,
        position_key=POSITION, dst_chain_id=31338, dst_venue=VENUE, beneficiary=BENEFICIARY,
        height=slot, block_hash="hash", tx_id=f"sig{tag}")


LOCK_1 = evm_lock(1, 1_000, 10)
LOCK_2 = evm_lock(2, 5_000, 12)
LOCK_S = sol_lock(1, 2_500, 300)
KEY_1, KEY_2, KEY_S = lock_key(LOCK_1), lock_key(LOCK_2), lock_key(LOCK_S)


def credited_row(lock: LockEvent, *, ts: int = T0 + 60, height: int = 50,
                 tx: str = "0xc1") -> CreditedRow:
    return CreditedRow(lock_key(lock), lock.asset, lock.amount, lock.position_key,
                       lock.beneficiary, height, ts, tx, lock.owner)


def record(lock: LockEvent, state: LockState) -> LockRecord:
    return LockRecord(lock, state, (Transition(LockState.SEEN, lock.height, 1),
                                    Transition(state, lock.height + 5, 2)))


SID = "0x" + "5e" * 32
# The clean base: two EVM locks (one credited, one queued then released), one Solana lock
# credited, 400 of lock 1 requested back and released on evm-a, attester sets 0 -> 1.
BASE = AuditInput(
    venue_chain_id=31338, venue=VENUE,
    heads=[ChainHead("evm-a", 31337, 40, 44), ChainHead("evm-b", 31338, 90, 94),
           ChainHead("solana", 900001, 500, 510)],
    locks=[LOCK_1, LOCK_2, LOCK_S],
    credited=[credited_row(LOCK_1), credited_row(LOCK_S, tx="0xc2")],
    queued=[CreditQueuedRow(KEY_2, "0x" + "aa" * 32, USDC, 5_000, POSITION, 51, T0 + 70,
                            "0xq1", OWNER)],
    released=[QueuedReleaseRow("0x" + "aa" * 32, 5_000, 60, T0 + 3_600, "0xr1")],
    requests=[SettlementRequestRow(SID, KEY_1, 400, 1, 70)],
    executed=[ExecutedSettlement("evm-a", SID, KEY_1, 400, 1, 30, "0xs1")],
    attester_indices=[AttesterIndexSample("evm-b:venue", 2, 0, 0, True),
                      AttesterIndexSample("evm-b:venue", 20, 3, 1, True),
                      AttesterIndexSample("evm-b:venue", 94, 2**63, 1, False)],
    caps=[RateCap(31337, USDC, 10_000, 0), RateCap(900001, SOL_USDC, 10_000, 0)],
    records=[record(LOCK_1, LockState.CREDITED), record(LOCK_2, LockState.CREDITED),
             record(LOCK_S, LockState.CREDITED)],
)

Mutation = Callable[[AuditInput], AuditInput]


def same(inp: AuditInput) -> AuditInput:
    return inp


CLEAN: list[tuple[str, str, Mutation]] = [
    ("I1-partial-release-keeps-backing", "I1", same),
    ("I2-each-key-once", "I2", same),
    ("I3-credits-match-their-locks", "I3", same),
    ("I4-nonces-and-set-index-increase", "I4", same),
    ("I5-credited-locks-below-final-head", "I5", same),
    ("I11-same-total-split-over-two-days-fits", "I11", lambda i: replace(
        i, caps=[RateCap(31337, USDC, 5_000, 0), RateCap(900001, SOL_USDC, 10_000, 0)],
        released=[QueuedReleaseRow("0x" + "aa" * 32, 5_000, 60, T0 + DAY, "0xr1")])),
    ("I11-cap-raised-before-the-credit", "I11", lambda i: replace(
        i, caps=[RateCap(31337, USDC, 1, 0), RateCap(31337, USDC, 6_000, T0),
                 RateCap(900001, SOL_USDC, 10_000, 0)])),
    ("I12-store-claims-match-chains", "I12", same),
    ("I12-store-lost-everything-is-not-a-violation", "I12", lambda i: replace(i, records=[])),
]

VIOLATING: list[tuple[str, str, Mutation, str]] = [
    ("I1-source-released-more-than-venue-gave-back", "I1", lambda i: replace(
        i, executed=[ExecutedSettlement("evm-a", SID, KEY_1, 1_000, 1, 30, "0xs1")]),
     "outstanding credit"),
    ("I1-settlements-exceed-the-lock", "I1", lambda i: replace(i, executed=[
        *i.executed, ExecutedSettlement("evm-a", "0x" + "5f" * 32, KEY_1, 700, 2, 31, "0xs2")]),
     "settlements executed 1100 > lock amount 1000"),
    ("I2-lock-credited-twice", "I2", lambda i: replace(
        i, credited=[*i.credited, credited_row(LOCK_1, tx="0xc9")]), "2 Credited events"),
    ("I2-credited-and-released-from-queue", "I2", lambda i: replace(
        i, credited=[*i.credited, credited_row(LOCK_2, tx="0xc9")]),
     "both Credited and CreditQueued"),
    ("I2-settlement-executed-twice", "I2", lambda i: replace(
        i, executed=[*i.executed, ExecutedSettlement("evm-a", SID, KEY_1, 400, 1, 33, "0xs3")]),
     "settlement executed 2 times"),
    ("I3-credit-of-a-lock-that-never-was", "I3", lambda i: replace(
        i, credited=[*i.credited, credited_row(evm_lock(9, 10, 11), tx="0xc9")]),
     "no such lock"),
    ("I3-credited-amount-differs", "I3", lambda i: replace(
        i, credited=[replace(credited_row(LOCK_1), amount=1_001), i.credited[1]]),
     "amount venue=1001 chain=1000"),
    ("I3-beneficiary-differs", "I3", lambda i: replace(
        i, credited=[replace(credited_row(LOCK_1), beneficiary="0x" + "67" * 20),
                     i.credited[1]]), "beneficiary"),
    ("I3-settlement-never-requested", "I3", lambda i: replace(i, requests=[]),
     "never requested"),
    ("I4-vault-nonce-goes-back", "I4", lambda i: replace(
        i, locks=[LOCK_1, replace(LOCK_2, nonce=1), LOCK_S]), "nonce 1 at height 12"),
    ("I4-vault-nonce-skips-a-lock", "I4", lambda i: replace(
        i, locks=[LOCK_1, replace(LOCK_2, nonce=3), LOCK_S]), "missing from the scan"),
    ("I4-attester-set-index-decreases", "I4", lambda i: replace(i, attester_indices=[
        *i.attester_indices[:2], AttesterIndexSample("evm-b:venue", 94, 2**63, 0, False)]),
     "index 0 at height 94 after 1"),
    ("I5-credit-above-final-head", "I5", lambda i: replace(i, heads=[
        ChainHead("evm-a", 31337, 9, 44), *i.heads[1:]]), "above evm-a's final head 9"),
    ("I5-credited-lock-reorged-out", "I5", lambda i: replace(i, locks=[LOCK_1, LOCK_2]),
     "not on solana"),
    ("I11-window-over-cap", "I11", lambda i: replace(i, caps=[
        RateCap(31337, USDC, 5_999, 0), RateCap(900001, SOL_USDC, 10_000, 0)]),
     "credited 6000 > cap 5999"),
    ("I11-credit-without-a-rate-limit", "I11", lambda i: replace(i, caps=i.caps[:1]),
     "no rate limit configured"),
    ("I12-store-says-credited-venue-does-not", "I12", lambda i: replace(i, records=[
        *i.records, record(evm_lock(7, 3, 13), LockState.CREDITED)]),
     "store says credited; the venue has no credit"),
    ("I12-store-says-held-venue-never-queued", "I12", lambda i: replace(i, records=[
        record(LOCK_1, LockState.HELD)]), "venue never queued"),
    ("I12-store-height-contradicted", "I12", lambda i: replace(i, records=[
        record(replace(LOCK_1, height=11), LockState.FINALIZED)]), "store says height 11"),
]


@pytest.mark.parametrize(("invariant", "mutate"), [(inv, m) for _, inv, m in CLEAN],
                         ids=[name for name, _, _ in CLEAN])
def test_clean(invariant: str, mutate: Mutation) -> None:
    assert INVARIANTS[invariant](mutate(BASE)) == []


@pytest.mark.parametrize(("invariant", "mutate", "needle"),
                         [(inv, m, n) for _, inv, m, n in VIOLATING],
                         ids=[name for name, _, _, _ in VIOLATING])
def test_violation(invariant: str, mutate: Mutation, needle: str) -> None:
    found = INVARIANTS[invariant](mutate(BASE))
    assert found, "expected a violation"
    assert {v.invariant for v in found} == {invariant}
    assert any(needle in v.line() for v in found), [v.line() for v in found]


def test_every_invariant_has_a_clean_and_a_violating_row() -> None:
    assert {inv for _, inv, _ in CLEAN} == set(INVARIANTS)
    assert {inv for _, inv, _, _ in VIOLATING} == set(INVARIANTS)


def test_clean_base_audits_clean_and_counts_what_it_checked() -> None:
    assert audit(BASE) == []
    summary = summarize(BASE, [])
    assert summary["locks"] == 3 and summary["credits"] == 3 and summary["violations"] == 0
    assert summary["chains"]["evm-a"] == {"locks": 2, "credits": 1, "queued": 1,
                                          "settlements": 1, "final_height": 40,
                                          "latest_height": 44}
    assert all(row["violations"] == 0 for row in summary["invariants"].values())


def test_fake_credited_record_names_i12_and_its_key() -> None:
    fake = evm_lock(7, 3, 13)
    inp = replace(BASE, records=[*BASE.records, record(fake, LockState.CREDITED)])
    lines = [v.line() for v in audit(inp)]
    assert lines and all(line.startswith("I12 ") for line in lines)
    assert all(lock_key(fake) in line for line in lines)
