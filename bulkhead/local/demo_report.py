"""The demo's report, pure: journeys of locks, fates of positions, the crash prices, the chart's
series. No I/O; the demo collects the data and this module shapes it.

Ratios are integer parts-per-million (E * 1e6 // MM, rounded down); they only become floats
where the chart draws them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

from orchestrator.actions.inputs import format_amount

__all__ = [
    "PositionFate",
    "RatioSeries",
    "crash_price_e8",
    "gap_price_e8",
    "lock_journey",
    "locks_report_table",
    "positions_report_table",
    "ratio_ppm",
]

PPM = 1_000_000
_STAGES = ("seen", "finalized", "attested", "credited")


def ratio_ppm(equity_usd_e18: int, maintenance_usd_e18: int) -> int | None:
    """E / MM in ppm (floor); None without a maintenance requirement (no open trade)."""
    if maintenance_usd_e18 <= 0:
        return None
    return equity_usd_e18 * PPM // maintenance_usd_e18


def crash_price_e8(*, size_e18: int, mark_e8: int, equity_usd_e18: int,
                   maintenance_usd_e18: int, target_ratio_ppm: int) -> int:
    """The mark at which a long's E / MM falls to ``target_ratio_ppm``, one stable collateral.

    With E(p) = E0 + s (p - p0) and MM(p) = s p m (m = MM0 / (s p0)):
    p = (s p0 - E0) / (s (1 - r m)). Rounded down, so the ratio lands at or below the target.
    """
    if size_e18 <= 0 or maintenance_usd_e18 <= 0:
        raise ValueError("crash_price_e8 needs an open long with a maintenance requirement")
    notional = size_e18 * mark_e8  # usd e26
    # p (e8) = (s p0 - E0) / (s (1 - r m)); scale everything to e26 = e18 * e8.
    num = notional - equity_usd_e18 * 10**8  # usd e26
    one_minus_rm = PPM * notional - target_ratio_ppm * maintenance_usd_e18 * 10**8  # ppm * e26
    return num * PPM * mark_e8 // one_minus_rm


def gap_price_e8(*, size_e18: int, mark_e8: int, equity_usd_e18: int, gap_ppm: int) -> int:
    """A mark ``gap_ppm`` below a long's bankruptcy price (where E reaches 0): a gap through it."""
    if size_e18 <= 0:
        raise ValueError("gap_price_e8 needs an open long")
    bankrupt_e8 = mark_e8 - equity_usd_e18 * 10**8 // size_e18
    return bankrupt_e8 * (PPM - gap_ppm) // PPM


def lock_journey(row: dict[str, Any], submitted_ms: int) -> dict[str, Any]:
    """One lock row (``views.lock_row``) as stage -> seconds since it was submitted."""
    at = {t["state"]: t["at_ms"] for t in row.get("transitions", [])}
    stages = {s: (round((at[s] - submitted_ms) / 1000, 1) if s in at else None)
              for s in _STAGES}
    return {"lock": row["key"], "chain": row["chain"], "position": row["position_key"],
            "amount": row["amount_display"], "state": row["state"], "stages_s": stages,
            "released": row.get("released", "0"), "seized": row.get("seized", "0"),
            "decimals": row["decimals"]}


@dataclass
class PositionFate:
    """What happened to one position during the demo."""

    label: str
    owner: str
    key: str
    side: str
    size: str
    locks: list[str] = field(default_factory=list)
    liquidations: list[dict[str, Any]] = field(default_factory=list)
    shortfall_usd_e18: int = 0
    closed: bool = False
    untouched_by_crash: bool | None = None
    released: dict[str, int] = field(default_factory=dict)  # chain -> source units
    seized: dict[str, int] = field(default_factory=dict)

    def outcome(self) -> str:
        kinds = [("full" if liq["full"] else "partial") for liq in self.liquidations]
        if kinds:
            return "liquidated: " + " -> ".join(kinds)
        return "closed by owner" if self.closed else "open"

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "owner": self.owner, "key": self.key, "side": self.side,
                "size": self.size, "locks": self.locks, "outcome": self.outcome(),
                "liquidations": self.liquidations,
                "shortfall_usd_e18": str(self.shortfall_usd_e18), "closed": self.closed,
                "untouched_by_crash": self.untouched_by_crash,
                "released": {k: str(v) for k, v in self.released.items()},
                "seized": {k: str(v) for k, v in self.seized.items()}}


