"""Standard Webhooks signatures, checked against the reference implementation."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from switchboard.webhook_relay import signing


def test_a_signature_verifies_with_the_reference_implementation() -> None:
    secret = signing.new_secret()
    body = b'{"id":"e-1","type":"io.switchboard.call.ended.v1"}'
    headers = signing.headers(signing.parse_secret(secret), "e-1", int(time.time()), body)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == {
        "id": "e-1",
        "type": "io.switchboard.call.ended.v1",
    }


def test_a_signature_matches_the_reference_for_the_same_inputs() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    key = signing.parse_secret(secret)
    import datetime as dt

    when = dt.datetime.fromtimestamp(1_700_000_000, dt.UTC)
    ours = signing.signature(key, "msg_1", 1_700_000_000, b"{}")
    assert ours == Webhook(secret).sign("msg_1", when, "{}")


def test_another_secret_a_changed_body_or_id_does_not_verify() -> None:
    secret = signing.new_secret()
    body = b'{"id":"e-1"}'
    headers = signing.headers(signing.parse_secret(secret), "e-1", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"id":"e-2"}', headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "e-2"})


@pytest.mark.parametrize(
    "bad", ["", "secret", "whsec_not base64!", "whsec_" + base64.b64encode(b"short").decode()]
)
def test_a_secret_that_is_not_whsec_base64_of_24_to_64_bytes_is_refused(bad: str) -> None:
    with pytest.raises(signing.SecretError):
        signing.parse_secret(bad)
