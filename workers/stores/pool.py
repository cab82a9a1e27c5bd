"""The signature pool in Redis (implements :class:`bridges.ports.SignaturePool`): attesters post, the relayer collects (DESIGN §2.6).

Layout (prefix ``bh:``): ``msg:<digest>`` the encoded message + domain (a bundle with no
signatures is not valid wire format, so the message is kept as JSON of its fields);
``sig:<digest>`` hash signer -> 65-byte signature hex; ``digests:<lock key>`` the digests seen
for one lock. More than one digest for a lock means attesters disagree about what happened: it
is kept, reported by ``conflicts()``, and only a digest with a quorum can ever be relayed.
Losing the pool (FLUSHALL) costs re-signing, never a credit: the venue's consumed set decides.
"""

from __future__ import annotations

import json

import redis
import redis.exceptions

from shared.errors import AttestationMalformed, StoreError
from shared.messages import (
    Domain,
    Message,
    as_dict,
    digest,
    message_from_dict,
)
from workers.stores import keys

__all__ = ["RedisSignaturePool"]


class RedisSignaturePool:
    """Implements :class:`bridges.ports.SignaturePool` on Redis."""

    def __init__(self, url: str, prefix: str = keys.PREFIX) -> None:
        self._redis = redis.Redis.from_url(url, decode_responses=True)
        self._p = prefix

    def close(self) -> None:
        self._redis.close()

    def post(self, key: str, message: Message, domain: Domain, signer: str,
             signature: bytes) -> str:
        """Add one attester's signature for ``message`` under the lock/settlement ``key``;
        returns the digest hex. Idempotent: the same signer re-posting overwrites itself."""
        dig = "0x" + digest(message, domain).hex()
        body = json.dumps({"message": {"type": type(message).__name__, **as_dict(message)},
                           "domain": {"chain_id": domain.chain_id,
                                      "verifying_contract": domain.verifying_contract}})
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(keys.message(dig, self._p), body)
        pipe.hset(keys.signatures(dig, self._p), signer.lower(), signature.hex())
        pipe.sadd(keys.digests(key, self._p), dig)
        self._exec(pipe)
        return dig

    def candidates(self, key: str) -> list[tuple[Message, Domain, dict[str, bytes]]]:
        """Every (message, domain, signer -> signature) posted for ``key``, most signed first."""
        try:
            digests = self._redis.smembers(keys.digests(key, self._p))
            out = []
            for dig in digests:
                raw = self._redis.get(keys.message(dig, self._p))
                if raw is None:
                    continue
                try:
                    body = json.loads(raw)
                    sigs = {s: bytes.fromhex(v)
                            for s, v in self._redis.hgetall(keys.signatures(dig, self._p)).items()}
                    out.append((message_from_dict(body["message"]),
                                Domain(**body["domain"]), sigs))
                except (AttestationMalformed, ValueError, KeyError, TypeError):
                    continue  # a corrupted entry never counts toward a quorum
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc
        return sorted(out, key=lambda c: -len(c[2]))

    def signers(self, key: str) -> set[str]:
        return {s for _, _, sigs in self.candidates(key) for s in sigs}

    def conflicts(self, key: str) -> int:
        try:
            return int(self._redis.scard(keys.digests(key, self._p)))
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc

    @staticmethod
    def _exec(pipe: redis.client.Pipeline) -> None:
        try:
            pipe.execute()
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc
