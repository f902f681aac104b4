"""Sealing the personal fields of a call's events before they are published.

Events outlive erasure in every copy a consumer took, so the caller's number and words
never go out in the clear (``switchboard.contracts.sealed``): each event with personal
fields carries the caller's reference and those fields sealed under the caller's event
key, which the consent ledger gives (``sb.consent.caller_key``, asked once per call and
held in memory for the call only) and destroys on erasure.

When the ledger does not answer, the event goes out without its personal fields, naming
them in ``withheld``, rather than in plain text. Only the call's first such event waits for
the ledger (``call.started``, while the policy is asked for too); after a failure the key
is asked for again in the background, so a ledger that is down never holds up a turn.
This wraps the call's event sink and changes only the payload: how events are published,
retried and stored stays the sink's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client as NATS

from switchboard.contracts.base import Message
from switchboard.contracts.envelope import spec_for
from switchboard.contracts.sealed import CallerKey, GetCallerKey, Sealable
from switchboard.contracts.subjects import CONSENT_CALLER_KEY
from switchboard.runtime.bus import request
from switchboard.runtime.sealing import personal_values, seal, withhold
from switchboard.voice.clients.events import CallEventSink

log = logging.getLogger(__name__)


class CallerKeys:
    """Asks the ledger for a caller's event key."""

    def __init__(self, nc: NATS, timeout: float) -> None:
        self._nc = nc
        self._timeout = timeout

    async def get(self, call_id: str, caller_number: str | None) -> CallerKey | None:
        """The caller's reference and key, or None when the ledger does not give it."""
        try:
            return await request(
                self._nc,
                CONSENT_CALLER_KEY,
                GetCallerKey(call_id=call_id, caller_number=caller_number),
                CallerKey,
                self._timeout,
            )
        except Exception as exc:  # RequestFailed, a closed connection: never into the call
            log.warning(
                "The ledger gave no caller key; personal fields are withheld from events.",
                extra={"call_id": call_id, "error": type(exc).__name__},
            )
            return None


class SealingEvents:
    """A call's event sink that seals personal fields first (see module doc)."""

    def __init__(
        self, inner: CallEventSink, keys: CallerKeys, call_id: str, caller_number: str | None
    ) -> None:
        self._inner = inner
        self._keys = keys
        self._call_id = call_id
        self._caller_number = caller_number
        self._key: CallerKey | None = None
        self._asking: asyncio.Future[CallerKey | None] | None = None
        self._asked = False

    async def publish(self, payload: Message) -> str | None:
        if isinstance(payload, Sealable):
            payload = await self._sealed(payload)
        return await self._inner.publish(payload)

    async def settle(self) -> None:
        if self._asking is not None:  # the call is over: nothing left to seal
            self._asking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._asking
        await self._inner.settle()

    async def _key_now(self) -> CallerKey | None:
        """The key if the ledger has given it; the first time, waits for its answer."""
        if self._key is not None:
            return self._key
        if self._asking is None:
            self._asking = asyncio.ensure_future(self._keys.get(self._call_id, self._caller_number))
            if not self._asked:
                self._asked = True
                await asyncio.wait({self._asking})
        if self._asking.done():
            self._key = self._asking.result()
            self._asking = None  # after a failure the next event asks again
        return self._key

    async def _sealed(self, payload: Sealable) -> Sealable:
        self._key = await self._key_now()
        if self._key is not None:
            return seal(payload, self._key.caller_ref, self._key.key)
        if personal_values(payload):
            log.warning(
                "Published an event without its personal fields (no caller key).",
                extra={"call_id": self._call_id, "event_type": spec_for(type(payload)).type},
            )
        return withhold(payload)
