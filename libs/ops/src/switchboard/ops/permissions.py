"""Who may publish and subscribe to what on NATS, derived from the subject table.

Every request subject in ``subjects.REQUESTS`` is answered only by its owner, every event
in ``envelope.EVENTS`` is published only by its owner (plus the documented exceptions in
``EXTRA_PUBLISHERS``), and the JetStream API subjects each process needs are listed with
the reason it needs them. ``natsconf.render`` turns the table into a nats-server
configuration fragment (one account, one user per role)::

    python -m switchboard.ops permissions --out deploy/k8s/nats/permissions.conf

Replies: every user subscribes only under its own inbox prefix ``_INBOX.<user>``
(``contracts.subjects.inbox_prefix``), so one process cannot read the replies meant for
another (a CRM cannot read ledger look-ups). ``runtime.bus.connect`` connects the
services with it, whose NATS user is their service name.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from switchboard.contracts import streams, subjects
from switchboard.contracts.envelope import EVENTS, EventSpec
from switchboard.contracts.subjects import REQUESTS, Owner, inbox_prefix

ACCOUNT: Final = "SWITCHBOARD"
"""The one NATS account all Switchboard users (and the JetStream streams) live in."""
JS_API: Final = "$JS.API"
JS_ACK: Final = "$JS.ACK"
SRV: Final = "$SRV"
KV_PREFIX: Final = "$KV"
QUEUE_STATE_BUCKET: Final = "sb_queue_state"
"""The KV bucket a workforce system writes queue state into and the router reads
(``SB_QUEUE_STATE_BUCKET`` of the escalation router)."""
DEFAULT_CRM_USERS: Final = (Owner.CRM.value,)
BACK_OFFICE_USER: Final = Owner.CRM.value
"""The CRM user that answers the back-office requests (``sb.crm.*``); other CRM users
(``--crm NAME``) only read events."""
_CONSUMER_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
DEFAULT_WEBHOOK_ENDPOINTS: Final = ("crm",)
"""The webhook relay's endpoints in the shipped configuration (``deploy/k8s``)."""


class Role(enum.StrEnum):
    """What a NATS user is for. A service's role and user are its ``subjects.Owner`` name."""

    VOICE = Owner.VOICE.value
    CONSENT = Owner.CONSENT.value
    ESCALATION = Owner.ESCALATION.value
    SIP_BRIDGE = Owner.SIP_BRIDGE.value
    CRM = Owner.CRM.value
    WEBHOOK_RELAY = Owner.WEBHOOK_RELAY.value
    WORKFORCE = "workforce"
    OPS = "ops"
    PROVISIONER = "provisioner"


CALLERS: Final[Mapping[str, tuple[Role, ...]]] = {
    subjects.CONSENT_POLICY: (Role.VOICE,),
    subjects.CONSENT_VERIFY: (),
    subjects.CONSENT_LOOKUP: (),
    subjects.CONSENT_ERASE: (),
    subjects.CONSENT_CHECKPOINT: (),
    # The voice worker seals its events' personal fields with the caller's key.
    subjects.CONSENT_CALLER_KEY: (Role.VOICE,),
    # The CRM of record opens them (the back-office user only: see crm()).
    subjects.CONSENT_UNSEAL: (Role.CRM,),
    subjects.ESCALATION_DECIDE: (Role.VOICE,),
    subjects.TRANSFER_PLACE: (Role.VOICE,),
    subjects.TRANSFER_CANCEL: (Role.VOICE,),
    subjects.TRANSFER_SIMULATE: (Role.VOICE,),
    # The voice worker's briefing session reports the human's decision.
    subjects.TRANSFER_DECIDE: (Role.VOICE,),
    # The voice worker's scenario runner checks that no leg outlived its call.
    subjects.TRANSFER_LEGS: (Role.VOICE,),
    subjects.CRM_ACCOUNT_LOOKUP: (Role.VOICE,),
    subjects.CRM_CATALOG_LIST: (Role.VOICE,),
    subjects.CRM_SUPPORT_STEPS: (Role.VOICE,),
    subjects.CRM_REFUND_REQUEST: (Role.VOICE,),
    subjects.CRM_CREDIT_GRANT: (Role.VOICE,),
    subjects.CRM_ORDER_PLACE: (Role.VOICE,),
    subjects.CRM_TICKET_OPEN: (Role.VOICE,),
    subjects.WEBHOOK_DEAD_LETTERS: (),
    subjects.WEBHOOK_REPLAY: (),
}
"""Who sends each request besides ``ops`` (which may send every request but those in
``NOT_FOR_OPS``: audits, erasure, readiness probes). A new request subject must be added
here (a test checks)."""

