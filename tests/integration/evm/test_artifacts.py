"""The committed contract artifacts are exactly what the pinned solcjs produces from the sources."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chains.evm.artifacts import ARTIFACTS_DIR, load_artifact
from chains.evm.build import SOLC_VERSION
from devnet.anvil import project_root

pytestmark = pytest.mark.integration

ABSTRACT = ("AttesterRegistry", "VenueCore")  # bases: ABI only, no deployable bytecode
CONTRACTS = (
    "AttesterRegistry",
    "CollateralVault",
    "FeeToken",
    "FeedPublisher",
    "IsolatedMarginVenue",
    "LookalikeVault",
    "MarkOracle",
    "MockPyth",
    "MockV3Aggregator",
    "TestToken",
    "VenueCore",
    "VenueRiskModule",
)


def test_recompiling_reproduces_the_committed_artifacts() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chains.evm.build", "--check"],
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_contract_has_a_loadable_artifact() -> None:
    assert sorted(p.stem for p in ARTIFACTS_DIR.glob("*.json")) == sorted(CONTRACTS)
    for name in CONTRACTS:
        artifact = load_artifact(name)
        assert artifact.compiler.startswith(SOLC_VERSION + "+")
        assert artifact.bytecode.startswith("0x")
        assert (len(artifact.bytecode) == 2) == (name in ABSTRACT)
        assert ARTIFACTS_DIR.joinpath(f"{name}.json").read_text().endswith("}\n")
