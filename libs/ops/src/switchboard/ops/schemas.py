"""Export the JSON Schema of every message and an AsyncAPI 3.1 document of the subjects.

The exported files are checked in under ``contracts/schemas``; a test regenerates them
and fails when they drift from the code. Regenerate with ``make schemas``
(``python -m switchboard.ops schemas contracts/schemas``).

Both documents are read by other tools (Ajv in strict mode, ``jsonschema``, the AsyncAPI
parser, the tests run them): field docstrings become descriptions and patterns are written
in the dialect they share (``schemadocs``). The one keyword of our own,
``x-personal-data``, is an annotation Ajv's strict mode accepts once declared
(``new Ajv({keywords: ["x-personal-data"]})``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from switchboard.contracts import envelope, errors
from switchboard.contracts.base import PERSONAL_DATA_KEY
from switchboard.contracts.consent import RecordConsent
from switchboard.contracts.registry import message_types
from switchboard.contracts.subjects import (
    CONSENT_COMMANDS_PREFIX,
    EVENTS_PREFIX,
    REQUESTS,
    Owner,
    consent_record_subject,
    webhook_dead_letter_subject,
)
from switchboard.contracts.webhook import DeadLetter
from switchboard.ops.schemadocs import enrich

ASYNCAPI_FILE = "asyncapi.json"
SCHEMA_FILE = "messages.schema.json"
REF_TEMPLATE = "#/components/schemas/{name}"
EVENT_DEF = "SwitchboardEvent"
"""The ``$defs`` entry that maps each event ``type`` to the schema of its ``data``."""
CUSTOM_KEYWORDS = (PERSONAL_DATA_KEY,)
"""Keywords of ours in the JSON Schema; a strict validator is told about them."""
NATS_BINDING_VERSION = "0.1.0"


def _components(ref_template: str) -> dict[str, Any]:
    types = message_types()
    _, components = msgspec.json.schema_components(types, ref_template=ref_template)
    return dict(sorted(enrich(components, types).items()))


def event_schema(ref_template: str) -> dict[str, Any]:
    """Any event of these contracts: a CloudEvent whose ``data`` matches its ``type``."""
    return {
        "title": EVENT_DEF,
        "description": "An event on sb.evt.>: a CloudEvent whose data is the payload its "
        "type names. A type not listed here is newer than these contracts: skip it.",
        "allOf": [{"$ref": ref_template.format(name="CloudEvent")}],
        "oneOf": [
            {
                "type": "object",
                "properties": {
                    "type": {"const": spec.type},
                    "data": {"$ref": ref_template.format(name=spec.payload.__name__)},
                },
                "required": ["type", "data"],
            }
            for spec in envelope.EVENTS
        ],
    }


def json_schemas() -> dict[str, Any]:
    """One JSON Schema document whose ``$defs`` hold every message; the document itself
    validates an event (``$defs/SwitchboardEvent``)."""
    ref = "#/$defs/{name}"
    defs = _components(ref)
    defs[EVENT_DEF] = event_schema(ref)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Switchboard messages",
        "description": "Every Switchboard message under $defs. The document validates one "
        "event (SwitchboardEvent: its type picks the schema of its data). Fields marked "
        f"{PERSONAL_DATA_KEY!r} can hold personal data.",
        "$ref": ref.format(name=EVENT_DEF),
        "$defs": dict(sorted(defs.items())),
    }


def _name(t: Any) -> str:
    return t.__name__ if isinstance(t, type) else "Or".join(a.__name__ for a in t.__args__)


def _payload_ref(t: Any) -> dict[str, Any]:
    if isinstance(t, type):
        return {"$ref": REF_TEMPLATE.format(name=t.__name__)}
    return {"oneOf": [{"$ref": REF_TEMPLATE.format(name=a.__name__)} for a in t.__args__]}


def asyncapi() -> dict[str, Any]:
    """An AsyncAPI 3.1 document describing every subject, its owner and its messages."""
    components = _components(REF_TEMPLATE)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}

    def message(name: str, payload: Any, summary: str, **extra: Any) -> dict[str, str]:
        messages[name] = {
            "name": name,
            "summary": summary,
            "contentType": "application/json",
            "payload": payload,
            **extra,
        }
        return {"$ref": f"#/components/messages/{name}"}

    error_ref = message("ErrorReply", _payload_ref(errors.ErrorReply), "Typed error reply.")
    for req in REQUESTS:
        cid = req.subject.replace(".", "_")
        req_ref = message(_name(req.request), _payload_ref(req.request), req.summary)
        reply_ref = message(_name(req.reply), _payload_ref(req.reply), f"Reply to {req.subject}.")
        channels[cid] = {
            "address": req.subject,
            "description": req.summary,
            "messages": {"request": req_ref},
            "x-owner": str(req.owner),
        }
        channels[f"{cid}_reply"] = {
            "address": None,
            "description": f"Inbox reply to {req.subject}.",
            "messages": {"reply": reply_ref, "error": error_ref},
        }
        operations[cid] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": req.summary,
            "reply": {"channel": {"$ref": f"#/channels/{cid}_reply"}},
            "bindings": _queue(str(req.owner)),
            "x-owner": str(req.owner),
        }
    cmd = consent_record_subject("{call_id}")
    channels["consent_record_command"] = {
        "address": cmd,
        "description": "Consent decisions for the ledger (JetStream work queue, durable).",
        "parameters": {"call_id": {"description": "Call id."}},
        "messages": {
            "command": message("RecordConsent", _payload_ref(RecordConsent), "Record consent.")
        },
        "x-owner": str(Owner.CONSENT),
        "x-stream": "SB_CONSENT_CMDS",
    }
    operations["consent_record_command"] = {
        "action": "receive",
        "channel": {"$ref": "#/channels/consent_record_command"},
        "summary": f"The ledger consumes {CONSENT_COMMANDS_PREFIX}.record.* commands.",
        "x-owner": str(Owner.CONSENT),
    }
    dead = webhook_dead_letter_subject("{endpoint}", "{call_id}")
    channels["webhook_dead_letter"] = {
        "address": dead,
        "description": "Events the webhook relay gave up delivering, until a replay delivers "
        "them (list and replay with sb.webhook.deadletter.*).",
        "parameters": {
            "endpoint": {"description": "Webhook endpoint name."},
            "call_id": {"description": "Call id."},
        },
        "messages": {
            "deadLetter": message("DeadLetter", _payload_ref(DeadLetter), "One dead letter.")
        },
        "x-owner": str(Owner.WEBHOOK_RELAY),
        "x-stream": "SB_WEBHOOK_DEAD",
    }
    operations["webhook_dead_letter"] = {
        "action": "send",
        "channel": {"$ref": "#/channels/webhook_dead_letter"},
        "summary": "The webhook relay keeps what it could not deliver.",
        "x-owner": str(Owner.WEBHOOK_RELAY),
    }
    for spec in envelope.EVENTS:
        cid = f"evt_{spec.domain}_{spec.name}"
        ref = message(
            f"{spec.payload.__name__}Event",
            {
                "allOf": [
                    {"$ref": REF_TEMPLATE.format(name="CloudEvent")},
                    {
                        "type": "object",
                        "properties": {
                            "type": {"const": spec.type},
                            "data": _payload_ref(spec.payload),
                        },
                    },
                ]
            },
            (spec.payload.__doc__ or "").strip().splitlines()[0],
            contentType=envelope.EVENT_CONTENT_TYPE,
            headers={"$ref": "#/components/schemas/EventHeaders"},
        )
        channels[cid] = {
            "address": f"{EVENTS_PREFIX}.{spec.domain}.{spec.name}.{{call_id}}",
            "parameters": {"call_id": {"description": "Call id (CloudEvent subject)."}},
            "messages": {"event": ref},
            "x-owner": str(spec.owner),
            "x-stream": "SB_EVENTS",
            "x-cloudevents-type": spec.type,
        }
        operations[cid] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": f"{spec.owner} publishes {spec.type}.",
            "x-owner": str(spec.owner),
        }
    components["EventHeaders"] = EVENT_HEADERS
    return {
        "asyncapi": "3.1.0",
        "info": {
            "title": "Switchboard",
            "version": "1.0.0",
            "description": "Subjects and messages of the Switchboard services over NATS. "
            "Events are CloudEvents in the NATS binding's structured mode.",
        },
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "NATS with JetStream (make demo's server; a deployment has "
                "its own address). Every process connects as its own NATS user.",
            }
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": dict(sorted(components.items())),
            "messages": dict(sorted(messages.items())),
        },
    }


EVENT_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "NATS headers of every event message.",
    "properties": {
        "Nats-Msg-Id": {
            "type": "string",
            "description": "The CloudEvent id; JetStream drops a repeat within the stream's "
            "duplicate window.",
        },
        "Content-Type": {
            "type": "string",
            "const": envelope.EVENT_CONTENT_TYPE,
            "description": "CloudEvents structured mode: the body is the whole event.",
        },
        "traceparent": {
            "type": "string",
            "description": "W3C trace context, the same as the CloudEvent's traceparent.",
        },
    },
    "required": ["Nats-Msg-Id", "Content-Type"],
}


def _queue(group: str) -> dict[str, Any]:
    """The NATS operation binding of a subject served in a queue group."""
    return {"nats": {"queue": group, "bindingVersion": NATS_BINDING_VERSION}}


def render() -> dict[str, bytes]:
    """The exported files, by name, exactly as they are checked in."""

    def dump(doc: dict[str, Any]) -> bytes:
        return msgspec.json.format(msgspec.json.encode(doc), indent=2) + b"\n"

    return {SCHEMA_FILE: dump(json_schemas()), ASYNCAPI_FILE: dump(asyncapi())}


def write(directory: Path) -> list[Path]:
    """Write the exported files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, body in render().items():
        path = directory / name
        path.write_bytes(body)
        written.append(path)
    return written
