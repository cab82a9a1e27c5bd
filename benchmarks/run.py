"""Run every benchmark and write one JSON document (stdout and benchmarks/out/results.json)."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from benchmarks import foundation

BENCHMARKS = {"foundation": foundation.main}


def main(names: list[str]) -> None:
    results = {"machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
               "started_at": int(time.time()), "results": {}}
    for name in names or list(BENCHMARKS):
        results["results"][name] = BENCHMARKS[name]()
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    text = json.dumps(results, indent=2)
    (out / "results.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
