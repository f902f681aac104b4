"""Routing rules: an ``EscalationRequest`` and facts in, an explained ``HandoffDecision`` out.

Pure and synchronous: the caller supplies the compiled rules, a queue-state snapshot and
the current time, so every rule is tested without a broker or a real clock.

Evaluation order is fixed. First the modifiers, which all run and record what they did:

    intent.queue / intent.default      intent (or alias) picks the queue; unknown → default
    language.say / language.default    caller's language picks the spoken line
    language.queue / language.unserved a queue that speaks the caller's language
    priority.reason                    legal threats and safety raise priority
    vip.priority / vip.human / vip.unknown
    human.requested / human.manager_request / human.repeated_failure /
    human.attempts / human.after_manager / human.no_ai_manager
                                       why the call must reach a person

Then the terminal rules; the first that applies decides the target:

    urgent.human → urgent.on_call → urgent.callback      (legal threat, safety)
    ai.specialist → ai.manager                            (only if no person is required)
    human.queue → human.overflow                          (open and not full; on the way
                                                           queue.unavailable and
                                                           overflow.unavailable say why not)
    after_hours.voicemail / after_hours.callback / queue_full.callback   (always applies)

Explanations name rules, queues and counts, never caller data, because decisions are
published to CRMs and logged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from switchboard.contracts.escalation import (
    Destination,
    EscalationReason,
    EscalationRequest,
    HandoffDecision,
    HandoffTarget,
    RuleHit,
)
from switchboard.escalation.queues import QueueSnapshot, QueueState
from switchboard.escalation.rules_file import Queue, Rules, primary

URGENT = frozenset({EscalationReason.LEGAL_THREAT, EscalationReason.SAFETY})
AI_ELIGIBLE = frozenset({EscalationReason.CALLER_REQUEST, EscalationReason.AGENT_CANNOT_HELP})
DECISION_NAMESPACE = uuid.UUID("6f1c7a52-3c1e-4b8e-9a57-2f0d3c1b9e10")
"""uuid5 namespace of decision ids; never change it, or retried requests get new ids."""
_UNSTAFFED = QueueState()


@dataclass(slots=True)
class Draft:
    """The decision being built: facts, what modifiers chose so far, and the rules fired."""

    rules: Rules
    request: EscalationRequest
    states: QueueSnapshot
    now: dt.datetime
    intent: str = ""
    queue: Queue | None = None
    language: str = ""
    priority: int = 0
    human_required: bool = False
    hits: list[RuleHit] = field(default_factory=list)
    _open: dict[str, bool] = field(default_factory=dict)

    def is_open(self, queue: Queue) -> bool:
        """Whether ``queue`` is open now; asked by several rules, computed once."""
        known = self._open.get(queue.name)
        if known is None:
            known = self._open[queue.name] = queue.hours.is_open(self.now)
        return known

    def fire(self, rule_id: str, explanation: str) -> None:
        self.hits.append(RuleHit(rule_id=rule_id, explanation=explanation))

    @property
    def target_queue(self) -> Queue:
        assert self.queue is not None, "intent rule runs first"
        return self.queue

    def availability(self, queue: Queue) -> str | None:
        """Why ``queue`` cannot take the call now (closed or full), or ``None`` if it can."""
        if not self.is_open(queue):
            return f"{queue.name} is closed at this time ({queue.hours.zone.key})."
        return fullness(queue, self.states.get(queue.name, _UNSTAFFED))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a terminal rule decided."""

    target: HandoffTarget
    queue: Queue | None = None
    agent: str | None = None
    destinations: tuple[Destination, ...] = ()


Modifier = Callable[[Draft], None]
Terminal = Callable[[Draft], Outcome | None]


def fullness(queue: Queue, state: QueueState) -> str | None:
    """Why the queue is full, or ``None`` while it can take another caller."""
    if state.agents_available == 0:
        return f"{queue.name} has no agents available."
    limit = float(queue.capacity.max_waiting)
    per_agent = queue.capacity.max_waiting_per_agent
    if per_agent is not None:
        limit = min(limit, per_agent * state.agents_available)
    if state.waiting >= limit:
        return f"{queue.name} has {state.waiting} callers waiting (limit {limit:g})."
    return None


# ----------------------------------------------------------------------------- modifiers


