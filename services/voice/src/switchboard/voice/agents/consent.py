"""The consent task: AI disclosure and recording notice, then the caller's decision.

In ``ask`` mode (all-party-consent places, unknown places, and whenever the ledger is
down) the caller must say yes; an unclear answer is asked once more and then recorded as
unclear, which keeps recording off. In ``notify`` mode the notice is enough: consent is
recorded as granted straight away, and "stop recording" at any time revokes it. Either
way the decision goes to the ledger and recording waits for the receipt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

from livekit.agents.llm import function_tool
from livekit.agents.voice.speech_handle import SpeechHandle

from switchboard.contracts.consent import ConsentDecision, ConsentMode, ConsentPolicy
from switchboard.voice import consent_records
from switchboard.voice.agents.base import CallTask
from switchboard.voice.agents.speech import speak
from switchboard.voice.call import Call
from switchboard.voice.triggers import EscalationAsk
from switchboard.voice.understanding import consent_answer

log = logging.getLogger(__name__)

ASK_LINE: Final = "Is it OK with you if we record this call?"
REASK_LINE: Final = "Sorry, I didn't catch that. May we record this call, yes or no?"
ACKS: Final[dict[ConsentDecision, str]] = {
    ConsentDecision.GRANTED: "Thank you.",
    ConsentDecision.DENIED: "No problem. This call won't be recorded.",
    ConsentDecision.UNCLEAR: "I'll take that as a no, so this call won't be recorded.",
}
ESCALATION_ACK: Final = "I'll leave recording off for now."


@dataclass(frozen=True, slots=True)
class ConsentOutcome:
    decision: ConsentDecision
    receipt: bool
    """Whether the ledger confirmed the decision in time."""
    escalation: EscalationAsk | None = None
    """The caller asked to escalate instead of (or while) answering; the agent that
    started the task acts on it once consent is settled."""


class ConsentTask(CallTask[ConsentOutcome]):
    """Plays the policy's disclosure and notice and records the caller's decision."""

    handles_revocation: ClassVar[bool] = False

    def __init__(self, call: Call, policy: ConsentPolicy) -> None:
        super().__init__(call, prompt="consent")
        self._policy = policy
        self._reasked = False

    async def on_enter(self) -> None:
        policy = self._policy
        self.session.say(f"{policy.ai_disclosure} {policy.notice_text}")
        if policy.mode is ConsentMode.NOTIFY:
            # The notice is played exactly as the ledger versioned it (it tells the caller
            # how to object), so what the ledger records is what the caller heard.
            await self._decide(ConsentDecision.GRANTED, excerpt=None, ack="")
        elif not policy.notice_text.rstrip().endswith("?"):
            # Some notices already end with the question; asking twice sounds broken.
            self.session.say(ASK_LINE)

    @function_tool
    async def record_consent_answer(
        self, answer: Literal["granted", "denied", "unclear"]
    ) -> str | None:
        """Record the caller's answer to the recording question.

        Args:
            answer: granted only for a clear yes; denied for a clear no (including "don't
                record me"); unclear for anything else. Never turn a hesitant answer into a yes.
        """
        decision = ConsentDecision(answer)
        if decision is ConsentDecision.UNCLEAR and not self._reasked:
            self._reasked = True
            return REASK_LINE
        await self._decide(decision, excerpt=self._call.state.last_caller_text, ack=ACKS[decision])
        return None

    async def on_escalation(self, ask: EscalationAsk, speech: SpeechHandle | None) -> Any:
        # The escalation runs once consent is settled, from the parent agent; a request
        # for a person is not an answer, so only a clear yes in the same breath counts.
        said = self._call.state.last_caller_text
        decision = consent_answer(said)
        ack = (
            ACKS[ConsentDecision.GRANTED] if decision is ConsentDecision.GRANTED else ESCALATION_ACK
        )
        await self._decide(decision, excerpt=said, ack=ack, escalation=ask)
        return None

    async def _decide(
        self,
        decision: ConsentDecision,
        *,
        excerpt: str | None,
        ack: str,
        escalation: EscalationAsk | None = None,
    ) -> None:
        receipt = await consent_records.record(self._call, decision, excerpt)
        log.info(
            "Consent decided.",
            extra={
                "call_id": self._call.call_id,
                "decision": str(decision),
                "mode": str(self._policy.mode),
                "receipt": receipt,
            },
        )
        await speak(self.session, ack)
        if not self.done():
            self.complete(ConsentOutcome(decision, receipt, escalation))
