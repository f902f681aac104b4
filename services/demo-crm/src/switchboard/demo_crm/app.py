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

from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from nats.micro.service import Service

from switchboard.contracts import streams, subjects
from switchboard.contracts.subjects import Owner, request_spec
from switchboard.demo_crm.book import Book, Refusal
from switchboard.demo_crm.settings import DemoCrmSettings
from switchboard.demo_crm.timeline import Timelines
from switchboard.runtime.service import Cleanup, RequestError, Runtime, Setup, add_typed_endpoint

log = logging.getLogger(__name__)

CONSUMER = Owner.CRM.value
"""The durable consumer is named like the NATS user, which may only manage that one."""
STREAM_POLL_S = 0.5
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


async def wait_for_stream(js: JetStreamContext, stop: asyncio.Event) -> None:
    """A CRM reads the events stream; creating it is the services' job, so wait for it."""
    while not stop.is_set():
        try:
            await js.stream_info(streams.EVENTS.name)
            return
        except NotFoundError:
            await asyncio.sleep(STREAM_POLL_S)


async def follow_events(js: JetStreamContext, timelines: Timelines, stop: asyncio.Event) -> None:
    """Read every event through the durable pull consumer ``crm``; ack once recorded."""
    await wait_for_stream(js, stop)
    if stop.is_set():
        return
    psub = await js.pull_subscribe(
        subjects.EVENTS_WILDCARD,
        durable=CONSUMER,
        stream=streams.EVENTS.name,
        config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW, ack_wait=30
        ),
    )
    try:
        while not stop.is_set():
            try:
                batch = await psub.fetch(batch=64, timeout=0.5)
            except (NatsTimeoutError, TimeoutError):
                continue  # nothing new (nats-py raises either)
            except NatsError as exc:
                log.warning("Could not pull events; trying again.", extra={"error": repr(exc)})
                await asyncio.sleep(STREAM_POLL_S)
                continue
            for msg in batch:
                entry = timelines.add(msg.data)
                if entry is not None and entry.kind.startswith("case."):
                    call_id = msg.subject.rsplit(".", 1)[-1]
                    log.info("Case recorded.", extra={"kind": entry.kind, "call_id": call_id})
                await msg.ack()
    finally:
        # A live subscription holds the connection's drain for its whole timeout (a late
        # message nobody takes from its queue), so it goes before the drain.
        with contextlib.suppress(Exception):
            await psub.unsubscribe()


def build_setup(crm: DemoCrm, settings: DemoCrmSettings) -> Setup:
    async def setup(rt: Runtime) -> Cleanup:
        await crm.add_endpoints(rt.service)
        stop = asyncio.Event()
        task = rt.keep(follow_events(rt.js, crm.timelines, stop), "crm events")

        async def cleanup() -> None:
            stop.set()
            # A follower that died has been reported (``Runtime.keep``); the timeline
            # kept so far is still written.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 5)
            text = crm.timelines.render()
            if settings.crm_timeline_file:
                await asyncio.to_thread(Path(settings.crm_timeline_file).write_text, text)
            print(text, flush=True)

        return cleanup

    return setup
