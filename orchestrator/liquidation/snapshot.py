"""Position snapshots and the vectorized screen over them (pure).

The values (:class:`PositionSnapshot`, :class:`RiskTuning`, :class:`VenueMargin`) are defined
by the venue seam, :mod:`orchestrator.venues.protocol`, and re-exported here; reading them is
the venue adapter's job (the reference venue: :mod:`orchestrator.venues.reference`).

:func:`screen_candidates` turns one pass of snapshots into the numpy arrays of
:mod:`orchestrator.risk.screen` and returns the positions the screen proposes. The screen's
contract is one-sided — every position the exact integer rule calls liquidatable is proposed —
so the keeper re-checks only the candidates, exactly. The collateral value ``C`` enters the
arrays as an exact integer (the haircut lots floored one by one, as the venue does); only the
part that moves with the mark is screened in float64 inside the documented band.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.risk import RiskError
from orchestrator.risk.margin import position_collateral_usd_e18
from orchestrator.risk.screen import build_screen_book, screen
from orchestrator.venues.protocol import PositionSnapshot, RiskTuning, VenueMargin

__all__ = [
    "PositionSnapshot",
    "RiskTuning",
    "ScreenResult",
    "VenueMargin",
    "screen_candidates",
]


@dataclass(frozen=True, slots=True)
class ScreenResult:
    """Indices (ascending) into the screened snapshots that may be liquidatable, and how many
    of them were forced in because they could not be put into the arrays."""

    candidates: tuple[int, ...]
    forced: int = 0


def screen_candidates(snaps: Sequence[PositionSnapshot]) -> ScreenResult:
    """Screen one pass of snapshots (see the module docstring).

    A snapshot whose collateral cannot be valued (a missing price, an asset its market does
    not accept) or whose mark is not positive cannot be screened; it is proposed anyway, so
    the exact re-check decides (and reports) it. A market index is one (market, mark, buffer),
    so snapshots from different passes may be screened together.
    """
    markets: dict[tuple[str, int, int], int] = {}
    rows: list[int] = []
    forced: list[int] = []
    size: list[float] = []
    entry: list[float] = []
    net: list[float] = []
    mmr: list[float] = []
    market_idx: list[int] = []
    for i, snap in enumerate(snaps):
        mark = snap.prices_e8.get(snap.params.base_asset, 0)
        try:
            collateral = position_collateral_usd_e18(snap.position, snap.prices_e8, snap.params)
        except RiskError:
            forced.append(i)
            continue
        if mark <= 0 or snap.buffer_ppm < 0:
            forced.append(i)
            continue
        rows.append(i)
        size.append(float(snap.position.size_e18))
        entry.append(float(snap.position.entry_e8))
        net.append(float(collateral - snap.position.accrued_fees_usd_e18))
        mmr.append(float(snap.params.mmr_ppm))
        market_idx.append(markets.setdefault((snap.market, mark, snap.buffer_ppm), len(markets)))
    found: list[int] = []
    if rows:
        book = build_screen_book(size, entry, net, mmr, market_idx, len(markets))
        marks = [float(mark) for _, mark, _ in markets]
        buffers = [float(buffer) for _, _, buffer in markets]
        found = [rows[int(j)] for j in screen(book, marks, buffers)]
    return ScreenResult(tuple(sorted({*found, *forced})), len(forced))
