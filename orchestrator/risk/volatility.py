"""EWMA volatility of oracle log returns and the maintenance buffer it sets (DESIGN §3).

This is the only module of the risk core that uses floats, and they hold rates, never amounts
(I10): a per-second variance and its square root. The result leaves as an integer ppm rate,
rounded UP, so the float never reaches a USD value and rounding favours the protocol.

Rule, for consecutive observations ``(t0, p0)`` and ``(t1, p1)`` with ``dt = t1 - t0 > 0``::

    r        = ln(p1 / p0)                      # log return
    sample   = r * r / dt                       # per-second variance (time-normalised)
    var      = lam * var + (1 - lam) * sample   # lam = vol_lambda_ppm / 1e6, decay per tick
    sigma    = sqrt(var)                        # per sqrt(second)
    buffer   = clamp(ceil(buffer_k_ppm * sigma * sqrt(buffer_horizon_s)), 0, buffer_max_ppm)
             # computed exactly from var: the smallest integer b with
             # b**2 >= buffer_k_ppm**2 * var * buffer_horizon_s

``var`` starts at ``(vol_sigma0_ppb / 1e9) ** 2``. An observation with ``dt <= 0`` (a repeat or
an out-of-order tick) is ignored. A non-finite result is clamped to ``buffer_max_ppm``.

Determinism: ``ln`` is computed with :mod:`decimal` (correctly rounded to 34 digits, the same on
every platform), then converted to a double; the EWMA is IEEE-754 basic arithmetic in a fixed
order; the buffer is then derived from the variance with exact integer arithmetic. The same
ticks give the same buffer anywhere.
Only valid ticks (see :mod:`orchestrator.risk.oracle`) should be fed in: a feed stuck on a bound
has zero returns and would narrow the buffer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Context, Decimal

from orchestrator.risk.errors import InvalidRiskParams, PriceInvalid
from orchestrator.risk.oracle import PriceTick
from orchestrator.risk.params import RiskParams

__all__ = [
    "BufferRule",
    "VolState",
    "buffer_from_variance",
    "buffer_ppm",
    "ewma_update",
    "initial_vol_state",
    "sigma_per_sqrt_s",
    "sigma_ppb_up",
    "vol_state_from_prices",
    "vol_state_from_ticks",
    "volatility_buffer_ppm",
]

_LN_CONTEXT = Context(prec=34)


@dataclass(frozen=True, slots=True)
class VolState:
    """EWMA state of one market's feed: per-second variance and the last observation."""

    variance_per_s: float
    last_price_e8: int | None = None
    last_time_s: int | None = None
    returns: int = 0


