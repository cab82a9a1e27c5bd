"""Splitting the risk screen across workers (pure).

Positions are split into ``shards`` shards by their key (a keccak hash, so the split is even
and stable); every tick a worker screens one shard: the one screened longest ago that it can
lock (:func:`stalest_first`). With several risk workers each tick's shards are screened in
parallel, and the shard of a worker that died is simply the stalest one at the next tick of a
live worker: nothing needs to be handed over, since a screen holds no state between ticks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shared.errors import InputError

__all__ = ["keys_of", "shard_of", "stalest_first"]


def shard_of(position_key: str, shards: int) -> int:
    """The shard of a ``0x``-hex position key among ``shards`` (>= 1).

    Raises:
        InputError: a key that is not hex, or ``shards`` < 1.
    """
    if shards < 1:
        raise InputError("shards", f"must be >= 1, got {shards}")
    try:
        return int(position_key.removeprefix("0x"), 16) % shards
    except ValueError:
        raise InputError("position_key", f"not hex: {position_key!r}") from None


def stalest_first(screened_ms: Mapping[int, int], shards: int) -> list[int]:
    """Every shard, the ones never screened first, then by the time of their last screen
    (oldest first), ties by shard number."""
    return sorted(range(shards), key=lambda s: (screened_ms.get(s, -1), s))


def keys_of(shard: int, keys: Iterable[str], shards: int) -> list[str]:
    """The keys of ``keys`` in ``shard``, in their order."""
    return [k for k in keys if shard_of(k, shards) == shard]
