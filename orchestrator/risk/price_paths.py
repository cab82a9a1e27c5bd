"""Scripted oracle price paths for devnets, tests and the demo (pure, integers only).

Every price is an ``int`` ``price_e8`` (USD per whole unit, scaled 1e8) and every rate an
``int`` ppm (1_000_000 = 100 %); no float ever holds a price (I10). A path starts from
``start_e8`` and returns the ``steps`` prices that FOLLOW it (the start itself is not repeated):

- ``calm``  small bounded oscillation: each price is ``start * (1e6 + d) / 1e6`` (floor) with
  ``d`` drawn uniformly from ``[-amplitude_ppm, +amplitude_ppm]`` by a seeded integer PRNG
  (splitmix64), so ``|p - start| <= start * amplitude_ppm / 1e6`` and there is no drift.
- ``trend`` steady compounding drift: ``p[i] = p[i-1] * (1e6 + drift_ppm) / 1e6`` rounded half
  up, never below 1; ``drift_ppm`` > 0 up, < 0 down.
- ``crash`` a drop of ``pct_ppm`` over ``steps`` ticks (one tick with ``steps = 1``): target
  ``floor(start * (1e6 - pct_ppm) / 1e6)``, linear in price with intermediate prices rounded UP
  (never below the line), and the last tick is the target exactly.
- ``spike`` a jump of ``pct_ppm`` up over ``up_steps`` ticks to ``start + floor(start * pct /
  1e6)``, then linear back to ``start`` exactly on the last tick.

A scenario (TOML or JSON) lists feeds, each a market, an optional start and segments run one
after another, each from the previous one's last price::

    interval_s = 1
    [[feeds]]
    market = "ETH-USD"
    start = "3000"               # or start_e8 = 300000000000; omitted: the oracle's price
    [[feeds.segments]]
    path = "calm"
    steps = 10
    amplitude_ppm = 500
    seed = 7
    [[feeds.segments]]
    path = "crash"
    steps = 1
    pct_ppm = 450000
    [[feeds.faults]]             # optional: one source misbehaves (SourceFault)
    source = 2                   # the Pyth source of the devnet's three
    kind = "jump"                # jump | freeze | fixed | conf
    from_tick = 11
    ppm = -300000

:func:`scenario_from_text` / :func:`parse_scenario` refuse a bad file with :class:`InputError`
naming the field (``feeds.0.segments.1.crash.pct_ppm``).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.errors import InputError

__all__ = [
    "MAX_PRICE_E8",
    "MAX_STEPS",
    "PPM",
    "CalmSegment",
    "CrashSegment",
    "FeedPlan",
    "Scenario",
    "Segment",
    "SourceFault",
    "SourceTick",
    "SpikeSegment",
    "TrendSegment",
    "calm",
    "crash",
    "crash_target_e8",
    "parse_scenario",
    "path_prices",
    "scenario_from_text",
    "segment_prices",
    "source_ticks",
    "spike",
    "splitmix64",
    "trend",
]

PPM = 1_000_000
MAX_STEPS = 100_000
MAX_PRICE_E8 = 10**30
_MASK64 = 2**64 - 1
_DECIMAL_E8 = re.compile(r"^(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]{1,8}))?$")


def splitmix64(state: int) -> tuple[int, int]:
    """One step of splitmix64: ``(next_state, output)``, both 64-bit unsigned ints."""
    state = (state + 0x9E3779B97F4A7C15) & _MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return state, z ^ (z >> 31)


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(name, f"must be an int in {low}..{high}, got {value!r}")
    return value


def _check_start(start_e8: int, steps: int) -> None:
    _check_int("start_e8", start_e8, 1, MAX_PRICE_E8)
    _check_int("steps", steps, 1, MAX_STEPS)


def calm(start_e8: int, steps: int, *, amplitude_ppm: int = 1_000, seed: int = 0) -> list[int]:
    """Bounded oscillation around ``start_e8`` (no drift); deterministic in ``seed``.

    Raises:
        InputError: an argument out of range (``amplitude_ppm`` in 0..999_999).
    """
    _check_start(start_e8, steps)
    _check_int("amplitude_ppm", amplitude_ppm, 0, PPM - 1)
    _check_int("seed", seed, 0, _MASK64)
    state, width, prices = seed, 2 * amplitude_ppm + 1, []
    for _ in range(steps):
        state, out = splitmix64(state)
        d = out % width - amplitude_ppm  # modulo bias < width / 2**64: irrelevant here
        prices.append(max(1, start_e8 * (PPM + d) // PPM))
    return prices


def trend(start_e8: int, steps: int, *, drift_ppm: int) -> list[int]:
    """Compounding drift of ``drift_ppm`` per step (half-up rounding, never below 1).

    Raises:
        InputError: an argument out of range (``drift_ppm`` in -999_999..1_000_000).
    """
    _check_start(start_e8, steps)
    _check_int("drift_ppm", drift_ppm, -(PPM - 1), PPM)
    price = start_e8
    prices: list[int] = []
    for _ in range(steps):
        price = max(1, (price * (PPM + drift_ppm) + PPM // 2) // PPM)
        if price > MAX_PRICE_E8:
            raise InputError("drift_ppm", f"the path leaves the price range after {len(prices)}"
                                          " steps")
        prices.append(price)
    return prices


def crash_target_e8(start_e8: int, pct_ppm: int) -> int:
    """``floor(start * (1e6 - pct_ppm) / 1e6)``. Raises: InputError if it is not > 0."""
    _check_int("pct_ppm", pct_ppm, 1, PPM - 1)
    target = start_e8 * (PPM - pct_ppm) // PPM
    if target <= 0:
        raise InputError("pct_ppm", f"a {pct_ppm} ppm crash from {start_e8} leaves no price")
    return target


def _line(start_e8: int, end_e8: int, steps: int) -> list[int]:
    """``steps`` prices from just after ``start`` to ``end`` exactly, each rounded away from
    ``end`` toward ``start`` (a crash never undershoots its line, a revert never overshoots)."""
    span = start_e8 - end_e8
    return [end_e8 + (span * (steps - i) + steps - 1) // steps if span >= 0
            else end_e8 - ((-span) * (steps - i) + steps - 1) // steps
            for i in range(1, steps + 1)]


def crash(start_e8: int, steps: int, *, pct_ppm: int) -> list[int]:
    """A drop of ``pct_ppm`` over ``steps`` ticks, ending exactly on :func:`crash_target_e8`.

    Raises:
        InputError: an argument out of range (``pct_ppm`` in 1..999_999).
    """
    _check_start(start_e8, steps)
    return _line(start_e8, crash_target_e8(start_e8, pct_ppm), steps)


def spike(start_e8: int, steps: int, *, pct_ppm: int, up_steps: int = 1) -> list[int]:
    """A jump of ``pct_ppm`` over ``up_steps`` ticks, then back to ``start_e8`` exactly.

    Raises:
        InputError: an argument out of range (``pct_ppm`` in 1..10_000_000, and
            ``1 <= up_steps < steps``).
    """
    _check_start(start_e8, steps)
    _check_int("pct_ppm", pct_ppm, 1, 10 * PPM)
    _check_int("up_steps", up_steps, 1, MAX_STEPS)
    if up_steps >= steps:
        raise InputError("up_steps", f"must be below steps ({steps}) to leave room to revert")
    peak = start_e8 + start_e8 * pct_ppm // PPM
    if peak > MAX_PRICE_E8:
        raise InputError("pct_ppm", "the spike leaves the price range")
    return _line(start_e8, peak, up_steps) + _line(peak, start_e8, steps - up_steps)


# ----- scenario file ----------------------------------------------------------------------------

_FROZEN = ConfigDict(frozen=True, extra="forbid", strict=True)
_Steps = Annotated[int, Field(ge=1, le=MAX_STEPS)]


class CalmSegment(BaseModel):
    model_config = _FROZEN
    path: Literal["calm"]
    steps: _Steps
    amplitude_ppm: int = Field(default=1_000, ge=0, lt=PPM)
    seed: int = Field(default=0, ge=0, le=_MASK64)


class TrendSegment(BaseModel):
    model_config = _FROZEN
    path: Literal["trend"]
    steps: _Steps
    drift_ppm: int = Field(gt=-PPM, le=PPM)


class CrashSegment(BaseModel):
    model_config = _FROZEN
    path: Literal["crash"]
    steps: _Steps
    pct_ppm: int = Field(gt=0, lt=PPM)


class SpikeSegment(BaseModel):
    model_config = _FROZEN
    path: Literal["spike"]
    steps: Annotated[int, Field(ge=2, le=MAX_STEPS)]
    pct_ppm: int = Field(gt=0, le=10 * PPM)
    up_steps: int = Field(default=1, ge=1, le=MAX_STEPS)

    @model_validator(mode="after")
    def _room_to_revert(self) -> Self:
        if self.up_steps >= self.steps:
            raise ValueError("up_steps must be below steps")
        return self


Segment = Annotated[CalmSegment | TrendSegment | CrashSegment | SpikeSegment,
                    Field(discriminator="path")]


class SourceFault(BaseModel):
    """One source of a feed misbehaving for ``ticks`` ticks from tick ``from_tick`` (ticks
    count the feed's published prices from 0; ``ticks`` None: to the end). ``source`` is its
    index in the oracle's source order (the devnet's: Chainlink 8 decimals, Chainlink 18,
    Pyth). Kinds:

    - ``jump``   the source reports ``floor(price * (1e6 + ppm) / 1e6)`` (``ppm`` > -1e6);
    - ``freeze`` the source keeps its last value (nothing is written to it);
    - ``fixed``  the source reports ``price_e8`` (e.g. sits on a bound);
    - ``conf``   a Pyth source reports a confidence of ``ppm`` of the price.
    """

    model_config = _FROZEN
    source: int = Field(ge=0, lt=8)
    kind: Literal["jump", "freeze", "fixed", "conf"]
    from_tick: int = Field(default=0, ge=0, le=MAX_STEPS)
    ticks: int | None = Field(default=None, ge=1, le=MAX_STEPS)
    ppm: int | None = Field(default=None, gt=-PPM, le=10 * PPM)
    price_e8: int | None = Field(default=None, gt=0, le=MAX_PRICE_E8)

    @model_validator(mode="after")
    def _fields_of_kind(self) -> Self:
        need = {"jump": "ppm", "conf": "ppm", "fixed": "price_e8", "freeze": None}[self.kind]
        for name in ("ppm", "price_e8"):
            given = getattr(self, name) is not None
            if given != (name == need):
                raise ValueError(f"a {self.kind} fault {'needs' if not given else 'takes no'} "
                                 f"{name}")
        if self.kind == "conf" and self.ppm is not None and self.ppm <= 0:
            raise ValueError("a conf fault needs ppm > 0")
        return self

    def covers(self, tick: int) -> bool:
        return self.from_tick <= tick and (self.ticks is None or tick < self.from_tick + self.ticks)


@dataclass(frozen=True, slots=True)
class SourceTick:
    """One tick written source by source: ``prices_e8[i]`` for source ``i`` (0: left as it
    is) and ``conf_ppm[i]`` its Pyth confidence relative to its price (None: the default)."""

    price_e8: int  # the path's price, what the honest sources report
    prices_e8: tuple[int, ...]
    conf_ppm: tuple[int | None, ...]


def source_ticks(prices: Sequence[int], faults: Sequence[SourceFault], sources: int
                 ) -> list[int | SourceTick]:
    """The path's prices with ``faults`` applied: a plain int where every source reports
    the path's price, a :class:`SourceTick` where one or more misbehave.

    Raises:
        InputError: a fault names a source beyond ``sources``.
    """
    for i, fault in enumerate(faults):
        if fault.source >= sources:
            raise InputError(f"faults.{i}.source",
                             f"source {fault.source} of a feed with {sources} sources")
    out: list[int | SourceTick] = []
    for tick, price in enumerate(prices):
        active = [f for f in faults if f.covers(tick)]
        if not active:
            out.append(price)
            continue
        per, conf = [price] * sources, [None] * sources
        for f in active:
            if f.kind == "jump" and f.ppm is not None:
                # ROUNDING: floor, never below 1 (a source never reports 0 as a price).
                per[f.source] = max(1, price * (PPM + f.ppm) // PPM)
            elif f.kind == "freeze":
                per[f.source] = 0
            elif f.kind == "fixed" and f.price_e8 is not None:
                per[f.source] = f.price_e8
            elif f.kind == "conf":
                conf[f.source] = f.ppm
        out.append(SourceTick(price, tuple(per), tuple(conf)))
    return out


class FeedPlan(BaseModel):
    """One market's path: ``start`` (decimal USD, <= 8 decimals) or ``start_e8``, or neither
    (start from the oracle's current price, which is then not published again); ``faults``
    make single sources misbehave along it (:class:`SourceFault`)."""

    model_config = _FROZEN
    market: str = Field(min_length=1, max_length=64)
    start: str | None = None
    start_e8: int | None = Field(default=None, gt=0, le=MAX_PRICE_E8)
    segments: list[Segment] = Field(min_length=1)
    faults: list[SourceFault] = Field(default_factory=list, max_length=32)

    @model_validator(mode="after")
    def _one_start(self) -> Self:
        if self.start is not None and self.start_e8 is not None:
            raise ValueError("give start or start_e8, not both")
        if self.start is not None and _decimal_e8(self.start) is None:
            raise ValueError("start must be a positive decimal with at most 8 decimals")
        return self

    @property
    def start_price_e8(self) -> int | None:
        return _decimal_e8(self.start) if self.start is not None else self.start_e8

    @property
    def steps(self) -> int:
        return sum(s.steps for s in self.segments)


class Scenario(BaseModel):
    """Feeds pushed in lockstep: tick ``i`` publishes the ``i``-th price of every feed that
    still has one, then waits ``interval_s`` (wall clock; publish times come from the chain)."""

    model_config = _FROZEN
    interval_s: float = Field(default=1.0, ge=0, le=3_600)
    feeds: list[FeedPlan] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct_markets(self) -> Self:
        names = [f.market for f in self.feeds]
        if len(set(names)) != len(names):
            raise ValueError(f"a market appears twice: {names}")
        return self

    def prices(self, current_e8: Mapping[str, int] | None = None) -> dict[str, list[int]]:
        """``{market: prices to publish}``: the start (when the feed names one) then every
        segment's prices. A feed without a start continues from ``current_e8[market]``.

        Raises:
            InputError: a feed has no start and no current price, or a path is out of range.
        """
        out: dict[str, list[int]] = {}
        for index, feed in enumerate(self.feeds):
            start = feed.start_price_e8
            if start is None:
                if current_e8 is None or feed.market not in current_e8:
                    raise InputError(f"feeds.{index}.start", f"{feed.market} has no start price"
                                                             " and no current oracle price")
                out[feed.market] = path_prices(current_e8[feed.market], feed.segments)
            else:
                out[feed.market] = [start, *path_prices(start, feed.segments)]
        return out


def _decimal_e8(text: str) -> int | None:
    match = _DECIMAL_E8.match(text.strip())
    if match is None:
        return None
    value = int(match.group("int") + (match.group("frac") or "").ljust(8, "0"))
    return value if 0 < value <= MAX_PRICE_E8 else None


def segment_prices(start_e8: int, segment: CalmSegment | TrendSegment | CrashSegment
                   | SpikeSegment) -> list[int]:
    """The prices of one validated segment after ``start_e8``."""
    if isinstance(segment, CalmSegment):
        return calm(start_e8, segment.steps, amplitude_ppm=segment.amplitude_ppm,
                    seed=segment.seed)
    if isinstance(segment, TrendSegment):
        return trend(start_e8, segment.steps, drift_ppm=segment.drift_ppm)
    if isinstance(segment, CrashSegment):
        return crash(start_e8, segment.steps, pct_ppm=segment.pct_ppm)
    return spike(start_e8, segment.steps, pct_ppm=segment.pct_ppm, up_steps=segment.up_steps)


def path_prices(start_e8: int, segments: Sequence[CalmSegment | TrendSegment | CrashSegment
                                                  | SpikeSegment]) -> list[int]:
    """Segments run one after another, each from the previous one's last price."""
    prices: list[int] = []
    for segment in segments:
        prices += segment_prices(prices[-1] if prices else start_e8, segment)
    return prices


def parse_scenario(data: Mapping[str, Any]) -> Scenario:
    """Validate a scenario mapping (parsed TOML or JSON).

    Raises:
        InputError: naming the first bad field by its dotted path.
    """
    try:
        return Scenario.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "scenario"
        raise InputError(field, first["msg"]) from exc


def scenario_from_text(text: str, *, name: str, json_format: bool) -> Scenario:
    """Parse a scenario file's text: JSON when ``json_format``, else TOML. ``name`` names the
    file in messages.

    Raises:
        InputError: malformed text (field ``scenario``), or a bad field.
    """
    try:
        data = json.loads(text) if json_format else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "json" if json_format else "toml"
        raise InputError("scenario", f"{name}: not valid {kind}: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError("scenario", f"{name}: the top level must be a table / object")
    return parse_scenario(data)