@dataclass(frozen=True, slots=True)
class BufferRule:
    """The buffer's estimator without the rest of a market's :class:`RiskParams` (the same
    fields and units): what a risk worker needs to turn a tick history into a buffer.

    Invariants (checked on construction, else :class:`InvalidRiskParams` naming the field):
    every field an int; ``0 < lambda_ppm < 1_000_000``;
    ``k_ppm, horizon_s, sigma0_ppb >= 0``; ``0 <= max_ppm < 1_000_000``.
    """

    k_ppm: int
    horizon_s: int
    max_ppm: int
    lambda_ppm: int
    sigma0_ppb: int = 0

    def __post_init__(self) -> None:
        for name in ("k_ppm", "horizon_s", "max_ppm", "lambda_ppm", "sigma0_ppb"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidRiskParams(name, value, "must be a non-negative int")
        if not 0 < self.lambda_ppm < 1_000_000:
            raise InvalidRiskParams("lambda_ppm", self.lambda_ppm, "must be in 1..999999")
        if self.max_ppm >= 1_000_000:
            raise InvalidRiskParams("max_ppm", self.max_ppm, "must be below 1_000_000")

    @classmethod
    def of(cls, params: RiskParams) -> BufferRule:
        """The rule inside a market's risk parameters."""
        return cls(params.buffer_k_ppm, params.buffer_horizon_s, params.buffer_max_ppm,
                   params.vol_lambda_ppm, params.vol_sigma0_ppb)

    def initial_state(self) -> VolState:
        """State before any observation: ``var = (sigma0_ppb / 1e9) ** 2``."""
        sigma0 = self.sigma0_ppb / 1e9
        return VolState(variance_per_s=sigma0 * sigma0)

    def buffer_ppm(self, state: VolState) -> int:
        """The buffer of ``state`` under this rule (see :func:`buffer_from_variance`)."""
        return buffer_from_variance(state.variance_per_s, k_ppm=self.k_ppm,
                                    horizon_s=self.horizon_s, max_ppm=self.max_ppm)


def initial_vol_state(params: RiskParams) -> VolState:
    """State before any observation: ``var = (vol_sigma0_ppb / 1e9) ** 2``."""
    return BufferRule.of(params).initial_state()


def log_return(p0_e8: int, p1_e8: int) -> float:
    """``ln(p1 / p0)`` through :mod:`decimal` (platform-independent), as a double."""
    ratio = _LN_CONTEXT.divide(Decimal(p1_e8), Decimal(p0_e8))
    return float(_LN_CONTEXT.ln(ratio))


def ewma_update(state: VolState, price_e8: int, time_s: int, vol_lambda_ppm: int) -> VolState:
    """Fold one observation into ``state`` (returns a new state; ``state`` is not changed).

    Raises:
        PriceInvalid: ``price_e8`` is not a positive integer.
    """
    if isinstance(price_e8, bool) or not isinstance(price_e8, int) or price_e8 <= 0:
        raise PriceInvalid("volatility", f"price_e8 must be a positive integer, got {price_e8!r}")
    if state.last_price_e8 is None or state.last_time_s is None:
        return VolState(state.variance_per_s, price_e8, time_s, state.returns)
    dt = time_s - state.last_time_s
    if dt <= 0:
        return state
    r = log_return(state.last_price_e8, price_e8)
    lam = vol_lambda_ppm / 1e6
    variance = lam * state.variance_per_s + (1.0 - lam) * (r * r / dt)
    return VolState(variance, price_e8, time_s, state.returns + 1)


def vol_state_from_ticks(ticks: Iterable[PriceTick], params: RiskParams,
                         state: VolState | None = None) -> VolState:
    """Fold ``ticks`` (in publish order) into ``state`` (default: the initial state)."""
    current = initial_vol_state(params) if state is None else state
    for tick in ticks:
        current = ewma_update(current, tick.price_e8, tick.publish_time_s, params.vol_lambda_ppm)
    return current


def vol_state_from_prices(points: Iterable[tuple[int, int]], rule: BufferRule,
                          state: VolState | None = None) -> VolState:
    """Fold ``(price_e8, publish_time_s)`` pairs (in publish order) into ``state`` (default:
    the rule's initial state). Same fold as :func:`vol_state_from_ticks`.

    Raises:
        PriceInvalid: a price is not a positive integer.
    """
    current = rule.initial_state() if state is None else state
    for price_e8, time_s in points:
        current = ewma_update(current, price_e8, time_s, rule.lambda_ppm)
    return current


def sigma_per_sqrt_s(state: VolState) -> float:
    """The EWMA sigma per sqrt(second), a rate (never an amount)."""
    return math.sqrt(state.variance_per_s)


def sigma_ppb_up(state: VolState) -> int:
    """sigma per sqrt(second) in parts per billion, rounded UP, exactly (for reports and logs):
    the smallest integer ``s`` with ``s**2 >= variance_per_s * 1e18``; -1 if not finite."""
    variance = state.variance_per_s
    if not math.isfinite(variance):
        return -1
    if variance <= 0.0:
        return 0
    num, den = variance.as_integer_ratio()
    need = -((-num * 10**18) // den)
    return math.isqrt(need - 1) + 1


def buffer_from_variance(variance_per_s: float, *, k_ppm: int, horizon_s: int,
                         max_ppm: int) -> int:
    """``clamp(ceil(k_ppm * sqrt(variance_per_s * horizon_s)), 0, max_ppm)``.

    INVARIANT: the only float -> int conversion of the risk core, and it is exact: the float
    variance is an exact binary fraction ``num / den``, and the result is the smallest integer
    ``b`` with ``b**2 * den >= k_ppm**2 * horizon_s * num`` (integer square root), i.e. the
    buffer rounded UP with no float rounding after the EWMA. A NaN or infinite variance (it
    cannot arise from valid ticks) maps to the cap, never to zero.
    """
    if not math.isfinite(variance_per_s):
        return max_ppm
    if variance_per_s <= 0.0:
        return 0
    num, den = variance_per_s.as_integer_ratio()
    target = num * horizon_s * k_ppm**2
    need = -((-target) // den)  # ceil(target / den): b**2 is an integer
    smallest = math.isqrt(need - 1) + 1 if need > 0 else 0
    return min(smallest, max_ppm)


def buffer_ppm(state: VolState, params: RiskParams) -> int:
    """``clamp(ceil(buffer_k_ppm * sqrt(variance_per_s * horizon_s)), 0, buffer_max_ppm)``
    (:func:`buffer_from_variance` with the market's parameters)."""
    return buffer_from_variance(state.variance_per_s, k_ppm=params.buffer_k_ppm,
                                horizon_s=params.buffer_horizon_s,
                                max_ppm=params.buffer_max_ppm)


def volatility_buffer_ppm(ticks: Iterable[PriceTick], params: RiskParams) -> int:
    """The buffer after folding ``ticks`` into the initial state (deterministic in ``ticks``)."""
    return buffer_ppm(vol_state_from_ticks(ticks, params), params)
