"""Risk screen figure: one price tick over 1,000,000 positions in 50 markets, on one core.

Measures ``orchestrator.risk.screen.screen`` (float64 with the documented safety band) as the
median of several runs, and a plain Python loop applying the exact integer rule
(``margin.liquidatable_at``) to the same positions. The loop is timed on a 100,000-position
subsample and extrapolated linearly to the full book (stated in the output). Threads are held
to one (BLAS/OpenMP variables, and the process pinned to one CPU while timing). Also checks, on
the subsample, that every exactly-liquidatable position is a candidate.

``python -m benchmarks.risk_screen`` prints the JSON; ``main()`` returns it.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json
import platform
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from orchestrator.risk.margin import liquidatable_at
from orchestrator.risk.screen import build_screen_book, screen

N_POSITIONS = 1_000_000
N_MARKETS = 50
LOOP_SAMPLE = 100_000
RUNS = 9
TARGET_MS = 50.0


@contextmanager
def one_cpu() -> Iterator[list[int]]:
    """Pin this process to one CPU while timing (Linux); yields the CPUs used."""
    if not hasattr(os, "sched_getaffinity"):
        yield []
        return
    before = os.sched_getaffinity(0)
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield [cpu]
    finally:
        os.sched_setaffinity(0, before)


def random_book(n: int, n_markets: int, seed: int = 20_250_101) -> dict[str, Any]:
    """Integer-valued float64 arrays (exact ints for the loop) and one tick's marks/buffers."""
    rng = np.random.default_rng(seed)
    base_e8 = np.round(10 ** rng.uniform(8, 13, n_markets))  # $1 .. $100,000
    market = rng.integers(0, n_markets, n)
    size = np.round(rng.choice([-1.0, 1.0], n) * 10 ** rng.uniform(15, 23, n))  # 0.001 .. 1e5 units
    entry = np.round(base_e8[market] * rng.uniform(0.9, 1.1, n))
    leverage = rng.uniform(1.0, 25.0, n)
    net = np.floor(np.abs(size) * entry / 1e8 / leverage)
    mmr = rng.integers(10_000, 50_000, n_markets)[market].astype(np.float64)
    marks = np.round(base_e8 * rng.uniform(0.97, 1.03, n_markets))
    buffers = rng.integers(0, 20_000, n_markets).astype(np.float64)
    return {"size": size, "entry": entry, "net": net, "mmr": mmr, "market": market,
            "marks": marks, "buffers": buffers}


def main(positions: int = N_POSITIONS, markets: int = N_MARKETS, runs: int = RUNS,
         sample: int = LOOP_SAMPLE) -> dict[str, Any]:
    data = random_book(positions, markets)
    t0 = time.perf_counter()
    book = build_screen_book(data["size"], data["entry"], data["net"], data["mmr"],
                             data["market"], markets)
    build_ms = (time.perf_counter() - t0) * 1e3
    marks, buffers = data["marks"], data["buffers"]

    sample = min(sample, positions)
    rows = [(int(data["size"][i]), int(data["entry"][i]), int(data["net"][i]),
             int(data["mmr"][i]) + int(buffers[data["market"][i]]), int(marks[data["market"][i]]))
            for i in range(sample)]

    with one_cpu() as cpus:
        screen(book, marks, buffers)  # warm-up
        timings = []
        for _ in range(runs):
            t0 = time.perf_counter()
            candidates = screen(book, marks, buffers)
            timings.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        exact = [i for i, row in enumerate(rows) if liquidatable_at(*row)]
        loop_ms = (time.perf_counter() - t0) * 1e3

    screen_ms = statistics.median(timings)
    in_sample = set(candidates[candidates < sample].tolist())
    missed = [i for i in exact if i not in in_sample]
    loop_full_ms = loop_ms * positions / sample
    return {
        "benchmark": "risk_screen",
        "positions": positions,
        "markets": markets,
        "threads": 1,
        "cpus": cpus,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "screen_ms_median": round(screen_ms, 3),
        "screen_ms_runs": [round(t, 3) for t in timings],
        "target_ms": TARGET_MS,
        "meets_target": screen_ms <= TARGET_MS,
        "book_build_ms": round(build_ms, 1),
        "candidates": int(candidates.size),
        "python_loop": {
            "sample": sample,
            "sample_ms": round(loop_ms, 1),
            "extrapolated_ms": round(loop_full_ms, 1),
            "note": f"exact integer rule in a plain Python loop, timed on {sample:,} positions "
                    f"and extrapolated linearly to {positions:,}",
        },
        "speedup_vs_python_loop": round(loop_full_ms / screen_ms, 1),
        "sample_check": {"exact_liquidatable": len(exact),
                         "candidates": len(in_sample),
                         "missed": len(missed)},
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
