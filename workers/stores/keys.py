"""Every Redis key Bulkhead writes, in one place.

Redis holds work in progress only; the chains are the record (DESIGN §4): every key here can be
rebuilt from them, and a ``FLUSHALL`` costs time, never a lock or a credit. Each store takes a
``prefix`` (``bh:`` by default) so tests and benchmarks can share one server; the layout below
is what an operator sees in ``redis-cli --scan --pattern 'bh:*'``.

Lock store (:mod:`workers.stores.locks`)::

    cursor:<chain>            int     last scanned height
    hashes:<chain>            hash    height -> block hash (reorg detection)
    lock:<lock key>           json    the lock's lifecycle record
    locks                     zset    lock keys by first-seen ms
    open:<chain>              set     lock keys not yet final
    final:<chain>             zset    lock keys past finality (not orphaned), by height: the
                                      watcher re-checks them for a vanished block
    awaiting-credit           set     final, attributed, not yet credited

Signature pool (:mod:`workers.stores.pool`)::

    msg:<digest>              json    the signed message and its domain
    sig:<digest>              hash    signer -> 65-byte signature hex
    digests:<item key>        set     digests posted for one lock or settlement
    ready                     stream  items whose digest reached the threshold (group
                                      ``relayers``); entries are acknowledged once relayed
    ready:<digest>            str     the digest was pushed to ``ready`` (expires in 300 s)
    pool:discarded            int     pool entries that failed verification and were removed

Settlements (:mod:`workers.stores.settlements`)::

    venue-cursor:<chain>      int     last venue height scanned for requests
    settle:<id>               json    the request and its state
    settle-pending            set     ids not yet executed
    settle-approvals:<id>     set     attesters that approved (Solana round 1)
    settle-proposal:<id>      json    the relayer's proposed multisig message (round 2)
    settle-edsigs:<id>        hash    pubkey -> ed25519 signature over the proposal
    edsigned:<attester>:<id>  json    what this attester itself signed (its own record)

Workers (:mod:`workers.mutex`, :mod:`workers.tasks`)::

    run:<job>                 str     mutex of a singleton job, holder ``host:pid``
    last-run:<job>            int     Redis-clock ms of a periodic job's last run
    asked:<item key>          int     when the reconciler last re-asked attesters (ms)
    plan:<plan id>            str     a liquidation plan claimed for execution
    relay:dirty               flag    work arrived while a credit batch was in flight
    relay-settle:dirty        flag    the same for settlements
    risk:last_screen          hash    the last risk tick's screen figures
    risk:shards               hash    shard -> Redis-clock ms its positions were last screened
    ticks:<market>            zset    oracle ticks by publish time; ``:cursor`` its scan cursor
    alive:<worker>            str     pid of a live worker (expires 10 s after its last beat)
    deadletters               hash    id -> a dead-letter record (JSON)
    deadletters:order         zset    ids by time (bounded: the newest are kept)
    deadletters:counts        hash    kind -> records ever added (and ``trimmed``)
    delivery:<task id>        int     deliveries of one task message (counted outside it)
    tx-events                 hash    ``<chain>:<kind>`` -> count of sending-layer decisions
                                      (repriced, replaced, budget_exhausted, ...)
"""

from __future__ import annotations

__all__ = [
    "PREFIX",
    "asked",
    "awaiting_credit",
    "cursor",
    "digests",
    "discarded",
    "edsigned",
    "epoch",
    "hashes",
    "last_run",
    "lock",
    "locks",
    "message",
    "open_locks",
    "plan_claim",
    "ready",
    "ready_marker",
    "relay_dirty",
    "risk_last_screen",
    "risk_shards",
    "run_lock",
    "settle_approvals",
    "settle_dirty",
    "settle_edsigs",
    "settle_pending",
    "settle_proposal",
    "settlement",
    "signatures",
    "ticks",
    "tx_events",
    "venue_cursor",
]

PREFIX = "bh:"


def epoch(p: str = PREFIX) -> str:
    return f"{p}epoch"


def cursor(chain: str, p: str = PREFIX) -> str:
    return f"{p}cursor:{chain}"


def hashes(chain: str, p: str = PREFIX) -> str:
    return f"{p}hashes:{chain}"


def lock(lock_key: str, p: str = PREFIX) -> str:
    return f"{p}lock:{lock_key}"


