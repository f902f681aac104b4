"""The checked-in JSON Schema and AsyncAPI documents match the code."""

from __future__ import annotations

import json
from pathlib import Path

from switchboard.contracts import envelope
from switchboard.contracts.registry import message_types
from switchboard.contracts.subjects import REQUESTS
from switchboard.ops import cli, schemas

SCHEMAS = Path(__file__).resolve().parents[3] / "contracts" / "schemas"


def test_exported_schemas_have_not_drifted_from_the_code() -> None:
    for name, body in schemas.render().items():
        checked_in = (SCHEMAS / name).read_bytes()
        assert checked_in == body, (
            f"contracts/schemas/{name} is stale: run `make schemas` and commit the result."
        )


def test_every_message_has_a_json_schema_with_a_description() -> None:
    defs = json.loads((SCHEMAS / schemas.SCHEMA_FILE).read_text())["$defs"]
    for t in message_types():
        for cls in getattr(t, "__args__", (t,)):
            assert cls.__name__ in defs
            assert defs[cls.__name__].get("description"), f"{cls.__name__} needs a docstring"


def test_personal_data_fields_are_marked_in_the_exported_schema() -> None:
    defs = json.loads((SCHEMAS / schemas.SCHEMA_FILE).read_text())["$defs"]
    number = defs["CallStarted"]["properties"]["caller_number"]
    assert any(alt.get("x-personal-data") for alt in number["anyOf"])
    assert defs["RecordConsent"]["properties"]["call_id"].get("x-personal-data") is None


def test_asyncapi_document_names_every_subject_with_its_owner() -> None:
    doc = json.loads((SCHEMAS / schemas.ASYNCAPI_FILE).read_text())
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"]: c for c in doc["channels"].values() if c["address"]}
    for req in REQUESTS:
        assert addresses[req.subject]["x-owner"] == str(req.owner)
    for spec in envelope.EVENTS:
        channel = addresses[f"sb.evt.{spec.domain}.{spec.name}.{{call_id}}"]
        assert channel["x-cloudevents-type"] == spec.type
        assert channel["x-owner"] == str(spec.owner)
    for op in doc["operations"].values():
        ref = op["channel"]["$ref"].removeprefix("#/channels/")
        assert ref in doc["channels"]


def test_the_schemas_command_writes_the_documents_it_checks(tmp_path: Path) -> None:
    assert cli.main(["schemas", str(tmp_path / "out")]) == 0
    for name, body in schemas.render().items():
        assert (tmp_path / "out" / name).read_bytes() == body


def test_field_docstrings_and_timestamps_reach_the_json_schema() -> None:
    defs = json.loads((SCHEMAS / schemas.SCHEMA_FILE).read_text())["$defs"]
    sequence = defs["RecordingStarted"]["properties"]["consent_sequence"]
    assert sequence["description"] == "The ledger sequence of the receipt that allowed recording."
    assert defs["CloudEvent"]["properties"]["time"]["format"] == "date-time"
    assert defs["CallStarted"]["properties"]["started_at"]["format"] == "date-time"
    # The type's own description stays after the field's.
    assert "E.164" in str(defs["CallStarted"]["properties"]["caller_number"])


def test_the_json_schema_maps_every_event_type_to_its_data() -> None:
    doc = json.loads((SCHEMAS / schemas.SCHEMA_FILE).read_text())
    assert doc["$ref"] == "#/$defs/SwitchboardEvent"
    branches = doc["$defs"]["SwitchboardEvent"]["oneOf"]
    mapped = {b["properties"]["type"]["const"]: b["properties"]["data"]["$ref"] for b in branches}
    assert mapped == {s.type: f"#/$defs/{s.payload.__name__}" for s in envelope.EVENTS}


def test_asyncapi_names_the_server_queue_groups_and_event_headers() -> None:
    doc = json.loads((SCHEMAS / schemas.ASYNCAPI_FILE).read_text())
    assert doc["servers"]["nats"]["protocol"] == "nats"
    for req in REQUESTS:
        op = doc["operations"][req.subject.replace(".", "_")]
        assert op["bindings"]["nats"]["queue"] == str(req.owner)
    headers = doc["components"]["schemas"]["EventHeaders"]
    assert set(headers["required"]) == {"Nats-Msg-Id", "Content-Type"}
    for spec in envelope.EVENTS:
        message = doc["components"]["messages"][f"{spec.payload.__name__}Event"]
        assert message["contentType"] == "application/cloudevents+json"
        assert message["headers"] == {"$ref": "#/components/schemas/EventHeaders"}
