#!/usr/bin/env bash
# Install everything Bulkhead needs from the project's own files; safe to run repeatedly.
#   Python: uv (pinned) + uv.lock -> .venv      Node: package-lock.json -> node_modules
#   redis-server: Debian package, only if missing
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
if [ ! -x .tools/bin/uv ]; then
  echo "setup: installing uv ${UV_VERSION} into .tools/"
  python3 -m venv .tools
  .tools/bin/pip install --quiet --disable-pip-version-check "uv==${UV_VERSION}"
fi
echo "setup: python dependencies from uv.lock"
UV_PYTHON_DOWNLOADS=never .tools/bin/uv sync --frozen --quiet

if [ ! -x node_modules/.bin/solcjs ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: node toolchain from package-lock.json (anvil, solc, OpenZeppelin)"
  npm ci --no-audit --no-fund --loglevel=error
fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "setup: installing redis-server"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
echo "setup: done"
