"""The demo CRM in-process on a test's NATS server: the real handlers and book
(``switchboard.demo_crm``), so tests use the real ``sb.crm.*`` path and its data file."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from nats.aio.client import Client as NATS
from nats.micro import add_service
from nats.micro.service import Service

from switchboard.contracts.subjects import Owner
from switchboard.demo_crm.app import DemoCrm, follow_events
from switchboard.demo_crm.book import Book, load_records
from switchboard.testing.fake_backends import interest_known, streams_ready


@dataclass
class RunningCrm:
    """The demo CRM a test started; ``book.taken`` holds what calls did."""

    crm: DemoCrm
    service: Service
    nc: NATS
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    @property
    def book(self) -> Book:
        return self.crm.book

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if not self.nc.is_closed:
            await self.service.stop()


async def start_demo_crm(nc: NATS, *, follow: bool = False) -> RunningCrm:
    """Answer ``sb.crm.*`` from the packaged demo data; with ``follow`` also read every
    event through the durable consumer ``crm`` into ``crm.timelines``."""
    crm = DemoCrm(Book(load_records()))
    service = await add_service(nc, name=Owner.CRM.value, version="0.0.1")
    await crm.add_endpoints(service)
    running = RunningCrm(crm, service, nc)
    if follow:
        js = nc.jetstream()
        await streams_ready(js)
        running._task = asyncio.create_task(follow_events(js, crm.timelines, running._stop))
    await interest_known(nc)
    return running
