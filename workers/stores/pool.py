"""The signature pool in Redis (implements :class:`bridges.ports.SignaturePool`): attesters post,
the relayer collects (DESIGN §2.6). Key names: :mod:`workers.stores.keys`.

``msg:<digest>`` holds the signed message and its domain as JSON (a bundle without signatures is
not valid wire format); ``sig:<digest>`` signer label -> 65-byte signature hex;
``digests:<item key>`` the digests posted for one lock or settlement. More than one digest for
an item means attesters disagree about what happened: kept, reported by ``conflicts()``, and only
a digest with a verified quorum is ever relayed.

Quorum is detected when it happens: :meth:`RedisSignaturePool.post_many` posts a batch of
signatures in one atomic script, and a digest whose entry count reaches the threshold is pushed
once to the ready stream (``ready``, consumer group ``relayers``; ``ready:<digest>`` marks it).
Counting labels is only a trigger: the relayer verifies every entry once before it sends
(:func:`bridges.verifier.screen`), discards what does not verify (``discarded`` counts them) and
re-arms the trigger. Entries a dead relayer read but never acknowledged are claimed again after
``min_idle_ms``. Losing the pool (FLUSHALL) costs re-signing, never a credit: the venue's
consumed set decides.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Sequence
from typing import Any

import redis
import redis.exceptions

from bridges.ports import Posting, ReadyEntry
from shared.errors import AttestationMalformed, StoreError
from shared.messages import Domain, Message, as_dict, digest, message_from_dict
from workers.stores import keys

__all__ = ["RedisSignaturePool"]

GROUP = "relayers"
STREAM_MAXLEN = 100_000  # as in the script below

# ARGV: prefix, threshold, stream (1/0), then (item key, digest, body, signer, signature hex)
# per posting.
_POST_MANY = """
local p = ARGV[1]
local m = tonumber(ARGV[2])
local stream = ARGV[3] == '1'
local out = {}
for b = 4, #ARGV, 5 do
  local key, dig, body, signer, sig = ARGV[b], ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local sigs = p .. 'sig:' .. dig
  local prev = redis.call('HGET', sigs, signer)
  redis.call('SET', p .. 'msg:' .. dig, body)
  redis.call('HSET', sigs, signer, sig)
  redis.call('SADD', p .. 'digests:' .. key, dig)
  if prev ~= sig and redis.call('HLEN', sigs) >= m then
    if redis.call('SET', p .. 'ready:' .. dig, '1', 'NX', 'EX', 300) then
      if stream then
        redis.call('XADD', p .. 'ready', 'MAXLEN', '~', 100000, '*', 'key', key, 'digest', dig)
      end
      table.insert(out, key)
    end
  end
end
return out
"""


def _body(message: Message, domain: Domain) -> str:
    return json.dumps({"message": {"type": type(message).__name__, **as_dict(message)},
                       "domain": {"chain_id": domain.chain_id,
                                  "verifying_contract": domain.verifying_contract}})


class RedisSignaturePool:
    """Implements :class:`bridges.ports.SignaturePool` on Redis."""

    def __init__(self, url: str, prefix: str = keys.PREFIX, *,
                 consumer: str | None = None) -> None:
        self._redis = redis.Redis.from_url(url, decode_responses=True)
        self._p = prefix
        self._post_many = self._redis.register_script(_POST_MANY)
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"

    def close(self) -> None:
        self._redis.close()

    def _do(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc

    # ----- posting ------------------------------------------------------------------------

    def post(self, key: str, message: Message, domain: Domain, signer: str,
             signature: bytes) -> str:
        """Add one signature for ``message`` under ``key``; returns the digest hex. Idempotent:
        the same signer re-posting overwrites itself. Does not trigger the ready stream (use
        :meth:`post_many` with a threshold for that)."""
        dig = "0x" + digest(message, domain).hex()
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(keys.message(dig, self._p), _body(message, domain))
        pipe.hset(keys.signatures(dig, self._p), signer.lower(), signature.hex())
        pipe.sadd(keys.digests(key, self._p), dig)
        self._do(pipe.execute)
        return dig

    def post_many(self, postings: Sequence[Posting], threshold: int, *,
                  stream: bool = True) -> list[str]:
        """Post every signature in one atomic script; returns the item keys whose digest just
        reached ``threshold`` entries (each pushed once to the ready stream, with ``stream``)."""
        if not postings:
            return []
        argv: list[Any] = [self._p, threshold, 1 if stream else 0]
        for item in postings:
            argv += [item.key, item.digest, _body(item.message, item.domain),
                     item.signer.lower(), item.signature.hex()]
        return [str(k) for k in self._do(self._post_many, keys=[], args=argv)]

    def signatures_of(self, pairs: Sequence[tuple[str, str]]) -> list[bytes | None]:
        """The signature stored under each (digest, signer label), or None."""
        pipe = self._redis.pipeline(transaction=False)
        for dig, signer in pairs:
            pipe.hget(keys.signatures(dig, self._p), signer.lower())
        out: list[bytes | None] = []
        for raw in self._do(pipe.execute):
            try:
                out.append(None if raw is None else bytes.fromhex(raw))
            except ValueError:
                out.append(None)  # junk under a label: not a signature
        return out

    # ----- reading ------------------------------------------------------------------------

    def entries(self, dig: str) -> tuple[Message, Domain, dict[str, bytes]] | None:
        """The message, domain and signer label -> signature posted under one digest; None if
        the message is missing or does not hash to ``dig`` (Redis content is input too)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.get(keys.message(dig, self._p))
        pipe.hgetall(keys.signatures(dig, self._p))
        raw, sigs = self._do(pipe.execute)
        if raw is None:
            return None
        try:
            body = json.loads(raw)
            message = message_from_dict(body["message"])
            domain = Domain(**body["domain"])
        except (AttestationMalformed, ValueError, KeyError, TypeError):
            return None
        # SECURITY: the stored message must be the one the digest names, or it is junk.
        if "0x" + digest(message, domain).hex() != dig:
            return None
        parsed: dict[str, bytes] = {}
        for signer, value in sigs.items():
            try:
                parsed[signer] = bytes.fromhex(value)
            except ValueError:
                parsed[signer] = b""  # junk: kept so the screen can discard and count it
        return message, domain, parsed

    def candidates(self, key: str) -> list[tuple[Message, Domain, dict[str, bytes]]]:
        """Every (message, domain, signer -> signature) posted for ``key``, most signed first."""
        out = [found for dig in self._do(self._redis.smembers, keys.digests(key, self._p))
               if (found := self.entries(dig)) is not None]
        return sorted(out, key=lambda c: -len(c[2]))

    def digests(self, key: str) -> list[str]:
        return sorted(self._do(self._redis.smembers, keys.digests(key, self._p)))

    def signers(self, key: str) -> set[str]:
        """Signer labels posted under ``key`` (unverified: for display only)."""
        return {s for _, _, sigs in self.candidates(key) for s in sigs}

    def conflicts(self, key: str) -> int:
        return int(self._do(self._redis.scard, keys.digests(key, self._p)))

    # ----- what the relayer found -----------------------------------------------------------

    def discard(self, dig: str, labels: Iterable[str]) -> int:
        """Remove entries that did not verify, count them and re-arm the ready trigger."""
        labels = list(labels)
        pipe = self._redis.pipeline(transaction=True)
        if labels:
            pipe.hdel(keys.signatures(dig, self._p), *labels)
            pipe.incrby(keys.discarded(self._p), len(labels))
        pipe.delete(keys.ready_marker(dig, self._p))
        self._do(pipe.execute)
        return len(labels)

    def discard_message(self, dig: str) -> None:
        """Drop a stored message that does not hash to its digest (an honest re-post restores
        it) and count it."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(keys.message(dig, self._p), keys.ready_marker(dig, self._p))
        pipe.incrby(keys.discarded(self._p), 1)
        self._do(pipe.execute)

    def discarded(self) -> int:
        return int(self._do(self._redis.get, keys.discarded(self._p)) or 0)

    # ----- the ready stream -----------------------------------------------------------------

    def _group(self) -> None:
        try:
            self._redis.xgroup_create(keys.ready(self._p), GROUP, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise StoreError(f"redis: {exc}") from exc
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc

    def mark_ready(self, item_keys: Iterable[str]) -> None:
        """Ask the relayer to look at these items whatever the counts say (the reconciler's
        backstop for a trigger lost with its entry)."""
        pipe = self._redis.pipeline(transaction=False)
        for key in item_keys:
            pipe.xadd(keys.ready(self._p), {"key": key, "digest": ""},
                      maxlen=STREAM_MAXLEN, approximate=True)
        self._do(pipe.execute)

    def read_ready(self, count: int = 1_000, min_idle_ms: int = 15_000) -> list[ReadyEntry]:
        """Entries to relay: first those a dead consumer read and never acknowledged (idle for
        ``min_idle_ms``), then new ones."""
        for attempt in range(2):
            try:
                claimed = self._redis.xautoclaim(keys.ready(self._p), GROUP, self.consumer,
                                                 min_idle_time=min_idle_ms, start_id="0-0",
                                                 count=count)
                fresh = self._redis.xreadgroup(GROUP, self.consumer, {keys.ready(self._p): ">"},
                                               count=count)
                break
            except redis.exceptions.ResponseError as exc:
                if "NOGROUP" not in str(exc) or attempt:
                    raise StoreError(f"redis: {exc}") from exc
                self._group()  # first use, or the stream was lost (FLUSHALL)
            except redis.exceptions.RedisError as exc:
                raise StoreError(f"redis: {exc}") from exc
        items = list(claimed[1]) if claimed else []
        for _stream, messages in fresh or []:
            items += list(messages)
        return [ReadyEntry(entry_id, fields.get("key", ""), fields.get("digest", ""))
                for entry_id, fields in items if fields]

    def ack(self, entry_ids: Sequence[str]) -> None:
        if not entry_ids:
            return
        pipe = self._redis.pipeline(transaction=False)
        pipe.xack(keys.ready(self._p), GROUP, *entry_ids)
        pipe.xdel(keys.ready(self._p), *entry_ids)
        self._do(pipe.execute)
