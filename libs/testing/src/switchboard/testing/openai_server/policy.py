"""Policies: what decides the answer to each request.

A policy is any callable, sync or async, from a typed request to an answer: a ``Reply``,
``Transcript`` or ``Speech`` for its endpoint, a fault, or a bare string (a text reply, or a
transcript's text). ``Script`` answers from a list in order and fails clearly when it runs
out; a rules engine plugs in as a plain function reading ``request.tools`` and
``request.messages``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, TypeVar

from switchboard.testing.openai_server.answers import Answer, Speech
from switchboard.testing.openai_server.requests import (
    ChatRequest,
    SpeechRequest,
    TranscriptionRequest,
)

R = TypeVar("R", contravariant=True)
A = TypeVar("A")

PolicyResult = Answer | str
ChatPolicy = Callable[[ChatRequest], PolicyResult | Awaitable[PolicyResult]]
TranscriptionPolicy = Callable[[TranscriptionRequest], PolicyResult | Awaitable[PolicyResult]]
SpeechPolicy = Callable[[SpeechRequest], PolicyResult | Awaitable[PolicyResult]]


class Summarized(Protocol):
    """What a script needs of a request to report it: its number and a one-line summary."""

    @property
    def number(self) -> int: ...

    def summary(self) -> str: ...


class ScriptExhausted(AssertionError):
    """A request arrived after the script's last answer was used."""


class Script:
    """Answers requests in the order they ask, from a fixed list, one answer per request.

    A request beyond the end raises ``ScriptExhausted`` naming it and the requests answered
    before (the server turns it into a 500 and records it, so the test fails at teardown).
    A ``Delay`` without ``then`` in a script is a stall: it never falls through to the next
    entry.
    """

    def __init__(self, answers: Iterable[PolicyResult], *, name: str = "script") -> None:
        self._answers = list(answers)
        self._used = 0
        self.name = name
        self.asked: list[str] = []

    def __call__(self, request: Summarized) -> PolicyResult:
        self.asked.append(request.summary())
        if self._used >= len(self._answers):
            before = "; ".join(self.asked[:-1]) or "none"
            raise ScriptExhausted(
                f"{self.name} has {len(self._answers)} answer(s), all used; unanswered: "
                f"{request.summary()}. Answered before: {before}"
            )
        answer = self._answers[self._used]
        self._used += 1
        return answer

    @property
    def used(self) -> int:
        return self._used

    @property
    def remaining(self) -> int:
        return len(self._answers) - self._used

    def assert_used_up(self) -> None:
        """Fail unless every answer was asked for (a model call the test expected never came)."""
        if self.remaining:
            unused = self._answers[self._used :]
            raise AssertionError(
                f"{self.name}: {self.remaining} answer(s) never asked for: {unused}"
            )


async def resolve(answer: A | Awaitable[A]) -> A:
    """The policy's answer, awaited when the policy was a coroutine function."""
    if inspect.isawaitable(answer):
        return await answer
    return answer


def no_chat_policy(request: ChatRequest) -> PolicyResult:
    raise LookupError(
        f"OpenAIServer has no chat policy for {request.summary()}: set server.policy "
        "(a Script or a callable)"
    )


def no_transcription_policy(request: TranscriptionRequest) -> PolicyResult:
    raise LookupError(
        f"OpenAIServer has no transcription policy for {request.summary()}: set "
        "server.transcription_policy (a Script or a callable)"
    )


def speech_by_length(
    seconds_per_char: float = 0.06, minimum: float = 0.3
) -> Callable[[SpeechRequest], Speech]:
    """Speech as long as the text takes to say (``seconds_per_char``, divided by the
    requested speed), at least ``minimum`` seconds: the default speech policy."""

    def policy(request: SpeechRequest) -> Speech:
        return Speech(seconds=max(minimum, len(request.input) * seconds_per_char) / request.speed)

    return policy
