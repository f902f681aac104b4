"""Every request subject answers malformed input with a typed error and stays up."""

from __future__ import annotations

import json

import nats
import pytest

from switchboard.contracts.subjects import REQUESTS, RequestSubject
from tests.stack import Stack

MALFORMED = [
    pytest.param(b"{not json", "not valid JSON", id="malformed-json"),
    pytest.param(b'"a string"', "Expected `object`, got `str`", id="wrong-top-level-type"),
    pytest.param(b"[1, 2]", "Expected `object`, got `array`", id="array"),
]


@pytest.mark.parametrize("req", REQUESTS, ids=[r.subject for r in REQUESTS])
@pytest.mark.parametrize(("body", "fragment"), MALFORMED)
async def test_malformed_requests_get_a_typed_error_reply(
    stack: Stack, req: RequestSubject, body: bytes, fragment: str
) -> None:
    nc = await nats.connect(stack.nats.url)
    try:
        msg = await nc.request(req.subject, body, timeout=3)
        assert msg.headers is not None
        assert msg.headers.get("Nats-Service-Error-Code") == "400"
        error = json.loads(msg.data)
        assert error["code"] == "bad_request"
        assert error["subject"] == req.subject
        assert fragment in error["message"]
        # The service is still up: its $SRV.PING answers.
        await nc.request(f"$SRV.PING.{req.owner.value}", b"", timeout=2)
    finally:
        await nc.close()


@pytest.mark.parametrize("req", REQUESTS, ids=[r.subject for r in REQUESTS])
async def test_wrong_types_and_missing_fields_are_named(stack: Stack, req: RequestSubject) -> None:
    import msgspec

    fields = msgspec.structs.fields(req.request)
    nc = await nats.connect(stack.nats.url)
    try:
        required = [f for f in fields if f.required]
        if required:
            msg = await nc.request(req.subject, b"{}", timeout=3)
            error = json.loads(msg.data)
            assert error["code"] == "bad_request"
            assert f"`{required[0].encode_name}`" in error["message"]
            assert error["field"] == f"$.{required[0].encode_name}"
        # A wrong type for the first field: an object where a scalar or list is expected,
        # a list where an object (a nested struct) is (an object would be checked inside,
        # and the error would name its missing field instead).
        if fields:
            first = fields[0].encode_name
            kind = fields[0].type
            nested = isinstance(kind, type) and issubclass(kind, msgspec.Struct)
            wrong: object = [1] if nested else {"x": [1]}
            msg = await nc.request(req.subject, json.dumps({first: wrong}).encode(), timeout=3)
            error = json.loads(msg.data)
            assert error["code"] == "bad_request"
            assert error["field"] == f"$.{first}"
    finally:
        await nc.close()
