"""The demo CRM: its book (pure), and the process answering from its data file and printing
each call's timeline from its durable consumer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS

from switchboard.contracts import CallEnded, CallOutcome, streams, subjects
from switchboard.contracts.crm import (
    Account,
    ActionConfirmed,
    Authority,
    CreditGranted,
    FindSupportSteps,
    GrantCredit,
    LookupAccount,
    PlaceOrder,
)
from switchboard.contracts.envelope import encode_event
from switchboard.contracts.errors import ErrorCode
from switchboard.demo_crm.app import DemoCrm, build_setup
from switchboard.demo_crm.book import Book, Refusal, load_records
from switchboard.demo_crm.settings import DemoCrmSettings
from switchboard.demo_crm.timeline import Timelines
from switchboard.devstack.launcher import ServiceProcess
from switchboard.devstack.natsserver import NatsServer
from switchboard.runtime.bus import EventPublisher, RequestFailed, ensure_stream, request
from switchboard.runtime.service import ServiceFailed, run_service
from switchboard.testing import eventually
from switchboard.testing.crm import start_demo_crm

CREDIT = Authority(rule="manager_credit_limit", limit_minor=5000, currency="USD")


def _credit(amount_minor: int, request_id: str = "r-1") -> GrantCredit:
    return GrantCredit(
        call_id="c-1",
        amount_minor=amount_minor,
        currency="USD",
        agent="manager",
        authority=CREDIT,
        caller_number="+14155550123",
        request_id=request_id,
    )


def test_the_latest_invoice_is_the_data_files_with_its_total() -> None:
    account = Book(load_records()).account(
        LookupAccount(call_id="c-1", caller_number="+14155550123")
    )
    assert account.account_id == "ACC-1001"
    assert account.latest_invoice is not None
    assert account.latest_invoice.total_minor == 6420
    assert [line.amount_minor for line in account.latest_invoice.lines] == [4900, 1520]


def test_an_unknown_caller_is_not_found_and_nothing_is_granted_to_them() -> None:
    book = Book(load_records())
    with pytest.raises(Refusal) as refused:
        book.account(LookupAccount(call_id="c-1", caller_number="+15550000000"))
    assert refused.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(Refusal):
        book.credit(msgspec_replace(_credit(1000), caller_number="+15550000000"))
    assert book.taken == {}


def msgspec_replace(credit: GrantCredit, **changes: object) -> GrantCredit:
    import msgspec

    return msgspec.structs.replace(credit, **changes)


def test_a_repeated_request_id_is_done_once() -> None:
    book = Book(load_records())
    first = book.credit(_credit(3000))
    again = book.credit(_credit(3000))
    assert first == again
    assert len(book.taken) == 1
    assert book.credit(_credit(3000, "r-2")).reference != first.reference


def test_an_amount_above_the_cited_limit_or_an_unknown_product_is_refused() -> None:
    book = Book(load_records())
    with pytest.raises(Refusal, match="above the limit"):
        book.credit(_credit(6000))
    with pytest.raises(Refusal, match="not on sale"):
        book.order(
            PlaceOrder(
                call_id="c-1",
                product_id="yacht",
                email="a@b.c",
                shipping_address="1 Road",
                agent="sales",
                authority=Authority(rule="orders_by_phone"),
            )
        )


def test_support_runs_out_of_remote_fixes() -> None:
    book = Book(load_records())
    steps = [
        book.support_steps(FindSupportSteps(call_id="c-1", problem="router", attempt=n)).steps
        for n in (1, 2, 3)
    ]
    assert steps[0] is not None
    assert "unplug your router" in steps[0]
    assert steps[1] is not None
    assert steps[2] is None


async def test_the_process_answers_from_its_data_file_and_prints_each_calls_timeline(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    data = tmp_path / "crm.toml"
    text = (Path(__file__).parents[1] / "src/switchboard/demo_crm/data/demo_crm.toml").read_text()
    data.write_text(text.replace("amount_minor = 4900", "amount_minor = 4321"))
    timeline = tmp_path / "timeline.txt"
    nc = await nats.connect(nats_server.url)
    await ensure_stream(nc.jetstream(), streams.EVENTS)
    env = {
        "SB_NATS_URL": nats_server.url,
        "SB_CRM_DATA_FILE": str(data),
        "SB_CRM_TIMELINE_FILE": str(timeline),
    }
    proc = ServiceProcess(
        "switchboard.demo_crm", "crm", env=env, log_path=tmp_path / "crm.log"
    ).start()
    try:
        await proc.ready(nats_server.url)
        account = await request(
            nc,
            subjects.CRM_ACCOUNT_LOOKUP,
            LookupAccount(call_id="c-1", caller_number="+14155550123"),
            Account,
            2.0,
        )
        assert account.latest_invoice is not None
        assert account.latest_invoice.total_minor == 4321 + 1520  # from the file it was given
        with pytest.raises(RequestFailed) as refused:
            await request(
                nc,
                subjects.CRM_ACCOUNT_LOOKUP,
                LookupAccount(call_id="c-1", caller_number="+15550000000"),
                Account,
                2.0,
            )
        assert refused.value.error.code is ErrorCode.NOT_FOUND
        done = await request(nc, subjects.CRM_CREDIT_GRANT, _credit(3000), ActionConfirmed, 2.0)
        publisher = EventPublisher(nc.jetstream())
        await publisher.publish(
            CreditGranted(
                call_id="c-1",
                request_id="r-1",
                reference=done.reference,
                amount_minor=3000,
                currency="USD",
                agent="manager",
                authority=CREDIT,
            )
        )
        consumer = await eventually(
            lambda: _acked(nc), message="the CRM to ack the event", retry_on=(Exception,)
        )
        assert consumer
    finally:
        assert proc.stop() == 0
        await nc.close()
    printed = timeline.read_text()
    assert "Call c-1" in printed
    assert "case.credit_granted" in printed
    assert (
        f"30.00 USD by manager under manager_credit_limit (limit 50.00 USD), ref {done.reference}"
        in printed
    )
    assert "+1415" not in printed  # no caller number on a timeline


async def _acked(nc: NATS) -> bool:
    info = await nc.jetstream().consumer_info(streams.EVENTS.name, "crm")
    return bool(info.ack_floor and info.ack_floor.stream_seq >= 1)


async def test_a_consumer_built_against_todays_contracts_skips_a_newer_version_and_reads_on(
    nc: NATS,
) -> None:
    # A future CallEnded v2 (another data shape) lands on the subject of v1; the CRM, built
    # against these contracts, skips it and records the v1 behind it.
    running = await start_demo_crm(nc, follow=True)
    js = nc.jetstream()
    try:
        await eventually(
            lambda: js.consumer_info(streams.EVENTS.name, "crm"),
            retry_on=(Exception,),
            message="the CRM's durable consumer to exist",
        )
        v1 = encode_event(CallEnded(call_id="c-ver", outcome=CallOutcome.RESOLVED), source="test")
        v2 = json.loads(v1.body)
        v2["type"] = "io.switchboard.call.ended.v2"
        v2["id"] = "v2-" + v2["id"]
        v2["data"] = {"call_id": "c-ver", "outcome": {"code": 7}, "duration": "PT5S"}
        await js.publish(v1.subject, json.dumps(v2).encode(), headers={"Nats-Msg-Id": v2["id"]})
        await js.publish(v1.subject, v1.body, headers={"Nats-Msg-Id": v1.event_id})

        async def both_acked() -> bool:
            info = await js.consumer_info(streams.EVENTS.name, "crm")
            return bool(info.num_ack_pending == 0 and info.delivered.stream_seq >= 2)

        await eventually(both_acked, message="the CRM to ack both events")
        entries = running.crm.timelines.calls["c-ver"]
        assert [e.kind for e in entries] == ["call.ended"]
        assert running._task is not None
        assert not running._task.done()  # still reading
    finally:
        await running.stop()


async def test_a_crm_whose_event_follower_dies_fails_instead_of_answering_as_if_fine(
    nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The follower is the CRM's consumer of SB_EVENTS; if it dies the service fails
    (and is restarted) rather than answer lookups with its timelines frozen."""

    def broken(self: Timelines, body: bytes) -> None:
        raise RuntimeError("a bug in the timeline")

    monkeypatch.setattr(Timelines, "add", broken)
    nc = await nats.connect(nats_server.url)
    await ensure_stream(nc.jetstream(), streams.EVENTS)
    settings = DemoCrmSettings(nats_url=nats_server.url)
    crm = DemoCrm(Book(load_records()))
    stop = asyncio.Event()
    service = asyncio.create_task(
        run_service("crm", "0.0.1", settings, build_setup(crm, settings), stop=stop)
    )
    try:
        # The follower reads only events newer than its consumer (DeliverPolicy.NEW).
        await eventually(
            lambda: nc.jetstream().consumer_info(streams.EVENTS.name, "crm"),
            message="the CRM's consumer",
            retry_on=(Exception,),
        )
        granted = CreditGranted(
            call_id="c-1",
            request_id="r-1",
            reference="ref-1",
            amount_minor=3000,
            currency="USD",
            agent="manager",
            authority=CREDIT,
        )
        await EventPublisher(nc.jetstream(), source="test").publish(granted)
        with pytest.raises(ServiceFailed, match=r"crm events stopped \(RuntimeError\)"):
            await asyncio.wait_for(service, 15)
    finally:
        stop.set()
        await nc.close()
