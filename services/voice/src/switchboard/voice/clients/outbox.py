"""The voice worker's outbox: every call event is kept until JetStream has stored it.

A CRM must see ``call.ended`` for every call, so no event may be dropped on the way:

- **Retried.** ``EventPublisher`` republishes an event whose ack failed (same bytes, same
  ``Nats-Msg-Id``) with backoff until it is stored, so a NATS outage delays events and
  loses none.
- **Bounded in memory.** At most ``max_in_flight`` events are handed to the publisher at
  once. Beyond that, events wait in order behind them: on disk when there is an outbox
  directory (only their file name stays in memory); without one, in memory up to
  ``max_in_flight`` more, and then ``publish`` waits for room: memory stays bounded and
  nothing is dropped.
- **On disk** (``SB_EVENT_OUTBOX_DIR``). Each event is written to a file in this process's
  own directory before it is sent, and deleted once stored. A job process holds an
  exclusive lock on its directory while it lives; the OS releases the lock when the
  process dies, so the next process to start finds the directory unlocked, takes it over
  and publishes what it holds, in order. The files keep the encoded CloudEvent, so a
  replayed event has the id, time and sequence it was given when it happened, and a copy
  that did reach the stream is the same (``source``, ``id``) for consumers to drop.

Files hold call events, which may carry personal data: the directory is the pod's own
(an ``emptyDir``), never shared, and emptied as events are stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import msgspec

from switchboard.contracts.base import Message
from switchboard.contracts.envelope import OutgoingEvent, spec_for, spec_for_type
from switchboard.runtime.bus import EventPublisher, Sent

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 10_000
"""Events handed to the publisher and not yet stored, at most (about 1 KiB each)."""
LOCK_FILE = ".lock"
SUFFIX = ".event"


class StoredEvent(msgspec.Struct, frozen=True):
    """One event as the outbox keeps it on disk."""

    type: str
    subject: str
    event_id: str
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class _Waiting:
    """An event not handed to the publisher yet: its bytes, or where they are on disk."""

    stored: asyncio.Future[None]
    path: Path | None
    event: StoredEvent | None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(StoredEvent)


class EventOutbox:
    """Hands events to the publisher in order, keeps them until stored, never drops one."""

    def __init__(
        self,
        publisher: EventPublisher,
        directory: Path | None = None,
        *,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("The outbox needs room for at least one event in flight.")
        self._publisher = publisher
        self._root = directory
        self._own: Path | None = None
        self._lock: IO[bytes] | None = None
        self._slots = asyncio.Semaphore(max_in_flight)
        self._max_backlog = max_in_flight
        self._backlog: deque[_Waiting] = deque()
        self._pending: set[asyncio.Future[None]] = set()
        self._drainer: asyncio.Task[None] | None = None
        self._counter = 0

    @property
    def directory(self) -> Path | None:
        """This process's own directory (None without ``SB_EVENT_OUTBOX_DIR``)."""
        return self._own

    @property
    def backlog(self) -> int:
        """Events waiting behind the in-flight ones."""
        return len(self._backlog)

    def open(self) -> int:
        """Take this process's directory and queue what dead processes left; how many."""
        if self._root is None:
            return 0
        self._root.mkdir(parents=True, exist_ok=True, mode=0o700)
        own = self._root / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        own.mkdir(mode=0o700)
        self._lock = _locked(own)
        assert self._lock is not None  # a directory this process just made is free
        self._own = own
        found = 0
        for other in sorted(p for p in self._root.iterdir() if p.is_dir() and p != own):
            found += self._adopt(other)
        if found:
            log.warning(
                "Publishing call events a stopped worker process left.", extra={"count": found}
            )
            self._start_drainer()
        return found

    async def publish(self, payload: Message, *, sequence: int | None = None) -> Sent:
        """Encode the event now (its id and time), keep it, and send it in its turn."""
        out, headers = self._publisher.encode(payload, sequence=sequence)
        event = StoredEvent(
            spec_for(type(payload)).type, out.subject, out.event_id, headers, out.body
        )
        path = self._write(event)
        stored: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._track(stored, path)
        if not self._backlog and not self._slots.locked():
            # Room now: handed over without yielding, so the event is in the connection's
            # buffer before anything the call sends next (the publisher's ordering).
            await self._slots.acquire()
            try:
                await self._hand_over(event, stored)
            except Exception as exc:  # the publisher is closed: shutting down
                self._slots.release()
                log.warning(
                    "A call event was not sent; it stays in the outbox.",
                    extra={"error": type(exc).__name__, "on_disk": path is not None},
                )
            return Sent(out.event_id, stored)
        if path is None:
            # No disk to wait on: wait for room here, so memory stays bounded.
            while len(self._backlog) >= self._max_backlog:
                await asyncio.wait({self._backlog[0].stored})
        self._backlog.append(_Waiting(stored, path, None if path is not None else event))
        self._start_drainer()
        return Sent(out.event_id, stored)

    async def settle(self, timeout: float | None = None) -> bool:
        """Wait until every event so far is stored (or ``timeout``); True if all are."""
        waiting = set(self._pending)
        if waiting:
            await asyncio.wait(waiting, timeout=timeout)
        return all(f.done() for f in waiting)

    async def close(self, timeout: float = 10.0) -> None:
        """Wait for the events to be stored; what is left stays on disk for the next
        process (and is reported by count)."""
        await self.settle(timeout)
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
        left = sum(1 for f in self._pending if not f.done())
        if left:
            log.error(
                "Call events not stored before shutdown.",
                extra={"count": left, "kept_on_disk": self._own is not None},
            )
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if self._own is not None and not left:
            shutil.rmtree(self._own, ignore_errors=True)

    # -- internals -------------------------------------------------------------------

    def _write(self, event: StoredEvent) -> Path | None:
        if self._own is None:
            return None
        self._counter += 1
        path = self._own / f"{self._counter:012d}{SUFFIX}"
        tmp = path.with_suffix(".tmp")
        try:
            # Written whole, then renamed: a crash mid-write leaves no half event to replay.
            tmp.write_bytes(_encoder.encode(event))
            tmp.rename(path)
        except OSError as exc:
            # A full or broken disk: the event still goes out, kept in memory only.
            log.error(
                "A call event could not be written to the outbox directory.",
                extra={"error": type(exc).__name__},
            )
            return None
        return path

    def _track(self, stored: asyncio.Future[None], path: Path | None) -> None:
        self._pending.add(stored)

        def done(future: asyncio.Future[None]) -> None:
            self._pending.discard(future)
            if path is not None and not future.cancelled():
                path.unlink(missing_ok=True)

        stored.add_done_callback(done)

    async def _hand_over(self, event: StoredEvent, stored: asyncio.Future[None]) -> None:
        out = OutgoingEvent(event.subject, event.event_id, event.body)
        sent = await self._publisher.send_encoded(
            out, event.headers, spec_for_type(event.type).payload
        )

        def relay(future: asyncio.Future[None]) -> None:
            self._slots.release()
            if not stored.done():
                stored.set_result(None)

        sent.stored.add_done_callback(relay)

    def _adopt(self, other: Path) -> int:
        """Queue a dead process's events (its lock is free), oldest first."""
        lock = _locked(other)
        if lock is None:
            return 0  # a live process's directory
        files = sorted(other.glob(f"*{SUFFIX}"))
        if not files:
            shutil.rmtree(other, ignore_errors=True)
            lock.close()
            return 0
        left = len(files)

        def finished(_: asyncio.Future[None]) -> None:
            # The directory (and its lock) goes once the last of its events is stored.
            nonlocal left
            left -= 1
            if left == 0:
                shutil.rmtree(other, ignore_errors=True)
                lock.close()

        loop = asyncio.get_running_loop()
        for path in files:
            stored: asyncio.Future[None] = loop.create_future()
            self._track(stored, path)
            stored.add_done_callback(finished)
            self._backlog.append(_Waiting(stored, path, None))
        return len(files)

    def _start_drainer(self) -> None:
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(
                self._drain(), name="event outbox"
            )

    async def _drain(self) -> None:
        while self._backlog:
            await self._slots.acquire()
            waiting = self._backlog.popleft()
            event = waiting.event
            if event is None:
                assert waiting.path is not None
                try:
                    event = _decoder.decode(waiting.path.read_bytes())
                except (OSError, msgspec.DecodeError) as exc:
                    # Never written whole (writes are renamed into place): nothing to send.
                    self._slots.release()
                    log.error(
                        "An outbox file could not be read; it is skipped.",
                        extra={"file": waiting.path.name, "error": type(exc).__name__},
                    )
                    waiting.path.unlink(missing_ok=True)
                    waiting.stored.cancel()
                    continue
            try:
                await self._hand_over(event, waiting.stored)
            except Exception as exc:
                # The publisher is closed (shutting down): the event stays on disk, if any.
                self._slots.release()
                self._backlog.appendleft(waiting)
                log.warning("The outbox stops sending.", extra={"error": type(exc).__name__})
                return


def _locked(directory: Path) -> IO[bytes] | None:
    """An exclusive lock on ``directory`` (held while the file stays open), or None when
    another live process holds it."""
    handle = (directory / LOCK_FILE).open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle
