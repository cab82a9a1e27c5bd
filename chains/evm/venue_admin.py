"""The venue client's operator part (owner; DESIGN §2.7, §5 ``bulkhead admin``): pause,
rate limits, lane ceilings, roles, held credits. I/O.
"""

from __future__ import annotations

from eth_utils.address import to_checksum_address

from chains.evm.bridge_codec import (
    CREDIT_QUEUED_TOPIC0,
    CreditQueuedEvent,
)
from chains.evm.contract import (
    address_arg,
    b32,
)
from chains.evm.venue_base import VenueContract
from shared.errors import (
    InputError,
)

__all__ = ["VenueAdmin"]


class VenueAdmin(VenueContract):
    """Owner actions and governor reads on ``IsolatedMarginVenue``."""

    # ----- operator admin (owner; DESIGN §2.7, §5 `bulkhead admin`) --------------------------

    async def owner(self) -> str:
        """The venue's owner: the only account that may pause, set limits and ceilings."""
        return str(to_checksum_address(await self._view("owner")))

    async def is_paused(self) -> bool:
        """True while credits, queued releases and user trades are stopped."""
        return bool(await self._view("paused"))

    async def pause(self, *, timeout_s: float = 60) -> str:
        """Owner: stop credits, ``releaseQueued`` and user trades (liquidations go on).
        Returns the tx hash. Raises: TxRejected (EnforcedPause, OwnableUnauthorizedAccount)."""
        return await self._send("pause", (), timeout_s)

    async def unpause(self, *, timeout_s: float = 60) -> str:
        """Owner: resume after ``pause``. Returns the tx hash.
        Raises: TxRejected (ExpectedPause, OwnableUnauthorizedAccount)."""
        return await self._send("unpause", (), timeout_s)

    async def chain_time(self) -> tuple[int, int]:
        """(height, timestamp) of the latest block: the clock ``releaseQueued`` is judged by."""
        block = await self._call("getBlock", lambda w3: w3.eth.get_block("latest"))
        return int(block["number"]), int(block["timestamp"])

    async def rate_limit(self, src_chain_id: int, src_asset: bytes) -> dict[str, int]:
        """The governor of (src_chain_id, src_asset), source base units: ``cap``,
        ``large_threshold``, ``delay_s``, ``window_start`` (chain time) and ``used`` in that
        window. All zero: no limit set (credits of that pair are refused, NoRateLimit)."""
        cap, large, delay, window_start, used = await self._view(
            "rateLimit", self._admin_uint(src_chain_id, 64, "src_chain_id"),
            b32(src_asset, "src_asset"))
        return {"cap": int(cap), "large_threshold": int(large), "delay_s": int(delay),
                "window_start": int(window_start), "used": int(used)}

    async def lane_asset(self, src_chain_id: int, src_vault: bytes,
                         src_asset: bytes) -> dict[str, int]:
        """The accountant's lane (chain, vault, asset), source base units: ``registered``
        (0/1), ``decimals``, ``ceiling`` and ``outstanding`` (credited incl. queued - released -
        seized)."""
        registered, decimals, ceiling, outstanding = await self._view(
            "laneAsset", self._admin_uint(src_chain_id, 64, "src_chain_id"),
            b32(src_vault, "src_vault"), b32(src_asset, "src_asset"))
        return {"registered": int(bool(registered)), "decimals": int(decimals),
                "ceiling": int(ceiling), "outstanding": int(outstanding)}

    async def set_rate_limit(self, src_chain_id: int, src_asset: bytes, cap: int,
                             large_threshold: int, delay_s: int, *,
                             timeout_s: float = 60) -> str:
        """Owner: set the governor of (src_chain_id, src_asset). Returns the tx hash.

        Raises:
            InputError: not 0 < large_threshold <= cap < 2^128, or delay_s not in 0..2^64-1
                (checked before anything is sent). TxRejected: OwnableUnauthorizedAccount.
        """
        cap = self._admin_uint(cap, 128, "cap")
        large = self._admin_uint(large_threshold, 128, "large_threshold")
        if cap == 0 or large == 0:
            raise InputError("cap" if cap == 0 else "large_threshold", "must be greater than zero")
        if large > cap:
            raise InputError("large_threshold", f"{large} is above the cap {cap}")
        args = (self._admin_uint(src_chain_id, 64, "src_chain_id"), b32(src_asset, "src_asset"), cap,
                large, self._admin_uint(delay_s, 64, "delay_s"))
        return await self._send("setRateLimit", args, timeout_s)

    async def set_lane_ceiling(self, src_chain_id: int, src_vault: bytes, src_asset: bytes,
                               ceiling: int, *, timeout_s: float = 60) -> str:
        """Owner: the accountant ceiling of a registered lane (source units; below the
        outstanding amount it blocks new credits until releases bring it down).

        Raises: InputError (ceiling not in 0..2^128-1), TxRejected (UnregisteredLaneAsset,
        OwnableUnauthorizedAccount).
        """
        args = (self._admin_uint(src_chain_id, 64, "src_chain_id"), b32(src_vault, "src_vault"),
                b32(src_asset, "src_asset"), self._admin_uint(ceiling, 128, "ceiling"))
        return await self._send("setLaneCeiling", args, timeout_s)

    async def queued_events(self, start: int, end: int) -> list[CreditQueuedEvent]:
        """CreditQueued logs (credits held by the governor) in ``start..end``, in chain order."""
        found = [self._decode(raw) for raw in await self._logs(start, end,
                                                               (CREDIT_QUEUED_TOPIC0,))]
        return [e for e in found if isinstance(e, CreditQueuedEvent)]

    @staticmethod
    def _admin_uint(value: int, bits: int, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**bits:
            raise InputError(name, f"must be an int in 0..2^{bits}-1, got {value!r}")
        return value

    async def set_pauser(self, account: str, allowed: bool = True, *,
                         timeout_s: float = 60) -> str:
        """Owner: allow (or revoke) ``account`` to pause lanes. Returns the tx hash."""
        return await self._send("setPauser", (address_arg(account), bool(allowed)), timeout_s)

    async def pause_lane(self, src_chain_id: int, src_vault: bytes, src_asset: bytes, *,
                         timeout_s: float = 60) -> str:
        """Pauser (or owner): stop credits on one lane. Returns the tx hash.
        Raises: TxRejected (NotPauser)."""
        args = (self._admin_uint(src_chain_id, 64, "src_chain_id"), b32(src_vault, "src_vault"),
                b32(src_asset, "src_asset"))
        return await self._send("pauseLane", args, timeout_s)

    async def resume_lane(self, src_chain_id: int, src_vault: bytes, src_asset: bytes, *,
                          timeout_s: float = 60) -> str:
        """Owner: resume a paused lane. Returns the tx hash."""
        args = (self._admin_uint(src_chain_id, 64, "src_chain_id"), b32(src_vault, "src_vault"),
                b32(src_asset, "src_asset"))
        return await self._send("resumeLane", args, timeout_s)

    async def lane_paused(self, src_chain_id: int, src_vault: bytes, src_asset: bytes) -> bool:
        key = await self._view("laneAssetKeyOf", self._admin_uint(src_chain_id, 64,
                                                                   "src_chain_id"),
                               b32(src_vault, "src_vault"), b32(src_asset, "src_asset"))
        return bool(await self._view("lanePaused", key))

    async def is_pauser(self, account: str) -> bool:
        return bool(await self._view("isPauser", address_arg(account)))
