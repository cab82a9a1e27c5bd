"""One settings root, read once at the process edge (CLI, worker start) and passed down.

Sources, highest priority first: constructor arguments, environment (``BULKHEAD_`` prefix,
``__`` nesting), secret files (``BULKHEAD_SECRETS_DIR``), a TOML file (``BULKHEAD_CONFIG`` or
``./bulkhead.toml``), then the devnet manifest (``<home>/devnet/manifest.json``) that
``bulkhead devnet up`` writes in this same shape. Pointing Bulkhead at real RPC endpoints is
therefore a TOML file with a ``[chains.<key>]`` table per chain; nothing else changes.

Invalid settings raise :class:`shared.errors.ConfigError` naming the field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AnyUrl,
    BaseModel,
    ConfigDict,
    Field,
    RedisDsn,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from shared.chain import ChainKind, Finality
from shared.errors import ConfigError

__all__ = [
    "AssetSettings",
    "AttesterMember",
    "AttesterSettings",
    "BridgeSettings",
    "ChainSettings",
    "FeeSettings",
    "FinalityPolicy",
    "KeySettings",
    "RetrySettings",
    "Settings",
    "load_settings",
]

CHAIN_KEY = r"^[a-z][a-z0-9-]{0,31}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FinalityPolicy(_Frozen):
    """When a lock counts as final. ``tag``: the chain's own finalized/safe commitment;
    ``confirmations``: ``k`` blocks on top of the lock's block (EVM only)."""

    mode: Literal["tag", "confirmations"] = "tag"
    tag: Finality = Finality.FINALIZED
    confirmations: Annotated[int, Field(ge=1, le=10_000)] = 12

    @model_validator(mode="after")
    def _tag_is_final(self) -> FinalityPolicy:
        if self.mode == "tag" and self.tag == Finality.LATEST:
            raise ValueError("tag 'latest' is not a finality policy; use safe or finalized")
        return self


class AssetSettings(_Frozen):
    """A registered collateral asset on one chain (token address or SPL mint)."""

    address: str
    decimals: Annotated[int, Field(ge=0, le=36)]


class ChainSettings(_Frozen):
    kind: ChainKind
    chain_id: Annotated[int, Field(gt=0, lt=2**64)]
    rpc_urls: Annotated[list[AnyUrl], Field(min_length=1)]
    finality: FinalityPolicy = FinalityPolicy()
    vaults: list[str] = []
    assets: dict[str, AssetSettings] = {}
    contracts: dict[str, str] = {}
    deployment_height: Annotated[int, Field(ge=0)] = 0
    max_block_range: Annotated[int, Field(ge=1, le=100_000)] = 1_000
    poll_interval_s: Annotated[float, Field(gt=0, le=600)] = 1.0
    # Orphan detection: locks past finality within this many heights of the final head are
    # re-checked every orphan_recheck_s (a vanished block after finality is an incident).
    orphan_depth: Annotated[int, Field(ge=1, le=1_000_000)] = 256
    orphan_recheck_s: Annotated[float, Field(gt=0, le=3_600)] = 5.0

    @field_validator("rpc_urls")
    @classmethod
    def _http_only(cls, urls: list[AnyUrl]) -> list[AnyUrl]:
        for url in urls:
            if url.scheme not in ("http", "https"):
                raise ValueError(f"rpc url must be http(s): {url}")
        return urls

    @model_validator(mode="after")
    def _policy_fits_kind(self) -> ChainSettings:
        if self.kind == ChainKind.SOLANA and self.finality.mode == "confirmations":
            raise ValueError("solana finality must be a commitment tag, not confirmations")
        return self


class RetrySettings(_Frozen):
    """tenacity policy for adapter reads (``chains/retry.py``)."""

    max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    initial_s: Annotated[float, Field(gt=0, le=10)] = 0.1
    max_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0


