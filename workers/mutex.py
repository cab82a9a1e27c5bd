"""A Redis lock per key so one chain's poll, or the relayer's batch, runs once at a time.

The token names its holder (``host:pid``). A holder killed with -9 on this host is detected
and its lock taken over at once (RT-01: a pool child killed mid-relay must not block the
redelivered task until the TTL); a holder on another host is waited out by the TTL.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

__all__ = ["holder_dead", "only_one_running"]

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_HOST = socket.gethostname()


def _token() -> str:
    return f"{_HOST}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    """True unless ``pid`` is gone or a zombie (signal 0 probes without touching it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def holder_dead(holder: str | None) -> bool:
    """True if ``holder`` (``host:pid``) is a process on this host that is no longer alive."""
    if not holder:
        return False
    host, _, pid = holder.rpartition(":")
    return host == _HOST and pid.isdigit() and not _pid_alive(int(pid))


@contextmanager
def only_one_running(client: redis.Redis, key: str, *, ttl_s: float = 120.0) -> Iterator[bool]:
    """Yields True if this caller holds the lock (released after), False if a live one does."""
    name, token = f"bh:run:{key}", _token()
    held = bool(client.set(name, token, nx=True, px=int(ttl_s * 1000)))
    if not held:
        holder = client.get(name)
        holder = holder.decode() if isinstance(holder, bytes) else holder
        if holder_dead(holder):
            # SECURITY: compare-and-swap on the dead holder's token, so two stealers can't both win.
            with client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(name)
                    if pipe.get(name) in (holder, holder.encode() if holder else None):
                        pipe.multi()
                        pipe.set(name, token, px=int(ttl_s * 1000))
                        pipe.execute()
                        held = True
                except redis.exceptions.WatchError:
                    held = False
    try:
        yield held
    finally:
        if held:
            client.eval(_RELEASE, 1, name, token)
