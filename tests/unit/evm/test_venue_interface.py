"""``IIsolatedMarginVenue.sol`` matches the committed ``IsolatedMarginVenue`` artifact's ABI.

The interface is compiled here with the pinned solcjs (as ``chains.evm.build`` invokes it), not
by the build: a new source unit would change every committed artifact's ``inputHash``. Every
function, event and error it declares must exist in the venue's ABI with the same signature
(tuple components included), the same outputs and mutability (functions) and the same
parameter names and ``indexed`` flags (events), so decoders written against the interface
read the venue's logs and return data unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_utils.abi import abi_to_signature, get_abi_output_types

from chains.evm.artifacts import load_artifact
from chains.evm.build import _run_solc
from devnet.anvil import project_root

INTERFACE = Path(__file__).resolve().parents[3] / "chains/evm/interfaces/IIsolatedMarginVenue.sol"


@pytest.fixture(scope="module")
def interface_abi() -> list[dict[str, Any]]:
    root = project_root()
    if not (root / "node_modules" / "solc" / "index.js").is_file():
        pytest.fail("solcjs missing: run `make setup` (package.json pins solc)")
    std_input = {
        "language": "Solidity",
        "sources": {"IIsolatedMarginVenue.sol": {"content": INTERFACE.read_text()}},
        "settings": {"outputSelection": {"*": {"*": ["abi"]}}},
    }
    _, output = _run_solc(std_input, root)
    return list(output["contracts"]["IIsolatedMarginVenue.sol"]["IIsolatedMarginVenue"]["abi"])


def _by_signature(abi: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["type"], abi_to_signature(e)): e for e in abi
            if e["type"] in ("function", "event", "error")}


def _shape(entry: dict[str, Any]) -> tuple[Any, ...]:
    if entry["type"] == "function":
        return (tuple(get_abi_output_types(entry)), entry["stateMutability"])
    if entry["type"] == "event":
        return (entry["anonymous"], tuple((i["name"], i["indexed"]) for i in entry["inputs"]))
    return ()


def test_every_interface_member_is_in_the_venue_abi(interface_abi: list[dict[str, Any]]) -> None:
    venue = _by_signature(load_artifact("IsolatedMarginVenue").abi)
    declared = _by_signature(interface_abi)
    missing = sorted(f"{kind} {sig}" for kind, sig in declared if (kind, sig) not in venue)
    assert not missing, f"not in the IsolatedMarginVenue ABI: {missing}"
    differs = sorted(f"{kind} {sig}" for (kind, sig), entry in declared.items()
                     if _shape(entry) != _shape(venue[(kind, sig)]))
    assert not differs, f"outputs, mutability, names or indexing differ: {differs}"


def test_interface_covers_what_the_workers_use(interface_abi: list[dict[str, Any]]) -> None:
    names = {(e["type"], e["name"]) for e in interface_abi if "name" in e}
    used = {("function", f) for f in (
        "credit", "creditBatch", "positionOf", "marginOf", "marketOf", "positionLocks",
        "collateralOf", "collateralConfigOf", "lockCredit", "liquidate", "requestRelease",
        "open", "increase", "reduce", "close", "oracle", "isConsumed")}
    used |= {("event", e) for e in ("SettlementRequested", "Liquidated", "Shortfall",
                                    "Credited", "CreditQueued", "Traded")}
    assert used <= names, sorted(used - names)
