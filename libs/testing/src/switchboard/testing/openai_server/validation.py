"""Turns request bodies into typed views, refusing what the real API refuses, and checks
that a scripted reply is one the real API could have sent for the request.

The refusals use OpenAI's wording where it is known (``invalid_request_error`` bodies with
``param`` and ``code``), so a history or tool schema the real API would reject with a 400
fails in tests too instead of in production. The reply checks catch scripts that could
never happen: calling a tool that was not offered, ignoring ``tool_choice``, arguments that
break a strict schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import msgspec

from switchboard.testing.openai_server.answers import Reply
from switchboard.testing.openai_server.audio import read_wav_info
from switchboard.testing.openai_server.requests import (
    ChatBody,
    ChatRequest,
    FunctionSpec,
    Message,
    NamedToolChoice,
    SpeechRequest,
    TranscriptionRequest,
)

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
TRANSCRIPTION_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
MAX_SPEECH_INPUT = 4096
T = TypeVar("T")


class InvalidRequest(Exception):
    """A request the real API answers with 400 ``invalid_request_error``."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)"
        )
    return body


def _convert(body: Mapping[str, Any], kind: type[T]) -> T:
    try:
        return msgspec.convert(body, kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        # msgspec ends its message with "- at `$.messages[0].role`": that path is the param.
        param = text.rsplit("at `$.", 1)[1].rstrip("`") if "at `$." in text else None
        raise InvalidRequest(f"Invalid request: {text}", param=param) from None


# --- chat ---------------------------------------------------------------------------------


def parse_chat(raw: bytes, *, number: int, headers: Mapping[str, str]) -> ChatRequest:
    """The typed view of a chat completion body, or ``InvalidRequest``."""
    body = parse_json_object(raw)
    typed = _convert(body, ChatBody)
    if not typed.messages:
        raise InvalidRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    if typed.n not in (None, 1):
        raise InvalidRequest(
            "OpenAIServer answers with a single choice; send n=1 or leave n out.",
            param="n",
            code="unsupported_value",
        )
    if typed.stream_options is not None and not typed.stream:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
            code="invalid_value",
        )
    functions = tuple(tool.function for tool in typed.tools)
    _check_tools(functions)
    _check_tool_choice(typed, functions)
    _check_history(typed.messages)
    return ChatRequest(
        number=number,
        model=typed.model,
        messages=tuple(typed.messages),
        tools=functions,
        tool_choice=typed.tool_choice,
        parallel_tool_calls=typed.parallel_tool_calls,
        stream=bool(typed.stream),
        include_usage=bool(
            typed.stream and typed.stream_options and typed.stream_options.include_usage
        ),
        body=body,
        headers=dict(headers),
    )


def _check_tools(functions: Sequence[FunctionSpec]) -> None:
    seen: set[str] = set()
    for i, function in enumerate(functions):
        if not TOOL_NAME.match(function.name):
            raise InvalidRequest(
                f"Invalid 'tools[{i}].function.name': string does not match pattern. Expected "
                "a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                param=f"tools[{i}].function.name",
                code="invalid_value",
            )
        if function.name in seen:
            raise InvalidRequest(
                f"Invalid 'tools': duplicate function name {function.name!r}.",
                param="tools",
                code="invalid_value",
            )
        seen.add(function.name)
        if function.strict:
            problem = strict_schema_problem(function.parameters)
            if problem is not None:
                raise InvalidRequest(
                    f"Invalid schema for function '{function.name}': {problem}",
                    param=f"tools[{i}].function.parameters",
                    code="invalid_function_parameters",
                )


def strict_schema_problem(schema: Any, context: tuple[str, ...] = ()) -> str | None:
    """Why a schema breaks OpenAI's strict-mode rules (every object closed with
    ``additionalProperties: false`` and every property required), or None."""
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "object" or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return (
                f"In context={context!r}, 'additionalProperties' is required to be supplied "
                "and to be false."
            )
        properties = schema.get("properties") or {}
        required = schema.get("required") or []
        missing = [key for key in properties if key not in required]
        if missing:
            return (
                f"In context={context!r}, 'required' is required to be supplied and to be an "
                f"array including every key in properties. Missing '{missing[0]}'."
            )
        for key, sub in properties.items():
            problem = strict_schema_problem(sub, (*context, "properties", key))
            if problem is not None:
                return problem
    nested: list[tuple[tuple[str, ...], Any]] = []
    if "items" in schema:
        nested.append(((*context, "items"), schema["items"]))
    for key in ("anyOf", "allOf", "oneOf"):
        for j, sub in enumerate(schema.get(key) or []):
            nested.append(((*context, key, str(j)), sub))
    for key in ("$defs", "definitions"):
        for name, sub in (schema.get(key) or {}).items():
            nested.append(((*context, key, name), sub))
    for sub_context, sub in nested:
        problem = strict_schema_problem(sub, sub_context)
        if problem is not None:
            return problem
    return None


