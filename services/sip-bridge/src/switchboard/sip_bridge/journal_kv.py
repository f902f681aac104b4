"""The transfer journal in a NATS KV bucket (``streams.TRANSFER_STATE``).

The provisioning step creates the bucket (one revision per key, records expire after a
day); the bridge's NATS user may read and write its keys and nothing else. A record's key
is a digest of its transfer id (any id fits a key), its value a ``JournalEntry``: under
``a.`` while the transfer runs, under ``e.`` once it ended (read by key, to answer a late
cancel). Ending one purges its ``a.`` key with a marker that expires after a second (the
shortest message TTL NATS takes), so listing the transfers in progress, one request per
stored message, reads those in progress and barely any that ended: with a minute's markers
a loaded bridge took 25-70 s to list. Whether
an owner still runs is asked of that instance itself: ``$SRV.PING.sip-bridge.<id>`` has
no responder once it is gone, which needs no clocks or heartbeats.
"""

from __future__ import annotations

import hashlib
from typing import Final

import msgspec
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import (
    BucketNotFoundError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NotFoundError,
)
from nats.js.kv import KeyValue

from switchboard.contracts import streams
from switchboard.contracts.subjects import Owner
from switchboard.runtime.bus import StreamMissing
from switchboard.sip_bridge.journal import Claim, JournalEntry

ACTIVE: Final = "a."
ENDED: Final = "e."
PURGE_MARKER_TTL_S: Final = 1.0
PING_TIMEOUT_S: Final = 1.0
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(JournalEntry)


def record_key(transfer_id: str, prefix: str = ACTIVE) -> str:
    return prefix + hashlib.sha256(transfer_id.encode()).hexdigest()[:40]


async def open_journal(nc: NATS, js: JetStreamContext) -> KvJournal:
    """The journal in the provisioned bucket; ``StreamMissing`` when it is not there."""
    bucket = streams.TRANSFER_STATE.name
    try:
        kv = await js.key_value(bucket)
    except BucketNotFoundError:
        raise StreamMissing(streams.TRANSFER_STATE.stream) from None
    return KvJournal(nc, js, kv)


class KvJournal:
    """``Journal`` over a KV bucket."""

    def __init__(self, nc: NATS, js: JetStreamContext, kv: KeyValue) -> None:
        self._nc = nc
        self._js = js
        self._kv = kv

    async def save(self, entry: JournalEntry) -> None:
        if not entry.ended:
            await self._kv.put(record_key(entry.transfer_id), _encoder.encode(entry))
            return
        await self._kv.put(record_key(entry.transfer_id, ENDED), _encoder.encode(entry))
        await self._kv.purge(record_key(entry.transfer_id), msg_ttl=PURGE_MARKER_TTL_S)

    async def load(self, transfer_id: str) -> Claim | None:
        for prefix in (ENDED, ACTIVE):
            try:
                found = await self._kv.get(record_key(transfer_id, prefix))
            except (KeyNotFoundError, KeyDeletedError):
                continue
            if found.value and found.revision is not None:
                return Claim(_decoder.decode(found.value), found.revision)
        return None

    async def active(self) -> list[Claim]:
        # One revision per key, so each stored message is a record's latest value.
        subjects = f"$KV.{streams.TRANSFER_STATE.name}.{ACTIVE}>"
        out: list[Claim] = []
        seq = 1
        while True:
            try:
                raw = await self._js.get_msg(
                    streams.TRANSFER_STATE.stream, seq=seq, subject=subjects, next=True
                )
            except NotFoundError:
                return out
            seq = (raw.seq or seq) + 1
            if not raw.data or raw.seq is None:
                continue  # the purge marker of an ended one
            try:
                entry = _decoder.decode(raw.data)
            except msgspec.DecodeError:
                continue  # not a record this bridge wrote; nothing to recover
            if not entry.ended:
                out.append(Claim(entry, raw.seq))

    async def claim(self, claim: Claim, owner: str) -> bool:
        taken = msgspec.structs.replace(claim.entry, owner=owner)
        try:
            await self._kv.update(
                record_key(claim.entry.transfer_id), _encoder.encode(taken), last=claim.revision
            )
        except KeyWrongLastSequenceError:
            return False
        return True

    async def owner_alive(self, owner: str) -> bool:
        try:
            await self._nc.request(
                f"$SRV.PING.{Owner.SIP_BRIDGE.value}.{owner}", b"", timeout=PING_TIMEOUT_S
            )
        except NoRespondersError:
            return False
        except NatsTimeoutError:
            return True  # slow is not gone: never take over a transfer that may be running
        return True
