"""Liquidation plan leases in Redis (implements
:class:`orchestrator.liquidation.claims.ClaimStore`).

The value of ``plan:<id>`` names its holder (``host:pid``); a holder on this host that is no
longer alive is detected and its lease taken over at once, one on another host is waited out
by the TTL. Every change is a compare-and-set on the holder, so two takers never both win.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Sequence

import redis

from workers.mutex import holder_dead
from workers.stores import keys

__all__ = ["RedisClaims"]

# KEYS[1] lease; ARGV: token, ttl ms, dead holder (or "") -> 1 if held by token now
_TAKE = """
local cur = redis.call('GET', KEYS[1])
if (not cur) or cur == ARGV[1] or (ARGV[3] ~= '' and cur == ARGV[3]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisClaims:
    def __init__(self, client: redis.Redis, prefix: str = keys.PREFIX,
                 token: str | None = None) -> None:
        self._redis, self._p = client, prefix
        self.token = token or f"{socket.gethostname()}:{os.getpid()}"
        self._take = client.register_script(_TAKE)
        self._release = client.register_script(_RELEASE)

    def _dead_holder(self, name: str) -> str:
        raw = self._redis.get(name)
        holder = raw.decode() if isinstance(raw, bytes) else raw
        return holder if holder and holder != self.token and holder_dead(holder) else ""

    def claim(self, plan_id: str, ttl_ms: int) -> bool:
        name = keys.plan_claim(plan_id, self._p)
        if self._redis.set(name, self.token, nx=True, px=ttl_ms):
            return True
        return bool(self._take(keys=[name], args=[self.token, ttl_ms, self._dead_holder(name)]))

    def hold(self, plan_ids: Sequence[str], ttl_ms: int) -> list[bool]:
        out = []
        for plan_id in plan_ids:
            name = keys.plan_claim(plan_id, self._p)
            taken = self._take(keys=[name], args=[self.token, ttl_ms, self._dead_holder(name)])
            out.append(bool(taken))
        return out

    def release(self, plan_ids: Iterable[str]) -> None:
        for plan_id in plan_ids:
            self._release(keys=[keys.plan_claim(plan_id, self._p)], args=[self.token])