NOT_FOR_OPS: Final = frozenset({subjects.CONSENT_CALLER_KEY})
"""Requests even operators do not send: a caller's key opens every event of theirs and
asking makes one; only the voice worker, which already hears the caller, needs it."""

EXTRA_PUBLISHERS: Final[Mapping[tuple[str, str], tuple[tuple[Role, str], ...]]] = {
    ("escalation", "decided"): (
        (
            Role.VOICE,
            "its local fallback decision, when the router does not answer",
        ),
    ),
}
"""Events published by a role other than their owner, with the reason."""


@dataclass(frozen=True, slots=True)
class Grant:
    """One subject a user may publish or subscribe to, and why."""

    subject: str
    why: str


@dataclass(frozen=True, slots=True)
class UserPermissions:
    """One NATS user: its role and its publish/subscribe allow lists."""

    user: str
    role: Role
    summary: str
    publish: tuple[Grant, ...]
    subscribe: tuple[Grant, ...]
    allow_responses: bool = False
    """Answer requests it received (``nats.micro`` replies) without a publish grant
    on the requester's inbox."""

    def may_publish(self, subject: str) -> bool:
        """Whether the server lets this user publish to ``subject``."""
        return any(subject_matches(g.subject, subject) for g in self.publish)

    def may_subscribe(self, subject: str) -> bool:
        """Whether the server lets this user subscribe to ``subject`` (a wildcard
        subscription only when an allowed one is as wide)."""
        return any(subject_matches(g.subject, subject) for g in self.subscribe)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS matching: ``*`` is one token, a final ``>`` one or more. A wildcard in
    ``subject`` matches only the same or a wider wildcard in ``pattern``."""
    want = pattern.split(".")
    have = subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have):
            return False
        if have[i] == ">":
            return False
        if token != "*" and token != have[i]:
            return False
    return len(have) == len(want)


def _inbox(user: str) -> Grant:
    return Grant(
        f"{inbox_prefix(user)}.>",
        "replies to its own requests and JetStream API calls, and pulled messages",
    )


def _service_discovery(name: str) -> tuple[Grant, ...]:
    why = "nats.micro discovery: PING, INFO, STATS"
    return (
        Grant(f"{SRV}.PING", why),
        Grant(f"{SRV}.INFO", why),
        Grant(f"{SRV}.STATS", why),
        Grant(f"{SRV}.*.{name}", why),
        Grant(f"{SRV}.*.{name}.*", why),
    )


def _stream_reader(spec: streams.StreamSpec) -> Grant:
    # Services check at start-up that the provisioning step made the stream; creating or
    # updating one is the provisioner's alone (an update can shrink a stream to nothing).
    return Grant(f"{JS_API}.STREAM.INFO.{spec.name}", f"check {spec.name} exists, read its state")


def _stream_admin(spec: streams.StreamSpec) -> tuple[Grant, ...]:
    why = f"provisioning: create {spec.name}, or update it to the contract"
    return (
        Grant(f"{JS_API}.STREAM.CREATE.{spec.name}", why),
        Grant(f"{JS_API}.STREAM.UPDATE.{spec.name}", why),
        Grant(f"{JS_API}.STREAM.INFO.{spec.name}", f"read {spec.name}'s config"),
    )


def _bucket_admin(spec: streams.BucketSpec) -> tuple[Grant, ...]:
    why = f"provisioning: create the {spec.name} bucket when it is missing"
    return (
        Grant(f"{JS_API}.STREAM.CREATE.{spec.stream}", why),
        Grant(f"{JS_API}.STREAM.INFO.{spec.stream}", f"see whether {spec.name} exists"),
    )


def _consumer_owner(stream: str, consumer: str, why: str) -> tuple[Grant, ...]:
    """Create, inspect, pull from and acknowledge one durable consumer."""
    create = f"create or update its durable consumer {consumer} on {stream} ({why})"
    return (
        Grant(f"{JS_API}.CONSUMER.DURABLE.CREATE.{stream}.{consumer}", create),
        Grant(f"{JS_API}.CONSUMER.CREATE.{stream}.{consumer}", create + ", named form"),
        Grant(f"{JS_API}.CONSUMER.CREATE.{stream}.{consumer}.>", create + ", filtered form"),
        Grant(f"{JS_API}.CONSUMER.INFO.{stream}.{consumer}", f"read {consumer}'s lag"),
        Grant(f"{JS_API}.CONSUMER.MSG.NEXT.{stream}.{consumer}", f"pull from {consumer}"),
        Grant(f"{JS_ACK}.{stream}.{consumer}.>", "ack, nak or term what it pulled"),
    )


def _answers(owner: Owner) -> tuple[Grant, ...]:
    return tuple(
        Grant(r.subject, f"answer it (queue group {owner})") for r in REQUESTS if r.owner is owner
    )


def _asks(role: Role) -> tuple[Grant, ...]:
    return tuple(
        Grant(req.subject, f"ask {req.owner}")
        for req in REQUESTS
        if (role is Role.OPS and req.subject not in NOT_FOR_OPS)
        or role in CALLERS.get(req.subject, ())
    )


def _publishes_events(role: Role) -> tuple[Grant, ...]:
    out: list[Grant] = []
    for spec in EVENTS:
        if spec.owner.value == role.value:
            out.append(_event_grant(spec, "it owns them"))
        for extra, why in EXTRA_PUBLISHERS.get((spec.domain, spec.name), ()):
            if extra is role:
                out.append(_event_grant(spec, why))
    return tuple(out)


def _event_grant(spec: EventSpec, why: str) -> Grant:
    # JetStream publish; the stream's ack comes back to the publisher's inbox.
    return Grant(spec.wildcard, f"{spec.domain}.{spec.name} events: {why}")


def _queue_state_stream(bucket: str) -> str:
    return f"KV_{bucket}"


def voice() -> UserPermissions:
    user = Owner.VOICE.value
    return UserPermissions(
        user=user,
        role=Role.VOICE,
        summary="Voice workers: ask the ledger, router and bridge; record consent decisions; "
        "publish call, agent and recording events; follow their own calls' events.",
        publish=(
            *_asks(Role.VOICE),
            _stream_reader(streams.EVENTS),
            _stream_reader(streams.CONSENT_COMMANDS),
            Grant(
                subjects.consent_record_subject("*"),
                "RecordConsent commands (JetStream publish; the ledger appends them)",
            ),
            Grant(
                f"{SRV}.PING.{Owner.SIP_BRIDGE.value}",
                "during a transfer: is any SIP bridge still there (a crashed one sends nothing)",
            ),
            Grant(
                f"{SRV}.PING.{Owner.SIP_BRIDGE.value}.*",
                "during a transfer: is the bridge instance running it still there",
            ),
            *_publishes_events(Role.VOICE),
        ),
        subscribe=(
            Grant(
                subjects.EVENTS_WILDCARD,
                "its calls' events (sb.evt.*.*.<call_id>): consent receipts, transfer status",
            ),
            _inbox(user),
        ),
    )


def consent() -> UserPermissions:
    user = Owner.CONSENT.value
    cmds = streams.CONSENT_COMMANDS
    return UserPermissions(
        user=user,
        role=Role.CONSENT,
        summary="Consent ledger: answers sb.consent.*, consumes consent commands, "
        "publishes consent receipts.",
        publish=(
            _stream_reader(cmds),
            _stream_reader(streams.EVENTS),
            *_consumer_owner(cmds.name, streams.CONSENT_LEDGER_CONSUMER, "the ledger's ingest"),
            *_publishes_events(Role.CONSENT),
        ),
        subscribe=(
            *_answers(Owner.CONSENT),
            *_service_discovery(user),
            _inbox(user),
        ),
        allow_responses=True,
    )


def escalation(bucket: str = QUEUE_STATE_BUCKET) -> UserPermissions:
    user = Owner.ESCALATION.value
    kv = _queue_state_stream(bucket)
    read = f"read queue state from the {bucket} KV bucket"
    return UserPermissions(
        user=user,
        role=Role.ESCALATION,
        summary="Escalation router: answers sb.escalation.decide, publishes its decisions, "
        "reads queue state.",
        publish=(
            _stream_reader(streams.EVENTS),
            *_publishes_events(Role.ESCALATION),
            Grant(f"{JS_API}.STREAM.INFO.{kv}", f"js.key_value(): open the {bucket} bucket"),
            Grant(f"{JS_API}.STREAM.CREATE.{kv}", f"create the {bucket} bucket when missing"),
            Grant(f"{JS_API}.DIRECT.GET.{kv}", read + " (direct get)"),
            Grant(f"{JS_API}.DIRECT.GET.{kv}.>", read + " (direct get by key)"),
            Grant(f"{JS_API}.STREAM.MSG.GET.{kv}", read + " (buckets without direct get)"),
        ),
        subscribe=(
            *_answers(Owner.ESCALATION),
            *_service_discovery(user),
            _inbox(user),
        ),
        allow_responses=True,
    )


def _transfer_journal() -> tuple[Grant, ...]:
    bucket = streams.TRANSFER_STATE
    why = f"its transfers in the {bucket.name} KV bucket, so a crash orphans none"
    return (
        Grant(f"{JS_API}.STREAM.INFO.{bucket.stream}", f"open the {bucket.name} bucket"),
        Grant(f"{KV_PREFIX}.{bucket.name}.>", why + ": write (a JetStream publish)"),
        Grant(f"{JS_API}.DIRECT.GET.{bucket.stream}.>", why + ": read one"),
        Grant(f"{JS_API}.STREAM.MSG.GET.{bucket.stream}", why + ": list them"),
    )


def sip_bridge() -> UserPermissions:
    user = Owner.SIP_BRIDGE.value
    return UserPermissions(
        user=user,
        role=Role.SIP_BRIDGE,
        summary="SIP bridge: answers sb.transfer.* (place, cancel, the human's decision, "
        "legs), publishes transfer status events.",
        publish=(
            _stream_reader(streams.EVENTS),
            *_publishes_events(Role.SIP_BRIDGE),
            *_transfer_journal(),
            Grant(
                f"{SRV}.PING.{user}.*",
                "is the instance that holds a transfer still running (else end it cleanly)",
            ),
        ),
        subscribe=(
            *_answers(Owner.SIP_BRIDGE),
            *_service_discovery(user),
            _inbox(user),
        ),
        allow_responses=True,
    )


def crm(user: str = BACK_OFFICE_USER, consumers: Sequence[str] = ()) -> UserPermissions:
    """A CRM integration: reads events, never writes, deletes or delivers elsewhere.

    It creates, pulls from and deletes its own durable consumers: the one named ``user``
    and each of ``consumers`` (names starting ``<user>-``: NATS wildcards are whole
    subject tokens, so ``crm-*`` cannot be granted and each name is listed). It may create
    ephemeral consumers (nats-py's ordered consumer, which pushes to the creator's inbox),
    look up streams and read the account's JetStream info.

    No subject grant can bind a push consumer's deliver subject (it is in the request
    body), so a CRM could point one at a request subject; the services' endpoints never
    handle a JetStream delivery as a request (``runtime.service.jetstream_delivery``).

    The user named ``crm`` is also the back office: it answers ``sb.crm.*`` (through
    ``allow_responses``, so it still publishes nothing on ``sb.>``), and, as the CRM of
    record, may open events' sealed personal fields (``sb.consent.unseal``) while the
    caller's key exists. Other CRM users only read, so an analytics feed cannot answer a
    refund request and sees callers only by reference.
    """
    events = streams.EVENTS.name
    for name in consumers:
        if not name.startswith(f"{user}-") or not _CONSUMER_NAME.fullmatch(name):
            raise ValueError(f"CRM user {user!r}'s consumers must be named {user}-<name>: {name!r}")
    back_office = user == BACK_OFFICE_USER
    answers = (*_answers(Owner.CRM), *_service_discovery(user)) if back_office else ()
    read = "read-only JetStream lookups (clients make them on connect and on subscribe)"
    own = tuple(
        g
        for name in (user, *consumers)
        for g in (
            *_consumer_owner(events, name, "read every event durably"),
            Grant(f"{JS_API}.CONSUMER.DELETE.{events}.{name}", f"remove its consumer {name}"),
        )
    )
    return UserPermissions(
        user=user,
        role=Role.CRM,
        summary=f"CRM integration: reads events (live, through its durable consumers on "
        f"{events}, or ordered consumers); publishes nothing on sb.>"
        + ("; answers the back-office requests sb.crm.*." if back_office else "."),
        publish=(
            Grant(f"{JS_API}.INFO", read + ": the account's JetStream info"),
            Grant(f"{JS_API}.STREAM.NAMES", read + ": which stream holds a subject"),
            Grant(f"{JS_API}.STREAM.INFO.{events}", f"read {events}'s state"),
            *own,
            Grant(
                f"{JS_API}.CONSUMER.CREATE.{events}",
                "ephemeral consumers: nats-py's ordered consumer (flow control, no acks) "
                "delivering to its own inbox",
            ),
            Grant(f"$JS.FC.{events}.>", "answer an ordered consumer's flow control"),
            *(_asks(Role.CRM) if back_office else ()),
        ),
        subscribe=(
            Grant(subjects.EVENTS_WILDCARD, "live events (core NATS, no replay)"),
            *answers,
            _inbox(user),
        ),
        allow_responses=back_office,
    )


def webhook_relay(endpoints: Sequence[str] = DEFAULT_WEBHOOK_ENDPOINTS) -> UserPermissions:
    """The webhook relay: one durable consumer per endpoint on the events stream, its
    dead letters on their own stream, and the operator's list/replay requests."""
    user = Owner.WEBHOOK_RELAY.value
    events = streams.EVENTS.name
    dead = streams.WEBHOOK_DEAD_LETTERS
    consumers = tuple(
        g
        for endpoint in endpoints
        for g in (
            *_consumer_owner(
                events, streams.webhook_consumer(endpoint), f"deliver to endpoint {endpoint}"
            ),
            Grant(
                f"{JS_API}.CONSUMER.DELETE.{events}.{streams.webhook_consumer(endpoint)}",
                "recreate it at its ack floor after a restart, so redeliveries keep "
                "each call's order",
            ),
        )
    )
    keep = "keep dead letters"
    return UserPermissions(
        user=user,
        role=Role.WEBHOOK_RELAY,
        summary="Webhook relay: reads events through one durable consumer per endpoint, "
        "keeps dead letters, answers sb.webhook.* for operators.",
        publish=(
            _stream_reader(streams.EVENTS),
            *consumers,
            _stream_reader(dead),
            Grant(subjects.WEBHOOK_DEAD_WILDCARD, f"{keep} (JetStream publish)"),
            Grant(f"{JS_API}.STREAM.MSG.GET.{dead.name}", f"{keep}: read them back"),
            Grant(f"{JS_API}.STREAM.MSG.DELETE.{dead.name}", f"{keep}: remove a replayed one"),
        ),
        subscribe=(
            *_answers(Owner.WEBHOOK_RELAY),
            *_service_discovery(user),
            _inbox(user),
        ),
        allow_responses=True,
    )