class FeeSettings(_Frozen):
    """EIP-1559 pricing of every transaction Bulkhead sends (``chains/evm/sender.py``).
    Integers only: fees are money.

    ``maxFeePerGas = next block's base fee * base_fee_pct / 100 + tip``; a transaction not
    mined within ``replace_after_blocks`` blocks is replaced (same nonce) with both fees bumped
    by ``bump_pct``; a send refused for its price is re-priced and retried. No transaction ever
    bids above ``max_fee_gwei`` per gas, and one key spends at most ``budget_gwei_per_hour`` in
    fees per rolling hour: past either limit the send fails with ``FeeBudgetExhausted`` (an
    alarm and a dead-letter record), never silently.
    """

    base_fee_pct: Annotated[int, Field(ge=100, le=2_000)] = 200
    min_tip_wei: Annotated[int, Field(ge=0, lt=2**64)] = 1_000_000_000
    bump_pct: Annotated[int, Field(ge=10, le=500)] = 25
    replace_after_blocks: Annotated[int, Field(ge=1, le=1_000)] = 3
    max_fee_gwei: Annotated[int, Field(gt=0, le=10**9)] = 5_000
    budget_gwei_per_hour: Annotated[int, Field(gt=0, lt=2**64)] = 10 * 10**9  # 10 ETH


