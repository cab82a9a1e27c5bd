"""The ``bulkhead`` command. Settings are read once here and passed down.

Exit codes: 0 ok; 1 an operation failed (chain, devnet, store); 2 a refused input or setting
(the message names the field). ``--json`` on every read command prints machine output only.
"""

from __future__ import annotations

import asyncio
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from bulkhead.cli import views
from bulkhead.cli.admin import admin_app
from bulkhead.cli.common import (
    JsonOpt,
    KeyFileOpt,
    PositionOpt,
    TraderOpt,
    emit_json,
    emit_row,
    err,
    fail,
    feeder_key,
    guarded,
    out,
    owner_evm_key,
    settings,
    trader_keys,
)
from bulkhead.cli.deadletters import deadletters_app
from bulkhead.cli.deploy import deploy as deploy_command
from bulkhead.cli.feed import feed_app
from bulkhead.cli.keys import keys_app
from bulkhead.cli.topup import topup_app
from shared.errors import InputError, OrchestratorError
from shared.settings import Settings
from workers.stores.pool import RedisSignaturePool
from workers.stores.settlements import RedisSettlementStore

__all__ = ["app", "main"]

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Bulkhead: cross-chain collateral for isolated margin positions.")
devnet_app = typer.Typer(no_args_is_help=True, help="The embedded local devnet (DESIGN §1).")
app.add_typer(devnet_app, name="devnet")
app.add_typer(feed_app, name="feed")
app.add_typer(keys_app, name="keys")
app.add_typer(admin_app, name="admin")
app.add_typer(deadletters_app, name="deadletters")
app.command("deploy")(deploy_command)

# --- devnet ---------------------------------------------------------------------------------


@devnet_app.command("up")
def devnet_up(
    block_time: Annotated[float, typer.Option(min=0.1, max=60, help="anvil block time, s")] = 1.0,
    slot_ms: Annotated[int, typer.Option(min=50, max=5000, help="Solana slot time, ms")] = 400,
    solana_finality_lag: Annotated[int, typer.Option(min=1, max=512)] = 32,
    epoch_slots: Annotated[int, typer.Option(min=1, max=64, help="anvil slots per epoch: "
                                             "safe = latest-n, finalized = latest-2n")] = 4,
    as_json: JsonOpt = False,
) -> None:
    """Start two anvil chains, the local Solana RPC and Redis; deploy; write the manifest."""
    from devnet.stack import DevnetOptions, up

    opts = DevnetOptions(block_time_s=block_time, slot_ms=slot_ms,
                         solana_finality_lag=solana_finality_lag, slots_in_an_epoch=epoch_slots)
    home = settings().home
    with err.status("starting devnet") as status:
        manifest = guarded(lambda: up(home, opts, progress=lambda m: status.update(m)))
    if as_json:
        emit_json(views.manifest_summary(manifest))
    else:
        out.print(views.manifest_table(manifest))
        out.print(f"ready in {manifest['devnet']['ready_s']} s; manifest: "
                  f"{home / 'devnet' / 'manifest.json'}")


@devnet_app.command("status")
def devnet_status(as_json: JsonOpt = False) -> None:
    """Heads, finalized heights and lag per chain, and whether each process is alive."""
    from orchestrator.watch.status import chain_status

    cfg = settings()
    rows = guarded(lambda: asyncio.run(chain_status(cfg)))
    emit_json(rows) if as_json else out.print(views.status_table(rows))


@devnet_app.command("down")
def devnet_down() -> None:
    """Stop every devnet process; logs and the manifest stay for inspection."""
    from devnet.stack import down

    stopped = guarded(lambda: down(settings().home))
    out.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


# --- locks ----------------------------------------------------------------------------------


