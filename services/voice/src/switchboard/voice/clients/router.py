"""Escalation router client, with the local fallback decision used when it does not answer.

The fallback never leaves a caller stranded: a configured human queue if there is one,
otherwise a callback. It is marked ``fallback=True`` and carries the rule that fired, so
the event says the router was not consulted.
"""

from __future__ import annotations

import logging

import msgspec
from nats.aio.client import Client as NATS

from switchboard.contracts.escalation import (
    Destination,
    EscalationRequest,
    HandoffDecision,
    HandoffTarget,
    RuleHit,
)
from switchboard.contracts.subjects import ESCALATION_DECIDE
from switchboard.runtime.bus import RequestFailed, request

log = logging.getLogger(__name__)


def fallback_decision(
    req: EscalationRequest, queue: Destination | None, why: str
) -> HandoffDecision:
    """The worker's own decision when the router is unavailable or answered unusably."""
    if queue is not None:
        return HandoffDecision(
            call_id=req.call_id,
            request_id=req.request_id,
            target=HandoffTarget.HUMAN_QUEUE,
            say="I'm finding a member of our team for you. Please stay on the line.",
            priority=1,
            queue=queue.id,
            destinations=[queue],
            rules_fired=[
                RuleHit(
                    rule_id="voice.fallback.human_queue",
                    explanation=f"{why} Using the configured fallback queue.",
                )
            ],
            fallback=True,
        )
    return HandoffDecision(
        call_id=req.call_id,
        request_id=req.request_id,
        target=HandoffTarget.CALLBACK,
        say="I can't reach the right person right now, but we can call you back.",
        rules_fired=[
            RuleHit(
                rule_id="voice.fallback.callback",
                explanation=f"{why} No fallback queue is configured, so a callback is offered.",
            )
        ],
        fallback=True,
    )


class RouterClient:
    """Asks ``sb.escalation.decide``; falls back locally on timeout, error or no responder."""

    def __init__(self, nc: NATS, *, timeout: float, fallback_queue: Destination | None) -> None:
        self._nc = nc
        self._timeout = timeout
        self._queue = fallback_queue

    async def decide(self, req: EscalationRequest) -> HandoffDecision:
        try:
            decision: HandoffDecision = await request(
                self._nc, ESCALATION_DECIDE, req, HandoffDecision, self._timeout
            )
        except RequestFailed as exc:
            log.warning(
                "Router unavailable; using the local fallback decision.",
                extra={"call_id": req.call_id, "code": str(exc.error.code)},
            )
            return fallback_decision(req, self._queue, "The router did not answer.")
        if decision.target is HandoffTarget.HUMAN_QUEUE and not decision.destinations:
            # A human queue with nowhere to dial is no next step for the caller.
            log.warning(
                "Router chose a human queue without destinations; using the fallback.",
                extra={"call_id": req.call_id},
            )
            return fallback_decision(
                req, self._queue, "The router chose a human queue with no destinations."
            )
        return decision


def queue_from_settings(queue_id: str, address: str, trunk: str) -> Destination | None:
    """The fallback queue from configuration, or ``None`` when it is not configured or invalid."""
    if not queue_id or not address:
        return None
    try:
        return msgspec.convert(
            {
                "id": queue_id,
                "address": address,
                "label": "fallback queue",
                "trunk_id": trunk or None,
            },
            Destination,
        )
    except msgspec.ValidationError:
        log.error("The configured fallback queue is invalid; callbacks will be offered instead.")
        return None
