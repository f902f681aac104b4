"""The callback offer, used when no human could be reached (or the router says so)."""

from __future__ import annotations

from typing import Any

from livekit.agents.llm import function_tool
from livekit.agents.voice.speech_handle import SpeechHandle

from switchboard.voice.agents.base import CallTask, RecordingConsent
from switchboard.voice.call import Call
from switchboard.voice.triggers import EscalationAsk

NO_ONE_FREE = (
    "There's no one free to take the call right now; a callback is the quickest way to "
    "reach a person. Shall we call you back?"
)


class CallbackOfferTask(CallTask[bool], RecordingConsent):
    """Asks whether the caller wants a callback; the result is their answer."""

    def __init__(self, call: Call) -> None:
        super().__init__(call, prompt="callback")

    async def on_enter(self) -> None:
        where = "at the number you're calling from" if self.call.state.info.caller_number else ""
        self.session.say(
            "I'm sorry, I couldn't reach anyone right now. "
            f"Would you like us to call you back {where}?".replace(" ?", "?")
        )

    @function_tool
    async def accept_callback(self) -> None:
        """The caller wants a callback."""
        if not self.done():
            self.complete(True)

    @function_tool
    async def decline_callback(self) -> None:
        """The caller does not want a callback."""
        if not self.done():
            self.complete(False)

    async def on_escalation(self, ask: EscalationAsk, speech: SpeechHandle | None) -> Any:
        return NO_ONE_FREE
