"""Compile the Solidity contracts with the pinned solcjs and write committed artifacts.

Workers never need Node: they load ``chains/evm/artifacts/<Name>.json`` (see
:mod:`chains.evm.artifacts`). This module is the only place that runs the compiler, and it
is deterministic: Python resolves every import itself and hands solc one self-contained
standard-JSON input (all source texts inline, fixed settings, no metadata hash), so the
same sources always give the same bytes. ``--check`` proves the committed artifacts match.

Usage::

    python -m chains.evm.build            # rewrite chains/evm/artifacts/*.json
    python -m chains.evm.build --check    # exit 1 if any artifact differs or is missing
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from shared.errors import DevnetError

__all__ = [
    "ARTIFACTS_DIR",
    "CONTRACTS_DIR",
    "PACKAGE_ARTIFACTS",
    "compile_all",
    "main",
    "render",
    "standard_input",
]

EVM_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = EVM_DIR.parents[1]  # where package.json pins solc and node_modules lives
CONTRACTS_DIR = EVM_DIR / "contracts"
ARTIFACTS_DIR = EVM_DIR / "artifacts"
SOLC_VERSION = "0.8.30"

SETTINGS: dict[str, Any] = {
    "evmVersion": "cancun",
    "optimizer": {"enabled": True, "runs": 200},
    # INVARIANT: no metadata hash, so the bytecode depends on the sources only, not on paths
    # or comments in the metadata; the CBOR trailer still records the compiler version.
    "metadata": {"bytecodeHash": "none"},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}

# npm packages whose sources are read from node_modules (versions pinned in package.json).
PACKAGES = ("@openzeppelin/", "@chainlink/", "@pythnetwork/")

# Package contracts that get an artifact of their own: the devnet mocks of the price feeds,
# deployed as the packages ship them (DESIGN §3), so our contracts read real interfaces.
# {source unit: contract names}. Each unit is also a compilation root.
PACKAGE_ARTIFACTS: dict[str, tuple[str, ...]] = {
    "@chainlink/contracts/src/v0.8/tests/MockV3Aggregator.sol": ("MockV3Aggregator",),
    "@pythnetwork/pyth-sdk-solidity/MockPyth.sol": ("MockPyth",),
}

_IMPORT = re.compile(r"""^\s*import\b[^;"']*["']([^"']+)["']""", re.MULTILINE)

# Reads a standard-JSON input on stdin, prints {version, output}. solc is loaded from the
# path given as argv[1] so the pinned node_modules copy is used, never a global one.
_NODE_DRIVER = """
const solc = require(process.argv[1]);
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (c) => { input += c; });
process.stdin.on('end', () => {
  const output = JSON.parse(solc.compile(input));
  process.stdout.write(JSON.stringify({version: solc.version(), output}));
});
"""


def _package_of(unit: str) -> str | None:
    """``@scope/name/`` of a package unit, None for one of ours."""
    if not unit.startswith(PACKAGES):
        return None
    scope, name = unit.split("/")[:2]
    return f"{scope}/{name}/"


def _resolve(unit: str, target: str) -> str:
    """Source unit name of ``target`` imported from ``unit`` (relative or a package's)."""
    if target.startswith(PACKAGES):
        resolved = target
    elif target.startswith(("./", "../")):
        parts = unit.split("/")[:-1]
        for piece in target.split("/"):
            if piece == "..":
                if not parts:
                    raise DevnetError(f"{unit}: import {target!r} escapes the source tree")
                parts.pop()
            elif piece != ".":
                parts.append(piece)
        resolved = "/".join(parts)
        # SECURITY: a relative import stays inside its own package, and ours never reach one
        # (a package's files are only ever read under their package's name).
        if _package_of(resolved) != _package_of(unit):
            raise DevnetError(f"{unit}: import {target!r} leaves its package")
    else:
        raise DevnetError(f"{unit}: unsupported import {target!r}")
    return resolved


def _read_unit(unit: str, root: Path) -> str:
    if _package_of(unit) is not None:
        path = root / "node_modules" / unit
    else:
        path = CONTRACTS_DIR / unit
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DevnetError(f"cannot read Solidity source {unit} ({path}): {exc}") from exc


def own_units() -> list[str]:
    """Our source units, relative to ``contracts/``, sorted."""
    return sorted(p.relative_to(CONTRACTS_DIR).as_posix() for p in CONTRACTS_DIR.rglob("*.sol"))


