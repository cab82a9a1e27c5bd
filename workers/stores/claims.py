"""Liquidation plan claims in Redis (implements :class:`orchestrator.liquidation.claims.ClaimStore`)."""

from __future__ import annotations

import redis

from workers.stores import keys

__all__ = ["RedisClaims"]


class RedisClaims:
    def __init__(self, client: redis.Redis, prefix: str = keys.PREFIX) -> None:
        self._redis, self._p = client, prefix

    def claim(self, plan_id: str, ttl_ms: int) -> bool:
        return bool(self._redis.set(keys.plan_claim(plan_id, self._p), 1, nx=True, px=ttl_ms))
