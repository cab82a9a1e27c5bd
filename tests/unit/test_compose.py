"""docker-compose.yml and the Dockerfile checked against the real code, without a Docker engine.

Every ``bulkhead ...`` command is parsed by the real typer/click command (so a renamed option
or a bad ``--role`` fails here), every ``BULKHEAD_*`` variable must name a real settings field,
the inline TOML must load into :class:`Settings` with each service's environment, secrets must
be declared and mounted where they are used, and each attester must have its own name and key.

Sub-commands that ``bulkhead.cli.main`` may not register yet (``keys``, ``admin``, ``deploy``,
``api``, ``run``) are looked up in the root app first and otherwise in the module that defines
them, so the test holds before and after they are mounted.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import BaseModel

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
# Variables that select settings sources rather than name a field (orchestrator/settings.py),
# and the attester name the worker command exports itself.
SOURCE_VARIABLES = {"BULKHEAD_CONFIG", "BULKHEAD_SECRETS_DIR", "BULKHEAD_ATTESTER"}
# Options of commands defined outside this change, checked by name until they are registered.
PENDING_OPTIONS = {"api": {"--host", "--port"}}
_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::?[?-][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def fake_value(name: str) -> str:
    """A well-formed stand-in for a ``${VAR}`` interpolation (distinct per variable)."""
    from eth_utils.crypto import keccak
    from solders.pubkey import Pubkey

    digest = keccak(text=name)
    if name.endswith("SOLANA_PUBKEY"):
        return str(Pubkey.from_bytes(digest))
    if name.endswith("ADDRESS"):
        from eth_utils.address import to_checksum_address

        return str(to_checksum_address(digest[:20]))
    return f"value-of-{name.lower()}"


def interpolate(text: str) -> str:
    return _INTERPOLATION.sub(lambda m: fake_value(m.group("name")), text)


def command_of(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return [interpolate(part) for part in (command.split() if isinstance(command, str)
                                           else command)]


def bulkhead_services(compose: dict[str, Any]) -> dict[str, list[str]]:
    return {name: command_of(svc)[1:] for name, svc in compose["services"].items()
            if command_of(svc)[:1] == ["bulkhead"]}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def toml_text(compose: dict[str, Any]) -> str:
    return interpolate(compose["configs"]["bulkhead_toml"]["content"])


def secrets_of(service: dict[str, Any]) -> set[str]:
    return {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}


# ----- the CLI --------------------------------------------------------------------------------


def fallback_commands() -> dict[str, Any]:
    """The sub-apps defined in their own modules, for when the root app does not mount them."""
    from bulkhead.cli.admin import admin_app
    from bulkhead.cli.deploy import deploy
    from bulkhead.cli.keys import keys_app

    deploy_app = typer.Typer()
    deploy_app.command("deploy")(deploy)
    deploy_app.command("unused-placeholder", hidden=True)(lambda: None)  # keep it a group
    deploy_group = typer.main.get_command(deploy_app)
    return {"keys": typer.main.get_command(keys_app),
            "admin": typer.main.get_command(admin_app),
            "deploy": subcommands(deploy_group)["deploy"]}


def subcommands(command: Any) -> dict[str, Any]:
    """A group's sub-commands ({} for a leaf). Duck-typed: typer may carry its own click."""
    return dict(getattr(command, "commands", None) or {})


def root_commands() -> dict[str, Any]:
    from bulkhead.cli.main import app

    return subcommands(typer.main.get_command(app))


def resolve(args: list[str]) -> tuple[Any, list[str], str]:
    """(leaf command, its arguments, dotted path) for ``bulkhead ARGS``."""
    head, rest = args[0], args[1:]
    command = root_commands().get(head) or fallback_commands().get(head)
    if command is None:
        pytest.fail(f"`bulkhead {head}` is not a command")
    path = [head]
    while subcommands(command) and rest and rest[0] in subcommands(command):
        path.append(rest[0])
        command, rest = subcommands(command)[rest[0]], rest[1:]
    return command, rest, " ".join(path)


def test_every_bulkhead_command_parses_with_the_real_cli(compose: dict[str, Any]) -> None:
    services = bulkhead_services(compose)
    assert {"deployer", "attester-1", "relayer", "risk", "reconciler", "beat", "api",
            "watcher"} <= set(services)
    root = root_commands()
    for name, args in services.items():
        if args[0] in PENDING_OPTIONS and args[0] not in root:
            given = {a.split("=", 1)[0] for a in args[1:] if a.startswith("--")}
            assert given <= PENDING_OPTIONS[args[0]], f"{name}: {given}"
            continue
        command, rest, path = resolve(args)
        assert not subcommands(command), f"{name}: `{path}` needs a sub-command"
        try:
            command.make_context(path, list(rest), resilient_parsing=False)
        except Exception as exc:  # noqa: BLE001 - click's UsageError etc. (typer's own click)
            message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
            pytest.fail(f"{name}: `bulkhead {' '.join(args)}`: {message}")