def standard_input(root: Path | None = None) -> dict[str, Any]:
    """The full standard-JSON input: our sources plus every transitive import, inline."""
    root = root or PROJECT_ROOT
    sources: dict[str, str] = {}
    pending = own_units() + sorted(PACKAGE_ARTIFACTS)
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        text = _read_unit(unit, root)
        sources[unit] = text
        pending.extend(_resolve(unit, t) for t in _IMPORT.findall(text))
    return {
        "language": "Solidity",
        "sources": {u: {"content": sources[u]} for u in sorted(sources)},
        "settings": SETTINGS,
    }


def _run_solc(std_input: dict[str, Any], root: Path) -> tuple[str, dict[str, Any]]:
    solc_js = root / "node_modules" / "solc" / "index.js"
    if not solc_js.is_file():
        raise DevnetError("solcjs not found: run `npm ci` (package.json pins solc)")
    try:
        proc = subprocess.run(
            ["node", "-e", _NODE_DRIVER, str(solc_js)],
            input=json.dumps(std_input, sort_keys=True),
            capture_output=True,
            text=True,
            check=False,
            cwd=root,
            timeout=600,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DevnetError(f"cannot run node for solcjs: {exc}") from exc
    if proc.returncode != 0:
        raise DevnetError(f"solcjs failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result = json.loads(proc.stdout)
    version, output = str(result["version"]), result["output"]
    if not version.startswith(SOLC_VERSION + "+"):
        raise DevnetError(f"solcjs {version} is not the pinned {SOLC_VERSION}")
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise DevnetError("solc errors:\n" + "\n".join(e["formattedMessage"] for e in errors))
    return version, output


def compile_all(root: Path | None = None) -> dict[str, str]:
    """Compile everything; return ``{ContractName: rendered artifact JSON text}``."""
    root = root or PROJECT_ROOT
    std_input = standard_input(root)
    input_hash = hashlib.sha256(json.dumps(std_input, sort_keys=True).encode()).hexdigest()
    version, output = _run_solc(std_input, root)
    artifacts: dict[str, str] = {}
    targets: list[tuple[str, tuple[str, ...] | None]] = [(u, None) for u in own_units()]
    targets += sorted(PACKAGE_ARTIFACTS.items())
    for unit, names in targets:
        source_hash = hashlib.sha256(std_input["sources"][unit]["content"].encode()).hexdigest()
        compiled = output["contracts"].get(unit, {})
        if names is not None and set(names) - set(compiled):
            raise DevnetError(f"{unit} defines no {sorted(set(names) - set(compiled))}")
        for name, contract in sorted(compiled.items()):
            if names is not None and name not in names:
                continue
            if name in artifacts:
                raise DevnetError(f"two contracts named {name}; artifact names must be unique")
            artifacts[name] = render(
                {
                    "contractName": name,
                    "sourceName": unit,
                    "compiler": {"name": "solc", "version": version, "settings": SETTINGS},
                    "sourceHash": "sha256:" + source_hash,
                    "inputHash": "sha256:" + input_hash,
                    "abi": contract["abi"],
                    "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
                    "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
                }
            )
    return artifacts


def render(artifact: dict[str, Any]) -> str:
    """Stable text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def _diff(artifacts: dict[str, str]) -> list[str]:
    problems = []
    committed = {p.stem for p in ARTIFACTS_DIR.glob("*.json")}
    for name, text in sorted(artifacts.items()):
        path = ARTIFACTS_DIR / f"{name}.json"
        if not path.is_file():
            problems.append(f"missing: {path}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"differs: {path}")
    problems += [
        f"stale (no source): {ARTIFACTS_DIR / n}.json" for n in sorted(committed - set(artifacts))
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chains.evm.build",
        description="Compile the contracts into committed artifacts.",
    )
    parser.add_argument(
        "--check", action="store_true", help="compare only; exit 1 on any difference"
    )
    args = parser.parse_args(argv)
    try:
        artifacts = compile_all()
    except DevnetError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 2
    if args.check:
        problems = _diff(artifacts)
        for line in problems:
            print(line, file=sys.stderr)
        print(
            "artifacts up to date" if not problems else f"{len(problems)} artifact(s) out of date"
        )
        return 1 if problems else 0
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in artifacts.items():
        (ARTIFACTS_DIR / f"{name}.json").write_text(text, encoding="utf-8")
    for stale in sorted({p.stem for p in ARTIFACTS_DIR.glob("*.json")} - set(artifacts)):
        (ARTIFACTS_DIR / f"{stale}.json").unlink()
    print(f"wrote {len(artifacts)} artifacts to {ARTIFACTS_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
