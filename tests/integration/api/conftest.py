"""One devnet (``tests/e2e/conftest.py``'s fast clocks) and one API process for this package,
shared by the API checks and the contract test so the devnet starts once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chains.devnet.stack import down, up
from tests.e2e.conftest import FAST, Cli
from tests.integration.api.apiproc import ApiProcess


@pytest.fixture(scope="package")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("api-devnet-home")
    manifest = up(home, FAST)
    manifest["home"] = home
    try:
        yield manifest
    finally:
        down(home)


@pytest.fixture(scope="package")
def cli(devnet: dict[str, Any]) -> Cli:
    return Cli(devnet["home"])


@pytest.fixture(scope="package")
def api_url(devnet: dict[str, Any]) -> Iterator[str]:
    proc = ApiProcess(devnet["home"], devnet["home"] / "logs" / "api.log")
    url = proc.start()
    try:
        yield url
    finally:
        proc.stop()
