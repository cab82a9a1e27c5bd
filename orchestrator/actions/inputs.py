"""Pure validators for values a user types (CLI flags, API parameters).

Each returns the canonical value or raises :class:`InputError` naming the field. Amounts are
accepted only as integer base units or decimal strings with at most the asset's decimals:
a value that would need rounding is refused, never rounded (INP-02, NUM-01).
"""

from __future__ import annotations

import re
from decimal import InvalidOperation

from eth_utils import is_checksum_address, to_checksum_address

from shared.errors import InputError
from shared.ids import Bytes32Hex

__all__ = [
    "MAX_UINT256",
    "format_amount",
    "parse_amount",
    "parse_base_units",
    "parse_bytes32",
    "parse_chain_id",
    "parse_evm_address",
]

MAX_UINT256 = 2**256 - 1
_DECIMAL = re.compile(r"^(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?$")
_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_HEX20 = re.compile(r"^0x[0-9a-fA-F]{40}$")


def parse_amount(text: str, decimals: int, *, field: str = "amount") -> int:
    """Decimal string in whole tokens (``"125.5"``) -> base units, exactly.

    Refuses signs, exponents, NaN/inf, empty strings, zero, more fractional digits than
    ``decimals`` and values above uint256.
    """
    raw = text.strip()
    match = _DECIMAL.match(raw)
    if match is None:
        raise InputError(field, f"{text!r} is not a plain decimal number (digits and one '.')")
    frac = match.group("frac") or ""
    if len(frac) > decimals:
        raise InputError(field, f"{text!r} has {len(frac)} decimals; the asset has {decimals}")
    try:
        units = int(match.group("int") + frac.ljust(decimals, "0"))
    except (ValueError, InvalidOperation) as exc:  # pragma: no cover - regex guarantees digits
        raise InputError(field, f"{text!r} is not a number") from exc
    return _in_range(units, field, text)


def parse_base_units(text: str, *, field: str = "amount") -> int:
    """Integer base units (``"125500000"``); no decimals, sign or exponent."""
    raw = text.strip()
    if not raw.isdigit() or not raw.isascii():
        raise InputError(field, f"{text!r} is not an integer number of base units")
    return _in_range(int(raw), field, text)


def _in_range(units: int, field: str, text: str) -> int:
    if units == 0:
        raise InputError(field, "must be greater than zero")
    if units > MAX_UINT256:
        raise InputError(field, f"{text!r} exceeds uint256")
    return units


def format_amount(units: int, decimals: int) -> str:
    """Base units -> exact decimal string (no float on the way)."""
    whole, frac = divmod(units, 10**decimals)
    digits = str(frac).rjust(decimals, "0").rstrip("0") if decimals else ""
    return f"{whole}.{digits}" if digits else str(whole)


def parse_evm_address(text: str, *, field: str = "address", allow_zero: bool = False) -> str:
    """0x + 40 hex; mixed case must be a valid EIP-55 checksum. Returns the checksummed form."""
    raw = text.strip()
    if not _HEX20.match(raw):
        raise InputError(field, f"{text!r} is not a 0x-prefixed 20-byte hex address")
    body = raw[2:]
    mixed = body != body.lower() and body != body.upper()
    if mixed and not is_checksum_address(raw):
        raise InputError(field, f"{text!r} has a bad EIP-55 checksum")
    if not allow_zero and int(body, 16) == 0:
        raise InputError(field, "the zero address is not allowed")
    return str(to_checksum_address(raw))


def parse_bytes32(text: str, *, field: str, allow_zero: bool = False) -> Bytes32Hex:
    """0x + 64 hex -> lowercase canonical form; the zero value is refused by default."""
    raw = text.strip()
    if not _HEX32.match(raw):
        raise InputError(field, f"{text!r} is not 0x followed by 64 hex digits")
    if not allow_zero and int(raw, 16) == 0:
        raise InputError(field, "must not be zero")
    return Bytes32Hex(raw.lower())


def parse_chain_id(text: str, *, field: str = "chain_id") -> int:
    """Decimal chain id in (0, 2**64); hex strings like ``"0x1"`` are refused as ambiguous."""
    raw = text.strip()
    if not raw.isdigit() or not raw.isascii():
        raise InputError(field, f"{text!r} is not a decimal chain id")
    value = int(raw)
    if not 0 < value < 2**64:
        raise InputError(field, f"{value} is outside 1..2**64-1")
    return value
