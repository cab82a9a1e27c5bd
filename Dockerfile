# Bulkhead workers, API and CLI. Python dependencies come from uv.lock only; the compiled
# contract artifacts are committed (chains/evm/artifacts), so no Node toolchain is needed here.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv

# The same pinned uv as scripts/setup.sh.
RUN pip install --no-cache-dir "uv==0.13.9"

WORKDIR /app
# Dependencies first (cached while only the code changes), exactly as locked.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY shared ./shared
COPY chains ./chains
COPY bridges ./bridges
COPY orchestrator ./orchestrator
COPY workers ./workers
COPY devnet ./devnet
COPY bulkhead ./bulkhead
RUN uv sync --frozen --no-dev --no-editable

# Secrets are bind-mounted by docker compose: make them readable by this uid (10001).
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/bulkhead bulkhead \
    && mkdir -p /etc/bulkhead
ENV PATH=/app/.venv/bin:$PATH \
    BULKHEAD_HOME=/var/lib/bulkhead
USER bulkhead
WORKDIR /var/lib/bulkhead

CMD ["bulkhead", "--help"]
