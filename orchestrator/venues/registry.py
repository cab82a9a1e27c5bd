"""Find venue adapters by name: built-ins plus the ``bulkhead.venues`` entry-point group.

A partner ships its adapter as a package that declares, in its own ``pyproject.toml``::

    [project.entry-points."bulkhead.venues"]
    acme = "acme_bulkhead.venue:open_acme_venue"

The target is a :data:`VenueFactory`: an async callable taking the process's settings (read
once at the process edge) and keyword options, returning a connected :class:`VenueAdapter`.
The reference venue is built in as ``reference`` (its package declares it too). Targets are
imported only when looked up, so listing names never imports a chain library.

# SECURITY: a name maps to exactly one target. An entry point that claims a built-in's name,
# or two packages claiming one name, make that name refuse to load (``VenueConflict``): an
# installed package can never silently replace the adapter the risk worker liquidates with.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any, cast

from orchestrator.venues.errors import UnknownVenue, VenueConflict
from orchestrator.venues.protocol import RiskTuning, VenueAdapter
from shared.errors import ConfigError

if TYPE_CHECKING:
    from shared.settings import Settings

__all__ = [
    "BUILTIN_VENUES",
    "ENTRY_POINT_GROUP",
    "VenueFactory",
    "available_venues",
    "open_venue",
    "venue_factory",
]

ENTRY_POINT_GROUP = "bulkhead.venues"
BUILTIN_VENUES: dict[str, str] = {
    "reference": "orchestrator.venues.reference:open_reference_venue",
}

VenueFactory = Callable[..., Awaitable[VenueAdapter]]


def _candidates() -> dict[str, list[EntryPoint]]:
    found: dict[str, list[EntryPoint]] = {}
    for name, value in BUILTIN_VENUES.items():
        found[name] = [EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        same = found.setdefault(ep.name, [])
        if all(other.value != ep.value for other in same):
            same.append(ep)
    return found


def available_venues() -> list[str]:
    """Names of every registered venue adapter, sorted."""
    return sorted(_candidates())


def venue_factory(name: str) -> VenueFactory:
    """The factory registered as ``name`` (imported now).

    Raises:
        UnknownVenue: nothing is registered under ``name`` (the error lists what is).
        VenueConflict: several different targets claim ``name``.
        ConfigError: the target cannot be imported or is not callable.
    """
    candidates = _candidates()
    if name not in candidates:
        raise UnknownVenue(name, sorted(candidates))
    eps = candidates[name]
    if len(eps) > 1:
        raise VenueConflict(name, [ep.value for ep in eps])
    try:
        target = eps[0].load()
    except (ImportError, AttributeError) as exc:
        raise ConfigError("venue", f"venue adapter {name!r} ({eps[0].value}) does not load: "
                                   f"{exc}") from exc
    if not callable(target):
        raise ConfigError("venue", f"venue adapter {name!r} ({eps[0].value}) is not callable")
    return cast(VenueFactory, target)


async def open_venue(name: str, settings: Settings, *, sender_key: str | None = None,
                     tuning: RiskTuning | None = None, **options: Any) -> VenueAdapter:
    """Build and connect the adapter registered as ``name``.

    Args:
        settings: the process's settings (read once at the edge).
        sender_key: the key that signs the adapter's transactions (liquidations, credits);
            None gives a read-only adapter.
        tuning: off-chain risk tuning for the snapshots' parameters.
        options: adapter-specific keyword options.

    Raises:
        UnknownVenue, VenueConflict, ConfigError: see :func:`venue_factory`; ConfigError
        also when the factory returns something that is not a :class:`VenueAdapter`.
    """
    adapter = await venue_factory(name)(settings, sender_key=sender_key, tuning=tuning,
                                        **options)
    if not isinstance(adapter, VenueAdapter):
        raise ConfigError("venue", f"venue adapter {name!r} returned {type(adapter).__name__}, "
                                   "which does not implement VenueAdapter")
    return adapter
