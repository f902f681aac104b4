"""Writing answers onto aiohttp responses, faults included.

Kept apart from the server so each fault's effect on the wire is in one place: an error
status with OpenAI's body, a body cut halfway, a stream cut after some chunks (the
connection closed without ending the chunked body, so the client sees an incomplete
response rather than a clean, silently short one), a chunk that is not JSON, an error event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from switchboard.testing.openai_server import wire
from switchboard.testing.openai_server.answers import (
    BodyFault,
    CutStream,
    HttpError,
    MalformedChunk,
    StreamError,
)

# A healthy stream, or a fault that shapes one.
StreamFault = CutStream | MalformedChunk | StreamError | None


def error(fault: HttpError, headers: Mapping[str, str] | None = None) -> web.Response:
    body = wire.error_body(fault.message, type=fault.type, param=fault.param, code=fault.code)
    return web.json_response(
        body, status=fault.status, headers={**(headers or {}), **fault.headers}
    )


def hang_up(http: web.Request) -> None:
    """Close the connection as is: what was written is flushed, the chunked body is never
    terminated, so the client sees an incomplete response (never a clean end)."""
    if http.transport is not None:
        http.transport.close()


def hung_up(http: web.Request) -> web.StreamResponse:
    """Close the connection before any response (a stall that ends without an answer)."""
    hang_up(http)
    # Never sent (the connection is gone); aiohttp needs a response to return.
    return web.Response(status=499)


async def send_body(
    http: web.Request,
    fault: BodyFault | None,
    body: bytes,
    content_type: str,
    headers: Mapping[str, str],
) -> web.StreamResponse:
    """A complete (non-streamed) body, or what ``fault`` makes of it."""
    if isinstance(fault, HttpError):
        return error(fault, headers)
    if isinstance(fault, StreamError):
        return error(HttpError(message=fault.message, type=fault.type), headers)
    if isinstance(fault, MalformedChunk):
        body = fault.payload.encode()
    response = web.StreamResponse(status=200, headers={**headers, "Content-Type": content_type})
    response.content_length = len(body)
    await response.prepare(http)
    if isinstance(fault, CutStream):
        await response.write(body[: len(body) // 2])
        hang_up(http)
        return response
    await response.write(body)
    await response.write_eof()
    return response


async def send_stream(
    http: web.Request,
    fault: StreamFault,
    frames: list[bytes],
    headers: Mapping[str, str],
    *,
    done: bytes | None,
    pause: Callable[[], Awaitable[bool]] | None = None,
) -> web.StreamResponse:
    """``frames`` (all, or the first ``after_chunks`` under a fault), then ``done`` when the
    stream ends well. ``pause`` runs between frames; False from it (the server stops)
    hangs up."""
    sse = headers.get("Content-Type", "").startswith("text/event-stream")
    response = web.StreamResponse(status=200, headers=headers)
    await response.prepare(http)
    sent = frames if fault is None else frames[: fault.after_chunks]
    for i, frame in enumerate(sent):
        if i and pause is not None and not await pause():
            hang_up(http)
            return response
        await response.write(frame)
    if isinstance(fault, CutStream):
        hang_up(http)
        return response
    if isinstance(fault, StreamError):
        if sse:
            await response.write(wire.sse(wire.error_body(fault.message, type=fault.type)))
        await response.write_eof()
        return response
    if isinstance(fault, MalformedChunk):
        await response.write(wire.sse(fault.payload) if sse else fault.payload.encode())
    if done is not None:
        await response.write(done)
    await response.write_eof()
    return response
