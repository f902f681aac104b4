"""A scripted OpenAI-compatible HTTP server for tests and local runs.

Start it, point the real ``livekit-plugins-openai`` classes at ``server.base_url`` with any
key, and decide every answer with a policy::

    async with OpenAIServer(Script([say("Hello!"), calls(call("lookup", {"id": 7}))])) as server:
        model = openai.LLM(base_url=server.base_url, api_key="test")
        ...
        request = await server.chat_requests.wait_for(2)
        assert request.tool_names == ["lookup"]

Modules: ``answers`` (replies, audio answers, faults), ``requests`` (typed request views),
``policy`` (``Script`` and the policy types), ``faults`` (the fault plan), ``log`` (request
logs with bounded waits), ``validation`` (the real API's refusals), ``wire`` (the JSON and
SSE shapes), ``audio`` (PCM/WAV), ``utterances`` (``ScriptedSpeech``: transcribes the
scripted caller line found in an upload), ``server`` (the aiohttp server).
"""

from switchboard.testing.openai_server.answers import (
    Answer,
    Call,
    ChatAnswer,
    CutStream,
    Delay,
    Fault,
    HttpError,
    MalformedChunk,
    Reply,
    Speech,
    StreamError,
    Transcript,
    Usage,
    call,
    calls,
    say,
)
from switchboard.testing.openai_server.faults import FaultPlan
from switchboard.testing.openai_server.log import PolicyFailure, Rejection, RequestLog
from switchboard.testing.openai_server.policy import (
    ChatPolicy,
    Script,
    ScriptExhausted,
    SpeechPolicy,
    TranscriptionPolicy,
    speech_by_length,
)
from switchboard.testing.openai_server.requests import (
    ChatRequest,
    FunctionSpec,
    Message,
    NamedToolChoice,
    SpeechRequest,
    ToolCall,
    TranscriptionRequest,
)
from switchboard.testing.openai_server.server import OpenAIServer
from switchboard.testing.openai_server.utterances import ScriptedSpeech

__all__ = [
    "Answer",
    "Call",
    "ChatAnswer",
    "ChatPolicy",
    "ChatRequest",
    "CutStream",
    "Delay",
    "Fault",
    "FaultPlan",
    "FunctionSpec",
    "HttpError",
    "MalformedChunk",
    "Message",
    "NamedToolChoice",
    "OpenAIServer",
    "PolicyFailure",
    "Rejection",
    "Reply",
    "RequestLog",
    "Script",
    "ScriptExhausted",
    "ScriptedSpeech",
    "Speech",
    "SpeechPolicy",
    "SpeechRequest",
    "StreamError",
    "ToolCall",
    "Transcript",
    "TranscriptionPolicy",
    "TranscriptionRequest",
    "Usage",
    "call",
    "calls",
    "say",
    "speech_by_length",
]
