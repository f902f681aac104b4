"""What the scripted OpenAI server can answer: replies, audio answers and faults.

A policy returns one of these per request. Replies are what a healthy API sends; faults are
the ways the real API (or the network in front of it) fails: an error status with an
OpenAI-style body, a stall before the first byte, a stream cut mid-answer, a chunk that is
not JSON, an error event inside the stream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(frozen=True, slots=True)
class Call:
    """One tool call in a reply. ``arguments`` is the JSON text the model streams."""

    name: str
    arguments: str = "{}"
    # None: the server makes a deterministic id from the request number and the call's place.
    id: str | None = None


def call(
    name: str, arguments: Mapping[str, object] | str | None = None, *, id: str | None = None
) -> Call:
    """A tool call; ``arguments`` as a mapping (serialised to JSON) or as raw JSON text."""
    text = arguments if isinstance(arguments, str) else json.dumps(dict(arguments or {}))
    return Call(name=name, arguments=text, id=id)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported in the final usage chunk (computed from the text when absent)."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Reply:
    """A model answer: text, tool calls, or text followed by tool calls (as OpenAI orders them).

    Streamed as: a role chunk, one chunk per word of ``text``, per call a chunk with its id and
    name then its arguments in pieces of ``argument_piece`` characters, a chunk with the
    finish reason, the usage chunk (when the client asked for it), then ``[DONE]``.
    ``interval`` spaces the chunks out (seconds), for tests that need a slow stream.
    """

    text: str = ""
    calls: tuple[Call, ...] = ()
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    argument_piece: int = 8
    interval: float = 0.0

    def __post_init__(self) -> None:
        if self.argument_piece < 1:
            raise ValueError("argument_piece must be at least 1")
        if self.interval < 0:
            raise ValueError("interval must not be negative")

    @property
    def finish(self) -> FinishReason:
        """The finish reason sent: as given, else ``tool_calls`` when calling, else ``stop``."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.calls else "stop"


def say(text: str, *, interval: float = 0.0) -> Reply:
    """A text reply."""
    return Reply(text=text, interval=interval)


def calls(*tool_calls: Call, text: str = "") -> Reply:
    """A reply calling one or more tools, optionally after some text."""
    return Reply(text=text, calls=tuple(tool_calls))


@dataclass(frozen=True, slots=True)
class Transcript:
    """What ``/v1/audio/transcriptions`` answers for an upload."""

    text: str
    language: str = "english"
    # None: the duration read from the uploaded WAV (0 when it is not a WAV).
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class Speech:
    """What ``/v1/audio/speech`` renders: ``seconds`` of a sine tone (silence at 0 Hz),
    24 kHz 16-bit mono, as ``pcm``/``wav`` bytes or SSE audio deltas."""

    seconds: float
    tone_hz: float = 440.0
    amplitude: float = 0.2

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError("seconds must not be negative")
        if not 0.0 <= self.amplitude <= 1.0:
            raise ValueError("amplitude must be within [0, 1]")


# --- faults -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpError:
    """An error status with OpenAI's body: ``{"error": {"message", "type", "param", "code"}}``."""

    status: int = 500
    message: str = "The server had an error while processing your request. Sorry about that!"
    type: str = "server_error"
    code: str | None = None
    param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def server_error(cls) -> HttpError:
        return cls()

    @classmethod
    def rate_limited(cls, retry_after: float | None = None) -> HttpError:
        headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
        return cls(
            status=429,
            message="Rate limit reached for requests. Please try again later.",
            type="requests",
            code="rate_limit_exceeded",
            headers=headers,
        )

    @classmethod
    def unavailable(cls) -> HttpError:
        return cls(
            status=503,
            message="The server is overloaded or not ready yet.",
            type="server_error",
            code="service_unavailable",
        )


_CUT_TEXT = "This answer is cut off before it ends, so nobody should ever hear all of it."


@dataclass(frozen=True, slots=True)
class Delay:
    """Nothing is sent for ``seconds``, then ``then`` is answered.

    ``then=None``: when the delay comes from the fault plan (an outage or a numbered fault),
    the policy answers after the delay; when a policy returned the delay itself, the
    connection is closed after it without an answer (a stall). A client that times out
    first closes the connection and the server drops the request without asking the policy.
    The wait ends early when the server stops; other requests are served meanwhile.
    """

    seconds: float
    then: Answer | None = None

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError("seconds must not be negative")


@dataclass(frozen=True, slots=True)
class CutStream:
    """Status 200 and the first ``after_chunks`` chunks of ``reply``, then the connection is
    closed without ``[DONE]`` and without the end of the chunked body (an abrupt cut).

    On a non-streamed answer: the headers and the first half of the body, then the cut.
    """

    after_chunks: int = 2
    reply: Reply = Reply(text=_CUT_TEXT)


@dataclass(frozen=True, slots=True)
class MalformedChunk:
    """The first ``after_chunks`` chunks of ``reply``, then an SSE event whose data is not
    JSON, then ``[DONE]`` (so the broken chunk is the only fault). On a non-streamed answer:
    a body that is not JSON. On streamed speech: the payload as audio bytes or SSE data."""

    after_chunks: int = 1
    payload: str = '{"id": "chatcmpl-broken", "choices": [{"delta": '
    reply: Reply = Reply(text=_CUT_TEXT)


@dataclass(frozen=True, slots=True)
class StreamError:
    """The first ``after_chunks`` chunks of ``reply``, then ``data: {"error": {...}}`` (how
    OpenAI reports a failure once the stream has started), then the stream ends."""

    after_chunks: int = 1
    message: str = "The server had an error while processing your request. Sorry about that!"
    type: str = "server_error"
    reply: Reply = Reply(text=_CUT_TEXT)


Fault = HttpError | Delay | CutStream | MalformedChunk | StreamError
Answer = Reply | Transcript | Speech | Fault
ChatAnswer = Reply | Fault
TranscriptionAnswer = Transcript | Fault
SpeechAnswer = Speech | Fault
# What a fault can do to a response once any delay is over.
BodyFault = HttpError | CutStream | MalformedChunk | StreamError
FAULT_TYPES = (HttpError, Delay, CutStream, MalformedChunk, StreamError)
BODY_FAULT_TYPES = (HttpError, CutStream, MalformedChunk, StreamError)
