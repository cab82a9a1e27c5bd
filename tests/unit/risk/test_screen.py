"""The vectorized screen never misses a position the exact integer rule calls liquidatable."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.risk import liquidatable_at
from orchestrator.risk.margin import ceil_div, notional_usd_e18, unrealized_pnl_usd_e18
from orchestrator.risk.screen import DELTA, build_screen_book, screen

positions = st.lists(
    st.tuples(
        st.integers(-(10**30), 10**30),  # size_e18
        st.integers(1, 10**15),  # entry_e8
        st.integers(-(10**30), 10**31),  # net collateral, unless pinned to the boundary
        st.integers(1, 200_000),  # mmr_ppm
        st.integers(0, 4),  # market index (mod the number of markets)
        st.one_of(st.none(), st.integers(-4, 4)),  # pin E - MM to this value
    ),
    min_size=1, max_size=40,
)


@given(book=positions, marks=st.lists(st.integers(1, 10**15), min_size=5, max_size=5),
       buffers=st.lists(st.integers(0, 100_000), min_size=5, max_size=5),
       n_markets=st.integers(1, 5))
def test_screen_never_misses(book: list[tuple[int, int, int, int, int, int | None]],
                             marks: list[int], buffers: list[int], n_markets: int) -> None:
    rows = []
    for size, entry, net, mmr, market, pin in book:
        market %= n_markets
        mark, m = marks[market], mmr + buffers[market]
        if pin is not None:  # right at the boundary, where rounding decides
            mm = ceil_div(notional_usd_e18(size, mark) * m, 10**6)
            net = mm + pin - unrealized_pnl_usd_e18(size, entry, mark)
        rows.append((size, entry, net, mmr, market))
    sizes, entries, nets, mmrs, markets = (list(col) for col in zip(*rows, strict=True))
    screened = screen(build_screen_book(sizes, entries, nets, mmrs, markets, n_markets),
                      marks[:n_markets], buffers[:n_markets])
    candidates = set(screened.tolist())
    for i, (size, entry, net, mmr, market) in enumerate(rows):
        if liquidatable_at(size, entry, net, mmr + buffers[market], marks[market]):
            assert i in candidates, rows[i]


def test_random_book_no_miss_and_only_band_false_positives() -> None:
    rng = np.random.default_rng(7)
    n, n_markets = 20_000, 7
    marks = [int(x) for x in rng.integers(10**6, 10**13, n_markets)]
    buffers = [int(x) for x in rng.integers(0, 30_000, n_markets)]
    market = [int(x) for x in rng.integers(0, n_markets, n)]
    size = [int(s) * 10 ** int(k) for s, k in zip(rng.integers(-(10**6), 10**6, n),
                                                  rng.integers(9, 20, n), strict=True)]
    entry = [int(marks[m] * f) for m, f in zip(market, rng.uniform(0.8, 1.2, n), strict=True)]
    mmr = [int(x) for x in rng.integers(5_000, 100_000, n)]
    net = [abs(s) * e // 10**8 * int(lev) // 10**6 for s, e, lev in
           zip(size, entry, rng.integers(20_000, 500_000, n), strict=True)]
    got = set(screen(build_screen_book(size, entry, net, mmr, market, n_markets), marks,
                     buffers).tolist())
    truth = {i for i in range(n) if liquidatable_at(size[i], entry[i], net[i],
                                                    mmr[i] + buffers[market[i]], marks[market[i]])}
    assert truth and truth <= got
    for i in got - truth:  # every false positive sits inside the documented band
        p, m = marks[market[i]], mmr[i] + buffers[market[i]]
        g = net[i] + Fraction(size[i] * (p - entry[i]), 10**8) - Fraction(abs(size[i]) * p * m,
                                                                           10**14)
        mag = abs(net[i]) + Fraction(abs(size[i]) * entry[i], 10**8) + Fraction(
            abs(size[i]) * p * (10**6 + m), 10**14)
        assert g < 4 + 2 * Fraction(DELTA) * mag


def test_flat_positions_are_never_candidates() -> None:
    book = build_screen_book([0, 0], [1, 1], [-(10**20), 10**20], 50_000, [0, 0], 1)
    assert screen(book, [2_000 * 10**8], [0]).size == 0


def test_int64_float64_and_python_int_inputs_agree() -> None:
    args = ([10**18, -(10**18), 5 * 10**17], [2_000 * 10**8] * 3, [100 * 10**18, 100 * 10**18, 0])
    as_py = build_screen_book(*args, [25_000] * 3, [0, 0, 0], 1)
    as_np = build_screen_book(*(np.array(a, dtype=np.float64) for a in args),
                              np.array([25_000] * 3, dtype=np.int64), np.zeros(3, np.int64), 1)
    for mark in (1_850, 1_905, 2_095, 2_150):
        assert screen(as_py, [mark * 10**8], [0]).tolist() == \
            screen(as_np, [mark * 10**8], [0]).tolist()


def test_refreshed_collateral_equals_a_rebuild() -> None:
    size, entry, mmr = [10**19, -(10**19)], [2_000 * 10**8] * 2, [25_000] * 2
    book = build_screen_book(size, entry, [2_000 * 10**18] * 2, mmr, [0, 0], 1)
    refreshed = book.with_collateral([1], [500 * 10**18])
    rebuilt = build_screen_book(size, entry, [2_000 * 10**18, 500 * 10**18], mmr, [0, 0], 1)
    assert np.array_equal(refreshed.const, rebuilt.const)
    assert screen(refreshed, [2_050 * 10**8], [0]).tolist() == [1]


@pytest.mark.parametrize(
    ("marks", "buffers", "message"),
    [([0.0], [0], "marks"), ([float("nan")], [0], "finite"), ([1.0], [-1], "buffers"),
     ([1.0, 2.0], [0, 0], "one mark")],
)
def test_bad_tick_inputs_are_refused(marks: list[float], buffers: list[int], message: str) -> None:
    book = build_screen_book([1], [1], [1], 1, [0], 1)
    with pytest.raises(ValueError, match=message):
        screen(book, marks, buffers)


def test_bad_book_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="market index"):
        build_screen_book([1], [1], [1], 1, [3], 2)
    with pytest.raises(ValueError, match="one length"):
        build_screen_book([1, 2], [1], [1], 1, [0], 1)
