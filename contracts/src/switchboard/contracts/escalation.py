"""Escalation requests and the router's explained handoff decisions."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Annotated

import msgspec

from switchboard.contracts.base import (
    CallId,
    Identifier,
    LanguageTag,
    Message,
    ShortText,
    new_id,
    utcnow,
)
from switchboard.contracts.handoff import HandoffContext


class EscalationReason(enum.StrEnum):
    """Why the call is being escalated."""

    CALLER_REQUEST = "caller_request"
    AGENT_CANNOT_HELP = "agent_cannot_help"
    REPEATED_FAILURE = "repeated_failure"
    LEGAL_THREAT = "legal_threat"
    SAFETY = "safety"
    MANAGER_REQUEST = "manager_request"
    """The AI manager could not resolve the call and asks for a human."""


class EscalationTrigger(enum.StrEnum):
    """What noticed the need: the model's tool, or a deterministic detector."""

    LLM_TOOL = "llm_tool"
    PHRASE = "phrase"
    FAILURE_COUNT = "failure_count"


class TransferMode(enum.StrEnum):
    """How a human transfer is made.

    Warm: the caller waits on hold while the human is dialled into a consult room, briefed
    by an AI briefing session and decides; only an accepting human is moved to the caller.
    Cold: the caller is sent a SIP REFER to the destination; nobody is briefed (voicemail
    boxes, IVRs, partners that route the call on themselves).
    """

    WARM = "warm"
    COLD = "cold"


class HandoffTarget(enum.StrEnum):
    """Where the call goes next."""

    AI_MANAGER = "ai_manager"
    AI_SPECIALIST = "ai_specialist"
    HUMAN_QUEUE = "human_queue"
    CALLBACK = "callback"
    VOICEMAIL = "voicemail"


SipAddress = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^(\+[1-9][0-9]{6,14}|sips?:[A-Za-z0-9_.+-]{1,64}@[A-Za-z0-9.-]{1,190}(:[0-9]{1,5})?)\Z",
        description="E.164 number or SIP URI of a business destination (from configuration, "
        "never from the caller or the model).",
    ),
]


class Destination(Message):
    """A human destination from configuration: a queue's number or SIP address."""

    id: Identifier
    address: SipAddress
    label: ShortText = ""
    trunk_id: Identifier | None = None


class EscalationRequest(Message):
    """Ask the router where the call should go (``sb.escalation.decide``)."""

    call_id: CallId
    reason: EscalationReason
    trigger: EscalationTrigger
    current_agent: Identifier
    request_id: Identifier = msgspec.field(default_factory=new_id)
    intent: Identifier | None = None
    language: LanguageTag = "en"
    vip_tier: Identifier | None = None
    attempts: int = 0
    wants_human: bool = False
    """The caller explicitly asked for a person rather than a manager."""
    context: HandoffContext | None = None
    requested_at: dt.datetime = msgspec.field(default_factory=utcnow)


class RuleHit(Message):
    """One rule that fired in a decision, with its explanation."""

    rule_id: Identifier
    explanation: ShortText


class HandoffDecision(Message):
    """The router's decision. Also published as the ``escalation.decided`` event."""

    call_id: CallId
    request_id: Identifier
    target: HandoffTarget
    say: ShortText
    """What the current agent says to the caller before the handoff."""
    priority: int = 0
    queue: Identifier | None = None
    destinations: list[Destination] = msgspec.field(default_factory=list)
    rules_fired: list[RuleHit] = msgspec.field(default_factory=list)
    fallback: bool = False
    """True when the router did not answer and the worker used its local fallback."""
    decision_id: Identifier = msgspec.field(default_factory=new_id)
    decided_at: dt.datetime = msgspec.field(default_factory=utcnow)
    agent: Identifier | None = None
    """The AI agent that takes the call when ``target`` is ``ai_manager`` or ``ai_specialist``."""
    rules_version: ShortText | None = None
    """Version (content hash) of the rules file that made the decision, for audits."""
    transfer_mode: TransferMode = TransferMode.WARM
    """For ``human_queue`` and ``voicemail`` targets: warm (briefed) or cold (SIP REFER)."""
