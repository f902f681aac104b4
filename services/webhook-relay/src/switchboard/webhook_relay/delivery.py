"""One event to one endpoint over HTTP: a signed POST, and the retries around it.

The HTTP client is aiohttp; the retry loop is tenacity (exponential backoff with jitter,
a wait that honours ``Retry-After``, and a stop measured from when the event was stored,
so a restarted relay does not start the clock again). 2xx is delivered; 5xx, 408, 425,
429, timeouts and connection errors are retried; any other status is a refusal that
retrying will not change (a dead letter at once). Redirects are not followed: a signed
event goes to the configured URL or nowhere.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type
from tenacity.wait import wait_base, wait_exponential_jitter

from switchboard.webhook_relay import signing
from switchboard.webhook_relay.endpoints import Endpoint
from switchboard.webhook_relay.payload import CONTENT_TYPE

RETRIED_STATUSES = frozenset({408, 425, 429})
USER_AGENT = "switchboard-webhook-relay/0.1"
MAX_ERROR_LEN = 200


class Retryable(Exception):
    """An attempt that may succeed later (5xx, 408/425/429, timeout, connection error)."""

    def __init__(self, status: int | None, error: str, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error[:MAX_ERROR_LEN]
        self.retry_after = retry_after


class Refused(Exception):
    """The receiver refused the event in a way retrying will not change."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error[:MAX_ERROR_LEN]


def retry_after_s(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - now)


class Poster:
    """Signs and POSTs one attempt; at most ``concurrency`` attempts at once."""

    def __init__(
        self, session: aiohttp.ClientSession, *, timeout_s: float, concurrency: int
    ) -> None:
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._slots = asyncio.Semaphore(concurrency)

    async def post(self, endpoint: Endpoint, webhook_id: str, body: bytes) -> None:
        """One attempt: returns on 2xx, raises ``Retryable`` or ``Refused``."""
        async with self._slots:
            timestamp = int(time.time())
            headers = {
                **signing.headers(endpoint.key, webhook_id, timestamp, body),
                "content-type": CONTENT_TYPE,
                "user-agent": USER_AGENT,
            }
            try:
                async with self._session.post(
                    endpoint.url,
                    data=body,
                    headers=headers,
                    timeout=self._timeout,
                    allow_redirects=False,
                ) as response:
                    status = response.status
                    wait = retry_after_s(response.headers.get("Retry-After"), time.time())
                    response.release()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise Retryable(None, type(exc).__name__) from None
        if 200 <= status < 300:
            return
        if status >= 500 or status in RETRIED_STATUSES:
            raise Retryable(status, f"HTTP {status}", wait)
        raise Refused(status, f"HTTP {status}")


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait between attempts."""

    initial_s: float
    max_s: float


class _Wait(wait_base):
    """Exponential backoff with jitter, at least what ``Retry-After`` asked (up to the
    maximum), and never past the give-up moment (the last attempt is made then)."""

    def __init__(self, backoff: Backoff, deadline: float) -> None:
        self._backoff = wait_exponential_jitter(
            multiplier=backoff.initial_s, max=backoff.max_s, jitter=backoff.initial_s
        )
        self._max = backoff.max_s
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = self._backoff(retry_state)
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        if isinstance(failure, Retryable) and failure.retry_after is not None:
            delay = max(delay, min(failure.retry_after, self._max))
        return max(0.0, min(delay, self._deadline - time.time()))


@dataclass(frozen=True, slots=True)
class Outcome:
    """How delivering one event ended."""

    delivered: bool
    attempts: int
    status: int | None = None
    error: str = ""
    refused: bool = False


async def deliver(
    attempt: Callable[[], Awaitable[None]],
    *,
    stored_at: float,
    give_up_after_s: float,
    backoff: Backoff,
    max_attempts: int | None = None,
) -> Outcome:
    """Try until 2xx, a refusal, or the event is older than ``give_up_after_s`` (or
    ``max_attempts``, for replays)."""
    deadline = stored_at + give_up_after_s
    count = 0

    def stop(state: RetryCallState) -> bool:
        too_old = time.time() >= deadline
        return too_old if max_attempts is None else state.attempt_number >= max_attempts

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(Retryable),
        stop=stop,
        wait=_Wait(backoff, deadline if max_attempts is None else float("inf")),
        reraise=True,
    )
    try:
        async for try_ in retrying:
            with try_:
                count += 1
                await attempt()
    except Retryable as exc:
        return Outcome(False, count, exc.status, exc.error)
    except Refused as exc:
        return Outcome(False, count, exc.status, exc.error, refused=True)
    return Outcome(True, count)
