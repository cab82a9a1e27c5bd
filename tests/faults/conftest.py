"""Fault cases run on their own devnet and worker fleet (module scope), with a short stuck
alarm so RT-02's alarm can be observed within the test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bulkhead.local.fleet import WorkerFleet

ATTESTERS = ["att-1", "att-2", "att-3", "att-4"]


@pytest.fixture(scope="module")
def fleet(devnet: dict[str, Any],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerFleet]:
    workers = WorkerFleet(devnet["home"], tmp_path_factory.mktemp("fault-logs"),
                          env={"BULKHEAD_BRIDGE__STUCK_AFTER_S": "4"})
    workers.start_all(ATTESTERS)
    try:
        yield workers
    finally:
        workers.stop()