class AttesterMember(_Frozen):
    """One attester: its EVM signing address and, for Solana vaults, its ed25519 pubkey.
    ``rpc_urls`` overrides chain endpoints for this attester only (each attester observes
    through its own nodes). ``keystore`` + ``password_file`` hold its key (V3 keystore)."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
    address: str
    solana_pubkey: str | None = None
    operator: str | None = None
    keystore: Path | None = None
    password_file: Path | None = None
    solana_keypair: Path | None = None
    rpc_urls: dict[str, list[AnyUrl]] = {}


class AttesterSettings(_Frozen):
    """The attester set the contracts store (index, members, threshold m).

    Unsafe sets refuse to start (KEY-02): see ``bridges.quorum.AttesterSet``."""

    set_index: Annotated[int, Field(ge=0, lt=2**32)] = 0
    threshold: Annotated[int, Field(ge=1)] | None = None
    members: list[AttesterMember] = []

    def member(self, name: str) -> AttesterMember:
        for m in self.members:
            if m.name == name:
                return m
        raise ConfigError("attesters.members", f"no attester named {name!r}")


class KeySettings(_Frozen):
    """A signing key held as an encrypted V3 keystore plus a password file (eth-account)."""

    keystore: Path | None = None
    password_file: Path | None = None
    solana_keypair: Path | None = None  # the relayer's Solana fee payer (solana-keygen JSON)


class RiskSettings(_Frozen):
    """Risk worker tuning. ``buffer_markets``: oracle markets whose EWMA volatility buffer the
    worker pushes to the venue (empty: the buffer stays what the venue owner set). Off by
    default so a deployment opts in knowingly: a widening buffer raises every position's MM.
    The local devnet opts in for its markets (its manifest's ``risk`` table)."""

    buffer_markets: list[Annotated[str, Field(min_length=1, max_length=32)]] = []
    # Positions are split into this many shards by key; each tick a risk worker screens the
    # shard screened longest ago that no other worker is screening, so several risk workers
    # share the screen and a dead one's share is picked up by the others (one: one screen of
    # everything per tick). Beat sends one tick per shard per period.
    shards: Annotated[int, Field(ge=1, le=64)] = 1


class AccountantSettings(_Frozen):
    """The accountant (``orchestrator/watch/accountant.py``, fault ACCT-01): every
    ``interval_s`` it reads each lane's vault balance on the source chain and the venue's
    outstanding credit, and pauses a lane that breaks I1 with ``key``, which holds only the
    venue's pauser role (it can pause a lane, never resume one or move anything).
    ``rpc_urls`` gives it its own endpoints per chain key (default: the chain's), so one lying
    node does not blind both the relayer and the check on it."""

    key: KeySettings = KeySettings()
    interval_s: Annotated[float, Field(gt=0, le=3_600)] = 2.0
    rpc_urls: dict[str, Annotated[list[AnyUrl], Field(min_length=1)]] = {}


class BridgeSettings(_Frozen):
    """Worker tuning. Times are intervals on the workers' own monotonic schedule; no
    accept/reject decision depends on them (those use chain time, TIME-01)."""

    max_batch: Annotated[int, Field(ge=1, le=200)] = 40  # credits per batch, at most
    # Gas per credit batch (the relayer sizes batches from the gas items used): a sixth of a
    # 30M block, so the batches in flight pack a block instead of two large ones leaving room.
    batch_gas: Annotated[int, Field(ge=300_000, le=30_000_000)] = 5_000_000
    reask_after_s: Annotated[float, Field(gt=0, le=3600)] = 15.0
    stuck_after_s: Annotated[float, Field(gt=0, le=86_400)] = 60.0
    max_queued_hints: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    # How long a worker trusts its read of a registry's live attester sets (bridges.live_sets):
    # a rotation is followed within this, far inside the shortest grace window (60 s).
    attester_set_ttl_s: Annotated[float, Field(gt=0, le=30)] = 3.0


class _ManifestSource(PydanticBaseSettingsSource):
    """Lowest-priority source: the devnet manifest, already in the settings' shape."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self._path = path

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if not self._path.is_file():
            return {}
        try:
            data = json.loads(self._path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError("manifest", f"{self._path}: unreadable ({exc})") from exc
        return {k: data[k] for k in ("chains", "redis_url", "attesters", "risk") if k in data}


def _home_dir() -> Path:
    return Path(os.environ.get("BULKHEAD_HOME", ".bulkhead"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BULKHEAD_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    home: Path = Field(default_factory=_home_dir)
    redis_url: RedisDsn = RedisDsn("redis://127.0.0.1:6379/0")
    chains: dict[Annotated[str, Field(pattern=CHAIN_KEY)], ChainSettings] = {}
    venue_chain: Annotated[str, Field(pattern=CHAIN_KEY)] = "evm-b"
    # Which venue adapter the risk worker and API use: a name in the `bulkhead.venues`
    # entry-point group (a partner ships its own package); the reference venue by default.
    venue_adapter: Annotated[str, Field(min_length=1, max_length=64)] = "reference"
    attesters: AttesterSettings = AttesterSettings()
    relayer: KeySettings = KeySettings()
    risk_key: KeySettings = KeySettings()
    accountant: AccountantSettings = AccountantSettings()
    bridge: BridgeSettings = BridgeSettings()
    risk: RiskSettings = RiskSettings()
    retry: RetrySettings = RetrySettings()
    fees: FeeSettings = FeeSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = Path(os.environ.get("BULKHEAD_CONFIG", "bulkhead.toml"))
        manifest = _home_dir() / "devnet" / "manifest.json"
        secrets_dir = os.environ.get("BULKHEAD_SECRETS_DIR")
        secrets = (SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir)
                   if secrets_dir else file_secret_settings)
        return (
            init_settings,
            env_settings,
            secrets,
            TomlConfigSettingsSource(settings_cls, toml_file=toml),
            _ManifestSource(settings_cls, manifest),
        )

    def venue(self) -> tuple[int, str]:
        """(chain id, venue address) that locks name as their destination."""
        cfg = self.chain(self.venue_chain)
        if "venue" not in cfg.contracts:
            raise ConfigError(f"chains.{self.venue_chain}.contracts.venue", "not configured")
        return cfg.chain_id, cfg.contracts["venue"]

    def chain(self, key: str) -> ChainSettings:
        try:
            return self.chains[key]
        except KeyError:
            known = ", ".join(sorted(self.chains)) or "none (run `bulkhead devnet up`)"
            raise ConfigError("chain", f"unknown chain {key!r}; configured: {known}") from None


def load_settings(**overrides: Any) -> Settings:
    """Build settings or raise ConfigError naming the first invalid field."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        raise ConfigError(field, err["msg"]) from exc
