"""Load the committed contract artifacts (ABI + bytecode) written by ``chains.evm.build``.

Pure and small on purpose: workers and the deployer read JSON only and never need Node.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import ConfigError

__all__ = ["ARTIFACTS_DIR", "Artifact", "load_artifact"]

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
_NAME = re.compile(r"^[A-Z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True, slots=True)
class Artifact:
    """One compiled contract. ``bytecode`` is 0x-hex creation code."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler: str


@functools.cache
def load_artifact(name: str) -> Artifact:
    """Read ``artifacts/<name>.json``.

    Raises:
        ConfigError: unknown or unreadable artifact (run ``python -m chains.evm.build``).
    """
    if not _NAME.match(name):  # SECURITY: a name, never a path
        raise ConfigError("artifact", f"invalid contract name {name!r}")
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Artifact(
            name=name,
            abi=list(data["abi"]),
            bytecode=str(data["bytecode"]),
            deployed_bytecode=str(data["deployedBytecode"]),
            compiler=str(data["compiler"]["version"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError("artifact", f"{path}: {exc} (run `python -m chains.evm.build`)") from exc
