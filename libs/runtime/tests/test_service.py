"""Typed endpoints against a real nats-server: good requests, bad requests, crashes."""

from __future__ import annotations

import asyncio
import json

import msgspec
import pytest
from nats.aio.client import Client as NATS
from nats.micro import add_service

from switchboard.contracts import (
    ConsentMode,
    ConsentPolicy,
    ConsentPolicyQuery,
    ErrorCode,
    ErrorReply,
)
from switchboard.contracts.subjects import CONSENT_POLICY, request_spec
from switchboard.runtime.bus import RequestFailed, request
from switchboard.runtime.service import RequestError, add_typed_endpoint, bad_request

POLICY = request_spec(CONSENT_POLICY)


async def _serve(nc: NATS, handler):  # type: ignore[no-untyped-def]
    svc = await add_service(nc, name="consent", version="0.1.0", queue_group="consent")
    await add_typed_endpoint(svc, POLICY, handler)
    return svc


async def _policy(query: ConsentPolicyQuery) -> ConsentPolicy:
    if query.trunk == "boom":
        raise RuntimeError(f"database exploded on {query.caller_number}")
    if query.trunk == "refuse":
        raise RequestError(ErrorCode.REJECTED, "This trunk is not served here.")
    return ConsentPolicy(
        call_id=query.call_id,
        jurisdiction="US-CA",
        mode=ConsentMode.ASK,
        notice_text="This call is recorded.",
        notice_version="v1",
        ai_disclosure="You are speaking with an AI.",
    )


async def test_a_typed_request_gets_a_typed_reply(nc: NATS) -> None:
    await _serve(nc, _policy)
    reply = await request(nc, CONSENT_POLICY, ConsentPolicyQuery(call_id="c1"), ConsentPolicy, 2)
    assert reply.call_id == "c1"
    assert reply.mode is ConsentMode.ASK


class _Inner(msgspec.Struct):
    number: str


class _Outer(msgspec.Struct):
    inner: list[_Inner]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"inner": [{}]}', "$.inner[0].number"),
        (b"{}", "$.inner"),
        (b'{"inner": 1}', "$.inner"),
        (b"null", "$"),
        (b"\xff", "$"),
    ],
)
def test_a_bad_request_reply_always_names_the_field_as_a_json_path(body: bytes, field: str) -> None:
    try:
        msgspec.json.decode(body, type=_Outer)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        error = bad_request(exc, "sb.test")
    else:
        raise AssertionError("the body should not decode")
    assert error.field == field
    assert error.code is ErrorCode.BAD_REQUEST


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        (b"{not json", "$", "not valid JSON"),
        (b'{"call_id": 42}', "$.call_id", "Expected `str`"),
        (b"{}", "$.call_id", "missing required field `call_id`"),
        (b'{"call_id": "has spaces and dots.."}', "$.call_id", "regex"),
        (b"[]", "$", "Expected `object`"),
        (b'"call"', "$", "Expected `object`"),
    ],
)
async def test_malformed_requests_get_a_bad_request_reply_naming_the_problem(
    nc: NATS, body: bytes, field: str, fragment: str
) -> None:
    await _serve(nc, _policy)
    msg = await nc.request(CONSENT_POLICY, body, timeout=2)
    assert msg.headers is not None
    assert msg.headers["Nats-Service-Error-Code"] == "400"
    error = json.loads(msg.data)
    assert error["code"] == "bad_request"
    assert fragment in error["message"]
    assert error["field"] == field
    # The service is still up and answers the next good request.
    ok = await request(nc, CONSENT_POLICY, ConsentPolicyQuery(call_id="c2"), ConsentPolicy, 2)
    assert ok.call_id == "c2"


async def test_a_crashing_handler_gives_an_internal_error_and_keeps_serving(nc: NATS) -> None:
    await _serve(nc, _policy)
    with pytest.raises(RequestFailed) as failed:
        await request(
            nc, CONSENT_POLICY, ConsentPolicyQuery(call_id="c", trunk="boom"), ConsentPolicy, 2
        )
    assert failed.value.error.code is ErrorCode.INTERNAL
    assert "exploded" not in failed.value.error.message
    reply = await request(nc, CONSENT_POLICY, ConsentPolicyQuery(call_id="c3"), ConsentPolicy, 2)
    assert reply.call_id == "c3"


