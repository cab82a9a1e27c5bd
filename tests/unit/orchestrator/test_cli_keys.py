"""``bulkhead keys``: keystores written 0600, opened with their password file, never
overwritten; bad input exits 2 naming the field (the real command, in-process)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from eth_account import Account
from typer.testing import CliRunner

from bulkhead.cli.main import app

runner = CliRunner()
KEY = "0x" + "4c" * 32


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["keys", *args])
    return result.exit_code, result.output


def test_generate_show_and_refuse_overwrite(tmp_path: Path) -> None:
    pw, out = tmp_path / "pw", tmp_path / "k.json"
    pw.write_text("correct horse battery\n")
    code, text = run("generate", "--out", str(out), "--password-file", str(pw), "--json")
    assert code == 0, text
    address = json.loads(text)["address"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    code, text = run("show", str(out), "--password-file", str(pw), "--json")
    assert code == 0, text
    shown = json.loads(text)
    assert shown["address"].lower() == address.lower() and "private" not in text.lower()
    before = out.read_bytes()
    code, text = run("generate", "--out", str(out), "--password-file", str(pw))
    assert code == 2 and "out" in text and out.read_bytes() == before


def test_import_reads_the_key_from_a_file_only(tmp_path: Path) -> None:
    pw, key_file, out = tmp_path / "pw", tmp_path / "key", tmp_path / "k.json"
    pw.write_text("correct horse battery\n")
    key_file.write_text(KEY + "\n")
    code, text = run("import", "--private-key-file", str(key_file), "--out", str(out),
                     "--password-file", str(pw), "--json")
    assert code == 0, text
    assert json.loads(text)["address"] == Account.from_key(KEY).address
    assert KEY[2:] not in out.read_text() and KEY[2:] not in text


def test_bad_inputs_name_the_field_and_write_nothing(tmp_path: Path) -> None:
    short, pw, key_file = tmp_path / "short", tmp_path / "pw", tmp_path / "key"
    short.write_text("abc\n")
    pw.write_text("correct horse battery\n")
    key_file.write_text("0x1234\n")
    out = tmp_path / "k.json"
    code, text = run("generate", "--out", str(out), "--password-file", str(short))
    assert code == 2 and "password_file" in text and not out.exists()
    code, text = run("import", "--private-key-file", str(key_file), "--out", str(out),
                     "--password-file", str(pw))
    assert code == 2 and "private_key_file" in text and not out.exists()
    other = tmp_path / "other"
    other.write_text("another password here\n")
    run("generate", "--out", str(out), "--password-file", str(pw))
    code, text = run("show", str(out), "--password-file", str(other))
    assert code == 2 and "password_file" in text
    sol = tmp_path / "sol.json"
    code, text = run("solana", "generate", "--out", str(sol))
    assert code == 0, text
    assert len(json.loads(sol.read_text())) == 64 and stat.S_IMODE(sol.stat().st_mode) == 0o600