def pick_intent(d: Draft) -> None:
    req = d.request
    raw = req.intent or (req.context.intent if req.context else None) or ""
    known = d.rules.intent_names.get(raw.strip().lower())
    d.intent = known or d.rules.router.default_intent
    d.queue = d.rules.queues[d.rules.intents[d.intent].queue]
    if known is not None:
        d.fire("intent.queue", f"Intent {known} goes to the {d.queue.name} queue.")
    else:
        # The raw intent is not echoed: it comes from the model and could hold anything.
        why = "The request names an intent the rules do not list" if raw else "No intent given"
        d.fire("intent.default", f"{why}; using {d.intent} ({d.queue.name} queue).")


def pick_language(d: Draft) -> None:
    wanted = d.request.language.lower()
    languages = d.rules.languages
    for candidate in (wanted, primary(wanted)):
        if candidate in languages:
            d.language = candidate
            d.fire("language.say", f"Speaking {candidate}, the caller's language.")
            return
    d.language = d.rules.router.default_language
    d.fire("language.default", f"No lines for the caller's language; speaking {d.language}.")


def pick_language_queue(d: Draft) -> None:
    queue, lang = d.target_queue, primary(d.request.language)
    if queue.speaks(lang):
        return
    section = d.rules.languages.get(lang)
    other = d.rules.queues.get(section.queue) if section and section.queue else None
    if other is None or not other.speaks(lang):
        d.fire("language.unserved", f"{queue.name} does not list {lang} and no queue does.")
        return
    d.queue = other
    d.fire(
        "language.queue", f"{queue.name} does not list {lang}; {lang} callers go to {other.name}."
    )


def reason_priority(d: Draft) -> None:
    reason = d.request.reason
    specific = d.rules.priority.reasons.get(reason)
    d.priority = d.rules.priority.base if specific is None else specific
    if specific is not None:
        d.fire("priority.reason", f"Reason {reason.value} sets priority {specific}.")


def vip(d: Draft) -> None:
    tier_name = (d.request.vip_tier or "").strip().lower()
    if not tier_name:
        return
    tier = d.rules.vip.get(tier_name)
    if tier is None:
        d.fire("vip.unknown", "The VIP tier is not in the rules; priority unchanged.")
        return
    if tier.priority_boost:
        d.priority += tier.priority_boost
        d.fire("vip.priority", f"VIP tier {tier_name} raises priority by {tier.priority_boost}.")
    if tier.straight_to_human:
        d.human_required = True
        d.fire("vip.human", f"VIP tier {tier_name} goes straight to a person.")


def human_required(d: Draft) -> None:
    req, router = d.request, d.rules.router

    def need(rule_id: str, explanation: str) -> None:
        d.human_required = True
        d.fire(rule_id, explanation)

    if req.wants_human:
        need("human.requested", "The caller asked for a person.")
    if req.reason is EscalationReason.MANAGER_REQUEST:
        need("human.manager_request", "The AI manager asked for a person.")
    if req.reason is EscalationReason.REPEATED_FAILURE:
        need("human.repeated_failure", "The AI failed repeatedly on this call.")
    if req.attempts >= router.ai_attempts_limit:
        need(
            "human.attempts",
            f"The AI has tried {req.attempts} times (limit {router.ai_attempts_limit}).",
        )
    if req.reason in AI_ELIGIBLE and not d.human_required:
        if req.current_agent == router.manager_agent:
            need("human.after_manager", "The AI manager is already on the call.")
        elif not router.ai_manager:
            need("human.no_ai_manager", "The rules turn the AI manager off.")


# ----------------------------------------------------------------------------- terminals


def urgent(d: Draft) -> Outcome | None:
    reason = d.request.reason
    if reason not in URGENT:
        return None
    queue = d.target_queue
    if d.is_open(queue):
        # A legal threat or safety concern jumps the line: capacity limits do not apply.
        d.fire("urgent.human", f"Reason {reason.value} goes to a person in {queue.name} first.")
        return Outcome(HandoffTarget.HUMAN_QUEUE, queue, destinations=queue.destinations)
    on_call = d.rules.queues.get(d.rules.router.on_call_queue or "")
    if on_call is not None and on_call is not queue and d.is_open(on_call):
        d.fire("urgent.on_call", f"{queue.name} is closed; reason {reason.value} goes on call.")
        return Outcome(HandoffTarget.HUMAN_QUEUE, on_call, destinations=on_call.destinations)
    d.priority = d.rules.priority.maximum
    d.fire("urgent.callback", "No queue is open for an urgent call; callback at top priority.")
    return Outcome(HandoffTarget.CALLBACK, queue)