async def test_any_failure_is_a_typed_reply_without_the_input_and_counts_in_srv_stats(
    nc: NATS, caplog: pytest.LogCaptureFixture
) -> None:
    """Finding 8 (issue 7): exceptions other than msgspec's (invalid UTF-8 in a string,
    nesting 5,000 deep) escaped the typed endpoint, and nats.micro sent ``repr(exc)``,
    caller number included, in ``Nats-Service-Error`` and ``$SRV.STATS last_error``; the
    failures it did catch never counted in ``num_errors``."""
    await _serve(nc, _policy)
    number = "+14155550100"
    failing = [
        (b'{"call_id": "c", "caller_number": "' + number.encode() + b'\xff\xfe"}', "400"),
        (b'{"call_id": "c", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", "400"),
        (b'{"call_id": "c", "trunk": "boom", "caller_number": "' + number.encode() + b'"}', "500"),
        (b'{"call_id": "c", "trunk": "' + number.encode() + b'\n"}', "400"),
        (b'{"call_id": "' + number.encode() + b'"}', "400"),
    ]
    for body, status in failing:
        msg = await nc.request(CONSENT_POLICY, body, timeout=2)
        assert msg.headers is not None
        assert msg.headers["Nats-Service-Error-Code"] == status, body[:60]
        assert number not in msg.headers["Nats-Service-Error"]
        error = msgspec.json.decode(msg.data, type=ErrorReply)
        assert error.status == status
        assert error.subject == CONSENT_POLICY
        assert number not in error.message
    ok = await request(nc, CONSENT_POLICY, ConsentPolicyQuery(call_id="c4"), ConsentPolicy, 2)
    assert ok.call_id == "c4"
    stats = json.loads((await nc.request("$SRV.STATS.consent", b"", timeout=2)).data)
    [endpoint] = stats["endpoints"]
    assert endpoint["num_requests"] == len(failing) + 1
    assert endpoint["num_errors"] == len(failing)
    assert endpoint["last_error"] == "400:bad_request"
    assert number not in json.dumps(stats)
    assert number not in caplog.text
    assert "14155550100" not in caplog.text


async def test_a_request_error_travels_as_its_typed_code(nc: NATS) -> None:
    await _serve(nc, _policy)
    with pytest.raises(RequestFailed) as failed:
        await request(
            nc, CONSENT_POLICY, ConsentPolicyQuery(call_id="c", trunk="refuse"), ConsentPolicy, 2
        )
    assert failed.value.error.code is ErrorCode.REJECTED
    assert failed.value.error.subject == CONSENT_POLICY


async def test_no_responder_and_timeout_are_reported_as_unavailable(nc: NATS) -> None:
    with pytest.raises(RequestFailed) as none:
        await request(nc, CONSENT_POLICY, ConsentPolicyQuery(call_id="c"), ConsentPolicy, 1)
    assert none.value.error.code is ErrorCode.UNAVAILABLE

    answer = asyncio.Event()

    async def slow(query: ConsentPolicyQuery) -> ConsentPolicy:
        await answer.wait()  # only once the caller has given up
        return await _policy(query)

    await _serve(nc, slow)
    with pytest.raises(RequestFailed) as late:
        await request(nc, CONSENT_POLICY, ConsentPolicyQuery(call_id="c"), ConsentPolicy, 0.2)
    answer.set()
    assert late.value.error.code is ErrorCode.UNAVAILABLE
    assert "within" in late.value.error.message


async def test_the_service_is_discoverable_through_srv_ping(nc: NATS) -> None:
    await _serve(nc, _policy)
    msg = await nc.request("$SRV.INFO.consent", b"", timeout=2)
    info = msgspec.json.decode(msg.data)
    assert info["name"] == "consent"
    assert [e["subject"] for e in info["endpoints"]] == [CONSENT_POLICY]
    assert info["endpoints"][0]["queue_group"] == "consent"
