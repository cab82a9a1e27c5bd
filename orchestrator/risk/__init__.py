"""Bulkhead's pure risk core: integer margin rules, prices, volatility buffer, liquidation plans.

Nothing here does I/O or imports ``chains``, ``bridges``, ``workers``, Redis, web3 or Solana
(a unit test walks the imports). The on-chain venue implements the SAME integer rules; this
docstring is the shared fixed-point specification.

Units (all Python ``int``; no float ever holds an amount, I10)
---------------------------------------------------------------
- ``usd_e18``  USD values, 1 USD = 10**18.
- ``price_e8`` USD per ONE whole unit of the asset (or the market's base asset), scaled 1e8.
- ``size_e18`` signed position size in base units * 1e18; long > 0, short < 0.
- ``entry_e8`` entry price.  ``amount18`` a collateral amount normalised to 18 decimals.
- ``_ppm``     rates, 1_000_000 = 100%.   ``_s`` seconds of the judged chain's clock.

Rules, with the rounding of every division (each favours the protocol)
---------------------------------------------------------------------
    collateral  v_i = floor(floor(amount18 * price_e8 / 1e8) * (1e6 - haircut_ppm) / 1e6)
                C   = sum(v_i)                                     # each lot DOWN
    notional    N   = ceil(|size_e18| * mark_e8 / 1e8)             # UP: drives requirements
    pnl             = floor(size_e18 * (mark_e8 - entry_e8) / 1e8) # toward -inf (gains DOWN,
                                                                   #   losses UP in magnitude)
    equity      E   = C + pnl - accrued_fees_usd_e18
    initial     IM  = ceil(N * imr_ppm / 1e6)                      # UP
    maintenance MM  = ceil(N * (mmr_ppm + buffer_ppm) / 1e6)       # UP
    liquidatable    iff MM > 0 and E < MM, at a price valid for liquidations
    user actions    open / increase / remove margin / withdraw need E >= IM at a price valid
                    for user actions, and are refused while a liquidation is pending

Floor toward -inf: Python's ``//``. Solidity's ``/`` truncates toward zero, so the venue must
emulate floor for a negative numerator: ``q = n / d; if (n % d != 0 && (n < 0) != (d < 0)) q -= 1``.
Ceil for ``d > 0``: ``-((-n) // d)`` here, ``(n + d - 1) / d`` on chain for ``n >= 0``.

Volatility buffer (``volatility.py``): ``buffer_ppm = clamp(ceil(k_ppm * sigma * sqrt(horizon_s)),
0, buffer_max_ppm)``, sigma the EWMA (decay ``vol_lambda_ppm`` per tick) of per-second variance
``ln(p1/p0)**2 / dt``. Floats live only inside the estimator and hold rates; the buffer leaves as
an integer ppm rounded UP (a wider buffer favours the protocol). Same ticks, same buffer.

Liquidation plan (``planner.py``): FULL if ``E * 1e6 < MM * full_ratio_ppm``; else the smallest
fraction ``f`` (integer ppm, i.e. rounded UP) that restores ``E >= IM`` after the fee on the
closed notional, at most ``step_max_ppm``, one partial step per ``cooldown_s``; FULL if the
remainder's notional would be below ``dust_usd_e18``. Closed size ``ceil(|s| * f / 1e6)`` (UP),
realized pnl floored, ``fee = min(ceil(N_closed * liq_fee_ppm / 1e6), fee_cap_usd_e18)`` taken
from equity (never beyond it); a full liquidation with ``E_after < 0`` records
``shortfall = -E_after`` for the insurance fund and touches no other position.
``plan_id = sha256(canonical JSON of (domain, position key, version, tick id))``.

Liquidation and bankruptcy prices (``prices.py``): reported on the side that liquidates earlier
(UP for longs, DOWN for shorts); closed form with stable collateral, bisection otherwise
(``method="numeric"``).

Screen (``screen.py``): float64 over numpy arrays with a documented safety band; it never misses
a position the integer rule calls liquidatable, and the integer re-check decides.

Modules: ``params`` (RiskParams, schema), ``oracle`` (price validity), ``margin`` (Risk, the
rules), ``actions`` (user action checks), ``prices``, ``volatility``, ``planner``, ``screen``
(needs numpy; not imported here), ``errors``, ``mark`` (the multi-source mark price rule,
mirror of the ``MarkOracle`` contract; docs/mark.md).
"""

from __future__ import annotations

from orchestrator.risk.actions import UserAction, check_user_action
from orchestrator.risk.errors import (
    AccountNotLiquidatable,
    InsufficientMargin,
    InvalidMarkInput,
    InvalidPosition,
    InvalidRiskParams,
    LiquidationCooldown,
    LiquidationPending,
    MissingPrice,
    PriceAtBound,
    PriceFromFuture,
    PriceInvalid,
    RiskError,
    StalePrice,
    TooFewSources,
)
from orchestrator.risk.margin import (
    CollateralLot,
    Position,
    Risk,
    collateral_value_usd_e18,
    initial_margin_usd_e18,
    is_liquidatable,
    liquidatable_at,
    maintenance_margin_usd_e18,
    notional_usd_e18,
    position_risk,
    riskier_than,
    unrealized_pnl_usd_e18,
)
from orchestrator.risk.mark import (
    MarkParams,
    MarkResult,
    SourceKind,
    SourceReading,
    SourceReason,
    SourceState,
    compute_mark,
    ema_step,
    source_states,
)
from orchestrator.risk.oracle import PriceTick, price_valid, valid_prices
from orchestrator.risk.params import CollateralParams, OpClass, RiskParams, risk_params_schema
from orchestrator.risk.planner import LiquidationPlan, PlanKind, PlanReason, plan_liquidation
from orchestrator.risk.prices import PositionPrices, PriceMethod, Side, position_prices
from orchestrator.risk.volatility import VolState, buffer_ppm, volatility_buffer_ppm

__all__ = [
    "AccountNotLiquidatable",
    "CollateralLot",
    "CollateralParams",
    "InsufficientMargin",
    "InvalidMarkInput",
    "InvalidPosition",
    "InvalidRiskParams",
    "LiquidationCooldown",
    "LiquidationPending",
    "LiquidationPlan",
    "MarkParams",
    "MarkResult",
    "MissingPrice",
    "OpClass",
    "PlanKind",
    "PlanReason",
    "Position",
    "PositionPrices",
    "PriceAtBound",
    "PriceFromFuture",
    "PriceInvalid",
    "PriceMethod",
    "PriceTick",
    "Risk",
    "RiskError",
    "RiskParams",
    "Side",
    "SourceKind",
    "SourceReading",
    "SourceReason",
    "SourceState",
    "StalePrice",
    "TooFewSources",
    "UserAction",
    "VolState",
    "buffer_ppm",
    "check_user_action",
    "collateral_value_usd_e18",
    "compute_mark",
    "ema_step",
    "initial_margin_usd_e18",
    "is_liquidatable",
    "liquidatable_at",
    "maintenance_margin_usd_e18",
    "notional_usd_e18",
    "plan_liquidation",
    "position_prices",
    "position_risk",
    "price_valid",
    "risk_params_schema",
    "riskier_than",
    "source_states",
    "unrealized_pnl_usd_e18",
    "valid_prices",
    "volatility_buffer_ppm",
]
