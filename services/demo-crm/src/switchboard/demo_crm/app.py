"""The demo CRM process: answers ``sb.crm.*`` from its book and follows every call's
events through its durable consumer ``crm`` on ``SB_EVENTS``, as a CRM integration does.

``DemoCrm`` is the handler set (thin: the book decides); ``follow_events`` is the
"subscribe as a CRM" loop the README shows: pull, record, ack after recording, so a
restart loses nothing and a redelivered event is recorded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.micro.service import Service

from switchboard.contracts import streams, subjects
from switchboard.contracts.subjects import Owner, request_spec
from switchboard.demo_crm.book import Book, Refusal
from switchboard.demo_crm.settings import DemoCrmSettings
from switchboard.demo_crm.timeline import Timelines
from switchboard.runtime.bus import ensure_stream
from switchboard.runtime.service import Cleanup, RequestError, Runtime, Setup, add_typed_endpoint

log = logging.getLogger(__name__)

CONSUMER = Owner.CRM.value
"""The durable consumer is named like the NATS user, which may only manage that one."""
A = TypeVar("A")
R = TypeVar("R")


def _answer(act: Callable[[A], R]) -> Callable[[A], asyncio.Future[R]]:
    async def handler(request: A) -> R:
        try:
            return act(request)
        except Refusal as exc:
            raise RequestError(exc.code, exc.message) from None

    return handler  # type: ignore[return-value]


@dataclass
class DemoCrm:
    """The back office's request handlers and the calls' timelines."""

    book: Book
    timelines: Timelines = field(default_factory=Timelines)

    async def add_endpoints(self, service: Service) -> None:
        book = self.book
        handlers: dict[str, Callable[..., object]] = {
            subjects.CRM_ACCOUNT_LOOKUP: _answer(book.account),
            subjects.CRM_CATALOG_LIST: _answer(lambda q: book.catalog(q.call_id)),
            subjects.CRM_SUPPORT_STEPS: _answer(book.support_steps),
            subjects.CRM_REFUND_REQUEST: _answer(book.refund),
            subjects.CRM_CREDIT_GRANT: _answer(book.credit),
            subjects.CRM_ORDER_PLACE: _answer(book.order),
            subjects.CRM_TICKET_OPEN: _answer(book.ticket),
        }
        for subject, handler in handlers.items():
            await add_typed_endpoint(service, request_spec(subject), handler)  # type: ignore[arg-type]


async def follow_events(js: JetStreamContext, timelines: Timelines, stop: asyncio.Event) -> None:
    """Read every event through the durable pull consumer ``crm``; ack once recorded."""
    psub = await js.pull_subscribe(
        subjects.EVENTS_WILDCARD,
        durable=CONSUMER,
        stream=streams.EVENTS.name,
        config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW, ack_wait=30
        ),
    )
    while not stop.is_set():
        try:
            batch = await psub.fetch(batch=64, timeout=0.5)
        except NatsTimeoutError:
            continue
        for msg in batch:
            entry = timelines.add(msg.data)
            if entry is not None and entry.kind.startswith("case."):
                log.info(
                    "Case recorded.",
                    extra={"kind": entry.kind, "call_id": msg.subject.rsplit(".", 1)[-1]},
                )
            await msg.ack()


def build_setup(crm: DemoCrm, settings: DemoCrmSettings) -> Setup:
    async def setup(rt: Runtime) -> Cleanup:
        await ensure_stream(rt.js, streams.EVENTS, settings.stream_replicas)
        await crm.add_endpoints(rt.service)
        stop = asyncio.Event()
        task = asyncio.create_task(follow_events(rt.js, crm.timelines, stop), name="crm events")

        async def cleanup() -> None:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)
            text = crm.timelines.render()
            if settings.crm_timeline_file:
                await asyncio.to_thread(Path(settings.crm_timeline_file).write_text, text)
            print(text, flush=True)

        return cleanup

    return setup