def _check_tool_choice(body: ChatBody, functions: Sequence[FunctionSpec]) -> None:
    if not functions:
        if body.tool_choice is not None:
            raise InvalidRequest(
                "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' "
                "are specified.",
                param="tool_choice",
            )
        if body.parallel_tool_calls is not None:
            raise InvalidRequest(
                "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only "
                "allowed when 'tools' are specified.",
                param="parallel_tool_calls",
            )
        return
    if isinstance(body.tool_choice, NamedToolChoice):
        name = body.tool_choice.function.name
        if name not in {f.name for f in functions}:
            raise InvalidRequest(
                f"Invalid value for 'tool_choice': function {name!r} is not in 'tools'.",
                param="tool_choice",
                code="invalid_value",
            )


def _check_history(messages: Sequence[Message]) -> None:
    """Tool results answer the assistant message just before them, and every call made in
    the history has its result (OpenAI refuses both otherwise)."""
    open_calls: set[str] | None = None
    unanswered: list[str] = []
    for i, message in enumerate(messages):
        if message.role == "tool":
            if message.tool_call_id is None:
                raise InvalidRequest(
                    f"Missing required parameter: 'messages[{i}].tool_call_id'.",
                    param=f"messages.[{i}].tool_call_id",
                    code="missing_required_parameter",
                )
            if open_calls is None or message.tool_call_id not in open_calls:
                raise InvalidRequest(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    param=f"messages.[{i}].role",
                )
            if message.tool_call_id in unanswered:
                unanswered.remove(message.tool_call_id)
            continue
        _refuse_unanswered(unanswered)
        open_calls = None
        if message.role == "assistant" and message.tool_calls:
            open_calls = {tool_call.id for tool_call in message.tool_calls}
            unanswered = [tool_call.id for tool_call in message.tool_calls]
    _refuse_unanswered(unanswered)


def _refuse_unanswered(unanswered: list[str]) -> None:
    if unanswered:
        raise InvalidRequest(
            "An assistant message with 'tool_calls' must be followed by tool messages "
            "responding to each 'tool_call_id'. The following tool_call_ids did not have "
            f"response messages: {', '.join(unanswered)}",
            param="messages",
        )


def reply_problems(request: ChatRequest, reply: Reply) -> list[str]:
    """Why ``reply`` is not an answer the real API could give to ``request`` (empty: it is)."""
    problems: list[str] = []
    offered = {tool.name: tool for tool in request.tools}
    forced = request.forced_tool
    if not reply.calls:
        if request.tool_choice == "required" or forced is not None:
            problems.append(
                f"tool_choice={request.tool_choice!r} demands a tool call; the reply has none"
            )
        return problems
    if request.tool_choice == "none":
        problems.append("tool_choice is 'none' but the reply calls tools")
    if request.parallel_tool_calls is False and len(reply.calls) > 1:
        problems.append(
            f"parallel_tool_calls is false but the reply makes {len(reply.calls)} calls"
        )
    for tool_call in reply.calls:
        spec = offered.get(tool_call.name)
        if spec is None:
            problems.append(
                f"the reply calls {tool_call.name!r}, which was not offered ({list(offered)})"
            )
            continue
        if forced is not None and tool_call.name != forced:
            problems.append(f"tool_choice forces {forced!r}; the reply calls {tool_call.name!r}")
        problems.extend(_argument_problems(spec, tool_call.arguments))
    return problems


def _argument_problems(spec: FunctionSpec, arguments: str) -> list[str]:
    try:
        parsed = json.loads(arguments)
    except ValueError:
        return [f"{spec.name}: arguments are not JSON: {arguments!r}"]
    if not isinstance(parsed, dict):
        return [f"{spec.name}: arguments must be a JSON object, got {arguments!r}"]
    problems: list[str] = []
    missing = [name for name in spec.required if name not in parsed]
    if missing:
        problems.append(f"{spec.name}: required arguments missing: {missing}")
    closed = spec.strict or spec.parameters.get("additionalProperties") is False
    extra = [name for name in parsed if name not in spec.properties]
    if closed and extra:
        problems.append(f"{spec.name}: arguments not in the schema: {extra}")
    return problems