def test_the_command_check_refuses_a_bad_option() -> None:
    command, rest, path = resolve(["worker", "--role", "janitor"])
    with pytest.raises(Exception, match="janitor"):
        command.make_context(path, rest, resilient_parsing=False)
    command, rest, path = resolve(["admin", "limits", "show", "--chian", "evm-a"])
    with pytest.raises(Exception, match="chian"):
        command.make_context(path, rest, resilient_parsing=False)


def test_worker_roles_cover_the_pipeline(compose: dict[str, Any]) -> None:
    roles: dict[str, list[str]] = {}
    for name, args in bulkhead_services(compose).items():
        if args[0] == "worker":
            roles.setdefault(args[args.index("--role") + 1], []).append(name)
    assert set(roles) == {"attester", "watcher", "relayer", "reconciler", "risk", "beat",
                          "accountant"}
    assert len(roles["accountant"]) == 1  # one pauser per deployment: it holds the pause key
    assert len(roles["beat"]) == 1  # exactly one scheduler per deployment
    assert len(roles["attester"]) == 4


# ----- settings -------------------------------------------------------------------------------


def _field_type(model: type[BaseModel], name: str) -> Any:
    if name not in model.model_fields:
        raise KeyError(name)
    return model.model_fields[name].annotation


def _unwrap(tp: Any) -> Any:
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def settings_path_exists(path: list[str]) -> bool:
    """Walk ``Settings`` along ``a__b__c`` (dict levels take any key)."""
    tp: Any = Settings
    for part in path:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            try:
                tp = _field_type(tp, part)
            except KeyError:
                return False
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        else:
            return False
    return True


def test_settings_path_walker() -> None:
    assert settings_path_exists(["relayer", "keystore"])
    assert settings_path_exists(["chains", "evm-a", "rpc_urls"])
    assert settings_path_exists(["bridge", "stuck_after_s"])
    assert not settings_path_exists(["relayer", "keystor"])
    assert not settings_path_exists(["home", "x"])


