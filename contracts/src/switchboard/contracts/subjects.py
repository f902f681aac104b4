"""Every NATS subject Switchboard uses, with its owner.

Requests are ``sb.<service>.<verb>`` or ``sb.<service>.<noun>.<verb>`` (answered by a
``nats.micro`` service of that name; the group is everything before the verb),
events are ``sb.evt.<domain>.<event>.<call_id>`` on the events stream, and consent
commands are ``sb.cmd.consent.record.<call_id>`` on their own work-queue stream. Only
call ids (whose alphabet is fixed by ``CallId``) are ever interpolated into a subject.

Replies come to ``_INBOX.<user>.…``: with NATS permissions on, every user may subscribe
only under its own inbox prefix (``inbox_prefix``), so no process reads replies meant for
another.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from switchboard.contracts import (
    consent,
    crm,
    escalation,
    sealed,
    simulation,
    transfer,
    webhook,
)
from switchboard.contracts.base import Message


class Owner(enum.StrEnum):
    """The process that answers or publishes a subject: the one table of service names.

    A value is the process's ``nats.micro`` service name and queue group, its NATS user
    (and so its inbox prefix) and its log name, so each is one subject token.
    """

    VOICE = "voice"
    CONSENT = "consent"
    ESCALATION = "escalation"
    SIP_BRIDGE = "sip-bridge"
    CRM = "crm"
    """The customer's back office adapter (the demo CRM locally): answers ``sb.crm.*``."""
    WEBHOOK_RELAY = "webhook-relay"
    """Delivers events to CRMs over HTTP; answers ``sb.webhook.*`` for its dead letters."""


CONSENT_POLICY = "sb.consent.policy"
CONSENT_VERIFY = "sb.consent.verify"
CONSENT_LOOKUP = "sb.consent.lookup"
CONSENT_ERASE = "sb.consent.erase"
CONSENT_CHECKPOINT = "sb.consent.checkpoint"
CONSENT_CALLER_KEY = "sb.consent.caller_key"
CONSENT_UNSEAL = "sb.consent.unseal"
ESCALATION_DECIDE = "sb.escalation.decide"
TRANSFER_PLACE = "sb.transfer.place"
TRANSFER_CANCEL = "sb.transfer.cancel"
TRANSFER_SIMULATE = "sb.transfer.simulate"
TRANSFER_DECIDE = "sb.transfer.decide"
TRANSFER_LEGS = "sb.transfer.legs"
CRM_ACCOUNT_LOOKUP = "sb.crm.account.lookup"
CRM_CATALOG_LIST = "sb.crm.catalog.list"
CRM_SUPPORT_STEPS = "sb.crm.support.steps"
CRM_REFUND_REQUEST = "sb.crm.refund.request"
CRM_CREDIT_GRANT = "sb.crm.credit.grant"
CRM_ORDER_PLACE = "sb.crm.order.place"
CRM_TICKET_OPEN = "sb.crm.ticket.open"
WEBHOOK_DEAD_LETTERS = "sb.webhook.deadletter.list"
WEBHOOK_REPLAY = "sb.webhook.deadletter.replay"

EVENTS_PREFIX = "sb.evt"
EVENTS_WILDCARD = "sb.evt.>"
CONSENT_COMMANDS_PREFIX = "sb.cmd.consent"
CONSENT_COMMANDS_WILDCARD = "sb.cmd.consent.>"
WEBHOOK_DEAD_PREFIX = "sb.dead.webhook"
WEBHOOK_DEAD_WILDCARD = "sb.dead.webhook.>"
INBOX_ROOT = "_INBOX"

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


def consent_record_subject(call_id: str) -> str:
    """Subject of a ``RecordConsent`` command for one call."""
    return f"{CONSENT_COMMANDS_PREFIX}.record.{call_id}"


def webhook_dead_letter_subject(endpoint: str, call_id: str) -> str:
    """Subject of one dead letter of the webhook relay (endpoint and call are tokens)."""
    return f"{WEBHOOK_DEAD_PREFIX}.{endpoint}.{call_id}"


def call_events_wildcard(call_id: str) -> str:
    """Every event of one call, whatever its domain."""
    return f"{EVENTS_PREFIX}.*.*.{call_id}"


def inbox_prefix(user: str) -> str:
    """The inbox prefix a NATS user connects with (``nats.connect(inbox_prefix=...)``).

    Services connect as their service name; ``user`` must be one subject token.
    """
    if not _TOKEN.fullmatch(user):
        raise ValueError(f"A NATS user or service name must be one subject token: {user!r}.")
    return f"{INBOX_ROOT}.{user}"


@dataclass(frozen=True, slots=True)
class RequestSubject:
    """A request/reply subject: who answers it and with which types."""

    subject: str
    owner: Owner
    request: type[Message]
    reply: Any
    """The reply type: a Struct class or a tagged union of them."""
    summary: str

    @property
    def group(self) -> str:
        """The ``nats.micro`` group (``sb.<service>``)."""
        return self.subject.rsplit(".", 1)[0]

    @property
    def endpoint(self) -> str:
        """The ``nats.micro`` endpoint name (the verb)."""
        return self.subject.rsplit(".", 1)[1]


