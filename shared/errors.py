"""Bulkhead's error tree. Adapters re-raise library errors as these, at the edge.

::

    OrchestratorError
    ├── ConfigError(ValueError)            invalid settings / manifest; names the field
    ├── InputError(ValueError)             a user value refused; names the field
    ├── RetryableError                     marker: tenacity and Celery retry these
    │   ├── RpcUnavailable(chain, endpoint)
    │   └── NotYetFinal(chain, height, wanted)
    ├── ChainError
    │   ├── ReorgDetected(chain, height, expected_hash, found_hash)
    │   ├── TxRejected(chain, tx_id, reason)
    │   ├── TxExpired(chain, tx_id)
    │   ├── UnsupportedOperation(chain, op)
    │   ├── FeeBudgetExhausted(chain, sender, detail)   a send would bid above the fee cap
    │   │                                  or the key's hourly budget: alarm, dead letter
    │   ├── LogMalformed(chain, reason)    a log that claims to be a lock does not decode
    │   └── UnknownAsset(chain, asset)     a lock names an asset with no configured decimals
    ├── BridgeError
    │   ├── AttestationMalformed(field, reason)   codec refusal (also a ValueError)
    │   ├── QuorumNotReached(have, need)
    │   ├── AlreadyConsumed(key, tx_id)        idempotency hit; callers treat as success
    │   └── SettlementMessageMismatch(field, reason)   a Solana settlement message an
    │                                          attester refuses to sign (also a ValueError)
    ├── DevnetError                        local devnet could not start / is not running
    └── StoreError                         the state store (Redis) failed or refused
"""

from __future__ import annotations

__all__ = [
    "AlreadyConsumed",
    "AttestationMalformed",
    "BridgeError",
    "ChainError",
    "ConfigError",
    "DevnetError",
    "FeeBudgetExhausted",
    "InputError",
    "LogMalformed",
    "NotYetFinal",
    "OrchestratorError",
    "QuorumNotReached",
    "ReorgDetected",
    "RetryableError",
    "RpcUnavailable",
    "SettlementMessageMismatch",
    "StoreError",
    "TxExpired",
    "TxRejected",
    "UnknownAsset",
    "UnsupportedOperation",
]


class OrchestratorError(Exception):
    """Root of every error Bulkhead raises on purpose."""


class ConfigError(OrchestratorError, ValueError):
    """Settings or a manifest are invalid; ``field`` names the offending setting."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class InputError(OrchestratorError, ValueError):
    """A user-supplied value was refused; ``field`` names it. Nothing was written."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class RetryableError(OrchestratorError):
    """Transient: safe to retry the same call (reads, idempotent submits)."""


class RpcUnavailable(RetryableError):
    def __init__(self, chain: str, endpoint: str, detail: str = "") -> None:
        self.chain, self.endpoint = chain, endpoint
        super().__init__(f"{chain}: RPC {endpoint} unavailable{': ' + detail if detail else ''}")


class NotYetFinal(RetryableError):
    def __init__(self, chain: str, height: int, wanted: str) -> None:
        self.chain, self.height, self.wanted = chain, height, wanted
        super().__init__(f"{chain}: height {height} not yet {wanted}")


class ChainError(OrchestratorError):
    """A chain answered, but not what we need."""


class ReorgDetected(ChainError):
    def __init__(self, chain: str, height: int, expected_hash: str, found_hash: str | None) -> None:
        self.chain, self.height = chain, height
        self.expected_hash, self.found_hash = expected_hash, found_hash
        super().__init__(f"{chain}: reorg at {height}: had {expected_hash}, now {found_hash}")


class TxRejected(ChainError):
    def __init__(self, chain: str, tx_id: str | None, reason: str) -> None:
        self.chain, self.tx_id, self.reason = chain, tx_id, reason
        super().__init__(f"{chain}: transaction {tx_id or '(unsent)'} rejected: {reason}")


class TxExpired(ChainError):
    def __init__(self, chain: str, tx_id: str) -> None:
        self.chain, self.tx_id = chain, tx_id
        super().__init__(f"{chain}: transaction {tx_id} expired before landing")


class UnsupportedOperation(ChainError):
    def __init__(self, chain: str, op: str) -> None:
        self.chain, self.op = chain, op
        super().__init__(f"{chain}: {op} is not supported by this adapter")


class FeeBudgetExhausted(ChainError):
    """A transaction would need a fee above the configured cap or the key's hourly budget.

    Nothing was sent at that price; the work stays to be re-derived (never silently dropped).
    """

    def __init__(self, chain: str, sender: str, detail: str) -> None:
        self.chain, self.sender, self.detail = chain, sender, detail
        super().__init__(f"{chain}: fee budget of {sender} exhausted: {detail}")


class DevnetError(OrchestratorError):
    """The local devnet could not be started, reached or stopped."""


class StoreError(OrchestratorError):
    """The state store failed; the chains remain the record."""


class LogMalformed(ChainError):
    """A log that claims to be a lock does not decode. Never guessed at, never credited."""

    def __init__(self, chain: str, reason: str) -> None:
        self.chain, self.reason = chain, reason
        super().__init__(f"{chain}: malformed lock log: {reason}")


class UnknownAsset(ChainError):
    """A lock names an asset whose decimals are not configured; amounts are never guessed."""

    def __init__(self, chain: str, asset: str) -> None:
        self.chain, self.asset = chain, asset
        super().__init__(f"{chain}: asset {asset} has no configured decimals")


class BridgeError(OrchestratorError):
    """Attestation, quorum and settlement failures."""


class AttestationMalformed(BridgeError, ValueError):
    """Attestation bytes or JSON refused by the codec; ``field`` names what was wrong."""

    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason
        super().__init__(f"attestation {field}: {reason}")


class QuorumNotReached(BridgeError):
    def __init__(self, have: int, need: int) -> None:
        self.have, self.need = have, need
        super().__init__(f"quorum not reached: {have} of {need} valid member signatures")


class AlreadyConsumed(BridgeError):
    """Idempotency hit: this lock or settlement was already executed; callers treat as success."""

    def __init__(self, key: str, tx_id: str | None = None) -> None:
        self.key, self.tx_id = key, tx_id
        super().__init__(f"already consumed: {key}")


class SettlementMessageMismatch(BridgeError, ValueError):
    """A proposed Solana settlement message is not exactly the expected multisig transfer.

    ``field`` names the first part that differs (``amount``, ``destination``, ``memo``, ...).
    An attester never signs such a message.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field, self.reason = field, reason
        super().__init__(f"settlement message {field}: {reason}")
