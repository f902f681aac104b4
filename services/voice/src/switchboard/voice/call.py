"""One call as its agents see it: its facts, its ports, its settings, and its lifetime.

``Call`` composes the parts (``CallState`` is the data, ``Ports`` the systems it reaches)
and owns what spans the whole call: work that must finish before teardown (ledger
writes), the caller leaving (a transfer on hold is cancelled), how the call is left when
its outcome is settled, and the teardown itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from switchboard.contracts.call import CallEnded, CallOutcome
from switchboard.contracts.transfer import CALLER_HUNG_UP
from switchboard.voice.ports import Ports, Voices
from switchboard.voice.settings import VoiceSettings
from switchboard.voice.state import CallState

DRAIN_TIMEOUT_S = 5.0


@dataclass(eq=False)
class Call:
    """Everything the agents of one call share (the session's ``userdata``)."""

    state: CallState
    ports: Ports
    settings: VoiceSettings
    voices: Voices = field(default_factory=Voices)
    on_end: Callable[[CallOutcome], None] | None = None
    """Set by the runtime: how to leave the call (shut the session down in production)."""
    _background: set[asyncio.Task[Any]] = field(default_factory=set)
    _finished: bool = False
    _left: asyncio.Event = field(default_factory=asyncio.Event)
    transfer_id: str | None = None
    """The transfer being made, while it is (set by the transfer flow)."""

    @property
    def call_id(self) -> str:
        return self.state.call_id

    def end(self, outcome: CallOutcome) -> None:
        """Settle the outcome (the first one wins) and leave the call."""
        if self.state.decide_outcome(outcome) and self.on_end is not None:
            self.on_end(outcome)

    def caller_left(self) -> None:
        """The caller hung up (production: they left the room)."""
        self._left.set()

    @property
    def caller_gone(self) -> bool:
        return self._left.is_set()

    async def wait_caller_left(self) -> None:
        await self._left.wait()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run work that must not delay the conversation but must finish before the call
        is torn down (ledger writes)."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def finish(self) -> None:
        """Tear down once: finish background work, stop recording, publish ``CallEnded``
        and wait until the call's events are stored."""
        if self._finished:
            return
        self._finished = True
        state = self.state
        if state.outcome is None:
            state.outcome = CallOutcome.ABANDONED
        if self.transfer_id is not None:
            # Torn down mid-transfer (the flow was cut short): no leg may outlive the call.
            self.spawn(self.ports.transfer.cancel(state.call_id, self.transfer_id, CALLER_HUNG_UP))
        if self._background:
            await asyncio.wait(set(self._background), timeout=DRAIN_TIMEOUT_S)
        continues = await self.ports.gate.close(hand_over=state.outcome is CallOutcome.TRANSFERRED)
        await self.ports.events.publish(
            CallEnded(
                call_id=state.call_id,
                outcome=state.outcome,
                duration_s=round(time.monotonic() - state.started_at, 3),
                started_at=state.started_on,
                transfer_id=state.transfer_id,
                recording_continues=continues,
            )
        )
        await self.ports.events.settle()
        self.ports.transfer.forget_events()
