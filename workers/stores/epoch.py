"""The store's incarnation, so a scan that read its cursor before a reset cannot write it after.

A watcher reads its cursor, reads a range of chain history, records what it found, then moves
the cursor. If Redis is flushed (RT-04) or restored from an older snapshot between the first
and the last step, the records written before the reset are gone while a plain cursor write
would skip past them for good. The epoch is a random token kept under one key and created on
first use (``SET NX``); a reset takes it away. A scan takes the epoch before it reads its
cursor, and its cursor write goes through only while that same token is still there (one Lua
step, atomic in Redis); otherwise the write is refused and the next scan starts over from the
(now absent) cursor, re-recording everything.
"""

from __future__ import annotations

import secrets
from typing import Any

import redis

__all__ = ["current_epoch", "set_if_epoch"]

_SET_IF_EPOCH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0
"""


def current_epoch(client: redis.Redis, epoch_key: str) -> str:
    """The current token, created if the store has none (a fresh or a reset store)."""
    client.set(epoch_key, secrets.token_hex(8), nx=True)
    raw: Any = client.get(epoch_key)
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def set_if_epoch(client: redis.Redis, epoch_key: str, key: str, value: int | str,
                 epoch: str) -> bool:
    """SET ``key`` to ``value`` iff the store is still in ``epoch``; False if it was reset."""
    return bool(client.eval(_SET_IF_EPOCH, 2, epoch_key, key, epoch, str(value)))
