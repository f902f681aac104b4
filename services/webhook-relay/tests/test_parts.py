"""The endpoints file, personal data per endpoint, Retry-After and the retry loop."""

from __future__ import annotations

import email.utils
import json
import time
from pathlib import Path

import pytest

from switchboard.contracts.crm import Authority, OrderPlaced
from switchboard.contracts.envelope import encode_event
from switchboard.webhook_relay.delivery import Backoff, Refused, Retryable, deliver, retry_after_s
from switchboard.webhook_relay.endpoints import EndpointsError, filter_subjects, load_endpoints
from switchboard.webhook_relay.payload import Undeliverable, prepare
from switchboard.webhook_relay.signing import new_secret


def _order() -> bytes:
    event = OrderPlaced(
        call_id="c-1",
        request_id="r-1",
        reference="ORD-1",
        product_id="headset",
        agent="sales",
        authority=Authority(rule="orders_by_phone"),
        email="jane@example.com",
        shipping_address="221 Baker Street",
    )
    return encode_event(event).body


def test_personal_fields_are_dropped_only_for_endpoints_that_ask() -> None:
    body = _order()
    assert prepare(body, False) == body
    kept = json.loads(prepare(body, True))
    assert "email" not in kept["data"]
    assert "shipping_address" not in kept["data"]
    assert kept["data"]["reference"] == "ORD-1"
    assert kept["id"] == json.loads(body)["id"]


def test_an_unknown_event_type_is_not_guessed_at_when_personal_data_must_go() -> None:
    body = json.loads(_order())
    body["type"] = "io.switchboard.case.something_new.v1"
    raw = json.dumps(body).encode()
    assert prepare(raw, False) == raw
    with pytest.raises(Undeliverable):
        prepare(raw, True)


def test_event_patterns_become_the_consumers_filter_subjects() -> None:
    assert filter_subjects(["*.*"]) == ("sb.evt.>",)
    assert filter_subjects(["case.*", "call.ended"]) == ("sb.evt.case.*.*", "sb.evt.call.ended.*")
    for bad in (["case"], ["nothing.here"], ["case.>"], []):
        with pytest.raises(EndpointsError):
            filter_subjects(bad)


def test_the_endpoints_file_is_checked_with_each_secret(tmp_path: Path) -> None:
    secret = tmp_path / "s"
    secret.write_text(new_secret())
    path = tmp_path / "e.toml"
    path.write_text(
        f'[[endpoints]]\nname = "acme"\nurl = "https://crm.example.com/h"\n'
        f'secret_file = "{secret}"\nevents = ["case.*"]\ndrop_personal_data = true\n'
    )
    [endpoint] = load_endpoints(str(path), 60.0)
    assert endpoint.subjects == ("sb.evt.case.*.*",)
    assert endpoint.give_up_after_s == 60.0
    assert "key" not in repr(endpoint)
    secret.write_text("not a secret")
    with pytest.raises(EndpointsError, match="secret of endpoint acme"):
        load_endpoints(str(path), 60.0)
    with pytest.raises(EndpointsError, match="SB_WEBHOOK_ENDPOINTS_FILE"):
        load_endpoints("", 60.0)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = time.time()
    assert retry_after_s("7", now) == 7.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= (retry_after_s(date, now) or 0) <= 31
    assert retry_after_s("soon", now) is None
    assert retry_after_s(None, now) is None


async def test_retries_honour_retry_after_and_stop_at_a_refusal() -> None:
    calls: list[float] = []

    async def busy_then_ok() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise Retryable(429, "HTTP 429", retry_after=0.3)

    backoff = Backoff(0.001, 1.0)
    outcome = await deliver(
        busy_then_ok, stored_at=time.time(), give_up_after_s=60, backoff=backoff
    )
    assert outcome.delivered
    assert outcome.attempts == 2
    assert calls[1] - calls[0] >= 0.29  # waited as asked, not the 1 ms backoff

    async def refuse() -> None:
        raise Refused(410, "HTTP 410")

    refused = await deliver(refuse, stored_at=time.time(), give_up_after_s=60, backoff=backoff)
    assert (refused.delivered, refused.refused, refused.attempts, refused.status) == (
        False,
        True,
        1,
        410,
    )


async def test_retries_give_up_once_the_event_is_older_than_the_give_up_age() -> None:
    attempts = 0

    async def down() -> None:
        nonlocal attempts
        attempts += 1
        raise Retryable(503, "HTTP 503")

    started = time.time()
    outcome = await deliver(
        down, stored_at=started - 0.5, give_up_after_s=0.8, backoff=Backoff(0.02, 0.1)
    )
    assert not outcome.delivered
    assert outcome.status == 503
    assert attempts > 1
    assert 0.25 <= time.time() - started < 1.5  # counted from when it was stored
