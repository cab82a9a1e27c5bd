"""RiskParams: invariants refused with the field named, the committed JSON schema is current."""

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import orchestrator.risk.params as params_module
from orchestrator.risk import InvalidRiskParams, OpClass, RiskParams, risk_params_schema
from shared.errors import OrchestratorError
from tests.unit.risk.constants import ETH_USD

SCHEMA_FILE = Path(params_module.__file__).parent / "risk_params.schema.json"
REGENERATE = ("python -c 'import json; "
              "from orchestrator.risk.params import risk_params_schema as s; "
              "open(\"orchestrator/risk/risk_params.schema.json\", \"w\").write("
              "json.dumps(s(), indent=2, sort_keys=True) + \"\\n\")'")


def with_(**update: Any) -> dict[str, Any]:
    return {**ETH_USD.model_dump(), **update}


def test_schema_file_is_up_to_date() -> None:
    expected = json.dumps(risk_params_schema(), indent=2, sort_keys=True) + "\n"
    assert SCHEMA_FILE.read_text() == expected, f"stale schema; regenerate with: {REGENERATE}"


def test_schema_lists_every_field_as_required_integer_or_named_type() -> None:
    schema = risk_params_schema()
    assert set(schema["properties"]) == set(RiskParams.model_fields)
    assert schema["properties"]["imr_ppm"]["type"] == "integer"
    assert schema["properties"]["imr_ppm"]["maximum"] == 1_000_000


def test_round_trip_through_json() -> None:
    assert RiskParams.model_validate_json(ETH_USD.model_dump_json()) == ETH_USD


@pytest.mark.parametrize(
    ("update", "field"),
    [
        ({"mmr_ppm": 0}, "mmr_ppm"),
        ({"imr_ppm": 1_000_001}, "imr_ppm"),
        ({"mmr_ppm": 60_000}, "params"),  # mmr > imr
        ({"buffer_max_ppm": 30_000}, "params"),  # mmr + buffer_max > imr
        ({"imr_ppm": 1_000_000, "mmr_ppm": 999_000, "buffer_max_ppm": 1_000}, "params"),
        ({"liq_fee_ppm": 25_000}, "params"),  # fee must be below mmr
        ({"step_max_ppm": 0}, "step_max_ppm"),
        ({"step_max_ppm": 1_000_001}, "step_max_ppm"),
        ({"full_ratio_ppm": 0}, "full_ratio_ppm"),
        ({"full_ratio_ppm": 1_000_001}, "full_ratio_ppm"),
        ({"max_price_age_user_s": 120}, "params"),  # user must be stricter
        ({"max_price_age_user_s": 0}, "max_price_age_user_s"),
        ({"min_price_e8": 10**15 * 10}, "params"),
        ({"min_price_e8": 0}, "min_price_e8"),
        ({"vol_lambda_ppm": 1_000_000}, "vol_lambda_ppm"),
        ({"dust_usd_e18": -1}, "dust_usd_e18"),
        ({"cooldown_s": -1}, "cooldown_s"),
        ({"collateral": {}}, "collateral"),
        ({"collateral": {"USDC": {"haircut_ppm": 1_000_000, "stable": True, "min_price_e8": 1,
                                  "max_price_e8": 2}}}, "collateral.USDC.haircut_ppm"),
        ({"collateral": {"USDC": {"haircut_ppm": 0, "min_price_e8": 2, "max_price_e8": 2}}},
         "collateral.USDC"),
        ({"imr_ppm": 50_000.0}, "imr_ppm"),  # floats are refused, never rounded
        ({"imr_ppm": "50000"}, "imr_ppm"),
        ({"imr_ppm": True}, "imr_ppm"),
        ({"surprise": 1}, "surprise"),
    ],
    ids=lambda v: json.dumps(v)[:60] if isinstance(v, dict) else str(v),
)
def test_invalid_params_refused_naming_the_field(update: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError):
        RiskParams(**with_(**update))
    with pytest.raises(InvalidRiskParams) as err:
        RiskParams.validated(with_(**update))
    assert err.value.field == field
    assert isinstance(err.value, OrchestratorError) and isinstance(err.value, ValueError)


def test_params_are_frozen() -> None:
    with pytest.raises(ValidationError):
        ETH_USD.imr_ppm = 1  # type: ignore[misc]


def test_user_actions_need_fresher_prices_than_liquidations() -> None:
    assert ETH_USD.max_price_age_s(OpClass.USER_ACTION) < ETH_USD.max_price_age_s(
        OpClass.LIQUIDATION)


def test_bounds_of_mark_and_collateral_feeds() -> None:
    assert ETH_USD.price_bounds_e8("ETH") == (ETH_USD.min_price_e8, ETH_USD.max_price_e8)
    assert ETH_USD.price_bounds_e8("USDC") == (90_000_000, 110_000_000)
    assert ETH_USD.price_bounds_e8("DOGE") is None