def workforce(bucket: str = QUEUE_STATE_BUCKET) -> UserPermissions:
    user = Role.WORKFORCE.value
    return UserPermissions(
        user=user,
        role=Role.WORKFORCE,
        summary=f"Workforce feed: writes queue state into the {bucket} KV bucket.",
        publish=(
            Grant(f"{KV_PREFIX}.{bucket}.>", "put one queue's state (a JetStream publish)"),
            Grant(
                f"{JS_API}.STREAM.INFO.{_queue_state_stream(bucket)}",
                f"js.key_value(): open the {bucket} bucket",
            ),
        ),
        subscribe=(_inbox(user),),
    )


def ops() -> UserPermissions:
    user = Role.OPS.value
    why = "read-only JetStream status for operators"
    return UserPermissions(
        user=user,
        role=Role.OPS,
        summary="Operators and auditors: every request (verify, lookup, erase, "
        "checkpoints, probes), service discovery, read-only JetStream status; no events, "
        "no commands, no message contents.",
        publish=(
            *_asks(Role.OPS),
            Grant(f"{SRV}.>", "nats.micro discovery: PING, INFO, STATS of every service"),
            Grant(f"{JS_API}.INFO", why),
            Grant(f"{JS_API}.STREAM.NAMES", why),
            Grant(f"{JS_API}.STREAM.LIST", why),
            Grant(f"{JS_API}.STREAM.INFO.*", why),
            Grant(f"{JS_API}.CONSUMER.NAMES.*", why),
            Grant(f"{JS_API}.CONSUMER.LIST.*", why),
            Grant(f"{JS_API}.CONSUMER.INFO.*.*", why),
        ),
        subscribe=(_inbox(user),),
    )


