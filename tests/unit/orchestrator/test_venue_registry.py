"""Venue adapters by name: the built-in ``reference``, entry points, typed refusals."""

from __future__ import annotations

import asyncio
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from orchestrator.venues import registry
from orchestrator.venues.errors import (
    LiquidationCoolingDown,
    LiquidationRefused,
    NoOpenPosition,
    PositionNotLiquidatable,
    RefusalCode,
    UnknownVenue,
    VenueConflict,
    refusal_from_reason,
)
from shared.errors import ConfigError, TxRejected

KEY = "0x" + "ab" * 32


def _with_entry_points(monkeypatch: pytest.MonkeyPatch, *eps: EntryPoint) -> None:
    def fake(group: str) -> tuple[EntryPoint, ...]:
        assert group == registry.ENTRY_POINT_GROUP
        return eps

    monkeypatch.setattr(registry, "entry_points", fake)


async def _not_an_adapter(settings: Any, **_: Any) -> object:
    return object()


def test_reference_is_built_in_and_loads() -> None:
    assert "reference" in registry.available_venues()
    from orchestrator.venues.reference import open_reference_venue

    assert registry.venue_factory("reference") is open_reference_venue


def test_unknown_venue_names_itself_and_lists_the_known(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_entry_points(monkeypatch, EntryPoint("acme", "json:loads", registry.ENTRY_POINT_GROUP))
    with pytest.raises(UnknownVenue) as info:
        registry.venue_factory("nope")
    assert isinstance(info.value, ConfigError)
    assert info.value.name == "nope" and info.value.known == ("acme", "reference")
    assert "'nope'" in str(info.value) and "acme, reference" in str(info.value)


def test_entry_point_is_found_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    target = f"{__name__}:_not_an_adapter"
    _with_entry_points(monkeypatch, EntryPoint("acme", target, registry.ENTRY_POINT_GROUP))
    assert registry.venue_factory("acme") is _not_an_adapter


def test_our_own_declaration_of_reference_is_not_a_conflict(monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    same = registry.BUILTIN_VENUES["reference"]
    _with_entry_points(monkeypatch, EntryPoint("reference", same, registry.ENTRY_POINT_GROUP))
    assert registry.available_venues() == ["reference"]
    registry.venue_factory("reference")


def test_a_package_cannot_shadow_a_built_in(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_entry_points(monkeypatch,
                       EntryPoint("reference", "evil.venue:open", registry.ENTRY_POINT_GROUP))
    with pytest.raises(VenueConflict) as info:
        registry.venue_factory("reference")
    assert "evil.venue:open" in info.value.targets


def test_a_target_that_does_not_load_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_entry_points(monkeypatch,
                       EntryPoint("acme", "no_such_module_x:open", registry.ENTRY_POINT_GROUP))
    with pytest.raises(ConfigError, match="does not load"):
        registry.venue_factory("acme")


def test_a_factory_must_return_a_venue_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    target = f"{__name__}:_not_an_adapter"
    _with_entry_points(monkeypatch, EntryPoint("acme", target, registry.ENTRY_POINT_GROUP))
    with pytest.raises(ConfigError, match="does not implement VenueAdapter"):
        asyncio.run(registry.open_venue("acme", settings=None))  # type: ignore[arg-type]


@pytest.mark.parametrize(("reason", "kind", "code", "no_op"), [
    ("NotLiquidatable(5, 7)", PositionNotLiquidatable, RefusalCode.NOT_LIQUIDATABLE, True),
    ("NotLiquidatable(-3, 7)", PositionNotLiquidatable, RefusalCode.NOT_LIQUIDATABLE, True),
    (f"NoOpenTrade({KEY})", NoOpenPosition, RefusalCode.NO_OPEN_POSITION, True),
    ("LiquidationCooldown(1700000030)", LiquidationCoolingDown, RefusalCode.COOLDOWN, True),
    ("StepTooLarge(300000, 250000)", LiquidationRefused, RefusalCode.STEP_TOO_LARGE, True),
    (f"StalePrice({KEY}, 5, 600)", LiquidationRefused, RefusalCode.PRICE_INVALID, False),
    (f"PriceOutOfBounds({KEY}, 1)", LiquidationRefused, RefusalCode.PRICE_INVALID, False),
    ("EnforcedPause()", LiquidationRefused, RefusalCode.OTHER, False),
    ("reverted without reason", LiquidationRefused, RefusalCode.OTHER, False),
])
def test_refusals_are_typed(reason: str, kind: type[LiquidationRefused], code: RefusalCode,
                            no_op: bool) -> None:
    refusal = refusal_from_reason("evm-b", KEY, reason, "0xtx")
    assert type(refusal) is kind and isinstance(refusal, TxRejected)
    assert (refusal.code, refusal.no_op, refusal.reason) == (code, no_op, reason)
    assert (refusal.position_key, refusal.tx_id, refusal.chain) == (KEY, "0xtx", "evm-b")


def test_not_liquidatable_carries_equity_and_maintenance() -> None:
    refusal = refusal_from_reason("evm-b", KEY, "NotLiquidatable(-3, 7)")
    assert isinstance(refusal, PositionNotLiquidatable)
    assert (refusal.equity_usd_e18, refusal.maintenance_usd_e18) == (-3, 7)
    cooling = refusal_from_reason("evm-b", KEY, "LiquidationCooldown(99)")
    assert isinstance(cooling, LiquidationCoolingDown) and cooling.until == 99