REQUESTS: tuple[RequestSubject, ...] = (
    RequestSubject(
        CONSENT_POLICY,
        Owner.CONSENT,
        consent.ConsentPolicyQuery,
        consent.ConsentPolicy,
        "The consent policy for a caller: ask or notify, notice text and version.",
    ),
    RequestSubject(
        CONSENT_VERIFY,
        Owner.CONSENT,
        consent.VerifyLedger,
        consent.LedgerVerification,
        "Verify the ledger's hash chain and signed checkpoints.",
    ),
    RequestSubject(
        CONSENT_LOOKUP,
        Owner.CONSENT,
        consent.LookupConsent,
        consent.ConsentRecords,
        "Consent records of one call or one caller.",
    ),
    RequestSubject(
        CONSENT_ERASE,
        Owner.CONSENT,
        consent.EraseCaller,
        consent.CallerErased,
        "Erase one caller's personal data (destroy their key); the chain still verifies.",
    ),
    RequestSubject(
        CONSENT_CHECKPOINT,
        Owner.CONSENT,
        consent.CreateCheckpoint,
        consent.LedgerCheckpoint,
        "Sign a checkpoint of the ledger head now.",
    ),
    RequestSubject(
        CONSENT_CALLER_KEY,
        Owner.CONSENT,
        sealed.GetCallerKey,
        sealed.CallerKey,
        "The caller's reference and event data key (made on first use), to seal the "
        "personal fields of the caller's events; the voice worker only.",
    ),
    RequestSubject(
        CONSENT_UNSEAL,
        Owner.CONSENT,
        sealed.OpenSealed,
        sealed.SealedOpened,
        "Open an event's sealed personal fields while the caller's key exists "
        "(erased: error code erased).",
    ),
    RequestSubject(
        ESCALATION_DECIDE,
        Owner.ESCALATION,
        escalation.EscalationRequest,
        escalation.HandoffDecision,
        "Decide where an escalated call goes, with the rules that fired.",
    ),
    RequestSubject(
        TRANSFER_PLACE,
        Owner.SIP_BRIDGE,
        transfer.PlaceTransfer,
        transfer.TransferPlaceReply,
        "Transfer a caller to a human; status follows as transfer events.",
    ),
    RequestSubject(
        TRANSFER_CANCEL,
        Owner.SIP_BRIDGE,
        transfer.CancelTransfer,
        transfer.TransferCancelled,
        "Cancel a transfer in progress.",
    ),
    RequestSubject(
        TRANSFER_DECIDE,
        Owner.SIP_BRIDGE,
        transfer.ReportHumanDecision,
        transfer.HumanDecisionNoted,
        "The decision of the human being briefed: accept, decline, voicemail, hung up.",
    ),
    RequestSubject(
        TRANSFER_LEGS,
        Owner.SIP_BRIDGE,
        transfer.TransferLegsQuery,
        transfer.TransferLegs,
        "The transfers in progress and the dialled legs of one call.",
    ),
    RequestSubject(
        TRANSFER_SIMULATE,
        Owner.SIP_BRIDGE,
        simulation.ScriptCarrier,
        simulation.CarrierScripted,
        "Script the simulated carrier for one call (simulated driver only).",
    ),
    RequestSubject(
        CRM_ACCOUNT_LOOKUP,
        Owner.CRM,
        crm.LookupAccount,
        crm.Account,
        "The caller's account and latest invoice, as the CRM holds them.",
    ),
    RequestSubject(
        CRM_CATALOG_LIST,
        Owner.CRM,
        crm.ListCatalog,
        crm.Catalog,
        "The products and plans on sale by phone, with prices.",
    ),
    RequestSubject(
        CRM_SUPPORT_STEPS,
        Owner.CRM,
        crm.FindSupportSteps,
        crm.SupportSteps,
        "The next remote fix for a problem, or none left.",
    ),
    RequestSubject(
        CRM_REFUND_REQUEST,
        Owner.CRM,
        crm.RequestRefund,
        crm.ActionConfirmed,
        "Ask billing to refund an amount within the agent's configured authority.",
    ),
    RequestSubject(
        CRM_CREDIT_GRANT,
        Owner.CRM,
        crm.GrantCredit,
        crm.ActionConfirmed,
        "Put a goodwill credit on the caller's account within the agent's authority.",
    ),
    RequestSubject(
        CRM_ORDER_PLACE,
        Owner.CRM,
        crm.PlaceOrder,
        crm.ActionConfirmed,
        "Place an order for the caller (when orders by phone are allowed).",
    ),
    RequestSubject(
        CRM_TICKET_OPEN,
        Owner.CRM,
        crm.OpenTicket,
        crm.ActionConfirmed,
        "Open a follow-up ticket for people to pick up after the call.",
    ),
    RequestSubject(
        WEBHOOK_DEAD_LETTERS,
        Owner.WEBHOOK_RELAY,
        webhook.ListDeadLetters,
        webhook.DeadLetters,
        "The webhook relay's dead letters, oldest first.",
    ),
    RequestSubject(
        WEBHOOK_REPLAY,
        Owner.WEBHOOK_RELAY,
        webhook.ReplayDeadLetters,
        webhook.DeadLettersReplayed,
        "Deliver dead letters again, each call's in order; delivered ones are removed.",
    ),
)

_BY_SUBJECT: dict[str, RequestSubject] = {r.subject: r for r in REQUESTS}


class UnknownRequestSubject(LookupError):
    """A subject that is not in the request table."""


def request_spec(subject: str) -> RequestSubject:
    """The request table's entry for ``subject``: who answers it and with which types."""
    try:
        return _BY_SUBJECT[subject]
    except KeyError:
        known = ", ".join(sorted(_BY_SUBJECT))
        raise UnknownRequestSubject(
            f"{subject!r} is not a request subject; the request subjects are {known}."
        ) from None
