"""``bulkhead feed``: push a scripted price path (or a scenario file) to the devnet oracle.

Registered in :mod:`bulkhead.cli.main` with ``app.add_typer(feed_app, name="feed")``::

    bulkhead feed --market ETH-USD --path crash --from 3000 --pct 45 --steps 1 --interval 1
    bulkhead feed --scenario scenario.toml [--json]
    bulkhead feed --keep-fresh [--every 20] [--market USDC ...]

``--keep-fresh`` is the calm feeder ``bulkhead run`` starts: it re-stamps every feed the devnet
owns (or the ``--market`` ones) with its current price once that price is ``--every`` seconds
old, until Ctrl-C, so user actions never meet a stale price on an idle devnet. It never moves a
price (see :func:`devnet.feeder.keep_fresh`).

``--pct`` is the path's size in percent (up to 4 decimals): the crash's drop, the spike's
jump, the calm oscillation's amplitude, or the trend's drift per step (signed: ``--pct=-0.5``).
``--from`` publishes that price first; without it the path continues from the oracle's current
price. ``--json`` prints one JSON object per published tick, as it is mined. Exit codes as
``bulkhead``: 2 for a refused input (the message names the field), 1 for a failed operation.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bulkhead.cli.common import fail, feeder_key, guarded, out, settings
from orchestrator.actions.inputs import parse_amount
from orchestrator.risk.price_paths import Scenario, parse_scenario
from shared.errors import InputError

if TYPE_CHECKING:  # the feeder imports web3: loaded only when the command runs
    from devnet.feeder import PushedTick

__all__ = ["PathName", "feed_app", "scenario_from_flags"]

feed_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                       help="Publish a scripted price path to the devnet oracle (as its feeder).")


class PathName(StrEnum):
    CALM = "calm"
    TREND = "trend"
    CRASH = "crash"
    SPIKE = "spike"


def _pct_ppm(text: str, *, signed: bool) -> int:
    """Percent (``"45"``, ``"0.25"``, ``"-0.5"`` when signed) -> ppm, exactly (4 decimals)."""
    negative = signed and text.strip().startswith("-")
    units = parse_amount(text.strip().removeprefix("-") if negative else text, 4, field="pct")
    return -units if negative else units


def scenario_from_flags(*, markets: list[str], path: PathName, pct: str | None, steps: int,
                        start: str | None, interval_s: float, seed: int,
                        up_steps: int) -> Scenario:
    """The one-segment scenario the flags describe (the same validation as a file).

    Raises:
        InputError: naming the bad flag or field.
    """
    if steps < 1:
        raise InputError("steps", "must be >= 1")
    segment: dict[str, object] = {"path": path.value, "steps": steps}
    if path is PathName.CALM:
        segment |= {"amplitude_ppm": _pct_ppm(pct, signed=False) if pct else 1_000,
                    "seed": seed}
    elif pct is None:
        raise InputError("pct", f"the {path.value} path needs --pct")
    elif path is PathName.TREND:
        segment["drift_ppm"] = _pct_ppm(pct, signed=True)
    else:
        segment["pct_ppm"] = _pct_ppm(pct, signed=False)
        if path is PathName.SPIKE:
            segment["up_steps"] = up_steps
    if start is not None:
        parse_amount(start, 8, field="from")  # names the flag; the model re-checks it
    feeds = [{"market": m, "segments": [segment], **({"start": start} if start else {})}
             for m in markets]
    return parse_scenario({"interval_s": interval_s, "feeds": feeds})


@feed_app.callback(invoke_without_command=True)
def feed(
    market: Annotated[list[str] | None, typer.Option(
        help="Oracle market, e.g. ETH-USD (repeat for several)")] = None,
    path: Annotated[PathName | None, typer.Option(help="calm | trend | crash | spike")] = None,
    start: Annotated[str | None, typer.Option(
        "--from", help="Publish this price (USD) first; default: continue from the oracle")] = None,
    pct: Annotated[str | None, typer.Option(
        help="Percent: crash drop, spike jump, calm amplitude, trend drift per step (signed)")
    ] = None,
    steps: Annotated[int, typer.Option(help="Ticks of the path (after --from)")] = 10,
    interval: Annotated[float, typer.Option(help="Seconds between ticks (wall clock)")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of the calm path's integer PRNG")] = 0,
    up_steps: Annotated[int, typer.Option(help="Spike: ticks up before the revert")] = 1,
    scenario: Annotated[Path | None, typer.Option(
        help="A TOML or JSON scenario file (instead of --path)")] = None,
    key_file: Annotated[Path | None, typer.Option(
        help="File with the feeder's hex key (default: the devnet manifest's)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per tick.")] = False,
    keep_fresh: Annotated[bool, typer.Option(
        "--keep-fresh", help="Re-stamp each feed's current price when it gets old, until "
                             "Ctrl-C (default markets: every feed the devnet owns)")] = False,
    every: Annotated[float, typer.Option(
        help="--keep-fresh: the age (s) at which a price is re-stamped")] = 20.0,
) -> None:
    """Publish a scripted price path to every source of the venue chain's marks, tick by tick."""
    from devnet.feeder import feed_scenario

    if keep_fresh:
        if scenario is not None or path is not None:
            fail(InputError("keep-fresh", "--keep-fresh moves no price: no --path or --scenario"))
        _keep_fresh(market, every, key_file, as_json)
        return
    if (scenario is None) == (path is None):
        fail(InputError("path", "give either --path (with --market) or --scenario"))
    if scenario is not None:
        from devnet.feeder import load_scenario

        plan = guarded(lambda: load_scenario(scenario))
    else:
        assert path is not None
        if not market:
            fail(InputError("market", "--path needs at least one --market"))
        plan = guarded(lambda: scenario_from_flags(
            markets=market, path=path, pct=pct, steps=steps, start=start, interval_s=interval,
            seed=seed, up_steps=up_steps))
    cfg = settings()
    key = guarded(lambda: feeder_key(cfg, key_file))
    total = sum(f.steps + (f.start_price_e8 is not None) for f in plan.feeds)

    show = _shower(as_json)
    if not as_json:
        out.print(f"feeding {total} ticks to {', '.join(f.market for f in plan.feeds)}",
                  highlight=False)
    guarded(lambda: asyncio.run(feed_scenario(cfg, key, plan, progress=show)))



