"""NATS permissions generated from the contracts, enforced by a real nats-server.

Each test starts a server with the generated users (random passwords) and connects as
one or more of them. A refused publish or subscribe does not raise in nats-py: the server
reports it asynchronously, so every client here collects its ``error_cb`` reports, and a
refusal is asserted both as that report and as its effect (nothing stored, no answer).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig
from nats.micro import add_service

from switchboard.consent.ingest import ensure_consumer
from switchboard.consent.pull import PullFeed
from switchboard.contracts import streams, subjects
from switchboard.contracts.base import new_id, utcnow
from switchboard.contracts.call import CallStarted
from switchboard.contracts.consent import (
    ConsentDecision,
    ConsentMode,
    ConsentPolicy,
    ConsentPolicyQuery,
    ConsentReceipt,
    ConsentRecorded,
    CreateCheckpoint,
    LedgerCheckpoint,
    RecordConsent,
)
from switchboard.contracts.envelope import EVENTS, decode_event
from switchboard.contracts.errors import ErrorCode
from switchboard.contracts.escalation import HandoffDecision, HandoffTarget
from switchboard.contracts.subjects import REQUESTS
from switchboard.devstack.natsserver import NatsServer, find_binary
from switchboard.escalation.bucket import key_reader, open_bucket
from switchboard.ops import natsconf, permissions
from switchboard.runtime.bus import (
    MSG_ID_HEADER,
    EventPublisher,
    RequestFailed,
    request,
    require_stream,
    stream_config,
)
from switchboard.runtime.provision import provision
from switchboard.runtime.service import add_typed_endpoint
from switchboard.testing import eventually

ROOT = Path(__file__).resolve().parents[1]
DEPLOYED = ROOT / "deploy" / "k8s" / "nats" / "permissions.conf"
CALL_ID = "call-perm-1"
MARKER_CALL_ID = "call-perm-marker"
VIOLATION = "permissions violation"
CRM_BILLING = "crm-billing"
"""A second durable consumer the ``crm`` user owns in these tests."""


@dataclass
class Client:
    """A connection as one user, with the server's asynchronous error reports."""

    user: str
    nc: NATS
    errors: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        """The reported violations, lower-cased (servers differ in capitals)."""
        return [e.lower() for e in self.errors if VIOLATION in e.lower()]

    async def refusals(self) -> list[str]:
        """Every violation the server reported for what this client sent so far.

        The server writes its ``-ERR`` before the ``PONG`` of a later ``PING``, and
        nats-py runs ``error_cb`` before it reads on. nats-py 2.16 can write a flush's
        ``PING`` ahead of what is still in its buffer, so the first flush puts everything
        on the wire and the second one's ``PONG`` comes after every report.
        """
        await self.nc.flush()
        await self.nc.flush()
        return self.violations()


@dataclass
class Secured:
    """A nats-server running the generated users and permissions."""

    server: NatsServer
    passwords: dict[str, str]
    clients: list[Client] = field(default_factory=list)

    async def connect(self, user: str) -> Client:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        nc = await nats.connect(
            self.server.url,
            user=user,
            password=self.passwords[user],
            inbox_prefix=subjects.inbox_prefix(user),
            error_cb=on_error,
            allow_reconnect=False,
            connect_timeout=2,
        )
        client = Client(user, nc, errors)
        self.clients.append(client)
        return client


@pytest.fixture
def secured_server(tmp_path: Path) -> Iterator[tuple[NatsServer, dict[str, str]]]:
    users = permissions.table(crm_consumers={"crm": (CRM_BILLING,)})
    passwords = natsconf.generate_passwords(users)
    config = tmp_path / "permissions.conf"
    config.write_text(natsconf.render(users, passwords))
    server = NatsServer(store_dir=tmp_path / "nats", config_file=config).start()
    try:
        yield server, passwords
    finally:
        server.stop()