@dataclass
class RatioSeries:
    """Margin ratio samples per position: (seconds since start, ratio ppm or None)."""

    points: dict[str, list[tuple[float, int | None]]] = field(default_factory=dict)
    marks: list[tuple[float, str]] = field(default_factory=list)  # (t, label) events
    buffer: list[tuple[float, int]] = field(default_factory=list)  # (t, market buffer ppm)

    def add(self, label: str, t_s: float, ratio: int | None) -> None:
        self.points.setdefault(label, []).append((round(t_s, 2), ratio))

    def mark(self, t_s: float, what: str) -> None:
        self.marks.append((round(t_s, 2), what))

    def add_buffer(self, t_s: float, buffer_ppm: int) -> None:
        self.buffer.append((round(t_s, 2), buffer_ppm))


@dataclass
class BufferStory:
    """The market's volatility buffer through the demo: on chain after the calm stretch,
    after the volatile one (at the crash) and its cap, with the MM rate they give (ppm)."""

    mmr_ppm: int
    cap_ppm: int
    calm_ppm: int = 0
    at_crash_ppm: int = 0
    volatile_ticks: int = 0
    widened_after_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"mmr_ppm": self.mmr_ppm, "cap_ppm": self.cap_ppm, "calm_ppm": self.calm_ppm,
                "at_crash_ppm": self.at_crash_ppm, "volatile_ticks": self.volatile_ticks,
                "widened_after_s": self.widened_after_s}


def _pct(ppm: int) -> str:
    """A ppm rate as a percentage with 4 decimals, by integer arithmetic."""
    return f"{ppm // 10_000}.{ppm % 10_000:04d} %"


def buffer_report_table(story: BufferStory) -> Table:
    table = Table(title="The volatility buffer (ETH-USD, fed from the mark)")
    for col in ("stretch", "buffer (ppm)", "maintenance rate", "note"):
        table.add_column(col)
    table.add_row("calm", str(story.calm_ppm), _pct(story.mmr_ppm + story.calm_ppm),
                  "prices re-stamped, no returns")
    table.add_row("volatile, before the crash", str(story.at_crash_ppm),
                  _pct(story.mmr_ppm + story.at_crash_ppm),
                  f"{story.volatile_ticks} ticks of +-0.4 %; cap {story.cap_ppm} ppm reached "
                  f"after {story.widened_after_s} s" if story.widened_after_s is not None
                  else f"{story.volatile_ticks} ticks")
    return table


def _usdc(units: int) -> str:
    return format_amount(units, 6) if units else "0"


def locks_report_table(journeys: list[dict[str, Any]]) -> Table:
    table = Table(title="Every lock's journey (seconds after the lock was sent)")
    for col in ("chain", "position", "amount", *_STAGES, "released", "seized"):
        table.add_column(col, justify="right" if col not in ("chain", "position") else "left")
    for j in journeys:
        table.add_row(j["chain"], j["position_label"], j["amount"],
                      *["-" if j["stages_s"][s] is None else f"{j['stages_s'][s]:.1f}"
                        for s in _STAGES],
                      format_amount(int(j["released"]), j["decimals"]),
                      format_amount(int(j["seized"]), j["decimals"]))
    return table


def positions_report_table(fates: list[PositionFate]) -> Table:
    table = Table(title="Every position's fate")
    for col in ("position", "owner", "trade", "outcome", "shortfall (USD)", "seized (USDC)",
                "released (USDC)", "untouched by the crash"):
        table.add_column(col)
    for f in fates:
        untouched = {None: "-", True: "yes (bit-identical)", False: "NO"}[f.untouched_by_crash]
        table.add_row(
            f"{f.label} {f.key[:10]}…", f.owner, f"{f.side} {f.size} ETH", f.outcome(),
            format_amount(f.shortfall_usd_e18, 18) if f.shortfall_usd_e18 else "0",
            ", ".join(f"{_usdc(v)} on {k}" for k, v in sorted(f.seized.items())) or "0",
            ", ".join(f"{_usdc(v)} on {k}" for k, v in sorted(f.released.items())) or "0",
            untouched)
    return table