def provisioner() -> UserPermissions:
    """The provisioning step (``python -m switchboard.runtime.provision``): the only user
    that creates streams or changes their configuration."""
    user = Role.PROVISIONER.value
    return UserPermissions(
        user=user,
        role=Role.PROVISIONER,
        summary="Provisioning: creates the streams and keeps them to the contract; "
        "reads and writes no messages.",
        publish=(
            *(g for spec in streams.ALL_STREAMS for g in _stream_admin(spec)),
            *(g for bucket in streams.ALL_BUCKETS for g in _bucket_admin(bucket)),
        ),
        subscribe=(_inbox(user),),
    )


def table(
    crm_users: Sequence[str] = DEFAULT_CRM_USERS,
    bucket: str = QUEUE_STATE_BUCKET,
    webhook_endpoints: Sequence[str] = DEFAULT_WEBHOOK_ENDPOINTS,
    crm_consumers: Mapping[str, Sequence[str]] | None = None,
) -> tuple[UserPermissions, ...]:
    """Every user, services first. One CRM user per integration, each with its consumer;
    the webhook relay with one consumer per endpoint."""
    users = (
        voice(),
        consent(),
        escalation(bucket),
        sip_bridge(),
        *(crm(name, (crm_consumers or {}).get(name, ())) for name in crm_users),
        webhook_relay(webhook_endpoints),
        workforce(bucket),
        ops(),
        provisioner(),
    )
    unknown = set(crm_consumers or {}) - set(crm_users)
    if unknown:
        raise ValueError(f"Consumers for CRM users that are not listed: {sorted(unknown)}.")
    names = [u.user for u in users]
    if len(set(names)) != len(names):
        raise ValueError(f"NATS user names must be unique: {names}.")
    return users