@pytest.fixture
async def secured(
    secured_server: tuple[NatsServer, dict[str, str]],
) -> AsyncIterator[Secured]:
    server, passwords = secured_server
    running = Secured(server, passwords)
    try:
        yield running
    finally:
        for client in running.clients:
            await client.nc.close()


async def create_streams(secured: Secured) -> None:
    """The provisioning step, as its own user (the only one that may create streams)."""
    provisioner = await secured.connect(permissions.Role.PROVISIONER.value)
    made = await provision(provisioner.nc.jetstream())
    assert made == [s.name for s in streams.ALL_STREAMS] + [b.stream for b in streams.ALL_BUCKETS]
    assert await provisioner.refusals() == []


async def stored(secured: Secured, stream: str) -> int:
    """How many messages ``stream`` holds (read by the ops user)."""
    ops = await secured.connect("ops")
    info = await ops.nc.jetstream().stream_info(stream)
    return info.state.messages


def policy_for(query: ConsentPolicyQuery) -> ConsentPolicy:
    return ConsentPolicy(
        call_id=query.call_id,
        jurisdiction="US-CA",
        mode=ConsentMode.ASK,
        notice_text="This call may be recorded.",
        notice_version="n1",
        ai_disclosure="You are speaking with an AI.",
    )


async def serve_consent_policy(client: Client) -> None:
    """The consent user answers ``sb.consent.policy`` through the runtime's endpoint."""
    service = await add_service(client.nc, name=subjects.Owner.CONSENT.value, version="0.0.1")
    spec = subjects.request_spec(subjects.CONSENT_POLICY)

    async def on_policy(query: ConsentPolicyQuery) -> ConsentPolicy:
        return policy_for(query)

    await add_typed_endpoint(service, spec, on_policy)
    # As in run_service: nats-py can write a flush's PING ahead of SUBs still in its
    # buffer, so the second PONG is the one that proves the endpoint is subscribed.
    await client.nc.flush()
    await client.nc.flush()
    await client.nc.flush()  # the second PONG proves the endpoint's SUB is live (nats-py 2.16)


def receipt_for(command: RecordConsent) -> ConsentRecorded:
    return ConsentRecorded(
        call_id=command.call_id,
        command_id=command.command_id,
        decision=command.decision,
        jurisdiction=command.jurisdiction,
        mode=command.mode,
        notice_version=command.notice_version,
        receipt=ConsentReceipt(sequence=1, chain_hash="0" * 64, recorded_at=utcnow()),
    )


def fallback_decision() -> HandoffDecision:
    return HandoffDecision(
        call_id=CALL_ID,
        request_id="req-1",
        target=HandoffTarget.HUMAN_QUEUE,
        say="Connecting you to a person.",
        fallback=True,
    )


def consent_command() -> RecordConsent:
    return RecordConsent(
        call_id=CALL_ID,
        decision=ConsentDecision.GRANTED,
        jurisdiction="US-CA",
        mode=ConsentMode.ASK,
        notice_version="n1",
        command_id=new_id(),
        decided_at=utcnow(),
    )


async def stored_before_a_marker(secured: Secured, stream: str) -> int:
    """How many messages ``stream`` holds, counting everything sent before this call.

    A refused publish leaves nothing to wait for, so the voice user sends a marker into
    the stream and waits for its ack: the stream stores messages in the order the server
    routed them, so everything sent before the marker has been handled by then. The
    marker itself is not counted.
    """
    voice = await secured.connect("voice")
    js = voice.nc.jetstream()
    if stream == streams.EVENTS.name:
        await EventPublisher(js).publish(CallStarted(call_id=MARKER_CALL_ID, room="room-marker"))
    else:
        assert stream == streams.CONSENT_COMMANDS.name, stream
        await js.publish(
            subjects.consent_record_subject(MARKER_CALL_ID),
            b"{}",
            headers={MSG_ID_HEADER: "marker"},
        )
    return await stored(secured, stream) - 1