@app.command("lock")
def lock(
    chain: Annotated[str, typer.Option(help="Collateral chain key, e.g. evm-a or solana")],
    asset: Annotated[str, typer.Option(help="Registered asset symbol, e.g. USDC")],
    amount: Annotated[str, typer.Option(help="Decimal amount in tokens (125.5)")],
    position: PositionOpt,
    beneficiary: Annotated[str | None, typer.Option(help="Owner on the venue chain "
                                                    "(default: the trader's address)")] = None,
    trader: TraderOpt = "alice",
    key_file: Annotated[Path | None, typer.Option(help="Key file instead of a devnet trader")] = None,
    base_units: Annotated[bool, typer.Option(help="--amount is in integer base units")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Lock collateral as a trader would: into the chain's vault, for one position."""
    from devnet.stack import read_manifest
    from orchestrator.actions.collateral import TraderKeys, build_lock_request, submit_lock

    cfg = settings()

    def run() -> Any:
        if key_file is not None:
            keys = TraderKeys.from_key_file(key_file)
            owner = beneficiary
        else:
            manifest = read_manifest(cfg.home)
            keys = TraderKeys.from_devnet(manifest, trader)
            owner = beneficiary or manifest["devnet"]["traders"][trader]["evm_address"]
        if owner is None:
            raise InputError("beneficiary", "required with --key-file")
        req = build_lock_request(cfg, chain=chain, asset=asset, amount=amount,
                                 position=position, beneficiary=owner, base_units=base_units)
        return req, asyncio.run(submit_lock(req, keys))

    req, result = guarded(run)
    row = views.lock_result(req, result)
    emit_row("lock submitted", row, as_json)


@app.command("withdraw")
def withdraw(
    position: PositionOpt,
    lock: Annotated[str, typer.Option(help="Lock key as `bulkhead locks` prints it")],
    amount: Annotated[str, typer.Option(help="Decimal amount in the lock's asset")],
    trader: TraderOpt = "alice",
    key_file: KeyFileOpt = None,
    base_units: Annotated[bool, typer.Option(help="--amount is in integer base units")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Withdraw credited margin no open position uses: the venue emits a release, which the
    attesters sign and the relayer executes on the source chain."""
    from orchestrator.actions.collateral import request_withdrawal

    cfg = settings()

    def run() -> Any:
        keys = trader_keys(cfg, trader, key_file)
        return asyncio.run(request_withdrawal(cfg, keys, position=position, lock=lock,
                                              amount=amount, base_units=base_units))

    result = guarded(run)
    row = {"settlement_id": result.settlement_id, "lock": result.lock_key,
           "amount": str(result.amount), "tx_id": result.tx_id, "height": result.height}
    emit_row("withdrawal requested", row, as_json)


@app.command("credit")
def credit(
    lock: Annotated[str, typer.Option(help="Lock key as `bulkhead locks` prints it")],
    as_json: JsonOpt = False,
) -> None:
    """Relay one lock's pooled quorum to the venue now. Resubmitting a credited lock is a
    typed no-op ("already-consumed", exit 0): the venue's consumed set decides (RPL-01)."""
    from orchestrator.actions.collateral import parse_lock_key
    from workers.runtime import Services

    cfg = settings()

    def run() -> str:
        parse_lock_key(lock)
        svc = Services(cfg)
        return svc.run(svc.relay.credit_one(lock.strip()))

    outcome = guarded(run)
    row = {"lock": lock.strip(), "outcome": outcome}
    emit_row("credit", row, as_json)


@app.command("settlements")
def settlements(as_json: JsonOpt = False) -> None:
    """Settlement requests seen on the venue and whether each was executed on its source."""

    cfg = settings()
    rows = guarded(lambda: [views.settlement_row(r)
                            for r in RedisSettlementStore(str(cfg.redis_url)).all()])
    emit_json(rows) if as_json else out.print(views.settlements_table(rows))


trade_app = typer.Typer(no_args_is_help=True, help="Trade a position on the reference venue.")
app.add_typer(trade_app, name="trade")
app.add_typer(topup_app, name="topup")


def _owner_key(cfg: Settings, trader: str, key_file: Path | None) -> str:
    return owner_evm_key(cfg, trader, key_file,
                         missing="trading needs the position owner's EVM key")


@trade_app.command("open")
def trade_open(
    position: PositionOpt,
    size: Annotated[str, typer.Option(help="Size in the market's base unit, e.g. 0.5")],
    side: Annotated[str, typer.Option(help="long or short")] = "long",
    market: Annotated[str, typer.Option(help="Market name")] = "ETH-USD",
    trader: TraderOpt = "alice",
    key_file: KeyFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open the position's one trade at the oracle price (needs E >= IM afterwards)."""
    from orchestrator.actions.trading import open_trade

    cfg = settings()
    row = guarded(lambda: asyncio.run(open_trade(cfg, _owner_key(cfg, trader, key_file),
                                                 position=position, market=market, size=size,
                                                 side=side)))
    emit_row("opened", row, as_json)


@trade_app.command("close")
def trade_close(
    position: PositionOpt,
    trader: TraderOpt = "alice",
    key_file: KeyFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Close the position's trade at the oracle price; a loss is seized from its own locks."""
    from orchestrator.actions.trading import close_trade

    cfg = settings()
    row = guarded(lambda: asyncio.run(close_trade(cfg, _owner_key(cfg, trader, key_file),
                                                  position=position)))
    emit_row("closed", row, as_json)


def _resize(position: str, size: str, trader: str, key_file: Path | None, as_json: bool,
            grow: bool) -> None:
    from orchestrator.actions.trading import resize_trade

    cfg = settings()
    row = guarded(lambda: asyncio.run(resize_trade(cfg, _owner_key(cfg, trader, key_file),
                                                   position=position, by=size, grow=grow)))
    emit_row("increased" if grow else "reduced", row, as_json)


@trade_app.command("increase")
def trade_increase(
    position: PositionOpt,
    size: Annotated[str, typer.Option(help="Add this much to the trade, e.g. 0.25")],
    trader: TraderOpt = "alice",
    key_file: KeyFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Grow the open trade at the oracle price (needs E >= IM afterwards)."""
    _resize(position, size, trader, key_file, as_json, grow=True)


@trade_app.command("reduce")
def trade_reduce(
    position: PositionOpt,
    size: Annotated[str, typer.Option(help="Take this much off the trade, e.g. 0.25")],
    trader: TraderOpt = "alice",
    key_file: KeyFileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reduce the open trade at the oracle price; the closed part's PnL is realized."""
    _resize(position, size, trader, key_file, as_json, grow=False)


@app.command("price")
def price(
    market: Annotated[str, typer.Option(help="Market / feed name, e.g. ETH-USD")],
    value: Annotated[str | None, typer.Option(
        "--set", help="New price in USD, e.g. 1650.25, to every source (omit: show the mark)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Publish a price to every source as the devnet's feeder, or (without ``--set``) show
    its mark: the row ``bulkhead marks`` prints for it."""
    from bulkhead.api.readers import read_marks
    from devnet.feeder import set_price

    cfg = settings()
    if value is not None:
        row = guarded(lambda: asyncio.run(set_price(cfg, feeder_key(cfg, None), market=market,
                                                    price=value)))
        emit_row("price", row, as_json)
        return
    rows = {r["market"]: r for r in guarded(lambda: asyncio.run(read_marks(cfg)))}
    if market not in rows:
        fail(InputError("market", f"{market!r} is not priced by the venue; have "
                                  f"{', '.join(sorted(rows))}"))
    emit_json(rows[market]) if as_json else out.print(views.marks_table([rows[market]]))


@app.command("positions")
def positions(as_json: JsonOpt = False) -> None:
    """Every open position backed by credited collateral: equity, initial and maintenance
    margin (volatility buffer apart), margin ratio, liquidation and bankruptcy prices; then
    the marks (``--json``: the positions alone, see ``bulkhead marks``)."""
    from orchestrator.actions.trading import position_rows
    from orchestrator.liquidation.keeper import Keeper
    from orchestrator.venues.registry import open_venue
    from shared.locks import LockState
    from workers.stores.locks import RedisLockStore

    cfg = settings()

    async def read(keys: list[bytes]) -> list[dict[str, Any]]:
        venue = await open_venue(cfg.venue_adapter, cfg)  # read only: no key
        try:
            return await position_rows(cfg, Keeper(venue), keys)
        finally:
            await venue.aclose()

    def run() -> list[dict[str, Any]]:
        store = RedisLockStore(str(cfg.redis_url))
        try:
            keys = sorted({r.event.position_key for r in store.all_records()
                           if r.state == LockState.CREDITED})
        finally:
            store.close()
        return asyncio.run(read([bytes.fromhex(k[2:]) for k in keys]))

    rows = guarded(run)
    if as_json:  # a list, as ever: the marks have their own command
        emit_json(rows)
        return
    out.print(views.positions_table(rows))
    from bulkhead.api.readers import read_marks

    try:
        marks = asyncio.run(read_marks(cfg))
    except (OrchestratorError, TimeoutError) as exc:  # the positions stand without the marks
        err.print(f"marks unavailable: {exc}")
    else:
        out.print(views.marks_table(marks))


@app.command("marks")
def marks(as_json: JsonOpt = False) -> None:
    """Every mark the venue reads: for a user action and for a liquidation, and each source's
    price, age and verdict (the rows of /api/v1/marks)."""
    from bulkhead.api.readers import read_marks

    cfg = settings()
    rows = guarded(lambda: asyncio.run(read_marks(cfg)))
    emit_json(rows) if as_json else out.print(views.marks_table(rows))


@app.command("locks")
def locks(
    as_json: JsonOpt = False,
    sync: Annotated[bool, typer.Option(help="Run one watcher pass over every chain first")] = True,
    chain: Annotated[str | None, typer.Option(help="Only this chain")] = None,
) -> None:
    """Every lock the watchers saw, with its lifecycle state and where it got there."""
    from orchestrator.watch.service import sync_once
    from workers.stores.locks import RedisLockStore

    cfg = settings()
    if chain is not None:
        guarded(lambda: cfg.chain(chain))
    store = RedisLockStore(str(cfg.redis_url))

    def run() -> list[dict[str, Any]]:
        from shared.locks import LockState

        store.ping()
        if sync:
            asyncio.run(sync_once(cfg, store, chains=[chain] if chain else None))
        pool = RedisSignaturePool(str(cfg.redis_url))
        settled = views.settled_by_lock(RedisSettlementStore(str(cfg.redis_url)).all())
        in_flight = {LockState.FINALIZED, LockState.ATTESTED, LockState.HELD, LockState.REFUSED}
        threshold = cfg.attesters.threshold or (2 * len(cfg.attesters.members)) // 3 + 1
        return [views.lock_row(r, settled=settled.get(r.key),
                               signatures=(len(pool.signers(r.key)), threshold)
                               if r.state in in_flight else None)
                for r in store.all_records() if chain is None or r.event.chain == chain]

    rows = guarded(run)
    emit_json(rows) if as_json else out.print(views.locks_table(rows))


@app.command("watch")
def watch(once: Annotated[bool, typer.Option(help="One catch-up pass, then exit")] = False) -> None:
    """Run the chain watchers until Ctrl-C, printing each lifecycle change."""
    from orchestrator.watch.service import sync_once, watch_forever
    from orchestrator.watch.watcher import PollReport
    from workers.stores.locks import RedisLockStore

    cfg = settings()
    store = RedisLockStore(str(cfg.redis_url))

    def show(report: PollReport) -> None:
        for key in report.new:
            out.print(f"{report.chain}: seen {key}")
        for key, state in report.advanced:
            out.print(f"{report.chain}: {state} {key}")

    def run() -> None:
        store.ping()
        if once:
            for report in asyncio.run(sync_once(cfg, store)):
                show(report)
            return
        try:
            asyncio.run(watch_forever(cfg, store, on_report=show))
        except KeyboardInterrupt:
            out.print("stopped")

    guarded(run)


class Role(StrEnum):
    RISK = "risk"
    WATCHER = "watcher"
    ATTESTER = "attester"
    RELAYER = "relayer"
    RECONCILER = "reconciler"
    ACCOUNTANT = "accountant"
    BEAT = "beat"


@app.command("worker")
def worker(
    role: Annotated[Role, typer.Option(help="Which role this process runs")],
    name: Annotated[str | None, typer.Option(help="Attester name (role attester)")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64)] = 1,
    pool: Annotated[str, typer.Option(help="Celery pool: prefork (default) or solo")] = "prefork",
    loglevel: Annotated[str, typer.Option()] = "INFO",
    only_queue: Annotated[list[str] | None, typer.Option(
        help="Consume only these of the role's queues (repeat), e.g. split the risk role's "
             "planning (risk) from its sending (liquidate.<venue chain>)")] = None,
) -> None:
    """Run one Celery worker (or the single beat) for a role; one process per attester key."""
    cfg = settings()

    def preflight() -> None:
        from workers.runtime import Services, check_redis

        if pool not in ("prefork", "solo"):
            raise InputError("pool", f"{pool!r}: use prefork or solo")
        if role == Role.ATTESTER:
            if not name:
                raise InputError("name", "an attester worker needs --name")
            cfg.attesters.member(name)
        _ = Services(cfg).attester_set  # KEY-02: unsafe sets refuse to start
        check_redis(str(cfg.redis_url))
        from workers.logs import parse_level

        parse_level(loglevel)
        if only_queue:
            from workers.queues import queues_for

            if role == Role.BEAT:
                raise InputError("only-queue", "the beat consumes no queue")
            mine = queues_for(role.value, cfg, name)
            if unknown := sorted(set(only_queue) - set(mine)):
                raise InputError("only-queue", f"{', '.join(unknown)}: not a queue of the "
                                               f"{role.value} role ({', '.join(mine)})")

    guarded(preflight)
    from workers.celery_app import app as celery_app
    from workers.celery_app import configure
    from workers.queues import queues_for

    configure(cfg, attester=name)  # the worker's settings: read once, here, at its edge

    if role == Role.BEAT:
        cfg.home.mkdir(parents=True, exist_ok=True)
        celery_app.start(["beat", "-s", str(cfg.home / "beat-schedule"), "--loglevel", loglevel])
        return
    queues = queues_for(role.value, cfg, name)
    node = f"{role.value}-{name or 'main'}"
    if only_queue:
        queues = [q for q in queues if q in only_queue]
        node += "-" + "-".join(queues)  # a partial worker is a node of its own
    celery_app.worker_main(["worker", "-Q", ",".join(queues), "-n",
                            f"{node}@%h", "-c", str(concurrency),
                            "--pool", pool,
                            "--loglevel", loglevel, "--without-gossip", "--without-mingle"])


@app.command("demo")
def demo(
    keep: Annotated[bool, typer.Option(help="Leave the devnet running afterwards")] = False,
) -> None:
    """The whole story on the local default: locks on evm-a and solana credited on evm-b,
    isolated positions, a scripted crash (one position liquidated partially, then fully, its
    collateral seized; the other untouched), releases, a report, a chart, a clean audit."""
    from bulkhead.local.demo import run_demo

    code = guarded(lambda: run_demo(settings().home, out, keep=keep))
    raise typer.Exit(code)


@app.command("run")
def run(
    block_time: Annotated[float, typer.Option(min=0.1, max=60, help="anvil block time, s")] = 1.0,
    slot_ms: Annotated[int, typer.Option(min=50, max=5000, help="Solana slot time, ms")] = 400,
    host: Annotated[str, typer.Option(help="API listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="API port")] = 8000,
    stop_after: Annotated[float | None, typer.Option(
        min=1, help="Stop by itself after this many seconds (smoke tests)")] = None,
    calm_feeder: Annotated[bool, typer.Option(
        "--calm-feeder/--no-calm-feeder",
        help="Keep every devnet price feed fresh (re-stamped, never moved)")] = True,
) -> None:
    """Everything on the local default in one process tree — devnet, attesters, relayer,
    reconciler, risk worker, accountant, beat, the calm feeder and the API — until Ctrl-C, then
    a clean shutdown."""
    from bulkhead.local.run import run_local
    from devnet.stack import DevnetOptions

    opts = DevnetOptions(block_time_s=block_time, slot_ms=slot_ms, detach=False)
    code = guarded(lambda: run_local(settings().home, out, opts=opts, api_host=host,
                                     api_port=port, stop_after_s=stop_after,
                                     calm_feeder=calm_feeder))
    raise typer.Exit(code)


@app.command("api")
def api(
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Listen port")] = 8000,
    loglevel: Annotated[str, typer.Option()] = "info",
    require_workers: Annotated[bool, typer.Option(
        help="/readyz is 503 while a worker role has no live worker")] = False,
) -> None:
    """Serve the HTTP API (OpenAPI at /docs), /metrics and the dashboard."""
    from bulkhead.api.deps import ApiOptions
    from bulkhead.api.server import serve

    cfg = settings()
    serve(cfg, host, port, log_level=loglevel,
          options=ApiOptions(require_workers=require_workers))


def main() -> None:
    """The ``bulkhead`` command. Library log lines go to stderr at ``BULKHEAD_LOG_LEVEL``
    (default WARNING), never to stdout, where ``--json`` output must be the JSON alone; the
    worker, beat and API commands configure their own logging on top of this."""
    import os
    import sys

    from workers.logs import configure_logging

    level = os.environ.get("BULKHEAD_LOG_LEVEL", "WARNING")
    try:
        configure_logging(json=False, level=level, stream=sys.stderr)
    except InputError:
        configure_logging(json=False, level="WARNING", stream=sys.stderr)
    app()


@app.command("audit")
def audit(as_json: JsonOpt = False) -> None:
    """Reconcile the chains against the invariants (DESIGN §6); exit 1 on any violation."""
    from orchestrator.audit.collect import run_audit
    from workers.stores.locks import RedisLockStore

    cfg = settings()
    store = RedisLockStore(str(cfg.redis_url))
    try:
        report = guarded(lambda: asyncio.run(run_audit(cfg, store)))
    finally:
        store.close()
    data = report.to_dict()
    emit_json(data) if as_json else out.print(views.audit_table(data))
    if report.violations:
        sys.stderr.write(f"error: audit found {len(report.violations)} violation(s)\n")
        sys.stderr.write("".join(v.line() + "\n" for v in report.violations))
        raise typer.Exit(1)
