"""``python -m orchestrator.api [--host H] [--port P]``: the API with the ambient settings."""

from __future__ import annotations

import argparse
import sys

from orchestrator.api.server import serve
from orchestrator.errors import ConfigError
from orchestrator.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.api")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error("--port: must be 1..65535")
    try:
        settings = load_settings()
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    serve(settings, args.host, args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
