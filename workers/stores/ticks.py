"""The oracle tick history in Redis (implements
:class:`orchestrator.liquidation.buffers.TickHistory`). The oracle's logs are the record: a lost
history is rebuilt from them."""

from __future__ import annotations

from collections.abc import Iterable

import redis

from orchestrator.liquidation.buffers import Tick
from shared.errors import ConfigError, InputError, StoreError
from workers.stores import keys

__all__ = ["RedisTickHistory"]

# Add one observation unless its publish time is already stored; keep the newest ARGV[3].
_ADD = """
if redis.call('ZCOUNT', KEYS[1], ARGV[1], ARGV[1]) > 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
return 1
"""


class RedisTickHistory:
    """Per-market oracle ticks in Redis (sorted set ``<prefix>:<market>`` scored by publish
    time, member ``"<publish_time>:<price_e8>"``) and the log-scan cursor of each market."""

    def __init__(self, client: redis.Redis, *, prefix: str = keys.ticks(), cap: int = 1_024
                 ) -> None:
        if not 2 <= cap <= 1_000_000:
            raise ConfigError("ticks.cap", f"must be within 2..1000000, got {cap}")
        self.redis, self.prefix, self.cap = client, prefix, cap
        self._add = client.register_script(_ADD)

    def _key(self, market: str) -> str:
        return f"{self.prefix}:{market}"

    def record(self, tick: Tick) -> bool:
        """Store ``tick``; False if a tick with its publish time is already stored.

        Raises:
            InputError: a non-positive price or negative time. StoreError: Redis failed.
        """
        for name, value, low in (("price_e8", tick.price_e8, 1),
                                 ("publish_time_s", tick.publish_time_s, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(name, f"must be an int >= {low}, got {value!r}")
        member = f"{tick.publish_time_s}:{tick.price_e8}"
        try:
            added = self._add(keys=[self._key(tick.market)],
                              args=[tick.publish_time_s, member, self.cap])
        except redis.RedisError as exc:
            raise StoreError(f"tick history: {exc}") from exc
        return bool(added)

    def record_many(self, ticks: Iterable[Tick]) -> int:
        """Store ``ticks``; returns how many were new."""
        return sum(self.record(t) for t in ticks)

    def ticks(self, market: str) -> list[Tick]:
        """The stored ticks of ``market``, oldest first."""
        try:
            members = self.redis.zrange(self._key(market), 0, -1)
        except redis.RedisError as exc:
            raise StoreError(f"tick history: {exc}") from exc
        found = []
        for raw in members:
            time_s, _, price = (raw.decode() if isinstance(raw, bytes) else str(raw)).partition(":")
            found.append(Tick(market, int(price), int(time_s)))
        return found

    def cursor(self, market: str) -> int | None:
        """The last oracle block scanned for ``market`` (None: never, or Redis was lost)."""
        try:
            raw = self.redis.get(self._key(market) + ":cursor")
        except redis.RedisError as exc:
            raise StoreError(f"tick history: {exc}") from exc
        return None if raw is None else int(raw)

    def set_cursor(self, market: str, height: int) -> None:
        """Move ``market``'s cursor forward to ``height`` (INVARIANT I4: never backward)."""
        key = self._key(market) + ":cursor"
        script = ("local c = redis.call('GET', KEYS[1]) "
                  "if (not c) or tonumber(c) < tonumber(ARGV[1]) then "
                  "redis.call('SET', KEYS[1], ARGV[1]) end return 1")
        try:
            self.redis.eval(script, 1, key, height)
        except redis.RedisError as exc:
            raise StoreError(f"tick history: {exc}") from exc

    def clear(self, market: str) -> None:
        """Forget ``market``'s ticks and cursor (the next observe rebuilds them from logs)."""
        self.redis.delete(self._key(market), self._key(market) + ":cursor")
