"""The briefing of one warm transfer: the session in the consult room, a briefing agent for
each human who answers, and their decisions.

Opened before the transfer is placed (so the session waits in the consult room when the
bridge dials into it). When the bridge reports an answer, the session switches to a fresh
``BriefingAgent`` for that human and ``human_answered`` returns a future of their
``Verdict``; the transfer reports it to the bridge. An attempt the bridge ends by itself
(the carrier saw the hang-up, the briefing took too long) is dropped with ``attempt_over``.
"""

from __future__ import annotations

import asyncio
import logging

from livekit.agents import Agent

from switchboard.contracts.transfer import HumanDecision
from switchboard.voice.agents.briefing import BriefingAgent, Verdict
from switchboard.voice.transfer.consult import ConsultLine
from switchboard.voice.transfer.facts import BriefingFacts

log = logging.getLogger(__name__)


class _Waiting(Agent):
    """The briefing session before anyone answers: silent."""

    def __init__(self) -> None:
        super().__init__(instructions="Wait silently; nobody is on this line yet.", id="waiting")


class Briefing:
    """The consult side of one warm transfer."""

    def __init__(self, line: ConsultLine, facts: BriefingFacts, *, call_id: str) -> None:
        self._line = line
        self._facts = facts
        self._call_id = call_id
        self._verdicts: dict[int, asyncio.Future[Verdict]] = {}
        self._opened = False

    @property
    def room(self) -> str:
        return self._line.room

    async def open(self) -> None:
        """Join the consult room, ready for the first human."""
        await self._line.start(_Waiting())
        self._opened = True

    async def human_answered(self, attempt: int, identity: str | None) -> asyncio.Future[Verdict]:
        """Brief the human of ``attempt``; the future resolves with what they decide."""
        verdict: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._verdicts[attempt] = verdict

        def decided(v: Verdict) -> None:
            if not verdict.done():
                verdict.set_result(v)
            log.info(
                "The human in the consult room decided.",
                extra={"call_id": self._call_id, "attempt": attempt, "decision": v.decision},
            )

        agent = BriefingAgent(self._facts, attempt, decided)
        await self._line.human_answered(attempt, identity, agent, agent.hung_up)
        return verdict

    async def attempt_over(self, attempt: int) -> None:
        """The bridge ended ``attempt``; a decision still to come would be stale."""
        verdict = self._verdicts.pop(attempt, None)
        if verdict is not None and not verdict.done():
            verdict.set_result(Verdict(HumanDecision.HUNG_UP))
        await self._line.human_gone(attempt)

    async def close(self) -> None:
        for verdict in self._verdicts.values():
            if not verdict.done():
                verdict.cancel()
        self._verdicts.clear()
        try:
            await self._line.close()
        except Exception:
            log.warning("The consult room could not be closed.", extra={"call_id": self._call_id})