def test_every_bulkhead_variable_is_a_settings_field(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for var in environment(service):
            if not var.startswith("BULKHEAD_") or var in SOURCE_VARIABLES:
                continue
            path = var.removeprefix("BULKHEAD_").lower().split("__")
            assert settings_path_exists(path), f"{name}: {var} is not a settings field"


def test_each_service_loads_its_settings(compose: dict[str, Any], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.settings import load_settings

    config = tmp_path / "bulkhead.toml"
    config.write_text(toml_text(compose))
    for name in bulkhead_services(compose):
        env = environment(compose["services"][name])
        assert env["BULKHEAD_CONFIG"] == "/etc/bulkhead/bulkhead.toml"
        assert any(c["target"] == env["BULKHEAD_CONFIG"]
                   for c in compose["services"][name]["configs"])
        with monkeypatch.context() as m:
            for var in [v for v in os.environ if v.startswith("BULKHEAD_")]:
                m.delenv(var)
            for var, value in env.items():
                m.setenv(var, value)
            m.setenv("BULKHEAD_CONFIG", str(config))
            m.setenv("BULKHEAD_HOME", str(tmp_path / "home"))  # no manifest yet
            cfg = load_settings()
        assert str(cfg.redis_url).startswith("redis://redis:6379")
        assert cfg.venue_chain in cfg.chains
        assert [m.name for m in cfg.attesters.members] == ["att-1", "att-2", "att-3", "att-4"]
        from bridges.quorum import AttesterSet

        a = cfg.attesters
        AttesterSet.of(a.set_index, [m.address for m in a.members], a.threshold)


def test_chain_ids_match_the_nodes(compose: dict[str, Any]) -> None:
    chains = tomllib.loads(toml_text(compose))["chains"]
    for service, key in (("anvil-a", "evm-a"), ("anvil-b", "evm-b")):
        command = command_of(compose["services"][service])
        assert int(command[command.index("--chain-id") + 1]) == chains[key]["chain_id"]
        host = chains[key]["rpc_urls"][0].split("//")[1].split(":")[0]
        assert host == service
        assert command[command.index("--host") + 1] == "0.0.0.0"
    assert chains["solana"]["rpc_urls"] == ["http://solana:8899"]
    assert "solana-test-validator" in compose["services"]["solana"]["entrypoint"]


# ----- secrets, dependencies, attesters, health -----------------------------------------------


def test_secrets_are_declared_and_mounted_where_used(compose: dict[str, Any]) -> None:
    declared = compose["secrets"]
    for name, spec in declared.items():
        assert "file" in spec or "environment" in spec, name
    members = {m["name"]: m for m in tomllib.loads(toml_text(compose))["attesters"]["members"]}
    used_by_toml = {Path(p).name for m in members.values()
                    for p in (m["keystore"], m["password_file"], m["solana_keypair"])}
    assert used_by_toml <= set(declared)
    for name, service in compose["services"].items():
        mounted = secrets_of(service)
        assert mounted <= set(declared), f"{name}: undeclared {mounted - set(declared)}"
        text = " ".join([*environment(service).values(), *command_of(service)])
        wanted = set(re.findall(r"/run/secrets/([a-z0-9_]+)", text))
        assert wanted <= mounted, f"{name}: uses {wanted - mounted} without mounting it"


def test_depends_on_targets_exist(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    for name, service in compose["services"].items():
        deps = service.get("depends_on", [])
        targets = set(deps) if isinstance(deps, (list, dict)) else set()
        assert targets <= services, f"{name}: depends on {targets - services}"
        assert name not in targets


def test_each_attester_has_its_own_name_and_keys(compose: dict[str, Any]) -> None:
    members = {m["name"]: m for m in tomllib.loads(toml_text(compose))["attesters"]["members"]}
    seen_names: set[str] = set()
    seen_secrets: set[str] = set()
    for name, args in bulkhead_services(compose).items():
        if args[:1] != ["worker"] or args[args.index("--role") + 1] != "attester":
            continue
        attester = args[args.index("--name") + 1]
        assert attester not in seen_names and attester in members
        seen_names.add(attester)
        mounted = secrets_of(compose["services"][name])
        member = members[attester]
        own = {Path(member[k]).name for k in ("keystore", "password_file", "solana_keypair")}
        assert own <= mounted, f"{name} lacks {own - mounted}"
        assert not mounted & seen_secrets, f"{name} shares a key with another attester"
        seen_secrets |= mounted
    assert seen_names == set(members)
    for field in ("address", "solana_pubkey", "keystore", "solana_keypair"):
        values = [m[field] for m in members.values()]
        assert len(set(values)) == len(values), f"attesters share a {field}"


def test_http_healthchecks_hit_real_endpoints(compose: dict[str, Any], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    services = bulkhead_services(compose)
    api = compose["services"]["api"]
    assert "healthcheck" in api
    for name, args in services.items():
        check = compose["services"][name].get("healthcheck")
        if check is None:
            continue
        text = " ".join(check["test"]) if isinstance(check["test"], list) else check["test"]
        urls = re.findall(r"https?://[^'\" ]+", text)
        assert urls, f"{name}: healthcheck without an HTTP endpoint"
        for url in urls:
            port, path = re.match(r"https?://[^:/]+:(\d+)(/[^'\" ]*)", url).groups()  # type: ignore[union-attr]
            assert path == "/healthz", f"{name}: {url}"
            assert port == args[args.index("--port") + 1], f"{name}: {url} is not the served port"
    for var in [v for v in os.environ if v.startswith("BULKHEAD_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("BULKHEAD_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("BULKHEAD_HOME", str(tmp_path))
    routes = api_routes(Settings())
    if routes is not None:
        assert "/healthz" in routes


def api_routes(settings: Settings) -> set[str] | None:
    """The API's routes (the app is built, not started), if the API module exists."""
    try:
        from bulkhead.api.app import create_app
    except ImportError:
        return None
    app = create_app(settings)
    return {str(getattr(r, "path", "")) for r in app.routes} | set(app.openapi()["paths"])


def test_redis_never_evicts(compose: dict[str, Any]) -> None:
    command = command_of(compose["services"]["redis"])
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_dockerfile_installs_from_the_lock(compose: dict[str, Any]) -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert "COPY pyproject.toml uv.lock" in text
    assert "uv sync --frozen --no-dev" in text
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    pinned = re.search(r"UV_VERSION=(\S+)", setup)
    assert pinned is not None and f'uv=={pinned.group(1)}' in text
    for service in bulkhead_services(compose):
        assert compose["services"][service].get("build") == "."
