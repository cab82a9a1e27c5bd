"""Query-parameter models of the JSON API (pure): every input accepted or refused (INP-02).

Pydantic's lax parsing would take ``limit=1.0``, ``+5``, ``1_0`` or `` 5``; here integers are
digits only, booleans are ``true``/``false`` only, addresses must carry a valid EIP-55 checksum
when mixed-case and are never zero, and a chain is a configured key or a decimal chain id
(``0x1`` is refused as ambiguous). Unknown parameters are refused (``extra="forbid"``), so a
typo never silently widens a filter. Every refusal is a 422 whose ``loc`` names the parameter.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from bulkhead.api.paging import CursorKey, decode_cursor
from orchestrator.actions.inputs import parse_bytes32, parse_chain_id, parse_evm_address
from shared.locks import LockState
from shared.settings import CHAIN_KEY, Settings

__all__ = [
    "AttestationsQuery",
    "LiquidationsQuery",
    "LocksQuery",
    "PositionsQuery",
    "owner_matches",
    "refuse",
    "resolve_chain",
    "single_valued",
]

# Validators raise ValueError, not TypeError: pydantic turns only ValueError into a 422.
_DIGITS = re.compile(r"[0-9]{1,18}")
_CHAIN_KEY = re.compile(CHAIN_KEY)
MAX_LIMIT = 500


def _strict_int(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a decimal integer")  # noqa: TRY004
    if isinstance(value, int):
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    raise ValueError("must be a plain decimal integer (digits only, at most 18)")


def _strict_bool(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("must be true or false")


def _chain(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be a chain key or a decimal chain id")  # noqa: TRY004
    if value.isascii() and value.isdigit():
        return str(parse_chain_id(value, field="chain"))
    if not _CHAIN_KEY.fullmatch(value):
        raise ValueError(f"{value[:40]!r} is neither a chain key (e.g. evm-a) nor a decimal "
                         "chain id")
    return value


def _owner(value: Any) -> Any:
    """A 20-byte EVM address (checksummed form back) or a 32-byte id (lowercase back)."""
    if not isinstance(value, str):
        raise ValueError("must be 0x + 40 or 64 hex digits")  # noqa: TRY004
    if len(value) == 42:
        return parse_evm_address(value, field="owner")
    return parse_bytes32(value, field="owner")


def _position(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be 0x + 64 hex digits")  # noqa: TRY004
    return parse_bytes32(value, field="position")


# Field() before the validator: pydantic then emits minimum/maximum/pattern into the OpenAPI
# document (after it, they would be left as unknown keywords that clients ignore).
Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description="Page size, 1..500."),
                  BeforeValidator(_strict_int)]
Offset = Annotated[int, Field(ge=0, le=10**9, description="Items to skip; or use `cursor`."),
                   BeforeValidator(_strict_int)]
StrictBool = Annotated[bool, Field(description="true or false"), BeforeValidator(_strict_bool)]
ChainParam = Annotated[str, Field(pattern=r"^([a-z][a-z0-9-]{0,31}|[0-9]{1,20})$",
                                  description="Chain key (evm-a) or decimal chain id (31337)."),
                       BeforeValidator(_chain)]
OwnerParam = Annotated[str, Field(pattern=r"^0x([0-9a-fA-F]{40}|[0-9a-fA-F]{64})$",
                                  description="EVM address (EIP-55 if mixed case, not zero) "
                                              "or 0x + 64 hex (not zero)."),
                       BeforeValidator(_owner)]
PositionParam = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$",
                                     description="Position key: 0x + 64 hex, not zero."),
                          BeforeValidator(_position)]


class _Paged(BaseModel):
    """``limit`` plus either ``cursor`` (from a previous ``next``) or ``offset``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    cursor_shape: ClassVar[tuple[type, ...]] = (int, str)

    limit: Limit = 100
    cursor: Annotated[str | None, Field(max_length=512,
                                        description="`next` of the previous page.")] = None
    offset: Offset | None = None

    @field_validator("cursor")
    @classmethod
    def _cursor_is_ours(cls, value: str | None) -> str | None:
        if value is not None:
            decode_cursor(value, cls.cursor_shape)
        return value

    @field_validator("offset")
    @classmethod
    def _not_both(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("cursor") is not None:
            raise ValueError("use cursor or offset, not both")
        return value

    def after(self) -> CursorKey | None:
        return None if self.cursor is None else decode_cursor(self.cursor, self.cursor_shape)


class LocksQuery(_Paged):
    chain: ChainParam | None = None
    state: LockState | None = None
    owner: OwnerParam | None = None
    position: PositionParam | None = None


class AttestationsQuery(_Paged):
    chain: ChainParam | None = None
    state: LockState | None = None
    position: PositionParam | None = None


class PositionsQuery(_Paged):
    cursor_shape: ClassVar[tuple[type, ...]] = (str,)

    owner: OwnerParam | None = None
    liquidatable: StrictBool | None = None


class LiquidationsQuery(_Paged):
    cursor_shape: ClassVar[tuple[type, ...]] = (int, int)

    position: PositionParam | None = None


def refuse(where: str, name: str, message: str) -> RequestValidationError:
    """A 422 in FastAPI's own shape, naming the parameter."""
    return RequestValidationError([{"loc": (where, name), "msg": message,
                                    "type": "value_error"}])


def single_valued(request: Request) -> None:
    """Refuse ``?limit=1&limit=9``: which one wins would otherwise be an accident."""
    for name in set(request.query_params.keys()):
        if len(request.query_params.getlist(name)) > 1:
            raise refuse("query", name, "given more than once")


def resolve_chain(settings: Settings, value: str) -> str:
    """The configured chain key for ``value`` (a key or a decimal chain id)."""
    if value.isdigit():
        for key, cfg in settings.chains.items():
            if cfg.chain_id == int(value):
                return key
    elif value in settings.chains:
        return value
    known = ", ".join(sorted(settings.chains)) or "none"
    raise refuse("query", "chain", f"unknown chain {value!r}; configured: {known}")


def owner_matches(owner: str, source_owner: str, beneficiary: str) -> bool:
    """An EVM address matches a lock's beneficiary or its (left-padded) source owner; a 32-byte
    id matches the source owner (e.g. a Solana pubkey)."""
    if len(owner) == 42:
        padded = "0x" + "00" * 12 + owner[2:].lower()
        return beneficiary.lower() == owner.lower() or source_owner.lower() == padded
    return source_owner.lower() == owner