def config_check(path: Path, passwords: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SB_NATS_PASSWORD_")}
    return subprocess.run(
        [find_binary(), "-t", "-c", str(path)],
        env={**env, **passwords},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_generated_configurations_pass_the_servers_own_check(tmp_path: Path) -> None:
    users = permissions.table()
    local = tmp_path / "local.conf"
    local.write_text(natsconf.render(users, natsconf.generate_passwords(users)))
    done = config_check(local, {})
    assert done.returncode == 0, done.stdout + done.stderr
    variables = {natsconf.password_variable(u.user): "s3cret" for u in users}
    done = config_check(DEPLOYED, variables)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_production_configuration_will_not_load_without_every_password() -> None:
    users = permissions.table()
    variables = {natsconf.password_variable(u.user): "s3cret" for u in users}
    del variables["SB_NATS_PASSWORD_CRM"]
    done = config_check(DEPLOYED, variables)
    assert done.returncode != 0
    assert "SB_NATS_PASSWORD_CRM" in done.stdout + done.stderr


async def test_connections_without_a_known_user_and_password_are_refused(
    secured_server: tuple[NatsServer, dict[str, str]],
) -> None:
    server, passwords = secured_server
    for options in ({}, {"user": "voice", "password": passwords["consent"]}):
        with pytest.raises(NatsError, match="Authorization Violation"):
            await nats.connect(server.url, allow_reconnect=False, connect_timeout=2, **options)


async def test_the_ledger_answers_pulls_acknowledges_and_publishes_receipts(
    secured: Secured,
) -> None:
    ledger = await secured.connect("consent")
    voice = await secured.connect("voice")
    ops = await secured.connect("ops")
    js = ledger.nc.jetstream()
    await create_streams(secured)
    for spec in (streams.CONSENT_COMMANDS, streams.EVENTS):
        await require_stream(js, spec)
    await ensure_consumer(js, ack_wait_s=5, max_ack_pending=8)
    await serve_consent_policy(ledger)

    query = ConsentPolicyQuery(call_id=CALL_ID)
    policy: ConsentPolicy = await request(
        voice.nc, subjects.CONSENT_POLICY, query, ConsentPolicy, 2
    )
    assert policy.notice_version == "n1"
    command = consent_command()
    receipts: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_event(msg: Msg) -> None:
        receipts.put_nowait(msg.data)

    await voice.nc.subscribe(subjects.call_events_wildcard(CALL_ID), cb=on_event)
    await voice.nc.jetstream().publish(
        subjects.consent_record_subject(CALL_ID),
        msgspec.json.encode(command),
        headers={MSG_ID_HEADER: command.command_id},
    )

    feed = PullFeed(ledger.nc, streams.CONSENT_COMMANDS.name, streams.CONSENT_LEDGER_CONSUMER, 4)
    await feed.start()
    try:
        msg = await asyncio.wait_for(feed.queue.get(), 5)
        assert msg is not None
        pulled = msgspec.json.decode(msg.data, type=RecordConsent)
        await EventPublisher(js).publish(receipt_for(pulled))
        await msg.ack_sync()
    finally:
        await feed.stop()

    _, receipt = decode_event(await asyncio.wait_for(receipts.get(), 5))
    assert isinstance(receipt, ConsentRecorded)
    assert receipt.command_id == command.command_id

    # Acknowledged: the work queue lets go of the command.
    async def work_queue_empty() -> bool:
        info = await ops.nc.jetstream().stream_info(streams.CONSENT_COMMANDS.name)
        return bool(info.state.messages == 0)

    await eventually(work_queue_empty, message="the work queue to let go of the command")
    pong = await ops.nc.request(f"$SRV.PING.{subjects.Owner.CONSENT.value}", b"", timeout=2)
    assert b"consent" in pong.data
    for client in (ledger, voice, ops):
        assert await client.refusals() == [], client.user


async def test_the_router_reads_the_queue_state_the_workforce_feed_writes(
    secured: Secured,
) -> None:
    router = await secured.connect("escalation")
    feed = await secured.connect("workforce")
    bucket = await open_bucket(router.nc.jetstream(), permissions.QUEUE_STATE_BUCKET)
    writer = await feed.nc.jetstream().key_value(permissions.QUEUE_STATE_BUCKET)
    await writer.put("billing", b'{"waiting": 3, "available": 1}')
    read = key_reader(bucket)
    assert await read("billing") == b'{"waiting": 3, "available": 1}'
    assert await read("support") is None
    await create_streams(secured)
    await require_stream(router.nc.jetstream(), streams.EVENTS)
    decision = fallback_decision()
    await EventPublisher(router.nc.jetstream()).publish(decision)
    for client in (router, feed):
        assert await client.refusals() == [], client.user


async def test_a_crm_reads_every_event_through_its_durable_consumer(secured: Secured) -> None:
    await create_streams(secured)
    voice = await secured.connect("voice")
    crm = await secured.connect("crm")
    live: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_live(msg: Msg) -> None:
        live.put_nowait(msg.data)

    await crm.nc.subscribe(subjects.EVENTS_WILDCARD, cb=on_live)
    # nats-py 2.16 can write a flush's PING ahead of the buffered SUB: the second PONG
    # proves the subscription is live before anything is published.
    await crm.nc.flush()
    await crm.nc.flush()
    publisher = EventPublisher(voice.nc.jetstream())
    sent = [
        await publisher.publish(CallStarted(call_id=CALL_ID, room="room-1")),
        await publisher.publish(fallback_decision()),
    ]

    js = crm.nc.jetstream()
    psub = await js.pull_subscribe(
        subjects.EVENTS_WILDCARD,
        durable="crm",
        stream=streams.EVENTS.name,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
    )
    msgs = await psub.fetch(2, timeout=5)
    assert [decode_event(m.data)[0].id for m in msgs] == sent
    for m in msgs:
        await m.ack_sync()
    info = await js.consumer_info(streams.EVENTS.name, "crm")
    assert info.ack_floor.stream_seq == 2
    assert [decode_event(await asyncio.wait_for(live.get(), 5))[0].id for _ in sent] == sent
    assert await crm.refusals() == []


def publishers(domain: str, name: str, owner: str) -> set[str]:
    """Who may publish an event: its owner, and the voice worker's fallback decision."""
    return {owner} | ({"voice"} if (domain, name) == ("escalation", "decided") else set())


async def test_only_an_events_owner_may_publish_it(secured: Secured) -> None:
    await create_streams(secured)
    allowed_total = 0
    for user in permissions.table():
        client = await secured.connect(user.user)
        expected_refusals = []
        for spec in EVENTS:
            subject = spec.subject(CALL_ID)
            await client.nc.publish(subject, b"{}")
            if user.user in publishers(spec.domain, spec.name, spec.owner.value):
                allowed_total += 1
            else:
                expected_refusals.append(subject)
        refused = await client.refusals()
        assert len(refused) == len(expected_refusals), (user.user, refused)
        for subject in expected_refusals:
            assert any(f'"{subject}"' in r for r in refused), (user.user, subject)
    assert await stored_before_a_marker(secured, streams.EVENTS.name) == allowed_total


async def test_only_a_requests_owner_may_answer_it(secured: Secured) -> None:
    for user in permissions.table():
        client = await secured.connect(user.user)
        refused_subjects = []
        for req in REQUESTS:
            await client.nc.subscribe(req.subject)
            if req.owner.value != user.user:
                refused_subjects.append(req.subject)
        refused = await client.refusals()
        assert len(refused) == len(refused_subjects), (user.user, refused)
        for subject in refused_subjects:
            assert any(f'subscription to "{subject}"' in r for r in refused), (user.user, subject)


@pytest.mark.parametrize("user", ["voice", "sip-bridge", "escalation", "crm", "workforce", "ops"])
async def test_nobody_but_the_ledger_may_publish_a_consent_receipt(
    secured: Secured, user: str
) -> None:
    await create_streams(secured)
    client = await secured.connect(user)
    forged = receipt_for(consent_command())
    with pytest.raises(NatsTimeoutError):
        await EventPublisher(client.nc.jetstream(), timeout=0.5).publish(forged)
    refused = await client.refusals()
    assert refused
    assert f'publish to "sb.evt.consent.recorded.{CALL_ID}"' in refused[0]
    assert await stored_before_a_marker(secured, streams.EVENTS.name) == 0


async def test_voice_cannot_answer_the_consent_policy_subject(secured: Secured) -> None:
    voice = await secured.connect("voice")
    ops = await secured.connect("ops")
    await voice.nc.subscribe(subjects.CONSENT_POLICY)
    refused = await voice.refusals()
    assert len(refused) == 1
    assert f'subscription to "{subjects.CONSENT_POLICY}"' in refused[0]
    # The refused subscription does not exist: nobody answers the policy question.
    with pytest.raises(NoRespondersError):
        await ops.nc.request(subjects.CONSENT_POLICY, b"{}", timeout=1)


async def test_a_crm_cannot_publish_on_sb_or_send_requests(secured: Secured) -> None:
    await create_streams(secured)
    ledger = await secured.connect("consent")
    await serve_consent_policy(ledger)
    ops = await secured.connect("ops")
    crm = await secured.connect("crm")
    query = ConsentPolicyQuery(call_id=CALL_ID)
    assert await request(ops.nc, subjects.CONSENT_POLICY, query, ConsentPolicy, 2)
    # The ledger is answering, yet a CRM's request never reaches it.
    with pytest.raises(RequestFailed) as failed:
        await request(crm.nc, subjects.CONSENT_POLICY, query, ConsentPolicy, 0.5)
    assert failed.value.error.code is ErrorCode.UNAVAILABLE
    await crm.nc.publish(subjects.consent_record_subject(CALL_ID), b"{}")
    await crm.nc.publish(EVENTS[0].subject(CALL_ID), b"{}")
    await crm.nc.publish("sb.anything.at.all", b"{}")
    refused = await crm.refusals()
    assert len(refused) == 4, refused
    assert all("publish to" in r for r in refused)
    assert await stored_before_a_marker(secured, streams.EVENTS.name) == 0
    assert await stored_before_a_marker(secured, streams.CONSENT_COMMANDS.name) == 0


async def test_a_crm_cannot_read_replies_commands_or_other_consumers(secured: Secured) -> None:
    await create_streams(secured)
    crm = await secured.connect("crm")
    for subject in ("_INBOX.>", "_INBOX.voice.>", "sb.cmd.>", "sb.>", subjects.CONSENT_LOOKUP):
        await crm.nc.subscribe(subject)
    refused = await crm.refusals()
    assert len(refused) == 5, refused
    js = crm.nc.jetstream(timeout=0.5)
    # The API request is refused, so no answer ever comes.
    with pytest.raises(NatsTimeoutError):
        await js.pull_subscribe(
            subjects.CONSENT_COMMANDS_WILDCARD, durable="crm", stream=streams.CONSENT_COMMANDS.name
        )
    with pytest.raises(NatsTimeoutError):
        await js.pull_subscribe(
            subjects.EVENTS_WILDCARD, durable="someone-else", stream=streams.EVENTS.name
        )
    assert len(await crm.refusals()) == 7


async def test_the_voice_worker_asks_the_back_office_and_only_crm_answers(
    secured: Secured,
) -> None:
    from switchboard.contracts.crm import Account, LookupAccount
    from switchboard.testing.crm import start_demo_crm

    crm = await secured.connect("crm")
    voice = await secured.connect("voice")
    relay = await secured.connect("webhook-relay")
    running = await start_demo_crm(crm.nc)
    try:
        account = await request(
            voice.nc,
            subjects.CRM_ACCOUNT_LOOKUP,
            LookupAccount(call_id=CALL_ID, caller_number="+14155550123"),
            Account,
            2.0,
        )
        assert account.account_id == "ACC-1001"
        # Nobody else may stand in for the back office, nor ask it for money.
        await relay.nc.subscribe(subjects.CRM_CREDIT_GRANT)
        await relay.nc.publish(subjects.CRM_CREDIT_GRANT, b"{}")
        refused = await relay.refusals()
        assert len(refused) == 2, refused
        assert await crm.refusals() == []
        assert await voice.refusals() == []
    finally:
        await running.stop()


async def serve_counting_checkpoints(client: Client) -> list[int]:
    """The consent user answers ``sb.consent.checkpoint`` (a request with no fields, so any
    JSON object decodes as one); returns one entry per checkpoint it made."""
    made: list[int] = []
    service = await add_service(client.nc, name=subjects.Owner.CONSENT.value, version="0.0.1")

    async def on_checkpoint(_: CreateCheckpoint) -> LedgerCheckpoint:
        made.append(len(made) + 1)
        return LedgerCheckpoint(
            sequence=0, head_hash="0" * 64, created_at=utcnow(), key_id="k1", signature=""
        )

    spec = subjects.request_spec(subjects.CONSENT_CHECKPOINT)
    await add_typed_endpoint(service, spec, on_checkpoint)
    await client.nc.flush()
    await client.nc.flush()
    return made


async def test_a_crm_cannot_deliver_stored_events_to_a_service_as_requests(
    secured: Secured,
) -> None:
    """Finding 4: with its consumer-create grant the read-only CRM made a push consumer
    whose deliver subject was a request subject, in the service's queue group, and the
    server delivered stored events to the service as requests. Now a JetStream delivery is
    never handled as a request, and the CRM may not name other consumers."""
    await create_streams(secured)
    voice = await secured.connect("voice")
    ledger = await secured.connect("consent")
    ops = await secured.connect("ops")
    crm = await secured.connect("crm")
    made = await serve_counting_checkpoints(ledger)
    stored_event = await EventPublisher(voice.nc.jetstream()).publish(
        CallStarted(call_id=CALL_ID, room="room-1")
    )
    assert stored_event
    js = crm.nc.jetstream(timeout=2)
    # Its own durable's name (granted) and an ephemeral (granted for ordered consumers).
    for name in ("crm", None):
        attack = ConsumerConfig(
            name=name,
            durable_name=name,
            deliver_subject=subjects.CONSENT_CHECKPOINT,
            deliver_group=subjects.Owner.CONSENT.value,
            ack_policy=AckPolicy.EXPLICIT,
        )
        try:
            created = await js.add_consumer(streams.EVENTS.name, attack)
        except NatsTimeoutError:
            continue  # refused by the server: nothing is delivered

        async def delivered(consumer: str = created.name) -> bool:
            info = await ops.nc.jetstream().consumer_info(streams.EVENTS.name, consumer)
            return bool(info.delivered.stream_seq >= 1)

        await eventually(delivered, message="the server to deliver the stored event")
        # The server wrote the delivery to the ledger's connection before this request,
        # and the ledger handles its subscription's messages in order.
        await request(ops.nc, subjects.CONSENT_CHECKPOINT, CreateCheckpoint(), LedgerCheckpoint, 2)
        assert made == [1], name  # the operator's checkpoint alone
        made.clear()
    # Nor may the CRM create or change the consumers of others (the relay's, the ledger's).
    for name in (streams.webhook_consumer("crm"), streams.CONSENT_LEDGER_CONSUMER):
        with pytest.raises(NatsTimeoutError):
            await crm.nc.jetstream(timeout=0.5).add_consumer(
                streams.EVENTS.name, ConsumerConfig(durable_name=name, deliver_subject="x")
            )
    assert len(await crm.refusals()) == 2


async def test_a_read_only_crm_may_do_what_reading_needs_and_nothing_more(
    secured: Secured,
) -> None:
    """Finding 4 (and events item 8): a read-only consumer looks up the account and the
    stream, pulls through its own named durables, follows an ordered consumer (nats-py),
    and may not write, delete or reconfigure anything."""
    await create_streams(secured)
    voice = await secured.connect("voice")
    crm = await secured.connect("crm")
    sent = await EventPublisher(voice.nc.jetstream()).publish(
        CallStarted(call_id=CALL_ID, room="room-1")
    )
    js = crm.nc.jetstream(timeout=2)
    assert (await js.account_info()).streams >= 1
    assert await js.find_stream_name_by_subject(subjects.EVENTS_WILDCARD) == streams.EVENTS.name
    assert (await js.stream_info(streams.EVENTS.name)).state.messages == 1
    psub = await js.pull_subscribe(
        subjects.EVENTS_WILDCARD,
        durable=CRM_BILLING,
        stream=streams.EVENTS.name,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
    )
    (pulled,) = await psub.fetch(1, timeout=5)
    assert decode_event(pulled.data)[0].id == sent
    await pulled.ack_sync()
    ordered = await js.subscribe(subjects.EVENTS_WILDCARD, ordered_consumer=True)
    assert decode_event((await ordered.next_msg(timeout=5)).data)[0].id == sent
    await ordered.unsubscribe()
    assert await js.delete_consumer(streams.EVENTS.name, CRM_BILLING)
    assert await crm.refusals() == []

    refused_js = crm.nc.jetstream(timeout=0.5)
    attempts = [
        refused_js.delete_stream(streams.EVENTS.name),
        refused_js.purge_stream(streams.EVENTS.name),
        refused_js.update_stream(stream_config(streams.EVENTS)),
        refused_js.delete_consumer(streams.EVENTS.name, streams.webhook_consumer("crm")),
        refused_js.delete_msg(streams.EVENTS.name, 1),
        refused_js.pull_subscribe(
            subjects.EVENTS_WILDCARD, durable="crm-unlisted", stream=streams.EVENTS.name
        ),
    ]
    for attempt in attempts:
        with pytest.raises(NatsTimeoutError):
            await attempt
    assert len(await crm.refusals()) == len(attempts)
    assert await stored(secured, streams.EVENTS.name) == 1


SERVICE_USERS = ("voice", "consent", "escalation", "sip-bridge", "webhook-relay", "crm")


@pytest.mark.parametrize("user", SERVICE_USERS)
async def test_no_service_may_create_or_reconfigure_a_stream(secured: Secured, user: str) -> None:
    """Finding 3: as ``voice``, ``update_stream(SB_EVENTS, max_msgs=1)`` deleted all but one
    stored event, and changing the command stream's subjects broke every RecordConsent.
    Streams are made by the provisioning step; services may only read their state."""
    await create_streams(secured)
    voice = await secured.connect("voice")
    publisher = EventPublisher(voice.nc.jetstream())
    for n in range(3):
        await publisher.publish(CallStarted(call_id=f"{CALL_ID}-{n}", room="room-1"))
    client = await secured.connect(user)
    js = client.nc.jetstream(timeout=0.5)
    shrunk = stream_config(streams.EVENTS)
    shrunk.max_msgs = 1
    moved = stream_config(streams.CONSENT_COMMANDS)
    moved.subjects = ["sb.elsewhere.>"]
    attempts = [
        js.update_stream(shrunk),
        js.update_stream(moved),
        js.add_stream(stream_config(streams.WEBHOOK_DEAD_LETTERS)),
    ]
    for attempt in attempts:
        with pytest.raises(NatsTimeoutError):
            await attempt
    assert len(await client.refusals()) == len(attempts)
    ops = await secured.connect("ops")
    info = await ops.nc.jetstream().stream_info(streams.EVENTS.name)
    assert info.state.messages == 3
    commands = await ops.nc.jetstream().stream_info(streams.CONSENT_COMMANDS.name)
    assert commands.config.subjects == list(streams.CONSENT_COMMANDS.subjects)
