"""Prometheus metrics computed on scrape from a snapshot of Redis and the chains (pure).

Nothing is counted in the API process itself: several API replicas, or one restarted, report
the same figures, because every number is derived from what the workers left in Redis and
what the chains say. ``routes_metrics`` gathers a :class:`MetricsInput` (I/O) and registers a
fresh :class:`BulkheadCollector` over it for each scrape.

A source that could not be read is left out (and ``bulkhead_scrape_source_up`` says so)
rather than reported as zero: an empty queue and an unreadable one are different alarms.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from shared.locks import LockRecord, LockState
from shared.settings import Settings

__all__ = [
    "LATENCY_BUCKETS_S",
    "BulkheadCollector",
    "MetricsInput",
    "latency_buckets",
    "queue_names",
    "risk_screen",
]

LATENCY_BUCKETS_S = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1800)
RISK_SCREEN_FIELDS = ("duration_us", "positions", "candidates", "at_ms")


@dataclass(frozen=True)
class MetricsInput:
    """Everything one scrape reports; ``None`` marks a source that could not be read."""

    records: list[LockRecord] | None = None
    queue_depths: Mapping[str, int] | None = None
    signatures: Mapping[str, int] | None = None
    risk_screen: Mapping[str, int] | None = None
    liquidations: Sequence[Mapping[str, Any]] | None = None
    chains: Sequence[Mapping[str, Any]] = field(default_factory=list)
    sources: Mapping[str, bool] = field(default_factory=dict)
    deadletters: int | None = None  # records held now
    deadletter_kinds: Mapping[str, int] | None = None  # records ever added, by kind
    pool_discarded: int | None = None  # pool entries that failed verification
    tx_events: Mapping[str, int] | None = None  # "<chain>:<kind>" -> sending decisions
    workers_alive: Mapping[str, bool] | None = None
    lanes: Sequence[Mapping[str, Any]] | None = None  # the accountant's last books
    marks: Sequence[Mapping[str, Any]] | None = None  # rows.mark_row per oracle name


def queue_names(settings: Settings) -> list[str]:
    """Every Celery queue the roles consume."""
    from workers.queues import all_queues

    return all_queues(settings)


def risk_screen(raw: Mapping[str, str] | None) -> dict[str, int] | None:
    """The risk worker's ``bh:risk:last_screen`` hash, or None if absent or not all integers."""
    if not raw:
        return None
    try:
        return {f: int(raw[f]) for f in RISK_SCREEN_FIELDS}
    except (KeyError, ValueError):
        return None


def latency_buckets(records: Iterable[LockRecord], frm: LockState = LockState.SEEN,
                    to: LockState = LockState.CREDITED
                    ) -> dict[str, tuple[list[tuple[str, float]], float]]:
    """Per chain: cumulative histogram buckets and the sum (seconds) of ``frm -> to`` times of
    every lock that made the transition."""
    samples: dict[str, list[float]] = {}
    for r in records:
        start, end = r.reached(frm), r.reached(to)
        if start is not None and end is not None:
            samples.setdefault(r.event.chain, []).append(max(0, end.at_ms - start.at_ms) / 1000)
    out = {}
    for chain, values in sorted(samples.items()):
        buckets = [(str(float(b)), float(sum(v <= b for v in values))) for b in LATENCY_BUCKETS_S]
        buckets.append(("+Inf", float(len(values))))
        out[chain] = (buckets, sum(values))
    return out


