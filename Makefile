# The two commands a newcomer needs: `make demo` and `make test`. Both install what they need.
.PHONY: setup demo test test-unit test-integration lint bench clean

PY := .venv/bin/python
PYTEST := .venv/bin/pytest

setup:
	@scripts/setup.sh

demo: setup
	.venv/bin/bulkhead demo

test: setup
	$(PYTEST) tests

test-unit: setup
	$(PYTEST) tests/unit

test-integration: setup
	$(PYTEST) tests -m "integration or e2e"

lint: setup
	.venv/bin/ruff check orchestrator chains bridges workers tests

bench: setup
	$(PY) -m benchmarks.run

clean:
	rm -rf .venv .tools node_modules .bulkhead .pytest_cache
