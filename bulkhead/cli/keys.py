"""``bulkhead keys``: create and inspect the operator key files of DESIGN §2.6.

EVM keys are encrypted V3 keystores (eth-account, scrypt) opened with a password file, the
shape ``[[attesters.members]] keystore`` / ``password_file`` and ``relayer.keystore`` expect.
Solana keys are solana-keygen style JSON arrays of the 64 keypair bytes (``solana_keypair``).

A private key is never taken on the command line (it would land in shell history and in
``/proc/<pid>/cmdline``) and never printed. Every file is written atomically with mode 0600
and an existing file is never replaced: a new key over an old keystore would lose the old key.
Refused inputs (including an ``--out`` that cannot be written) exit 2 naming the option.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from bulkhead.cli.common import JsonOpt, emit_row, guarded
from shared.errors import InputError

__all__ = ["keys_app", "read_password", "write_new_private_file"]

keys_app = typer.Typer(no_args_is_help=True, add_completion=False,
                       pretty_exceptions_enable=False,
                       help="Create and inspect operator key files (V3 keystores, Solana keypairs).")
solana_app = typer.Typer(no_args_is_help=True, help="Solana ed25519 keypair files.")
keys_app.add_typer(solana_app, name="solana")

_HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
MIN_PASSWORD_CHARS = 8


def read_password(path: Path, *, field: str = "password_file") -> str:
    """The password in ``path`` without its trailing newline, as ``bridges.keys`` reads it.

    Raises:
        InputError: unreadable, empty or shorter than ``MIN_PASSWORD_CHARS``.
    """
    try:
        password = path.read_text().rstrip("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(field, f"cannot read {path}: {exc.__class__.__name__}") from exc
    if len(password) < MIN_PASSWORD_CHARS:
        raise InputError(field, f"{path}: the password must have at least "
                                f"{MIN_PASSWORD_CHARS} characters")
    return password


def _read_private_key(path: Path) -> bytes:
    """32-byte secp256k1 key from a file holding 64 hex digits (0x optional)."""
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError("private_key_file", f"cannot read {path}: {exc.__class__.__name__}") from exc
    # SECURITY: messages below never include the file's content.
    if not _HEX_KEY.match(text):
        raise InputError("private_key_file", f"{path}: expected 64 hex digits (0x optional)")
    key = bytes.fromhex(text.removeprefix("0x"))
    if not 0 < int.from_bytes(key, "big") < _SECP256K1_N:
        raise InputError("private_key_file", f"{path}: not a valid secp256k1 private key")
    return key


def _refuse_existing(path: Path, field: str) -> None:
    if path.exists() or path.is_symlink():
        raise InputError(field, f"{path} exists; refusing to overwrite a key file")
    if not path.parent.is_dir():
        raise InputError(field, f"directory {path.parent} does not exist")


def write_new_private_file(path: Path, data: bytes, *, field: str = "out") -> None:
    """Write ``data`` to a new file ``path`` (mode 0600) atomically; never replace a file.

    The bytes go to a temporary file in the same directory (created 0600, fsynced), which is
    then hard-linked to ``path``: the link fails if ``path`` appeared meanwhile, so a reader
    sees either no file or the whole file, and a concurrent writer never loses its key.

    Raises:
        InputError: ``path`` exists or its directory does not; nothing was written.
        OSError: the filesystem refused the write (the temporary file is removed).
    """
    _refuse_existing(path, field)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)  # whatever the umask did
        try:
            os.link(tmp, path)
        except FileExistsError as exc:
            raise InputError(field, f"{path} exists; refusing to overwrite a key file") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    with contextlib.suppress(OSError):  # make the new directory entry durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _keystore_json(key: bytes, password: str) -> tuple[str, bytes]:
    from eth_account import Account

    keystore = Account.encrypt(key, password)
    address = Account.from_key(key).address
    return str(address), (json.dumps(keystore) + "\n").encode()


def _store_keystore(key: bytes, out: Path, password_file: Path) -> dict[str, Any]:
    password = read_password(password_file)
    _refuse_existing(out, "out")
    address, data = _keystore_json(key, password)
    try:
        write_new_private_file(out, data)
    except OSError as exc:
        raise InputError("out", f"cannot write {out}: {exc.strerror or exc}") from exc
    return {"address": address, "keystore": str(out)}


@keys_app.command("generate")
def generate(
    out: Annotated[Path, typer.Option(help="New keystore file (V3 JSON); never overwritten")],
    password_file: Annotated[Path, typer.Option(help="File holding the keystore password")],
    as_json: JsonOpt = False,
) -> None:
    """Generate a new secp256k1 key into an encrypted V3 keystore; print its address."""
    import secrets

    def run() -> dict[str, Any]:
        while True:  # a uniformly random key is valid with probability 1 - 2^-128
            key = secrets.token_bytes(32)
            if 0 < int.from_bytes(key, "big") < _SECP256K1_N:
                return _store_keystore(key, out, password_file)

    emit_row("keystore written", guarded(run), as_json)


@keys_app.command("import")
def import_key(
    private_key_file: Annotated[Path, typer.Option(help="File holding the hex private key")],
    out: Annotated[Path, typer.Option(help="New keystore file (V3 JSON); never overwritten")],
    password_file: Annotated[Path, typer.Option(help="File holding the keystore password")],
    as_json: JsonOpt = False,
) -> None:
    """Encrypt an existing private key (read from a file, never argv) into a V3 keystore."""
    row = guarded(lambda: _store_keystore(_read_private_key(private_key_file), out,
                                          password_file))
    emit_row("keystore written", row, as_json)


def keystore_info(path: Path, password_file: Path | None = None) -> dict[str, Any]:
    """Public facts of a V3 keystore: address, id, kdf; with a password file, also whether it
    opens and holds the key of that address.

    Raises:
        InputError: not a readable V3 keystore, or the password does not open it.
    """
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError("keystore", f"cannot read {path}: {exc.__class__.__name__}") from exc
    if not isinstance(data, dict):
        raise InputError("keystore", f"{path} is not a V3 keystore (not a JSON object)")
    crypto = data.get("crypto") or data.get("Crypto")
    address = data.get("address")
    if data.get("version") != 3 or not isinstance(crypto, dict) or not isinstance(address, str):
        raise InputError("keystore", f"{path} is not a V3 keystore with an address")
    from eth_utils.address import is_hex_address, to_checksum_address

    raw = address if address.startswith("0x") else "0x" + address
    if not is_hex_address(raw):
        raise InputError("keystore", f"{path}: the address field is not an address")
    info: dict[str, Any] = {"address": to_checksum_address(raw), "keystore": str(path),
                            "id": data.get("id"), "kdf": crypto.get("kdf")}
    if password_file is not None:
        from eth_account import Account

        password = read_password(password_file)
        try:
            key = Account.decrypt(data, password)
        except (ValueError, KeyError) as exc:
            raise InputError("password_file", f"does not open {path}") from exc
        if Account.from_key(key).address != info["address"]:
            raise InputError("keystore", f"{path}: the key does not match its address field")
        info["verified"] = True
    return info


@keys_app.command("show")
def show(
    keystore: Annotated[Path, typer.Argument(help="V3 keystore file")],
    password_file: Annotated[Path | None, typer.Option(
        help="Also decrypt it and check the key matches the address")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The keystore's address (no secret is ever printed)."""
    emit_row("keystore", guarded(lambda: keystore_info(keystore, password_file)), as_json)


@solana_app.command("generate")
def solana_generate(
    out: Annotated[Path, typer.Option(help="New keypair file (JSON array of 64 bytes)")],
    as_json: JsonOpt = False,
) -> None:
    """Generate an ed25519 keypair file as solana-keygen writes it (mode 0600)."""
    from solders.keypair import Keypair

    def run() -> dict[str, Any]:
        _refuse_existing(out, "out")
        keypair = Keypair()
        try:
            write_new_private_file(out, (json.dumps(list(bytes(keypair))) + "\n").encode())
        except OSError as exc:
            raise InputError("out", f"cannot write {out}: {exc.strerror or exc}") from exc
        return {"pubkey": str(keypair.pubkey()), "keypair": str(out)}

    emit_row("keypair written", guarded(run), as_json)


if __name__ == "__main__":
    keys_app()
