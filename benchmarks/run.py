"""Run benchmarks and write one JSON document (stdout and benchmarks/out/results.json).

``python -m benchmarks.run [name ...] [--locks N]``: every benchmark when no name is given;
``--locks`` sizes the bridge burst (default 2,000), ``--positions`` the liquidation figure
(default 1,000). Results of benchmarks not run this time are
kept from the previous results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import bridge, foundation, liquidations, risk_screen

BENCHMARKS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "foundation": lambda _opts: foundation.main(),
    "bridge": lambda opts: bridge.main(locks=opts.locks),
    "risk_screen": lambda _opts: risk_screen.main(),
    "liquidations": lambda opts: liquidations.main(n=opts.positions),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.run")
    parser.add_argument("names", nargs="*", metavar="name",
                        help=f"benchmarks to run ({', '.join(BENCHMARKS)}); default all")
    parser.add_argument("--locks", type=int, default=bridge.N_LOCKS,
                        help="bridge: locks in the burst, half on evm-a, half on solana")
    parser.add_argument("--positions", type=int, default=liquidations.N_POSITIONS,
                        help="liquidations: positions made liquidatable by one tick")
    opts = parser.parse_args(argv)
    unknown = [n for n in opts.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    path = out / "results.json"
    previous = json.loads(path.read_text()).get("results", {}) if path.is_file() else {}
    results: dict[str, Any] = {"machine": {"python": platform.python_version(),
                                           "cpus": os.cpu_count()},
                               "started_at": int(time.time()), "results": dict(previous)}
    for name in opts.names or list(BENCHMARKS):
        results["results"][name] = BENCHMARKS[name](opts)
    text = json.dumps(results, indent=2)
    path.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