class BulkheadCollector(Collector):
    """Yields every Bulkhead metric family from one :class:`MetricsInput`."""

    def __init__(self, data: MetricsInput) -> None:
        self.data = data

    def collect(self) -> Iterator[Metric]:
        yield from self._sources()
        yield from self._locks()
        yield from self._queues()
        yield from self._signatures()
        yield from self._liquidations()
        yield from self._risk()
        yield from self._chains()
        yield from self._operations()
        if self.data.marks is not None:
            yield from _mark_metrics(self.data.marks)

    def _sources(self) -> Iterator[Metric]:
        g = GaugeMetricFamily("bulkhead_scrape_source_up",
                              "1 if the source could be read during this scrape", labels=["source"])
        for name, ok in sorted(self.data.sources.items()):
            g.add_metric([name], 1.0 if ok else 0.0)
        yield g

    def _locks(self) -> Iterator[Metric]:
        if self.data.records is None:
            return
        h = HistogramMetricFamily("bulkhead_lock_to_credit_seconds",
                                  "Time from a lock first seen to credited on the venue",
                                  labels=["chain"])
        for chain, (buckets, total) in latency_buckets(self.data.records).items():
            h.add_metric([chain], buckets, total)
        yield h
        g = GaugeMetricFamily("bulkhead_locks", "Locks per chain and lifecycle state",
                              labels=["chain", "state"])
        counts = Counter((r.event.chain, r.state.value) for r in self.data.records)
        for (chain, state), n in sorted(counts.items()):
            g.add_metric([chain, state], float(n))
        yield g

    def _queues(self) -> Iterator[Metric]:
        if self.data.queue_depths is None:
            return
        g = GaugeMetricFamily("bulkhead_queue_depth", "Messages waiting in a Celery queue",
                              labels=["queue"])
        for name, depth in sorted(self.data.queue_depths.items()):
            g.add_metric([name], float(depth))
        yield g

    def _signatures(self) -> Iterator[Metric]:
        if self.data.signatures is None:
            return
        g = GaugeMetricFamily("bulkhead_attester_signatures",
                              "Signatures an attester has in the signature pool",
                              labels=["attester"])
        for name, n in sorted(self.data.signatures.items()):
            g.add_metric([name], float(n))
        yield g

    def _liquidations(self) -> Iterator[Metric]:
        rows = self.data.liquidations
        if rows is None:
            return
        c = CounterMetricFamily("bulkhead_liquidations", "Liquidated events on the venue",
                                labels=["full"])
        liq = [r for r in rows if r["kind"] == "liquidation"]
        for full in ("true", "false"):
            c.add_metric([full], float(sum(str(bool(r["full"])).lower() == full for r in liq)))
        yield c
        yield CounterMetricFamily("bulkhead_shortfalls", "Shortfall events (loss beyond a "
                                  "position's collateral)",
                                  value=float(sum(r["shortfall_usd_e18"] != "0" for r in rows)))

    def _risk(self) -> Iterator[Metric]:
        s = self.data.risk_screen
        if s is None:
            return
        yield GaugeMetricFamily("bulkhead_risk_screen_duration_seconds",
                                "Duration of the risk worker's last screen",
                                value=s["duration_us"] / 1e6)
        yield GaugeMetricFamily("bulkhead_risk_screen_positions",
                                "Positions in the last screen", value=float(s["positions"]))
        yield GaugeMetricFamily("bulkhead_risk_screen_candidates",
                                "Liquidation candidates in the last screen",
                                value=float(s["candidates"]))
        yield GaugeMetricFamily("bulkhead_risk_screen_timestamp_seconds",
                                "When the last screen ran (Unix time)", value=s["at_ms"] / 1000)

    def _chains(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("bulkhead_chain_up", "1 if the chain answered", labels=["chain"])
        head = GaugeMetricFamily("bulkhead_chain_head", "Head height at a commitment",
                                 labels=["chain", "finality"])
        lag = GaugeMetricFamily("bulkhead_chain_finality_lag",
                                "latest - finalized height (blocks or slots)", labels=["chain"])
        for c in self.data.chains:
            up.add_metric([c["chain"]], 1.0 if c["reachable"] else 0.0)
            if not c["reachable"]:
                continue
            for finality in ("latest", "safe", "finalized"):
                head.add_metric([c["chain"], finality], float(c[finality]))
            lag.add_metric([c["chain"]], float(c["lag"]))
        yield from (up, head, lag)

    def _operations(self) -> Iterator[Metric]:
        d = self.data
        if d.deadletters is not None:
            yield GaugeMetricFamily("bulkhead_deadletters", "Dead-letter records held now",
                                    value=d.deadletters)
        if d.deadletter_kinds is not None:
            c = CounterMetricFamily("bulkhead_deadletters_added",
                                    "Dead letters ever recorded, by kind", labels=["kind"])
            for kind, n in sorted(d.deadletter_kinds.items()):
                c.add_metric([kind], n)
            yield c
        if d.pool_discarded is not None:
            yield CounterMetricFamily("bulkhead_pool_entries_discarded",
                                      "Signature pool entries that failed verification",
                                      value=d.pool_discarded)
        if d.tx_events is not None:
            c = CounterMetricFamily("bulkhead_tx_events",
                                    "Sending-layer decisions (repriced, replaced, "
                                    "budget_exhausted...)", labels=["chain", "kind"])
            for name, n in sorted(d.tx_events.items()):
                chain, _, kind = name.rpartition(":")
                c.add_metric([chain, kind], n)
            yield c
        if d.lanes:
            yield from _lane_metrics(d.lanes)
        if d.workers_alive is not None:
            g = GaugeMetricFamily("bulkhead_worker_alive", "1 while a worker's heartbeat is live",
                                  labels=["worker"])
            for worker, ok in sorted(d.workers_alive.items()):
                g.add_metric([worker], 1 if ok else 0)
            yield g


def _lane_metrics(rows: Sequence[Mapping[str, Any]]) -> Iterator[Metric]:
    """The accountant's last pass per lane, in base units (``bulkhead_lane_deficit`` > 0 or
    ``bulkhead_lane_paused`` = 1 is an incident: page on it)."""
    labels = ["chain", "asset", "vault"]
    families = {name: GaugeMetricFamily(f"bulkhead_lane_{name}", text, labels=labels)
                for name, text in (
                    ("held", "What the source vault holds (base units)"),
                    ("outstanding", "What the venue credited and has not asked back"),
                    ("deficit", "Credit the vault does not back (I1 breach when > 0)"),
                    ("headroom", "Credit the lane can still take"),
                    ("paused", "1 while the venue's lane is paused"),
                    ("checked_timestamp_seconds", "When the accountant last read the lane"))}
    for row in rows:
        at = [str(row["chain"]), str(row["asset"]), str(row["vault"])]
        for name in ("held", "outstanding", "deficit", "headroom"):
            families[name].add_metric(at, float(int(row[name])))
        families["paused"].add_metric(at, 1.0 if row["paused"] else 0.0)
        families["checked_timestamp_seconds"].add_metric(at, int(row["at_ms"]) / 1000)
    yield from families.values()


def _mark_metrics(rows: Sequence[Mapping[str, Any]]) -> Iterator[Metric]:
    """Each mark and its sources as judged for a user action (the stricter max age):
    ``bulkhead_mark_below_quorum`` = 1 means the venue refuses every user action priced by
    that name (page on it); a source's age and deviation say which source is to blame."""
    labels = ["market", "source", "kind"]
    age = GaugeMetricFamily("bulkhead_mark_source_age_seconds",
                            "Age of a mark source's price on the venue chain's clock",
                            labels=labels)
    deviation = GaugeMetricFamily("bulkhead_mark_source_deviation_ppm",
                                  "|source price - mark| * 1e6 / mark, against the "
                                  "user-action mark", labels=labels)
    valid = GaugeMetricFamily("bulkhead_mark_source_valid",
                              "1 if the source counts toward the user-action mark",
                              labels=labels)
    count = GaugeMetricFamily("bulkhead_mark_valid_sources",
                              "Sources the user-action mark uses", labels=["market"])
    minimum = GaugeMetricFamily("bulkhead_mark_min_sources",
                                "Valid sources the oracle needs for a mark", labels=["market"])
    below = GaugeMetricFamily("bulkhead_mark_below_quorum",
                              "1 while fewer sources are valid than the minimum for a user "
                              "action (no user action can be priced)", labels=["market"])
    for row in rows:
        market, user = str(row["market"]), row["user"]
        for s in row["sources"]:
            at = [market, str(s["source"]), str(s["kind"])]
            if s["age_s"] is not None:
                age.add_metric(at, int(s["age_s"]))
            if s["deviation_ppm"] is not None:
                deviation.add_metric(at, int(s["deviation_ppm"]))
            valid.add_metric(at, 1 if s["reason"] == "ok" else 0)
        count.add_metric([market], int(user["valid_sources"]))
        minimum.add_metric([market], int(row["min_sources"]))
        below.add_metric([market], 0 if int(user["valid_sources"]) >= int(row["min_sources"])
                         else 1)
    yield from (age, deviation, valid, count, minimum, below)