def locks(p: str = PREFIX) -> str:
    return f"{p}locks"


def open_locks(chain: str, p: str = PREFIX) -> str:
    return f"{p}open:{chain}"


def awaiting_credit(p: str = PREFIX) -> str:
    return f"{p}awaiting-credit"


def message(digest: str, p: str = PREFIX) -> str:
    return f"{p}msg:{digest}"


def signatures(digest: str, p: str = PREFIX) -> str:
    return f"{p}sig:{digest}"


def digests(item: str, p: str = PREFIX) -> str:
    return f"{p}digests:{item}"


def venue_cursor(chain: str, p: str = PREFIX) -> str:
    return f"{p}venue-cursor:{chain}"


def settlement(settlement_id: str, p: str = PREFIX) -> str:
    return f"{p}settle:{settlement_id}"


def settle_pending(p: str = PREFIX) -> str:
    return f"{p}settle-pending"


def settle_approvals(settlement_id: str, p: str = PREFIX) -> str:
    return f"{p}settle-approvals:{settlement_id}"


def settle_proposal(settlement_id: str, p: str = PREFIX) -> str:
    return f"{p}settle-proposal:{settlement_id}"


def settle_edsigs(settlement_id: str, p: str = PREFIX) -> str:
    return f"{p}settle-edsigs:{settlement_id}"


def edsigned(attester: str, settlement_id: str, p: str = PREFIX) -> str:
    return f"{p}edsigned:{attester}:{settlement_id}"


def run_lock(job: str, p: str = PREFIX) -> str:
    return f"{p}run:{job}"


def last_run(job: str, p: str = PREFIX) -> str:
    return f"{p}last-run:{job}"


def asked(item: str, p: str = PREFIX) -> str:
    return f"{p}asked:{item}"


def plan_claim(plan_id: str, p: str = PREFIX) -> str:
    return f"{p}plan:{plan_id}"


def relay_dirty(p: str = PREFIX) -> str:
    return f"{p}relay:dirty"


def settle_dirty(p: str = PREFIX) -> str:
    return f"{p}relay-settle:dirty"


def risk_last_screen(p: str = PREFIX) -> str:
    return f"{p}risk:last_screen"


def risk_shards(p: str = PREFIX) -> str:
    return f"{p}risk:shards"


def ticks(p: str = PREFIX) -> str:
    """The tick history's prefix: ``<ticks>:<market>`` and ``<ticks>:<market>:cursor``."""
    return f"{p}ticks"


def tx_events(p: str = PREFIX) -> str:
    return f"{p}tx-events"


def ready(p: str = PREFIX) -> str:
    return f"{p}ready"


def ready_marker(digest: str, p: str = PREFIX) -> str:
    return f"{p}ready:{digest}"


def discarded(p: str = PREFIX) -> str:
    return f"{p}pool:discarded"


def deadletters(p: str = PREFIX) -> str:
    return f"{p}deadletters"


def deadletter_order(p: str = PREFIX) -> str:
    return f"{p}deadletters:order"


def deadletter_counts(p: str = PREFIX) -> str:
    return f"{p}deadletters:counts"


def deliveries(task_id: str, p: str = PREFIX) -> str:
    return f"{p}delivery:{task_id}"


def alive(worker: str, p: str = PREFIX) -> str:
    return f"{p}alive:{worker}"


def final_locks(chain: str, p: str = PREFIX) -> str:
    return f"{p}final:{chain}"


def orphaned(p: str = PREFIX) -> str:
    """Set of lock record keys (archive keys included) whose lock vanished after finality."""
    return f"{p}orphaned"


def accountant_acks(p: str = PREFIX) -> str:
    """Hash lane id -> the I1 deficit (base units) the accountant already paused the lane for;
    a resumed lane pauses again only when its deficit grows past it."""
    return f"{p}acct:acks"


def accountant_orphans(p: str = PREFIX) -> str:
    """Set of orphaned lock keys the accountant already paused a lane for."""
    return f"{p}acct:orphans"


def accountant_books(p: str = PREFIX) -> str:
    """Hash lane id -> JSON of the lane's last book (held, outstanding, ceiling, paused, at_ms),
    read by ``/metrics`` and ``bulkhead admin lanes``."""
    return f"{p}acct:books"