def ai_specialist(d: Draft) -> Outcome | None:
    specialist = d.rules.intents[d.intent].specialist
    req = d.request
    if d.human_required or req.reason is not EscalationReason.AGENT_CANNOT_HELP:
        return None
    if specialist is None or req.current_agent in (specialist, d.rules.router.manager_agent):
        return None
    d.fire("ai.specialist", f"The {d.intent} specialist has not handled this call yet.")
    return Outcome(HandoffTarget.AI_SPECIALIST, agent=specialist)


def ai_manager(d: Draft) -> Outcome | None:
    if d.human_required or d.request.reason not in AI_ELIGIBLE:
        return None
    d.fire("ai.manager", "A first escalation goes to the AI manager.")
    return Outcome(HandoffTarget.AI_MANAGER, agent=d.rules.router.manager_agent)


def human_queue(d: Draft) -> Outcome | None:
    queue = d.target_queue
    problem = d.availability(queue)
    if problem is None:
        state = d.states.get(queue.name, _UNSTAFFED)
        d.fire(
            "human.queue",
            f"{queue.name} is open: {state.agents_available} agents, {state.waiting} waiting.",
        )
        return Outcome(HandoffTarget.HUMAN_QUEUE, queue, destinations=queue.destinations)
    d.fire("queue.unavailable", problem)
    overflow = d.rules.queues.get(queue.overflow or "")
    if overflow is None:
        return None
    overflow_problem = d.availability(overflow)
    if overflow_problem is None:
        d.fire("human.overflow", f"Overflowing from {queue.name} to {overflow.name}.")
        return Outcome(HandoffTarget.HUMAN_QUEUE, overflow, destinations=overflow.destinations)
    d.fire("overflow.unavailable", overflow_problem)
    return None


def no_person_free(d: Draft) -> Outcome:
    queue = d.target_queue
    if d.is_open(queue):
        d.fire("queue_full.callback", f"No room in {queue.name}; the caller gets a callback.")
        return Outcome(HandoffTarget.CALLBACK, queue)
    if queue.voicemail is not None:
        d.fire("after_hours.voicemail", f"{queue.name} is closed; taking a voicemail.")
        return Outcome(HandoffTarget.VOICEMAIL, queue, destinations=(queue.voicemail,))
    d.fire("after_hours.callback", f"{queue.name} is closed and has no voicemail; callback.")
    return Outcome(HandoffTarget.CALLBACK, queue)


MODIFIERS: tuple[Modifier, ...] = (
    pick_intent,
    pick_language,
    pick_language_queue,
    reason_priority,
    vip,
    human_required,
)
TERMINALS: tuple[Terminal, ...] = (urgent, ai_specialist, ai_manager, human_queue)


def decision_id(request: EscalationRequest) -> str:
    """Stable per request, so a retried request publishes an event JetStream de-duplicates.

    The same value as ``uuid.uuid5(DECISION_NAMESPACE, "<call_id>/<request_id>")``, built without
    ``uuid.UUID``, whose validation costs more than the hash on every decision.
    """
    key = f"{request.call_id}/{request.request_id}".encode()
    raw = bytearray(
        hashlib.sha1(DECISION_NAMESPACE.bytes + key, usedforsecurity=False).digest()[:16]
    )
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def decide(
    rules: Rules, request: EscalationRequest, states: QueueSnapshot, now: dt.datetime
) -> HandoffDecision:
    """Decide where the call goes and why."""
    draft = Draft(rules=rules, request=request, states=states, now=now)
    for modify in MODIFIERS:
        modify(draft)
    outcome = next((o for rule in TERMINALS if (o := rule(draft)) is not None), None)
    if outcome is None:
        outcome = no_person_free(draft)
    return HandoffDecision(
        call_id=request.call_id,
        request_id=request.request_id,
        target=outcome.target,
        say=say(draft, outcome),
        priority=min(draft.priority, rules.priority.maximum),
        queue=outcome.queue.name if outcome.queue else None,
        destinations=list(outcome.destinations),
        rules_fired=draft.hits,
        decision_id=decision_id(request),
        decided_at=now,
        agent=outcome.agent,
        rules_version=rules.version,
    )


def say(d: Draft, outcome: Outcome) -> str:
    """The line for the target in the caller's language; a queue may word its own."""
    if outcome.target is HandoffTarget.HUMAN_QUEUE and outcome.queue is not None:
        own = outcome.queue.say.get(d.language)
        if own:
            return own
    return d.rules.say(d.language, outcome.target)
