"""JSON logs carry facts as fields and never personal data."""

from __future__ import annotations

import io
import json
import logging

from switchboard.runtime.logs import PERSONAL_KEYS, REDACTED, configure_logging


def _capture() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("test-service", "DEBUG", stream=stream)
    return stream


def test_a_log_line_is_one_json_object_with_service_and_extras() -> None:
    stream = _capture()
    logging.getLogger("t").info("Consent recorded.", extra={"call_id": "c1", "sequence": 4})
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["message"] == "Consent recorded."
    assert line["service"] == "test-service"
    assert line["call_id"] == "c1"
    assert line["sequence"] == 4
    assert line["level"] == "INFO"


def test_personal_extras_are_redacted() -> None:
    stream = _capture()
    logging.getLogger("t").warning(
        "Transfer placed.",
        extra={"caller_number": "+14155550100", "email": "a@b.example", "transfer_id": "t1"},
    )
    text = stream.getvalue()
    assert "+14155550100" not in text
    assert "a@b.example" not in text
    line = json.loads(text.strip().splitlines()[-1])
    assert line["caller_number"] == REDACTED
    assert line["transfer_id"] == "t1"


def test_every_personal_field_of_the_contracts_is_a_redacted_key() -> None:
    assert {"caller_number", "transcript_excerpt", "whisper", "summary", "number"} <= PERSONAL_KEYS
