# The two commands a newcomer needs: `make demo` and `make test`. Both install what they need.
.PHONY: setup demo test test-unit test-integration lint bench clean

PY := .venv/bin/python
# The project's own bytecode is written on first import and reused by every process after it.
unexport PYTHONDONTWRITEBYTECODE
PYTEST := .venv/bin/pytest

setup:
	@scripts/setup.sh

demo: setup
	.venv/bin/bulkhead demo

# Two xdist workers, one test file each at a time: the devnet tests mostly wait on block times,
# so two run side by side on this machine's two cores.
test: setup
	.venv/bin/lint-imports
	$(PYTEST) -n 2 --dist loadfile tests

test-unit: setup
	$(PYTEST) tests/unit

test-integration: setup
	$(PYTEST) -n 2 --dist loadfile tests -m "integration or e2e"

lint: setup
	.venv/bin/lint-imports
	.venv/bin/ruff check shared chains bridges orchestrator workers devnet bulkhead tests benchmarks

bench: setup
	$(PY) -m benchmarks.run

clean:
	rm -rf .venv .tools node_modules .bulkhead .pytest_cache