def _shower(as_json: bool) -> Callable[[PushedTick], None]:
    def show(tick: PushedTick) -> None:
        if as_json:
            sys.stdout.write(json.dumps(tick.as_json(), sort_keys=True) + "\n")
            sys.stdout.flush()
        else:
            whole, frac = divmod(tick.price_e8, 10**8)
            out.print(f"[{tick.index + 1}] {tick.market} {whole}.{frac:08d} "
                      f"@ {tick.publish_time_s} (block {tick.block_number})", highlight=False)
    return show


def _keep_fresh(market: list[str] | None, every: float, key_file: Path | None,
                as_json: bool) -> None:
    from devnet.feeder import devnet_feeds, keep_fresh

    cfg = settings()
    key = guarded(lambda: feeder_key(cfg, key_file))
    markets = market or devnet_feeds()

    def complain(exc: Exception) -> None:
        sys.stderr.write(f"warning: feed refresh failed, trying again: {exc}\n")
        sys.stderr.flush()

    if not as_json:
        out.print(f"keeping {', '.join(markets)} fresh (re-stamped at {every:g} s old); "
                  "Ctrl-C stops", highlight=False)
    try:
        guarded(lambda: asyncio.run(keep_fresh(cfg, key, markets=markets, every_s=every,
                                               progress=_shower(as_json), on_error=complain)))
    except KeyboardInterrupt:
        return
