"""Named canonical fixtures for the risk tests; the name states the scenario."""

from typing import Any

from orchestrator.risk import CollateralLot, CollateralParams, Position, PriceTick, RiskParams
from orchestrator.risk.mark import MarkParams

USD = 10**18  # usd_e18
E8 = 10**8  # price_e8
UNIT = 10**18  # size_e18 / amount18 of one whole unit

USDC_AT_1 = CollateralParams(haircut_ppm=0, stable=True, min_price_e8=90_000_000,
                             max_price_e8=110_000_000)
ETH_COLLATERAL = CollateralParams(haircut_ppm=200_000, min_price_e8=1, max_price_e8=10**15)
BTC_COLLATERAL = CollateralParams(haircut_ppm=150_000, min_price_e8=1, max_price_e8=10**16)

# ETH-USD on the evm-b venue: 20x max (IM 5%), MM 2.5% + buffer up to 2%, fee 1%.
ETH_USD = RiskParams(
    venue="evm-b:0x2222222222222222222222222222222222222222", market="ETH-USD",
    base_asset="ETH", imr_ppm=50_000, mmr_ppm=25_000,
    buffer_k_ppm=3_000_000, buffer_horizon_s=3_600, buffer_max_ppm=20_000,
    vol_lambda_ppm=940_000, vol_sigma0_ppb=142_000,
    liq_fee_ppm=10_000, fee_cap_usd_e18=10**9 * USD, step_max_ppm=1_000_000,
    full_ratio_ppm=500_000, dust_usd_e18=100 * USD, cooldown_s=60,
    max_price_age_user_s=30, max_price_age_liquidation_s=120, max_price_future_s=2,
    min_price_e8=1 * E8, max_price_e8=1_000_000 * E8,
    collateral={"USDC": USDC_AT_1, "ETH": ETH_COLLATERAL, "BTC": BTC_COLLATERAL},
)



def params(base: RiskParams = ETH_USD, **update: Any) -> RiskParams:
    """``base`` with fields replaced, validated again (``model_copy`` would skip validation)."""
    return RiskParams.model_validate({**base.model_dump(), **update})


# The planner table's market: IM 10%, MM 5% (no buffer), so the numbers stay readable.
ETH_USD_IM10_MM5 = params(imr_ppm=100_000, mmr_ppm=50_000, buffer_max_ppm=0)

NOW = 1_700_000_000  # chain clock of the tests (seconds)
PRICES_AT_2000 = {"ETH": 2_000 * E8, "USDC": 1 * E8, "BTC": 60_000 * E8}


def usdc(amount_usd: int) -> tuple[CollateralLot, ...]:
    return (CollateralLot("USDC", amount_usd * UNIT),)


def tick(asset: str, price_e8: int, at: int = NOW, tick_id: str | None = None) -> PriceTick:
    return PriceTick(asset, price_e8, at, tick_id or f"{asset}:{at}")


def ticks(prices: dict[str, int], at: int = NOW) -> dict[str, PriceTick]:
    return {asset: tick(asset, price, at) for asset, price in prices.items()}


# 10 ETH long at 2,000 with 2,000 USDC: 10x.
ALICE_ETH_10X_LONG_AT_2000 = Position("0x" + "a1" * 32, 3, 10 * UNIT, 2_000 * E8, usdc(2_000))
# Same owner, same asset and oracle, 2x (LIQ-02).
ALICE_ETH_2X_LONG_AT_2000 = Position("0x" + "a2" * 32, 7, 10 * UNIT, 2_000 * E8, usdc(10_000))


# The mark rule both the pure tests and the contract tests judge: 2 sources at least, 2 %
# deviation, 1 % Pyth confidence, no EMA cap, bounds 100..100,000 USD.
MARK_PARAMS = MarkParams(
    min_sources=2,
    max_deviation_ppm=20_000,
    max_conf_ppm=10_000,
    ema_cap_ppm=0,
    ema_alpha_ppm=500_000,
    poke_max_age_s=120,
    min_price_e8=100 * E8,
    max_price_e8=100_000 * E8,
)
