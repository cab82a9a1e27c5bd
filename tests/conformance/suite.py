"""Conformance suite for a :class:`~orchestrator.venues.VenueAdapter` on a live devnet.

The tests below take two fixtures that the venue's own test setup provides (see
``tests/conformance/README.md``):

``venue_adapter_factory``
    a zero-argument async callable returning a connected adapter whose ``sender_key`` may
    submit liquidations (on the reference venue anyone may). Each test opens and closes its own.

``venue_scenarios``
    a :class:`VenueScenarios`: the devnet-specific steps the suite cannot do through the seam
    (fund and open a position, move prices, sign a lock).

Each test opens its own positions, so the tests are independent and may run in any order on
one devnet. Nothing here knows the chain: a partner runs the same checks on its own venue.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import pytest

from orchestrator.risk import position_risk
from orchestrator.venues import (
    LiquidationRefused,
    PositionNotLiquidatable,
    PositionSnapshot,
    SettlementKind,
    VenueAdapter,
)
from shared.errors import AlreadyConsumed, InputError

__all__ = [
    "VenueScenarios",
    "test_adapter_implements_the_protocol",
    "test_chain_time_is_monotone",
    "test_credit_is_once_per_lock",
    "test_healthy_position_refuses_liquidation_with_a_typed_error",
    "test_liquidation_settles_and_a_second_submit_is_a_typed_no_op",
    "test_malformed_liquidation_inputs_are_refused_before_sending",
    "test_prices_are_valid",
    "test_read_positions_returns_a_consistent_snapshot",
]

T = TypeVar("T")
AdapterFactory = Callable[[], Awaitable[VenueAdapter]]
HEX32 = re.compile(r"^0x[0-9a-f]{64}$")
PPM = 10**6
UNKNOWN_KEY = "0x" + "0e" * 32  # never opened on any devnet


class VenueScenarios(Protocol):
    """Devnet steps outside the seam. Keys are 0x-hex; every method waits until it landed."""

    async def open_position(self, adapter: VenueAdapter) -> str:
        """Fund a new position with collateral and open a trade that meets initial margin at
        fresh prices; return its key."""
        ...

    async def make_liquidatable(self, adapter: VenueAdapter, key: str) -> None:
        """Publish fresh prices at which ``key`` must be liquidated in full (E < MM * the
        market's full ratio), so the liquidation settles its collateral."""
        ...

    async def restore_prices(self, adapter: VenueAdapter) -> None:
        """Publish fresh prices again at the level ``open_position`` assumes."""
        ...

    async def attested_lock(self, adapter: VenueAdapter, key: str) -> tuple[Any, list[bytes]]:
        """A new lock for ``key`` with a quorum of signatures the venue accepts."""
        ...


def _run(factory: AdapterFactory, body: Callable[[VenueAdapter], Awaitable[T]]) -> T:
    async def main() -> T:
        adapter = await factory()
        try:
            return await body(adapter)
        finally:
            await adapter.aclose()

    return asyncio.run(main())


def test_adapter_implements_the_protocol(venue_adapter_factory: AdapterFactory) -> None:
    async def body(adapter: VenueAdapter) -> None:
        assert isinstance(adapter, VenueAdapter)
        assert adapter.name and adapter.chain.key and adapter.chain.chain_id > 0

    _run(venue_adapter_factory, body)


def test_read_positions_returns_a_consistent_snapshot(
        venue_adapter_factory: AdapterFactory, venue_scenarios: VenueScenarios) -> None:
    async def body(adapter: VenueAdapter) -> None:
        first = await venue_scenarios.open_position(adapter)
        second = await venue_scenarios.open_position(adapter)
        snaps = await adapter.read_positions([second, UNKNOWN_KEY, first, second])
        assert [s.key for s in snaps] == [second, first]  # order kept, flat left out, once each
        again = await adapter.read_positions([first])
        now = await adapter.chain_time()
        for snap in snaps:
            _check_snapshot(snap, now)
        assert _without_height(again[0]) == _without_height(snaps[1])  # nothing moved
        assert await adapter.read_positions([]) == []

    _run(venue_adapter_factory, body)


def _check_snapshot(snap: PositionSnapshot, now: int) -> None:
    assert HEX32.match(snap.key) and HEX32.match(snap.market)
    assert snap.position.key == snap.key and snap.position.size_e18 != 0
    assert snap.params.base_asset in snap.prices_e8
    assert {lot.asset for lot in snap.position.collateral} <= set(snap.prices_e8)
    assert all(isinstance(p, int) and p > 0 for p in snap.prices_e8.values())
    assert 0 < snap.publish_time <= now
    assert 0 <= snap.buffer_ppm <= snap.params.buffer_max_ppm
    risk = position_risk(snap.position, snap.prices_e8, snap.params, snap.buffer_ppm)
    assert risk.meets_initial_margin() and not risk.is_liquidatable()  # opened healthy
    if snap.venue_margin is not None:  # the core and the venue agree to the last unit
        m = snap.venue_margin
        assert (m.collateral_usd_e18, m.equity_usd_e18, m.initial_usd_e18,
                m.maintenance_usd_e18, m.notional_usd_e18) == (
            risk.collateral_usd_e18, risk.equity_usd_e18, risk.initial_margin_usd_e18,
            risk.maintenance_margin_usd_e18, risk.notional_usd_e18)


def _without_height(snap: PositionSnapshot) -> tuple[Any, ...]:
    return (snap.key, snap.market, snap.position, snap.params, dict(snap.prices_e8),
            snap.publish_time, snap.buffer_ppm, snap.last_liquidation, snap.venue_margin)


def test_prices_are_valid(venue_adapter_factory: AdapterFactory,
                          venue_scenarios: VenueScenarios) -> None:
    async def body(adapter: VenueAdapter) -> None:
        key = await venue_scenarios.open_position(adapter)
        (snap,) = await adapter.read_positions([key])
        quotes = await adapter.prices()
        now = await adapter.chain_time()
        assert snap.params.base_asset in quotes
        for feed, quote in quotes.items():
            assert HEX32.match(feed) and quote.feed == feed
            assert isinstance(quote.price_e8, int) and quote.price_e8 > 0
            assert 0 < quote.publish_time <= now
        for feed, price in snap.prices_e8.items():  # the snapshot used the oracle's prices
            assert quotes[feed].price_e8 == price

    _run(venue_adapter_factory, body)


def test_healthy_position_refuses_liquidation_with_a_typed_error(
        venue_adapter_factory: AdapterFactory, venue_scenarios: VenueScenarios) -> None:
    async def body(adapter: VenueAdapter) -> None:
        key = await venue_scenarios.open_position(adapter)
        with pytest.raises(PositionNotLiquidatable) as info:
            await adapter.submit_liquidation(key, PPM)
        assert info.value.no_op and info.value.position_key == key
        (snap,) = await adapter.read_positions([key])  # untouched
        assert snap.last_liquidation == 0

    _run(venue_adapter_factory, body)


def test_liquidation_settles_and_a_second_submit_is_a_typed_no_op(
        venue_adapter_factory: AdapterFactory, venue_scenarios: VenueScenarios) -> None:
    async def body(adapter: VenueAdapter) -> None:
        key = await venue_scenarios.open_position(adapter)
        bystander = await venue_scenarios.open_position(adapter)
        try:
            await venue_scenarios.make_liquidatable(adapter, key)
            (snap,) = await adapter.read_positions([key])
            assert position_risk(snap.position, snap.prices_e8, snap.params,
                                 snap.buffer_ppm).is_liquidatable()
            before = await adapter.read_positions([bystander])
            outcome = await adapter.submit_liquidation(key, PPM)
            assert outcome.position_key == key and outcome.full
            assert outcome.closed_size_e18 == snap.position.size_e18
            assert outcome.settlements and outcome.seized  # its own collateral settles back
            assert all(s.amount > 0 and s.kind in (SettlementKind.SEIZE, SettlementKind.RELEASE)
                       for s in outcome.settlements)
            _check_settlement_stream(await adapter.settlement_events(
                outcome.height, outcome.height), outcome.settlements)
            wider = await adapter.settlement_events(max(outcome.height - 3, 0), outcome.height)
            overlap = await adapter.settlement_events(outcome.height, outcome.height)
            assert [s for s in wider if s.height == outcome.height] == list(overlap)
            with pytest.raises(LiquidationRefused) as info:  # same trigger, again
                await adapter.submit_liquidation(key, PPM)
            assert info.value.no_op
            assert await adapter.read_positions([key]) == []  # flat now
            assert _without_height((await adapter.read_positions([bystander]))[0]) == (
                _without_height(before[0]))  # isolation (I6): the other position is untouched
        finally:
            await venue_scenarios.restore_prices(adapter)

    _run(venue_adapter_factory, body)


def _check_settlement_stream(found: Sequence[Any], expected: Sequence[Any]) -> None:
    ids = [s.settlement_id for s in found]
    assert len(set(ids)) == len(ids)
    assert [s for s in found if s.tx_id == expected[0].tx_id] == list(expected)
    for s in found:
        assert HEX32.match(s.settlement_id) and HEX32.match(s.lock_id)


def test_chain_time_is_monotone(venue_adapter_factory: AdapterFactory,
                                venue_scenarios: VenueScenarios) -> None:
    async def body(adapter: VenueAdapter) -> None:
        times = [await adapter.chain_time()]
        await venue_scenarios.open_position(adapter)  # some blocks pass
        times += [await adapter.chain_time(), await adapter.chain_time()]
        assert times == sorted(times) and times[0] > 0

    _run(venue_adapter_factory, body)


def test_credit_is_once_per_lock(venue_adapter_factory: AdapterFactory,
                                 venue_scenarios: VenueScenarios) -> None:
    async def body(adapter: VenueAdapter) -> None:
        key = await venue_scenarios.open_position(adapter)
        attestation, sigs = await venue_scenarios.attested_lock(adapter, key)
        receipt = await adapter.credit(attestation, sigs)
        assert len(receipt.credited) + len(receipt.queued) == 1
        with pytest.raises(AlreadyConsumed):
            await adapter.credit(attestation, sigs)

    _run(venue_adapter_factory, body)


def test_malformed_liquidation_inputs_are_refused_before_sending(
        venue_adapter_factory: AdapterFactory) -> None:
    async def body(adapter: VenueAdapter) -> None:
        for key, fraction in (("0x1234", PPM), (UNKNOWN_KEY, 0), (UNKNOWN_KEY, PPM + 1)):
            with pytest.raises(InputError):
                await adapter.submit_liquidation(key, fraction)

    _run(venue_adapter_factory, body)