# --- audio --------------------------------------------------------------------------------


class _SpeechBody(msgspec.Struct, frozen=True):
    input: str
    model: str
    voice: str | dict[str, Any]
    response_format: str = "mp3"
    speed: float = 1.0
    instructions: str | None = None
    stream_format: str = "audio"


def parse_speech(raw: bytes, *, number: int, headers: Mapping[str, str]) -> SpeechRequest:
    body = parse_json_object(raw)
    typed = _convert(body, _SpeechBody)
    if not typed.input:
        raise InvalidRequest("Invalid 'input': empty string.", param="input", code="empty_string")
    if len(typed.input) > MAX_SPEECH_INPUT:
        raise InvalidRequest(
            f"Invalid 'input': string too long. Expected a string with maximum length "
            f"{MAX_SPEECH_INPUT}, but got a string with length {len(typed.input)} instead.",
            param="input",
            code="string_above_max_length",
        )
    if typed.response_format not in SPEECH_FORMATS:
        raise InvalidRequest(
            f"Invalid value: {typed.response_format!r}. Supported values are: "
            + ", ".join(repr(f) for f in SPEECH_FORMATS),
            param="response_format",
            code="invalid_value",
        )
    if not 0.25 <= typed.speed <= 4.0:
        raise InvalidRequest(
            f"Invalid 'speed': {typed.speed} is outside [0.25, 4.0].",
            param="speed",
            code="invalid_value",
        )
    if typed.stream_format not in ("sse", "audio"):
        raise InvalidRequest(
            f"Invalid value: {typed.stream_format!r}. Supported values are: 'sse' and 'audio'.",
            param="stream_format",
            code="invalid_value",
        )
    if typed.stream_format == "sse" and typed.model in ("tts-1", "tts-1-hd"):
        raise InvalidRequest(
            f"stream_format 'sse' is not supported for {typed.model}.",
            param="stream_format",
            code="unsupported_value",
        )
    voice = typed.voice if isinstance(typed.voice, str) else str(typed.voice.get("id", ""))
    return SpeechRequest(
        number=number,
        model=typed.model,
        input=typed.input,
        voice=voice,
        response_format=typed.response_format,
        speed=typed.speed,
        instructions=typed.instructions,
        stream_format=typed.stream_format,
        body=body,
        headers=dict(headers),
    )


def parse_transcription(
    fields: Mapping[str, Sequence[str]],
    upload: tuple[str, str, bytes] | None,
    *,
    number: int,
    headers: Mapping[str, str],
) -> TranscriptionRequest:
    """The typed view of a transcription form: ``upload`` is (filename, content type, bytes)."""
    if upload is None:
        raise InvalidRequest(
            "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
        )

    def one(name: str) -> str | None:
        values = fields.get(name)
        return values[-1] if values else None

    model = one("model")
    if not model:
        raise InvalidRequest(
            "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    response_format = one("response_format") or "json"
    if response_format not in TRANSCRIPTION_FORMATS:
        raise InvalidRequest(
            f"Invalid value: {response_format!r}. Supported values are: "
            + ", ".join(repr(f) for f in TRANSCRIPTION_FORMATS),
            param="response_format",
            code="invalid_value",
        )
    if (one("stream") or "false").lower() == "true":
        raise InvalidRequest(
            "OpenAIServer does not stream transcriptions; leave 'stream' out.",
            param="stream",
            code="unsupported_value",
        )
    temperature_text = one("temperature")
    try:
        temperature = float(temperature_text) if temperature_text is not None else None
    except ValueError:
        raise InvalidRequest(
            f"Invalid 'temperature': {temperature_text!r} is not a number.",
            param="temperature",
            code="invalid_type",
        ) from None
    filename, content_type, audio = upload
    info = read_wav_info(audio)
    return TranscriptionRequest(
        number=number,
        model=model,
        filename=filename,
        content_type=content_type,
        audio=audio,
        response_format=response_format,
        language=one("language"),
        prompt=one("prompt"),
        temperature=temperature,
        fields={name: tuple(values) for name, values in fields.items()},
        headers=dict(headers),
        duration=info.duration if info else None,
        sample_rate=info.sample_rate if info else None,
    )
