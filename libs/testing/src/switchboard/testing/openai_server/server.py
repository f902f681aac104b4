"""``OpenAIServer``: an OpenAI-compatible HTTP server on 127.0.0.1 answering from policies.

Point the real ``livekit-plugins-openai`` classes (or any openai client) at
``server.base_url`` with any API key. Endpoints: ``POST /v1/chat/completions`` (streamed and
not), ``POST /v1/audio/transcriptions``, ``POST /v1/audio/speech`` and ``GET /v1/models``
(what ``LLM.prewarm`` asks). Every request is parsed, validated like the real API and
logged before a policy or the fault plan decides its answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TypeVar

from aiohttp import web

from switchboard.testing.openai_server import audio, responses, wire
from switchboard.testing.openai_server.answers import (
    BODY_FAULT_TYPES,
    FAULT_TYPES,
    Answer,
    CutStream,
    Delay,
    HttpError,
    MalformedChunk,
    Reply,
    Speech,
    StreamError,
    Transcript,
)
from switchboard.testing.openai_server.faults import FaultPlan
from switchboard.testing.openai_server.log import PolicyFailure, Rejection, RequestLog
from switchboard.testing.openai_server.policy import (
    ChatPolicy,
    PolicyResult,
    SpeechPolicy,
    Summarized,
    TranscriptionPolicy,
    no_chat_policy,
    no_transcription_policy,
    resolve,
    speech_by_length,
)
from switchboard.testing.openai_server.requests import (
    ChatRequest,
    Endpoint,
    SpeechRequest,
    TranscriptionRequest,
)
from switchboard.testing.openai_server.validation import (
    InvalidRequest,
    parse_chat,
    parse_speech,
    parse_transcription,
    reply_problems,
)

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
# What GET /v1/models lists (livekit's LLM.prewarm asks); requests may name any model.
DEFAULT_MODELS = (
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4o-mini-transcribe",
    "whisper-1",
    "gpt-4o-mini-tts",
)
# OpenAI takes uploads up to 25 MB; a little more so the limit is never the double's.
MAX_BODY = 32 * 1024 * 1024
# 0.1 s of 24 kHz 16-bit mono audio per speech chunk.
SPEECH_PIECE = audio.SAMPLE_RATE * audio.SAMPLE_WIDTH // 10
# Handlers end their delays when the server stops, so the shutdown never waits this long.
SHUTDOWN_TIMEOUT = 2.0

Q = TypeVar("Q", ChatRequest, TranscriptionRequest, SpeechRequest)


class OpenAIServer:
    """A scripted OpenAI-compatible server for tests and local runs.

    ``policy`` answers chat completions, ``transcription_policy`` transcriptions and
    ``speech_policy`` speech (default: a tone as long as the text takes to say); all three
    may be replaced at any time. ``faults`` injects faults by request number or as an
    outage. With ``api_key``, requests must carry it as a bearer token (401 otherwise).
    ``check_replies`` fails replies the real API could not send for the request.
    """

    def __init__(
        self,
        policy: ChatPolicy | None = None,
        *,
        transcription_policy: TranscriptionPolicy | None = None,
        speech_policy: SpeechPolicy | None = None,
        api_key: str | None = None,
        models: Sequence[str] = DEFAULT_MODELS,
        check_replies: bool = True,
    ) -> None:
        self.policy: ChatPolicy = policy or no_chat_policy
        self.transcription_policy: TranscriptionPolicy = (
            transcription_policy or no_transcription_policy
        )
        self.speech_policy: SpeechPolicy = speech_policy or speech_by_length()
        self.api_key = api_key
        self.models = list(models)
        self.check_replies = check_replies
        self.faults = FaultPlan()
        self.chat_requests: RequestLog[ChatRequest] = RequestLog("chat request")
        self.transcription_requests: RequestLog[TranscriptionRequest] = RequestLog(
            "transcription request"
        )
        self.speech_requests: RequestLog[SpeechRequest] = RequestLog("speech request")
        self.model_list_requests = 0
        self.rejections: list[Rejection] = []
        self.failures: list[PolicyFailure] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._stopping = asyncio.Event()

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("OpenAIServer is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def base_url(self) -> str:
        """What the openai client takes as ``base_url`` (``OPENAI_BASE_URL``)."""
        return f"{self.url}/v1"

    def env(self, api_key: str = "test") -> dict[str, str]:
        """Environment that points an openai client created without arguments here."""
        return {"OPENAI_BASE_URL": self.base_url, "OPENAI_API_KEY": self.api_key or api_key}

    async def start(self) -> OpenAIServer:
        if self._runner is not None:
            raise RuntimeError("OpenAIServer is already started")
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/audio/transcriptions", self._transcription)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # handler_cancellation: a client that gives up (a timeout) ends its request's
        # handler, so a stalled request never asks the policy after the client has gone.
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT
        )
        await runner.setup()
        # Binding the socket here (port 0) gives a free port with no window for a race.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((HOST, 0))
            site = web.SockSite(runner, sock)
            await site.start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._port = sock.getsockname()[1]
        self._runner = runner
        return self

    async def stop(self) -> None:
        """Stop serving; open delays and stalls end and their connections are closed.

        ``base_url`` keeps naming the closed port, so clients still pointed at it get
        connection errors: the provider is down."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._stopping.set()
        await runner.cleanup()

    async def __aenter__(self) -> OpenAIServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
        if exc is None:
            self.check()

    def check(self) -> None:
        """Fail if a policy failed (raised, ran out, answered the impossible) or a request
        was refused as the real API would refuse it. Clear ``failures``/``rejections`` to
        accept what a test provoked on purpose."""
        problems = [f"{f.endpoint} policy failed on {f.request}: {f.error}" for f in self.failures]
        problems += [
            f"{r.endpoint} request refused with {r.status}: {r.message}" for r in self.rejections
        ]
        if problems:
            raise AssertionError("OpenAIServer:\n  " + "\n  ".join(problems))

    # --- deciding -----------------------------------------------------------------------

    async def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the server stops first; True when the time ran out."""
        if seconds <= 0:
            return not self._stopping.is_set()
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return True
        return False

    async def _decide(
        self,
        endpoint: Endpoint,
        request: Summarized,
        model: str | None,
        ask: Callable[[], Awaitable[PolicyResult]],
    ) -> PolicyResult | None:
        """The answer for a request: the planned fault, else the policy's; delays are
        waited out here. None: hang up without an answer (a stall, or the server stops)."""
        planned = self.faults.fault_for(endpoint, request.number, model)
        from_plan = planned is not None
        answer: PolicyResult = planned if planned is not None else await ask()
        while isinstance(answer, Delay):
            if not await self._pause(answer.seconds):
                return None
            if answer.then is not None:
                answer = answer.then
            elif from_plan:
                from_plan = False
                answer = await ask()
            else:
                return None
        return answer

    async def _ask(
        self,
        endpoint: Endpoint,
        request: Q,
        policy: Callable[[Q], PolicyResult | Awaitable[PolicyResult]],
    ) -> PolicyResult:
        try:
            result: PolicyResult = await resolve(policy(request))
        except Exception as exc:  # a policy bug must reach the test, not kill the handler
            return self._failed(endpoint, request, f"{type(exc).__name__}: {exc}")
        return result

    def _failed(self, endpoint: Endpoint, request: Summarized, error: str) -> HttpError:
        log.error("OpenAIServer %s policy failed on %s: %s", endpoint, request.summary(), error)
        self.failures.append(
            PolicyFailure(endpoint=endpoint, request=request.summary(), error=error)
        )
        return HttpError(
            status=500,
            message=f"OpenAIServer policy failed: {error}",
            type="server_error",
            code="policy_failed",
        )

    def _vet(
        self,
        endpoint: Endpoint,
        request: Summarized,
        answer: PolicyResult,
        kind: type[Reply] | type[Transcript] | type[Speech],
    ) -> Answer:
        """The answer if this endpoint can send it (a string is a text reply or a
        transcript's text), else a 500 recorded as a policy failure."""
        if isinstance(answer, str) and kind is Reply:
            answer = Reply(text=answer)
        elif isinstance(answer, str) and kind is Transcript:
            answer = Transcript(text=answer)
        if isinstance(answer, str) or not isinstance(answer, (kind, *FAULT_TYPES)):
            return self._failed(
                endpoint,
                request,
                f"answered {answer!r}; this endpoint takes {kind.__name__} or a fault",
            )
        if isinstance(answer, Reply) and isinstance(request, ChatRequest) and self.check_replies:
            problems = reply_problems(request, answer)
            if problems:
                return self._failed(
                    endpoint, request, "a reply the real API could not send: " + "; ".join(problems)
                )
        return answer

    # --- responses ----------------------------------------------------------------------

    def _headers(self, endpoint: Endpoint, number: int) -> dict[str, str]:
        return {
            "x-request-id": f"req_sb_{endpoint}_{number:06d}",
            "openai-processing-ms": "1",
            "openai-version": "2020-10-01",
        }

    def _refuse(self, endpoint: Endpoint, exc: InvalidRequest, status: int = 400) -> web.Response:
        log.warning("OpenAIServer refused a %s request: %s", endpoint, exc.message)
        self.rejections.append(
            Rejection(endpoint=endpoint, status=status, message=exc.message, param=exc.param)
        )
        error_type = "invalid_request_error"
        return responses.error(
            HttpError(
                status=status, message=exc.message, type=error_type, code=exc.code, param=exc.param
            )
        )

    def _deny(self, endpoint: Endpoint, http: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        if http.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        refusal = InvalidRequest(
            "Incorrect API key provided. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )
        return self._refuse(endpoint, refusal, status=401)

    # --- chat ---------------------------------------------------------------------------

    async def _chat(self, http: web.Request) -> web.StreamResponse:
        denied = self._deny("chat", http)
        if denied is not None:
            return denied
        raw = await http.read()
        try:
            # Numbered by position in the log: no await between numbering and appending.
            chat = parse_chat(raw, number=len(self.chat_requests) + 1, headers=dict(http.headers))
        except InvalidRequest as exc:
            return self._refuse("chat", exc)
        self.chat_requests.append(chat)

        async def ask() -> PolicyResult:
            return await self._ask("chat", chat, self.policy)

        decided = await self._decide("chat", chat, chat.model, ask)
        if decided is None:
            return responses.hung_up(http)
        answer = self._vet("chat", chat, decided, Reply)
        headers = self._headers("chat", chat.number)
        if isinstance(answer, HttpError):
            return responses.error(answer, headers)
        if not isinstance(answer, Reply | CutStream | MalformedChunk | StreamError):
            return responses.error(
                self._failed("chat", chat, f"cannot answer with {answer!r}"), headers
            )
        reply = answer if isinstance(answer, Reply) else answer.reply
        completion = wire.Completion(
            id=wire.completion_id(chat.number), created=int(time.time()), model=chat.model
        )
        usage = reply.usage or wire.estimate_usage(chat, reply)
        if not chat.stream:
            body = wire.chat_completion(reply, completion, number=chat.number, usage=usage)
            fault = None if isinstance(answer, Reply) else answer
            return await responses.send_body(
                http, fault, json.dumps(body).encode(), "application/json", headers
            )
        chunks = wire.chat_chunks(
            reply, completion, number=chat.number, usage=usage if chat.include_usage else None
        )
        frames = [wire.sse(chunk) for chunk in chunks]
        interval = reply.interval

        async def pace() -> bool:
            return await self._pause(interval) if interval else True

        return await responses.send_stream(
            http,
            None if isinstance(answer, Reply) else answer,
            frames,
            {**headers, **wire.SSE_HEADERS},
            done=wire.DONE,
            pause=pace,
        )

    # --- audio --------------------------------------------------------------------------

    async def _transcription(self, http: web.Request) -> web.StreamResponse:
        denied = self._deny("transcription", http)
        if denied is not None:
            return denied
        form = await http.post()
        fields: dict[str, list[str]] = {}
        upload: tuple[str, str, bytes] | None = None
        for key, value in form.items():
            if isinstance(value, web.FileField):
                upload = (value.filename, value.content_type, value.file.read())
            else:
                text = value if isinstance(value, str) else value.decode()
                fields.setdefault(key, []).append(text)
        try:
            request = parse_transcription(
                fields,
                upload,
                number=len(self.transcription_requests) + 1,
                headers=dict(http.headers),
            )
        except InvalidRequest as exc:
            return self._refuse("transcription", exc)
        self.transcription_requests.append(request)

        async def ask() -> PolicyResult:
            return await self._ask("transcription", request, self.transcription_policy)

        decided = await self._decide("transcription", request, request.model, ask)
        if decided is None:
            return responses.hung_up(http)
        answer = self._vet("transcription", request, decided, Transcript)
        headers = self._headers("transcription", request.number)
        # A fault carries no transcript: its partial or broken body is made from an empty one.
        transcript = answer if isinstance(answer, Transcript) else Transcript(text="")
        duration = transcript.duration if transcript.duration is not None else request.duration
        content_type, body = wire.transcription(
            transcript.text,
            response_format=request.response_format,
            model=request.model,
            language=transcript.language,
            duration=duration or 0.0,
        )
        fault = answer if isinstance(answer, BODY_FAULT_TYPES) else None
        return await responses.send_body(http, fault, body.encode(), content_type, headers)

    async def _speech(self, http: web.Request) -> web.StreamResponse:
        denied = self._deny("speech", http)
        if denied is not None:
            return denied
        raw = await http.read()
        try:
            request = parse_speech(
                raw, number=len(self.speech_requests) + 1, headers=dict(http.headers)
            )
        except InvalidRequest as exc:
            return self._refuse("speech", exc)
        if request.response_format not in wire.SPEECH_CONTENT_TYPES:
            unsupported = InvalidRequest(
                f"OpenAIServer renders only 'pcm' and 'wav' audio, not "
                f"{request.response_format!r}: create the TTS with response_format='pcm' "
                "(livekit's openai.TTS asks for mp3 by default).",
                param="response_format",
                code="unsupported_value",
            )
            return self._refuse("speech", unsupported)
        self.speech_requests.append(request)

        async def ask() -> PolicyResult:
            return await self._ask("speech", request, self.speech_policy)

        decided = await self._decide("speech", request, request.model, ask)
        if decided is None:
            return responses.hung_up(http)
        answer = self._vet("speech", request, decided, Speech)
        headers = self._headers("speech", request.number)
        if isinstance(answer, HttpError):
            return responses.error(answer, headers)
        speech = answer if isinstance(answer, Speech) else Speech(seconds=1.0)
        pcm = audio.tone(speech.seconds, hz=speech.tone_hz, amplitude=speech.amplitude)
        data = audio.wav(pcm) if request.response_format == "wav" else pcm
        pieces = audio.pieces(data, SPEECH_PIECE)
        fault = answer if isinstance(answer, CutStream | MalformedChunk | StreamError) else None
        if request.stream_format == "sse":
            frames = [wire.speech_delta(piece) for piece in pieces]
            if fault is None:
                frames.append(wire.speech_done(request.input, speech.seconds))
            sse_headers = {**headers, **wire.SSE_HEADERS}
            return await responses.send_stream(http, fault, frames, sse_headers, done=None)
        content_type = wire.SPEECH_CONTENT_TYPES[request.response_format]
        audio_headers = {**headers, "Content-Type": content_type}
        return await responses.send_stream(http, fault, pieces, audio_headers, done=None)

    # --- the rest -----------------------------------------------------------------------

    async def _models(self, http: web.Request) -> web.StreamResponse:
        denied = self._deny("models", http)
        if denied is not None:
            return denied
        self.model_list_requests += 1
        number = self.model_list_requests
        planned = self.faults.fault_for("models", number, None)
        while isinstance(planned, Delay):
            if not await self._pause(planned.seconds):
                return responses.hung_up(http)
            # No policy answers this endpoint: a `then` that is not a fault means the list.
            then = planned.then
            planned = then if isinstance(then, FAULT_TYPES) else None
        body = json.dumps(wire.models_list(self.models)).encode()
        headers = self._headers("models", number)
        return await responses.send_body(http, planned, body, "application/json", headers)

    async def _not_found(self, http: web.Request) -> web.Response:
        # What OpenAI answers for a path it does not serve (livekit's TTS prewarm GETs /v1/).
        log.debug("OpenAIServer: no endpoint for %s %s", http.method, http.path)
        body = wire.error_body(
            f"Invalid URL ({http.method} {http.path})", type="invalid_request_error"
        )
        return web.json_response(body, status=404)
