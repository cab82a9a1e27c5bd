"""Fixtures every test package may request (a module's devnet, CLI and worker fleet)."""

pytest_plugins = ["tests.support.stack", "tests.support.fleet"]
