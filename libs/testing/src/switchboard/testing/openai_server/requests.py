"""Typed views of the requests the scripted OpenAI server receives.

Policies read these to decide an answer and tests read them from the request log to assert
what a model was shown: the history (``messages``), the tools offered with their parameter
schemas, ``tool_choice`` and the model. Chat bodies are decoded with msgspec against the
shapes the openai client sends (unknown fields are kept in ``body``, never rejected).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

Endpoint = Literal["chat", "transcription", "speech", "models"]
Role = Literal["system", "developer", "user", "assistant", "tool"]


class FunctionCall(msgspec.Struct, frozen=True):
    name: str
    arguments: str


class ToolCall(msgspec.Struct, frozen=True):
    """A tool call the assistant made earlier in the history."""

    id: str
    function: FunctionCall
    type: Literal["function"] = "function"

    @property
    def name(self) -> str:
        return self.function.name

    def args(self) -> Any:
        """The arguments decoded from their JSON text."""
        return json.loads(self.function.arguments)


class ImageUrl(msgspec.Struct, frozen=True):
    url: str
    detail: str | None = None


class ContentPart(msgspec.Struct, frozen=True):
    """One part of a list-valued ``content`` (text or image; other kinds keep their type)."""

    type: str
    text: str | None = None
    image_url: ImageUrl | None = None


class Message(msgspec.Struct, frozen=True):
    """One message of the history, as sent."""

    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    tool_call_id: str | None = None

    @property
    def text(self) -> str:
        """The text of ``content``: the string, or the text parts joined; "" when absent."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type == "text")


class FunctionSpec(msgspec.Struct, frozen=True):
    """An offered function: name, description and its JSON-schema parameters."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] = msgspec.field(default_factory=dict)
    strict: bool | None = None

    @property
    def properties(self) -> dict[str, Any]:
        props = self.parameters.get("properties", {})
        return props if isinstance(props, dict) else {}

    @property
    def required(self) -> list[str]:
        req = self.parameters.get("required", [])
        return [str(name) for name in req] if isinstance(req, list) else []


class ToolSpec(msgspec.Struct, frozen=True):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(msgspec.Struct, frozen=True):
    name: str


class NamedToolChoice(msgspec.Struct, frozen=True):
    """``{"type": "function", "function": {"name": ...}}``: this function must be called."""

    function: NamedFunction
    type: Literal["function"] = "function"


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class StreamOptions(msgspec.Struct, frozen=True):
    include_usage: bool = False


class ChatBody(msgspec.Struct, frozen=True):
    """The fields of ``POST /v1/chat/completions`` the server acts on."""

    model: str
    messages: list[Message]
    tools: list[ToolSpec] = msgspec.field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: int | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat completion request, numbered from 1 in arrival order."""

    number: int
    model: str
    messages: tuple[Message, ...]
    tools: tuple[FunctionSpec, ...]
    tool_choice: ToolChoice | None
    parallel_tool_calls: bool | None
    stream: bool
    include_usage: bool
    # The JSON body exactly as decoded, for fields the typed view does not name.
    body: Mapping[str, Any] = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)

    @property
    def tool_names(self) -> list[str]:
        return [tool.name for tool in self.tools]

    def tool(self, name: str) -> FunctionSpec:
        """The offered function called ``name``; KeyError naming the offered ones otherwise."""
        for tool in self.tools:
            if tool.name == name:
                return tool
        raise KeyError(f"{name!r} was not offered; offered: {self.tool_names}")

    @property
    def forced_tool(self) -> str | None:
        """The function ``tool_choice`` names, if it names one."""
        if isinstance(self.tool_choice, NamedToolChoice):
            return self.tool_choice.function.name
        return None

    @property
    def last(self) -> Message:
        return self.messages[-1]

    def last_from(self, role: Role) -> Message | None:
        """The latest message with ``role``, if any."""
        for message in reversed(self.messages):
            if message.role == role:
                return message
        return None

    @property
    def last_user_text(self) -> str:
        message = self.last_from("user")
        return message.text if message is not None else ""

    @property
    def instructions(self) -> str:
        """The system and developer messages' text, joined by blank lines."""
        return "\n\n".join(m.text for m in self.messages if m.role in ("system", "developer"))

    @property
    def tool_results(self) -> list[Message]:
        """The ``tool`` messages (results of earlier calls), in order."""
        return [m for m in self.messages if m.role == "tool"]

    def summary(self) -> str:
        last = self.last.text or ("(tool calls)" if self.last.tool_calls else "(empty)")
        return (
            f"chat #{self.number} model={self.model} tools={self.tool_names} "
            f"tool_choice={_choice_text(self.tool_choice)} last {self.last.role}: {last!r:.80}"
        )


def _choice_text(choice: ToolChoice | None) -> str:
    if isinstance(choice, NamedToolChoice):
        return f"function:{choice.function.name}"
    return str(choice)


TranscriptionFormat = Literal["json", "text", "srt", "verbose_json", "vtt", "diarized_json"]


@dataclass(frozen=True, slots=True)
class TranscriptionRequest:
    """One ``POST /v1/audio/transcriptions`` upload (multipart form)."""

    number: int
    model: str
    filename: str
    content_type: str
    audio: bytes = field(repr=False)
    response_format: str
    language: str | None
    prompt: str | None
    temperature: float | None
    # Every non-file form field, as sent (lists such as ``languages`` keep all values).
    fields: Mapping[str, tuple[str, ...]] = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)
    # From the WAV header when the upload is a WAV, else None.
    duration: float | None = None
    sample_rate: int | None = None

    def summary(self) -> str:
        seconds = "?" if self.duration is None else f"{self.duration:.2f}s"
        return (
            f"transcription #{self.number} model={self.model} {self.filename} "
            f"({len(self.audio)} bytes, {seconds}) format={self.response_format}"
        )


SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


@dataclass(frozen=True, slots=True)
class SpeechRequest:
    """One ``POST /v1/audio/speech`` request."""

    number: int
    model: str
    input: str
    voice: str
    response_format: str
    speed: float
    instructions: str | None
    stream_format: str
    body: Mapping[str, Any] = field(repr=False)
    headers: Mapping[str, str] = field(repr=False)

    def summary(self) -> str:
        return (
            f"speech #{self.number} model={self.model} voice={self.voice} "
            f"format={self.response_format}/{self.stream_format} input={self.input!r:.80}"
        )
