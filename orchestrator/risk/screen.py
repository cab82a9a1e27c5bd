"""Vectorized liquidation screen over every position, one pass per price tick (DESIGN §3).

The screen only *proposes*: it returns candidate indices, and each candidate is re-checked with
the exact integers of :mod:`orchestrator.risk.margin` on a fresh snapshot before a plan is
built (and the venue checks once more on chain). Its contract is one-sided:

    every position that ``margin.liquidatable_at`` calls liquidatable is a candidate.

False positives only cost a re-check. Arrays are float64 with a safety band (int64 cannot hold
``size_e18 * price_e8`` for realistic sizes, and a rescaled int64 would round in its own way).

Why the band is enough. For one position write ``C' = C - accrued fees`` (usd_e18),
``s = size_e18``, ``e = entry_e8``, ``m = mmr_ppm + buffer_ppm`` and the exact real function

    g(p) = C' + s*(p - e)/1e8 - |s|*p*m/1e14        (exact E minus exact MM)

The integer rule floors E (error < 1) and ceils MM (N up by < 1, then MM up by < 1 + m/1e6), so
``liquidatable_at(p)`` implies ``g(p) < 3``. The screen evaluates, in float64,

    g_lo(p) = g(p) - 4 - DELTA * mag(p),   mag(p) = |C'| + |s|*e/1e8 + |s|*p*(1 + m/1e6)/1e8

with the band folded into three per-position coefficients (``const``, ``lin``, ``buf``) so a
tick costs two gathers, two products and two sums: ``g_lo = const + lin*p - buf*(p*buffer)``.
Each of the ~20 roundings (float conversion of the integer inputs included) is at most
2**-53 relative to a term bounded by ``2 * mag(p) + 4``, so the float result is within
``2**-47 * (mag(p) + 4)`` of ``g_lo(p)``; ``DELTA = 2**-40`` and the extra 1 of the constant
(4 rather than 3) cover that with a factor of more than 100. Hence ``liquidatable_at(p)`` gives
``g(p) < 3``, so ``g_lo(p) < -1 - DELTA*mag(p)`` and the computed value is negative: a candidate.
The band costs about ``1e-12`` of the position's magnitude (a millionth of a cent on a
$10,000 position), so it adds almost no false positives.

The collateral value is an input: when a collateral asset's price moves, the caller refreshes
``net_collateral_usd_e18`` for the positions holding it (:meth:`ScreenBook.with_collateral`).
Positions of size 0 are never candidates (their MM is 0).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ABS_BAND_USD_E18", "DELTA", "ScreenBook", "build_screen_book", "screen"]

DELTA = 2.0**-40  # relative band, in units of mag(p)
ABS_BAND_USD_E18 = 4.0  # absolute band: 3 for the integer rounding, 1 spare

F64 = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ScreenBook:
    """Per-position screen coefficients (float64) and the market of each position."""

    market_idx: NDArray[np.intp]
    const: F64  # C' - s*e/1e8 - band terms that do not move with p
    lin: F64  # s/1e8 - |s|*mmr/1e14 - band per unit of p
    buf: F64  # |s|/1e14 * (1 + DELTA): multiplies p * buffer_ppm
    abs_size: F64
    sign: F64
    entry: F64
    mmr: F64
    n_markets: int

    def __len__(self) -> int:
        return int(self.market_idx.shape[0])

    def with_collateral(self, indices: ArrayLike, net_collateral_usd_e18: ArrayLike) -> ScreenBook:
        """A book whose positions ``indices`` have new net collateral values ``C - fees``."""
        idx = np.asarray(indices, dtype=np.intp)
        const = self.const.copy()
        const[idx] = _const(_f64(net_collateral_usd_e18), self.abs_size[idx], self.sign[idx],
                            self.entry[idx])
        return replace(self, const=const)


def _f64(values: ArrayLike) -> F64:
    array = np.asarray(values)
    if array.dtype == object:
        array = np.array([float(v) for v in array.ravel()], dtype=np.float64).reshape(array.shape)
    out = np.asarray(array, dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError("screen inputs must be finite")
    return out


def _const(net: F64, abs_size: F64, sign: F64, entry: F64) -> F64:
    exposure = abs_size * entry * 1e-8  # |s| * e / 1e8
    const: F64 = net - sign * exposure - ABS_BAND_USD_E18 - DELTA * (np.abs(net) + exposure)
    return np.where(abs_size == 0, 1.0, const)


def build_screen_book(size_e18: ArrayLike, entry_e8: ArrayLike, net_collateral_usd_e18: ArrayLike,
                      mmr_ppm: ArrayLike, market_idx: ArrayLike, n_markets: int) -> ScreenBook:
    """Precompute the per-position coefficients (once per change of a position, not per tick).

    Args:
        size_e18: signed sizes (Python ints of any size, int64 or float64 arrays).
        entry_e8: entry prices.
        net_collateral_usd_e18: ``C - accrued fees`` per position at current collateral prices.
        mmr_ppm: maintenance rate before the buffer, per position (or one value for all).
        market_idx: index into the per-market arrays of :func:`screen`.
        n_markets: number of markets.

    Raises:
        ValueError: shapes differ, a value is not finite, or a market index is out of range.
    """
    size = _f64(size_e18)
    entry = _f64(entry_e8)
    net = _f64(net_collateral_usd_e18)
    mmr = np.broadcast_to(_f64(mmr_ppm), size.shape).astype(np.float64)
    idx = np.asarray(market_idx, dtype=np.intp)
    if not (size.shape == entry.shape == net.shape == idx.shape) or size.ndim != 1:
        raise ValueError("screen inputs must be 1-d arrays of one length")
    if idx.size and (idx.min() < 0 or idx.max() >= n_markets):
        raise ValueError("market index out of range")
    abs_size = np.abs(size)
    sign = np.sign(size)
    lin = sign * abs_size * 1e-8 - abs_size * mmr * 1e-14 - DELTA * abs_size * (1e-8 + mmr * 1e-14)
    buf = abs_size * 1e-14 * (1 + DELTA)
    return ScreenBook(market_idx=idx, const=_const(net, abs_size, sign, entry), lin=lin, buf=buf,
                      abs_size=abs_size, sign=sign, entry=entry, mmr=mmr, n_markets=n_markets)


def screen(book: ScreenBook, marks_e8: ArrayLike, buffer_ppm: ArrayLike) -> NDArray[np.intp]:
    """Indices (ascending) of every position that may be liquidatable at this tick.

    Args:
        book: the positions' coefficients (:func:`build_screen_book`).
        marks_e8: mark price per market index (price_e8, > 0).
        buffer_ppm: current volatility buffer per market index (>= 0).

    Raises:
        ValueError: a mark is not positive and finite, or a buffer is negative or not finite.
    """
    marks = _f64(marks_e8)
    buffers = _f64(buffer_ppm)
    if marks.shape != (book.n_markets,) or buffers.shape != (book.n_markets,):
        raise ValueError("one mark and one buffer per market")
    if np.any(marks <= 0) or np.any(buffers < 0):
        raise ValueError("marks must be > 0 and buffers >= 0")
    p = marks.take(book.market_idx)
    pb = (marks * buffers).take(book.market_idx)
    g = book.lin * p
    g -= np.multiply(book.buf, pb, out=pb)
    g += book.const
    return np.flatnonzero(g < 0)
