"""Run benchmarks and write one JSON document (stdout and benchmarks/out/results.json).

``python -m benchmarks.run [name ...] [--repeat N] [--locks N] [--positions N] [--singles N]
[--fault] [--venue-gas-limit N]``: every benchmark when no name is given (``bridge_single`` included, the fault run
not). Each benchmark runs ``--repeat`` times (default 3), one run after the other; its entry in
``results`` holds:

- ``runs``: the documents of the runs as each benchmark returns them (a run that raised is
  ``{"error": ...}``);
- ``summary``: the same shape, every number replaced by ``{"median", "min", "max"}`` across the
  runs that produced it (``"runs": k`` is added when fewer than all did); strings and flags
  equal in every run are kept as they are, others listed under ``"values"``; lists (timelines,
  samples) stay in ``runs`` only.

``--locks`` sizes the bridge burst (default 2,000), ``--positions`` the liquidation figure
(default 1,000), ``--singles`` the single-lock figure (locks per source chain, default 5).
``--fault`` turns the bridge burst into the fault run (relayer and one attester killed, Redis
flushed mid-burst), stored as ``bridge_fault``. ``--venue-gas-limit`` lifts the venue chain's
block gas limit for the bridge burst (stored as ``bridge_venue_gas_<N>m``): how the figure grows
when the venue chain's capacity, its bound on this machine, does. Results of benchmarks not run this time are
kept from the previous results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks import bridge, bridge_single, foundation, liquidations, risk_screen

BENCHMARKS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "foundation": lambda _opts: foundation.main(),
    "bridge": lambda opts: bridge.main(locks=opts.locks, fault=opts.fault,
                                       venue_gas_limit=opts.venue_gas_limit),
    "bridge_single": lambda opts: bridge_single.main(singles=opts.singles),
    "risk_screen": lambda _opts: risk_screen.main(),
    "liquidations": lambda opts: liquidations.main(n=opts.positions),
}
REPEAT = 3

_SKIP = object()


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _round(v: float, ints: bool) -> float | int:
    if ints and float(v).is_integer():
        return int(v)
    return v if isinstance(v, int) else round(v, 4)


def summarise(values: Sequence[Any]) -> Any:
    """Merge the same field of several runs (see the module docstring)."""
    if values and all(isinstance(v, dict) for v in values):
        out = {}
        for key in dict.fromkeys(k for v in values for k in v):
            merged = summarise([v[key] for v in values if key in v])
            if merged is not _SKIP:
                out[key] = merged
        return out
    if any(isinstance(v, list) for v in values):
        return _SKIP
    numbers = [v for v in values if _number(v)]
    if numbers and all(v is None or _number(v) for v in values):
        row: dict[str, Any] = {"median": _round(statistics.median(numbers),
                                                all(isinstance(n, int) for n in numbers)),
                               "min": min(numbers), "max": max(numbers)}
        if len(numbers) < len(values):
            row["runs"] = len(numbers)
        return row
    if all(v == values[0] for v in values):
        return values[0] if values else None
    return {"values": list(values)}


def run_one(name: str, opts: argparse.Namespace) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for i in range(opts.repeat):
        print(f"benchmarks: {name} run {i + 1}/{opts.repeat}", file=sys.stderr)
        started = time.monotonic()
        try:
            doc = BENCHMARKS[name](opts)
        except Exception as exc:  # noqa: BLE001 - one failed run is reported, not fatal
            doc = {"error": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc()[-4000:]}
        doc["run_s"] = round(time.monotonic() - started, 1)
        runs.append(doc)
    good = [r for r in runs if "error" not in r]
    return {"benchmark": name, "repeat": opts.repeat, "failed_runs": len(runs) - len(good),
            "summary": summarise(good) if good else None, "runs": runs}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.run")
    parser.add_argument("names", nargs="*", metavar="name",
                        help=f"benchmarks to run ({', '.join(BENCHMARKS)}); default all")
    parser.add_argument("--repeat", type=int, default=REPEAT,
                        help="runs of each benchmark; the summary is their median and spread")
    parser.add_argument("--locks", type=int, default=bridge.N_LOCKS,
                        help="bridge: locks in the burst, half on evm-a, half on solana")
    parser.add_argument("--fault", action="store_true",
                        help="bridge: kill the relayer and one attester and FLUSHALL mid-burst "
                             "(stored as bridge_fault)")
    parser.add_argument("--venue-gas-limit", type=int, default=None,
                        help="bridge: lift the venue chain's block gas limit (anvil's 30M by "
                             "default) to see how the burst grows with the venue's capacity "
                             "(stored as bridge_venue_gas_<N>m)")
    parser.add_argument("--singles", type=int, default=bridge_single.SINGLES,
                        help="bridge_single: single locks per source chain")
    parser.add_argument("--positions", type=int, default=liquidations.N_POSITIONS,
                        help="liquidations: positions made liquidatable by one tick")
    opts = parser.parse_args(argv)
    unknown = [n for n in opts.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    if opts.repeat < 1:
        parser.error("--repeat must be at least 1")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    path = out / "results.json"
    previous = json.loads(path.read_text()).get("results", {}) if path.is_file() else {}
    results: dict[str, Any] = {"machine": {"python": platform.python_version(),
                                           "cpus": os.cpu_count()},
                               "started_at": int(time.time()), "results": dict(previous)}
    failed = 0
    for name in opts.names or list(BENCHMARKS):
        key = "bridge_fault" if name == "bridge" and opts.fault else name
        if name == "bridge" and opts.venue_gas_limit:
            key += f"_venue_gas_{opts.venue_gas_limit // 1_000_000}m"
        results["results"][key] = run_one(name, opts)
        failed += results["results"][key]["failed_runs"]
        path.write_text(json.dumps(results, indent=2) + "\n")  # keep what is done so far
    text = json.dumps(results, indent=2)
    path.write_text(text + "\n")
    print(text)
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
