"""One devnet (``tests/support/stack.py``'s fast clocks) and one API process for this package,
shared by the API checks and the contract test so the devnet starts once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.api.apiproc import running_api
from tests.support.stack import Cli, started_devnet


@pytest.fixture(scope="package")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with started_devnet(tmp_path_factory, "api-devnet-home") as manifest:
        yield manifest


@pytest.fixture(scope="package")
def cli(devnet: dict[str, Any]) -> Cli:
    return Cli(devnet["home"])


@pytest.fixture(scope="package")
def api_url(devnet: dict[str, Any]) -> Iterator[str]:
    with running_api(devnet["home"]) as url:
        yield url
