"""Shared test support, loaded for every test through ``tests/conftest.py``'s
``pytest_plugins``: :mod:`tests.support.stack` (a devnet in a temp home, the real CLI, waits on
observable progress), :mod:`tests.support.fleet` (real worker processes) and
:mod:`tests.support.chain` (raw RPC and on-chain reads)."""
