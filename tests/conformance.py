"""Events and exported schemas as an integrator's third-party tools read them.

The CloudEvents Python SDK (``cloudevents``) reads each event as its structured JSON
format does, ``jsonschema`` validates it against the exported JSON Schema (formats
checked), and the Node tools (Ajv in strict mode, the CloudEvents JS SDK, the AsyncAPI
parser) run from ``tests/node`` with their versions pinned by its lock file. These are dev
dependencies only: no service imports them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from jsonschema import Draft202012Validator

from switchboard.contracts.envelope import EVENT_CONTENT_TYPE

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "contracts" / "schemas"
NODE_CHECKS = ROOT / "tests" / "node"
NODE_FILES = ("package.json", "package-lock.json", "check.mjs", "crm_consumer.mjs")

_schema = json.loads((SCHEMAS / "messages.schema.json").read_text())
_validator = Draft202012Validator(_schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event message as a consumer receives it."""

    headers: Mapping[str, str]
    body: bytes


def event_problems(event: StoredEvent) -> list[str]:
    """What the third-party tools find wrong with one event message (empty: nothing)."""
    problems = []
    if event.headers.get("Content-Type") != EVENT_CONTENT_TYPE:
        problems.append(f"Content-Type is {event.headers.get('Content-Type')!r}")
    try:
        JSONFormat().read(None, event.body)
    except Exception as exc:  # the SDK raises several types; any means "not a CloudEvent"
        problems.append(f"the CloudEvents SDK refuses it: {exc}")
    body = json.loads(event.body)
    for error in _validator.iter_errors(body):
        problems.append(f"schema: {error.message} at {error.json_path}")
    data_schema = _data_schema(body.get("type"))
    if data_schema is not None:
        # The oneOf above names no field when data is wrong; the data's own schema does.
        for error in Draft202012Validator(
            data_schema, format_checker=Draft202012Validator.FORMAT_CHECKER
        ).iter_errors(body.get("data")):
            problems.append(f"data: {error.message} at {error.json_path}")
    return problems


def _data_schema(event_type: object) -> dict[str, Any] | None:
    for branch in _schema["$defs"]["SwitchboardEvent"]["oneOf"]:
        if branch["properties"]["type"]["const"] == event_type:
            ref = branch["properties"]["data"]["$ref"]
            return {**_schema, "$ref": ref}
    return None


def patterns(doc: Any) -> Iterator[str]:
    """Every ``pattern`` keyword's value in a schema document."""
    if isinstance(doc, dict):
        if isinstance(doc.get("pattern"), str):
            yield doc["pattern"]
        for value in doc.values():
            yield from patterns(value)
    elif isinstance(doc, list):
        for value in doc:
            yield from patterns(value)


_NOT_PORTABLE = re.compile(r"\(\?(?!:)|\\[AZzbBGdDsSwW]|\\[1-9]|\\k<|\[\[:")


def non_portable(pattern: str) -> str | None:
    """Why ``pattern`` would not compile, or not mean the same, in every dialect a
    consumer may use (ECMAScript ``u`` mode, RE2, Rust ``regex``, Python ``re``); None if
    it is portable. Lookaround, backreferences, named or flagged groups, Python-only anchors
    and shorthand classes (whose meaning differs with Unicode) are out."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"does not compile in Python: {exc}"
    found = _NOT_PORTABLE.search(pattern)
    return f"uses {found.group(0)!r}" if found else None


def write_events(events: Iterable[StoredEvent], path: Path) -> Path:
    """Events as JSON lines of ``{"headers", "body"}``, the Node checks' input."""
    with path.open("w") as out:
        for event in events:
            line = {"headers": dict(event.headers), "body": event.body.decode()}
            out.write(json.dumps(line) + "\n")
    return path


def install_node_checks(workdir: Path, npm: str) -> Path:
    """``tests/node`` copied to ``workdir`` and installed from its lock file (``npm ci``),
    so nothing is installed into the work tree."""
    for name in NODE_FILES:
        shutil.copy2(NODE_CHECKS / name, workdir / name)
    # No package needs an install script; one would only phone home (@scarf/scarf).
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return workdir


def node_check(
    workdir: Path, node: str, events: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``check.mjs`` on the exported documents (and ``events``)."""
    args = [node, "check.mjs", str(SCHEMAS / "messages.schema.json")]
    args.append(str(SCHEMAS / "asyncapi.json"))
    if events is not None:
        args.append(str(events))
    return subprocess.run(
        args, cwd=workdir, capture_output=True, text=True, timeout=120, check=False
    )


def run_node_checks(workdir: Path, node: str, events: Path | None = None) -> dict[str, Any]:
    """``check.mjs``'s summary; fails with its complaints when it finds a problem."""
    done = node_check(workdir, node, events)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary
