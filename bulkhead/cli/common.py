"""What the ``bulkhead`` command and its sub-apps share: the consoles, the exit-code rule,
``--json`` output, the common options and the devnet key resolution.

It imports no other ``bulkhead.cli.main*`` module, so every sub-app can import it at module top
while :mod:`bulkhead.cli.main` imports the sub-apps.

Exit codes: 0 ok; 1 an operation failed (chain, devnet, store); 2 a refused input or setting.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console

from bridges.keys import decrypt_keystore
from devnet.keys import DevnetRoles, anvil_key
from shared.errors import ConfigError, InputError, OrchestratorError
from shared.settings import Settings, load_settings

if TYPE_CHECKING:  # trading imports the chain clients: loaded only when a command runs
    from orchestrator.actions.collateral import TraderKeys

__all__ = [
    "JsonOpt", "KeyFileOpt", "PositionOpt", "TraderOpt", "emit_json", "emit_row", "err", "fail",
    "feeder_key", "guarded", "out", "owner_evm_key", "settings", "trader_keys", "venue_owner_key",
]

out = Console()
err = Console(stderr=True)
T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
PositionOpt = Annotated[str, typer.Option(help="Position key: 0x + 64 hex")]
TraderOpt = Annotated[str, typer.Option(help="Devnet trader name")]
KeyFileOpt = Annotated[Path | None, typer.Option(help="Owner's EVM key file")]


def fail(exc: Exception) -> NoReturn:
    """Print ``exc`` and exit: 2 for a refused input or setting, 1 otherwise."""
    code = 2 if isinstance(exc, InputError | ConfigError) else 1
    err.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise typer.Exit(code)


def guarded(fn: Callable[[], T]) -> T:
    """``fn()``, with an :class:`OrchestratorError` turned into :func:`fail`."""
    try:
        return fn()
    except OrchestratorError as exc:
        fail(exc)


def settings() -> Settings:
    return guarded(load_settings)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def emit_row(title: str, row: dict[str, Any], as_json: bool) -> None:
    """One result row: JSON with ``--json``, else a key/value table titled ``title``."""
    if as_json:
        emit_json(row)
    else:
        from bulkhead.cli import views

        out.print(views.kv_table(title, row))


def trader_keys(cfg: Settings, trader: str, key_file: Path | None) -> TraderKeys:
    """The keys of ``--key-file`` if given, else of the devnet manifest's trader ``trader``.

    Raises:
        InputError: unreadable key file or unknown trader. DevnetError: no devnet manifest.
    """
    from devnet.stack import read_manifest
    from orchestrator.actions.collateral import TraderKeys

    return (TraderKeys.from_key_file(key_file) if key_file is not None
            else TraderKeys.from_devnet(read_manifest(cfg.home), trader))


def owner_evm_key(cfg: Settings, trader: str, key_file: Path | None, *, missing: str) -> str:
    """The position owner's EVM key (see :func:`trader_keys`).

    Args:
        missing: the refusal when the keys hold no EVM key (a Solana keypair file).

    Raises:
        InputError: as :func:`trader_keys`, or ``missing``.
    """
    keys = trader_keys(cfg, trader, key_file)
    if keys.evm_key is None:
        raise InputError("key_file", missing)
    return keys.evm_key


def feeder_key(cfg: Settings, key_file: Path | None) -> str:
    """The oracle feeder's key: the hex key in ``key_file``, else the devnet manifest's.

    Raises:
        InputError: ``key_file`` unreadable. ConfigError: no manifest with a feeder key.
    """
    if key_file is not None:
        try:
            return key_file.read_text().strip()
        except OSError as exc:
            raise InputError("key-file", f"{key_file}: {exc.strerror or exc}") from exc
    from devnet.stack import read_manifest

    key = read_manifest(cfg.home).get("devnet", {}).get("feeder_key")
    if not key:
        raise ConfigError("feeder_key", "no devnet manifest with a feeder key; pass --key-file")
    return str(key)


# ----- the venue owner (operator commands) ---------------------------------------------------


def _devnet_owner_key(settings: Settings) -> str | None:
    """The devnet deployer's key, only if the configured venue is the devnet manifest's."""
    path = settings.home / "devnet" / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        deployed = manifest["chains"][settings.venue_chain]["contracts"]["venue"]
        if "devnet" not in manifest:  # written by `bulkhead deploy`: keystores only
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    _, venue = settings.venue()
    if str(deployed).lower() != venue.lower():
        return None
    return anvil_key(DevnetRoles().deployer)


def venue_owner_key(settings: Settings, keystore: Path | None, password_file: Path | None) -> str:
    """The key that signs owner actions: ``keystore`` + ``password_file``, else on the devnet
    only, the devnet deployer.

    Raises:
        InputError: only one of the two files given. ConfigError: the keystore does not open,
        or no keystore was given for a venue that is not the devnet's.
    """
    if (keystore is None) != (password_file is None):
        missing = "password_file" if password_file is None else "owner_keystore"
        raise InputError(missing, "--owner-keystore and --password-file go together")
    if keystore is not None and password_file is not None:
        account = decrypt_keystore(keystore, password_file, "owner_keystore")
        return "0x" + bytes(account.key).hex()
    key = _devnet_owner_key(settings)
    if key is None:
        raise ConfigError("owner_keystore", "this venue is not the embedded devnet's: "
                          "pass --owner-keystore and --password-file")
    return key
