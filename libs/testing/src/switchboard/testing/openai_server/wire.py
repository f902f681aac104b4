"""The bytes and JSON shapes of OpenAI's HTTP API, as the openai client parses them.

Pure functions (no I/O) so the framing can be unit-tested: chat completion chunks and SSE
framing (``data: {...}\\n\\n`` and ``data: [DONE]\\n\\n``), the final usage chunk, the
non-streamed completion object, error bodies, transcription and speech renderings.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from switchboard.testing.openai_server.answers import Call, Reply, Usage
from switchboard.testing.openai_server.requests import ChatRequest

JSON = dict[str, Any]
DONE = b"data: [DONE]\n\n"
FINGERPRINT = "fp_switchboard_testing"
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


def sse(data: Mapping[str, Any] | str) -> bytes:
    """One server-sent event carrying ``data`` (JSON-encoded unless already a string)."""
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> JSON:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@dataclass(frozen=True, slots=True)
class Completion:
    """The identity every chunk of one answer repeats."""

    id: str
    created: int
    model: str


def completion_id(number: int) -> str:
    return f"chatcmpl-sb{number:06d}"


def call_id(number: int, index: int) -> str:
    return f"call_sb{number:06d}_{index}"


def text_pieces(text: str) -> list[str]:
    """``text`` split before each word, leading whitespace kept (" world"), as models stream."""
    found = re.findall(r"\s*\S+", text)
    rest = text[len("".join(found)) :]
    if rest:
        found.append(rest)
    return found


def argument_pieces(arguments: str, size: int) -> list[str]:
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def estimate_usage(request: ChatRequest, reply: Reply) -> Usage:
    """Deterministic token counts, about four characters a token like English text."""
    prompt_chars = sum(
        len(m.text) + len(json.dumps([c.function.arguments for c in m.tool_calls]))
        for m in request.messages
    )
    prompt_chars += len(json.dumps(request.body.get("tools", [])))
    completion_chars = len(reply.text) + sum(len(c.name) + len(c.arguments) for c in reply.calls)
    return Usage(
        prompt_tokens=math.ceil(prompt_chars / 4), completion_tokens=math.ceil(completion_chars / 4)
    )


def usage_json(usage: Usage) -> JSON:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _resolved_calls(reply: Reply, number: int) -> list[tuple[str, Call]]:
    return [(c.id or call_id(number, i), c) for i, c in enumerate(reply.calls)]


def chat_chunks(
    reply: Reply, completion: Completion, *, number: int, usage: Usage | None
) -> list[JSON]:
    """The ``chat.completion.chunk`` objects of a streamed reply, in order; the usage chunk
    (``choices: []``) last when ``usage`` is given (the client asked for it)."""

    def chunk(delta: JSON, finish: str | None = None) -> JSON:
        body: JSON = {
            "id": completion.id,
            "object": "chat.completion.chunk",
            "created": completion.created,
            "model": completion.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if usage is not None:
            # With include_usage, OpenAI sends "usage": null on every chunk but the last.
            body["usage"] = None
        return body

    content_first = "" if reply.text or not reply.calls else None
    chunks = [chunk({"role": "assistant", "content": content_first, "refusal": None})]
    chunks.extend(chunk({"content": piece}) for piece in text_pieces(reply.text))
    for index, (id_, tool_call) in enumerate(_resolved_calls(reply, number)):
        opening = {
            "index": index,
            "id": id_,
            "type": "function",
            "function": {"name": tool_call.name, "arguments": ""},
        }
        chunks.append(chunk({"tool_calls": [opening]}))
        for piece in argument_pieces(tool_call.arguments, reply.argument_piece):
            chunks.append(
                chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            )
    chunks.append(chunk({}, reply.finish))
    if usage is not None:
        chunks.append(
            {
                "id": completion.id,
                "object": "chat.completion.chunk",
                "created": completion.created,
                "model": completion.model,
                "system_fingerprint": FINGERPRINT,
                "choices": [],
                "usage": usage_json(usage),
            }
        )
    return chunks


def chat_completion(reply: Reply, completion: Completion, *, number: int, usage: Usage) -> JSON:
    """The ``chat.completion`` object of a non-streamed reply."""
    message: JSON = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.calls:
        message["tool_calls"] = [
            {
                "id": id_,
                "type": "function",
                "function": {"name": tool_call.name, "arguments": tool_call.arguments},
            }
            for id_, tool_call in _resolved_calls(reply, number)
        ]
    return {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "system_fingerprint": FINGERPRINT,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish}
        ],
        "usage": usage_json(usage),
    }


def models_list(models: list[str]) -> JSON:
    return {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": 0, "owned_by": "switchboard-testing"}
            for model in models
        ],
    }


# --- audio --------------------------------------------------------------------------------


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def transcription(
    text: str, *, response_format: str, model: str, language: str, duration: float
) -> tuple[str, str]:
    """(content type, body) of a transcription in ``response_format``."""
    if response_format == "text":
        return "text/plain; charset=utf-8", text + "\n"
    if response_format == "srt":
        cue = f"1\n{_timestamp(0, ',')} --> {_timestamp(duration, ',')}\n{text}\n\n"
        return "text/plain; charset=utf-8", cue
    if response_format == "vtt":
        cue = f"WEBVTT\n\n{_timestamp(0, '.')} --> {_timestamp(duration, '.')}\n{text}\n\n"
        return "text/vtt; charset=utf-8", cue
    usage: JSON
    if model.startswith("whisper"):
        # whisper bills by duration; the gpt-4o transcribe models report tokens.
        usage = {"type": "duration", "seconds": math.ceil(duration)}
    else:
        tokens = math.ceil(duration * 10)
        out = math.ceil(len(text) / 4)
        usage = {
            "type": "tokens",
            "input_tokens": tokens,
            "output_tokens": out,
            "total_tokens": tokens + out,
            "input_token_details": {"audio_tokens": tokens, "text_tokens": 0},
        }
    body: JSON
    if response_format == "verbose_json":
        body = {
            "task": "transcribe",
            "language": language,
            "duration": duration,
            "text": text,
            "segments": [
                {
                    "id": 0,
                    "seek": 0,
                    "start": 0.0,
                    "end": duration,
                    "text": text,
                    "tokens": [],
                    "temperature": 0.0,
                    "avg_logprob": -0.1,
                    "compression_ratio": 1.0,
                    "no_speech_prob": 0.0,
                }
            ],
            "usage": usage,
        }
    elif response_format == "diarized_json":
        body = {
            "task": "transcribe",
            "duration": duration,
            "text": text,
            "segments": [
                {
                    "type": "transcript.text.segment",
                    "id": "seg_0",
                    "start": 0.0,
                    "end": duration,
                    "text": text,
                    "speaker": "A",
                }
            ],
            "usage": usage,
        }
    else:
        body = {"text": text, "usage": usage}
    return "application/json", json.dumps(body)


SPEECH_CONTENT_TYPES = {"pcm": "audio/pcm", "wav": "audio/wav"}


def speech_delta(audio: bytes) -> bytes:
    return sse({"type": "speech.audio.delta", "audio": base64.b64encode(audio).decode("ascii")})


def speech_done(input_text: str, audio_seconds: float) -> bytes:
    input_tokens = math.ceil(len(input_text) / 4)
    output_tokens = math.ceil(audio_seconds * 20)
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    return sse({"type": "speech.audio.done", "usage": usage})
