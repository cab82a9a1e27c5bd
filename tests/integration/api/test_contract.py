"""Contract test: cases generated from the running API's own OpenAPI document (schemathesis),
sent to the real server on a real devnet. No response may be a 5xx, every status code, content
type and body must be the documented one, and (negative mode) values outside the schema must
be refused with a 4xx.

Operations are driven one by one through ``as_strategy`` rather than schemathesis' pytest
plugin, whose lazy-fixture hook reads a node attribute pytest 9 no longer has.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok

pytestmark = [pytest.mark.integration]

MAX_EXAMPLES = 8
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def _exercise(operation: Any, mode: GenerationMode, api_url: str) -> int:
    """Run up to MAX_EXAMPLES cases of one operation; returns how many were sent."""
    sent = 0
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        nonlocal sent
        sent += 1
        case.call_and_validate(base_url=api_url, checks=checks, timeout=20)

    run()
    return sent


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["positive", "negative"])
def test_api_conforms_to_its_openapi_document(api_url: str, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json", wait_for_schema=30)
    started, sent = time.monotonic(), {}
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"invalid operation in the document: {result.err()}"
        operation = result.ok()
        has_params = bool(operation.definition.raw.get("parameters"))
        if mode is GenerationMode.NEGATIVE and not has_params:
            continue  # nothing to break: no input can be outside the schema
        try:
            sent[operation.label] = _exercise(operation, mode, api_url)
        except Unsatisfiable:
            sent[operation.label] = 0
    expected = 13 if mode is GenerationMode.POSITIVE else 6  # the six take parameters
    assert len(sent) == expected and all(sent.values()), sent  # each operation exercised
    print(f"{mode.value}: {sum(sent.values())} cases over {len(sent)} operations in "
          f"{time.monotonic() - started:.1f} s")
