#!/usr/bin/env bash
# Install everything Bulkhead needs from the project's own files; safe to run repeatedly.
#   Python: uv (pinned) + uv.lock -> .venv      Node: package-lock.json -> node_modules
#   redis-server, faketime, chromium: Debian packages, only if missing
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
if [ ! -x .tools/bin/uv ]; then
  echo "setup: installing uv ${UV_VERSION} into .tools/"
  python3 -m venv .tools
  .tools/bin/pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}"
fi
echo "setup: python dependencies from uv.lock"
# Bytecode compiled once at install: every worker, CLI call and test subprocess imports web3,
# eth_account and celery, and where PYTHONDONTWRITEBYTECODE is set each would otherwise compile
# them from source again (about 3 s of CPU per process start).
UV_PYTHON_DOWNLOADS=never .tools/bin/uv sync --frozen --quiet --compile-bytecode

if [ ! -x node_modules/.bin/solcjs ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: node toolchain from package-lock.json (anvil, solc, OpenZeppelin)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# redis-server for the tests and the devnet; faketime for the clock-skew fault test (TIME-01);
# chromium for the dashboard test (headless)
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v faketime >/dev/null 2>&1 || missing="$missing faketime"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
if [ -n "$missing" ]; then
  echo "setup: installing$missing"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
echo "setup: done"
