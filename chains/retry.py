"""The adapters' retry layer (tenacity): reads and idempotent submits only, and only for
``RetryableError`` (transport trouble); a node's definite answer is never retried here.
Celery's task retries are the slower second layer (DESIGN §4)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from shared.errors import RetryableError
from shared.settings import RetrySettings

__all__ = ["with_retries"]

T = TypeVar("T")


async def with_retries(retry: RetrySettings, attempt_once: Callable[[], Awaitable[T]]) -> T:
    """Run ``attempt_once`` up to ``retry.max_attempts`` times with jittered backoff."""
    retrying = AsyncRetrying(
        stop=stop_after_attempt(retry.max_attempts),
        wait=wait_exponential_jitter(multiplier=retry.initial_s, max=retry.max_s,
                                     jitter=retry.initial_s),
        retry=retry_if_exception_type(RetryableError),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await attempt_once()
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover
